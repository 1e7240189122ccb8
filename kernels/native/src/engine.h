// Per-environment state: the handle table, the pool and the stream. Kept as N-API instance data
// rather than globals so that each worker_thread loading the addon gets its own engine.
#pragma once

#include <node_api.h>

#include <memory>

#include "buffers.h"
#include "pool.h"
#include "stream.h"

namespace aligner {

struct Engine {
  explicit Engine(int threads);
  ~Engine();  // the stream drains before the pool and the buffers go
  void set_threads(int threads);

  // Declaration order is destruction order in reverse: stream first, buffers last.
  BufferTable buffers;
  std::unique_ptr<Pool> pool;
  std::unique_ptr<Stream> stream;
};

// This environment's engine; NativeError if init() was not called.
Engine& engine(napi_env env);
// Rethrows (and clears) the first deferred kernel error from commands up to `upto`.
void throw_deferred(Engine& e, uint64_t upto);

// Registration helpers (bind_storage.cc, bind_kernels.cc).
void register_storage(napi_env env, napi_value exports);
void register_kernels(napi_env env, napi_value exports);

}  // namespace aligner
