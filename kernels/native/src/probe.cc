// FMA peak probe: what the cores can do at best, to put GEMM GFLOP/s in context.
// Ten independent accumulator chains per thread cover the FMA latency × throughput product of
// current x86 cores (4–5 cycles × 2 ports), so the loop is bound by FMA throughput alone.
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

i64 fma_loop(double seconds) {
  using Clock = std::chrono::steady_clock;
  // Multipliers just below 1 and a small addend keep every chain finite and normal.
  const __m256 a = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  __m256 x0 = _mm256_set1_ps(1.0f), x1 = _mm256_set1_ps(1.1f), x2 = _mm256_set1_ps(1.2f), x3 = _mm256_set1_ps(1.3f),
         x4 = _mm256_set1_ps(1.4f), x5 = _mm256_set1_ps(1.5f), x6 = _mm256_set1_ps(1.6f), x7 = _mm256_set1_ps(1.7f),
         x8 = _mm256_set1_ps(1.8f), x9 = _mm256_set1_ps(1.9f);
  const auto start = Clock::now();
  i64 rounds = 0;
  do {
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
    rounds++;
  } while (std::chrono::duration<double>(Clock::now() - start).count() < seconds);
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3)),
                           _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(x4, x5), _mm256_add_ps(x6, x7)),
                                         _mm256_add_ps(x8, x9)));
  g_sink.store(g_sink.load(std::memory_order_relaxed) + _mm256_cvtss_f32(s), std::memory_order_relaxed);
  return rounds * kInner * 10;
}

}  // namespace

double fma_peak_gflops(int threads, double millis) {
  if (threads < 1) threads = 1;
  const double seconds = millis / 1000.0;
  std::vector<i64> counts(threads, 0);
  std::vector<std::thread> pool;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; t++) pool.emplace_back([&, t] { counts[t] = fma_loop(seconds); });
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double fmas = 0;
  for (i64 c : counts) fmas += static_cast<double>(c);
  return fmas * 16.0 / elapsed / 1e9;  // 8 lanes × 2 flops per FMA
}

}  // namespace aligner
