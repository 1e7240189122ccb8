// The stream: an in-order command queue run by one executor thread, like a CUDA stream.
//
// Only the JS thread submits, so "idle" (every submitted command has completed) cannot change
// behind its back: when idle, a small command runs inline on the JS thread and skips the
// hand-off, which costs more than the kernel itself. A command that throws does not stop the
// stream; the first error is kept (with its sequence number) until someone takes it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common.h"
#include "pool.h"

namespace aligner {

class Stream {
 public:
  // Kernels below this many elements of work run inline when the stream is idle.
  static constexpr i64 kInlineWork = 32 * 1024;

  explicit Stream(Pool* pool);
  ~Stream();  // drains, then stops the executor
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Runs fn after every earlier command: inline when idle and work < kInlineWork, else queued.
  // Returns the command's sequence number.
  uint64_t submit(i64 work, std::function<void()> fn);
  // Always queued (used where the JS thread must not do the work itself).
  uint64_t enqueue(std::function<void()> fn);

  bool idle() const { return completed_.load(std::memory_order_acquire) == submitted_; }
  uint64_t last_submitted() const { return submitted_; }
  // Blocks until command `seq` (and so every earlier one) has completed. Any thread may wait.
  void wait(uint64_t seq);
  void drain() { wait(submitted_); }

  // Replaces the pool; the caller drains first so no command is using the old one.
  void set_pool(Pool* pool) { pool_ = pool; }

  // Takes (and clears) the first recorded error if it came from a command with seq <= upto.
  bool take_error(uint64_t upto, std::string* name, std::string* message);

 private:
  void executor_main();
  void run_command(uint64_t seq, const std::function<void()>& fn);
  void record_error(uint64_t seq, const char* name, const std::string& message);

  Pool* pool_;
  std::thread executor_;
  std::mutex mu_;
  std::condition_variable has_work_;
  std::condition_variable done_;
  std::deque<std::pair<uint64_t, std::function<void()>>> queue_;
  bool stop_ = false;
  uint64_t submitted_ = 0;              // written by the JS thread only
  std::atomic<uint64_t> completed_{0};  // commands finish in order, so this is a high-water mark

  std::mutex err_mu_;
  bool has_error_ = false;
  uint64_t error_seq_ = 0;
  std::string error_name_, error_message_;
};

}  // namespace aligner
