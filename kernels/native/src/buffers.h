// Buffers and the handle table.
//
// JS holds small integer handles; the table maps them to raw memory. Freeing a handle retires the
// slot at once (so a stale handle fails validation until the slot is reused, oldest slot first),
// while the memory itself is released by a command queued behind the work that reads it.
// liveBuffers / liveBytes count memory held by handles, so they drop when that command runs.
//
// Released memory goes to a cache keyed by size class instead of back to the C library: a
// training step allocates the same shapes every step, and fresh large allocations are mmapped
// pages that fault in on first touch (measured: ~40% of a small-model step). cachedBytes reports
// what the cache holds; it is bounded (ALIGN_HOST_CACHE_MB, default 4096) and emptyCache() frees it.
#pragma once

#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace aligner {

struct Buffer {
  void* data = nullptr;
  size_t capacity = 0;  // bytes allocated (≥ 64, a multiple of 64)
  i64 numel = 0;
  DType dtype = DType::f32;
  bool live = false;
};

class BufferTable {
 public:
  BufferTable() = default;
  ~BufferTable();
  BufferTable(const BufferTable&) = delete;
  BufferTable& operator=(const BufferTable&) = delete;

  // 64-byte aligned, uninitialised memory (from the cache when a block of its size class is
  // there); throws OutOfMemoryError with the bytes asked.
  int alloc(DType dtype, i64 numel);
  // The live buffer behind a handle, or NativeError "invalid or freed handle N".
  const Buffer& get(int handle) const;
  // Retires the handle and returns its buffer; the caller must release() the memory later.
  Buffer retire(int handle);
  // Returns the memory to the cache (or frees it when the cache is full). Any thread.
  void release(const Buffer& b);
  // Frees every cached block. Any thread.
  void empty_cache();

  i64 live_buffers() const { return live_buffers_.load(); }
  i64 live_bytes() const { return live_bytes_.load(); }
  i64 cached_bytes() const { return cached_bytes_.load(); }

 private:
  static size_t size_class(size_t bytes);
  void* take_cached(size_t capacity);

  std::mutex cache_mu_;
  std::unordered_map<size_t, std::vector<void*>> cache_;
  std::atomic<i64> cached_bytes_{0};
  i64 cache_limit_ = 0;
  std::vector<Buffer> slots_;
  std::deque<int> free_slots_;
  std::atomic<i64> live_buffers_{0};
  std::atomic<i64> live_bytes_{0};
};

}  // namespace aligner
