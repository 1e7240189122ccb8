// The kernels, on raw contiguous row-major memory. Each runs on the calling thread and spreads its
// work with parallel_for. Shapes and meanings follow kernels/backend.ts (and kernels/reference/,
// the spec); argument validation (dtypes, sizes, live handles) happens in bind_kernels.cc before a
// kernel is queued. Errors a kernel can only find while running (an out-of-range id) are thrown
// as KernelError and recorded by the stream.
#pragma once

#include <vector>

#include "common.h"

namespace aligner {

// Types the kernels share across ISA builds.
enum class Unary { neg, exp, log, sqrt, rsqrt, tanh, sigmoid, relu, silu, gelu, abs, square };
enum class Binary { add, sub, mul, div, maximum, minimum };
struct AttnDims {
  i64 B, Hq, Hkv, T, S, D;
  float scale;
  bool causal;
  i64 window;  // > 0: query at position pos also skips keys s ≤ pos − window (sliding window); 0 = none
};
constexpr i64 kSkinnyRows = 32;


// ---- probe.cc ----
// Peak FMA throughput of `threads` threads over about `millis` ms, in GFLOP/s.
double fma_peak_gflops(int threads, double millis);
// The widest vector ISA this CPU has: "avx512" (AVX-512F), "avx2" (AVX2 + FMA) or "baseline".
const char* widest_isa();

}  // namespace aligner

#if defined(ALIGNER_ISA_BASELINE) || defined(ALIGNER_ISA_AVX2) || defined(ALIGNER_ISA_AVX512)
#include "isa.h"
#define KERNEL_DECL_NS ALIGNER_ISA_NS
#include "kernel_decls.h"
#undef KERNEL_DECL_NS
#endif
