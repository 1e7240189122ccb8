// Optimizer kernels — AdamW (Loshchilov & Hutter 2019, Algorithm 2, in PyTorch's order of
// operations; kernels/reference/adamw.ts) and global gradient-norm clipping (Pascanu et al. 2013;
// kernels/reference/clip-grad-norm.ts), both multi-tensor: one launch covers every parameter,
// described by an array of records in device memory (grid.y = tensor), so a step costs a few
// launches instead of one or more per parameter. fp32 master weights and optimizer state.
//
// clipGradNorm never syncs with the host: the norm and the scale factor stay on the device and
// the scaling kernel reads the factor there. Sums of squares are f64, in a fixed partition
// (kClipBlocks blocks per tensor, then partials added in order by one block).
//
// Build: NVRTC at run time (kernels/cuda-backend.ts); compile check: kernels/cuda/check.sh.
#include "common.cuh"

// One parameter of an AdamW step (64 bytes; kernels/cuda-backend.ts packs the same layout).
struct AdamRecord {
  float* p;
  const float* g;
  float* m;
  float* v;
  i64 n;
  float decay;      // 1 − lr·weightDecay
  float step_size;  // lr / (1 − β1^step)
  float bc2_sqrt;   // √(1 − β2^step)
  float beta1, beta2, eps;
};

// records [grid.y]: p ← p·decay; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; p ← p − step_size·m/(√v/bc2 + eps)
extern "C" __global__ void adamwMulti(const AdamRecord* records) {
  const AdamRecord r = records[blockIdx.y];
  for (i64 i = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x; i < r.n; i += static_cast<i64>(gridDim.x) * blockDim.x) {
    const float g = r.g[i];
    float p = r.p[i] * r.decay;
    const float m = r.beta1 * r.m[i] + (1.0f - r.beta1) * g;
    const float v = r.beta2 * r.v[i] + (1.0f - r.beta2) * g * g;
    r.m[i] = m;
    r.v[i] = v;
    r.p[i] = p - r.step_size * (m / (sqrtf(v) / r.bc2_sqrt + r.eps));
  }
}

struct GradRecord {
  float* g;
  i64 n;
};

#define CLIP_BLOCKS 64  // blocks per tensor in the sum of squares: part of the fixed partition

// partial [tensors·CLIP_BLOCKS]: block (x, y) sums g_y[i]² over its grid-stride share of tensor y
extern "C" __global__ void clipGradNormPartial(const GradRecord* grads, double* partial) {
  __shared__ double scratch[32];
  const GradRecord r = grads[blockIdx.y];
  double acc = 0.0;
  for (i64 i = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x; i < r.n; i += static_cast<i64>(gridDim.x) * blockDim.x) {
    const double v = r.g[i];
    acc += v * v;
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.y * gridDim.x + blockIdx.x] = acc;
}

// One block: norm = √Σ partial; out[0] = norm; coef[0] = maxNorm/(norm + 1e-6) when norm > maxNorm, else 1
extern "C" __global__ void clipGradNormFinish(const double* partial, i64 count, float max_norm, float* out, float* coef) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (i64 i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) {
    const double norm = sqrt(acc);
    out[0] = static_cast<float>(norm);
    coef[0] = norm > static_cast<double>(max_norm) ? static_cast<float>(static_cast<double>(max_norm) / (norm + 1e-6)) : 1.0f;
  }
}

// g_y ← g_y · coef (a no-op pass when coef is 1)
extern "C" __global__ void clipGradNormScale(const GradRecord* grads, const float* coef) {
  const float c = coef[0];
  if (c == 1.0f) return;
  const GradRecord r = grads[blockIdx.y];
  for (i64 i = static_cast<i64>(blockIdx.x) * blockDim.x + threadIdx.x; i < r.n; i += static_cast<i64>(gridDim.x) * blockDim.x)
    r.g[i] = r.g[i] * c;
}
