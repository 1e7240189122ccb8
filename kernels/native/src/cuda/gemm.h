// Row-major batched GEMM on the GPU through cuBLASLt, with the semantics of the `matmul` kernel
// in kernels/backend.ts: out[b] = op(A[b]) · op(B[b]), A[b] at b·strideA, B[b] at b·strideB.
#pragma once

#include "cuda/device.h"

namespace aligner {
namespace cuda {

enum class GemmType { f32 = 0, bf16 = 1 };

struct GemmArgs {
  CUdeviceptr a, b, out;
  GemmType in_type;   // A and B share it
  GemmType out_type;  // bf16 inputs may write f32 (fp32 accumulation either way)
  i64 batch, M, N, K;
  bool trans_a, trans_b;
  i64 stride_a, stride_b;  // elements; 0 = the same matrix for every batch entry
};

// Queues the GEMM on the stream. f32 inputs use full fp32 math (CUBLAS_COMPUTE_32F) unless
// ALIGN_CUDA_TF32=1, so results match the CPU backend to f32 rounding; bf16 inputs always
// accumulate in fp32. Plans (layouts + heuristic algorithm) are cached per shape.
void gemm(const GemmArgs& g);

}  // namespace cuda
}  // namespace aligner
