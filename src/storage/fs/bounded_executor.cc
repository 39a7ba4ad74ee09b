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
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void BoundedExecutor::Submit(std::function<void()> task) {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return in_flight_ < max_in_flight_; });
  ++in_flight_;
  queue_.push_back(std::move(task));
  changed_.notify_all();
}

bool BoundedExecutor::TrySubmit(std::function<void()> task) {
  std::lock_guard lock(mu_);
  if (in_flight_ >= max_in_flight_) return false;
  ++in_flight_;
  queue_.push_back(std::move(task));
  changed_.notify_all();
  return true;
}

int BoundedExecutor::in_flight() {
  std::lock_guard lock(mu_);
  return in_flight_;
}

void BoundedExecutor::WorkerLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to run
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    task = nullptr;  // release what the task captured before counting it done
    lock.lock();
    --in_flight_;
    changed_.notify_all();
  }
}

}  // namespace meridian::storage::fs
