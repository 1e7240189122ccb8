// JS bindings of the shared-memory process group (shm_group.h).
//
// Every call is queued on the stream, behind the kernels that produce its inputs, and returns a
// Promise that a napi_async_work resolves when the command has run: a collective that waits for
// other processes blocks the executor, never the JS thread, so heartbeats and timers stay live.
// Storages go as handles; data moves between them and the segment in native code only.
//
// An all-reduce may instead run on the group's communication stream (`overlap`): it still waits
// for the kernels queued before it, but kernels queued after it run concurrently, which is how
// gradient buckets are reduced while the backward goes on. Group calls still execute in the order
// they were issued on every rank: a call on the main stream first waits for the communication
// stream to finish what was issued before it.
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "engine.h"
#include "napi_util.h"
#include "shm_group.h"

namespace aligner {

namespace {

std::mutex groups_mu;
std::unordered_map<int, std::unique_ptr<ShmGroup>> groups;
// Created by a group's rendezvous (or its first overlapped call); only the JS thread submits to it.
std::unordered_map<int, std::shared_ptr<Stream>> comm_streams;
int next_group_id = 1;

std::shared_ptr<Stream> comm_stream(int id, bool create) {
  std::lock_guard<std::mutex> lock(groups_mu);
  auto it = comm_streams.find(id);
  if (it != comm_streams.end()) return it->second;
  if (!create) return nullptr;
  auto s = std::make_shared<Stream>(nullptr);  // collectives use no pool
  comm_streams[id] = s;
  return s;
}

ShmGroup& group(int id) {
  std::lock_guard<std::mutex> lock(groups_mu);
  auto it = groups.find(id);
  if (it == groups.end()) throw KernelError("ProcessGroupError", "process group " + std::to_string(id) + " is closed or unknown");
  return *it->second;
}

struct GroupJob {
  std::shared_ptr<Stream> stream;  // the one the command was queued on
  uint64_t seq;
  double result;
  napi_deferred deferred;
  napi_async_work work;
};

void job_execute(napi_env, void* data) {
  auto* job = static_cast<GroupJob*>(data);
  job->stream->wait(job->seq);
}

void job_complete(napi_env env, napi_status status, void* data) {
  std::unique_ptr<GroupJob> job(static_cast<GroupJob*>(data));
  napi_delete_async_work(env, job->work);
  std::string name, message;
  if (status != napi_ok) {
    napi_reject_deferred(env, job->deferred, make_error(env, "NativeError", "process group: async work was cancelled"));
  } else if (job->stream->take_error(job->seq, &name, &message)) {
    napi_reject_deferred(env, job->deferred, make_error(env, name, message));
  } else {
    napi_resolve_deferred(env, job->deferred, js_number(env, job->result));
  }
}

// Not owning: the engine's main stream outlives every job queued on it.
std::shared_ptr<Stream> main_stream(Engine& e) { return std::shared_ptr<Stream>(e.stream.get(), [](Stream*) {}); }

napi_value queue_job(napi_env env, std::shared_ptr<Stream> stream, double result, std::function<void()> fn) {
  auto job = std::make_unique<GroupJob>();
  job->stream = stream;
  job->result = result;
  napi_value promise;
  NAPI_OK(napi_create_promise(env, &job->deferred, &promise));
  job->seq = stream->enqueue(std::move(fn));
  NAPI_OK(napi_create_async_work(env, nullptr, js_string(env, "aligner.processGroup"), job_execute, job_complete, job.get(),
                                 &job->work));
  NAPI_OK(napi_queue_async_work(env, job->work));
  job.release();
  return promise;
}

// Queues fn on the main stream, after whatever group `id` has issued on its communication
// stream; the Promise resolves to `result` once it has run.
template <class F>
napi_value queue(napi_env env, Engine& e, int id, double result, F&& fn) {
  std::shared_ptr<Stream> comm = comm_stream(id, false);
  const uint64_t issued = comm ? comm->last_submitted() : 0;
  return queue_job(env, main_stream(e), result, [comm, issued, fn = std::forward<F>(fn)] {
    if (comm) comm->wait(issued);
    fn();
  });
}

// Queues fn on group `id`'s communication stream, after the kernels queued so far on the main one.
template <class F>
napi_value queue_overlapped(napi_env env, Engine& e, int id, F&& fn) {
  Stream* main = e.stream.get();
  const uint64_t produced = main->last_submitted();
  return queue_job(env, comm_stream(id, true), 0, [main, produced, fn = std::forward<F>(fn)] {
    main->wait(produced);
    fn();
  });
}

const Buffer& f32_buffer(Engine& e, const Args& a, size_t i, const char* what) {
  const Buffer& b = e.buffers.get(a.int32(i, what));
  if (b.dtype != DType::f32) fail("DTypeError", std::string(what) + ": reductions take f32 tensors");
  return b;
}

size_t bytes_of(const Buffer& b) { return static_cast<size_t>(b.numel) * dtype_size(b.dtype); }

ReduceOp reduce_op(const Args& a, size_t i) {
  const std::string op = a.str(i, "op");
  if (op == "sum") return ReduceOp::sum;
  if (op == "max") return ReduceOp::max;
  fail("NativeError", "unknown reduce op '" + op + "' (sum, max)");
}

// shmGroupOpen(name, rank, world, slotBytes, mailboxBytes, timeoutMs) → Promise<group id>
napi_value js_open(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "shmGroupOpen", 6);
    const std::string name = a.str(0, "name");
    const int rank = a.int32(1, "rank"), world = a.int32(2, "world");
    const size_t slot = static_cast<size_t>(a.size(3, "slotBytes")), mailbox = static_cast<size_t>(a.size(4, "mailboxBytes"));
    const int64_t timeout = a.size(5, "timeoutMs");
    int id;
    {
      std::lock_guard<std::mutex> lock(groups_mu);
      id = next_group_id++;
    }
    // The rendezvous runs on the group's own stream, not the engine's: a rank waiting for peers
    // (up to the timeout) must not hold up the tensor work behind it, nor a later group's
    // rendezvous when this one is abandoned (its rank cancelled because a peer was lost).
    return queue_job(env, comm_stream(id, true), id, [=] {
      try {
        auto g = std::make_unique<ShmGroup>(name, rank, world, slot, mailbox, timeout);
        std::lock_guard<std::mutex> lock(groups_mu);
        groups[id] = std::move(g);
      } catch (...) {
        std::lock_guard<std::mutex> lock(groups_mu);
        comm_streams.erase(id);  // the job still holds the stream; it is freed when the job completes
        throw;
      }
    });
  });
}

napi_value js_close(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "shmGroupClose", 1);
    const int id = a.int32(0, "group");
    return queue(env, engine(env), id, 0, [=] {
      std::shared_ptr<Stream> comm;
      {
        std::lock_guard<std::mutex> lock(groups_mu);
        groups.erase(id);
        auto it = comm_streams.find(id);
        if (it != comm_streams.end()) comm = std::move(it->second), comm_streams.erase(it);
      }
      comm.reset();  // drained already (queue waited for it); joins its thread
    });
  });
}

napi_value js_barrier(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "shmGroupBarrier", 1);
    const int id = a.int32(0, "group");
    return queue(env, engine(env), id, 0, [=] { group(id).barrier("barrier"); });
  });
}

// shmGroupAllReduce(group, handle, op, overlap?): in place; overlap runs it on the communication stream.
napi_value js_all_reduce(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "shmGroupAllReduce", 3);
    Engine& e = engine(env);
    const int id = a.int32(0, "group");
    const Buffer& b = f32_buffer(e, a, 1, "allReduce");
    float* data = static_cast<float*>(b.data);
    const i64 n = b.numel;
    const ReduceOp op = reduce_op(a, 2);
    const bool overlap = a.count() > 3 && a.flag(3);
    auto run = [=] { group(id).all_reduce(data, n, op); };
    return overlap ? queue_overlapped(env, e, id, run) : queue(env, e, id, 0, run);
  });
}

// shmGroupAllGather(group, in, out): out holds world × in, rank r's part at r·numel(in).
napi_value js_all_gather(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "shmGroupAllGather", 3);
    Engine& e = engine(env);
    const int id = a.int32(0, "group");
    const Buffer& in = e.buffers.get(a.int32(1, "in"));
    const Buffer& out = e.buffers.get(a.int32(2, "out"));
    const int world = group(id).world();
    if (in.dtype != out.dtype || out.numel != in.numel * world)
      fail("ShapeError", "allGather: out must hold world (" + std::to_string(world) + ") × " + std::to_string(in.numel) +
                             " elements of in's dtype, has " + std::to_string(out.numel));
    const void* src = in.data;
    void* dst = out.data;
    const size_t bytes = bytes_of(in);
    return queue(env, e, id, 0, [=] { group(id).all_gather(src, dst, bytes); });
  });
}

// shmGroupReduceScatter(group, in, out, op): in holds world × out; rank r gets the reduction of part r.
napi_value js_reduce_scatter(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "shmGroupReduceScatter", 4);
    Engine& e = engine(env);
    const int id = a.int32(0, "group");
    const Buffer& in = f32_buffer(e, a, 1, "reduceScatter");
    const Buffer& out = f32_buffer(e, a, 2, "reduceScatter");
    const int world = group(id).world();
    if (in.numel != out.numel * world)
      fail("ShapeError", "reduceScatter: in must hold world (" + std::to_string(world) + ") × out's " +
                             std::to_string(out.numel) + " elements, has " + std::to_string(in.numel));
    const float* src = static_cast<const float*>(in.data);
    float* dst = static_cast<float*>(out.data);
    const i64 n = out.numel;
    const ReduceOp op = reduce_op(a, 3);
    return queue(env, e, id, 0, [=] { group(id).reduce_scatter(src, dst, n, op); });
  });
}

// shmGroupBroadcast(group, handle, root), shmGroupSend(group, handle, dst), shmGroupRecv(group, handle, src)
enum class Move { broadcast, send, recv };

template <Move kind>
napi_value js_move(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "shmGroupMove", 3);
    Engine& e = engine(env);
    const int id = a.int32(0, "group");
    const Buffer& b = e.buffers.get(a.int32(1, "handle"));
    void* data = b.data;
    const size_t bytes = bytes_of(b);
    const int peer = a.int32(2, "peer");
    return queue(env, e, id, 0, [=] {
      ShmGroup& g = group(id);
      if (kind == Move::broadcast) g.broadcast(data, bytes, peer);
      if (kind == Move::send) g.send(data, bytes, peer);
      if (kind == Move::recv) g.recv(data, bytes, peer);
    });
  });
}

// shmGroupSendRecv(group, sendHandle, dst, recvHandle, src)
napi_value js_send_recv(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, "shmGroupSendRecv", 5);
    Engine& e = engine(env);
    const int id = a.int32(0, "group");
    const Buffer& out = e.buffers.get(a.int32(1, "sendHandle"));
    const Buffer& in = e.buffers.get(a.int32(3, "recvHandle"));
    const void* src_data = out.data;
    void* dst_data = in.data;
    const size_t out_bytes = bytes_of(out), in_bytes = bytes_of(in);
    const int dst = a.int32(2, "dst"), src = a.int32(4, "src");
    return queue(env, e, id, 0, [=] { group(id).send_recv(src_data, out_bytes, dst, dst_data, in_bytes, src); });
  });
}

}  // namespace

void register_group(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"shmGroupOpen", nullptr, js_open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shmGroupClose", nullptr, js_close, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shmGroupBarrier", nullptr, js_barrier, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shmGroupAllReduce", nullptr, js_all_reduce, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shmGroupAllGather", nullptr, js_all_gather, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shmGroupReduceScatter", nullptr, js_reduce_scatter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shmGroupBroadcast", nullptr, js_move<Move::broadcast>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shmGroupSend", nullptr, js_move<Move::send>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shmGroupRecv", nullptr, js_move<Move::recv>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"shmGroupSendRecv", nullptr, js_send_recv, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
}

}  // namespace aligner
