// N-API entry points for kernels: NVRTC compilation, module loading, launches through one
// registered argument buffer, and cuBLASLt GEMMs (see bind_cuda.cc for memory and reading back).
#include <string>
#include <vector>

#include "cuda/bind_util.h"
#include "cuda/gemm.h"

namespace aligner {
namespace cuda {

namespace {

// cudaCompile(source, name, options, headerNames, headerSources) → {cubin: Uint8Array | null, log,
// error?}. The headers are what `#include "name"` finds. Needs NVRTC only (no GPU, no driver).
napi_value js_compile(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaCompile", 5);
    const std::string src = string_arg(a, 0, "source"), name = string_arg(a, 1, "name");
    const std::vector<std::string> opts = string_array_arg(a, 2, "options");
    const std::vector<std::string> header_names = string_array_arg(a, 3, "headerNames");
    const std::vector<std::string> header_sources = string_array_arg(a, 4, "headerSources");
    if (header_names.size() != header_sources.size())
      fail("NativeError", "cudaCompile: headerNames and headerSources differ in length");
    std::vector<const char*> hn, hs;
    for (size_t i = 0; i < header_names.size(); i++) {
      hn.push_back(header_names[i].c_str());
      hs.push_back(header_sources[i].c_str());
    }
    const NvrtcFns& f = nvrtc();
    nvrtcProgram prog = nullptr;
    int r = f.nvrtcCreateProgram(&prog, src.c_str(), name.c_str(), static_cast<int>(hn.size()), hs.data(), hn.data());
    if (r != 0) fail("CudaError", "nvrtcCreateProgram(" + name + ") failed: " + f.nvrtcGetErrorString(r));
    std::vector<const char*> argv;
    for (const auto& o : opts) argv.push_back(o.c_str());
    const int compiled = f.nvrtcCompileProgram(prog, static_cast<int>(argv.size()), argv.data());
    size_t log_size = 0;
    std::string log;
    if (f.nvrtcGetProgramLogSize(prog, &log_size) == 0 && log_size > 1) {
      log.resize(log_size);
      f.nvrtcGetProgramLog(prog, log.data());
      log.resize(log_size - 1);
    }
    napi_value o = make_object(env);
    set(env, o, "log", js_string(env, log));
    napi_value cubin = js_null(env);
    if (compiled == 0) {
      size_t size = 0;
      if (f.nvrtcGetCUBINSize(prog, &size) == 0 && size > 0) {
        void* data = nullptr;
        napi_value ab;
        NAPI_OK(napi_create_arraybuffer(env, size, &data, &ab));
        if (f.nvrtcGetCUBIN(prog, static_cast<char*>(data)) == 0)
          NAPI_OK(napi_create_typedarray(env, napi_uint8_array, size, ab, 0, &cubin));
      }
    } else {
      set(env, o, "error", js_string(env, f.nvrtcGetErrorString(compiled)));
    }
    set(env, o, "cubin", cubin);
    f.nvrtcDestroyProgram(&prog);
    return o;
  });
}

std::vector<CUmodule> g_modules;
std::vector<CUfunction> g_functions;

napi_value js_load_module(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaLoadModule", 1);
    napi_typedarray_type t;
    size_t n;
    void* image = typed_arg(a, 0, &t, &n);
    if (t != napi_uint8_array) fail("NativeError", "cudaLoadModule: the image must be a Uint8Array");
    gpu();
    CUmodule m = nullptr;
    CU_CHECK(cu().cuModuleLoadData(&m, image));
    g_modules.push_back(m);
    return js_number(env, static_cast<double>(g_modules.size() - 1));
  });
}

napi_value js_get_function(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaGetFunction", 3);
    i64 m = a.size(0, "module");
    if (static_cast<size_t>(m) >= g_modules.size()) fail("NativeError", "cudaGetFunction: unknown module");
    const std::string name = string_arg(a, 1, "name");
    i64 max_shared = a.size(2, "maxDynamicShared");
    CUfunction fn = nullptr;
    CUresult r = cu().cuModuleGetFunction(&fn, g_modules[m], name.c_str());
    if (r != CUDA_SUCCESS) fail("CudaError", "kernel " + name + " is not in its module: " + error_text(r));
    // Kernels that want more than the default 48 KiB of dynamic shared memory must opt in.
    if (max_shared > 48 * 1024)
      CU_CHECK(cu().cuFuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(max_shared)));
    g_functions.push_back(fn);
    return js_number(env, static_cast<double>(g_functions.size() - 1));
  });
}

// The argument buffer TS packs before each launch (registered once; kept alive by a reference).
void* g_arg_data = nullptr;
size_t g_arg_capacity = 0;
napi_ref g_arg_ref = nullptr;

napi_value js_arg_buffer(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaArgBuffer", 1);
    napi_typedarray_type t;
    size_t n;
    void* data = typed_arg(a, 0, &t, &n);
    if (t != napi_uint8_array) fail("NativeError", "cudaArgBuffer: expects a Uint8Array");
    if (g_arg_ref) NAPI_OK(napi_delete_reference(env, g_arg_ref));
    NAPI_OK(napi_create_reference(env, a[0], 1, &g_arg_ref));
    g_arg_data = data;
    g_arg_capacity = n;
    return js_undefined(env);
  });
}

// cudaLaunch(fn, gx, gy, gz, bx, by, bz, sharedBytes, argBytes): the first argBytes of the
// registered buffer are the kernel's parameters, laid out as the kernel's C signature.
napi_value js_launch(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaLaunch", 9);
    i64 f = a.size(0, "fn");
    if (static_cast<size_t>(f) >= g_functions.size()) fail("NativeError", "cudaLaunch: unknown function");
    unsigned dims[6];
    for (int i = 0; i < 6; i++) {
      i64 d = a.size(1 + i, "grid/block size");
      if (d < 1 || d > 0x7fffffff) fail("NativeError", "cudaLaunch: grid/block sizes must be in [1, 2^31)");
      dims[i] = static_cast<unsigned>(d);
    }
    i64 shared = a.size(7, "sharedBytes");
    size_t arg_bytes = static_cast<size_t>(a.size(8, "argBytes"));
    if (arg_bytes > g_arg_capacity) fail("NativeError", "cudaLaunch: argBytes exceeds the registered buffer");
    void* extra[] = {kLaunchParamBufferPointer, g_arg_data, kLaunchParamBufferSize, &arg_bytes, kLaunchParamEnd};
    Gpu& g = gpu();
    CU_CHECK(cu().cuLaunchKernel(g_functions[f], dims[0], dims[1], dims[2], dims[3], dims[4], dims[5],
                                 static_cast<unsigned>(shared), g.stream, nullptr, extra));
    return js_undefined(env);
  });
}

// cudaMatmul(a, b, out, inType, outType, batch, M, N, K, transA, transB, strideA, strideB)
napi_value js_matmul(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "cudaMatmul", 13);
    GemmArgs g{};
    g.batch = a.size(5, "batch");
    g.M = a.size(6, "M");
    g.N = a.size(7, "N");
    g.K = a.size(8, "K");
    const bool empty = g.batch == 0 || g.M == 0 || g.N == 0;
    g.a = empty || g.K == 0 ? 0 : ptr_arg(a, 0, "a");
    g.b = empty || g.K == 0 ? 0 : ptr_arg(a, 1, "b");
    g.out = empty ? 0 : ptr_arg(a, 2, "out");
    i64 in = a.size(3, "inType"), out = a.size(4, "outType");
    if (in > 1 || out > 1) fail("DTypeError", "cudaMatmul: types must be f32 (0) or bf16 (1)");
    g.in_type = static_cast<GemmType>(in);
    g.out_type = static_cast<GemmType>(out);
    g.trans_a = a.flag(9);
    g.trans_b = a.flag(10);
    g.stride_a = a.size(11, "strideA");
    g.stride_b = a.size(12, "strideB");
    gemm(g);
    return js_undefined(env);
  });
}

}  // namespace

void register_cuda_kernels(napi_env env, napi_value exports) {
#define F(name, fn) {name, nullptr, fn, nullptr, nullptr, nullptr, napi_default, nullptr}
  napi_property_descriptor props[] = {
      F("cudaCompile", js_compile),        F("cudaLoadModule", js_load_module), F("cudaGetFunction", js_get_function),
      F("cudaArgBuffer", js_arg_buffer),   F("cudaLaunch", js_launch),          F("cudaMatmul", js_matmul),
  };
#undef F
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace cuda
}  // namespace aligner
