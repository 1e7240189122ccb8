// AVX2 helpers shared by the kernels.
//
// Why hand-written: without -ffast-math the compiler will not vectorise a float reduction (it may
// not reorder the additions) and will not vectorise expf. These helpers fix the order of every
// reduction (four 8-lane accumulators, then a fixed horizontal sum) so a sum depends only on its
// length, never on where a thread's chunk started. Tails go through masked loads into the same
// vector code, so an element gives bit-identical results whether it sits in a body or a tail.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "common.h"

namespace aligner::simd {

// Lanes [0, r) enabled, r in [0, 8].
inline __m256i tail_mask(i64 r) {
  alignas(32) static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + 8 - r));
}
inline __m256 load_tail(const float* p, i64 r) {
  return _mm256_maskload_ps(p, tail_mask(r));
}
inline void store_tail(float* p, i64 r, __m256 v) {
  _mm256_maskstore_ps(p, tail_mask(r), v);
}

// Horizontal sum in a fixed order.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Σ x[i] in float, fixed order.
inline float sum(const float* x, i64 n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  i64 i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
  if (i < n) a0 = _mm256_add_ps(a0, load_tail(x + i, n - i));
  return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

// Σ a[i]·b[i] in float (fused multiply-add), fixed order.
inline float dot(const float* a, const float* b, i64 n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  i64 i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
  if (i < n) a0 = _mm256_fmadd_ps(load_tail(a + i, n - i), load_tail(b + i, n - i), a0);
  return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

// Σ x[i] (or Σ x[i]² when squares) accumulated in double, fixed order: four 4-lane accumulators.
template <bool squares>
inline double sum_double(const float* x, i64 n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  auto add = [](__m256d acc, __m256d v) { return squares ? _mm256_fmadd_pd(v, v, acc) : _mm256_add_pd(acc, v); };
  i64 i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 u = _mm256_loadu_ps(x + i), w = _mm256_loadu_ps(x + i + 8);
    a0 = add(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(u)));
    a1 = add(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(u, 1)));
    a2 = add(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(w)));
    a3 = add(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1)));
  }
  for (; i < n; i += 8) {
    __m256 u = i + 8 <= n ? _mm256_loadu_ps(x + i) : load_tail(x + i, n - i);
    a0 = add(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(u)));
    a1 = add(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(u, 1)));
  }
  __m256d t = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(t), _mm256_extractf128_pd(t, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

// max_i x[i] where any NaN gives NaN; -Infinity for n = 0 (the reference's rowMax).
inline float max_nan(const float* x, i64 n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  __m256 nan = _mm256_setzero_ps();
  i64 i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    m = _mm256_max_ps(m, v);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (i < n) {
    __m256 v =
        _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), load_tail(x + i, n - i), _mm256_castsi256_ps(tail_mask(n - i)));
    m = _mm256_max_ps(m, v);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (_mm256_movemask_ps(nan)) return NAN;
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// exp(x), within ~1 ulp: 2^n · p(r) with r = x − n·ln2 (Cephes expf polynomial). 2^n is applied
// as two factors so that results near the overflow edge stay finite and tiny results underflow
// gradually with a single rounding. ±Inf and NaN behave as expf.
inline __m256 exp(__m256 x) {
  // min/max return their second operand when one is NaN, so NaN passes through the clamp.
  x = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(89.0f), x));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i k = _mm256_cvtps_epi32(n);  // in [-150, 128]
  __m256i k1 = _mm256_srai_epi32(k, 1);
  __m256i k2 = _mm256_sub_epi32(k, k1);
  const __m256i bias = _mm256_set1_epi32(127);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

inline float exp1(float x) {
  return _mm256_cvtss_f32(exp(_mm256_set1_ps(x)));
}

// tanh(x): Cephes tanhf (odd polynomial below 0.625, 1 − 2/(e^{2|x|}+1) above).
inline __m256 tanh(__m256 x) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 ax = _mm256_andnot_ps(sign_bit, x);
  __m256 s = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.33332819422e-1f));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x, x);
  __m256 e = exp(_mm256_add_ps(ax, ax));
  __m256 big =
      _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  big = _mm256_or_ps(big, _mm256_and_ps(sign_bit, x));
  return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

// 1 / (1 + exp(−x)), as the reference writes it.
inline __m256 sigmoid(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

}  // namespace aligner::simd
