// Addon entry point: per-environment engine and module registration.
#include <cstdlib>
#include <cstring>
#include <string>

#include "blas.h"
#include "dispatch.h"
#include "engine.h"
#include "napi_util.h"

namespace aligner {

void register_cuda(napi_env env, napi_value exports);  // cuda/bind_cuda.cc
void register_group(napi_env env, napi_value exports);  // bind_group.cc

Engine::Engine(int threads) : pool(new Pool(threads)), stream(new Stream(pool.get())) {}

Engine::~Engine() {
  stream.reset();  // drains queued work (including queued frees) and joins the executor
  pool.reset();
}

void Engine::set_threads(int threads) {
  stream->drain();
  std::unique_ptr<Pool> next(new Pool(threads));
  stream->set_pool(next.get());
  pool = std::move(next);
}

Engine& engine(napi_env env) {
  void* data = nullptr;
  NAPI_OK(napi_get_instance_data(env, &data));
  if (!data) fail("NativeError", "native backend not initialised (call init first)");
  return *static_cast<Engine*>(data);
}

void throw_deferred(Engine& e, uint64_t upto) {
  std::string name, message;
  if (e.stream->take_error(upto, &name, &message)) throw KernelError(name, message);
}

namespace {

// The BLAS to load when ALIGN_BLAS names none: init's optional path, origin and ["KEY=value", …].
blas::Request blas_request(const Args& a) {
  blas::Request r;
  if (a.count() > 1 && !a.is_nullish(1)) r.path = a.str(1, "blasPath");
  if (a.count() > 2 && !a.is_nullish(2)) r.origin = a.str(2, "blasOrigin");
  if (a.count() > 3 && !a.is_nullish(3)) {
    const char* bad = "init: blasEnv must be an array of 'KEY=value' strings";
    bool is_array = false;
    NAPI_OK(napi_is_array(a.env, a[3], &is_array));
    if (!is_array) fail("NativeError", bad);
    uint32_t n = 0;
    NAPI_OK(napi_get_array_length(a.env, a[3], &n));
    for (uint32_t i = 0; i < n; i++) {
      napi_value item;
      NAPI_OK(napi_get_element(a.env, a[3], i, &item));
      const std::string kv = js_text(a.env, item, bad);
      const size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) fail("NativeError", bad);
      r.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  return r;
}

// init(threads, blasPath?, blasOrigin?, blasEnv?): creates this environment's engine once (and
// loads the BLAS, see blas.h); later calls only resize the pool.
napi_value init(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "init", 1);
    int threads = static_cast<int>(a.size(0, "threads"));
    const blas::Request request = blas_request(a);
    if (threads < 1) threads = 1;
    void* data = nullptr;
    NAPI_OK(napi_get_instance_data(env, &data));
    if (data) {
      static_cast<Engine*>(data)->set_threads(threads);
      return js_undefined(env);
    }
    const char* disable = std::getenv("ALIGN_DISABLE_BLAS");
    const std::string blas_error = blas::init(disable && std::strcmp(disable, "") != 0 && std::strcmp(disable, "0") != 0, request);
    if (!blas_error.empty()) fail("NativeError", blas_error);
    const std::string isa_error = init_isa();  // ALIGN_ISA, or the widest build this CPU runs
    if (!isa_error.empty()) fail("NativeError", isa_error);
    auto* e = new Engine(threads);
    NAPI_OK(napi_set_instance_data(env, e, [](napi_env, void* d, void*) { delete static_cast<Engine*>(d); }, nullptr));
    return js_undefined(env);
  });
}

napi_value module_init(napi_env env, napi_value exports) {
  napi_property_descriptor desc = {"init", nullptr, init, nullptr, nullptr, nullptr, napi_default, nullptr};
  napi_define_properties(env, exports, 1, &desc);
  register_storage(env, exports);
  register_kernels(env, exports);
  register_cuda(env, exports);
  register_group(env, exports);
  return exports;
}

}  // namespace
}  // namespace aligner

NAPI_MODULE_INIT() {
  return aligner::module_init(env, exports);
}
