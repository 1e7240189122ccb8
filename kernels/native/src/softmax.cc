// Row-wise softmax family over the last axis: softmax, logSoftmax, their backward passes, and the
// fused log-softmax + gather over a vocabulary (tokenLogprobs). Rows are independent, so they are
// spread across threads; within a row every sum uses the fixed-order SIMD helpers. Statistics are
// float with max subtraction; lse = m + log Σ exp(x − m), −∞ for an all −∞ row, as the reference.
#include <cmath>
#include <string>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace aligner::ALIGNER_ISA_NS {

namespace {

i64 row_grain(i64 n) {
  return std::max<i64>(1, 16384 / std::max<i64>(n, 1));
}

// Σ exp(x[j] − m) in fixed order; stores the terms into `terms` when it is not null.
float exp_sum(const float* x, i64 n, float m, float* terms) {
  constexpr i64 W = simd::W;
  const simd::V mv = simd::set1(m);
  simd::V a0 = simd::zero(), a1 = a0;
  i64 j = 0;
  for (; j + 2 * W <= n; j += 2 * W) {
    simd::V e0 = simd::exp(simd::load(x + j) - mv);
    simd::V e1 = simd::exp(simd::load(x + j + W) - mv);
    if (terms) {
      simd::store(terms + j, e0);
      simd::store(terms + j + W, e1);
    }
    a0 = a0 + e0;
    a1 = a1 + e1;
  }
  for (; j < n; j += W) {
    i64 r = std::min<i64>(W, n - j);
    simd::V e = simd::keep(simd::first(r), simd::exp(simd::load(x + j, r) - mv));  // masked-off lanes add 0
    if (terms) simd::store(terms + j, r, e);
    a0 = a0 + e;
  }
  return simd::hsum(a0 + a1);
}

float row_lse(const float* x, i64 n) {
  float m = simd::max_nan(x, n);
  if (m == -INFINITY) return -INFINITY;
  return m + std::log(exp_sum(x, n, m, nullptr));
}

// The first target that is neither ignoreIndex nor in [0, V) is an IndexError (reference wording).
void check_targets(const char* kernel, const int32_t* targets, i64 rows, i64 V, double ignore_index) {
  for (i64 r = 0; r < rows; r++) {
    int32_t t = targets[r];
    if (static_cast<double>(t) == ignore_index) continue;
    if (t < 0 || t >= V)
      fail("IndexError", std::string(kernel) + ": target " + std::to_string(t) + " out of range [0, " +
                             std::to_string(V) + ") at row " + std::to_string(r));
  }
}

}  // namespace

// x [rows, n] → out [rows, n]
void softmax(const float* x, float* out, i64 rows, i64 n) {
  parallel_for(rows, row_grain(n), [&](i64 b, i64 e) {
    for (i64 r = b; r < e; r++) {
      const float* xr = x + r * n;
      float* o = out + r * n;
      float m = simd::max_nan(xr, n);
      float inv = 1.0f / exp_sum(xr, n, m, o);  // an all −∞ row gives NaN, as the reference
      for (i64 j = 0; j < n; j++) o[j] *= inv;
    }
  });
}

// x [rows, n] → out [rows, n]
void log_softmax(const float* x, float* out, i64 rows, i64 n) {
  parallel_for(rows, row_grain(n), [&](i64 b, i64 e) {
    for (i64 r = b; r < e; r++) {
      const float* xr = x + r * n;
      float lse = row_lse(xr, n);
      float* o = out + r * n;
      for (i64 j = 0; j < n; j++) o[j] = xr[j] - lse;
    }
  });
}

// y, g [rows, n] → gx [rows, n]
void softmax_backward(const float* y, const float* g, float* gx, i64 rows, i64 n) {
  parallel_for(rows, row_grain(n), [&](i64 b, i64 e) {
    for (i64 r = b; r < e; r++) {
      const float *yr = y + r * n, *gr = g + r * n;
      float dot = simd::dot(gr, yr, n);
      float* o = gx + r * n;
      for (i64 j = 0; j < n; j++) o[j] = yr[j] * (gr[j] - dot);
    }
  });
}

// y, g [rows, n] → gx [rows, n]
void log_softmax_backward(const float* y, const float* g, float* gx, i64 rows, i64 n) {
  parallel_for(rows, row_grain(n), [&](i64 b, i64 e) {
    for (i64 r = b; r < e; r++) {
      const float *yr = y + r * n, *gr = g + r * n;
      const simd::V sum = simd::set1(simd::sum(gr, n));
      float* o = gx + r * n;
      for (i64 j = 0; j < n; j += simd::W) {
        i64 k = std::min<i64>(simd::W, n - j);
        simd::store(o + j, k, simd::load(gr + j, k) - simd::exp(simd::load(yr + j, k)) * sum);
      }
    }
  });
}

// logits [rows, V], targets [rows] → out [rows], lse [rows]
void token_logprobs(const float* logits, const int32_t* targets, float* out, float* lse, i64 rows, i64 V,
                    double ignore_index) {
  check_targets("tokenLogprobs", targets, rows, V, ignore_index);
  parallel_for(rows, row_grain(V), [&](i64 b, i64 e) {
    for (i64 r = b; r < e; r++) {
      const float* xr = logits + r * V;
      float z = row_lse(xr, V);
      lse[r] = z;
      int32_t t = targets[r];
      out[r] = static_cast<double>(t) == ignore_index ? 0.0f : xr[t] - z;
    }
  });
}

// logits [rows, V], targets, lse, g [rows] → gx [rows, V]
void token_logprobs_backward(const float* logits, const int32_t* targets, const float* lse, const float* g, float* gx,
                             i64 rows, i64 V, double ignore_index) {
  check_targets("tokenLogprobsBackward", targets, rows, V, ignore_index);
  parallel_for(rows, row_grain(V), [&](i64 b, i64 e) {
    for (i64 r = b; r < e; r++) {
      const float* xr = logits + r * V;
      float* o = gx + r * V;
      int32_t t = targets[r];
      if (static_cast<double>(t) == ignore_index) {
        std::fill(o, o + V, 0.0f);
        continue;
      }
      const simd::V l = simd::set1(lse[r]), gr = simd::set1(g[r]);
      for (i64 j = 0; j < V; j += simd::W) {
        i64 k = std::min<i64>(simd::W, V - j);
        simd::V p = simd::exp(simd::load(xr + j, k) - l);
        simd::store(o + j, k, gr * (simd::zero() - p));
      }
      o[t] = g[r] * (1.0f - simd::exp1(xr[t] - lse[r]));
    }
  });
}

}  // namespace aligner::ALIGNER_ISA_NS
