// cuBLASLt GEMM. cuBLASLt is column-major; a row-major C = A·B is the column-major Cᵀ = Bᵀ·Aᵀ,
// so Lt's first operand is our B and its second our A, each described as stored (the column-major
// view of a row-major [r, c] matrix is [c rows, r cols] with ld = c) and transposed by op flags.
#include "cuda/gemm.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>

namespace aligner {
namespace cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // what NVIDIA suggests for Hopper

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};

using Key = std::tuple<int, int, i64, i64, i64, i64, bool, bool, i64, i64, bool>;

struct Lt {
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  CUdeviceptr workspace = 0;
  std::map<Key, Plan> plans;
};

void lt_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("CudaError", std::string(what) + " failed: cublasStatus " + std::to_string(s));
}
#define LT_CHECK(call) lt_check((call), #call)

Lt& lt() {
  static Lt* state = nullptr;
  if (state) return *state;
  const CublasLtFns& f = cublaslt();
  gpu();
  auto* s = new Lt();
  LT_CHECK(f.cublasLtCreate(&s->handle));
  LT_CHECK(f.cublasLtMatmulPreferenceCreate(&s->pref));
  uint64_t ws = kWorkspaceBytes;
  LT_CHECK(f.cublasLtMatmulPreferenceSetAttribute(s->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  s->workspace = allocator().alloc(kWorkspaceBytes);
  state = s;
  return *state;
}

int data_type(GemmType t) { return t == GemmType::bf16 ? CUDA_R_16BF : CUDA_R_32F; }

bool tf32_allowed() {
  const char* v = std::getenv("ALIGN_CUDA_TF32");
  return v && std::strcmp(v, "1") == 0;
}

cublasLtMatrixLayout_t layout(int type, i64 rows, i64 cols, i64 ld, i64 batch, i64 stride) {
  const CublasLtFns& f = cublaslt();
  cublasLtMatrixLayout_t l = nullptr;
  LT_CHECK(f.cublasLtMatrixLayoutCreate(&l, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    int32_t count = static_cast<int32_t>(batch);
    int64_t offset = stride;
    LT_CHECK(f.cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    LT_CHECK(f.cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &offset, sizeof offset));
  }
  return l;
}

Plan& plan_for(const GemmArgs& g) {
  Lt& s = lt();
  const bool tf32 = g.in_type == GemmType::f32 && tf32_allowed();
  Key key{static_cast<int>(g.in_type), static_cast<int>(g.out_type), g.batch, g.M, g.N, g.K, g.trans_a, g.trans_b,
          g.stride_a, g.stride_b, tf32};
  auto it = s.plans.find(key);
  if (it != s.plans.end()) return it->second;

  const CublasLtFns& f = cublaslt();
  Plan p;
  LT_CHECK(f.cublasLtMatmulDescCreate(&p.desc, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const int32_t op_a = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // Lt's A is our B
  const int32_t op_b = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // Lt's B is our A
  LT_CHECK(f.cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  LT_CHECK(f.cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  const int in = data_type(g.in_type), out = data_type(g.out_type);
  // our B: [K, N] row-major = col-major N×K (ld N); transposed storage [N, K] = col-major K×N (ld K)
  p.a = g.trans_b ? layout(in, g.K, g.N, g.K, g.batch, g.stride_b) : layout(in, g.N, g.K, g.N, g.batch, g.stride_b);
  // our A: [M, K] row-major = col-major K×M (ld K); transposed storage [K, M] = col-major M×K (ld M)
  p.b = g.trans_a ? layout(in, g.M, g.K, g.M, g.batch, g.stride_a) : layout(in, g.K, g.M, g.K, g.batch, g.stride_a);
  // out: [M, N] row-major = col-major N×M (ld N)
  p.c = layout(out, g.N, g.M, g.N, g.batch, g.M * g.N);
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  LT_CHECK(f.cublasLtMatmulAlgoGetHeuristic(s.handle, p.desc, p.a, p.b, p.c, p.c, s.pref, 1, &result, &returned));
  if (returned < 1)
    fail("CudaError", "cuBLASLt has no algorithm for this GEMM (M=" + std::to_string(g.M) + ", N=" + std::to_string(g.N) +
                          ", K=" + std::to_string(g.K) + ", batch=" + std::to_string(g.batch) + ")");
  p.algo = result.algo;
  p.workspace = result.workspaceSize;
  return s.plans.emplace(key, p).first->second;
}

}  // namespace

void gemm(const GemmArgs& g) {
  Gpu& dev = gpu();
  if (g.batch == 0 || g.M == 0 || g.N == 0) return;
  const size_t out_bytes = static_cast<size_t>(g.batch * g.M * g.N) * (g.out_type == GemmType::bf16 ? 2 : 4);
  if (g.K == 0) {  // an empty sum: zeros, which cuBLASLt would reject as a shape
    CU_CHECK(libraries().cu.cuMemsetD8Async(g.out, 0, out_bytes, dev.stream));
    return;
  }
  Plan& p = plan_for(g);
  Lt& s = lt();
  const float alpha = 1.0f, beta = 0.0f;
  LT_CHECK(cublaslt().cublasLtMatmul(s.handle, p.desc, &alpha, reinterpret_cast<const void*>(g.b), p.a,
                                     reinterpret_cast<const void*>(g.a), p.b, &beta, reinterpret_cast<void*>(g.out),
                                     p.c, reinterpret_cast<void*>(g.out), p.c, &p.algo,
                                     reinterpret_cast<void*>(s.workspace), kWorkspaceBytes, dev.stream));
}

}  // namespace cuda
}  // namespace aligner
