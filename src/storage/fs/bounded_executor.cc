#include "storage/fs/bounded_executor.h"

#include <algorithm>

namespace meridian::storage::fs {

BoundedExecutor::BoundedExecutor(int max_in_flight)
    : max_in_flight_(std::clamp(max_in_flight, 1, 256)) {
  workers_.reserve(max_in_flight_);
  for (int i = 0; i < max_in_flight_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

BoundedExecutor::~BoundedExecutor() {
  {
    base::MutexLock lock(mu_);
    stopping_ = true;
  }
  changed_.SignalAll();
  for (std::thread& worker : workers_) worker.join();
}

void BoundedExecutor::Submit(std::function<void()> task) {
  base::MutexLock lock(mu_);
  while (in_flight_ >= max_in_flight_) changed_.Wait(mu_);
  ++in_flight_;
  queue_.push_back(std::move(task));
  changed_.SignalAll();
}

bool BoundedExecutor::TrySubmit(std::function<void()> task) {
  base::MutexLock lock(mu_);
  if (in_flight_ >= max_in_flight_) return false;
  ++in_flight_;
  queue_.push_back(std::move(task));
  changed_.SignalAll();
  return true;
}

int BoundedExecutor::in_flight() {
  base::MutexLock lock(mu_);
  return in_flight_;
}

void BoundedExecutor::WorkerLoop() {
  base::MutexLock lock(mu_);
  while (true) {
    while (!stopping_ && queue_.empty()) changed_.Wait(mu_);
    if (queue_.empty()) return;  // stopping, and nothing left to run
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.Unlock();
    task();
    task = nullptr;  // release what the task captured before counting it done
    lock.Lock();
    --in_flight_;
    changed_.SignalAll();
  }
}

}  // namespace meridian::storage::fs
