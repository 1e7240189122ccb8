// FMA peak probe: what the cores can do at best, to put GEMM GFLOP/s in context.
// Ten independent accumulator chains per thread cover the FMA latency × throughput product of
// current x86 cores (4–5 cycles × 2 ports), so the loop is bound by FMA throughput alone.
// The widest FMA the CPU has is used (512-bit where AVX-512F is present, else 256-bit): a peak
// measured with narrower FMAs than the CPU has would be half the real one.
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "kernels.h"

namespace aligner {

namespace {

std::atomic<float> g_sink{0.0f};  // the result goes somewhere observable, so the work stays

constexpr i64 kInner = 100000;  // FMAs per chain between clock reads
constexpr int kChains = 10;

// One burst of kInner FMAs on each chain. Kept out of line and free of calls so the chains live in
// registers: with a clock call in the same loop the compiler spills them (ymm registers are
// caller-saved), and the loop then measures store-to-load forwarding instead of FMAs.
__attribute__((noinline)) void burst(__m256* chains) {
  const __m256 a = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  __m256 x0 = chains[0], x1 = chains[1], x2 = chains[2], x3 = chains[3], x4 = chains[4], x5 = chains[5], x6 = chains[6],
         x7 = chains[7], x8 = chains[8], x9 = chains[9];
  for (i64 i = 0; i < kInner; i++) {
    x0 = _mm256_fmadd_ps(x0, a, c);
    x1 = _mm256_fmadd_ps(x1, a, c);
    x2 = _mm256_fmadd_ps(x2, a, c);
    x3 = _mm256_fmadd_ps(x3, a, c);
    x4 = _mm256_fmadd_ps(x4, a, c);
    x5 = _mm256_fmadd_ps(x5, a, c);
    x6 = _mm256_fmadd_ps(x6, a, c);
    x7 = _mm256_fmadd_ps(x7, a, c);
    x8 = _mm256_fmadd_ps(x8, a, c);
    x9 = _mm256_fmadd_ps(x9, a, c);
  }
  chains[0] = x0, chains[1] = x1, chains[2] = x2, chains[3] = x3, chains[4] = x4;
  chains[5] = x5, chains[6] = x6, chains[7] = x7, chains[8] = x8, chains[9] = x9;
}

// The same burst with 512-bit FMAs, compiled for AVX-512F only (called only where the CPU has it).
__attribute__((noinline, target("avx512f"))) void burst512(__m512* chains) {
  const __m512 a = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  __m512 x0 = chains[0], x1 = chains[1], x2 = chains[2], x3 = chains[3], x4 = chains[4], x5 = chains[5], x6 = chains[6],
         x7 = chains[7], x8 = chains[8], x9 = chains[9];
  for (i64 i = 0; i < kInner; i++) {
    x0 = _mm512_fmadd_ps(x0, a, c);
    x1 = _mm512_fmadd_ps(x1, a, c);
    x2 = _mm512_fmadd_ps(x2, a, c);
    x3 = _mm512_fmadd_ps(x3, a, c);
    x4 = _mm512_fmadd_ps(x4, a, c);
    x5 = _mm512_fmadd_ps(x5, a, c);
    x6 = _mm512_fmadd_ps(x6, a, c);
    x7 = _mm512_fmadd_ps(x7, a, c);
    x8 = _mm512_fmadd_ps(x8, a, c);
    x9 = _mm512_fmadd_ps(x9, a, c);
  }
  chains[0] = x0, chains[1] = x1, chains[2] = x2, chains[3] = x3, chains[4] = x4;
  chains[5] = x5, chains[6] = x6, chains[7] = x7, chains[8] = x8, chains[9] = x9;
}

__attribute__((target("avx512f"))) i64 fma_loop512(double seconds) {
  using Clock = std::chrono::steady_clock;
  alignas(64) __m512 chains[kChains];
  for (int i = 0; i < kChains; i++) chains[i] = _mm512_set1_ps(1.0f + 0.1f * i);
  const auto start = Clock::now();
  i64 rounds = 0;
  do {
    burst512(chains);
    rounds++;
  } while (std::chrono::duration<double>(Clock::now() - start).count() < seconds);
  alignas(64) float lanes[16];
  float s = 0;
  for (int i = 0; i < kChains; i++) {
    _mm512_store_ps(lanes, chains[i]);
    for (float x : lanes) s += x;
  }
  g_sink.store(g_sink.load(std::memory_order_relaxed) + s, std::memory_order_relaxed);
  return rounds * kInner * kChains;
}

i64 fma_loop(double seconds) {
  using Clock = std::chrono::steady_clock;
  // Multipliers just below 1 and a small addend keep every chain finite and normal (→ 1).
  alignas(32) __m256 chains[kChains];
  for (int i = 0; i < kChains; i++) chains[i] = _mm256_set1_ps(1.0f + 0.1f * i);
  const auto start = Clock::now();
  i64 rounds = 0;
  do {
    burst(chains);
    rounds++;
  } while (std::chrono::duration<double>(Clock::now() - start).count() < seconds);
  __m256 s = chains[0];
  for (int i = 1; i < kChains; i++) s = _mm256_add_ps(s, chains[i]);
  g_sink.store(g_sink.load(std::memory_order_relaxed) + _mm256_cvtss_f32(s), std::memory_order_relaxed);
  return rounds * kInner * kChains;
}

}  // namespace

const char* widest_isa() {
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "baseline";
}

// threads × ~millis ms of FMA chains of the widest FMA the CPU has → GFLOP/s
double fma_peak_gflops(int threads, double millis) {
  if (threads < 1) threads = 1;
  const double seconds = millis / 1000.0;
  const bool wide = __builtin_cpu_supports("avx512f");
  std::vector<i64> counts(threads, 0);
  std::vector<std::thread> pool;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; t++) pool.emplace_back([&, t] { counts[t] = wide ? fma_loop512(seconds) : fma_loop(seconds); });
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double fmas = 0;
  for (i64 c : counts) fmas += static_cast<double>(c);
  return fmas * (wide ? 32.0 : 16.0) / elapsed / 1e9;  // (16 or 8 lanes) × 2 flops per FMA
}

}  // namespace aligner
