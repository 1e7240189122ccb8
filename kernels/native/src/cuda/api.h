// Hand-declared CUDA ABI: the handful of types, enum values and function signatures the CUDA
// backend uses from the driver (libcuda), the runtime (libcudart), cuBLASLt, NVRTC and NCCL.
//
// Why by hand: the addon must build on machines with no CUDA toolkit (CI, laptops) and still
// drive a GPU where one exists, so nothing here includes a CUDA header and every library is
// dlopen'ed at run time (loader.cc). The values were checked against cuda.h, library_types.h,
// cublas_api.h and cublasLt.h of CUDA 13.2 (the headers PyTorch's wheels ship);
// test/kernels/fixtures/cuda-abi-check.cc static_asserts them against real headers wherever
// those are installed. Driver symbols use their versioned names (cuMemAlloc_v2, …) because
// cuda.h #defines the plain names to them and the plain ones are the legacy ABI.
//
// Each FNS list is an X-macro: X(name, return type, (parameters)). The loader resolves every
// entry with dlsym; a library with any symbol missing counts as not loaded.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aligner {
namespace cuda {

// ---- driver API ----
using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
using CUstream = struct CUstream_st*;
using CUevent = struct CUevent_st*;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_OUT_OF_MEMORY = 2;
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;
constexpr CUresult CUDA_ERROR_NOT_READY = 600;

constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
constexpr int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
constexpr unsigned CU_STREAM_NON_BLOCKING = 0x1;
constexpr unsigned CU_EVENT_DEFAULT = 0x0;
constexpr unsigned CU_EVENT_DISABLE_TIMING = 0x2;

// cuLaunchKernel's `extra` markers CU_LAUNCH_PARAM_END / _BUFFER_POINTER / _BUFFER_SIZE (cuda.h
// defines them as macros for these small integers cast to void*; other names here avoid a clash).
inline void* const kLaunchParamEnd = reinterpret_cast<void*>(0x00);
inline void* const kLaunchParamBufferPointer = reinterpret_cast<void*>(0x01);
inline void* const kLaunchParamBufferSize = reinterpret_cast<void*>(0x02);

#define ALIGN_CUDA_DRIVER_FNS(X)                                                                              \
  X(cuInit, CUresult, (unsigned int flags))                                                                   \
  X(cuDriverGetVersion, CUresult, (int* version))                                                             \
  X(cuDeviceGetCount, CUresult, (int* count))                                                                 \
  X(cuDeviceGet, CUresult, (CUdevice * device, int ordinal))                                                  \
  X(cuDeviceGetName, CUresult, (char* name, int len, CUdevice dev))                                           \
  X(cuDeviceGetAttribute, CUresult, (int* value, int attrib, CUdevice dev))                                   \
  X(cuDeviceTotalMem_v2, CUresult, (size_t * bytes, CUdevice dev))                                            \
  X(cuDevicePrimaryCtxRetain, CUresult, (CUcontext * ctx, CUdevice dev))                                      \
  X(cuCtxSetCurrent, CUresult, (CUcontext ctx))                                                               \
  X(cuStreamCreate, CUresult, (CUstream * stream, unsigned int flags))                                        \
  X(cuStreamSynchronize, CUresult, (CUstream stream))                                                         \
  X(cuMemAlloc_v2, CUresult, (CUdeviceptr * ptr, size_t bytes))                                               \
  X(cuMemFree_v2, CUresult, (CUdeviceptr ptr))                                                                \
  X(cuMemGetInfo_v2, CUresult, (size_t * free_bytes, size_t * total_bytes))                                   \
  X(cuMemAllocHost_v2, CUresult, (void** ptr, size_t bytes))                                                  \
  X(cuMemFreeHost, CUresult, (void* ptr))                                                                     \
  X(cuMemcpyHtoDAsync_v2, CUresult, (CUdeviceptr dst, const void* src, size_t bytes, CUstream stream))        \
  X(cuMemcpyDtoHAsync_v2, CUresult, (void* dst, CUdeviceptr src, size_t bytes, CUstream stream))              \
  X(cuMemcpyDtoDAsync_v2, CUresult, (CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream))        \
  X(cuMemsetD8Async, CUresult, (CUdeviceptr dst, unsigned char value, size_t bytes, CUstream stream))         \
  X(cuModuleLoadData, CUresult, (CUmodule * module, const void* image))                                       \
  X(cuModuleGetFunction, CUresult, (CUfunction * fn, CUmodule module, const char* name))                      \
  X(cuFuncSetAttribute, CUresult, (CUfunction fn, int attrib, int value))                                     \
  X(cuLaunchKernel, CUresult,                                                                                 \
    (CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,             \
     unsigned shared_bytes, CUstream stream, void** params, void** extra))                                    \
  X(cuEventCreate, CUresult, (CUevent * event, unsigned int flags))                                           \
  X(cuEventRecord, CUresult, (CUevent event, CUstream stream))                                                \
  X(cuEventSynchronize, CUresult, (CUevent event))                                                            \
  X(cuEventQuery, CUresult, (CUevent event))                                                                  \
  X(cuEventDestroy_v2, CUresult, (CUevent event))                                                             \
  X(cuGetErrorName, CUresult, (CUresult error, const char** name))                                            \
  X(cuGetErrorString, CUresult, (CUresult error, const char** text))

// ---- runtime API (reported by probe; compute goes through the driver API) ----
using cudaError_t = int;
#define ALIGN_CUDA_RUNTIME_FNS(X)                              \
  X(cudaRuntimeGetVersion, cudaError_t, (int* version))        \
  X(cudaGetErrorString, const char*, (cudaError_t error))

// ---- cuBLASLt ----
using cublasStatus_t = int;
using cublasLtHandle_t = struct cublasLtContext*;
using cublasLtMatmulDesc_t = struct cublasLtMatmulDescOpaque_st*;
using cublasLtMatrixLayout_t = struct cublasLtMatrixLayoutOpaque_st*;
using cublasLtMatmulPreference_t = struct cublasLtMatmulPreferenceOpaque_st*;

struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};

constexpr cublasStatus_t CUBLAS_STATUS_SUCCESS = 0;
constexpr int CUDA_R_32F = 0;    // cudaDataType
constexpr int CUDA_R_16BF = 14;  // cudaDataType
constexpr int CUBLAS_COMPUTE_32F = 68;
constexpr int CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
constexpr int32_t CUBLAS_OP_N = 0;
constexpr int32_t CUBLAS_OP_T = 1;
constexpr int CUBLASLT_MATMUL_DESC_TRANSA = 3;
constexpr int CUBLASLT_MATMUL_DESC_TRANSB = 4;
constexpr int CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5;           // int32_t
constexpr int CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6;  // int64_t
constexpr int CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;     // uint64_t

#define ALIGN_CUBLASLT_FNS(X)                                                                                     \
  X(cublasLtGetVersion, size_t, ())                                                                               \
  X(cublasLtCreate, cublasStatus_t, (cublasLtHandle_t * handle))                                                  \
  X(cublasLtMatmulDescCreate, cublasStatus_t, (cublasLtMatmulDesc_t * desc, int compute_type, int scale_type))    \
  X(cublasLtMatmulDescDestroy, cublasStatus_t, (cublasLtMatmulDesc_t desc))                                       \
  X(cublasLtMatmulDescSetAttribute, cublasStatus_t,                                                               \
    (cublasLtMatmulDesc_t desc, int attr, const void* buf, size_t size))                                          \
  X(cublasLtMatrixLayoutCreate, cublasStatus_t,                                                                   \
    (cublasLtMatrixLayout_t * layout, int type, uint64_t rows, uint64_t cols, int64_t ld))                        \
  X(cublasLtMatrixLayoutDestroy, cublasStatus_t, (cublasLtMatrixLayout_t layout))                                 \
  X(cublasLtMatrixLayoutSetAttribute, cublasStatus_t,                                                             \
    (cublasLtMatrixLayout_t layout, int attr, const void* buf, size_t size))                                      \
  X(cublasLtMatmulPreferenceCreate, cublasStatus_t, (cublasLtMatmulPreference_t * pref))                          \
  X(cublasLtMatmulPreferenceDestroy, cublasStatus_t, (cublasLtMatmulPreference_t pref))                           \
  X(cublasLtMatmulPreferenceSetAttribute, cublasStatus_t,                                                         \
    (cublasLtMatmulPreference_t pref, int attr, const void* buf, size_t size))                                    \
  X(cublasLtMatmulAlgoGetHeuristic, cublasStatus_t,                                                               \
    (cublasLtHandle_t handle, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,        \
     cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref, int requested,          \
     cublasLtMatmulHeuristicResult_t* results, int* returned))                                                    \
  X(cublasLtMatmul, cublasStatus_t,                                                                               \
    (cublasLtHandle_t handle, cublasLtMatmulDesc_t op, const void* alpha, const void* A,                          \
     cublasLtMatrixLayout_t a_desc, const void* B, cublasLtMatrixLayout_t b_desc, const void* beta, const void* C, \
     cublasLtMatrixLayout_t c_desc, void* D, cublasLtMatrixLayout_t d_desc, const cublasLtMatmulAlgo_t* algo,     \
     void* workspace, size_t workspace_bytes, CUstream stream))

// ---- NVRTC ----
using nvrtcResult = int;
using nvrtcProgram = struct _nvrtcProgram*;
#define ALIGN_NVRTC_FNS(X)                                                                                      \
  X(nvrtcVersion, nvrtcResult, (int* major, int* minor))                                                        \
  X(nvrtcGetErrorString, const char*, (nvrtcResult result))                                                     \
  X(nvrtcCreateProgram, nvrtcResult,                                                                            \
    (nvrtcProgram * prog, const char* src, const char* name, int num_headers, const char* const* headers,       \
     const char* const* include_names))                                                                         \
  X(nvrtcCompileProgram, nvrtcResult, (nvrtcProgram prog, int num_options, const char* const* options))         \
  X(nvrtcGetProgramLogSize, nvrtcResult, (nvrtcProgram prog, size_t * size))                                    \
  X(nvrtcGetProgramLog, nvrtcResult, (nvrtcProgram prog, char* log))                                            \
  X(nvrtcGetCUBINSize, nvrtcResult, (nvrtcProgram prog, size_t * size))                                         \
  X(nvrtcGetCUBIN, nvrtcResult, (nvrtcProgram prog, char* cubin))                                               \
  X(nvrtcDestroyProgram, nvrtcResult, (nvrtcProgram * prog))

// ---- NCCL (nccl.h of NCCL 2.14+; the process group of kernels/distributed/nccl.ts) ----
using ncclResult_t = int;
using ncclComm_t = struct ncclComm*;
constexpr ncclResult_t ncclSuccess = 0;
constexpr ncclResult_t ncclInProgress = 7;
constexpr int ncclUint8 = 1, ncclInt32 = 2, ncclFloat32 = 7, ncclBfloat16 = 9;  // ncclDataType_t
constexpr int ncclSum = 0, ncclMax = 2;                                         // ncclRedOp_t
constexpr size_t kNcclUniqueIdBytes = 128;
struct ncclUniqueId {
  char internal[kNcclUniqueIdBytes];
};
// ncclConfig_t up to NCCL 2.14's fields; NCCL reads only the fields of the version written in it.
struct ncclConfig_t {
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking;
  int cgaClusterSize;
  int minCTAs;
  int maxCTAs;
  const char* netName;
};
constexpr unsigned int kNcclConfigMagic = 0xcafebeef;
constexpr unsigned int kNcclConfigVersion = 21403;  // NCCL_VERSION(2, 14, 3)
constexpr int kNcclConfigUndefInt = -2147483647 - 1;
#define ALIGN_NCCL_FNS(X)                                                                                                  \
  X(ncclGetVersion, ncclResult_t, (int* version))                                                                         \
  X(ncclGetErrorString, const char*, (ncclResult_t result))                                                               \
  X(ncclGetUniqueId, ncclResult_t, (ncclUniqueId * id))                                                                   \
  X(ncclCommInitRankConfig, ncclResult_t, (ncclComm_t * comm, int nranks, ncclUniqueId id, int rank, ncclConfig_t* config)) \
  X(ncclCommGetAsyncError, ncclResult_t, (ncclComm_t comm, ncclResult_t * error))                                         \
  X(ncclCommAbort, ncclResult_t, (ncclComm_t comm))                                                                       \
  X(ncclCommDestroy, ncclResult_t, (ncclComm_t comm))                                                                     \
  X(ncclGroupStart, ncclResult_t, ())                                                                                     \
  X(ncclGroupEnd, ncclResult_t, ())                                                                                       \
  X(ncclAllReduce, ncclResult_t, (const void* send, void* recv, size_t count, int dtype, int op, ncclComm_t comm, CUstream stream)) \
  X(ncclAllGather, ncclResult_t, (const void* send, void* recv, size_t sendcount, int dtype, ncclComm_t comm, CUstream stream)) \
  X(ncclReduceScatter, ncclResult_t, (const void* send, void* recv, size_t recvcount, int dtype, int op, ncclComm_t comm, CUstream stream)) \
  X(ncclBroadcast, ncclResult_t, (const void* send, void* recv, size_t count, int dtype, int root, ncclComm_t comm, CUstream stream)) \
  X(ncclSend, ncclResult_t, (const void* buf, size_t count, int dtype, int peer, ncclComm_t comm, CUstream stream))      \
  X(ncclRecv, ncclResult_t, (void* buf, size_t count, int dtype, int peer, ncclComm_t comm, CUstream stream))

// Function tables, one per library, filled by the loader.
#define ALIGN_CUDA_DECLARE_FN(name, ret, params) ret(*name) params = nullptr;
struct DriverFns {
  ALIGN_CUDA_DRIVER_FNS(ALIGN_CUDA_DECLARE_FN)
};
struct RuntimeFns {
  ALIGN_CUDA_RUNTIME_FNS(ALIGN_CUDA_DECLARE_FN)
};
struct CublasLtFns {
  ALIGN_CUBLASLT_FNS(ALIGN_CUDA_DECLARE_FN)
};
struct NvrtcFns {
  ALIGN_NVRTC_FNS(ALIGN_CUDA_DECLARE_FN)
};
struct NcclFns {
  ALIGN_NCCL_FNS(ALIGN_CUDA_DECLARE_FN)
};
#undef ALIGN_CUDA_DECLARE_FN

}  // namespace cuda
}  // namespace aligner
