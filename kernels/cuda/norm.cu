// RMSNorm (Zhang & Sennrich 2019) and LayerNorm (Ba et al. 2016), forward and backward —
// kernels/reference/rms-norm.ts and layer-norm.ts. One block per row for the row statistics and
// the input gradient; the weight/bias gradients are column sums over rows, done in a fixed number
// of row chunks (…Cols kernels write partial sums [chunks, n]) and finished by reduceSumFinish
// (reduce.cu) in chunk order: deterministic, no atomics. Statistics (rstd, mean) are f32.
//
// Build: NVRTC at run time (kernels/cuda-backend.ts); compile check: kernels/cuda/check.sh.
#include "common.cuh"

#define DEFINE_NORM(name, T)                                                                            \
  /* x [rows, n], w [n] → out [rows, n], rstd [rows] = 1/√(mean x² + eps) */                          \
  extern "C" __global__ void rmsNorm_##name(const T* x, const T* w, T* out, float* rstd, i64 rows, i64 n, float eps) { \
    __shared__ float scratch[32];                                                                       \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      const T* xr = x + r * n;                                                                          \
      float ss = 0.0f;                                                                                  \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) {                                               \
        const float v = to_f(xr[j]);                                                                    \
        ss += v * v;                                                                                    \
      }                                                                                                 \
      ss = block_sum(ss, scratch);                                                                      \
      const float inv = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);                                 \
      if (threadIdx.x == 0) rstd[r] = inv;                                                              \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) out[r * n + j] = from_f<T>(to_f(xr[j]) * inv * to_f(w[j])); \
    }                                                                                                   \
  }                                                                                                     \
  /* x, g [rows, n], w [n], rstd [rows] → gx [rows, n] = rstd·(ĝ − x̂·mean(ĝ x̂)), ĝ = g·w, x̂ = x·rstd */ \
  extern "C" __global__ void rmsNormBackward_##name(const T* x, const T* w, const float* rstd, const T* g, T* gx, i64 rows, i64 n) { \
    __shared__ float scratch[32];                                                                       \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      const float inv = rstd[r];                                                                        \
      float dot = 0.0f;                                                                                 \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x)                                                 \
        dot += to_f(g[r * n + j]) * to_f(w[j]) * to_f(x[r * n + j]) * inv;                              \
      const float mean_dot = block_sum(dot, scratch) / static_cast<float>(n);                           \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) {                                               \
        const float xhat = to_f(x[r * n + j]) * inv;                                                    \
        gx[r * n + j] = from_f<T>(inv * (to_f(g[r * n + j]) * to_f(w[j]) - xhat * mean_dot));           \
      }                                                                                                 \
    }                                                                                                   \
  }                                                                                                     \
  /* partial [chunks, n]: chunk c = blockIdx.y sums g·x̂ over rows [c·len, (c+1)·len) */               \
  extern "C" __global__ void rmsNormCols_##name(const T* x, const float* rstd, const T* g, float* partial, i64 rows, i64 n, i64 len) { \
    const i64 c = blockIdx.y, end = min(rows, (c + 1) * len);                                           \
    GRID_STRIDE(j, n) {                                                                                 \
      float acc = 0.0f;                                                                                 \
      for (i64 r = c * len; r < end; r++) acc += to_f(g[r * n + j]) * to_f(x[r * n + j]) * rstd[r];     \
      partial[c * n + j] = acc;                                                                         \
    }                                                                                                   \
  }                                                                                                     \
  /* x [rows, n], w, b [n] → out = (x − mean)·rstd·w + b; mean, rstd [rows]; biased variance */        \
  extern "C" __global__ void layerNorm_##name(const T* x, const T* w, const T* b, T* out, float* mean, float* rstd, \
                                              i64 rows, i64 n, float eps) {                             \
    __shared__ float scratch[32];                                                                       \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      const T* xr = x + r * n;                                                                          \
      float s = 0.0f;                                                                                   \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) s += to_f(xr[j]);                               \
      const float mu = block_sum(s, scratch) / static_cast<float>(n);                                   \
      float v = 0.0f;                                                                                   \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) {                                               \
        const float d = to_f(xr[j]) - mu;                                                               \
        v += d * d;                                                                                     \
      }                                                                                                 \
      const float inv = 1.0f / sqrtf(block_sum(v, scratch) / static_cast<float>(n) + eps);              \
      if (threadIdx.x == 0) {                                                                           \
        mean[r] = mu;                                                                                   \
        rstd[r] = inv;                                                                                  \
      }                                                                                                 \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x)                                                 \
        out[r * n + j] = from_f<T>((to_f(xr[j]) - mu) * inv * to_f(w[j]) + to_f(b[j]));                \
    }                                                                                                   \
  }                                                                                                     \
  /* gx = rstd·(ĝ − mean ĝ − x̂·mean(ĝ x̂)) per row */                                                  \
  extern "C" __global__ void layerNormBackward_##name(const T* x, const T* w, const float* mean, const float* rstd, \
                                                      const T* g, T* gx, i64 rows, i64 n) {             \
    __shared__ float scratch[32];                                                                       \
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                \
      const float mu = mean[r], inv = rstd[r];                                                          \
      float sg = 0.0f, sgx = 0.0f;                                                                      \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) {                                               \
        const float gh = to_f(g[r * n + j]) * to_f(w[j]);                                               \
        sg += gh;                                                                                       \
        sgx += gh * (to_f(x[r * n + j]) - mu) * inv;                                                    \
      }                                                                                                 \
      const float mean_g = block_sum(sg, scratch) / static_cast<float>(n);                              \
      const float mean_gx = block_sum(sgx, scratch) / static_cast<float>(n);                            \
      for (i64 j = threadIdx.x; j < n; j += blockDim.x) {                                               \
        const float xhat = (to_f(x[r * n + j]) - mu) * inv;                                             \
        gx[r * n + j] = from_f<T>(inv * (to_f(g[r * n + j]) * to_f(w[j]) - mean_g - xhat * mean_gx));   \
      }                                                                                                 \
    }                                                                                                   \
  }                                                                                                     \
  /* partials [chunks, n] of gw = Σ g·x̂ and gb = Σ g over row chunks */                               \
  extern "C" __global__ void layerNormCols_##name(const T* x, const float* mean, const float* rstd, const T* g, \
                                                  float* pw, float* pb, i64 rows, i64 n, i64 len) {     \
    const i64 c = blockIdx.y, end = min(rows, (c + 1) * len);                                           \
    GRID_STRIDE(j, n) {                                                                                 \
      float aw = 0.0f, ab = 0.0f;                                                                       \
      for (i64 r = c * len; r < end; r++) {                                                             \
        const float gv = to_f(g[r * n + j]);                                                            \
        aw += gv * (to_f(x[r * n + j]) - mean[r]) * rstd[r];                                            \
        ab += gv;                                                                                       \
      }                                                                                                 \
      pw[c * n + j] = aw;                                                                               \
      pb[c * n + j] = ab;                                                                               \
    }                                                                                                   \
  }
FOR_FLOAT_TYPES(DEFINE_NORM)
