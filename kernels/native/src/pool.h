// A small fork-join thread pool and parallel_for.
//
// The pool has threads − 1 workers; the thread that calls run() (the stream's executor, or the JS
// thread for a small inline kernel) does its share, so "threads" counts every thread that works.
// Only one thread drives a pool at a time (the stream guarantees it), and a parallel_for nested
// inside a task runs serially rather than re-entering the pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

namespace aligner {

class Pool {
 public:
  explicit Pool(int threads);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls task(i) for every i in [0, ntasks), spread over the workers and the caller. The first
  // exception a task throws is rethrown here once every task has finished.
  void run(i64 ntasks, const std::function<void(i64)>& task);

 private:
  void worker_main();
  void work();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::mutex done_mu_;
  std::condition_variable done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};

  const std::function<void(i64)>* task_ = nullptr;
  i64 ntasks_ = 0;
  std::atomic<i64> next_{0};
  std::atomic<int> pending_{0};  // workers still inside the current generation
  std::mutex err_mu_;
  std::exception_ptr error_;
};

// The pool that parallel_for on this thread uses; null on pool workers and on idle threads.
extern thread_local Pool* tl_pool;

// Number of threads parallel_for can use on this thread right now.
int current_threads();

// fn(begin, end) over consecutive ranges covering [0, count), each at least `grain` long (except
// the last). Which thread runs which range is dynamic, so fn must write disjoint outputs; code that
// sums across ranges must use a fixed partition of its own (see the reductions) instead.
void parallel_for(i64 count, i64 grain, const std::function<void(i64, i64)>& fn);

}  // namespace aligner
