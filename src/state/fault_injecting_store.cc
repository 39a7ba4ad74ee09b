#include "state/fault_injecting_store.h"

#include <future>
#include <memory>
#include <utility>

namespace meridian::state {

FaultInjectingStore::FaultInjectingStore(std::unique_ptr<StateStore> inner)
    : inner_(std::move(inner)) {
  writer_ = std::thread([this] { WriterLoop(); });
}

FaultInjectingStore::~FaultInjectingStore() {
  {
    base::MutexLock lock(mu_);
    closing_ = true;
    paused_ = false;
  }
  cv_.SignalAll();
  writer_.join();
}

void FaultInjectingStore::Arm(Fault fault, int64_t skip) {
  base::MutexLock lock(mu_);
  armed_ = fault;
  skip_ = skip;
}

void FaultInjectingStore::Heal() {
  base::MutexLock lock(mu_);
  armed_.reset();
}

void FaultInjectingStore::Pause() {
  base::MutexLock lock(mu_);
  paused_ = true;
}

void FaultInjectingStore::Resume() {
  {
    base::MutexLock lock(mu_);
    paused_ = false;
  }
  cv_.SignalAll();
}

int64_t FaultInjectingStore::batches_answered() const {
  base::MutexLock lock(mu_);
  return answered_;
}

Status FaultInjectingStore::Commit(WriteBatch batch) {
  std::promise<Status> result;
  std::future<Status> answer = result.get_future();
  CommitAsync(std::move(batch), [&result](Status status) { result.set_value(std::move(status)); });
  return answer.get();
}

void FaultInjectingStore::CommitAsync(WriteBatch batch, std::function<void(Status)> done) {
  {
    base::MutexLock lock(mu_);
    if (!closing_) {
      queue_.push_back({std::move(batch), std::move(done)});
      cv_.SignalAll();
      return;
    }
  }
  // Closing: answered on a thread of its own, still never inline.
  std::thread([done = std::move(done)] {
    done(absl::UnavailableError("the state store is closed"));
  }).detach();
}

std::optional<FaultInjectingStore::Fault> FaultInjectingStore::NextFaultLocked() {
  if (!armed_.has_value()) return std::nullopt;
  if (skip_ > 0) {
    --skip_;
    return std::nullopt;
  }
  return armed_;
}

void FaultInjectingStore::WriterLoop() {
  while (true) {
    std::vector<Pending> group;
    std::vector<std::optional<Fault>> faults;
    bool crash_in_group = false;
    {
      base::MutexLock lock(mu_);
      while (!((!queue_.empty() && !paused_) || (closing_ && queue_.empty()))) cv_.Wait(mu_);
      if (queue_.empty()) return;  // closing, and everything was answered
      while (!queue_.empty()) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
        std::optional<Fault> fault = crashed_ ? std::optional(Fault::kCrash) : NextFaultLocked();
        crash_in_group = crash_in_group || fault == Fault::kCrash;
        faults.push_back(fault);
      }
      if (crash_in_group) crashed_ = true;
    }
    // The batches that reach the wrapped store go to it together, so that it can group them
    // into one sync as it would without the injector.
    std::vector<std::future<Status>> results;
    for (size_t i = 0; i < group.size(); ++i) {
      std::promise<Status> result;
      results.push_back(result.get_future());
      if (crash_in_group) {
        result.set_value(absl::UnavailableError(
            "injected crash: the state store died before this batch's group committed"));
      } else if (faults[i] == Fault::kWriteError) {
        result.set_value(absl::InternalError("injected write error: nothing was written"));
      } else if (faults[i] == Fault::kDiskFull) {
        result.set_value(absl::ResourceExhaustedError("injected fault: no space left on device"));
      } else {
        bool sync_fails = faults[i] == Fault::kSyncError;
        inner_->CommitAsync(std::move(group[i].batch),
                            [result = std::make_shared<std::promise<Status>>(std::move(result)),
                             sync_fails](Status applied) {
                              if (applied.ok() && sync_fails) {
                                applied = absl::InternalError(
                                    "injected sync error: the batch may or may not be durable");
                              }
                              result->set_value(applied);
                            });
      }
    }
    for (size_t i = 0; i < group.size(); ++i) {
      group[i].done(results[i].get());
      base::MutexLock lock(mu_);
      ++answered_;
    }
  }
}

Status FaultInjectingStore::CheckAlive() const {
  base::MutexLock lock(mu_);
  if (crashed_) return absl::UnavailableError("injected crash: the state store is down");
  return OkStatus();
}

Result<std::optional<Record>> FaultInjectingStore::Get(std::string_view kind, std::string_view id) {
  RETURN_IF_ERROR(CheckAlive());
  return inner_->Get(kind, id);
}

Result<std::vector<Record>> FaultInjectingStore::List(std::string_view kind) {
  RETURN_IF_ERROR(CheckAlive());
  return inner_->List(kind);
}

Result<LogRead> FaultInjectingStore::ReadLog(std::string_view stream, int64_t offset,
                                             int64_t max_bytes) {
  RETURN_IF_ERROR(CheckAlive());
  return inner_->ReadLog(stream, offset, max_bytes);
}

Status FaultInjectingStore::TrimLog(std::string_view stream, int64_t keep_bytes) {
  RETURN_IF_ERROR(CheckAlive());
  return inner_->TrimLog(stream, keep_bytes);
}

Result<int64_t> FaultInjectingStore::LogEnd(std::string_view stream) {
  RETURN_IF_ERROR(CheckAlive());
  return inner_->LogEnd(stream);
}

}  // namespace meridian::state
