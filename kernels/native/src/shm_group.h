// A process group over POSIX shared memory: the CPU backend of kernels/distributed.
//
// One segment per group, named by the caller (the name is the rendezvous: every rank of one
// gang attempt gets the same fresh name out of band). Rank 0 creates it, the others wait for it.
// Layout: a header of per-rank counters (each on its own cache line), then one staging slot per
// rank (two buffers, which all-reduce alternates), then one mailbox per ordered pair of ranks.
//
// Reductions are rank-ordered: element j of a sum is ((x0 + x1) + x2) + … on every rank, whoever
// computes it and whenever the others arrive, so results never depend on timing.
//
// Waits spin briefly, then yield, then sleep, and check the clock: a rank that never arrives is
// an error naming it (and saying when its process has exited), never a hang. After an error the
// group is broken and every later call fails at once; the caller tears it down and starts anew.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace aligner {

enum class ReduceOp { sum = 0, max = 1 };

class ShmGroup {
 public:
  static constexpr int kMaxWorld = 64;
  struct Header;  // the segment's first bytes (shm_group.cc)

  // Joins (rank 0: creates) the segment `name`; waits up to timeout_ms for it to appear and for
  // every rank to arrive. Runs on the stream executor, never on the JS thread.
  ShmGroup(const std::string& name, int rank, int world, size_t slot_bytes, size_t mailbox_bytes, int64_t timeout_ms);
  ~ShmGroup();  // unmaps; rank 0 also unlinks the name
  ShmGroup(const ShmGroup&) = delete;
  ShmGroup& operator=(const ShmGroup&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }

  void barrier(const char* what);
  // f32 only for the reductions; the others move bytes of any dtype.
  void all_reduce(float* data, i64 n, ReduceOp op);
  void all_gather(const void* in, void* out, size_t bytes_per_rank);
  void reduce_scatter(const float* in, float* out, i64 n_per_rank, ReduceOp op);
  void broadcast(void* data, size_t bytes, int root);
  void send(const void* data, size_t bytes, int dst);
  void recv(void* data, size_t bytes, int src);
  // Both at once, progressing whichever mailbox allows (never blocks on its own send).
  void send_recv(const void* out, size_t out_bytes, int dst, void* in, size_t in_bytes, int src);

 private:
  struct alignas(64) Counter {
    std::atomic<uint64_t> value;
  };

  uint8_t* slot(int r) const;
  uint8_t* mailbox(int src, int dst) const;
  // Spins until ready() holds; on timeout throws, naming the ranks `missing()` lists.
  template <class Ready, class Missing>
  void wait(const char* what, Ready ready, Missing missing);
  void check_usable(const char* what) const;
  [[noreturn]] void fail(const std::string& message);

  std::string name_;
  int rank_, world_;
  size_t slot_bytes_, mailbox_bytes_, map_bytes_ = 0;
  int64_t timeout_ms_;
  uint8_t* base_ = nullptr;
  Header* header_ = nullptr;
  uint64_t generation_ = 0;  // barriers this rank has entered
  uint64_t collective_ = 0;  // collectives this rank has run, for error messages
  bool broken_ = false;
};

}  // namespace aligner
