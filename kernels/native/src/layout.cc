// Data movement: permute, copyBlock, and the embedding gather / scatter-add.
#include <cstring>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "transpose.h"

namespace aligner::ALIGNER_ISA_NS {

namespace {

constexpr int kMaxRank = 8;
constexpr i64 kTile = 32;  // transpose tile edge: a 32×32 tile of reads stays in L1

struct PermLayout {
  int rank = 0;
  i64 size[kMaxRank];     // output axis sizes
  i64 xstride[kMaxRank];  // input stride of each output axis
};

// Drops size-1 axes and merges output axes that are also adjacent in the input, so e.g.
// [B, T, H, D] → [B, H, T, D] becomes a 4-axis walk with a contiguous inner run of D.
PermLayout simplify(int rank, const i64* shape, const int* perm) {
  i64 in_stride[kMaxRank];
  i64 s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    in_stride[d] = s;
    s *= shape[d];
  }
  PermLayout l;
  for (int d = 0; d < rank; d++) {
    i64 n = shape[perm[d]], st = in_stride[perm[d]];
    if (n == 1) continue;
    if (l.rank > 0 && l.xstride[l.rank - 1] == st * n) {
      l.size[l.rank - 1] *= n;
      l.xstride[l.rank - 1] = st;
      continue;
    }
    l.size[l.rank] = n;
    l.xstride[l.rank] = st;
    l.rank++;
  }
  if (l.rank == 0) {
    l.rank = 1;
    l.size[0] = 1;
    l.xstride[0] = 1;
  }
  return l;
}

// out[i·os + j] = src[i + j·xs] for i < ni, j < nj (one tile of a transpose).
template <class T>
void transpose_tile(const T* src, i64 xs, T* out, i64 os, i64 ni, i64 nj) {
  i64 i = 0;
  if constexpr (sizeof(T) == 4) {
    for (; i + 8 <= ni; i += 8) {
      i64 j = 0;
      for (; j + 8 <= nj; j += 8) simd::transpose8x8(src + i + j * xs, xs, out + i * os + j, os);
      for (; j < nj; j++)
        for (i64 r = i; r < i + 8; r++) out[r * os + j] = src[r + j * xs];
    }
  }
  for (; i < ni; i++)
    for (i64 j = 0; j < nj; j++) out[i * os + j] = src[i + j * xs];
}

template <class T>
void permute_t(const T* x, T* out, const PermLayout& l) {
  const int last = l.rank - 1;
  i64 ostride[kMaxRank];
  i64 total = 1;
  for (int d = last; d >= 0; d--) {
    ostride[d] = total;
    total *= l.size[d];
  }
  if (l.xstride[last] == 1) {
    // Contiguous runs of size[last]: one memcpy per run.
    const i64 run = l.size[last], runs = total / run;
    parallel_for(runs, std::max<i64>(1, 16384 / run), [&](i64 b, i64 e) {
      for (i64 r = b; r < e; r++) {
        i64 rest = r, src = 0;
        for (int d = last - 1; d >= 0; d--) {
          src += (rest % l.size[d]) * l.xstride[d];
          rest /= l.size[d];
        }
        std::memcpy(out + r * run, x + src, sizeof(T) * run);
      }
    });
    return;
  }
  // The input's unit-stride axis `dd` is not last: tiled 2-D transposes of (dd, last) for every
  // index of the other axes.
  int dd = 0;
  for (int d = 0; d < last; d++)
    if (l.xstride[d] == 1) dd = d;
  i64 others = total / (l.size[dd] * l.size[last]);
  i64 row_tiles = ceil_div(l.size[dd], kTile);
  const i64 xs_last = l.xstride[last], os_dd = ostride[dd];
  parallel_for(others * row_tiles, 1, [&](i64 b, i64 e) {
    for (i64 task = b; task < e; task++) {
      i64 rest = task / row_tiles, it = task % row_tiles;
      i64 obase = 0, xbase = 0;
      for (int d = last - 1; d >= 0; d--) {
        if (d == dd) continue;
        i64 idx = rest % l.size[d];
        rest /= l.size[d];
        obase += idx * ostride[d];
        xbase += idx * l.xstride[d];
      }
      i64 i0 = it * kTile, ni = std::min(l.size[dd], i0 + kTile) - i0;
      for (i64 j0 = 0; j0 < l.size[last]; j0 += kTile) {
        i64 nj = std::min(l.size[last], j0 + kTile) - j0;
        transpose_tile(x + xbase + i0 + j0 * xs_last, xs_last, out + obase + i0 * os_dd + j0, os_dd, ni, nj);
      }
    }
  });
}

void check_ids(const char* kernel, const int32_t* ids, i64 n, i64 V) {
  for (i64 t = 0; t < n; t++) {
    if (ids[t] < 0 || ids[t] >= V)
      fail("IndexError", std::string(kernel) + ": id " + std::to_string(ids[t]) + " out of range [0, " +
                             std::to_string(V) + ") at position " + std::to_string(t));
  }
}

}  // namespace

// x [shape] → out [shape[perm[0]], …]
void permute(const void* x, void* out, size_t esize, int rank, const i64* shape, const int* perm) {
  for (int d = 0; d < rank; d++)
    if (shape[d] == 0) return;
  PermLayout l = simplify(rank, shape, perm);
  if (esize == 2)
    permute_t(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(out), l);
  else
    permute_t(static_cast<const uint32_t*>(x), static_cast<uint32_t*>(out), l);
}

// src [outer, srcAxis, inner] → dst [outer, dstAxis, inner], rows [off, off + len)
void copy_block(const void* src, void* dst, size_t esize, i64 outer, i64 len, i64 inner, i64 src_axis, i64 src_off,
                i64 dst_axis, i64 dst_off) {
  const i64 run = len * inner * static_cast<i64>(esize);  // bytes per outer index, contiguous both sides
  if (run == 0 || outer == 0) return;
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  if (outer == 1) {
    copy_bytes(s + src_off * inner * esize, d + dst_off * inner * esize, run);
    return;
  }
  parallel_for(outer, std::max<i64>(1, 65536 / run), [&](i64 b, i64 e) {
    for (i64 o = b; o < e; o++)
      std::memcpy(d + (o * dst_axis + dst_off) * inner * esize, s + (o * src_axis + src_off) * inner * esize, run);
  });
}

// weight [V, C], ids [n] → out [n, C]
void embedding(const float* weight, const int32_t* ids, float* out, i64 n, i64 C, i64 V) {
  check_ids("embedding", ids, n, V);
  parallel_for(n, std::max<i64>(1, 16384 / std::max<i64>(C, 1)), [&](i64 b, i64 e) {
    for (i64 t = b; t < e; t++) std::memcpy(out + t * C, weight + static_cast<i64>(ids[t]) * C, sizeof(float) * C);
  });
}

// g [n, C], ids [n] → gw [V, C]
void embedding_backward(const float* g, const int32_t* ids, float* gw, i64 n, i64 C, i64 V) {
  check_ids("embeddingBackward", ids, n, V);
  parallel_for(V * C, 64 * 1024, [&](i64 b, i64 e) { std::memset(gw + b, 0, sizeof(float) * (e - b)); });
  // Column blocks are independent and each walks t in increasing order: the same sums in the
  // same order as the reference, whatever the thread count.
  constexpr i64 kCols = 64;
  parallel_for(ceil_div(C, kCols), 1, [&](i64 b, i64 e) {
    for (i64 blk = b; blk < e; blk++) {
      i64 c0 = blk * kCols, c1 = std::min(C, c0 + kCols);
      for (i64 t = 0; t < n; t++) {
        float* dst = gw + static_cast<i64>(ids[t]) * C;
        const float* src = g + t * C;
        for (i64 c = c0; c < c1; c++) dst[c] += src[c];
      }
    }
  });
}

}  // namespace aligner::ALIGNER_ISA_NS
