// Shared device helpers for kernels/cuda/*.cu: the bf16 storage type, NaN-propagating max,
// warp/block reductions, grid-stride loops and the error word.
//
// No CUDA headers are included anywhere, so NVRTC compiles these sources with no include path
// (kernels/cuda-backend.ts hands this file to NVRTC as a named header) and nvcc needs only its
// own compiler (kernels/cuda/check.sh). Semantics follow kernels/reference/ exactly; where a
// kernel differs in summation order from the reference, its file says so.
#pragma once

typedef long long i64;

// bf16 as a storage type: 16 raw bits; arithmetic always happens in f32.
struct bf16 {
  unsigned short bits;
};

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __uint_as_float(static_cast<unsigned>(x.bits) << 16); }

// f32 → bf16, round to nearest even; NaN stays a (quiet) NaN, as f32_to_bf16 in kernels/native/src/bf16.h.
__device__ __forceinline__ bf16 to_bf16(float f) {
  unsigned u = __float_as_uint(f);
  bf16 r;
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) {
    r.bits = static_cast<unsigned short>(((u >> 16) & 0x8000u) | 0x7fc0u);
  } else {
    r.bits = static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  return r;
}

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return to_bf16(v); }

__device__ __forceinline__ bool is_nan(float x) { return x != x; }
__device__ __forceinline__ float nan_f() { return __int_as_float(0x7fc00000); }
__device__ __forceinline__ float inf_f() { return __int_as_float(0x7f800000); }

// max that returns NaN when either side is NaN (fmaxf would drop it), as the reference's max.
__device__ __forceinline__ float nanmax(float a, float b) {
  if (is_nan(a) || is_nan(b)) return nan_f();
  return a > b ? a : b;
}

// Online log-sum-exp state: the running max m and Σ exp(x − m). Combining is order-independent up
// to rounding, and NaN/±Inf follow the reference's rowLogSumExp: any NaN gives NaN, a +Inf max
// gives NaN (exp(Inf − Inf)), and an all −Inf row gives lse = −Inf.
struct Lse {
  float m;
  float s;
};
__device__ __forceinline__ Lse lse_empty() { return Lse{-inf_f(), 0.0f}; }
__device__ __forceinline__ Lse lse_add(Lse a, float x) {
  float m = nanmax(a.m, x);
  if (m == -inf_f()) return Lse{m, 0.0f};
  float s = (a.m == -inf_f() ? 0.0f : a.s * expf(a.m - m)) + (x == -inf_f() ? 0.0f : expf(x - m));
  return Lse{m, s};
}
__device__ __forceinline__ Lse lse_merge(Lse a, Lse b) {
  float m = nanmax(a.m, b.m);
  if (m == -inf_f()) return Lse{m, 0.0f};
  float s = (a.m == -inf_f() ? 0.0f : a.s * expf(a.m - m)) + (b.m == -inf_f() ? 0.0f : b.s * expf(b.m - m));
  return Lse{m, s};
}
__device__ __forceinline__ float lse_value(Lse a) { return a.m == -inf_f() ? -inf_f() : a.m + logf(a.s); }

// ---- reductions (fixed trees: results do not depend on scheduling) ----

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = nanmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ Lse warp_lse(Lse v) {
  for (int o = 16; o > 0; o >>= 1) {
    Lse other{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = lse_merge(v, other);
  }
  return v;
}

// Block-wide reductions for blockDim.x a multiple of 32 (≤ 1024). Every thread gets the result.
// `scratch` holds 32 values of the reduced type; the call ends with a barrier so it can be reused.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < warps ? scratch[lane] : T(0);
  r = warp_sum(r);
  __syncthreads();
  return r;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < warps ? scratch[lane] : -inf_f();
  r = warp_max(r);
  __syncthreads();
  return r;
}

__device__ __forceinline__ Lse block_lse(Lse v, float* scratch_m, float* scratch_s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_lse(v);
  if (lane == 0) {
    scratch_m[warp] = v.m;
    scratch_s[warp] = v.s;
  }
  __syncthreads();
  Lse r = lane < warps ? Lse{scratch_m[lane], scratch_s[lane]} : lse_empty();
  r = warp_lse(r);
  __syncthreads();
  return r;
}

// Grid-stride loop over [0, n) with 64-bit indices.
#define GRID_STRIDE(i, n) \
  for (i64 i = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += static_cast<i64>(gridDim.x) * blockDim.x)

// ---- the error word ----
// int32[4] in device memory: {code, index, value, bound}; code 0 = no error. The first kernel
// thread to find a bad index claims it; the host reads it back with the next read or
// synchronize and throws IndexError (kernels/native/src/cuda/bind_cuda.cc has the messages).
#define ERR_EMBEDDING 1
#define ERR_EMBEDDING_BACKWARD 2
#define ERR_TOKEN_LOGPROBS 3
#define ERR_TOKEN_LOGPROBS_BACKWARD 4
__device__ __forceinline__ void report_index_error(int* word, int code, i64 index, i64 value, i64 bound) {
  if (atomicCAS(word, 0, code) == 0) {
    word[1] = static_cast<int>(index);
    word[2] = static_cast<int>(value);
    word[3] = static_cast<int>(bound);
  }
}

// The block's dynamic shared memory (the launch's sharedBytes) as a float array. A macro so that
// the CPU emulator of test/kernels/fixtures/cuda-emu can supply it (it defines ALIGN_CUDA_EMULATION).
#ifdef ALIGN_CUDA_EMULATION
#define DYNAMIC_SHARED(name) float* name = emu_dynamic_shared()
#else
#define DYNAMIC_SHARED(name) extern __shared__ float name[]
#endif

// Instantiates an extern "C" entry point per storage type: NAME_f32 and NAME_bf16.
#define FOR_FLOAT_TYPES(DEFINE) DEFINE(f32, float) DEFINE(bf16, bf16)
