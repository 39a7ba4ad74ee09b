// The SQLite implementation of StateStore.
//
// Layout: one write connection owned by a writer thread, and a pool of read connections.
// WAL mode lets readers run beside the writer, so a Get never waits for a group commit.
//
// Group commit: CommitAsync() queues its batch with a completion callback; Commit() is
// CommitAsync() plus a wait on a promise. The writer thread takes every queued batch (up to
// max_batches_per_group), runs them inside ONE transaction with a SAVEPOINT per batch (a
// batch that fails is rolled back alone), COMMITs (one WAL fsync under synchronous=FULL for
// the whole group) and then runs each callback in queue order. A caller therefore learns OK
// only after its batch is on stable storage. The queue is FIFO, so batches apply in the
// order they were queued.
//
// Logs: a stream is a row in log_streams (its end offset: bytes ever appended) and
// non-overlapping chunks in logs keyed by the offset of their first byte. Gaps between
// chunks are allowed and skipped by readers. TrimLog is exact: a chunk straddling the cut
// is rewritten to start at the cut.
#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <limits>
#include <thread>
#include <utility>
#include <variant>

#include "base/mutex.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "state/sqlite_connection.h"
#include "state/state_store.h"

namespace meridian::state {
namespace {

using sqlite::Connection;
using sqlite::Statement;
using sqlite::StatementUse;

// Longest a statement waits for a lock held by another connection (another process on
// the same file, or a checkpoint) before failing with kUnavailable.
constexpr int kBusyTimeoutMs = 5000;
// Read connections open at once; a read beyond that waits for one to come back.
constexpr int kMaxReadConnections = 16;
// Longest kind, id or stream name accepted: keys are for names, not payloads.
constexpr size_t kMaxKeyBytes = 1024;

// Schema migrations, applied in order. Entry i moves the schema from version i to i + 1.
// Never edit a released entry: append a new one.
constexpr const char* kMigrations[] = {
    // 1: records, log chunks and per-stream bookkeeping.
    R"sql(
      CREATE TABLE records (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, id));
      CREATE TABLE log_streams (
        stream TEXT PRIMARY KEY,
        end_offset INTEGER NOT NULL);
      CREATE TABLE logs (
        stream TEXT NOT NULL REFERENCES log_streams (stream),
        offset INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (stream, offset));
    )sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

Result<int64_t> ReadSchemaVersion(Connection& connection) {
  RETURN_IF_ERROR(
      connection.Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  ASSIGN_OR_RETURN(std::string text,
                   connection.QueryText("SELECT COALESCE(MAX(version), 0) FROM schema_version"));
  int64_t version = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (error != std::errc() || end != text.data() + text.size()) {
    return absl::InternalError(
        fmt::format("{}: schema_version holds '{}', not a number", connection.path(), text));
  }
  return version;
}

Status MigrateInTransaction(Connection& connection) {
  ASSIGN_OR_RETURN(int64_t version, ReadSchemaVersion(connection));
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        fmt::format("{} was written by a newer meridian (schema {}, this binary knows {})",
                    connection.path(), version, kSchemaVersion));
  }
  if (version == kSchemaVersion) return OkStatus();
  for (int64_t next = version; next < kSchemaVersion; ++next) {
    RETURN_IF_ERROR(connection.Exec(kMigrations[next]));
    spdlog::info("state store {}: migrated schema to version {}", connection.path(), next + 1);
  }
  RETURN_IF_ERROR(connection.Exec("DELETE FROM schema_version"));
  return connection.Exec(
      fmt::format("INSERT INTO schema_version (version) VALUES ({})", kSchemaVersion));
}

// Applies every missing migration in one transaction: a crash midway leaves the old schema.
Status Migrate(Connection& connection) {
  RETURN_IF_ERROR(connection.Exec("BEGIN IMMEDIATE"));
  Status status = MigrateInTransaction(connection);
  if (!status.ok()) {
    connection.Exec("ROLLBACK").IgnoreError();
    return status;
  }
  return connection.Exec("COMMIT");
}

Status ValidateKey(std::string_view what, std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError(fmt::format("{} is empty", what));
  if (key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        fmt::format("{} is {} bytes, above the limit of {}", what, key.size(), kMaxKeyBytes));
  }
  return OkStatus();
}

// Checks what can be checked without the database, so a malformed batch never joins a group.
Status ValidateBatch(const WriteBatch& batch) {
  for (const WriteBatch::Op& op : batch.ops()) {
    if (op.type == WriteBatch::Op::Type::kAppendLog) {
      RETURN_IF_ERROR(ValidateKey("log stream name", op.kind));
      if (op.expected_version < 0 ||
          op.expected_version >
              std::numeric_limits<int64_t>::max() - static_cast<int64_t>(op.body.size())) {
        return absl::InvalidArgumentError(
            fmt::format("log {}: offset {} is out of range", op.kind, op.expected_version));
      }
      continue;
    }
    RETURN_IF_ERROR(ValidateKey("record kind", op.kind));
    RETURN_IF_ERROR(ValidateKey("record id", op.id));
    if (op.expected_version < kAnyVersion) {
      return absl::InvalidArgumentError(fmt::format("{}/{}: expected version {} is invalid",
                                                    op.kind, op.id, op.expected_version));
    }
  }
  return OkStatus();
}

std::string DescribeVersion(int64_t version) {
  return version == 0 ? "0 (absent)" : std::to_string(version);
}

Status CheckVersion(const WriteBatch::Op& op, int64_t stored_version) {
  if (op.expected_version == kAnyVersion || op.expected_version == stored_version) {
    return OkStatus();
  }
  return absl::AbortedError(fmt::format("version conflict on {}/{}: expected version {}, found {}",
                                        op.kind, op.id, DescribeVersion(op.expected_version),
                                        DescribeVersion(stored_version)));
}

Result<std::unique_ptr<Connection>> OpenReader(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader,
                   Connection::Open(path, SQLITE_OPEN_READWRITE, kBusyTimeoutMs));
  // query_only: a read connection must never write, even by mistake.
  RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = ON; PRAGMA foreign_keys = ON"));
  return reader;
}

class SqliteStore final : public StateStore {
 public:
  SqliteStore(std::unique_ptr<Connection> writer, SqliteStoreOptions options)
      : path_(writer->path()), options_(options), writer_(std::move(writer)) {
    writer_thread_ = std::thread([this] { WriterLoop(); });
  }
  ~SqliteStore() override;

  Status Commit(WriteBatch batch) override;
  void CommitAsync(WriteBatch batch, std::function<void(Status)> done) override;
  Result<std::optional<Record>> Get(std::string_view kind, std::string_view id) override;
  Result<std::vector<Record>> List(std::string_view kind) override;
  Result<LogRead> ReadLog(std::string_view stream, int64_t offset, int64_t max_bytes) override;
  Status TrimLog(std::string_view stream, int64_t keep_bytes) override;
  Result<int64_t> LogEnd(std::string_view stream) override;

 private:
  struct TrimRequest {
    std::string stream;
    int64_t keep_bytes = 0;
  };
  // One caller's work waiting for the writer. Owned by the queue, then by the writer.
  struct WriteRequest {
    std::variant<WriteBatch, TrimRequest> work;
    // Not OK: reported in turn without touching the database, so that even a malformed
    // async batch is answered on the writer thread and in order.
    Status rejected;
    std::function<void(Status)> done;  // run exactly once, by Finish
  };
  using Group = std::vector<std::unique_ptr<WriteRequest>>;

  // Queues `request` for the writer (or finishes it with kUnavailable when closing).
  void Enqueue(std::unique_ptr<WriteRequest> request);
  // Enqueues `request` and blocks until its group has committed.
  Status EnqueueAndWait(std::unique_ptr<WriteRequest> request);
  static void Finish(WriteRequest& request, const Status& status);

  // Writer thread.
  void WriterLoop();
  bool TakeGroup(Group& group);
  void RunGroup(Group& group);
  Status RunRequests(const Group& group, std::vector<Status>& results);
  Status Apply(const WriteRequest& request);
  Status ApplyBatch(const WriteBatch& batch);
  Status ApplyPut(const WriteBatch::Op& op);
  Status ApplyDelete(const WriteBatch::Op& op);
  Status ApplyAppendLog(const WriteBatch::Op& op);
  Status ApplyTrim(const TrimRequest& trim);
  Result<int64_t> StoredVersion(std::string_view kind, std::string_view id);
  Status ExecCached(const std::string& sql);

  // Read side: runs `read` on a pooled read connection.
  template <typename Fn>
  auto WithReader(Fn read) -> decltype(read(std::declval<Connection&>()));
  Result<std::unique_ptr<Connection>> TakeReader();
  void ReturnReader(std::unique_ptr<Connection> reader);

  // Constant after construction.
  const std::string path_;
  const SqliteStoreOptions options_;

  // Used only by the writer thread once it has started.
  const std::unique_ptr<Connection> writer_;

  base::Mutex queue_mu_;
  base::CondVar queue_cv_;
  // Synchronous callers bound it by their number; CommitAsync callers must bound their own
  // batches in flight.
  std::deque<std::unique_ptr<WriteRequest>> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool closing_ ABSL_GUARDED_BY(queue_mu_) = false;

  base::Mutex readers_mu_;
  base::CondVar readers_cv_;
  std::vector<std::unique_ptr<Connection>> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
  int open_readers_ ABSL_GUARDED_BY(readers_mu_) = 0;  // idle or lent out

  std::thread writer_thread_;
};

SqliteStore::~SqliteStore() {
  {
    base::MutexLock lock(queue_mu_);
    closing_ = true;
  }
  queue_cv_.SignalAll();
  writer_thread_.join();
}

Status SqliteStore::Commit(WriteBatch batch) {
  if (batch.empty()) return OkStatus();
  RETURN_IF_ERROR(ValidateBatch(batch));
  auto request = std::make_unique<WriteRequest>();
  request->work = std::move(batch);
  return EnqueueAndWait(std::move(request));
}

void SqliteStore::CommitAsync(WriteBatch batch, std::function<void(Status)> done) {
  auto request = std::make_unique<WriteRequest>();
  request->rejected = ValidateBatch(batch);
  request->work = std::move(batch);
  request->done = std::move(done);
  Enqueue(std::move(request));
}

Status SqliteStore::TrimLog(std::string_view stream, int64_t keep_bytes) {
  RETURN_IF_ERROR(ValidateKey("log stream name", stream));
  if (keep_bytes < 0) {
    return absl::InvalidArgumentError(
        fmt::format("log {}: keep_bytes {} is negative", stream, keep_bytes));
  }
  auto request = std::make_unique<WriteRequest>();
  request->work = TrimRequest{std::string(stream), keep_bytes};
  return EnqueueAndWait(std::move(request));
}

Status SqliteStore::EnqueueAndWait(std::unique_ptr<WriteRequest> request) {
  std::promise<Status> result;
  std::future<Status> done = result.get_future();
  request->done = [&result](Status status) { result.set_value(std::move(status)); };
  Enqueue(std::move(request));
  return done.get();
}

void SqliteStore::Enqueue(std::unique_ptr<WriteRequest> request) {
  {
    base::MutexLock lock(queue_mu_);
    if (!closing_) {
      queue_.push_back(std::move(request));
      // Notified under the lock: once it is released this caller never touches the store
      // again, so a destructor that closes the store meanwhile cannot pull the condition
      // variable out from under it.
      queue_cv_.Signal();
      return;
    }
  }
  // No writer is left to answer; this is the one case where `done` runs on the caller.
  Finish(*request, absl::UnavailableError(fmt::format("{}: store closed", path_)));
}

// Runs the request's callback; an exception from it must not unwind the writer thread.
void SqliteStore::Finish(WriteRequest& request, const Status& status) {
  try {
    request.done(status);
  } catch (const std::exception& error) {
    spdlog::error("state store: a commit callback threw: {}", error.what());
  } catch (...) {
    spdlog::error("state store: a commit callback threw");
  }
}

void SqliteStore::WriterLoop() {
  Group group;
  group.reserve(static_cast<size_t>(options_.max_batches_per_group));
  while (TakeGroup(group)) RunGroup(group);
  // Closing: answer whatever is still queued, outside the lock (callbacks may be slow).
  std::deque<std::unique_ptr<WriteRequest>> left;
  {
    base::MutexLock lock(queue_mu_);
    left.swap(queue_);
  }
  const Status closed = absl::UnavailableError(fmt::format("{}: store closed", path_));
  for (const std::unique_ptr<WriteRequest>& request : left) Finish(*request, closed);
}

// Waits for work, then for up to the group window while the queue is short, and moves the
// group out of the queue. false: the store is closing.
//
// "Short" is below the previous group's size (at least 2): callers of the last group tend
// to come back with their next commit while it syncs, so once that many are queued, waiting
// longer only adds latency; a lone caller still gives others one window to join it.
bool SqliteStore::TakeGroup(Group& group) {
  const size_t max_group = static_cast<size_t>(options_.max_batches_per_group);
  const size_t enough = std::min(std::max<size_t>(group.size(), 2), max_group);
  group.clear();
  base::MutexLock lock(queue_mu_);
  while (!closing_ && queue_.empty()) queue_cv_.Wait(queue_mu_);
  if (!closing_ && queue_.size() < enough && options_.group_commit_window_us > 0) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::microseconds(options_.group_commit_window_us);
    while (!closing_ && queue_.size() < enough) {
      if (queue_cv_.WaitUntil(queue_mu_, deadline)) break;
    }
  }
  // Closing drains first: writes queued before the store was closed are still stored.
  if (closing_ && queue_.empty()) return false;
  size_t count = std::min(max_group, queue_.size());
  for (size_t i = 0; i < count; ++i) {
    group.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return true;
}

void SqliteStore::RunGroup(Group& group) {
  std::vector<Status> results(group.size());
  Status group_status = RunRequests(group, results);
  if (!group_status.ok()) {
    // The transaction did not commit: nothing of the group is stored. A batch that failed
    // on its own keeps its own (more precise) error.
    if (!sqlite3_get_autocommit(writer_->db())) {
      Status rollback = ExecCached("ROLLBACK");
      if (!rollback.ok()) spdlog::error("state store: {}", rollback.ToString());
    }
    for (Status& result : results) {
      if (result.ok()) result = group_status;
    }
  }
  for (size_t i = 0; i < group.size(); ++i) Finish(*group[i], results[i]);
}

// Runs the group in one transaction; each request's own result goes to `results`. A non-OK
// return means the transaction as a whole failed (not committed).
Status SqliteStore::RunRequests(const Group& group, std::vector<Status>& results) {
  RETURN_IF_ERROR(ExecCached("BEGIN IMMEDIATE"));
  for (size_t i = 0; i < group.size(); ++i) {
    if (!group[i]->rejected.ok()) {
      results[i] = group[i]->rejected;
      continue;
    }
    RETURN_IF_ERROR(ExecCached("SAVEPOINT batch"));
    Status applied = Apply(*group[i]);
    if (!applied.ok()) {
      // Some errors (disk full, I/O) make SQLite roll back the whole transaction itself.
      if (sqlite3_get_autocommit(writer_->db())) return applied;
      RETURN_IF_ERROR(ExecCached("ROLLBACK TO batch"));
      results[i] = applied;
    }
    RETURN_IF_ERROR(ExecCached("RELEASE batch"));
  }
  return ExecCached("COMMIT");
}

Status SqliteStore::Apply(const WriteRequest& request) {
  if (const auto* trim = std::get_if<TrimRequest>(&request.work)) return ApplyTrim(*trim);
  return ApplyBatch(std::get<WriteBatch>(request.work));
}

Status SqliteStore::ApplyBatch(const WriteBatch& batch) {
  for (const WriteBatch::Op& op : batch.ops()) {
    switch (op.type) {
      case WriteBatch::Op::Type::kPut:
        RETURN_IF_ERROR(ApplyPut(op));
        break;
      case WriteBatch::Op::Type::kDelete:
        RETURN_IF_ERROR(ApplyDelete(op));
        break;
      case WriteBatch::Op::Type::kAppendLog:
        RETURN_IF_ERROR(ApplyAppendLog(op));
        break;
    }
  }
  return OkStatus();
}

Status SqliteStore::ExecCached(const std::string& sql) {
  ASSIGN_OR_RETURN(Statement * statement, writer_->Cached(sql));
  StatementUse use(*statement);
  return use.Run();
}

// The stored version of kind/id, 0 when absent (as seen inside the current transaction).
Result<int64_t> SqliteStore::StoredVersion(std::string_view kind, std::string_view id) {
  ASSIGN_OR_RETURN(Statement * statement,
                   writer_->Cached("SELECT version FROM records WHERE kind = ?1 AND id = ?2"));
  StatementUse use(*statement);
  use.BindText(1, kind).BindText(2, id);
  ASSIGN_OR_RETURN(bool row, use.Step());
  return row ? use.Int64(0) : 0;
}

Status SqliteStore::ApplyPut(const WriteBatch::Op& op) {
  ASSIGN_OR_RETURN(int64_t stored_version, StoredVersion(op.kind, op.id));
  RETURN_IF_ERROR(CheckVersion(op, stored_version));
  ASSIGN_OR_RETURN(Statement * statement,
                   writer_->Cached("INSERT INTO records (kind, id, version, body) "
                                   "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind, id) DO UPDATE "
                                   "SET version = excluded.version, body = excluded.body"));
  StatementUse use(*statement);
  use.BindText(1, op.kind).BindText(2, op.id).BindInt64(3, stored_version + 1).BindText(4, op.body);
  return use.Run();
}

Status SqliteStore::ApplyDelete(const WriteBatch::Op& op) {
  ASSIGN_OR_RETURN(int64_t stored_version, StoredVersion(op.kind, op.id));
  RETURN_IF_ERROR(CheckVersion(op, stored_version));
  if (stored_version == 0) return OkStatus();
  ASSIGN_OR_RETURN(Statement * statement,
                   writer_->Cached("DELETE FROM records WHERE kind = ?1 AND id = ?2"));
  StatementUse use(*statement);
  use.BindText(1, op.kind).BindText(2, op.id);
  return use.Run();
}

// Stores the part of the data beyond the stream's end: a resend after a lost reply (or an
// overlapping one) adds only bytes not stored yet, and an append past the end leaves a gap.
Status SqliteStore::ApplyAppendLog(const WriteBatch::Op& op) {
  const std::string_view stream = op.kind;
  const int64_t offset = op.expected_version;
  const int64_t data_end = offset + static_cast<int64_t>(op.body.size());
  if (op.body.empty()) return OkStatus();

  int64_t stream_end = 0;
  {
    ASSIGN_OR_RETURN(Statement * statement,
                     writer_->Cached("SELECT end_offset FROM log_streams WHERE stream = ?1"));
    StatementUse use(*statement);
    use.BindText(1, stream);
    ASSIGN_OR_RETURN(bool row, use.Step());
    if (row) stream_end = use.Int64(0);
  }
  if (data_end <= stream_end) return OkStatus();
  {
    // The stream row first: chunks reference it.
    ASSIGN_OR_RETURN(Statement * statement,
                     writer_->Cached("INSERT INTO log_streams (stream, end_offset) VALUES (?1, ?2) "
                                     "ON CONFLICT (stream) DO UPDATE SET end_offset = ?2"));
    StatementUse use(*statement);
    use.BindText(1, stream).BindInt64(2, data_end);
    RETURN_IF_ERROR(use.Run());
  }
  const int64_t skip = std::max<int64_t>(0, stream_end - offset);
  ASSIGN_OR_RETURN(Statement * statement,
                   writer_->Cached("INSERT INTO logs (stream, offset, data) VALUES (?1, ?2, ?3)"));
  StatementUse use(*statement);
  use.BindText(1, stream)
      .BindInt64(2, offset + skip)
      .BindBlob(3, std::string_view(op.body).substr(static_cast<size_t>(skip)));
  return use.Run();
}

// Keeps exactly the newest keep_bytes offsets of the stream: whole chunks below the cut are
// deleted and the one chunk that straddles it is shortened to start at the cut.
Status SqliteStore::ApplyTrim(const TrimRequest& trim) {
  int64_t stream_end = 0;
  {
    ASSIGN_OR_RETURN(Statement * statement,
                     writer_->Cached("SELECT end_offset FROM log_streams WHERE stream = ?1"));
    StatementUse use(*statement);
    use.BindText(1, trim.stream);
    ASSIGN_OR_RETURN(bool row, use.Step());
    if (row) stream_end = use.Int64(0);
  }
  const int64_t cut = stream_end - trim.keep_bytes;
  if (cut <= 0) return OkStatus();
  {
    ASSIGN_OR_RETURN(Statement * statement,
                     writer_->Cached("DELETE FROM logs WHERE stream = ?1 AND offset < ?2 "
                                     "AND offset + length(data) <= ?2"));
    StatementUse use(*statement);
    use.BindText(1, trim.stream).BindInt64(2, cut);
    RETURN_IF_ERROR(use.Run());
  }
  // Chunks never overlap, so at most one chunk starting below the cut remains.
  ASSIGN_OR_RETURN(
      Statement * statement,
      writer_->Cached("UPDATE logs SET offset = ?2, data = substr(data, ?2 - offset + 1) "
                      "WHERE stream = ?1 AND offset < ?2"));
  StatementUse use(*statement);
  use.BindText(1, trim.stream).BindInt64(2, cut);
  return use.Run();
}

template <typename Fn>
auto SqliteStore::WithReader(Fn read) -> decltype(read(std::declval<Connection&>())) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader, TakeReader());
  auto result = read(*reader);
  ReturnReader(std::move(reader));
  return result;
}

// Lends an idle read connection, or opens one while fewer than kMaxReadConnections exist.
Result<std::unique_ptr<Connection>> SqliteStore::TakeReader() {
  {
    base::MutexLock lock(readers_mu_);
    while (idle_readers_.empty() && open_readers_ >= kMaxReadConnections) {
      readers_cv_.Wait(readers_mu_);
    }
    if (!idle_readers_.empty()) {
      std::unique_ptr<Connection> reader = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return reader;
    }
    ++open_readers_;  // reserve the slot; opening happens outside the lock
  }
  Result<std::unique_ptr<Connection>> reader = OpenReader(path_);
  if (!reader.ok()) ReturnReader(nullptr);
  return reader;
}

// Gives a connection back to the pool; nullptr releases the slot of one that failed.
void SqliteStore::ReturnReader(std::unique_ptr<Connection> reader) {
  {
    base::MutexLock lock(readers_mu_);
    if (reader != nullptr) {
      idle_readers_.push_back(std::move(reader));
    } else {
      --open_readers_;
    }
  }
  readers_cv_.Signal();
}

Result<std::optional<Record>> SqliteStore::Get(std::string_view kind, std::string_view id) {
  return WithReader([&](Connection& reader) -> Result<std::optional<Record>> {
    ASSIGN_OR_RETURN(
        Statement * statement,
        reader.Cached("SELECT version, body FROM records WHERE kind = ?1 AND id = ?2"));
    StatementUse use(*statement);
    use.BindText(1, kind).BindText(2, id);
    ASSIGN_OR_RETURN(bool row, use.Step());
    if (!row) return std::optional<Record>();
    return Record{std::string(kind), std::string(id), use.Int64(0), std::string(use.Bytes(1))};
  });
}

Result<std::vector<Record>> SqliteStore::List(std::string_view kind) {
  return WithReader([&](Connection& reader) -> Result<std::vector<Record>> {
    // BINARY collation orders ids bytewise, as std::string's operator< does.
    ASSIGN_OR_RETURN(
        Statement * statement,
        reader.Cached("SELECT id, version, body FROM records WHERE kind = ?1 ORDER BY id"));
    StatementUse use(*statement);
    use.BindText(1, kind);
    std::vector<Record> records;
    while (true) {
      ASSIGN_OR_RETURN(bool row, use.Step());
      if (!row) return records;
      records.push_back(Record{std::string(kind), std::string(use.Bytes(0)), use.Int64(1),
                               std::string(use.Bytes(2))});
    }
  });
}

Result<int64_t> SqliteStore::LogEnd(std::string_view stream) {
  return WithReader([&](Connection& reader) -> Result<int64_t> {
    ASSIGN_OR_RETURN(Statement * statement,
                     reader.Cached("SELECT end_offset FROM log_streams WHERE stream = ?1"));
    StatementUse use(*statement);
    use.BindText(1, stream);
    ASSIGN_OR_RETURN(bool row, use.Step());
    return row ? use.Int64(0) : 0;
  });
}

// Reads contiguous bytes from the first stored byte at or after `offset`. Stops at a gap so
// that data stays contiguous; the next read (from next_offset) skips the gap.
Result<LogRead> SqliteStore::ReadLog(std::string_view stream, int64_t offset, int64_t max_bytes) {
  if (offset < 0 || max_bytes <= 0) {
    return absl::InvalidArgumentError(fmt::format(
        "log {}: read at offset {} for {} bytes is out of range", stream, offset, max_bytes));
  }
  return WithReader([&](Connection& reader) -> Result<LogRead> {
    // The chunk holding `offset` starts at or before it; later chunks follow in order. One
    // statement reads one snapshot, so a concurrent trim or append cannot tear the result.
    ASSIGN_OR_RETURN(
        Statement * statement,
        reader.Cached("SELECT offset, data FROM logs WHERE stream = ?1 AND offset >= "
                      "COALESCE((SELECT offset FROM logs WHERE stream = ?1 AND offset <= ?2 "
                      "ORDER BY offset DESC LIMIT 1), ?2) ORDER BY offset"));
    StatementUse use(*statement);
    use.BindText(1, stream).BindInt64(2, offset);
    LogRead read;
    read.start_offset = -1;
    while (static_cast<int64_t>(read.data.size()) < max_bytes) {
      ASSIGN_OR_RETURN(bool row, use.Step());
      if (!row) break;
      const int64_t chunk_offset = use.Int64(0);
      const std::string_view chunk = use.Bytes(1);
      const int64_t chunk_end = chunk_offset + static_cast<int64_t>(chunk.size());
      if (chunk_end <= offset) continue;  // the chunk before `offset` ends before it
      const int64_t from = std::max(offset, chunk_offset);
      if (read.start_offset < 0) {
        read.start_offset = from;
      } else if (from != read.start_offset + static_cast<int64_t>(read.data.size())) {
        break;  // a gap
      }
      const int64_t take =
          std::min(chunk_end - from, max_bytes - static_cast<int64_t>(read.data.size()));
      read.data.append(
          chunk.substr(static_cast<size_t>(from - chunk_offset), static_cast<size_t>(take)));
    }
    if (read.start_offset < 0) read.start_offset = offset;  // nothing stored at or after it
    read.next_offset = read.start_offset + static_cast<int64_t>(read.data.size());
    return read;
  });
}

Status ValidateOptions(const SqliteStoreOptions& options) {
  if (options.group_commit_window_us < 0 || options.max_batches_per_group < 1) {
    return absl::InvalidArgumentError(
        fmt::format("sqlite store options: group_commit_window_us {} must be >= 0 and "
                    "max_batches_per_group {} must be >= 1",
                    options.group_commit_window_us, options.max_batches_per_group));
  }
  return OkStatus();
}

Result<std::unique_ptr<Connection>> OpenWriter(const std::string& path) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<Connection> writer,
      Connection::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, kBusyTimeoutMs));
  ASSIGN_OR_RETURN(std::string journal_mode, writer->QueryText("PRAGMA journal_mode = WAL"));
  if (journal_mode != "wal") {
    return absl::FailedPreconditionError(
        fmt::format("{}: cannot switch to WAL journal mode (got '{}')", path, journal_mode));
  }
  // FULL: in WAL mode every COMMIT syncs the WAL, so an acknowledged commit survives a power
  // loss (NORMAL would only survive a process crash).
  RETURN_IF_ERROR(writer->Exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON"));
  RETURN_IF_ERROR(Migrate(*writer));
  return writer;
}

}  // namespace

Result<std::unique_ptr<StateStore>> OpenSqliteStore(const std::string& path,
                                                    SqliteStoreOptions options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer, OpenWriter(path));
  return std::unique_ptr<StateStore>(new SqliteStore(std::move(writer), options));
}

}  // namespace meridian::state
