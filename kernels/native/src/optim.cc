// Optimizer kernels: AdamW and global gradient-norm clipping.
#include <cmath>
#include <vector>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace aligner::ALIGNER_ISA_NS {

// param, grad, m, v [n], updated in place
void adamw(float* p, const float* g, float* m, float* v, i64 n, double lr, double beta1, double beta2, double eps,
           double wd, double step) {
  // In float, W lanes at a time, in the reference's order of operations (PyTorch's), with no fused
  // multiply-adds: lane-wise, so every ISA build and thread count gives the same bits. Within a
  // few ulp of the reference, which computes in double and rounds at each store (the double
  // division and square root made this kernel compute-bound: 5% of a training step).
  using simd::V;
  const double bc1 = 1.0 - std::pow(beta1, step);
  const V bc2_sqrt = simd::set1(static_cast<float>(std::sqrt(1.0 - std::pow(beta2, step))));
  const V step_size = simd::set1(static_cast<float>(lr / bc1));
  const V decay = simd::set1(static_cast<float>(1.0 - lr * wd));
  const V b1 = simd::set1(static_cast<float>(beta1)), one_b1 = simd::set1(static_cast<float>(1.0 - beta1));
  const V b2 = simd::set1(static_cast<float>(beta2)), one_b2 = simd::set1(static_cast<float>(1.0 - beta2));
  const V e = simd::set1(static_cast<float>(eps));
  parallel_for(n, 8192, [&](i64 b, i64 end) {
    for (i64 i = b; i < end; i += simd::W) {
      const i64 k = std::min<i64>(simd::W, end - i);
      const V gi = simd::load_upto(g + i, k);
      const V pd = simd::load_upto(p + i, k) * decay;
      const V mi = b1 * simd::load_upto(m + i, k) + one_b1 * gi;
      const V vi = b2 * simd::load_upto(v + i, k) + one_b2 * gi * gi;
      simd::store_upto(m + i, k, mi);
      simd::store_upto(v + i, k, vi);
      simd::store_upto(p + i, k, pd - step_size * (mi / (simd::sqrt(vi) / bc2_sqrt + e)));
    }
  });
}

// grads[t] [sizes[t]], scaled in place → out [1] = the norm before clipping
void clip_grad_norm(const std::vector<float*>& grads, const std::vector<i64>& sizes, double max_norm, float* out) {
  // Fixed chunks per tensor, each summed in double into its own slot, slots added in order.
  constexpr i64 kChunk = 64 * 1024;
  std::vector<i64> first_chunk(grads.size() + 1, 0);
  for (size_t t = 0; t < grads.size(); t++)
    first_chunk[t + 1] = first_chunk[t] + std::max<i64>(1, ceil_div(sizes[t], kChunk));
  const i64 nchunks = first_chunk.back();
  std::vector<double> partial(nchunks, 0.0);
  parallel_for(nchunks, 1, [&](i64 b, i64 e) {
    size_t t = 0;
    for (i64 c = b; c < e; c++) {
      while (first_chunk[t + 1] <= c) t++;
      i64 lo = (c - first_chunk[t]) * kChunk, hi = std::min(sizes[t], lo + kChunk);
      partial[c] = hi > lo ? simd::sum_double<true>(grads[t] + lo, hi - lo) : 0.0;
    }
  });
  double ss = 0;
  for (double s : partial) ss += s;
  const double norm = std::sqrt(ss);
  out[0] = static_cast<float>(norm);
  if (!(norm > max_norm)) return;
  const double coef = max_norm / (norm + 1e-6);
  for (size_t t = 0; t < grads.size(); t++) {
    float* gt = grads[t];
    parallel_for(sizes[t], 16 * 1024, [&](i64 b, i64 e) {
      for (i64 i = b; i < e; i++) gt[i] = static_cast<float>(static_cast<double>(gt[i]) * coef);
    });
  }
}

}  // namespace aligner::ALIGNER_ISA_NS
