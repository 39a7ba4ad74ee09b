// WorkerPool: a few threads for work that blocks (an audit append waits for its commit, the
// token endpoint audits every exchange), so that it never runs on an HTTPS I/O thread or on
// the state store's writer thread (where waiting for a commit would wait for itself).
//
// Limits: at most `max_queued` tasks wait; Post refuses more (the caller answers 503).
// Shutdown: the destructor stops taking work, runs what is queued, and joins the threads.
//
// Thread safety: Post may be called from any thread, including a worker.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "base/mutex.h"

namespace meridian::control {

class WorkerPool {
 public:
  WorkerPool(int threads, size_t max_queued);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // false when the queue is full or the pool is stopping (the task is not run).
  bool Post(std::function<void()> task);

 private:
  void Run();

  const size_t max_queued_;
  base::Mutex mu_;
  base::CondVar ready_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace meridian::control
