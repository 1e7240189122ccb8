#include "shm_group.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace aligner {

namespace {
constexpr uint64_t kMagic = 0x414c4e5247525031ull;  // "ALNRGRP1"
using Clock = std::chrono::steady_clock;

void sleep_us(long us) {
  timespec ts{0, us * 1000};
  nanosleep(&ts, nullptr);
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); i++) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}
}  // namespace

struct ShmGroup::Header {
  std::atomic<uint64_t> magic;
  int32_t world;
  int32_t pid[kMaxWorld];
  uint64_t slot_bytes, mailbox_bytes;
  Counter arrived[kMaxWorld];                 // barrier generation each rank has reached
  Counter sent[kMaxWorld * kMaxWorld];        // chunks put in mailbox [src·W + dst]
  Counter taken[kMaxWorld * kMaxWorld];       // chunks taken from it
};

namespace {
// The header rounded up to whole pages; the slots start here.
constexpr size_t kHeaderBytes = (sizeof(ShmGroup::Header) + 4095) / 4096 * 4096;

// fn(offset, length) for each chunk of `total` in pieces of at most `chunk`; once with length 0
// when total is 0, so every rank still meets the others at the collective's barriers.
template <class F>
void for_chunks(size_t total, size_t chunk, F fn) {
  size_t at = 0;
  do {
    const size_t m = std::min(chunk, total - at);
    fn(at, m);
    at += m;
  } while (at < total);
}
}  // namespace

ShmGroup::ShmGroup(const std::string& name, int rank, int world, size_t slot_bytes, size_t mailbox_bytes,
                   int64_t timeout_ms)
    : name_(name[0] == '/' ? name : "/" + name), rank_(rank), world_(world),
      slot_bytes_(slot_bytes / 64 * 64), mailbox_bytes_(mailbox_bytes / 64 * 64), timeout_ms_(timeout_ms) {
  if (world < 1 || world > kMaxWorld) fail("world size must be 1.." + std::to_string(kMaxWorld));
  if (rank < 0 || rank >= world) fail("rank " + std::to_string(rank) + " is outside 0.." + std::to_string(world - 1));
  if (slot_bytes_ < 64 * static_cast<size_t>(world) || mailbox_bytes_ < 64) fail("slot and mailbox sizes are too small");
  // Each rank's slot is two buffers of slot_bytes_: all-reduce alternates them chunk by chunk.
  map_bytes_ = kHeaderBytes + 2 * world * slot_bytes_ + static_cast<size_t>(world) * world * mailbox_bytes_;
  const auto start = Clock::now();
  const auto elapsed_ms = [&] { return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count(); };

  int fd = -1;
  if (rank == 0) {
    fd = shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) fail(std::string("cannot create its segment: ") + std::strerror(errno));
    if (ftruncate(fd, static_cast<off_t>(map_bytes_)) != 0) {
      const int err = errno;
      close(fd);
      shm_unlink(name_.c_str());
      fail(std::string("cannot size its segment: ") + std::strerror(err));
    }
  } else {
    struct stat st {};
    while (true) {
      if (fd < 0) fd = shm_open(name_.c_str(), O_RDWR, 0600);
      if (fd >= 0 && fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) == map_bytes_) break;
      if (elapsed_ms() > timeout_ms_) {
        if (fd >= 0) close(fd);
        fail("rank 0 did not create it within " + std::to_string(timeout_ms_) + " ms (rank 0 never arrived)");
      }
      sleep_us(1000);
    }
  }
  void* p = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    if (rank == 0) shm_unlink(name_.c_str());
    fail(std::string("cannot map its segment: ") + std::strerror(errno));
  }
  base_ = static_cast<uint8_t*>(p);
  header_ = reinterpret_cast<Header*>(base_);
  if (rank == 0) {
    header_->world = world;
    header_->slot_bytes = slot_bytes_;
    header_->mailbox_bytes = mailbox_bytes_;
    header_->magic.store(kMagic, std::memory_order_release);
  } else {
    while (header_->magic.load(std::memory_order_acquire) != kMagic) {
      if (elapsed_ms() > timeout_ms_) fail("rank 0 created it but never initialised it");
      sleep_us(200);
    }
    if (header_->world != world || header_->slot_bytes != slot_bytes_ || header_->mailbox_bytes != mailbox_bytes_)
      fail("rank 0 opened it with world " + std::to_string(header_->world) + ", this rank with " + std::to_string(world) +
           " (or with other buffer sizes)");
  }
  header_->pid[rank] = static_cast<int32_t>(getpid());
  barrier("rendezvous");
  // Every rank has mapped it: the name is no longer needed, and nothing is left behind if a
  // process is killed later.
  if (rank == 0) shm_unlink(name_.c_str());
}

ShmGroup::~ShmGroup() {
  if (base_) munmap(base_, map_bytes_);
}

void ShmGroup::fail(const std::string& message) {
  broken_ = true;
  throw KernelError("ProcessGroupError", "process group '" + name_.substr(1) + "' (rank " + std::to_string(rank_) + " of " +
                                             std::to_string(world_) + "): " + message);
}

void ShmGroup::check_usable(const char* what) const {
  if (broken_)
    throw KernelError("ProcessGroupError", "process group '" + name_.substr(1) + "' is broken by an earlier error; " +
                                               what + " refused (tear the group down and rendezvous anew)");
}

uint8_t* ShmGroup::slot(int r) const {
  return base_ + kHeaderBytes + static_cast<size_t>(r) * 2 * slot_bytes_;
}

uint8_t* ShmGroup::mailbox(int src, int dst) const {
  return slot(world_) + (static_cast<size_t>(src) * world_ + dst) * mailbox_bytes_;
}

template <class Ready, class Missing>
void ShmGroup::wait(const char* what, Ready ready, Missing missing) {
  for (int spin = 0; spin < 4000; spin++) {
    if (ready()) return;
    __builtin_ia32_pause();
  }
  const auto start = Clock::now();
  auto last_pid_check = start;
  for (uint64_t i = 0; !ready(); i++) {
    if (i < 64) {
      sched_yield();
      continue;
    }
    sleep_us(20);
    const auto now = Clock::now();
    if (now - last_pid_check > std::chrono::milliseconds(50)) {
      last_pid_check = now;
      std::vector<int> exited;
      for (int r : missing())
        if (header_->pid[r] > 0 && kill(header_->pid[r], 0) != 0 && errno == ESRCH) exited.push_back(r);
      if (!exited.empty())
        fail("rank " + rank_list(exited) + " (pid " + std::to_string(header_->pid[exited[0]]) + ") exited before " + what +
             " #" + std::to_string(collective_));
    }
    if (std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count() > timeout_ms_)
      fail("rank " + rank_list(missing()) + " did not arrive at " + what + " #" + std::to_string(collective_) + " within " +
           std::to_string(timeout_ms_) + " ms");
  }
}

void ShmGroup::barrier(const char* what) {
  check_usable(what);
  const uint64_t gen = ++generation_;
  header_->arrived[rank_].value.store(gen, std::memory_order_release);
  const auto behind = [&](int r) { return header_->arrived[r].value.load(std::memory_order_acquire) < gen; };
  wait(
      what,
      [&] {
        for (int r = 0; r < world_; r++)
          if (behind(r)) return false;
        return true;
      },
      [&] {
        std::vector<int> m;
        for (int r = 0; r < world_; r++)
          if (behind(r)) m.push_back(r);
        return m;
      });
}

namespace {
// out[j] = in_0[j] ∘ in_1[j] ∘ … in rank order: the same rounding whichever rank computes it.
// out may be in_0 itself (all-reduce leaves its result in slot 0).
void reduce_ranks(float* out, uint8_t* const* slots, size_t offset, i64 n, int world, ReduceOp op) {
  const float* first = reinterpret_cast<const float*>(slots[0] + offset);
  if (out != first) std::memcpy(out, first, n * sizeof(float));
  for (int k = 1; k < world; k++) {
    // Distinct ranks' slots never overlap, so the loops may vectorise without alias checks.
    float* __restrict o = out;
    const float* __restrict x = reinterpret_cast<const float*>(slots[k] + offset);
    if (op == ReduceOp::sum) {
      for (i64 j = 0; j < n; j++) o[j] += x[j];
    } else {
      // NaN wins, as in torch.distributed's MAX.
      for (i64 j = 0; j < n; j++) o[j] = (o[j] != o[j] || o[j] >= x[j]) ? o[j] : x[j];
    }
  }
}
}  // namespace

void ShmGroup::all_reduce(float* data, i64 n, ReduceOp op) {
  collective_++;
  std::vector<uint8_t*> srcs(world_);
  size_t parity = 0;
  for_chunks(n, slot_bytes_ / sizeof(float), [&](i64 at, i64 m) {
    // Consecutive chunks use the slots' two buffers in turn, so staging chunk k+1 cannot clobber
    // chunk k's result while a slower rank still copies it out: two barriers per chunk, not three.
    const size_t buf = parity * slot_bytes_;
    parity ^= 1;
    const i64 seg = (m + world_ - 1) / world_;
    const i64 lo = std::min(m, rank_ * seg), hi = std::min(m, lo + seg);
    // Stage what the others read: everything but this rank's own segment, which it reads in place.
    float* staged = reinterpret_cast<float*>(slot(rank_) + buf);
    std::memcpy(staged, data + at, lo * sizeof(float));
    std::memcpy(staged + hi, data + at + hi, (m - hi) * sizeof(float));
    barrier("all_reduce");
    // Rank r reduces segment r, in rank order, and leaves it in slot 0 for everyone.
    for (int r = 0; r < world_; r++) srcs[r] = r == rank_ ? reinterpret_cast<uint8_t*>(data + at) : slot(r) + buf;
    float* result = reinterpret_cast<float*>(slot(0) + buf);
    if (hi > lo) reduce_ranks(result + lo, srcs.data(), lo * sizeof(float), hi - lo, world_, op);
    barrier("all_reduce");
    std::memcpy(data + at, result, m * sizeof(float));
  });
  barrier("all_reduce");  // every rank has copied out before any later call writes a slot
}

void ShmGroup::all_gather(const void* in, void* out, size_t bytes) {
  collective_++;
  for_chunks(bytes, slot_bytes_, [&](size_t at, size_t m) {
    std::memcpy(slot(rank_), static_cast<const uint8_t*>(in) + at, m);
    barrier("all_gather");
    for (int r = 0; r < world_; r++) std::memcpy(static_cast<uint8_t*>(out) + r * bytes + at, slot(r), m);
    barrier("all_gather");
  });
}

void ShmGroup::reduce_scatter(const float* in, float* out, i64 n, ReduceOp op) {
  collective_++;
  std::vector<uint8_t*> slots(world_);
  for (int r = 0; r < world_; r++) slots[r] = slot(r);
  // Each slot holds W sub-chunks of m floats: sub-chunk d is what this rank sends to rank d.
  const i64 chunk = static_cast<i64>(slot_bytes_ / sizeof(float) / world_);
  for_chunks(n, chunk, [&](i64 at, i64 m) {
    for (int d = 0; d < world_; d++)
      std::memcpy(slot(rank_) + d * chunk * sizeof(float), in + d * n + at, m * sizeof(float));
    barrier("reduce_scatter");
    if (m > 0) reduce_ranks(out + at, slots.data(), rank_ * chunk * sizeof(float), m, world_, op);
    barrier("reduce_scatter");
  });
}

void ShmGroup::broadcast(void* data, size_t bytes, int root) {
  if (root < 0 || root >= world_) fail("broadcast root " + std::to_string(root) + " is not a rank");
  collective_++;
  for_chunks(bytes, slot_bytes_, [&](size_t at, size_t m) {
    if (rank_ == root) std::memcpy(slot(root), static_cast<uint8_t*>(data) + at, m);
    barrier("broadcast");
    if (rank_ != root) std::memcpy(static_cast<uint8_t*>(data) + at, slot(root), m);
    barrier("broadcast");
  });
}

// Point to point through the mailbox of (src, dst), one chunk at a time. A send of at most one
// mailbox returns without waiting for the receiver, so two ranks may send to each other first
// and receive second (the exchange pipeline stages do).
void ShmGroup::send(const void* data, size_t bytes, int dst) {
  check_usable("send");
  if (dst < 0 || dst >= world_ || dst == rank_) fail("send to " + std::to_string(dst) + ": not another rank");
  collective_++;
  auto& sent = header_->sent[rank_ * world_ + dst].value;
  auto& taken = header_->taken[rank_ * world_ + dst].value;
  for_chunks(bytes, mailbox_bytes_, [&](size_t at, size_t m) {
    wait("send", [&] { return taken.load(std::memory_order_acquire) == sent.load(std::memory_order_relaxed); },
         [&] { return std::vector<int>{dst}; });
    std::memcpy(mailbox(rank_, dst), static_cast<const uint8_t*>(data) + at, m);
    sent.fetch_add(1, std::memory_order_release);
  });
}

void ShmGroup::recv(void* data, size_t bytes, int src) {
  check_usable("recv");
  if (src < 0 || src >= world_ || src == rank_) fail("recv from " + std::to_string(src) + ": not another rank");
  collective_++;
  auto& sent = header_->sent[src * world_ + rank_].value;
  auto& taken = header_->taken[src * world_ + rank_].value;
  for_chunks(bytes, mailbox_bytes_, [&](size_t at, size_t m) {
    wait("recv", [&] { return sent.load(std::memory_order_acquire) > taken.load(std::memory_order_relaxed); },
         [&] { return std::vector<int>{src}; });
    std::memcpy(static_cast<uint8_t*>(data) + at, mailbox(src, rank_), m);
    taken.fetch_add(1, std::memory_order_release);
  });
}

// Send to dst and receive from src at once, a chunk of either whenever its mailbox allows, so
// that two ranks exchanging messages larger than a mailbox (pipeline stages sending activations
// one way and gradients the other) never wait on each other's send. The chunks are those of
// send and recv, so the peers may use either.
void ShmGroup::send_recv(const void* out, size_t out_bytes, int dst, void* in, size_t in_bytes, int src) {
  check_usable("send_recv");
  if (dst < 0 || dst >= world_ || dst == rank_) fail("send_recv to " + std::to_string(dst) + ": not another rank");
  if (src < 0 || src >= world_ || src == rank_) fail("send_recv from " + std::to_string(src) + ": not another rank");
  collective_++;
  auto& out_sent = header_->sent[rank_ * world_ + dst].value;
  auto& out_taken = header_->taken[rank_ * world_ + dst].value;
  auto& in_sent = header_->sent[src * world_ + rank_].value;
  auto& in_taken = header_->taken[src * world_ + rank_].value;
  const auto chunks = [&](size_t bytes) { return bytes == 0 ? size_t{1} : (bytes + mailbox_bytes_ - 1) / mailbox_bytes_; };
  const size_t out_chunks = chunks(out_bytes), in_chunks = chunks(in_bytes);
  size_t out_done = 0, in_done = 0;
  const auto can_send = [&] { return out_done < out_chunks && out_taken.load(std::memory_order_acquire) == out_sent.load(std::memory_order_relaxed); };
  const auto can_recv = [&] { return in_done < in_chunks && in_sent.load(std::memory_order_acquire) > in_taken.load(std::memory_order_relaxed); };
  while (out_done < out_chunks || in_done < in_chunks) {
    if (can_send()) {
      const size_t at = out_done * mailbox_bytes_, m = std::min(mailbox_bytes_, out_bytes - std::min(out_bytes, at));
      std::memcpy(mailbox(rank_, dst), static_cast<const uint8_t*>(out) + at, m);
      out_sent.fetch_add(1, std::memory_order_release);
      out_done++;
    }
    if (can_recv()) {
      const size_t at = in_done * mailbox_bytes_, m = std::min(mailbox_bytes_, in_bytes - std::min(in_bytes, at));
      std::memcpy(static_cast<uint8_t*>(in) + at, mailbox(src, rank_), m);
      in_taken.fetch_add(1, std::memory_order_release);
      in_done++;
    }
    if (out_done < out_chunks || in_done < in_chunks) {
      wait("send_recv", [&] { return can_send() || can_recv() || (out_done == out_chunks && in_done == in_chunks); },
           [&] {
             std::vector<int> m;
             if (out_done < out_chunks) m.push_back(dst);
             if (in_done < in_chunks && (m.empty() || src != dst)) m.push_back(src);
             return m;
           });
    }
  }
}

}  // namespace aligner
