// The NCCL process group (kernels/distributed/nccl.ts): one communicator per group over device 0,
// its collectives queued on the backend's one stream like every kernel.
//
// Rendezvous: rank 0 calls ncclUniqueId(), the 128 bytes travel out of band (a workflow payload),
// and every rank calls ncclGroupOpen with them. The communicator is created non-blocking, so
// that neither its creation nor any collective can hang: each wait polls with a deadline, and a
// rank that never arrives (or whose process died) ends in ncclCommAbort and an error saying so.
// After that the group is broken; the caller tears it down and starts a new gang attempt.
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "cuda/bind_util.h"

namespace aligner {
namespace cuda {

namespace {

const NcclFns& nccl() {
  const Libraries& libs = libraries();
  if (!libs.nccl.loaded) fail("NoGpuError", "NCCL is not available: " + libs.nccl.error);
  return libs.nccl_fns;
}

std::string nccl_text(ncclResult_t r) {
  const char* s = nccl().ncclGetErrorString(r);
  return std::string(s ? s : "unknown NCCL error") + " (" + std::to_string(r) + ")";
}

struct Group {
  ncclComm_t comm = nullptr;
  int rank = 0, world = 0;
  int64_t timeout_ms = 0;
  std::atomic<bool> broken{false};
  std::mutex abort_mu;
  bool aborted = false;
};

// Aborts the communicator once, whichever waits see the failure (several libuv threads may).
void abort_once(Group& g) {
  std::lock_guard<std::mutex> lock(g.abort_mu);
  g.broken = true;
  if (g.aborted) return;
  g.aborted = true;
  nccl().ncclCommAbort(g.comm);
}

std::mutex groups_mu;
std::unordered_map<int, std::shared_ptr<Group>> groups;
int next_id = 1;

std::shared_ptr<Group> group_of(int id) {
  std::lock_guard<std::mutex> lock(groups_mu);
  auto it = groups.find(id);
  if (it == groups.end()) fail("ProcessGroupError", "NCCL group " + std::to_string(id) + " is closed or unknown");
  if (it->second->broken) fail("ProcessGroupError", "NCCL group " + std::to_string(id) + " is broken by an earlier failure; open a new one");
  return it->second;
}

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess && r != ncclInProgress) fail("ProcessGroupError", std::string(what) + ": " + nccl_text(r));
}

// On a non-blocking communicator a call may return ncclInProgress before its work is on the
// stream: wait (with the deadline) until it is, so that the event recorded next follows it.
template <class Wait>
void enqueued(Group& g, ncclResult_t r, const char* what, Wait wait) {
  check_nccl(r, what);
  if (r != ncclInProgress) return;
  const std::string err = wait(g, what);
  if (!err.empty()) fail("ProcessGroupError", err);
}

// Polls until `done` or the group's deadline; on timeout or an asynchronous NCCL error the
// communicator is aborted and the group marked broken. Runs on a libuv worker thread.
template <class Done>
std::string wait_for(Group& g, const char* what, Done done) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    ncclResult_t async = ncclSuccess;
    nccl().ncclCommGetAsyncError(g.comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      abort_once(g);
      return std::string(what) + ": " + nccl_text(async);
    }
    if (async == ncclSuccess && done()) return "";
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    if (ms > g.timeout_ms) {
      abort_once(g);
      return std::string(what) + " of rank " + std::to_string(g.rank) + " of " + std::to_string(g.world) + ": no progress within " +
             std::to_string(g.timeout_ms) + " ms (a rank did not arrive, or its process exited); the group is aborted";
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

std::string wait_enqueued(Group& g, const char* what) { return wait_for(g, what, [] { return true; }); }

// An asynchronous wait resolved on the JS thread: for the open (communicator ready) or for a
// collective (its event reached on the stream).
struct Job {
  std::shared_ptr<Group> group;
  CUevent event = nullptr;  // null: waiting for the communicator itself
  const char* what = "";
  double result = 0;
  std::string error;
  napi_deferred deferred = nullptr;
  napi_async_work work = nullptr;
};

void job_execute(napi_env, void* data) {
  auto* job = static_cast<Job*>(data);
  Gpu& g = gpu();
  if (cu().cuCtxSetCurrent(g.ctx) != CUDA_SUCCESS) {
    job->error = "NCCL: cannot make the CUDA context current";
    return;
  }
  job->error = wait_for(*job->group, job->what, [&] { return !job->event || cu().cuEventQuery(job->event) != CUDA_ERROR_NOT_READY; });
  if (job->error.empty() && job->event) {
    CUresult r = cu().cuEventQuery(job->event);
    if (r != CUDA_SUCCESS) job->error = std::string(job->what) + ": " + error_text(r);
  }
}

void job_complete(napi_env env, napi_status status, void* data) {
  std::unique_ptr<Job> job(static_cast<Job*>(data));
  napi_delete_async_work(env, job->work);
  if (job->event) cu().cuEventDestroy_v2(job->event);
  if (status != napi_ok) job->error = "NCCL: async work was cancelled";
  if (job->error.empty())
    napi_resolve_deferred(env, job->deferred, js_number(env, job->result));
  else
    napi_reject_deferred(env, job->deferred, make_error(env, "ProcessGroupError", job->error));
}

napi_value queue_wait(napi_env env, std::shared_ptr<Group> group, const char* what, bool on_stream, double result) {
  auto job = std::make_unique<Job>();
  job->group = std::move(group);
  job->what = what;
  job->result = result;
  if (on_stream) {
    CU_CHECK(cu().cuEventCreate(&job->event, CU_EVENT_DISABLE_TIMING));
    CU_CHECK(cu().cuEventRecord(job->event, gpu().stream));
  }
  napi_value promise;
  NAPI_OK(napi_create_promise(env, &job->deferred, &promise));
  NAPI_OK(napi_create_async_work(env, nullptr, js_string(env, "aligner.nccl"), job_execute, job_complete, job.get(), &job->work));
  NAPI_OK(napi_queue_async_work(env, job->work));
  job.release();
  return promise;
}

int nccl_dtype(const Args& a, size_t i) {
  switch (host_type(a, i)) {
    case HostType::f32: return ncclFloat32;
    case HostType::bf16: return ncclBfloat16;
    case HostType::i32: return ncclInt32;
  }
  return ncclFloat32;
}

int nccl_op(const Args& a, size_t i) {
  const std::string op = a.str(i, "op");
  if (op == "sum") return ncclSum;
  if (op == "max") return ncclMax;
  fail("NativeError", "unknown reduce op '" + op + "' (sum, max)");
}

// ncclUniqueId() → Uint8Array(128), made on rank 0 and handed to the others.
napi_value js_unique_id(napi_env env, napi_callback_info) {
  return guarded(env, [&]() -> napi_value {
    ncclUniqueId id;
    check_nccl(nccl().ncclGetUniqueId(&id), "ncclGetUniqueId");
    void* data = nullptr;
    napi_value ab, out;
    NAPI_OK(napi_create_arraybuffer(env, kNcclUniqueIdBytes, &data, &ab));
    std::memcpy(data, id.internal, kNcclUniqueIdBytes);
    NAPI_OK(napi_create_typedarray(env, napi_uint8_array, kNcclUniqueIdBytes, ab, 0, &out));
    return out;
  });
}

// ncclGroupOpen(id: Uint8Array(128), rank, world, timeoutMs) → Promise<group id>
napi_value js_open(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "ncclGroupOpen", 4);
    napi_typedarray_type t;
    size_t n = 0;
    void* bytes = typed_arg(a, 0, &t, &n);
    if (t != napi_uint8_array || n != kNcclUniqueIdBytes) fail("ProcessGroupError", "ncclGroupOpen: the unique id must be the 128 bytes of ncclUniqueId()");
    auto g = std::make_shared<Group>();
    g->rank = static_cast<int>(a.size(1, "rank"));
    g->world = static_cast<int>(a.size(2, "world"));
    g->timeout_ms = a.size(3, "timeoutMs");
    if (g->world < 1 || g->rank >= g->world) fail("ProcessGroupError", "ncclGroupOpen: rank " + std::to_string(g->rank) + " is not in a world of " + std::to_string(g->world));
    gpu();  // NoGpuError first, with its reason
    ncclUniqueId id;
    std::memcpy(id.internal, bytes, kNcclUniqueIdBytes);
    ncclConfig_t config{sizeof(ncclConfig_t), kNcclConfigMagic, kNcclConfigVersion, 0, kNcclConfigUndefInt, kNcclConfigUndefInt, kNcclConfigUndefInt, nullptr};
    check_nccl(nccl().ncclCommInitRankConfig(&g->comm, g->world, id, g->rank, &config), "ncclCommInitRankConfig");
    int gid;
    {
      std::lock_guard<std::mutex> lock(groups_mu);
      gid = next_id++;
      groups[gid] = g;
    }
    return queue_wait(env, g, "rendezvous", false, gid);
  });
}

napi_value js_close(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "ncclGroupClose", 1);
    std::shared_ptr<Group> g;
    {
      std::lock_guard<std::mutex> lock(groups_mu);
      auto it = groups.find(a.int32(0, "group"));
      if (it == groups.end()) return js_undefined(env);
      g = it->second;
      groups.erase(it);
    }
    if (g->broken) {
      abort_once(*g);  // already aborted by the failure that broke it, or now
      return js_undefined(env);
    }
    // Wait for its queued collectives with the deadline, not for ever: a stalled peer aborts it.
    CUevent done = nullptr;
    CU_CHECK(cu().cuEventCreate(&done, CU_EVENT_DISABLE_TIMING));
    CU_CHECK(cu().cuEventRecord(done, gpu().stream));
    const std::string err = wait_for(*g, "close", [&] { return cu().cuEventQuery(done) != CUDA_ERROR_NOT_READY; });
    cu().cuEventDestroy_v2(done);
    if (!err.empty()) fail("ProcessGroupError", err);
    check_nccl(nccl().ncclCommDestroy(g->comm), "ncclCommDestroy");
    return js_undefined(env);
  });
}

// ncclCollective(group, kind, sendPtr, recvPtr, count, dtype, op|root|peer) → Promise
//   kind: allReduce (count elements, in place allowed), allGather (count per rank), reduceScatter
//   (count per rank out), broadcast (root), send/recv (peer); sendRecv is ncclSendRecv.
napi_value js_collective(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "ncclCollective", 7);
    std::shared_ptr<Group> g = group_of(a.int32(0, "group"));
    const std::string kind = a.str(1, "kind");
    const void* send = reinterpret_cast<const void*>(static_cast<uintptr_t>(a.size(2, "sendPtr")));
    void* recv = reinterpret_cast<void*>(static_cast<uintptr_t>(a.size(3, "recvPtr")));
    const size_t count = static_cast<size_t>(a.size(4, "count"));
    const int dtype = nccl_dtype(a, 5);
    CUstream s = gpu().stream;
    const NcclFns& f = nccl();
    const char* what = "";
    ncclResult_t r = ncclSuccess;
    if (kind == "allReduce") {
      what = "all_reduce";
      r = f.ncclAllReduce(send, recv, count, dtype, nccl_op(a, 6), g->comm, s);
    } else if (kind == "allGather") {
      what = "all_gather";
      r = f.ncclAllGather(send, recv, count, dtype, g->comm, s);
    } else if (kind == "reduceScatter") {
      what = "reduce_scatter";
      r = f.ncclReduceScatter(send, recv, count, dtype, nccl_op(a, 6), g->comm, s);
    } else if (kind == "broadcast") {
      what = "broadcast";
      r = f.ncclBroadcast(send, recv, count, dtype, static_cast<int>(a.size(6, "root")), g->comm, s);
    } else if (kind == "send") {
      what = "send";
      r = f.ncclSend(send, count, dtype, static_cast<int>(a.size(6, "peer")), g->comm, s);
    } else if (kind == "recv") {
      what = "recv";
      r = f.ncclRecv(recv, count, dtype, static_cast<int>(a.size(6, "peer")), g->comm, s);
    } else {
      fail("NativeError", "ncclCollective: unknown kind '" + kind + "'");
    }
    enqueued(*g, r, what, wait_enqueued);
    return queue_wait(env, g, what, true, 0);
  });
}

// ncclSendRecv(group, sendPtr, sendCount, dst, recvPtr, recvCount, src, dtype) → Promise: both in one NCCL group call.
napi_value js_send_recv(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "ncclSendRecv", 8);
    std::shared_ptr<Group> g = group_of(a.int32(0, "group"));
    const NcclFns& f = nccl();
    CUstream s = gpu().stream;
    const int dtype = nccl_dtype(a, 7);
    check_nccl(f.ncclGroupStart(), "ncclGroupStart");
    check_nccl(f.ncclSend(reinterpret_cast<const void*>(static_cast<uintptr_t>(a.size(1, "sendPtr"))), static_cast<size_t>(a.size(2, "sendCount")), dtype,
                          static_cast<int>(a.size(3, "dst")), g->comm, s), "send_recv");
    check_nccl(f.ncclRecv(reinterpret_cast<void*>(static_cast<uintptr_t>(a.size(4, "recvPtr"))), static_cast<size_t>(a.size(5, "recvCount")), dtype,
                          static_cast<int>(a.size(6, "src")), g->comm, s), "send_recv");
    enqueued(*g, f.ncclGroupEnd(), "send_recv", wait_enqueued);
    return queue_wait(env, g, "send_recv", true, 0);
  });
}

}  // namespace

void register_cuda_nccl(napi_env env, napi_value exports) {
#define F(name, fn) {name, nullptr, fn, nullptr, nullptr, nullptr, napi_default, nullptr}
  napi_property_descriptor props[] = {
      F("ncclUniqueId", js_unique_id), F("ncclGroupOpen", js_open), F("ncclGroupClose", js_close),
      F("ncclCollective", js_collective), F("ncclSendRecv", js_send_recv),
  };
#undef F
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace cuda
}  // namespace aligner
