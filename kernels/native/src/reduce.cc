// Reductions over the middle axis of [outer, n, inner].
//
// Long reductions are cut into chunks whose size depends only on (n, inner), never on the thread
// count; each chunk's partial is written to its own slot and the slots are combined in order, so
// results are bit-identical for any number of threads. Sums accumulate in double (the reference
// sums in JS numbers), and are rounded to f32 once.
#include <cmath>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace aligner::ALIGNER_ISA_NS {

namespace {

constexpr i64 kChunk = 32 * 1024;  // elements per partial
constexpr i64 kColBlock = 512;     // inner columns per task

// Rows of the reduced axis per chunk when inner > 1.
i64 rows_per_chunk(i64 n, i64 inner) {
  return std::max<i64>(1, std::min(n, kChunk / std::max<i64>(inner, 1)));
}

}  // namespace

// x [outer, n, inner] → out [outer, inner]
void reduce_sum(const float* x, float* out, i64 outer, i64 n, i64 inner) {
  if (outer == 0 || inner == 0) return;
  if (inner == 1) {
    const i64 nchunks = std::max<i64>(1, ceil_div(n, kChunk));
    std::vector<double> partial(outer * nchunks);
    parallel_for(outer * nchunks, 1, [&](i64 b, i64 e) {
      for (i64 t = b; t < e; t++) {
        i64 o = t / nchunks, c = t % nchunks;
        i64 lo = c * kChunk, hi = std::min(n, lo + kChunk);
        partial[t] = simd::sum_double<false>(x + o * n + lo, hi - lo);
      }
    });
    parallel_for(outer, 4096, [&](i64 b, i64 e) {
      for (i64 o = b; o < e; o++) {
        double s = 0;
        for (i64 c = 0; c < nchunks; c++) s += partial[o * nchunks + c];
        out[o] = static_cast<float>(s);
      }
    });
    return;
  }
  const i64 rpc = rows_per_chunk(n, inner);
  const i64 nchunks = std::max<i64>(1, ceil_div(n, rpc));
  const i64 nblocks = ceil_div(inner, kColBlock);
  std::vector<double> partial(outer * nchunks * inner);
  parallel_for(outer * nchunks * nblocks, 1, [&](i64 b, i64 e) {
    for (i64 t = b; t < e; t++) {
      i64 blk = t % nblocks, c = (t / nblocks) % nchunks, o = t / (nblocks * nchunks);
      i64 j0 = blk * kColBlock, j1 = std::min(inner, j0 + kColBlock);
      double* acc = &partial[(o * nchunks + c) * inner];
      for (i64 j = j0; j < j1; j++) acc[j] = 0;
      i64 i1 = std::min(n, (c + 1) * rpc);
      for (i64 i = c * rpc; i < i1; i++) {
        const float* row = x + (o * n + i) * inner;
        for (i64 j = j0; j < j1; j++) acc[j] += static_cast<double>(row[j]);
      }
    }
  });
  parallel_for(outer * nblocks, 1, [&](i64 b, i64 e) {
    for (i64 t = b; t < e; t++) {
      i64 o = t / nblocks, blk = t % nblocks;
      i64 j0 = blk * kColBlock, j1 = std::min(inner, j0 + kColBlock);
      for (i64 j = j0; j < j1; j++) {
        double s = 0;
        for (i64 c = 0; c < nchunks; c++) s += partial[(o * nchunks + c) * inner + j];
        out[o * inner + j] = static_cast<float>(s);
      }
    }
  });
}

// x [outer, n, inner] → out [outer, inner]
void reduce_max(const float* x, float* out, i64 outer, i64 n, i64 inner) {
  if (outer == 0 || inner == 0) return;
  if (inner == 1) {
    const i64 nchunks = std::max<i64>(1, ceil_div(n, kChunk));
    std::vector<float> partial(outer * nchunks);
    parallel_for(outer * nchunks, 1, [&](i64 b, i64 e) {
      for (i64 t = b; t < e; t++) {
        i64 o = t / nchunks, c = t % nchunks;
        i64 lo = c * kChunk, hi = std::min(n, lo + kChunk);
        partial[t] = simd::max_nan(x + o * n + lo, hi - lo);
      }
    });
    for (i64 o = 0; o < outer; o++) out[o] = simd::max_nan(&partial[o * nchunks], nchunks);
    return;
  }
  const i64 nblocks = ceil_div(inner, kColBlock);
  parallel_for(outer * nblocks, 1, [&](i64 b, i64 e) {
    for (i64 t = b; t < e; t++) {
      i64 o = t / nblocks, blk = t % nblocks;
      i64 j0 = blk * kColBlock, j1 = std::min(inner, j0 + kColBlock);
      float* m = out + o * inner;
      for (i64 j = j0; j < j1; j++) m[j] = -INFINITY;
      for (i64 i = 0; i < n; i++) {
        const float* row = x + (o * n + i) * inner;
        for (i64 j = j0; j < j1; j++) {
          float v = row[j];
          // Once m[j] is NaN neither test passes again, so NaN sticks.
          m[j] = (v > m[j] || v != v) ? v : m[j];
        }
      }
    }
  });
}

// x [outer, n, inner], y, g [outer, inner] → gx [outer, n, inner]
void reduce_max_backward(const float* x, const float* y, const float* g, float* gx, i64 outer, i64 n, i64 inner) {
  if (outer == 0 || inner == 0) return;
  const i64 nblocks = ceil_div(inner, kColBlock);
  parallel_for(outer * nblocks, 1, [&](i64 b, i64 e) {
    std::vector<char> found(kColBlock);
    for (i64 t = b; t < e; t++) {
      i64 o = t / nblocks, blk = t % nblocks;
      i64 j0 = blk * kColBlock, j1 = std::min(inner, j0 + kColBlock);
      std::fill(found.begin(), found.end(), 0);
      for (i64 i = 0; i < n; i++) {
        const float* row = x + (o * n + i) * inner;
        float* grow = gx + (o * n + i) * inner;
        for (i64 j = j0; j < j1; j++) {
          float target = y[o * inner + j], v = row[j];
          bool hit = !found[j - j0] && (v == target || (target != target && v != v));
          if (hit) found[j - j0] = 1;
          grow[j] = hit ? g[o * inner + j] : 0.0f;
        }
      }
    }
  });
}

}  // namespace aligner::ALIGNER_ISA_NS
