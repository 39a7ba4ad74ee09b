// FaultInjectingStore: a StateStore that wraps a real one and fails writes on purpose, so that
// tests can check what its users do when storage fails (a failed commit is never
// acknowledged; after a restart the state is what is durable). Unarmed, it behaves exactly as
// the store it wraps, and it passes the same contract suite.
//
// Writes go through one writer thread of its own, which takes every queued batch as one group
// (as the SQLite store groups its commits) and applies them in call order. Every `done`
// callback runs on that thread, never on the caller's, so a caller may call CommitAsync while
// holding a lock its callback takes.
//
// Thread safety: every method may be called from any thread. Closing (destroying) it answers
// what was queued before, then closes the wrapped store.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "state/state_store.h"

namespace meridian::state {

class FaultInjectingStore final : public StateStore {
 public:
  enum class Fault {
    // The batch fails before anything is written: kInternal, nothing applied.
    kWriteError,
    // The batch is written but syncing it fails: kInternal. As after a failed fsync, the caller
    // cannot know whether it is on disk; here it is (the worse case for a caller that assumes
    // not).
    kSyncError,
    // No space left: kResourceExhausted, nothing applied.
    kDiskFull,
    // The process "dies" in the middle of the group that holds the batch: no batch of that
    // group is applied or acknowledged (their transaction never committed), and every later
    // call fails with kUnavailable until the store is opened again. Groups before it are
    // durable.
    kCrash,
  };

  explicit FaultInjectingStore(std::unique_ptr<StateStore> inner);
  ~FaultInjectingStore() override;

  // The `skip`-th batch committed from now on (0: the next) fails with `fault`, and so does
  // every later one (a disk stays full, a crashed store stays down) until Heal().
  void Arm(Fault fault, int64_t skip = 0);
  // No more failures from now on; a crashed store stays crashed.
  void Heal();
  // Holds the writer: batches queued meanwhile form one group once Resume() is called.
  void Pause();
  void Resume();
  // Batches answered so far, whatever the answer.
  int64_t batches_answered() const;

  Status Commit(WriteBatch batch) override;
  void CommitAsync(WriteBatch batch, std::function<void(Status)> done) override;
  Result<std::optional<Record>> Get(std::string_view kind, std::string_view id) override;
  Result<std::vector<Record>> List(std::string_view kind) override;
  Result<LogRead> ReadLog(std::string_view stream, int64_t offset, int64_t max_bytes) override;
  Status TrimLog(std::string_view stream, int64_t keep_bytes) override;
  Result<int64_t> LogEnd(std::string_view stream) override;

 private:
  struct Pending {
    WriteBatch batch;
    std::function<void(Status)> done;
  };

  void WriterLoop();
  // The fault for the next batch, if any (advances the countdown).
  std::optional<Fault> NextFaultLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Status CheckAlive() const;

  // Constant after construction.
  const std::unique_ptr<StateStore> inner_;

  mutable base::Mutex mu_;
  base::CondVar cv_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool crashed_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Fault> armed_ ABSL_GUARDED_BY(mu_);
  int64_t skip_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t answered_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread writer_;
};

}  // namespace meridian::state
