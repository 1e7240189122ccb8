// The GPU as the backend sees it: device 0's primary context and ONE compute stream, a caching
// device allocator, pinned staging for reads, and the device "error word" kernels use to report
// bad indices. Everything is process-global and created lazily by the first call that needs a
// GPU; all work goes to the one stream in call order, so a block freed by JS can be handed to the
// next allocation at once (any later kernel that writes it runs after every earlier reader).
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "cuda/loader.h"

namespace aligner {
namespace cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;
  size_t total_memory = 0;
  int multiprocessors = 0;
  int max_shared_optin = 0;  // bytes of dynamic shared memory a kernel may opt into
};

// What the driver says, without throwing: used by probe().
struct DriverReport {
  bool driver_loaded = false;
  int driver_version = 0;        // e.g. 12040; 0 when unknown
  int device_count = -1;         // -1 when unknown
  std::vector<DeviceInfo> devices;
  std::string no_gpu_reason;     // empty when a GPU is usable
};
DriverReport driver_report();

struct Gpu {
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  CUstream stream = nullptr;
  DeviceInfo info;
  int driver_version = 0;
  CUdeviceptr error_word = 0;  // int32[4]: {code, index, value, bound}; code 0 = no error
};

// Device 0, initialised on first use. Throws NoGpuError saying exactly what is missing.
Gpu& gpu();
// Makes the context current on the calling thread (the libuv workers of async reads need it).
void make_current(const Gpu& g);

// "CUDA_ERROR_X (n): text" for a driver result.
std::string error_text(CUresult r);
// Throws CudaError (OutOfMemoryError for CUDA_ERROR_OUT_OF_MEMORY) when r is not success.
void check(CUresult r, const char* what);
#define CU_CHECK(call) ::aligner::cuda::check((call), #call)

// NVRTC and cuBLASLt, or NoGpuError naming the missing library.
const NvrtcFns& nvrtc();
const CublasLtFns& cublaslt();

struct AllocStats {
  i64 live_buffers = 0, live_bytes = 0, cached_bytes = 0, peak_bytes = 0;
  i64 device_allocs = 0, cache_hits = 0;
};

// Caching allocator. Blocks are rounded to a size class and kept after free for reuse.
class DeviceAllocator {
 public:
  CUdeviceptr alloc(size_t bytes);  // OutOfMemoryError names the requested and the free bytes
  void free(CUdeviceptr p);         // unknown pointers are a NativeError
  void empty_cache();               // waits for the stream, then returns cached blocks to the driver
  AllocStats stats() const;
  static size_t size_class(size_t bytes);

 private:
  mutable std::mutex mu_;
  std::unordered_map<CUdeviceptr, size_t> live_;                   // pointer → its block size
  std::unordered_map<size_t, std::vector<CUdeviceptr>> cache_;     // block size → free blocks
  AllocStats s_;
};
DeviceAllocator& allocator();

// Page-locked host blocks for device→host copies, reused by size class.
void* pinned_take(size_t bytes, size_t* capacity);
void pinned_give(void* p, size_t capacity);

}  // namespace cuda
}  // namespace aligner
