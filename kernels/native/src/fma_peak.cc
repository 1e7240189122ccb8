// The FMA chains behind the peak probe (probe.cc), one copy per ISA build, so the peak is measured
// with the widest FMA the CPU has. Ten independent accumulator chains cover the FMA latency ×
// throughput product of current x86 cores (4–5 cycles × 2 ports), so the loop is bound by FMA
// throughput alone.
#include <atomic>
#include <chrono>

#include "kernels.h"
#include "simd.h"

namespace aligner::ALIGNER_ISA_NS {

namespace {

std::atomic<float> g_sink{0.0f};  // the result goes somewhere observable, so the work stays

constexpr i64 kInner = 100000;  // FMAs per chain between clock reads
constexpr int kChains = 10;

// One burst of kInner FMAs on each chain. Kept out of line and free of calls so the chains live in
// registers: with a clock call in the same loop the compiler spills them (vector registers are
// caller-saved), and the loop then measures store-to-load forwarding instead of FMAs.
__attribute__((noinline)) void burst(simd::V* chains) {
  const simd::V a = simd::set1(0.999999f), c = simd::set1(1e-6f);
  simd::V x0 = chains[0], x1 = chains[1], x2 = chains[2], x3 = chains[3], x4 = chains[4], x5 = chains[5],
          x6 = chains[6], x7 = chains[7], x8 = chains[8], x9 = chains[9];
  for (i64 i = 0; i < kInner; i++) {
    x0 = simd::fma(x0, a, c);
    x1 = simd::fma(x1, a, c);
    x2 = simd::fma(x2, a, c);
    x3 = simd::fma(x3, a, c);
    x4 = simd::fma(x4, a, c);
    x5 = simd::fma(x5, a, c);
    x6 = simd::fma(x6, a, c);
    x7 = simd::fma(x7, a, c);
    x8 = simd::fma(x8, a, c);
    x9 = simd::fma(x9, a, c);
  }
  chains[0] = x0, chains[1] = x1, chains[2] = x2, chains[3] = x3, chains[4] = x4;
  chains[5] = x5, chains[6] = x6, chains[7] = x7, chains[8] = x8, chains[9] = x9;
}

}  // namespace

// ~seconds of FMA chains on the calling thread → flops done (2 per lane per FMA)
double fma_flops(double seconds) {
  using Clock = std::chrono::steady_clock;
  // Multipliers just below 1 and a small addend keep every chain finite and normal (→ 1).
  alignas(64) simd::V chains[kChains];
  for (int i = 0; i < kChains; i++) chains[i] = simd::set1(1.0f + 0.1f * i);
  const auto start = Clock::now();
  i64 rounds = 0;
  do {
    burst(chains);
    rounds++;
  } while (std::chrono::duration<double>(Clock::now() - start).count() < seconds);
  alignas(64) float lanes[simd::W];
  float s = 0;
  for (int i = 0; i < kChains; i++) {
    simd::store(lanes, chains[i]);
    for (float x : lanes) s += x;
  }
  g_sink.store(g_sink.load(std::memory_order_relaxed) + s, std::memory_order_relaxed);
  return static_cast<double>(rounds) * kInner * kChains * simd::W * 2.0;
}

}  // namespace aligner::ALIGNER_ISA_NS
