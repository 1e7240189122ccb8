// Storage-level kernels (fill, copy, cast) and the pointwise float kernels (unary and its
// backward, affine, powScalar). Pointwise work has no cross-element dependence, so any
// parallel_for split gives identical bits; tails use the same vector code via masked loads.
#include <cmath>
#include <cstring>

#include "bf16.h"
#include "kernels.h"
#include "pool.h"
#include "simd.h"

namespace aligner::ALIGNER_ISA_NS {

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

using simd::V;

// out[i] = f(x[i]) over W-lane vectors; f is a vector function.
template <class F>
void map1(const float* x, float* out, i64 n, F f) {
  parallel_for(n, kGrain, [&](i64 b, i64 e) {
    i64 i = b;
    for (; i + simd::W <= e; i += simd::W) simd::store(out + i, f(simd::load(x + i)));
    if (i < e) simd::store(out + i, e - i, f(simd::load(x + i, e - i)));
  });
}

template <class F>
void map3(const float* x, const float* y, const float* g, float* out, i64 n, F f) {
  parallel_for(n, kGrain, [&](i64 b, i64 e) {
    i64 i = b;
    for (; i + simd::W <= e; i += simd::W)
      simd::store(out + i, f(simd::load(x + i), simd::load(y + i), simd::load(g + i)));
    if (i < e) {
      i64 r = e - i;
      simd::store(out + i, r, f(simd::load(x + i, r), simd::load(y + i, r), simd::load(g + i, r)));
    }
  });
}

V set1(float v) {
  return simd::set1(v);
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;

V gelu_inner(V x) {  // √(2/π)·(x + c·x³), in the reference's order
  V cube = set1(kGeluC) * x * x * x;
  return set1(kSqrt2OverPi) * (x + cube);
}

V forward(Unary kind, V x) {
  switch (kind) {
    case Unary::neg:
      return simd::neg(x);
    case Unary::exp:
      return simd::exp(x);
    case Unary::log:
      return simd::log(x);
    case Unary::sqrt:
      return simd::sqrt(x);
    case Unary::rsqrt:
      return set1(1.0f) / simd::sqrt(x);
    case Unary::tanh:
      return simd::tanh(x);
    case Unary::sigmoid:
      return simd::sigmoid(x);
    case Unary::relu:
      return simd::max(simd::zero(), x);  // NaN (second operand) passes
    case Unary::silu:
      return x * simd::sigmoid(x);
    case Unary::gelu:
      return set1(0.5f) * x * (set1(1.0f) + simd::tanh(gelu_inner(x)));
    case Unary::abs:
      return simd::abs(x);
    case Unary::square:
      return x * x;
  }
  return x;
}

// f'(x) given y = f(x); the same formulas as the reference's unaryDerivative.
V derivative(Unary kind, V x, V y) {
  const V one = set1(1.0f), zero = simd::zero();
  switch (kind) {
    case Unary::neg:
      return set1(-1.0f);
    case Unary::exp:
      return y;
    case Unary::log:
      return one / x;
    case Unary::sqrt:
      return set1(0.5f) / y;
    case Unary::rsqrt:
      return set1(-0.5f) * y * y * y;
    case Unary::tanh:
      return one - y * y;
    case Unary::sigmoid:
      return y * (one - y);
    case Unary::relu:  // 1 above 0, 0 below, NaN stays NaN
      return simd::select(simd::is_nan(x), simd::keep(simd::gt(x, zero), one), x);
    case Unary::silu: {
      V s = simd::sigmoid(x);
      return s * (one + x * (one - s));
    }
    case Unary::gelu: {
      V t = simd::tanh(gelu_inner(x));
      V a = set1(0.5f) * (one + t);
      V b = set1(0.5f) * x * (one - t * t) * set1(kSqrt2OverPi);
      V c = one + set1(3.0f * kGeluC) * x * x;
      return a + b * c;
    }
    case Unary::abs: {  // sign(x), NaN stays NaN
      V sign = simd::select(simd::lt(x, zero), simd::keep(simd::gt(x, zero), one), set1(-1.0f));
      return simd::select(simd::is_nan(x), sign, x);
    }
    case Unary::square:
      return set1(2.0f) * x;
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
    map1(x, out, n, [](V v) { return forward(Unary::K, v); });     \
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
         [](V xv, V yv, V gv) { return gv * derivative(Unary::K, xv, yv); });                              \
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

}  // namespace aligner::ALIGNER_ISA_NS
