// Reductions over the middle axis of an [outer, n, inner] view: reduceSum, reduceMax and its
// gradient (kernels/reference/reduce.ts). f32 accumulation in fixed trees: for inner == 1 one
// block per row; for inner > 1 (column sums, e.g. bias gradients) the n axis is cut into a fixed
// number of chunks whose partial sums are added in chunk order by a second kernel, so that many
// threads work even when outer·inner is small and results never depend on scheduling.
//
// Build: NVRTC at run time (kernels/cuda-backend.ts); compile check: kernels/cuda/check.sh.
#include "common.cuh"

#define DEFINE_REDUCE(name, T)                                                                          \
  /* x [outer, n] → out [outer]: one block per row */                                                  \
  extern "C" __global__ void reduceSumRows_##name(const T* x, T* out, i64 outer, i64 n) {               \
    __shared__ float scratch[32];                                                                       \
    for (i64 o = blockIdx.x; o < outer; o += gridDim.x) {                                               \
      float acc = 0.0f;                                                                                 \
      for (i64 i = threadIdx.x; i < n; i += blockDim.x) acc += to_f(x[o * n + i]);                      \
      acc = block_sum(acc, scratch);                                                                    \
      if (threadIdx.x == 0) out[o] = from_f<T>(acc);                                                    \
    }                                                                                                   \
  }                                                                                                     \
  /* x [outer, n, inner] → partial [chunks, outer·inner]: chunk c sums rows [c·len, (c+1)·len) */       \
  extern "C" __global__ void reduceSumCols_##name(const T* x, float* partial, i64 outer, i64 n, i64 inner, i64 len) { \
    const i64 m = outer * inner, c = blockIdx.y;                                                        \
    GRID_STRIDE(k, m) {                                                                                 \
      const i64 o = k / inner, j = k % inner;                                                           \
      const i64 end = min(n, (c + 1) * len);                                                            \
      float acc = 0.0f;                                                                                 \
      for (i64 i = c * len; i < end; i++) acc += to_f(x[(o * n + i) * inner + j]);                      \
      partial[c * m + k] = acc;                                                                         \
    }                                                                                                   \
  }                                                                                                     \
  /* partial [chunks, m] → out [m], chunks added in order */                                           \
  extern "C" __global__ void reduceSumFinish_##name(const float* partial, T* out, i64 m, i64 chunks) {  \
    GRID_STRIDE(k, m) {                                                                                 \
      float acc = 0.0f;                                                                                 \
      for (i64 c = 0; c < chunks; c++) acc += partial[c * m + k];                                       \
      out[k] = from_f<T>(acc);                                                                          \
    }                                                                                                   \
  }                                                                                                     \
  /* x [outer, n] → out [outer]; NaN propagates; n = 0 gives −Inf */                                   \
  extern "C" __global__ void reduceMaxRows_##name(const T* x, T* out, i64 outer, i64 n) {               \
    __shared__ float scratch[32];                                                                       \
    for (i64 o = blockIdx.x; o < outer; o += gridDim.x) {                                               \
      float best = -inf_f();                                                                            \
      for (i64 i = threadIdx.x; i < n; i += blockDim.x) best = nanmax(best, to_f(x[o * n + i]));        \
      best = block_max(best, scratch);                                                                  \
      if (threadIdx.x == 0) out[o] = from_f<T>(best);                                                   \
    }                                                                                                   \
  }                                                                                                     \
  /* x [outer, n, inner] → out [outer, inner]: one thread per output */                                \
  extern "C" __global__ void reduceMaxCols_##name(const T* x, T* out, i64 outer, i64 n, i64 inner) {    \
    GRID_STRIDE(k, outer * inner) {                                                                     \
      const i64 o = k / inner, j = k % inner;                                                           \
      float best = -inf_f();                                                                            \
      for (i64 i = 0; i < n; i++) best = nanmax(best, to_f(x[(o * n + i) * inner + j]));                \
      out[k] = from_f<T>(best);                                                                         \
    }                                                                                                   \
  }                                                                                                     \
  /* x [outer, n, inner], y, g [outer, inner] → gx: g goes to the first i where x equals y (or both    \
     are NaN), 0 elsewhere */                                                                          \
  extern "C" __global__ void reduceMaxBackward_##name(const T* x, const T* y, const T* g, T* gx, i64 outer, i64 n, i64 inner) { \
    GRID_STRIDE(k, outer * inner) {                                                                     \
      const i64 o = k / inner, j = k % inner;                                                           \
      const float target = to_f(y[k]), gv = to_f(g[k]);                                                 \
      bool found = false;                                                                               \
      for (i64 i = 0; i < n; i++) {                                                                     \
        const i64 at = (o * n + i) * inner + j;                                                         \
        const float v = to_f(x[at]);                                                                    \
        const bool hit = !found && (v == target || (is_nan(v) && is_nan(target)));                      \
        gx[at] = from_f<T>(hit ? gv : 0.0f);                                                            \
        found = found || hit;                                                                           \
      }                                                                                                 \
    }                                                                                                   \
  }
FOR_FLOAT_TYPES(DEFINE_REDUCE)
