// BoundedExecutor: a fixed set of worker threads running tasks from a queue that holds at
// most `max_in_flight` tasks (queued plus running). Submit waits while it is full, so a
// producer faster than the workers (a writer faster than the store) is slowed to their pace
// instead of growing memory without bound. The filesystem uses one for block uploads and
// one for read-ahead downloads.
//
// Tasks must not call Submit on the executor that runs them (it could wait for itself) and
// must not wait for a lock that a caller of Submit may hold while it waits.
//
// Lifetime: the destructor stops taking work, runs what is queued, and joins the workers.
// Thread safety: Submit and in_flight may be called from many threads.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "base/mutex.h"

namespace meridian::storage::fs {

class BoundedExecutor {
 public:
  // `max_in_flight` is clamped to 1..256; that many worker threads are started.
  explicit BoundedExecutor(int max_in_flight);
  ~BoundedExecutor();
  BoundedExecutor(const BoundedExecutor&) = delete;
  BoundedExecutor& operator=(const BoundedExecutor&) = delete;

  // Queues `task`, waiting while max_in_flight tasks are queued or running.
  void Submit(std::function<void()> task);
  // Queues `task` only when a slot is free now; false (and `task` dropped) otherwise.
  bool TrySubmit(std::function<void()> task);

  int max_in_flight() const { return max_in_flight_; }
  int in_flight();

 private:
  void WorkerLoop();

  // Constant after construction.
  const int max_in_flight_;

  base::Mutex mu_;
  base::CondVar changed_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // queued plus running
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::thread> workers_;
};

}  // namespace meridian::storage::fs
