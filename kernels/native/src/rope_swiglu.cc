// Rotary embedding ("rotate half", Hugging Face Llama layout) and the SwiGLU gate.
#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace aligner {

// x [B, H, T, D], cos/sin [T, D/2] or [B, T, D/2] → out [B, H, T, D]
void rope(const float* x, const float* cos, const float* sin, float* out, i64 B, i64 H, i64 T, i64 D, bool per_batch,
          bool inverse) {
  const i64 half = D / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  // One task unit = one row of D elements at (b, h, t).
  parallel_for(B * H * T, std::max<i64>(1, 8192 / std::max<i64>(D, 1)), [&](i64 rb, i64 re) {
    for (i64 row = rb; row < re; row++) {
      const i64 t = row % T, b = row / (H * T);
      const float* c = cos + ((per_batch ? b * T : 0) + t) * half;
      const float* s = sin + ((per_batch ? b * T : 0) + t) * half;
      const float* x1 = x + row * D;
      const float* x2 = x1 + half;
      float* o1 = out + row * D;
      float* o2 = o1 + half;
      for (i64 i = 0; i < half; i++) {
        float si = sign * s[i];
        float a = x1[i], bb = x2[i];  // read both halves first: out may alias x
        o1[i] = a * c[i] - bb * si;
        o2[i] = bb * c[i] + a * si;
      }
    }
  });
}

namespace {
template <class F>
void map_gate(i64 n, F f) {
  parallel_for(n, 16 * 1024, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; i += 8) f(i, std::min<i64>(8, e - i));
  });
}
inline __m256 ld(const float* p, i64 k) {
  return k == 8 ? _mm256_loadu_ps(p) : simd::load_tail(p, k);
}
inline void st(float* p, i64 k, __m256 v) {
  if (k == 8)
    _mm256_storeu_ps(p, v);
  else
    simd::store_tail(p, k, v);
}
}  // namespace

// gate, up [n] → out [n]
void swiglu(const float* gate, const float* up, float* out, i64 n) {
  map_gate(n, [&](i64 i, i64 k) {
    __m256 x = ld(gate + i, k);
    st(out + i, k, _mm256_mul_ps(_mm256_mul_ps(x, simd::sigmoid(x)), ld(up + i, k)));
  });
}

// gate, up, g [n] → ggate, gup [n]
void swiglu_backward(const float* gate, const float* up, const float* g, float* ggate, float* gup, i64 n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  map_gate(n, [&](i64 i, i64 k) {
    __m256 x = ld(gate + i, k), s = simd::sigmoid(x), d = ld(g + i, k);
    // silu'(x) = s·(1 + x·(1 − s))
    __m256 dsilu = _mm256_mul_ps(s, _mm256_add_ps(one, _mm256_mul_ps(x, _mm256_sub_ps(one, s))));
    st(ggate + i, k, _mm256_mul_ps(_mm256_mul_ps(d, ld(up + i, k)), dsilu));
    st(gup + i, k, _mm256_mul_ps(_mm256_mul_ps(d, x), s));
  });
}

}  // namespace aligner
