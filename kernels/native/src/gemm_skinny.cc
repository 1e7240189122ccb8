// GEMM for few rows against a transposed weight: C[m, n] = Σ_k A[m, k]·B[n, k], m ≤ kSkinnyRows.
// This is the shape of decoding (a handful of token rows times a [out, in] weight). A BLAS
// packs the whole weight on every call, which for so few rows costs as much as the product
// itself; here each weight row is read once, straight from memory, and dotted with every row of
// A, which stays in L1. Each output is one dot product in increasing k, so results do not depend
// on the thread split.
#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace aligner::ALIGNER_ISA_NS {

namespace {

using simd::V;
constexpr i64 W = simd::W;
using simd::hsum;

// Weight rows n0 … n0+3 against rows m, m+1 of A: eight dot products over k, W lanes at a time.
// Eight independent accumulators hide the FMA latency; 6 loads feed 8 FMAs.
// Kept out of line: inlined into the threaded lambda, GCC runs out of registers and reloads the
// pointers from the stack inside the loop (measured: 3× slower).
__attribute__((noinline)) void dot4x2(const float* __restrict a0, const float* __restrict a1, const float* __restrict b0,
                                      i64 ldb, i64 K, float* __restrict out0, float* __restrict out1) {
  V s00 = simd::zero(), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00, s13 = s00;
  const float *__restrict b1 = b0 + ldb, *__restrict b2 = b1 + ldb, *__restrict b3 = b2 + ldb;
  i64 k = 0;
  for (; k + W <= K; k += W) {
    const V x0 = simd::load(a0 + k), x1 = simd::load(a1 + k);
    const V w0 = simd::load(b0 + k), w1 = simd::load(b1 + k);
    const V w2 = simd::load(b2 + k), w3 = simd::load(b3 + k);
    s00 = simd::fma(x0, w0, s00);
    s01 = simd::fma(x0, w1, s01);
    s02 = simd::fma(x0, w2, s02);
    s03 = simd::fma(x0, w3, s03);
    s10 = simd::fma(x1, w0, s10);
    s11 = simd::fma(x1, w1, s11);
    s12 = simd::fma(x1, w2, s12);
    s13 = simd::fma(x1, w3, s13);
  }
  float r[8] = {hsum(s00), hsum(s01), hsum(s02), hsum(s03), hsum(s10), hsum(s11), hsum(s12), hsum(s13)};
  for (; k < K; k++) {
    for (int j = 0; j < 4; j++) {
      r[j] += a0[k] * b0[j * ldb + k];
      r[4 + j] += a1[k] * b0[j * ldb + k];
    }
  }
  for (int j = 0; j < 4; j++) out0[j] = r[j], out1[j] = r[4 + j];
}

float dot1(const float* a, const float* b, i64 K) {
  V s = simd::zero();
  i64 k = 0;
  for (; k + W <= K; k += W) s = simd::fma(simd::load(a + k), simd::load(b + k), s);
  float r = hsum(s);
  for (; k < K; k++) r += a[k] * b[k];
  return r;
}

}  // namespace

// A [M, K] (lda), B [N, K] (ldb), C [M, N] (ldc); blocks of weight rows go to the pool.
void gemm_skinny_nt(i64 M, i64 N, i64 K, const float* A, i64 lda, const float* B, i64 ldb, float* C, i64 ldc) {
  constexpr i64 kRowsPerTask = 64;  // weight rows per task: a size-only split
  parallel_for(ceil_div(N, kRowsPerTask), 1, [&](i64 tb, i64 te) {
    float out0[4], out1[4];
    for (i64 t = tb; t < te; t++) {
      const i64 n0 = t * kRowsPerTask, n1 = std::min(N, n0 + kRowsPerTask);
      i64 n = n0;
      for (; n + 4 <= n1; n += 4) {
        // An odd last row of A pairs with itself; the duplicate result is simply written twice.
        for (i64 m = 0; m < M; m += 2) {
          const i64 m1 = std::min(m + 1, M - 1);
          dot4x2(A + m * lda, A + m1 * lda, B + n * ldb, ldb, K, out0, out1);
          for (int j = 0; j < 4; j++) C[m * ldc + n + j] = out0[j], C[m1 * ldc + n + j] = out1[j];
        }
      }
      for (; n < n1; n++)
        for (i64 m = 0; m < M; m++) C[m * ldc + n] = dot1(A + m * lda, B + n * ldb, K);
    }
  });
}

}  // namespace aligner::ALIGNER_ISA_NS
