// Buffers and the handle table.
//
// JS holds small integer handles; the table maps them to raw memory. Freeing a handle retires the
// slot at once (so a stale handle fails validation until the slot is reused, oldest slot first),
// while the memory itself is released by a command queued behind the work that reads it.
// liveBuffers / liveBytes count memory actually held, so they drop when that command runs.
#pragma once

#include <atomic>
#include <deque>
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

  // Allocates 64-byte aligned, uninitialised memory; throws OutOfMemoryError with the bytes asked.
  int alloc(DType dtype, i64 numel);
  // The live buffer behind a handle, or NativeError "invalid or freed handle N".
  const Buffer& get(int handle) const;
  // Retires the handle and returns its buffer; the caller must release() the memory later.
  Buffer retire(int handle);
  void release(const Buffer& b);

  i64 live_buffers() const { return live_buffers_.load(); }
  i64 live_bytes() const { return live_bytes_.load(); }

 private:
  std::vector<Buffer> slots_;
  std::deque<int> free_slots_;
  std::atomic<i64> live_buffers_{0};
  std::atomic<i64> live_bytes_{0};
};

}  // namespace aligner
