// Handle table and aligned allocation.
#include "buffers.h"

#include <cstdlib>
#include <limits>

namespace aligner {

BufferTable::~BufferTable() {
  for (auto& b : slots_)
    if (b.live) std::free(b.data);
  empty_cache();
}

// 64-byte steps up to 4 KiB, then 8 steps per power of two: at most 12.5% slack per block.
size_t BufferTable::size_class(size_t bytes) {
  if (bytes <= 4096) return bytes < 64 ? 64 : (bytes + 63) / 64 * 64;
  int top = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes));
  size_t step = size_t{1} << (top - 3);
  return (bytes + step - 1) / step * step;
}

void* BufferTable::take_cached(size_t capacity) {
  std::lock_guard<std::mutex> lk(cache_mu_);
  auto it = cache_.find(capacity);
  if (it == cache_.end() || it->second.empty()) return nullptr;
  void* p = it->second.back();
  it->second.pop_back();
  cached_bytes_.fetch_sub(static_cast<i64>(capacity));
  return p;
}

void BufferTable::empty_cache() {
  std::lock_guard<std::mutex> lk(cache_mu_);
  for (auto& [capacity, blocks] : cache_) {
    for (void* p : blocks) std::free(p);
    cached_bytes_.fetch_sub(static_cast<i64>(capacity * blocks.size()));
  }
  cache_.clear();
}

int BufferTable::alloc(DType dtype, i64 numel) {
  if (numel < 0) fail("ShapeError", "alloc: negative element count " + std::to_string(numel));
  const size_t esize = dtype_size(dtype);
  const size_t max_elems = (std::numeric_limits<size_t>::max() - 64) / esize;
  if (static_cast<uint64_t>(numel) > max_elems)
    fail("OutOfMemoryError", "alloc: cannot allocate " + std::to_string(numel) + " elements of " + dtype_name(dtype));
  size_t bytes = static_cast<size_t>(numel) * esize;
  size_t capacity = size_class(bytes);
  void* data = take_cached(capacity);
  if (data == nullptr && (posix_memalign(&data, 64, capacity) != 0 || data == nullptr))
    fail("OutOfMemoryError", "alloc: out of memory allocating " + std::to_string(bytes) + " bytes (" +
                                 std::to_string(numel) + " × " + dtype_name(dtype) + ")");
  int handle;
  if (!free_slots_.empty()) {
    handle = free_slots_.front();
    free_slots_.pop_front();
  } else {
    if (slots_.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
      std::free(data);
      fail("OutOfMemoryError", "alloc: handle table full");
    }
    handle = static_cast<int>(slots_.size());
    slots_.emplace_back();
  }
  slots_[handle] = Buffer{data, capacity, numel, dtype, true};
  live_buffers_.fetch_add(1);
  live_bytes_.fetch_add(static_cast<i64>(capacity));
  return handle;
}

const Buffer& BufferTable::get(int handle) const {
  // kernels/native-backend.ts marks a freed storage by replacing its handle h with ~h (negative).
  if (handle < 0) fail("NativeError", "invalid or freed handle " + std::to_string(~handle));
  if (static_cast<size_t>(handle) >= slots_.size() || !slots_[handle].live)
    fail("NativeError", "invalid or freed handle " + std::to_string(handle));
  return slots_[handle];
}

Buffer BufferTable::retire(int handle) {
  Buffer b = get(handle);
  slots_[handle] = Buffer{};
  free_slots_.push_back(handle);
  return b;
}

void BufferTable::release(const Buffer& b) {
  if (cache_limit_ == 0) {
    const char* mb = std::getenv("ALIGN_HOST_CACHE_MB");
    cache_limit_ = (mb && *mb ? std::atoll(mb) : 4096) * (i64{1} << 20);
    if (cache_limit_ == 0) cache_limit_ = -1;  // caching off
  }
  bool cached = false;
  if (cached_bytes_.load() + static_cast<i64>(b.capacity) <= cache_limit_) {
    std::lock_guard<std::mutex> lk(cache_mu_);
    cache_[b.capacity].push_back(b.data);
    cached_bytes_.fetch_add(static_cast<i64>(b.capacity));
    cached = true;
  }
  if (!cached) std::free(b.data);
  live_buffers_.fetch_sub(1);
  live_bytes_.fetch_sub(static_cast<i64>(b.capacity));
}

}  // namespace aligner
