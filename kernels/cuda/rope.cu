// Rotary position embedding (Su et al. 2021) in Hugging Face Llama's "rotate half" layout —
// kernels/reference/rope.ts. One thread per rotated pair (b, h, t, i < D/2); `inverse` negates
// sin, which is the transposed rotation, i.e. the backward pass.
//
// Build: NVRTC at run time (kernels/cuda-backend.ts); compile check: kernels/cuda/check.sh.
#include "common.cuh"

#define DEFINE_ROPE(name, T)                                                                            \
  /* x [B, H, T, D], cos/sin [T, D/2] (or [B, T, D/2] when per_batch) → out [B, H, T, D] */            \
  extern "C" __global__ void rope_##name(const T* x, const T* cos_t, const T* sin_t, T* out, i64 B, i64 H, i64 T_, \
                                         i64 D, int per_batch, int inverse) {                           \
    const i64 half = D / 2, pairs = B * H * T_ * half;                                                  \
    const float sign = inverse ? -1.0f : 1.0f;                                                          \
    GRID_STRIDE(k, pairs) {                                                                             \
      const i64 i = k % half, row = k / half; /* row = (b·H + h)·T + t */                               \
      const i64 t = row % T_, b = row / (H * T_);                                                       \
      const i64 cbase = ((per_batch ? b * T_ : 0) + t) * half;                                          \
      const float c = to_f(cos_t[cbase + i]), s = sign * to_f(sin_t[cbase + i]);                        \
      const float x1 = to_f(x[row * D + i]), x2 = to_f(x[row * D + i + half]);                          \
      out[row * D + i] = from_f<T>(x1 * c - x2 * s);                                                    \
      out[row * D + i + half] = from_f<T>(x2 * c + x1 * s);                                             \
    }                                                                                                   \
  }
FOR_FLOAT_TYPES(DEFINE_ROPE)
