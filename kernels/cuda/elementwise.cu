// Elementwise kernels: fill, cast, unary functions and their derivatives, affine, powScalar,
// broadcasting binary ops, SwiGLU. One thread per element (grid-stride), math in f32 whatever
// the storage type; the formulas and NaN rules are those of kernels/reference/unary.ts,
// affine.ts, binary.ts, swiglu.ts and fill.ts.
//
// Build: at run time by NVRTC (kernels/cuda-backend.ts, for the GPU's sm_XY); compile check with
// nvcc: kernels/cuda/check.sh.
#include "common.cuh"

// ---- fill / cast ----

// out [n] = the given bit pattern (the host encodes the value for the storage dtype)
extern "C" __global__ void fill_u32(unsigned* out, i64 n, unsigned bits) {
  GRID_STRIDE(i, n) out[i] = bits;
}
extern "C" __global__ void fill_u16(unsigned short* out, i64 n, unsigned bits) {
  GRID_STRIDE(i, n) out[i] = static_cast<unsigned short>(bits);
}

__device__ __forceinline__ float ld_any(const float* p, i64 i) { return p[i]; }
__device__ __forceinline__ float ld_any(const bf16* p, i64 i) { return to_f(p[i]); }
__device__ __forceinline__ float ld_any(const int* p, i64 i) { return static_cast<float>(p[i]); }
__device__ __forceinline__ void st_any(float* p, i64 i, float v) { p[i] = v; }
__device__ __forceinline__ void st_any(bf16* p, i64 i, float v) { p[i] = to_bf16(v); }
// float → i32 truncates toward zero and maps non-finite values to 0 (the reference's `store`).
__device__ __forceinline__ void st_any(int* p, i64 i, float v) {
  p[i] = isfinite(v) ? static_cast<int>(static_cast<long long>(truncf(v))) : 0;
}

// src [n] → dst [n], converting: NAME = cast_<src>_<dst>
#define DEFINE_CAST(sname, S, dname, D) \
  extern "C" __global__ void cast_##sname##_##dname(const S* src, D* dst, i64 n) { GRID_STRIDE(i, n) st_any(dst, i, ld_any(src, i)); }
DEFINE_CAST(f32, float, bf16, bf16)
DEFINE_CAST(f32, float, i32, int)
DEFINE_CAST(bf16, bf16, f32, float)
DEFINE_CAST(bf16, bf16, i32, int)
DEFINE_CAST(i32, int, f32, float)
// i32 → bf16 goes through f32 first, as the reference rounds a number to f32 and then to bf16.
DEFINE_CAST(i32, int, bf16, bf16)

// ---- unary ----

// Kinds in the order of UNARY_KINDS in kernels/backend.ts.
enum Unary { NEG, EXP, LOG, SQRT, RSQRT, TANH, SIGMOID, RELU, SILU, GELU, ABS, SQUARE };

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_C 0.044715f

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float unary_value(int kind, float x) {
  switch (kind) {
    case NEG: return -x;
    case EXP: return expf(x);
    case LOG: return logf(x);
    case SQRT: return sqrtf(x);
    case RSQRT: return 1.0f / sqrtf(x);
    case TANH: return tanhf(x);
    case SIGMOID: return sigmoidf_(x);
    case RELU: return is_nan(x) ? x : (x > 0.0f ? x : 0.0f);
    case SILU: return x * sigmoidf_(x);
    case GELU: return 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)));
    case ABS: return fabsf(x);
    default: return x * x;
  }
}

// f'(x), given y = f(x)
__device__ __forceinline__ float unary_derivative(int kind, float x, float y) {
  switch (kind) {
    case NEG: return -1.0f;
    case EXP: return y;
    case LOG: return 1.0f / x;
    case SQRT: return 0.5f / y;
    case RSQRT: return -0.5f * y * y * y;
    case TANH: return 1.0f - y * y;
    case SIGMOID: return y * (1.0f - y);
    case RELU: return is_nan(x) ? x : (x > 0.0f ? 1.0f : 0.0f);
    case SILU: {
      float s = sigmoidf_(x);
      return s * (1.0f + x * (1.0f - s));
    }
    case GELU: {
      float t = tanhf(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_C * x * x);
    }
    case ABS: return is_nan(x) ? x : (x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f));
    default: return 2.0f * x;
  }
}

#define DEFINE_UNARY(name, T)                                                                            \
  /* x [n] → out [n] */                                                                                \
  extern "C" __global__ void unary_##name(int kind, const T* x, T* out, i64 n) {                         \
    GRID_STRIDE(i, n) out[i] = from_f<T>(unary_value(kind, to_f(x[i])));                                 \
  }                                                                                                      \
  /* x, y, g [n] → gx [n] */                                                                           \
  extern "C" __global__ void unaryBackward_##name(int kind, const T* x, const T* y, const T* g, T* gx, i64 n) { \
    GRID_STRIDE(i, n) gx[i] = from_f<T>(to_f(g[i]) * unary_derivative(kind, to_f(x[i]), to_f(y[i])));   \
  }                                                                                                      \
  /* x [n] → out [n] = x·scale + shift, in f64 as the reference: scale may be beyond f32's range    \
     (the maximum/minimum gradient multiplies by Number.MAX_VALUE, where 0·scale must stay 0) */        \
  extern "C" __global__ void affine_##name(const T* x, T* out, i64 n, double scale, double shift) {      \
    GRID_STRIDE(i, n) out[i] = from_f<T>(static_cast<float>(static_cast<double>(to_f(x[i])) * scale + shift)); \
  }                                                                                                      \
  /* x [n] → out [n] = x^p (f64 pow, as the reference) */                                              \
  extern "C" __global__ void powScalar_##name(const T* x, T* out, i64 n, double p) {                     \
    GRID_STRIDE(i, n) out[i] = from_f<T>(static_cast<float>(pow(static_cast<double>(to_f(x[i])), p)));  \
  }
FOR_FLOAT_TYPES(DEFINE_UNARY)

// ---- binary, with broadcasting ----

enum Binary { ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM };

__device__ __forceinline__ float binary_value(int kind, float a, float b) {
  switch (kind) {
    case ADD: return a + b;
    case SUB: return a - b;
    case MUL: return a * b;
    case DIV: return a / b;
    case MAXIMUM: return is_nan(a) || is_nan(b) ? nan_f() : fmaxf(a, b);
    default: return is_nan(a) || is_nan(b) ? nan_f() : fminf(a, b);
  }
}

// Output shape and the element strides of a and b aligned to it (0 on broadcast axes), rank ≤ 8.
struct Broadcast {
  int rank;
  int shape[8];
  int as[8];
  int bs[8];
};

#define DEFINE_BINARY(name, T)                                                                          \
  /* a, b broadcast to d.shape → out [n] */                                                            \
  extern "C" __global__ void binary_##name(int kind, const T* a, const T* b, T* out, i64 n, Broadcast d) { \
    GRID_STRIDE(i, n) {                                                                                 \
      i64 rem = i, ia = 0, ib = 0;                                                                      \
      for (int k = d.rank - 1; k >= 0; k--) {                                                           \
        i64 idx = rem % d.shape[k];                                                                     \
        rem /= d.shape[k];                                                                              \
        ia += idx * d.as[k];                                                                            \
        ib += idx * d.bs[k];                                                                            \
      }                                                                                                 \
      out[i] = from_f<T>(binary_value(kind, to_f(a[ia]), to_f(b[ib])));                                 \
    }                                                                                                   \
  }                                                                                                     \
  /* a, b, out [n]: the same shape, no broadcasting (the common case, without index arithmetic) */     \
  extern "C" __global__ void binarySame_##name(int kind, const T* a, const T* b, T* out, i64 n) {      \
    GRID_STRIDE(i, n) out[i] = from_f<T>(binary_value(kind, to_f(a[i]), to_f(b[i])));                   \
  }
FOR_FLOAT_TYPES(DEFINE_BINARY)

// ---- SwiGLU (Shazeer 2020): silu(gate) · up ----

#define DEFINE_SWIGLU(name, T)                                                                          \
  /* gate, up [n] → out [n] */                                                                         \
  extern "C" __global__ void swiglu_##name(const T* gate, const T* up, T* out, i64 n) {                 \
    GRID_STRIDE(i, n) {                                                                                 \
      float x = to_f(gate[i]);                                                                          \
      out[i] = from_f<T>(x * sigmoidf_(x) * to_f(up[i]));                                               \
    }                                                                                                   \
  }                                                                                                     \
  /* gate, up, g [n] → ggate, gup [n] */                                                               \
  extern "C" __global__ void swigluBackward_##name(const T* gate, const T* up, const T* g, T* ggate, T* gup, i64 n) { \
    GRID_STRIDE(i, n) {                                                                                 \
      float x = to_f(gate[i]), s = sigmoidf_(x), d = to_f(g[i]);                                        \
      ggate[i] = from_f<T>(d * to_f(up[i]) * s * (1.0f + x * (1.0f - s)));                              \
      gup[i] = from_f<T>(d * x * s);                                                                    \
    }                                                                                                   \
  }
FOR_FLOAT_TYPES(DEFINE_SWIGLU)
