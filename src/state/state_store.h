// StateStore: the durable state of the control plane.
//
// The store keeps versioned JSON documents grouped by kind ("cloud", "cloud_resource",
// "job", ...) and append-only log streams (job attempt output). It knows nothing of what
// the documents mean; the control plane owns their shape.
//
// Durability: Commit returns OK only once the batch is on stable storage (fsync), so a
// caller may acknowledge a request as soon as Commit returns. Concurrent Commits from
// many threads are grouped into one transaction and one sync (group commit); each caller
// still learns its own batch's result.
//
// Atomicity: a batch applies whole or not at all. A Put with an expected version fails the
// whole batch with kAborted when the stored version differs (0: "must not exist yet").
//
// Thread safety: every method may be called from any thread.
// Closing (destroying) a store first stores every batch queued before it; a batch queued
// after that fails with kUnavailable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meridian::state {

struct Record {
  std::string kind;
  std::string id;
  int64_t version = 0;  // 1 for a new record, +1 for every Put
  std::string body;     // JSON text
};

inline constexpr int64_t kAnyVersion = -1;

class WriteBatch {
 public:
  struct Op {
    enum class Type { kPut, kDelete, kAppendLog };
    Type type;
    std::string kind;  // for kAppendLog: the stream name
    std::string id;
    std::string body;  // for kAppendLog: the bytes
    int64_t expected_version = kAnyVersion;  // for kAppendLog: the offset of `body`
  };

  // Creates or replaces kind/id. `expected_version`: kAnyVersion, 0 (must not exist), or the
  // version the caller read.
  void Put(std::string kind, std::string id, std::string body,
           int64_t expected_version = kAnyVersion);
  void Delete(std::string kind, std::string id, int64_t expected_version = kAnyVersion);
  // Appends `data` to log `stream` at byte `offset`. Appends are idempotent: bytes at offsets
  // already stored are skipped, so a sender may resend after a lost reply. A gap (offset past
  // the stream's end) is kept as is: readers skip it.
  void AppendLog(std::string stream, int64_t offset, std::string data);

  bool empty() const { return ops_.empty(); }
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

struct LogRead {
  std::string data;
  int64_t start_offset = 0;  // offset of data[0] (later than asked when older bytes were trimmed)
  int64_t next_offset = 0;   // where to continue reading
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Applies `batch` atomically and durably. kAborted on a version mismatch (nothing
  // applied); kUnavailable / kInternal when storage fails.
  virtual Status Commit(WriteBatch batch) = 0;

  // Queues `batch` and returns at once; `done` runs exactly once when the batch is durable
  // (or has failed), on a thread of the store's, never on the caller's: so a caller may call
  // it while holding a lock that `done` takes. `done` must not block or call back into the
  // store synchronously. Batches apply in the order CommitAsync was called, so a caller that
  // calls it under its own lock gets its writes stored in its own order.
  virtual void CommitAsync(WriteBatch batch, std::function<void(Status)> done) = 0;

  virtual Result<std::optional<Record>> Get(std::string_view kind, std::string_view id) = 0;
  // Every record of `kind`, ordered by id.
  virtual Result<std::vector<Record>> List(std::string_view kind) = 0;

  // Up to `max_bytes` of `stream` from `offset`.
  virtual Result<LogRead> ReadLog(std::string_view stream, int64_t offset, int64_t max_bytes) = 0;
  // Drops the oldest bytes of `stream` so that at most `keep_bytes` remain (bounded logs).
  virtual Status TrimLog(std::string_view stream, int64_t keep_bytes) = 0;
  // Total bytes ever appended to `stream` (its end offset), 0 when unknown.
  virtual Result<int64_t> LogEnd(std::string_view stream) = 0;
};

struct SqliteStoreOptions {
  // Longest a commit waits for others to join its group before syncing.
  int group_commit_window_us = 200;
  int max_batches_per_group = 1024;
};

// Opens (creating when missing) a SQLite database in WAL mode with synchronous=FULL and
// migrates its schema to the current version. Fails with kFailedPrecondition when the file
// was written by a newer meridian (schema version above what this binary knows).
Result<std::unique_ptr<StateStore>> OpenSqliteStore(const std::string& path,
                                                    SqliteStoreOptions options = {});

}  // namespace meridian::state
