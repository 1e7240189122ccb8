// Rotary embedding ("rotate half", Hugging Face Llama layout) and the SwiGLU gate.
#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace aligner::ALIGNER_ISA_NS {

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
    for (i64 i = b; i < e; i += simd::W) f(i, std::min<i64>(simd::W, e - i));
  });
}
using simd::V;
using simd::load_upto;
using simd::store_upto;
}  // namespace

// gate, up [n] → out [n]
void swiglu(const float* gate, const float* up, float* out, i64 n) {
  map_gate(n, [&](i64 i, i64 k) {
    V x = load_upto(gate + i, k);
    store_upto(out + i, k, x * simd::sigmoid(x) * load_upto(up + i, k));
  });
}

// gate, up, g [n] → ggate, gup [n]
void swiglu_backward(const float* gate, const float* up, const float* g, float* ggate, float* gup, i64 n) {
  const V one = simd::set1(1.0f);
  map_gate(n, [&](i64 i, i64 k) {
    V x = load_upto(gate + i, k), s = simd::sigmoid(x), d = load_upto(g + i, k);
    // silu'(x) = s·(1 + x·(1 − s))
    V dsilu = s * (one + x * (one - s));
    store_upto(ggate + i, k, d * load_upto(up + i, k) * dsilu);
    store_upto(gup + i, k, d * x * s);
  });
}

}  // namespace aligner::ALIGNER_ISA_NS
