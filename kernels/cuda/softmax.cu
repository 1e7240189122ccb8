// Row-wise softmax / log-softmax and their gradients, and the fused log-softmax + gather over the
// vocabulary (tokenLogprobs) — kernels/reference/softmax.ts and token-logprobs.ts.
//
// One block per row, rows taken in a grid-stride loop, so a block never holds more than one
// vocabulary row: the log-sum-exp is computed online (running max and rescaled sum, Milakov &
// Gimelshein 2018) in one pass over the row, then the row is written in a second pass. NaN and
// ±Inf follow the reference's rowLogSumExp (see Lse in common.cuh).
//
// Build: NVRTC at run time (kernels/cuda-backend.ts); compile check: kernels/cuda/check.sh.
#include "common.cuh"

// Online log-sum-exp of one row, shared by every thread of the block.
template <typename T>
__device__ __forceinline__ float row_lse(const T* row, i64 n, float* sm, float* ss) {
  Lse acc = lse_empty();
  for (i64 j = threadIdx.x; j < n; j += blockDim.x) acc = lse_add(acc, to_f(row[j]));
  return lse_value(block_lse(acc, sm, ss));
}

#define DEFINE_SOFTMAX(name, T)                                                                         \
  /* x [rows, n] → out [rows, n] */                                                                    \
  extern "C" __global__ void softmax_##name(const T* x, T* out, i64 rows, i64 n) {                      \
    __shared__ float sm[32], ss[32];                                                                    \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      const float lse = row_lse(x + r * n, n, sm, ss);                                                  \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) out[r * n + j] = from_f<T>(expf(to_f(x[r * n + j]) - lse)); \
    }                                                                                                   \
  }                                                                                                     \
  extern "C" __global__ void logSoftmax_##name(const T* x, T* out, i64 rows, i64 n) {                   \
    __shared__ float sm[32], ss[32];                                                                    \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      const float lse = row_lse(x + r * n, n, sm, ss);                                                  \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) out[r * n + j] = from_f<T>(to_f(x[r * n + j]) - lse); \
    }                                                                                                   \
  }                                                                                                     \
  /* y, g [rows, n] → gx = y · (g − Σ g y) */                                                         \
  extern "C" __global__ void softmaxBackward_##name(const T* y, const T* g, T* gx, i64 rows, i64 n) {   \
    __shared__ float scratch[32];                                                                       \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      float dot = 0.0f;                                                                                 \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) dot += to_f(g[r * n + j]) * to_f(y[r * n + j]); \
      dot = block_sum(dot, scratch);                                                                    \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x)                                                 \
        gx[r * n + j] = from_f<T>(to_f(y[r * n + j]) * (to_f(g[r * n + j]) - dot));                     \
    }                                                                                                   \
  }                                                                                                     \
  /* y, g [rows, n] → gx = g − exp(y) · Σ g */                                                        \
  extern "C" __global__ void logSoftmaxBackward_##name(const T* y, const T* g, T* gx, i64 rows, i64 n) { \
    __shared__ float scratch[32];                                                                       \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      float sum = 0.0f;                                                                                 \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) sum += to_f(g[r * n + j]);                      \
      sum = block_sum(sum, scratch);                                                                    \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x)                                                 \
        gx[r * n + j] = from_f<T>(to_f(g[r * n + j]) - expf(to_f(y[r * n + j])) * sum);                 \
    }                                                                                                   \
  }                                                                                                     \
  /* logits [rows, V], targets i32 [rows] → out [rows] = logits[r, t] − lse[r], lse [rows] (f32);     \
     a row whose target is ignoreIndex gets 0; another target outside [0, V) is an IndexError */       \
  extern "C" __global__ void tokenLogprobs_##name(const T* logits, const int* targets, float* out, float* lse, \
                                                  i64 rows, i64 V, int ignore_index, int* err) {        \
    __shared__ float sm[32], ss[32];                                                                    \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      const float z = row_lse(logits + r * V, V, sm, ss);                                               \
      if (threadIdx.x == 0) {                                                                           \
        const int t = targets[r];                                                                       \
        lse[r] = z;                                                                                     \
        if (t == ignore_index) {                                                                        \
          out[r] = 0.0f;                                                                                \
        } else if (t < 0 || t >= V) {                                                                   \
          out[r] = 0.0f;                                                                                \
          report_index_error(err, ERR_TOKEN_LOGPROBS, r, t, V);                                         \
        } else {                                                                                        \
          out[r] = to_f(logits[r * V + t]) - z;                                                         \
        }                                                                                               \
      }                                                                                                 \
    }                                                                                                   \
  }                                                                                                     \
  /* logits [rows, V], targets, lse, g [rows] → gx [rows, V] = g · (1[v = t] − exp(logits − lse)) */  \
  extern "C" __global__ void tokenLogprobsBackward_##name(const T* logits, const int* targets, const float* lse, \
                                                          const float* g, T* gx, i64 rows, i64 V, int ignore_index, int* err) { \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      const int t = targets[r];                                                                         \
      const bool skip = t == ignore_index || t < 0 || t >= V;                                           \
      if (threadIdx.x == 0 && t != ignore_index && (t < 0 || t >= V))                                   \
        report_index_error(err, ERR_TOKEN_LOGPROBS_BACKWARD, r, t, V);                                  \
      const float gr = g[r], z = lse[r];                                                                \
      for (i64 v = threadIdx.x; v < V; v += blockDim.x) {                                               \
        const float p = expf(to_f(logits[r * V + v]) - z);                                              \
        gx[r * V + v] = from_f<T>(skip ? 0.0f : gr * ((v == t ? 1.0f : 0.0f) - p));                     \
      }                                                                                                 \
    }                                                                                                   \
  }
FOR_FLOAT_TYPES(DEFINE_SOFTMAX)
