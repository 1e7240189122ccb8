// Device discovery, the context and stream, CUDA error text, and the caching allocators.
#include "cuda/device.h"

#include <memory>

namespace aligner {
namespace cuda {

namespace {

const DriverFns& cu() { return libraries().cu; }

[[noreturn]] void no_gpu(const std::string& why) { fail("NoGpuError", why); }

DeviceInfo query_device(int index, CUdevice dev) {
  const DriverFns& d = cu();
  DeviceInfo info;
  info.index = index;
  char name[256] = {0};
  if (d.cuDeviceGetName(name, sizeof name - 1, dev) == CUDA_SUCCESS) info.name = name;
  d.cuDeviceGetAttribute(&info.major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  d.cuDeviceGetAttribute(&info.minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  d.cuDeviceGetAttribute(&info.multiprocessors, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
  d.cuDeviceGetAttribute(&info.max_shared_optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev);
  d.cuDeviceTotalMem_v2(&info.total_memory, dev);
  return info;
}

// The reason no GPU is usable, or "" — shared by probe() and gpu() so both say the same thing.
std::string driver_problem(int* version, int* count) {
  const Libraries& libs = libraries();
  if (!libs.driver.loaded) return libs.driver.error;
  const DriverFns& d = cu();
  if (d.cuDriverGetVersion(version) != CUDA_SUCCESS) *version = 0;  // works before cuInit
  CUresult r = d.cuInit(0);
  if (r != CUDA_SUCCESS) return "cuInit failed: " + error_text(r);
  r = d.cuDeviceGetCount(count);
  if (r != CUDA_SUCCESS) return "cuDeviceGetCount failed: " + error_text(r);
  if (*count <= 0) return "CUDA driver reports 0 devices";
  return "";
}

std::mutex g_init_mu;
std::unique_ptr<Gpu> g_gpu;
std::string g_init_error;  // sticky: a failed initialisation is not retried

}  // namespace

std::string error_text(CUresult r) {
  const Libraries& libs = libraries();
  const char* name = nullptr;
  const char* text = nullptr;
  if (libs.driver.loaded) {
    if (libs.cu.cuGetErrorName(r, &name) != CUDA_SUCCESS) name = nullptr;
    if (libs.cu.cuGetErrorString(r, &text) != CUDA_SUCCESS) text = nullptr;
  }
  std::string out = name ? name : "CUDA error";
  out += " (" + std::to_string(r) + ")";
  if (text) out += std::string(": ") + text;
  return out;
}

void check(CUresult r, const char* what) {
  if (r == CUDA_SUCCESS) return;
  fail(r == CUDA_ERROR_OUT_OF_MEMORY ? "OutOfMemoryError" : "CudaError", std::string(what) + " failed: " + error_text(r));
}

DriverReport driver_report() {
  DriverReport rep;
  rep.driver_loaded = libraries().driver.loaded;
  int version = 0, count = -1;
  rep.no_gpu_reason = driver_problem(&version, &count);
  rep.driver_version = version;
  rep.device_count = rep.driver_loaded ? count : -1;
  for (int i = 0; i < count; i++) {
    CUdevice dev;
    if (cu().cuDeviceGet(&dev, i) == CUDA_SUCCESS) rep.devices.push_back(query_device(i, dev));
  }
  return rep;
}

Gpu& gpu() {
  if (g_gpu) return *g_gpu;
  std::lock_guard<std::mutex> lk(g_init_mu);
  if (g_gpu) return *g_gpu;
  if (!g_init_error.empty()) no_gpu(g_init_error);
  int version = 0, count = 0;
  std::string why = driver_problem(&version, &count);
  auto g = std::make_unique<Gpu>();
  const DriverFns& d = cu();
  CUresult r = CUDA_SUCCESS;
  if (why.empty() && (r = d.cuDeviceGet(&g->dev, 0)) != CUDA_SUCCESS) why = "cuDeviceGet(0) failed: " + error_text(r);
  if (why.empty() && (r = d.cuDevicePrimaryCtxRetain(&g->ctx, g->dev)) != CUDA_SUCCESS)
    why = "cuDevicePrimaryCtxRetain failed: " + error_text(r);
  if (why.empty() && (r = d.cuCtxSetCurrent(g->ctx)) != CUDA_SUCCESS) why = "cuCtxSetCurrent failed: " + error_text(r);
  // A non-blocking stream: it never waits for the legacy default stream other libraries may use.
  if (why.empty() && (r = d.cuStreamCreate(&g->stream, CU_STREAM_NON_BLOCKING)) != CUDA_SUCCESS)
    why = "cuStreamCreate failed: " + error_text(r);
  if (why.empty() && (r = d.cuMemAlloc_v2(&g->error_word, 16)) != CUDA_SUCCESS)
    why = "allocating the error word failed: " + error_text(r);
  if (why.empty() && (r = d.cuMemsetD8Async(g->error_word, 0, 16, g->stream)) != CUDA_SUCCESS)
    why = "clearing the error word failed: " + error_text(r);
  if (!why.empty()) {
    g_init_error = why;
    no_gpu(why);
  }
  g->info = query_device(0, g->dev);
  g->driver_version = version;
  g_gpu = std::move(g);
  return *g_gpu;
}

void make_current(const Gpu& g) {
  CU_CHECK(cu().cuCtxSetCurrent(g.ctx));
}

const NvrtcFns& nvrtc() {
  const Libraries& libs = libraries();
  if (!libs.nvrtc.loaded) no_gpu("NVRTC is needed to compile the CUDA kernels: " + libs.nvrtc.error);
  return libs.nvrtc_fns;
}

const CublasLtFns& cublaslt() {
  const Libraries& libs = libraries();
  if (!libs.cublaslt.loaded) no_gpu("cuBLASLt is needed for matmul on CUDA: " + libs.cublaslt.error);
  return libs.lt;
}

// ---- device allocator ----

// 512-byte steps up to 1 MiB (small tensors come in many sizes), then 8 steps per power of two:
// at most 12.5% slack per block, and blocks of similar sizes share a class, so a training step
// that allocates the same shapes every step stops calling cuMemAlloc after the first step.
size_t DeviceAllocator::size_class(size_t bytes) {
  if (bytes <= (size_t{1} << 20)) return bytes < 512 ? 512 : (bytes + 511) / 512 * 512;
  int top = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes));
  size_t step = size_t{1} << (top - 3);
  return (bytes + step - 1) / step * step;
}

CUdeviceptr DeviceAllocator::alloc(size_t bytes) {
  Gpu& g = gpu();
  const size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lk(mu_);
  CUdeviceptr p = 0;
  auto it = cache_.find(cls);
  if (it != cache_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    s_.cached_bytes -= static_cast<i64>(cls);
    s_.cache_hits++;
  } else {
    const DriverFns& d = cu();
    CUresult r = d.cuMemAlloc_v2(&p, cls);
    if (r == CUDA_ERROR_OUT_OF_MEMORY && s_.cached_bytes > 0) {
      // Give the cache back and try once more; the stream must be done with those blocks first.
      CU_CHECK(d.cuStreamSynchronize(g.stream));
      for (auto& [size, blocks] : cache_)
        for (CUdeviceptr b : blocks) d.cuMemFree_v2(b);
      cache_.clear();
      s_.cached_bytes = 0;
      r = d.cuMemAlloc_v2(&p, cls);
    }
    if (r == CUDA_ERROR_OUT_OF_MEMORY) {
      size_t free_bytes = 0, total = 0;
      d.cuMemGetInfo_v2(&free_bytes, &total);
      fail("OutOfMemoryError", "cuda alloc: out of device memory: requested " + std::to_string(bytes) + " bytes (block " +
                                   std::to_string(cls) + "), free " + std::to_string(free_bytes) + " of " +
                                   std::to_string(total) + " bytes on cuda:0, " + std::to_string(s_.live_bytes) +
                                   " bytes held by live tensors");
    }
    check(r, "cuMemAlloc");
    s_.device_allocs++;
  }
  live_[p] = cls;
  s_.live_buffers++;
  s_.live_bytes += static_cast<i64>(cls);
  if (s_.live_bytes > s_.peak_bytes) s_.peak_bytes = s_.live_bytes;
  return p;
}

void DeviceAllocator::free(CUdeviceptr p) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) fail("NativeError", "cuda free: " + std::to_string(p) + " is not a live device block");
  const size_t cls = it->second;
  live_.erase(it);
  cache_[cls].push_back(p);
  s_.live_buffers--;
  s_.live_bytes -= static_cast<i64>(cls);
  s_.cached_bytes += static_cast<i64>(cls);
}

void DeviceAllocator::empty_cache() {
  Gpu& g = gpu();
  std::lock_guard<std::mutex> lk(mu_);
  const DriverFns& d = cu();
  CU_CHECK(d.cuStreamSynchronize(g.stream));
  for (auto& [size, blocks] : cache_)
    for (CUdeviceptr b : blocks) CU_CHECK(d.cuMemFree_v2(b));
  cache_.clear();
  s_.cached_bytes = 0;
}

AllocStats DeviceAllocator::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return s_;
}

DeviceAllocator& allocator() {
  static DeviceAllocator* a = new DeviceAllocator();  // never destroyed: the driver may be gone at exit
  return *a;
}

// ---- pinned host blocks ----

namespace {
std::mutex g_pinned_mu;
std::unordered_map<size_t, std::vector<void*>> g_pinned;
}  // namespace

void* pinned_take(size_t bytes, size_t* capacity) {
  gpu();
  const size_t cls = DeviceAllocator::size_class(bytes);
  *capacity = cls;
  {
    std::lock_guard<std::mutex> lk(g_pinned_mu);
    auto it = g_pinned.find(cls);
    if (it != g_pinned.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      return p;
    }
  }
  void* p = nullptr;
  CU_CHECK(cu().cuMemAllocHost_v2(&p, cls));
  return p;
}

void pinned_give(void* p, size_t capacity) {
  std::lock_guard<std::mutex> lk(g_pinned_mu);
  // Keep up to 8 blocks per class; beyond that, page-locked memory goes back to the OS.
  auto& blocks = g_pinned[capacity];
  if (blocks.size() < 8)
    blocks.push_back(p);
  else
    cu().cuMemFreeHost(p);
}

}  // namespace cuda
}  // namespace aligner
