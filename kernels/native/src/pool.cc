// Thread pool: workers spin briefly for the next job (kernels come in quick succession), then
// sleep on a condition variable so an idle engine costs no CPU.
#include "pool.h"

#include <immintrin.h>

#include <chrono>

namespace aligner {

thread_local Pool* tl_pool = nullptr;

namespace {
using Clock = std::chrono::steady_clock;
constexpr auto kWorkerSpin = std::chrono::microseconds(50);
constexpr auto kCallerSpin = std::chrono::microseconds(200);
}  // namespace

Pool::Pool(int threads) {
  if (threads < 1) threads = 1;
  for (int i = 1; i < threads; i++) workers_.emplace_back([this] { worker_main(); });
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void Pool::work() {
  for (;;) {
    i64 i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= ntasks_) return;
    try {
      (*task_)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void Pool::worker_main() {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    if (gen == seen && !stop_.load(std::memory_order_relaxed)) {
      auto until = Clock::now() + kWorkerSpin;
      int spins = 0;
      while ((gen = generation_.load(std::memory_order_acquire)) == seen && !stop_.load(std::memory_order_relaxed)) {
        _mm_pause();
        if (++spins % 64 == 0 && Clock::now() > until) break;
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        wake_.wait(lk, [&] { return generation_.load() != seen || stop_.load(); });
        gen = generation_.load();
      }
    }
    if (stop_.load()) return;
    seen = gen;
    work();
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(done_mu_);
      done_.notify_one();
    }
  }
}

void Pool::run(i64 ntasks, const std::function<void(i64)>& task) {
  if (ntasks <= 0) return;
  // Serial: no workers, a single task, or a nested call from inside a task (busy_ already set).
  if (workers_.empty() || ntasks == 1 || busy_.exchange(true)) {
    for (i64 i = 0; i < ntasks; i++) task(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    task_ = &task;
    ntasks_ = ntasks;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work();
  // Every worker must leave this generation before task_ (on the caller's stack) goes away.
  auto until = Clock::now() + kCallerSpin;
  int spins = 0;
  while (pending_.load(std::memory_order_acquire) != 0) {
    _mm_pause();
    if (++spins % 64 == 0 && Clock::now() > until) {
      std::unique_lock<std::mutex> lk(done_mu_);
      done_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
      break;
    }
  }
  std::exception_ptr err = error_;
  error_ = nullptr;
  busy_.store(false);
  if (err) std::rethrow_exception(err);
}

int current_threads() {
  return tl_pool ? tl_pool->threads() : 1;
}

void parallel_for(i64 count, i64 grain, const std::function<void(i64, i64)>& fn) {
  if (count <= 0) return;
  if (grain < 1) grain = 1;
  int threads = current_threads();
  if (threads <= 1 || count <= grain) {
    fn(0, count);
    return;
  }
  // A few chunks per thread balance uneven work (causal attention, ragged rows).
  i64 chunk = std::max(grain, ceil_div(count, static_cast<i64>(threads) * 4));
  i64 nchunks = ceil_div(count, chunk);
  tl_pool->run(nchunks, [&](i64 c) {
    i64 b = c * chunk;
    fn(b, std::min(count, b + chunk));
  });
}

}  // namespace aligner
