// Storage-level kernels (fill, copy, cast) and the pointwise float kernels (unary and its
// backward, affine, powScalar). Pointwise work has no cross-element dependence, so any
// parallel_for split gives identical bits; tails use the same vector code via masked loads.
#include <cmath>
#include <cstring>

#include "bf16.h"
#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace aligner {

namespace {

constexpr i64 kGrain = 16 * 1024;

// JS ToInt32 after Math.trunc, as the reference's store() does: non-finite → 0, wrap mod 2^32.
int32_t to_i32(double v) {
  if (!std::isfinite(v)) return 0;
  double t = std::trunc(v);
  if (t >= -2147483648.0 && t <= 2147483647.0) return static_cast<int32_t>(t);
  double r = std::fmod(t, 4294967296.0);  // exact, in (−2^32, 2^32)
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<int64_t>(r)));
}

// out[i] = f(x[i]) over 8-lane vectors; f is a vector function.
template <class F>
void map1(const float* x, float* out, i64 n, F f) {
  parallel_for(n, kGrain, [&](i64 b, i64 e) {
    i64 i = b;
    for (; i + 8 <= e; i += 8) _mm256_storeu_ps(out + i, f(_mm256_loadu_ps(x + i)));
    if (i < e) simd::store_tail(out + i, e - i, f(simd::load_tail(x + i, e - i)));
  });
}

template <class F>
void map3(const float* x, const float* y, const float* g, float* out, i64 n, F f) {
  parallel_for(n, kGrain, [&](i64 b, i64 e) {
    i64 i = b;
    for (; i + 8 <= e; i += 8)
      _mm256_storeu_ps(out + i, f(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), _mm256_loadu_ps(g + i)));
    if (i < e) {
      i64 r = e - i;
      simd::store_tail(out + i, r, f(simd::load_tail(x + i, r), simd::load_tail(y + i, r), simd::load_tail(g + i, r)));
    }
  });
}

inline __m256 set1(float v) {
  return _mm256_set1_ps(v);
}
inline __m256 is_nan(__m256 x) {
  return _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
}

__m256 log8(__m256 x) {
  alignas(32) float t[8];
  _mm256_store_ps(t, x);
  for (float& v : t) v = std::log(v);
  return _mm256_load_ps(t);
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;

__m256 gelu_inner(__m256 x) {  // √(2/π)·(x + c·x³), in the reference's order
  __m256 cube = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(set1(kGeluC), x), x), x);
  return _mm256_mul_ps(set1(kSqrt2OverPi), _mm256_add_ps(x, cube));
}

__m256 forward8(Unary kind, __m256 x) {
  switch (kind) {
    case Unary::neg:
      return _mm256_xor_ps(x, set1(-0.0f));
    case Unary::exp:
      return simd::exp(x);
    case Unary::log:
      return log8(x);
    case Unary::sqrt:
      return _mm256_sqrt_ps(x);
    case Unary::rsqrt:
      return _mm256_div_ps(set1(1.0f), _mm256_sqrt_ps(x));
    case Unary::tanh:
      return simd::tanh(x);
    case Unary::sigmoid:
      return simd::sigmoid(x);
    case Unary::relu:
      return _mm256_max_ps(_mm256_setzero_ps(), x);  // NaN (second operand) passes
    case Unary::silu:
      return _mm256_mul_ps(x, simd::sigmoid(x));
    case Unary::gelu:
      return _mm256_mul_ps(_mm256_mul_ps(set1(0.5f), x), _mm256_add_ps(set1(1.0f), simd::tanh(gelu_inner(x))));
    case Unary::abs:
      return _mm256_andnot_ps(set1(-0.0f), x);
    case Unary::square:
      return _mm256_mul_ps(x, x);
  }
  return x;
}

// f'(x) given y = f(x); the same formulas as the reference's unaryDerivative.
__m256 derivative8(Unary kind, __m256 x, __m256 y) {
  const __m256 one = set1(1.0f), zero = _mm256_setzero_ps();
  switch (kind) {
    case Unary::neg:
      return set1(-1.0f);
    case Unary::exp:
      return y;
    case Unary::log:
      return _mm256_div_ps(one, x);
    case Unary::sqrt:
      return _mm256_div_ps(set1(0.5f), y);
    case Unary::rsqrt:
      return _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(set1(-0.5f), y), y), y);
    case Unary::tanh:
      return _mm256_sub_ps(one, _mm256_mul_ps(y, y));
    case Unary::sigmoid:
      return _mm256_mul_ps(y, _mm256_sub_ps(one, y));
    case Unary::relu: {
      __m256 d = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), one);
      return _mm256_blendv_ps(d, x, is_nan(x));
    }
    case Unary::silu: {
      __m256 s = simd::sigmoid(x);
      return _mm256_mul_ps(s, _mm256_add_ps(one, _mm256_mul_ps(x, _mm256_sub_ps(one, s))));
    }
    case Unary::gelu: {
      __m256 t = simd::tanh(gelu_inner(x));
      __m256 a = _mm256_mul_ps(set1(0.5f), _mm256_add_ps(one, t));
      __m256 b = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(set1(0.5f), x), _mm256_sub_ps(one, _mm256_mul_ps(t, t))),
                               set1(kSqrt2OverPi));
      __m256 c = _mm256_add_ps(one, _mm256_mul_ps(_mm256_mul_ps(set1(3.0f * kGeluC), x), x));
      return _mm256_add_ps(a, _mm256_mul_ps(b, c));
    }
    case Unary::abs: {
      __m256 pos = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), one);
      __m256 neg = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ), set1(-1.0f));
      return _mm256_blendv_ps(_mm256_or_ps(pos, neg), x, is_nan(x));
    }
    case Unary::square:
      return _mm256_mul_ps(set1(2.0f), x);
  }
  return one;
}

}  // namespace

// out [n] = value, converted to out's dtype
void fill(void* out, DType dtype, i64 n, double value) {
  switch (dtype) {
    case DType::f32: {
      float v = static_cast<float>(value);
      float* o = static_cast<float*>(out);
      parallel_for(n, kGrain, [&](i64 b, i64 e) { std::fill(o + b, o + e, v); });
      break;
    }
    case DType::i32: {
      int32_t v = to_i32(value);
      int32_t* o = static_cast<int32_t*>(out);
      parallel_for(n, kGrain, [&](i64 b, i64 e) { std::fill(o + b, o + e, v); });
      break;
    }
    case DType::bf16: {
      uint16_t v = f32_to_bf16(static_cast<float>(value));
      uint16_t* o = static_cast<uint16_t*>(out);
      parallel_for(n, kGrain, [&](i64 b, i64 e) { std::fill(o + b, o + e, v); });
      break;
    }
  }
}

// src [bytes] → dst [bytes]
void copy_bytes(const void* src, void* dst, i64 bytes) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  parallel_for(bytes, 256 * 1024, [&](i64 b, i64 e) { std::memcpy(d + b, s + b, e - b); });
}

// src [n] (sdt) → dst [n] (ddt)
void cast(const void* src, DType sdt, void* dst, DType ddt, i64 n) {
  if (sdt == ddt) {
    copy_bytes(src, dst, n * static_cast<i64>(dtype_size(sdt)));
    return;
  }
  parallel_for(n, kGrain, [&](i64 b, i64 e) {
    // Read as f32 (exact for bf16; i32 rounds to nearest, as Float32Array does), then store.
    auto load = [&](i64 i) -> float {
      switch (sdt) {
        case DType::f32:
          return static_cast<const float*>(src)[i];
        case DType::bf16:
          return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
        case DType::i32:
          return static_cast<float>(static_cast<const int32_t*>(src)[i]);
      }
      return 0.0f;
    };
    switch (ddt) {
      case DType::f32:
        for (i64 i = b; i < e; i++) static_cast<float*>(dst)[i] = load(i);
        break;
      case DType::bf16:
        for (i64 i = b; i < e; i++) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(load(i));
        break;
      case DType::i32:
        for (i64 i = b; i < e; i++) static_cast<int32_t*>(dst)[i] = to_i32(load(i));
        break;
    }
  });
}

// x [n] → out [n]
void unary(Unary kind, const float* x, float* out, i64 n) {
  // One switch per call, not per vector: instantiate the loop per kind.
  switch (kind) {
#define CASE(K)                                                      \
  case Unary::K:                                                     \
    map1(x, out, n, [](__m256 v) { return forward8(Unary::K, v); }); \
    break;
    // clang-format off
    CASE(neg) CASE(exp) CASE(log) CASE(sqrt) CASE(rsqrt) CASE(tanh)
    CASE(sigmoid) CASE(relu) CASE(silu) CASE(gelu) CASE(abs) CASE(square)
    // clang-format on
#undef CASE
  }
}

// x, y = f(x), g [n] → gx [n]
void unary_backward(Unary kind, const float* x, const float* y, const float* g, float* gx, i64 n) {
  switch (kind) {
#define CASE(K)                                                                                             \
  case Unary::K:                                                                                            \
    map3(x, y, g, gx, n,                                                                                    \
         [](__m256 xv, __m256 yv, __m256 gv) { return _mm256_mul_ps(gv, derivative8(Unary::K, xv, yv)); }); \
    break;
    // clang-format off
    CASE(neg) CASE(exp) CASE(log) CASE(sqrt) CASE(rsqrt) CASE(tanh)
    CASE(sigmoid) CASE(relu) CASE(silu) CASE(gelu) CASE(abs) CASE(square)
    // clang-format on
#undef CASE
  }
}

// x [n] → out [n]
// In double, then rounded once, exactly as the reference computes into a Float32Array.
void affine(const float* x, float* out, i64 n, double scale, double shift) {
  parallel_for(n, kGrain, [&](i64 b, i64 e) {
    for (i64 i = b; i < e; i++) out[i] = static_cast<float>(static_cast<double>(x[i]) * scale + shift);
  });
}

// x [n] → out [n]
void pow_scalar(const float* x, float* out, i64 n, double p) {
  // Exact fast paths (each equals the correctly rounded pow), else std::pow with JS's special cases.
  parallel_for(n, kGrain, [&](i64 b, i64 e) {
    if (p == 1.0) {
      for (i64 i = b; i < e; i++) out[i] = x[i];
    } else if (p == 2.0) {
      for (i64 i = b; i < e; i++) out[i] = static_cast<float>(static_cast<double>(x[i]) * x[i]);
    } else if (p == 3.0) {
      for (i64 i = b; i < e; i++) {
        double v = x[i];
        out[i] = static_cast<float>(v * v * v);
      }
    } else if (p == -1.0) {
      for (i64 i = b; i < e; i++) out[i] = static_cast<float>(1.0 / static_cast<double>(x[i]));
    } else if (p == 0.5) {
      for (i64 i = b; i < e; i++) {
        double v = x[i];
        out[i] = v == -INFINITY ? INFINITY : static_cast<float>(std::sqrt(v) + 0.0);
      }
    } else {
      for (i64 i = b; i < e; i++) {
        double v = x[i];
        double r = (std::isnan(p) || (std::fabs(v) == 1.0 && std::isinf(p))) ? NAN : std::pow(v, p);
        out[i] = static_cast<float>(r);
      }
    }
  });
}

}  // namespace aligner
