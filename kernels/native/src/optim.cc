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
  // The reference computes in double and stores each of p, m, v into f32 storage between steps;
  // doing the same (double math, rounding at the same points) makes the update bit-identical to it.
  const double bc1 = 1.0 - std::pow(beta1, step);
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, step));
  const double step_size = lr / bc1;
  const double decay = 1.0 - lr * wd;
  const double one_b1 = 1.0 - beta1, one_b2 = 1.0 - beta2;
  parallel_for(n, 8192, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; i++) {
      const double gi = g[i];
      const double pd = static_cast<float>(p[i] * decay);
      const double mi = static_cast<float>(beta1 * m[i] + one_b1 * gi);
      const double vi = static_cast<float>(beta2 * v[i] + one_b2 * gi * gi);
      m[i] = static_cast<float>(mi);
      v[i] = static_cast<float>(vi);
      p[i] = static_cast<float>(pd - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps)));
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
