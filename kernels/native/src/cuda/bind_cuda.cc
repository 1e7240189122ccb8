// N-API entry points of the CUDA backend for probing, memory and reading back (all named cuda*;
// declared for TS in kernels/cuda-probe.ts; kernels and GEMMs are in bind_cuda_kernels.cc).
//
// Device memory crosses as raw pointers in JS numbers (48-bit virtual addresses are exact in a
// double), so a kernel launch passes numbers only: the kernel arguments are packed by TS into one
// registered ArrayBuffer and handed to cuLaunchKernel as CU_LAUNCH_PARAM_BUFFER_POINTER.
// Everything is queued on the one stream; reading back is the only point that waits, and it also
// fetches the device error word (bad ids, targets) so those errors surface there, typed.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bf16.h"
#include "cuda/device.h"
#include "cuda/bind_util.h"
#include "napi_util.h"

namespace aligner {
namespace cuda {

namespace {

// ---- probe ----

napi_value library_report(napi_env env, const Library& lib) {
  napi_value o = make_object(env);
  set(env, o, "loaded", js_bool(env, lib.loaded));
  set(env, o, "path", lib.loaded ? js_string(env, lib.path) : js_null(env));
  set(env, o, "error", lib.loaded ? js_null(env) : js_string(env, lib.error));
  return o;
}

// cudaProbe(extraDirs): loads the libraries (first call only) and reports; never throws for a
// missing or broken CUDA, only for a wrong argument.
napi_value js_probe(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaProbe", 1);
    const Libraries& libs = load_libraries(string_array_arg(a, 0, "extraDirs"));
    napi_value o = make_object(env);
    napi_value lib_obj = make_object(env);
    for (const Library* lib : {&libs.driver, &libs.runtime, &libs.cublaslt, &libs.nvrtc, &libs.nccl})
      set(env, lib_obj, lib->label, library_report(env, *lib));
    set(env, o, "libraries", lib_obj);
    napi_value searched;
    NAPI_OK(napi_create_array_with_length(env, libs.searched.size(), &searched));
    for (size_t i = 0; i < libs.searched.size(); i++)
      NAPI_OK(napi_set_element(env, searched, static_cast<uint32_t>(i), js_string(env, libs.searched[i])));
    set(env, o, "searched", searched);

    DriverReport rep = driver_report();
    set(env, o, "driverVersion", rep.driver_version > 0 ? js_number(env, rep.driver_version) : js_null(env));
    int rt = 0;
    const bool rt_ok = libs.runtime.loaded && libs.rt.cudaRuntimeGetVersion(&rt) == 0;
    set(env, o, "runtimeVersion", rt_ok ? js_number(env, rt) : js_null(env));
    int major = 0, minor = 0;
    const bool nvrtc_ok = libs.nvrtc.loaded && libs.nvrtc_fns.nvrtcVersion(&major, &minor) == 0;
    set(env, o, "nvrtcVersion", nvrtc_ok ? js_string(env, std::to_string(major) + "." + std::to_string(minor)) : js_null(env));
    set(env, o, "cublasLtVersion",
        libs.cublaslt.loaded ? js_number(env, static_cast<double>(libs.lt.cublasLtGetVersion())) : js_null(env));
    int nccl = 0;
    const bool nccl_ok = libs.nccl.loaded && libs.nccl_fns.ncclGetVersion(&nccl) == 0;
    set(env, o, "ncclVersion", nccl_ok ? js_number(env, nccl) : js_null(env));
    set(env, o, "deviceCount", rep.device_count >= 0 ? js_number(env, rep.device_count) : js_null(env));
    napi_value devices;
    NAPI_OK(napi_create_array_with_length(env, rep.devices.size(), &devices));
    for (size_t i = 0; i < rep.devices.size(); i++) {
      const DeviceInfo& d = rep.devices[i];
      napi_value dev = make_object(env);
      set(env, dev, "index", js_number(env, d.index));
      set(env, dev, "name", js_string(env, d.name));
      set(env, dev, "computeCapability", js_string(env, std::to_string(d.major) + "." + std::to_string(d.minor)));
      set(env, dev, "totalMemory", js_number(env, static_cast<double>(d.total_memory)));
      set(env, dev, "multiprocessors", js_number(env, d.multiprocessors));
      NAPI_OK(napi_set_element(env, devices, static_cast<uint32_t>(i), dev));
    }
    set(env, o, "devices", devices);
    set(env, o, "gpuAvailable", js_bool(env, rep.no_gpu_reason.empty()));
    set(env, o, "reason", js_string_or_null(env, rep.no_gpu_reason));
    return o;
  });
}

// cudaInit() → device 0's description; NoGpuError when there is none.
napi_value js_init(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Gpu& g = gpu();
    napi_value o = make_object(env);
    set(env, o, "name", js_string(env, g.info.name));
    set(env, o, "major", js_number(env, g.info.major));
    set(env, o, "minor", js_number(env, g.info.minor));
    set(env, o, "totalMemory", js_number(env, static_cast<double>(g.info.total_memory)));
    set(env, o, "multiprocessors", js_number(env, g.info.multiprocessors));
    set(env, o, "maxSharedOptin", js_number(env, g.info.max_shared_optin));
    set(env, o, "driverVersion", js_number(env, g.driver_version));
    set(env, o, "errorWord", js_number(env, static_cast<double>(g.error_word)));
    return o;
  });
}

// ---- memory ----

napi_value js_alloc(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaAlloc", 1);
    i64 bytes = a.size(0, "bytes");
    return js_number(env, static_cast<double>(allocator().alloc(static_cast<size_t>(bytes))));
  });
}

napi_value js_free(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaFree", 1);
    allocator().free(ptr_arg(a, 0, "ptr"));
    return js_undefined(env);
  });
}

napi_value js_stats(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    AllocStats s = allocator().stats();
    napi_value o = make_object(env);
    set(env, o, "liveBuffers", js_number(env, static_cast<double>(s.live_buffers)));
    set(env, o, "liveBytes", js_number(env, static_cast<double>(s.live_bytes)));
    set(env, o, "cachedBytes", js_number(env, static_cast<double>(s.cached_bytes)));
    set(env, o, "peakBytes", js_number(env, static_cast<double>(s.peak_bytes)));
    set(env, o, "deviceAllocs", js_number(env, static_cast<double>(s.device_allocs)));
    set(env, o, "cacheHits", js_number(env, static_cast<double>(s.cache_hits)));
    return o;
  });
}

napi_value js_empty_cache(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    allocator().empty_cache();
    return js_undefined(env);
  });
}

napi_value js_mem_info(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    gpu();
    size_t free_bytes = 0, total = 0;
    CU_CHECK(cu().cuMemGetInfo_v2(&free_bytes, &total));
    napi_value o = make_object(env);
    set(env, o, "free", js_number(env, static_cast<double>(free_bytes)));
    set(env, o, "total", js_number(env, static_cast<double>(total)));
    return o;
  });
}

// cudaWrite(ptr, data, dtype): host → device, queued. f32/i32 take their own array type; bf16
// takes a Float32Array (rounded here, ties to even) or raw Uint16Array bits. The host data is
// consumed before the call returns (pageable copies are staged by the driver; bf16 goes through
// a temporary that the driver likewise stages), so JS may reuse its array at once.
napi_value js_write(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaWrite", 3);
    CUdeviceptr dst = ptr_arg(a, 0, "ptr");
    napi_typedarray_type t;
    size_t n;
    void* src = typed_arg(a, 1, &t, &n);
    HostType ht = host_type(a, 2);
    Gpu& g = gpu();
    if (n == 0) return js_undefined(env);
    if (ht == HostType::bf16 && t == napi_float32_array) {
      std::vector<uint16_t> tmp(n);
      const float* f = static_cast<const float*>(src);
      for (size_t i = 0; i < n; i++) tmp[i] = f32_to_bf16(f[i]);
      CU_CHECK(cu().cuMemcpyHtoDAsync_v2(dst, tmp.data(), n * 2, g.stream));
      return js_undefined(env);
    }
    const bool ok = (ht == HostType::f32 && t == napi_float32_array) || (ht == HostType::i32 && t == napi_int32_array) ||
                    (ht == HostType::bf16 && t == napi_uint16_array);
    if (!ok) fail("DTypeError", "cudaWrite: host array type does not match the storage dtype");
    CU_CHECK(cu().cuMemcpyHtoDAsync_v2(dst, src, n * (ht == HostType::bf16 ? 2 : 4), g.stream));
    return js_undefined(env);
  });
}

// cudaCopy(dst, src, bytes) and cudaZero(ptr, bytes): device-side, queued.
napi_value js_copy(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaCopy", 3);
    i64 bytes = a.size(2, "bytes");
    if (bytes == 0) return js_undefined(env);
    CU_CHECK(cu().cuMemcpyDtoDAsync_v2(ptr_arg(a, 0, "dst"), ptr_arg(a, 1, "src"), static_cast<size_t>(bytes), gpu().stream));
    return js_undefined(env);
  });
}

napi_value js_zero(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaZero", 2);
    i64 bytes = a.size(1, "bytes");
    if (bytes == 0) return js_undefined(env);
    CU_CHECK(cu().cuMemsetD8Async(ptr_arg(a, 0, "ptr"), 0, static_cast<size_t>(bytes), gpu().stream));
    return js_undefined(env);
  });
}

// ---- reading back: the one synchronisation point ----

// A device → host copy in flight: data then the error word, both into one pinned block, then an
// event. Issued on the JS thread so it is ordered after every kernel queued before the read.
struct Readback {
  void* pinned = nullptr;
  size_t capacity = 0;
  size_t bytes = 0;
  size_t word_offset = 0;
  CUevent event = nullptr;
  HostType type = HostType::f32;
  i64 numel = 0;
};

std::unique_ptr<Readback> start_readback(CUdeviceptr src, i64 numel, HostType type) {
  Gpu& g = gpu();
  auto r = std::make_unique<Readback>();
  r->type = type;
  r->numel = numel;
  r->bytes = static_cast<size_t>(numel) * (type == HostType::bf16 ? 2 : 4);
  r->word_offset = (r->bytes + 15) / 16 * 16;
  r->pinned = pinned_take(r->word_offset + 16, &r->capacity);
  if (r->bytes > 0) CU_CHECK(cu().cuMemcpyDtoHAsync_v2(r->pinned, src, r->bytes, g.stream));
  CU_CHECK(cu().cuMemcpyDtoHAsync_v2(static_cast<char*>(r->pinned) + r->word_offset, g.error_word, 16, g.stream));
  CU_CHECK(cu().cuEventCreate(&r->event, CU_EVENT_DISABLE_TIMING));
  CU_CHECK(cu().cuEventRecord(r->event, g.stream));
  return r;
}

// Releases the pinned block and the event; with `error`, also reports a kernel-found error.
void finish_readback(Readback& r, std::string* name, std::string* message) {
  int32_t word[4];
  std::memcpy(word, static_cast<char*>(r.pinned) + r.word_offset, sizeof word);
  cu().cuEventDestroy_v2(r.event);
  r.event = nullptr;
  if (word[0] != 0) {
    Gpu& g = gpu();
    CU_CHECK(cu().cuMemsetD8Async(g.error_word, 0, 16, g.stream));
    // The codes and messages match the reference kernels (kernels/reference/embedding.ts, token-logprobs.ts).
    static const char* const ops[] = {"?", "embedding", "embeddingBackward", "tokenLogprobs", "tokenLogprobsBackward"};
    const int code = word[0] >= 1 && word[0] <= 4 ? word[0] : 0;
    const bool is_target = code >= 3;
    *name = "IndexError";
    *message = std::string(ops[code]) + (is_target ? ": target " : ": id ") + std::to_string(word[2]) +
               " out of range [0, " + std::to_string(word[3]) + ") at " + (is_target ? "row " : "position ") +
               std::to_string(word[1]);
  }
}

void copy_to_host(const Readback& r, void* host) {
  if (r.type == HostType::bf16) {
    const uint16_t* h = static_cast<const uint16_t*>(r.pinned);
    float* f = static_cast<float*>(host);
    for (i64 i = 0; i < r.numel; i++) f[i] = bf16_to_f32(h[i]);
  } else if (r.bytes > 0) {
    std::memcpy(host, r.pinned, r.bytes);
  }
}

napi_value make_host_array(napi_env env, HostType type, i64 numel, void** data) {
  napi_value ab, ta;
  NAPI_OK(napi_create_arraybuffer(env, static_cast<size_t>(numel) * 4, data, &ab));
  NAPI_OK(napi_create_typedarray(env, type == HostType::i32 ? napi_int32_array : napi_float32_array,
                                 static_cast<size_t>(numel), ab, 0, &ta));
  return ta;
}

// cudaReadSync(ptr, numel, dtype) → Float32Array (f32, bf16 widened) or Int32Array.
napi_value js_read_sync(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaReadSync", 3);
    i64 numel = a.size(1, "numel");
    CUdeviceptr src = numel > 0 ? ptr_arg(a, 0, "ptr") : 0;
    auto r = start_readback(src, numel, host_type(a, 2));
    CUresult waited = cu().cuEventSynchronize(r->event);
    std::string name, message;
    void* host = nullptr;
    napi_value out = make_host_array(env, r->type, numel, &host);
    if (waited == CUDA_SUCCESS) {
      copy_to_host(*r, host);
      finish_readback(*r, &name, &message);
    } else {
      cu().cuEventDestroy_v2(r->event);
    }
    pinned_give(r->pinned, r->capacity);
    check(waited, "reading back (a kernel queued earlier failed)");
    if (!name.empty()) fail(name.c_str(), message);
    return out;
  });
}

napi_value js_synchronize(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    auto r = start_readback(0, 0, HostType::f32);
    CUresult waited = cu().cuEventSynchronize(r->event);
    std::string name, message;
    if (waited == CUDA_SUCCESS)
      finish_readback(*r, &name, &message);
    else
      cu().cuEventDestroy_v2(r->event);
    pinned_give(r->pinned, r->capacity);
    check(waited, "synchronize (a kernel queued earlier failed)");
    if (!name.empty()) fail(name.c_str(), message);
    return js_undefined(env);
  });
}

struct ReadJob {
  std::unique_ptr<Readback> r;
  CUresult waited = CUDA_SUCCESS;
  napi_deferred deferred = nullptr;
  napi_async_work work = nullptr;
};

void read_execute(napi_env, void* data) {
  auto* job = static_cast<ReadJob*>(data);
  Gpu& g = gpu();
  if (cu().cuCtxSetCurrent(g.ctx) != CUDA_SUCCESS) {
    job->waited = -1;
    return;
  }
  job->waited = cu().cuEventSynchronize(job->r->event);
}

void read_complete(napi_env env, napi_status status, void* data) {
  std::unique_ptr<ReadJob> job(static_cast<ReadJob*>(data));
  napi_delete_async_work(env, job->work);
  Readback& r = *job->r;
  std::string name, message;
  napi_value result = nullptr;
  try {
    if (status != napi_ok) {
      name = "NativeError";
      message = "cudaRead: async work was cancelled";
    } else if (job->waited != CUDA_SUCCESS) {
      name = "CudaError";
      message = "reading back (a kernel queued earlier failed): " + error_text(job->waited);
    } else {
      void* host = nullptr;
      result = make_host_array(env, r.type, r.numel, &host);
      copy_to_host(r, host);
      finish_readback(r, &name, &message);
    }
  } catch (const std::exception& e) {
    name = "NativeError";
    message = e.what();
  }
  if (r.event) cu().cuEventDestroy_v2(r.event);
  pinned_give(r.pinned, r.capacity);
  if (name.empty())
    napi_resolve_deferred(env, job->deferred, result);
  else
    napi_reject_deferred(env, job->deferred, make_error(env, name, message));
}

// cudaRead(ptr, numel, dtype) → Promise of the same array; the wait runs on a libuv worker.
napi_value js_read(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaRead", 3);
    i64 numel = a.size(1, "numel");
    CUdeviceptr src = numel > 0 ? ptr_arg(a, 0, "ptr") : 0;
    auto job = std::make_unique<ReadJob>();
    job->r = start_readback(src, numel, host_type(a, 2));
    napi_value promise;
    NAPI_OK(napi_create_promise(env, &job->deferred, &promise));
    NAPI_OK(napi_create_async_work(env, nullptr, js_string(env, "aligner.cudaRead"), read_execute, read_complete,
                                   job.get(), &job->work));
    NAPI_OK(napi_queue_async_work(env, job->work));
    job.release();
    return promise;
  });
}

}  // namespace

void register_cuda_memory(napi_env env, napi_value exports) {
#define F(name, fn) {name, nullptr, fn, nullptr, nullptr, nullptr, napi_default, nullptr}
  napi_property_descriptor props[] = {
      F("cudaProbe", js_probe),         F("cudaInit", js_init),           F("cudaAlloc", js_alloc),
      F("cudaFree", js_free),           F("cudaStats", js_stats),         F("cudaEmptyCache", js_empty_cache),
      F("cudaMemInfo", js_mem_info),    F("cudaWrite", js_write),         F("cudaCopy", js_copy),
      F("cudaZero", js_zero),           F("cudaReadSync", js_read_sync),  F("cudaRead", js_read),
      F("cudaSynchronize", js_synchronize),
  };
#undef F
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace cuda

// The addon's CUDA exports (declared for TypeScript in kernels/cuda-probe.ts).
void register_cuda(napi_env env, napi_value exports) {
  cuda::register_cuda_memory(env, exports);
  cuda::register_cuda_kernels(env, exports);
  cuda::register_cuda_nccl(env, exports);
}

}  // namespace aligner
