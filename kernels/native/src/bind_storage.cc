// Storage entry points: alloc, free, write, readSync, read, synchronize, stats, threads, probes.
//
// Host data crosses at call time (write copies before returning; a busy stream gets a private
// copy to consume later) so JS may reuse its arrays at once. read() queues a copy-out command
// and resolves its Promise from a napi_async_work that waits for that command, so a free queued
// after the read cannot release the memory before it is copied.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "bf16.h"
#include "blas.h"
#include "engine.h"
#include "dispatch.h"
#include "napi_util.h"

namespace aligner {

namespace {

DType dtype_arg(const Args& a, size_t i) {
  i64 code = a.size(i, "dtype");
  if (code > 2) fail("DTypeError", std::string(a.fn) + ": unsupported dtype code " + std::to_string(code));
  return static_cast<DType>(code);
}

// Host → buffer. `from` holds numel f32 values when widen (rounded to bf16 here), else raw elements.
void store_in(void* dst, const void* from, i64 numel, size_t host_bytes, bool widen) {
  if (widen) {
    const float* f = static_cast<const float*>(from);
    uint16_t* h = static_cast<uint16_t*>(dst);
    for (i64 i = 0; i < numel; i++) h[i] = f32_to_bf16(f[i]);
  } else {
    std::memcpy(dst, from, host_bytes);
  }
}

// Buffer → host; bf16 widens to f32.
void copy_out(const void* src, DType dtype, i64 numel, void* host) {
  if (dtype == DType::bf16) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    float* f = static_cast<float*>(host);
    for (i64 i = 0; i < numel; i++) f[i] = bf16_to_f32(h[i]);
  } else {
    std::memcpy(host, src, static_cast<size_t>(numel) * 4);
  }
}

// A Float32Array (f32, bf16) or Int32Array (i32) of numel elements; *data receives its memory.
napi_value make_host_array(napi_env env, DType dtype, i64 numel, void** data) {
  napi_value ab, ta;
  NAPI_OK(napi_create_arraybuffer(env, static_cast<size_t>(numel) * 4, data, &ab));
  NAPI_OK(napi_create_typedarray(env, dtype == DType::i32 ? napi_int32_array : napi_float32_array,
                                 static_cast<size_t>(numel), ab, 0, &ta));
  return ta;
}

napi_value js_alloc(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "alloc", 2);
    Engine& e = engine(env);
    DType dt = dtype_arg(a, 0);
    i64 numel = a.size(1, "numel");
    // Contents are undefined (Backend.alloc): every kernel overwrites its outputs, so zeroing
    // here would only cost bandwidth.
    return js_number(env, e.buffers.alloc(dt, numel));
  });
}

napi_value js_free(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "free", 1);
    Engine& e = engine(env);
    Buffer b = e.buffers.retire(a.int32(0, "handle"));
    BufferTable* table = &e.buffers;
    e.stream->submit(0, [table, b] { table->release(b); });
    return js_undefined(env);
  });
}

napi_value js_write(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "write", 2);
    Engine& e = engine(env);
    const Buffer& b = e.buffers.get(a.int32(0, "handle"));
    bool is_ta = false;
    NAPI_OK(napi_is_typedarray(env, a[1], &is_ta));
    if (!is_ta) fail("NativeError", "write: data must be a typed array");
    napi_typedarray_type t;
    size_t length, offset;
    void* src = nullptr;
    napi_value ab;
    NAPI_OK(napi_get_typedarray_info(env, a[1], &t, &length, &src, &ab, &offset));
    if (static_cast<i64>(length) != b.numel)
      fail("ShapeError",
           "write: data has " + std::to_string(length) + " elements, the storage has " + std::to_string(b.numel));
    const bool ok = (b.dtype == DType::f32 && t == napi_float32_array) ||
                    (b.dtype == DType::i32 && t == napi_int32_array) ||
                    (b.dtype == DType::bf16 && (t == napi_float32_array || t == napi_uint16_array));
    if (!ok)
      fail("DTypeError", std::string("write: host array type does not match a ") + dtype_name(b.dtype) + " storage");
    const bool widen = b.dtype == DType::bf16 && t == napi_float32_array;
    const size_t host_bytes = length * (widen ? 4 : dtype_size(b.dtype));
    void* dst = b.data;
    const i64 n = b.numel;
    if (e.stream->idle()) {
      store_in(dst, src, n, host_bytes, widen);
      return js_undefined(env);
    }
    // Busy: snapshot the host data now, store it in stream order.
    std::shared_ptr<char> copy(static_cast<char*>(std::malloc(host_bytes ? host_bytes : 1)), std::free);
    if (!copy) fail("OutOfMemoryError", "write: out of memory staging " + std::to_string(host_bytes) + " bytes");
    std::memcpy(copy.get(), src, host_bytes);
    e.stream->enqueue([copy, dst, n, host_bytes, widen] { store_in(dst, copy.get(), n, host_bytes, widen); });
    return js_undefined(env);
  });
}

napi_value js_read_sync(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "readSync", 1);
    Engine& e = engine(env);
    const Buffer& b = e.buffers.get(a.int32(0, "handle"));
    e.stream->drain();
    throw_deferred(e, e.stream->last_submitted());
    void* host;
    napi_value result = make_host_array(env, b.dtype, b.numel, &host);
    copy_out(b.data, b.dtype, b.numel, host);
    return result;
  });
}

// State of one async read, owned by the async work until complete() runs.
struct ReadJob {
  Engine* engine;
  uint64_t seq;
  napi_deferred deferred;
  napi_ref array;
  napi_async_work work;
};

void read_execute(napi_env, void* data) {
  auto* job = static_cast<ReadJob*>(data);
  job->engine->stream->wait(job->seq);
}

void read_complete(napi_env env, napi_status status, void* data) {
  std::unique_ptr<ReadJob> job(static_cast<ReadJob*>(data));
  napi_value array;
  napi_get_reference_value(env, job->array, &array);
  napi_delete_reference(env, job->array);
  napi_delete_async_work(env, job->work);
  std::string name, message;
  if (status != napi_ok) {
    napi_reject_deferred(env, job->deferred, make_error(env, "NativeError", "read: async work was cancelled"));
  } else if (job->engine->stream->take_error(job->seq, &name, &message)) {
    napi_reject_deferred(env, job->deferred, make_error(env, name, message));
  } else {
    napi_resolve_deferred(env, job->deferred, array);
  }
}

napi_value js_read(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "read", 1);
    Engine& e = engine(env);
    const Buffer& b = e.buffers.get(a.int32(0, "handle"));
    napi_deferred deferred;
    napi_value promise;
    NAPI_OK(napi_create_promise(env, &deferred, &promise));
    void* host;
    napi_value array = make_host_array(env, b.dtype, b.numel, &host);
    const void* src = b.data;
    const DType dtype = b.dtype;
    const i64 numel = b.numel;
    if (e.stream->idle()) {
      std::string name, message;
      if (e.stream->take_error(e.stream->last_submitted(), &name, &message)) {
        napi_reject_deferred(env, deferred, make_error(env, name, message));
      } else {
        copy_out(src, dtype, numel, host);
        napi_resolve_deferred(env, deferred, array);
      }
      return promise;
    }
    // The ArrayBuffer is referenced until complete(), so its memory stays put while the
    // executor fills it; JS cannot see it before the Promise resolves.
    auto job = std::make_unique<ReadJob>();
    job->engine = &e;
    job->deferred = deferred;
    NAPI_OK(napi_create_reference(env, array, 1, &job->array));
    job->seq = e.stream->enqueue([src, dtype, numel, host] { copy_out(src, dtype, numel, host); });
    napi_value resource_name = js_string(env, "aligner.read");
    NAPI_OK(napi_create_async_work(env, nullptr, resource_name, read_execute, read_complete, job.get(), &job->work));
    NAPI_OK(napi_queue_async_work(env, job->work));
    job.release();
    return promise;
  });
}

napi_value js_synchronize(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Engine& e = engine(env);
    e.stream->drain();
    throw_deferred(e, e.stream->last_submitted());
    return js_undefined(env);
  });
}

napi_value js_stats(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Engine& e = engine(env);
    napi_value obj;
    NAPI_OK(napi_create_object(env, &obj));
    NAPI_OK(napi_set_named_property(env, obj, "liveBuffers",
                                    js_number(env, static_cast<double>(e.buffers.live_buffers()))));
    NAPI_OK(
        napi_set_named_property(env, obj, "liveBytes", js_number(env, static_cast<double>(e.buffers.live_bytes()))));
    NAPI_OK(napi_set_named_property(env, obj, "cachedBytes",
                                    js_number(env, static_cast<double>(e.buffers.cached_bytes()))));
    return obj;
  });
}

// Waits for queued frees to land in the cache, then returns every cached block to the C library.
napi_value js_empty_cache(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    (void)info;
    Engine& e = engine(env);
    e.stream->drain();
    e.buffers.empty_cache();
    return js_undefined(env);
  });
}

napi_value js_set_num_threads(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "setNumThreads", 1);
    i64 n = a.size(0, "threads");
    if (n < 1 || n > 1024) fail("NativeError", "setNumThreads: threads must be in [1, 1024], got " + std::to_string(n));
    engine(env).set_threads(static_cast<int>(n));
    return js_undefined(env);
  });
}

napi_value js_get_num_threads(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value { return js_number(env, engine(env).pool->threads()); });
}

napi_value js_blas_info(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value { return js_string(env, blas::info()); });
}

// {family, version, core, isa, path} of the BLAS behind matmul (blas.h's Core).
napi_value js_blas_core(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    const blas::Core& c = blas::core();
    napi_value o;
    NAPI_OK(napi_create_object(env, &o));
    const std::pair<const char*, const std::string*> fields[] = {
        {"family", &c.family}, {"version", &c.version}, {"core", &c.core}, {"isa", &c.isa}, {"path", &c.path}};
    for (const auto& [key, value] : fields) NAPI_OK(napi_set_named_property(env, o, key, js_string(env, *value)));
    return o;
  });
}

// blasCoreIsa('openblas', coreName) or blasCoreIsa('mkl', branchCode) → {core, isa}: the tables
// blasCore() uses (blas::openblas_core_isa, blas::mkl_branch), for tests.
napi_value js_blas_core_isa(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "blasCoreIsa", 2);
    const char* bad_family = "blasCoreIsa: family must be 'openblas' or 'mkl'";
    const std::string family = js_text(env, a[0], bad_family);
    std::string core;
    const char* isa;
    if (family == "mkl") {
      std::tie(core, isa) = blas::mkl_branch(static_cast<int>(a.num(1, "code")));
    } else if (family == "openblas") {
      core = js_text(env, a[1], "blasCoreIsa: an OpenBLAS core name must be a string");
      isa = blas::openblas_core_isa(core);
    } else {
      fail("NativeError", bad_family);
    }
    napi_value o;
    NAPI_OK(napi_create_object(env, &o));
    NAPI_OK(napi_set_named_property(env, o, "core", js_string(env, core)));
    NAPI_OK(napi_set_named_property(env, o, "isa", js_string(env, isa)));
    return o;
  });
}

napi_value js_fma_peak(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "fmaPeakGflops", 2);
    i64 threads = a.size(0, "threads");
    double millis = a.num(1, "millis");
    if (threads < 1 || threads > 1024) fail("NativeError", "fmaPeakGflops: threads must be in [1, 1024]");
    engine(env).stream->drain();  // measure the cores, not the cores minus queued kernels
    return js_number(env, fma_peak_gflops(static_cast<int>(threads), millis));
  });
}

napi_value js_cpu_isa(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value { return js_string(env, widest_isa()); });
}

// The ISA build of the kernels in use: "avx512", "avx2" or "baseline".
napi_value js_kernel_isa(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value { return js_string(env, kernels().isa); });
}

// setKernelIsa(name): switches the kernel build once queued work has run.
napi_value js_set_kernel_isa(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "setKernelIsa", 1);
    const std::string name = a.str(0, "isa");
    engine(env).stream->drain();
    const std::string error = select_isa(name);
    if (!error.empty()) fail("NativeError", "setKernelIsa: " + error);
    return js_undefined(env);
  });
}

// The kernel builds this CPU can run, widest first.
napi_value js_kernel_isas(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    const std::vector<std::string> isas = available_isas();
    napi_value out;
    NAPI_OK(napi_create_array_with_length(env, isas.size(), &out));
    for (size_t i = 0; i < isas.size(); i++) NAPI_OK(napi_set_element(env, out, i, js_string(env, isas[i])));
    return out;
  });
}

}  // namespace

void register_storage(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"alloc", nullptr, js_alloc, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"free", nullptr, js_free, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"write", nullptr, js_write, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"readSync", nullptr, js_read_sync, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"read", nullptr, js_read, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"synchronize", nullptr, js_synchronize, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, js_stats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"emptyCache", nullptr, js_empty_cache, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setNumThreads", nullptr, js_set_num_threads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"getNumThreads", nullptr, js_get_num_threads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"blasInfo", nullptr, js_blas_info, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"blasCore", nullptr, js_blas_core, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"blasCoreIsa", nullptr, js_blas_core_isa, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fmaPeakGflops", nullptr, js_fma_peak, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"cpuIsa", nullptr, js_cpu_isa, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"kernelIsa", nullptr, js_kernel_isa, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setKernelIsa", nullptr, js_set_kernel_isa, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"kernelIsas", nullptr, js_kernel_isas, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace aligner
