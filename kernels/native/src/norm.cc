// RMSNorm and LayerNorm, forward and backward. Rows are independent; the weight/bias gradients
// (sums over rows) use fixed blocks of kRowBlock rows: each block writes its own partial row,
// and the partials are added in block order, so gw/gb do not depend on the thread count.
#include <cmath>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace aligner::ALIGNER_ISA_NS {

namespace {

constexpr i64 kRowBlock = 32;

using simd::V;
constexpr i64 W = simd::W;

// Σ_j f(j, k) in a fixed order, where f returns lanes j..j+k−1 (k ≤ W) as a vector; lanes past k
// are zeroed here.
template <class F>
float vsum(i64 n, F f) {
  V a0 = simd::zero(), a1 = a0;
  i64 j = 0;
  for (; j + 2 * W <= n; j += 2 * W) {
    a0 = a0 + f(j, W);
    a1 = a1 + f(j + W, W);
  }
  for (; j < n; j += W) {
    i64 k = std::min<i64>(W, n - j);
    a0 = a0 + simd::keep(simd::first(k), f(j, k));
  }
  return simd::hsum(a0 + a1);
}

float inv_std(double mean_square, double eps) {
  return static_cast<float>(1.0 / std::sqrt(mean_square + eps));
}

// Runs row_fn(r, partials of its block) over row blocks, then sums the nparts partial vectors of
// length n per block into outs[p] in block order.
template <class RowFn>
void blocked_rows(i64 rows, i64 n, int nparts, float* const* outs, RowFn row_fn) {
  const i64 nblocks = ceil_div(rows, kRowBlock);
  std::vector<float> partial(static_cast<size_t>(nblocks * nparts * n), 0.0f);
  parallel_for(nblocks, 1, [&](i64 b, i64 e) {
    for (i64 blk = b; blk < e; blk++) {
      float* part = &partial[blk * nparts * n];
      for (i64 r = blk * kRowBlock; r < std::min(rows, (blk + 1) * kRowBlock); r++) row_fn(r, part);
    }
  });
  parallel_for(n, 1024, [&](i64 b, i64 e) {
    for (int p = 0; p < nparts; p++) {
      float* out = outs[p];
      for (i64 j = b; j < e; j++) out[j] = 0.0f;
      for (i64 blk = 0; blk < nblocks; blk++) {
        const float* part = &partial[(blk * nparts + p) * n];
        for (i64 j = b; j < e; j++) out[j] += part[j];
      }
    }
  });
}

}  // namespace

// x [rows, n], w [n] → out [rows, n], rstd [rows]
void rms_norm(const float* x, const float* w, float* out, float* rstd, i64 rows, i64 n, double eps) {
  parallel_for(rows, std::max<i64>(1, 8192 / std::max<i64>(n, 1)), [&](i64 b, i64 e) {
    for (i64 r = b; r < e; r++) {
      const float* xr = x + r * n;
      float inv = inv_std(static_cast<double>(simd::dot(xr, xr, n)) / n, eps);
      rstd[r] = inv;
      float* o = out + r * n;
      for (i64 j = 0; j < n; j++) o[j] = xr[j] * inv * w[j];
    }
  });
}

// x, g [rows, n], w [n], rstd [rows] → gx [rows, n], gw [n]
void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* g, float* gx, float* gw,
                       i64 rows, i64 n) {
  float* outs[1] = {gw};
  blocked_rows(rows, n, 1, outs, [&](i64 r, float* part) {
    const float *xr = x + r * n, *gr = g + r * n;
    const float inv = rstd[r];
    const V vinv = simd::set1(inv);
    // Σ_j ĝ_j x̂_j with ĝ = g·w, x̂ = x·rstd
    float dot = vsum(n, [&](i64 j, i64 k) {
      return (simd::load_upto(gr + j, k) * simd::load_upto(w + j, k)) * (simd::load_upto(xr + j, k) * vinv);
    });
    const float mean_dot = dot / static_cast<float>(n);
    float* o = gx + r * n;
    for (i64 j = 0; j < n; j++) {
      float xhat = xr[j] * inv;
      o[j] = inv * (gr[j] * w[j] - xhat * mean_dot);
      part[j] += gr[j] * xhat;
    }
  });
}

// x [rows, n], w, b [n] → out [rows, n], mean, rstd [rows]
void layer_norm(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd, i64 rows, i64 n,
                double eps) {
  parallel_for(rows, std::max<i64>(1, 8192 / std::max<i64>(n, 1)), [&](i64 rb, i64 re) {
    for (i64 r = rb; r < re; r++) {
      const float* xr = x + r * n;
      const float mu = simd::sum(xr, n) / static_cast<float>(n);
      const V vmu = simd::set1(mu);
      // Two passes (mean, then squared deviations): no cancellation for large offsets.
      float ss = vsum(n, [&](i64 j, i64 k) {
        V d = simd::load_upto(xr + j, k) - vmu;
        return d * d;
      });
      const float inv = inv_std(static_cast<double>(ss) / n, eps);
      mean[r] = mu;
      rstd[r] = inv;
      float* o = out + r * n;
      for (i64 j = 0; j < n; j++) o[j] = (xr[j] - mu) * inv * w[j] + b[j];
    }
  });
}

// x, g [rows, n], w [n], mean, rstd [rows] → gx [rows, n], gw, gb [n]
void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* g,
                         float* gx, float* gw, float* gb, i64 rows, i64 n) {
  float* outs[2] = {gw, gb};
  blocked_rows(rows, n, 2, outs, [&](i64 r, float* part) {
    const float *xr = x + r * n, *gr = g + r * n;
    const float mu = mean[r], inv = rstd[r];
    const V vmu = simd::set1(mu), vinv = simd::set1(inv);
    float sum_g = vsum(n, [&](i64 j, i64 k) { return simd::load_upto(gr + j, k) * simd::load_upto(w + j, k); });
    float sum_gx = vsum(n, [&](i64 j, i64 k) {
      V xhat = (simd::load_upto(xr + j, k) - vmu) * vinv;
      return (simd::load_upto(gr + j, k) * simd::load_upto(w + j, k)) * xhat;
    });
    const float nf = static_cast<float>(n);
    const float mg = sum_g / nf, mgx = sum_gx / nf;
    float* o = gx + r * n;
    float* pw = part;
    float* pb = part + n;
    for (i64 j = 0; j < n; j++) {
      float xhat = (xr[j] - mu) * inv;
      o[j] = inv * (gr[j] * w[j] - mg - xhat * mgx);
      pw[j] += gr[j] * xhat;
      pb[j] += gr[j];
    }
  });
}

}  // namespace aligner::ALIGNER_ISA_NS
