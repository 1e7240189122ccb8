// Batched matmul, threaded by us around single-threaded GEMM calls.
//
// Work is split into (batch item, block of rows or columns) tasks, each one GEMM call over the
// full K, so every output element is produced by exactly one call that sees its whole row of A
// and column of B: the split cannot change the result. We split the batch when it spreads evenly
// over the threads, otherwise also the larger of M and N into as many blocks as threads.
#include <cstring>

#include "blas.h"
#include "kernels.h"
#include "pool.h"

namespace aligner {

namespace {
constexpr i64 kAlign = 16;                  // block edges on micro-tile boundaries
constexpr i64 kSerialFlops = 64 * 64 * 64;  // below this, threading costs more than it saves
}  // namespace

void matmul(const float* A, const float* B, float* C, i64 batch, i64 M, i64 N, i64 K, bool ta, bool tb, i64 sA,
            i64 sB) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0) {
    std::memset(C, 0, sizeof(float) * batch * M * N);
    return;
  }
  const blas::GemmFn gemm = blas::gemm();
  const i64 lda = ta ? M : K, ldb = tb ? K : N;
  const i64 threads = current_threads();
  const bool split_m = M >= N;
  const i64 dim = split_m ? M : N;
  i64 blocks = 1;
  if (threads > 1 && batch * M * N * K >= kSerialFlops && batch % threads != 0 && batch < 4 * threads)
    blocks = std::min(threads, ceil_div(dim, kAlign));
  const i64 bsize = ceil_div(ceil_div(dim, blocks), kAlign) * kAlign;
  blocks = ceil_div(dim, bsize);
  const i64 grain = batch * M * N * K >= kSerialFlops ? 1 : batch * blocks;
  parallel_for(batch * blocks, grain, [&](i64 b, i64 e) {
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

}  // namespace aligner
