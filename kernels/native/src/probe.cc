// FMA peak probe: what the cores can do at best, to put GEMM GFLOP/s in context, and the CPU's
// widest ISA. The FMA chains (fma_peak.cc) run from the build of the widest ISA the CPU has
// (512-bit FMAs where AVX-512 is present): a peak measured with narrower FMAs than the CPU has
// would be half the real one.
#include <chrono>
#include <thread>
#include <vector>

#include "dispatch.h"

namespace aligner {

const char* widest_isa() {
  // The avx512 kernel build uses F, DQ, BW and VL (every AVX-512 core since Skylake-SP has all four).
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "baseline";
}

// threads × ~millis ms of FMA chains of the widest FMA the CPU has (that ISA's kernel build,
// whichever build is active) → GFLOP/s
double fma_peak_gflops(int threads, double millis) {
  if (threads < 1) threads = 1;
  const double seconds = millis / 1000.0;
  const auto fma_flops = kernel_table(widest_isa())->fma_flops;
  std::vector<double> counts(threads, 0);
  std::vector<std::thread> pool;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; t++) pool.emplace_back([&, t] { counts[t] = fma_flops(seconds); });
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double flops = 0;
  for (double c : counts) flops += c;
  return flops / elapsed / 1e9;
}

}  // namespace aligner
