// Batched matmul, threaded by us around single-threaded GEMM calls.
//
// Work is cut into (batch item, block of rows or columns) tasks, each one GEMM call over the full
// K, spread over the pool. The cut depends only on the sizes, never on the thread count: OpenBLAS
// computes an element differently depending on where its row falls in the call's register
// tiling (measured: splitting 1024³ at row 512 changes the bits of rows 504–530), so a
// thread-dependent split would make results depend on the thread count. With a size-only split
// every thread count makes the same calls. Blocks are many enough (up to kTasks per matmul) to
// balance a few threads, and at least kMinBlock rows/columns: OpenBLAS repacks the shared operand
// per call, which measured within noise of one big call for blocks of 64 rows and more.
#include <algorithm>
#include <climits>
#include <cstring>

#include "blas.h"
#include "kernels.h"
#include "pool.h"

namespace aligner::ALIGNER_ISA_NS {

namespace {
constexpr i64 kTasks = 8;                   // target tasks per matmul
constexpr i64 kMinBlock = 128;              // rows or columns per call, at least
constexpr i64 kMaxMinBlock = 512;           // … and at least K/4 up to this
constexpr i64 kAlign = 16;                  // block edges on micro-tile multiples
constexpr i64 kSerialFlops = 64 * 64 * 64;  // below this a matmul is one task per batch item
}  // namespace

// A[b] [M, K] ([K, M] if ta), B[b] [K, N] ([N, K] if tb) → C [batch, M, N]
void matmul(const float* A, const float* B, float* C, i64 batch, i64 M, i64 N, i64 K, bool ta, bool tb, i64 sA,
            i64 sB) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0) {
    std::memset(C, 0, sizeof(float) * batch * M * N);
    return;
  }
  // Few rows against a transposed weight (decoding): stream the weight once instead of packing it.
  if (batch == 1 && !ta && tb && M <= kSkinnyRows && K >= 8) {
    gemm_skinny_nt(M, N, K, A, K, B, K, C, N);
    return;
  }
  const i64 lda = ta ? M : K, ldb = tb ? K : N;
  const blas::GemmFn loaded = blas::gemm();
  const bool fits = std::max({M, N, K, lda, ldb}) <= INT_MAX;  // the BLAS interface is 32-bit
  const blas::GemmFn gemm = loaded && fits ? loaded : gemm_fallback;
  const bool split_m = M >= N;
  const i64 dim = split_m ? M : N;
  const bool small = M * N * K < kSerialFlops;
  i64 blocks = 1;
  // With a long K a thin block costs more than it balances: MKL measured ~100 GFLOP/s on one core
  // for 128×1024×1024 against ~155 for 256 rows (OpenBLAS loses less), so blocks grow with K.
  // That never leaves fewer than 4 blocks where 128-row blocks would give more (256×256×1024 ran
  // on one thread at 134 GFLOP/s).
  const i64 min_block = std::min(std::clamp<i64>(K / 4, kMinBlock, kMaxMinBlock), std::max<i64>(kMinBlock, dim / 4));
  if (!small && batch < kTasks) blocks = std::max<i64>(1, std::min(ceil_div(kTasks, batch), dim / min_block));
  // A power of two, so 2, 4 or 8 threads get equal shares (3 blocks on 2 threads leave one idle a third of the time).
  while (blocks & (blocks - 1)) blocks &= blocks - 1;
  const i64 bsize = ceil_div(ceil_div(dim, blocks), kAlign) * kAlign;
  blocks = ceil_div(dim, bsize);
  parallel_for(batch * blocks, small ? std::max<i64>(1, kSerialFlops / (M * N * K)) : 1, [&](i64 b, i64 e) {
    for (i64 t = b; t < e; t++) {
      const i64 p = t / blocks, blk = t % blocks;
      const float* a = A + p * sA;
      const float* bm = B + p * sB;
      float* c = C + p * M * N;
      const i64 lo = blk * bsize, len = std::min(dim, lo + bsize) - lo;
      if (split_m) {
        // Rows lo.. of op(A): row offset lo·lda, or column offset lo when A is stored transposed.
        gemm(ta, tb, len, N, K, a + (ta ? lo : lo * lda), lda, bm, ldb, c + lo * N, N);
      } else {
        // Columns lo.. of op(B): column offset lo, or row offset lo·ldb when B is stored transposed.
        gemm(ta, tb, M, len, K, a, lda, bm + (tb ? lo * ldb : lo), ldb, c + lo, N);
      }
    }
  });
}

}  // namespace aligner::ALIGNER_ISA_NS
