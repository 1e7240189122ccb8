// Stream executor. Errors are caught per command and recorded, never propagated to the
// executor thread, so one bad kernel cannot take the process down.
#include "stream.h"

#include <new>

namespace aligner {

Stream::Stream(Pool* pool) : pool_(pool) {
  executor_ = std::thread([this] { executor_main(); });
}

Stream::~Stream() {
  drain();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  has_work_.notify_all();
  executor_.join();
}

void Stream::record_error(uint64_t seq, const char* name, const std::string& message) {
  std::lock_guard<std::mutex> lk(err_mu_);
  if (has_error_) return;
  has_error_ = true;
  error_seq_ = seq;
  error_name_ = name;
  error_message_ = message;
}

void Stream::run_command(uint64_t seq, const std::function<void()>& fn) {
  Pool* saved = tl_pool;
  tl_pool = pool_;
  try {
    fn();
  } catch (const KernelError& e) {
    record_error(seq, e.name.c_str(), e.what());
  } catch (const std::bad_alloc&) {
    record_error(seq, "OutOfMemoryError", "out of memory inside a kernel");
  } catch (const std::exception& e) {
    record_error(seq, "NativeError", e.what());
  } catch (...) {
    record_error(seq, "NativeError", "unknown native exception");
  }
  tl_pool = saved;
}

uint64_t Stream::submit(i64 work, std::function<void()> fn) {
  if (work < kInlineWork && idle()) {
    uint64_t seq = ++submitted_;
    run_command(seq, fn);
    completed_.store(seq, std::memory_order_release);
    return seq;
  }
  return enqueue(std::move(fn));
}

uint64_t Stream::enqueue(std::function<void()> fn) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lk(mu_);
    seq = ++submitted_;
    queue_.emplace_back(seq, std::move(fn));
  }
  has_work_.notify_one();
  return seq;
}

void Stream::executor_main() {
  for (;;) {
    std::pair<uint64_t, std::function<void()>> cmd;
    {
      std::unique_lock<std::mutex> lk(mu_);
      has_work_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ with nothing left
      cmd = std::move(queue_.front());
      queue_.pop_front();
    }
    run_command(cmd.first, cmd.second);
    cmd.second = nullptr;  // release captured state before announcing completion
    {
      std::lock_guard<std::mutex> lk(mu_);
      completed_.store(cmd.first, std::memory_order_release);
    }
    done_.notify_all();
  }
}

void Stream::wait(uint64_t seq) {
  if (completed_.load(std::memory_order_acquire) >= seq) return;
  std::unique_lock<std::mutex> lk(mu_);
  done_.wait(lk, [&] { return completed_.load(std::memory_order_acquire) >= seq; });
}

bool Stream::take_error(uint64_t upto, std::string* name, std::string* message) {
  std::lock_guard<std::mutex> lk(err_mu_);
  if (!has_error_ || error_seq_ > upto) return false;
  has_error_ = false;
  *name = std::move(error_name_);
  *message = std::move(error_message_);
  return true;
}

}  // namespace aligner
