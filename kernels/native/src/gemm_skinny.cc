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

// Rows of A per register tile: 4 where there are 32 vector registers (AVX-512: 16 accumulators,
// 4 weight vectors, 1 row vector), 2 with 16 (8 accumulators). More rows per tile means fewer
// passes over each weight block and fewer loads per FMA (8 per 16 instead of 6 per 8).
constexpr int kTileRows = W == 16 ? 4 : 2;

// Weight rows n0 … n0+3 against `rows` ≤ R rows of A (rows past it repeat the last one): 4·R dot
// products over k, W lanes at a time, each one chain of FMAs in increasing k, a fixed horizontal
// sum and a scalar tail, so a result does not depend on which tile computed it.
// Kept out of line: inlined into the threaded lambda, GCC runs out of registers and reloads the
// pointers from the stack inside the loop (measured: 3× slower).
template <int R>
__attribute__((noinline)) void dot4xR(const float* __restrict a, i64 lda, i64 rows, const float* __restrict b0, i64 ldb,
                                      i64 K, float* __restrict out /* [R][4] */) {
  const float* ar[R];
  for (int r = 0; r < R; r++) ar[r] = a + std::min<i64>(r, rows - 1) * lda;
  const float* br[4] = {b0, b0 + ldb, b0 + 2 * ldb, b0 + 3 * ldb};
  V s[R][4];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < 4; j++) s[r][j] = simd::zero();
  i64 k = 0;
  for (; k + W <= K; k += W) {
    V w[4];
    for (int j = 0; j < 4; j++) w[j] = simd::load(br[j] + k);
    // The next 4 weight rows, a step ahead: they come from L3 or memory (a decoding step reads
    // every weight once), and the hardware prefetcher does not follow 4 rows at once far enough.
    for (int j = 0; j < 4; j++) __builtin_prefetch(br[j] + 4 * ldb + k);
    for (int r = 0; r < R; r++) {
      const V x = simd::load(ar[r] + k);
      for (int j = 0; j < 4; j++) s[r][j] = simd::fma(x, w[j], s[r][j]);
    }
  }
  for (int r = 0; r < R; r++) {
    for (int j = 0; j < 4; j++) {
      float acc = hsum(s[r][j]);
      for (i64 kk = k; kk < K; kk++) acc += ar[r][kk] * br[j][kk];
      out[r * 4 + j] = acc;
    }
  }
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
    float out[kTileRows * 4];
    for (i64 t = tb; t < te; t++) {
      const i64 n0 = t * kRowsPerTask, n1 = std::min(N, n0 + kRowsPerTask);
      i64 n = n0;
      for (; n + 4 <= n1; n += 4) {
        for (i64 m = 0; m < M; m += kTileRows) {
          const i64 rows = std::min<i64>(kTileRows, M - m);
          dot4xR<kTileRows>(A + m * lda, lda, rows, B + n * ldb, ldb, K, out);
          for (i64 r = 0; r < rows; r++)
            for (int j = 0; j < 4; j++) C[(m + r) * ldc + n + j] = out[r * 4 + j];
        }
      }
      for (; n < n1; n++)
        for (i64 m = 0; m < M; m++) C[m * ldc + n] = dot1(A + m * lda, B + n * ldb, K);
    }
  });
}

}  // namespace aligner::ALIGNER_ISA_NS
