// The vector type the kernels are written in, for the ISA this translation unit is built for.
//
// Every kernel source is compiled three times (binding.gyp: kernels_baseline, kernels_avx2,
// kernels_avx512), each time into its own namespace (isa.h), and dispatch.cc picks one build at
// load time. `V` is W float lanes: 16 on AVX-512, 8 on AVX2, and 8 emulated lane by lane on the
// baseline build, which needs nothing beyond x86-64's SSE2. The baseline computes every lane
// operation with the same IEEE rounding as AVX2 (std::fma for the fused multiply-add), so its
// results equal the AVX2 build's bit for bit; AVX-512 sums in 16-lane order, so its reductions
// round differently (each build is still deterministic, and thread counts never change bits).
//
// Why hand-written: without -ffast-math the compiler will not vectorise a float reduction (it may
// not reorder the additions) and will not vectorise expf. These helpers fix the order of every
// reduction (four W-lane accumulators, then a fixed horizontal sum) so a sum depends only on its
// length, never on where a thread's chunk started. Tails go through masked loads into the same
// vector code, so an element gives bit-identical results whether it sits in a body or a tail.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"
#include "isa.h"

#if !defined(ALIGNER_ISA_BASELINE)
#include <immintrin.h>
#endif

namespace aligner::ALIGNER_ISA_NS::simd {

// ---- the ISA-specific core: V, its mask M, loads/stores, arithmetic, compares ------------------
#if defined(ALIGNER_ISA_AVX512)

constexpr i64 W = 16;
struct V {
  __m512 v;
};
struct M {
  __mmask16 m;
};
inline M first(i64 k) {  // lanes [0, k), k in [0, W]
  return {static_cast<__mmask16>((1u << k) - 1u)};
}
inline V set1(float x) { return {_mm512_set1_ps(x)}; }
inline V zero() { return {_mm512_setzero_ps()}; }
inline V load(const float* p) { return {_mm512_loadu_ps(p)}; }
inline V load(const float* p, i64 k) { return {_mm512_maskz_loadu_ps(first(k).m, p)}; }  // other lanes 0
inline void store(float* p, V a) { _mm512_storeu_ps(p, a.v); }
inline void store(float* p, i64 k, V a) { _mm512_mask_storeu_ps(p, first(k).m, a.v); }
inline V operator+(V a, V b) { return {_mm512_add_ps(a.v, b.v)}; }
inline V operator-(V a, V b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline V operator*(V a, V b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline V operator/(V a, V b) { return {_mm512_div_ps(a.v, b.v)}; }
inline V fma(V a, V b, V c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }   // a·b + c, one rounding
inline V fnma(V a, V b, V c) { return {_mm512_fnmadd_ps(a.v, b.v, c.v)}; }  // c − a·b, one rounding
// max/min return b when either is NaN (x86 semantics; the kernels rely on it).
inline V max(V a, V b) { return {_mm512_max_ps(a.v, b.v)}; }
inline V min(V a, V b) { return {_mm512_min_ps(a.v, b.v)}; }
inline V sqrt(V a) { return {_mm512_sqrt_ps(a.v)}; }
inline V round_even(V a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline V abs(V a) { return {_mm512_abs_ps(a.v)}; }
inline V neg(V a) { return {_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a.v), _mm512_set1_epi32(INT32_MIN)))}; }
inline V copysign_of(V magnitude, V sign) {  // |magnitude| with sign's sign bit
  const __m512i s = _mm512_set1_epi32(INT32_MIN);
  return {_mm512_castsi512_ps(_mm512_ternarylogic_epi32(s, _mm512_castps_si512(sign.v), _mm512_castps_si512(magnitude.v), 0xCA))};
}
inline M lt(V a, V b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
inline M gt(V a, V b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ)}; }
inline M is_nan(V a) { return {_mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q)}; }
inline M operator|(M a, M b) { return {static_cast<__mmask16>(a.m | b.m)}; }
inline bool any(M a) { return a.m != 0; }
inline V select(M m, V if_false, V if_true) { return {_mm512_mask_blend_ps(m.m, if_false.v, if_true.v)}; }
inline V keep(M m, V a) { return {_mm512_maskz_mov_ps(m.m, a.v)}; }  // a where m, else 0
// p · 2^n for integral n in [-150, 128], applied as two factors so results near the overflow edge
// stay finite and tiny results underflow gradually with a single rounding.
inline V scale_pow2(V p, V n) {
  __m512i k = _mm512_cvtps_epi32(n.v);
  __m512i k1 = _mm512_srai_epi32(k, 1);
  __m512i k2 = _mm512_sub_epi32(k, k1);
  const __m512i bias = _mm512_set1_epi32(127);
  __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k1, bias), 23));
  __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k2, bias), 23));
  return {_mm512_mul_ps(_mm512_mul_ps(p.v, s1), s2)};
}
// Horizontal sum in a fixed order: halves, then quarters, then the AVX2 order within 8 lanes.
inline float hsum(V a) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a.v), _mm512_extractf32x8_ps(a.v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(V a) {  // a holds no NaN
  __m256 h = _mm256_max_ps(_mm512_castps512_ps256(a.v), _mm512_extractf32x8_ps(a.v, 1));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#elif defined(ALIGNER_ISA_AVX2)

constexpr i64 W = 8;
struct V {
  __m256 v;
};
struct M {
  __m256 m;  // all-ones lanes
};
inline M first(i64 k) {  // lanes [0, k), k in [0, W]
  alignas(32) static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return {_mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + 8 - k)))};
}
inline V set1(float x) { return {_mm256_set1_ps(x)}; }
inline V zero() { return {_mm256_setzero_ps()}; }
inline V load(const float* p) { return {_mm256_loadu_ps(p)}; }
inline V load(const float* p, i64 k) { return {_mm256_maskload_ps(p, _mm256_castps_si256(first(k).m))}; }
inline void store(float* p, V a) { _mm256_storeu_ps(p, a.v); }
inline void store(float* p, i64 k, V a) { _mm256_maskstore_ps(p, _mm256_castps_si256(first(k).m), a.v); }
inline V operator+(V a, V b) { return {_mm256_add_ps(a.v, b.v)}; }
inline V operator-(V a, V b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline V operator*(V a, V b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline V operator/(V a, V b) { return {_mm256_div_ps(a.v, b.v)}; }
inline V fma(V a, V b, V c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline V fnma(V a, V b, V c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; }
inline V max(V a, V b) { return {_mm256_max_ps(a.v, b.v)}; }
inline V min(V a, V b) { return {_mm256_min_ps(a.v, b.v)}; }
inline V sqrt(V a) { return {_mm256_sqrt_ps(a.v)}; }
inline V round_even(V a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline V abs(V a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
inline V neg(V a) { return {_mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f))}; }
inline V copysign_of(V magnitude, V sign) {
  const __m256 s = _mm256_set1_ps(-0.0f);
  return {_mm256_or_ps(_mm256_andnot_ps(s, magnitude.v), _mm256_and_ps(s, sign.v))};
}
inline M lt(V a, V b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
inline M gt(V a, V b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)}; }
inline M is_nan(V a) { return {_mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q)}; }
inline M operator|(M a, M b) { return {_mm256_or_ps(a.m, b.m)}; }
inline bool any(M a) { return _mm256_movemask_ps(a.m) != 0; }
inline V select(M m, V if_false, V if_true) { return {_mm256_blendv_ps(if_false.v, if_true.v, m.m)}; }
inline V keep(M m, V a) { return {_mm256_and_ps(m.m, a.v)}; }
inline V scale_pow2(V p, V n) {
  __m256i k = _mm256_cvtps_epi32(n.v);
  __m256i k1 = _mm256_srai_epi32(k, 1);
  __m256i k2 = _mm256_sub_epi32(k, k1);
  const __m256i bias = _mm256_set1_epi32(127);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
  return {_mm256_mul_ps(_mm256_mul_ps(p.v, s1), s2)};
}
inline float hsum(V a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(V a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#else  // baseline: 8 lanes, one at a time, with AVX2's rounding

constexpr i64 W = 8;
struct V {
  float v[W];
};
struct M {
  bool m[W];
};
template <class F>
inline V lanes(F f) {
  V r;
  for (int i = 0; i < W; i++) r.v[i] = f(i);
  return r;
}
inline M first(i64 k) {
  M r;
  for (int i = 0; i < W; i++) r.m[i] = i < k;
  return r;
}
inline V set1(float x) { return lanes([&](int) { return x; }); }
inline V zero() { return set1(0.0f); }
inline V load(const float* p) { return lanes([&](int i) { return p[i]; }); }
inline V load(const float* p, i64 k) { return lanes([&](int i) { return i < k ? p[i] : 0.0f; }); }
inline void store(float* p, V a) { std::memcpy(p, a.v, sizeof a.v); }
inline void store(float* p, i64 k, V a) {
  for (i64 i = 0; i < k; i++) p[i] = a.v[i];
}
inline V operator+(V a, V b) { return lanes([&](int i) { return a.v[i] + b.v[i]; }); }
inline V operator-(V a, V b) { return lanes([&](int i) { return a.v[i] - b.v[i]; }); }
inline V operator*(V a, V b) { return lanes([&](int i) { return a.v[i] * b.v[i]; }); }
inline V operator/(V a, V b) { return lanes([&](int i) { return a.v[i] / b.v[i]; }); }
inline V fma(V a, V b, V c) { return lanes([&](int i) { return std::fma(a.v[i], b.v[i], c.v[i]); }); }
inline V fnma(V a, V b, V c) { return lanes([&](int i) { return std::fma(-a.v[i], b.v[i], c.v[i]); }); }
inline V max(V a, V b) { return lanes([&](int i) { return a.v[i] > b.v[i] ? a.v[i] : b.v[i]; }); }
inline V min(V a, V b) { return lanes([&](int i) { return a.v[i] < b.v[i] ? a.v[i] : b.v[i]; }); }
inline V sqrt(V a) { return lanes([&](int i) { return std::sqrt(a.v[i]); }); }
inline V round_even(V a) { return lanes([&](int i) { return std::nearbyint(a.v[i]); }); }
inline V abs(V a) { return lanes([&](int i) { return std::fabs(a.v[i]); }); }
inline V neg(V a) { return lanes([&](int i) { return -a.v[i]; }); }
inline V copysign_of(V magnitude, V sign) { return lanes([&](int i) { return std::copysign(magnitude.v[i], sign.v[i]); }); }
inline M lt(V a, V b) {
  M r;
  for (int i = 0; i < W; i++) r.m[i] = a.v[i] < b.v[i];
  return r;
}
inline M gt(V a, V b) { return lt(b, a); }
inline M is_nan(V a) {
  M r;
  for (int i = 0; i < W; i++) r.m[i] = std::isnan(a.v[i]);
  return r;
}
inline M operator|(M a, M b) {
  M r;
  for (int i = 0; i < W; i++) r.m[i] = a.m[i] || b.m[i];
  return r;
}
inline bool any(M a) {
  for (bool b : a.m)
    if (b) return true;
  return false;
}
inline V select(M m, V if_false, V if_true) { return lanes([&](int i) { return m.m[i] ? if_true.v[i] : if_false.v[i]; }); }
inline V keep(M m, V a) { return lanes([&](int i) { return m.m[i] ? a.v[i] : 0.0f; }); }
inline V scale_pow2(V p, V n) {
  return lanes([&](int i) {
    // n is integral in [-150, 128], or NaN with p (then any k gives NaN): no undefined conversion.
    int32_t k = n.v[i] == n.v[i] ? static_cast<int32_t>(n.v[i]) : 0;
    int32_t k1 = k >> 1, k2 = k - k1;  // arithmetic shift, as _mm256_srai_epi32
    uint32_t b1 = static_cast<uint32_t>(k1 + 127) << 23, b2 = static_cast<uint32_t>(k2 + 127) << 23;
    float s1, s2;
    std::memcpy(&s1, &b1, 4);
    std::memcpy(&s2, &b2, 4);
    return p.v[i] * s1 * s2;
  });
}
inline float hsum(V a) {  // the AVX2 order: halves, pairs, then the last two
  float s[4];
  for (int i = 0; i < 4; i++) s[i] = a.v[i] + a.v[i + 4];
  float t0 = s[0] + s[2], t1 = s[1] + s[3];
  return t0 + t1;
}
inline float hmax(V a) {
  float s[4];
  for (int i = 0; i < 4; i++) s[i] = a.v[i] > a.v[i + 4] ? a.v[i] : a.v[i + 4];
  float t0 = s[0] > s[2] ? s[0] : s[2], t1 = s[1] > s[3] ? s[1] : s[3];
  return t0 > t1 ? t0 : t1;
}

#endif

// ---- built on the core: identical code on every ISA ------------------------------------------

inline V load_upto(const float* p, i64 k) { return k == W ? load(p) : load(p, k); }
inline void store_upto(float* p, i64 k, V a) {
  if (k == W)
    store(p, a);
  else
    store(p, k, a);
}

// Σ x[i] in float, fixed order.
inline float sum(const float* x, i64 n) {
  V a0 = zero(), a1 = a0, a2 = a0, a3 = a0;
  i64 i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = a0 + load(x + i);
    a1 = a1 + load(x + i + W);
    a2 = a2 + load(x + i + 2 * W);
    a3 = a3 + load(x + i + 3 * W);
  }
  for (; i + W <= n; i += W) a0 = a0 + load(x + i);
  if (i < n) a0 = a0 + load(x + i, n - i);
  return hsum((a0 + a1) + (a2 + a3));
}

// Σ a[i]·b[i] in float (fused multiply-add), fixed order.
inline float dot(const float* a, const float* b, i64 n) {
  V a0 = zero(), a1 = a0, a2 = a0, a3 = a0;
  i64 i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = fma(load(a + i), load(b + i), a0);
    a1 = fma(load(a + i + W), load(b + i + W), a1);
    a2 = fma(load(a + i + 2 * W), load(b + i + 2 * W), a2);
    a3 = fma(load(a + i + 3 * W), load(b + i + 3 * W), a3);
  }
  for (; i + W <= n; i += W) a0 = fma(load(a + i), load(b + i), a0);
  if (i < n) a0 = fma(load(a + i, n - i), load(b + i, n - i), a0);
  return hsum((a0 + a1) + (a2 + a3));
}

// Σ x[i] (or Σ x[i]² when squares) accumulated in double, fixed order on every ISA: sixteen
// double lanes (the AVX2 build's four 4-lane accumulators) over blocks of 16, a tail of 8 at a
// time into lanes 0–7, then (lanes j, 4+j, 8+j, 12+j) summed pairwise and the four results in
// the order (0+2)+(1+3). Scalar code the compiler vectorises without changing the order.
template <bool squares>
inline double sum_double(const float* x, i64 n) {
  double acc[16] = {};
  auto add = [](double a, double v) { return squares ? std::fma(v, v, a) : a + v; };
  i64 i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) acc[l] = add(acc[l], x[i + l]);
  for (; i < n; i += 8)
    for (int l = 0; l < 8 && i + l < n; l++) acc[l] = add(acc[l], x[i + l]);
  double t[4];
  for (int j = 0; j < 4; j++) t[j] = (acc[j] + acc[4 + j]) + (acc[8 + j] + acc[12 + j]);
  return (t[0] + t[2]) + (t[1] + t[3]);
}

// max_i x[i] where any NaN gives NaN; -Infinity for n = 0 (the reference's rowMax).
inline float max_nan(const float* x, i64 n) {
  const V ninf = set1(-INFINITY);
  V m = ninf;
  M nan = first(0);
  i64 i = 0;
  for (; i + W <= n; i += W) {
    V v = load(x + i);
    m = max(m, v);
    nan = nan | is_nan(v);
  }
  if (i < n) {
    V v = select(first(n - i), ninf, load(x + i, n - i));
    m = max(m, v);
    nan = nan | is_nan(v);
  }
  if (any(nan)) return NAN;
  return hmax(m);
}

// exp(x), within ~1 ulp: 2^n · p(r) with r = x − n·ln2 (Cephes expf polynomial). ±Inf and NaN
// behave as expf.
inline V exp(V x) {
  // min/max return their second operand when one is NaN, so NaN passes through the clamp.
  x = max(set1(-104.0f), min(set1(89.0f), x));
  V n = round_even(x * set1(1.44269504088896341f));
  V r = fnma(n, set1(0.693359375f), x);
  r = fnma(n, set1(-2.12194440e-4f), r);
  V p = set1(1.9875691500e-4f);
  p = fma(p, r, set1(1.3981999507e-3f));
  p = fma(p, r, set1(8.3334519073e-3f));
  p = fma(p, r, set1(4.1665795894e-2f));
  p = fma(p, r, set1(1.6666665459e-1f));
  p = fma(p, r, set1(5.0000001201e-1f));
  p = fma(p, r * r, r + set1(1.0f));
  return scale_pow2(p, n);  // n in [-150, 128]
}

inline float exp1(float x) {
  alignas(64) float out[W];
  store(out, exp(set1(x)));
  return out[0];
}

// tanh(x): Cephes tanhf (odd polynomial below 0.625, 1 − 2/(e^{2|x|}+1) above).
inline V tanh(V x) {
  V ax = abs(x);
  V s = x * x;
  V p = set1(-5.70498872745e-3f);
  p = fma(p, s, set1(2.06390887954e-2f));
  p = fma(p, s, set1(-5.37397155531e-2f));
  p = fma(p, s, set1(1.33314422036e-1f));
  p = fma(p, s, set1(-3.33332819422e-1f));
  V small = fma(p * s, x, x);
  V e = exp(ax + ax);
  V big = set1(1.0f) - set1(2.0f) / (e + set1(1.0f));
  big = copysign_of(big, x);
  return select(lt(ax, set1(0.625f)), big, small);
}

// 1 / (1 + exp(−x)), as the reference writes it.
inline V sigmoid(V x) {
  const V one = set1(1.0f);
  return one / (one + exp(zero() - x));
}

// log(x) lane by lane with the C library's logf.
inline V log(V x) {
  alignas(64) float t[W];
  store(t, x);
  for (float& v : t) v = std::log(v);
  return load(t);
}

}  // namespace aligner::ALIGNER_ISA_NS::simd
