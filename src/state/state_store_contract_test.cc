// The StateStore contract, run against every implementation (INSTANTIATE below), followed by
// tests of what only the SQLite implementation promises (schema versions, crash safety).
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/files.h"
#include "base/mutex.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/fault_injecting_store.h"
#include "state/state_store.h"
#include "state/state_test_util.h"

namespace meridian::state {
namespace {

using ::testing::HasSubstr;

// Opens (or reopens) the store kept under `dir`. Opening the same dir twice must reach the
// same data.
using StoreFactory = std::function<Result<std::unique_ptr<StateStore>>(const std::string& dir)>;

struct StoreImplementation {
  std::string name;
  StoreFactory open;
};

void PrintTo(const StoreImplementation& implementation, std::ostream* out) {
  *out << implementation.name;
}

std::string SqlitePath(const std::string& dir) { return dir + "/state.db"; }

Result<std::unique_ptr<StateStore>> OpenSqliteInDir(const std::string& dir) {
  return OpenSqliteStore(SqlitePath(dir));
}

class StateStoreContractTest : public ::testing::TestWithParam<StoreImplementation> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "cannot create a temp dir";
    Open();
  }

  void Open() {
    store_.reset();  // close first: an implementation may hold the files exclusively
    Result<std::unique_ptr<StateStore>> store = GetParam().open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(store).value();
  }

  Status Put(const std::string& kind, const std::string& id, const std::string& body,
             int64_t expected_version = kAnyVersion) {
    WriteBatch batch;
    batch.Put(kind, id, body, expected_version);
    return store_->Commit(std::move(batch));
  }

  Status Append(const std::string& stream, int64_t offset, const std::string& data) {
    WriteBatch batch;
    batch.AppendLog(stream, offset, data);
    return store_->Commit(std::move(batch));
  }

  // The version of kind/id, 0 when absent.
  int64_t VersionOf(const std::string& kind, const std::string& id) {
    Result<std::optional<Record>> record = store_->Get(kind, id);
    EXPECT_TRUE(record.ok()) << record.status();
    return record.ok() && record->has_value() ? (*record)->version : 0;
  }

  LogRead Read(const std::string& stream, int64_t offset, int64_t max_bytes = 1 << 20) {
    Result<LogRead> read = store_->ReadLog(stream, offset, max_bytes);
    EXPECT_TRUE(read.ok()) << read.status();
    return read.ok() ? *read : LogRead{};
  }

  int64_t End(const std::string& stream) {
    Result<int64_t> end = store_->LogEnd(stream);
    EXPECT_TRUE(end.ok()) << end.status();
    return end.ok() ? *end : -1;
  }

  TempDir dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_P(StateStoreContractTest, PutCreatesVersionOneAndEachPutIncrements) {
  ASSERT_TRUE(Put("job", "j1", R"({"n":1})").ok());
  Result<std::optional<Record>> record = store_->Get("job", "j1");
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->kind, "job");
  EXPECT_EQ((*record)->id, "j1");
  EXPECT_EQ((*record)->version, 1);
  EXPECT_EQ((*record)->body, R"({"n":1})");

  ASSERT_TRUE(Put("job", "j1", R"({"n":2})").ok());
  ASSERT_TRUE(Put("job", "j1", R"({"n":3})", 2).ok());
  record = store_->Get("job", "j1");
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->version, 3);
  EXPECT_EQ((*record)->body, R"({"n":3})");
}

TEST_P(StateStoreContractTest, GetOfMissingRecordIsEmptyNotAnError) {
  ASSERT_TRUE(Put("job", "j1", "{}").ok());
  Result<std::optional<Record>> missing = store_->Get("job", "j2");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());
  Result<std::optional<Record>> other_kind = store_->Get("cloud", "j1");
  ASSERT_TRUE(other_kind.ok()) << other_kind.status();
  EXPECT_FALSE(other_kind->has_value());
}

TEST_P(StateStoreContractTest, ListReturnsOneKindOrderedById) {
  for (const char* id : {"b", "a10", "c", "a", "a2"}) ASSERT_TRUE(Put("job", id, id).ok());
  ASSERT_TRUE(Put("job", "c", "c again").ok());
  ASSERT_TRUE(Put("cloud", "x", "{}").ok());

  Result<std::vector<Record>> jobs = store_->List("job");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  std::vector<std::string> ids;
  for (const Record& record : *jobs) {
    ids.push_back(record.id);
    EXPECT_EQ(record.kind, "job");
    EXPECT_EQ(record.version, record.id == "c" ? 2 : 1) << record.id;
  }
  EXPECT_THAT(ids, ::testing::ElementsAre("a", "a10", "a2", "b", "c"));
  EXPECT_EQ(jobs->back().body, "c again");

  Result<std::vector<Record>> none = store_->List("nothing");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

TEST_P(StateStoreContractTest, DeleteRemovesAndRecreateStartsAgainAtVersionOne) {
  ASSERT_TRUE(Put("job", "j1", "{}").ok());
  ASSERT_TRUE(Put("job", "j1", "{}").ok());
  WriteBatch remove;
  remove.Delete("job", "j1", 2);
  ASSERT_TRUE(store_->Commit(std::move(remove)).ok());
  EXPECT_EQ(VersionOf("job", "j1"), 0);

  WriteBatch remove_missing;
  remove_missing.Delete("job", "j1");
  EXPECT_TRUE(store_->Commit(std::move(remove_missing)).ok()) << "deleting a missing record";

  ASSERT_TRUE(Put("job", "j1", "{}", 0).ok());
  EXPECT_EQ(VersionOf("job", "j1"), 1);
}

TEST_P(StateStoreContractTest, DeleteWithStaleVersionIsAborted) {
  ASSERT_TRUE(Put("job", "j1", "{}").ok());
  ASSERT_TRUE(Put("job", "j1", "{}").ok());
  WriteBatch remove;
  remove.Delete("job", "j1", 1);
  Status status = store_->Commit(std::move(remove));
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_EQ(VersionOf("job", "j1"), 2);

  WriteBatch remove_missing;
  remove_missing.Delete("job", "nope", 3);
  status = store_->Commit(std::move(remove_missing));
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
}

TEST_P(StateStoreContractTest, VersionConflictAbortsTheWholeBatch) {
  ASSERT_TRUE(Put("job", "existing", "old").ok());
  WriteBatch batch;
  batch.Put("job", "fresh", "{}");
  batch.AppendLog("job/fresh/log", 0, "output");
  batch.Put("job", "existing", "new", 0);  // must not exist, but it does
  Status status = store_->Commit(std::move(batch));
  ASSERT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("job/existing"));

  EXPECT_EQ(VersionOf("job", "fresh"), 0) << "an earlier op of the aborted batch was applied";
  EXPECT_EQ(End("job/fresh/log"), 0) << "the aborted batch's log append was applied";
  Result<std::optional<Record>> existing = store_->Get("job", "existing");
  ASSERT_TRUE(existing.ok() && existing->has_value());
  EXPECT_EQ((*existing)->body, "old");
  EXPECT_EQ((*existing)->version, 1);

  status = Put("job", "existing", "newer", 7);
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("7"));
  EXPECT_TRUE(Put("job", "existing", "newest", 1).ok());
  EXPECT_EQ(VersionOf("job", "existing"), 2);
}

TEST_P(StateStoreContractTest, OpsInOneBatchSeeEarlierOpsOfTheSameBatch) {
  WriteBatch batch;
  batch.Put("job", "j1", "a", 0);
  batch.Put("job", "j1", "b", 1);
  batch.Put("job", "gone", "x");
  batch.Delete("job", "gone", 1);
  ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
  EXPECT_EQ(VersionOf("job", "j1"), 2);
  EXPECT_EQ(VersionOf("job", "gone"), 0);
}

TEST_P(StateStoreContractTest, AConflictingBatchDoesNotAffectConcurrentBatches) {
  ASSERT_TRUE(Put("job", "taken", "{}").ok());
  constexpr int kThreads = 16;
  std::vector<Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      WriteBatch batch;
      batch.Put("job", fmt::format("t{}", t), "{}");
      if (t % 2 == 1) batch.Put("job", "taken", "{}", 0);  // conflicts
      results[t] = store_->Commit(std::move(batch));
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    if (t % 2 == 1) {
      EXPECT_EQ(results[t].code(), absl::StatusCode::kAborted) << t << ": " << results[t];
      EXPECT_EQ(VersionOf("job", fmt::format("t{}", t)), 0) << t;
    } else {
      EXPECT_TRUE(results[t].ok()) << t << ": " << results[t];
      EXPECT_EQ(VersionOf("job", fmt::format("t{}", t)), 1) << t;
    }
  }
  EXPECT_EQ(VersionOf("job", "taken"), 1);
}

TEST_P(StateStoreContractTest, ManyThreadsCommittingConcurrentlyAllLand) {
  constexpr int kThreads = 32;
  constexpr int kCommitsPerThread = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCommitsPerThread; ++i) {
        WriteBatch batch;
        batch.Put("item", fmt::format("t{:02}-{:03}", t, i), fmt::format(R"({{"i":{}}})", i), 0);
        // Each thread owns a counter: its expected version is exactly the commits so far.
        batch.Put("counter", fmt::format("t{:02}", t), "{}", i);
        // Every thread bumps one shared record: versions must count every commit.
        batch.Put("shared", "hot", "{}");
        if (!store_->Commit(std::move(batch)).ok()) failures++;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);

  Result<std::vector<Record>> items = store_->List("item");
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(items->size(), size_t{kThreads * kCommitsPerThread});
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(VersionOf("counter", fmt::format("t{:02}", t)), kCommitsPerThread) << t;
  }
  EXPECT_EQ(VersionOf("shared", "hot"), kThreads * kCommitsPerThread);
}

TEST_P(StateStoreContractTest, ReadsSeeEveryAcknowledgedCommitWhileOthersWrite) {
  constexpr int kThreads = 24;  // more than a small read pool, so reads also queue for it
  constexpr int kRounds = 40;
  std::atomic<int> stale_reads{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string id = fmt::format("t{}", t);
      for (int i = 0; i < kRounds; ++i) {
        WriteBatch batch;
        batch.Put("rw", id, std::to_string(i), i);
        batch.AppendLog(id, i, "x");
        if (!store_->Commit(std::move(batch)).ok()) {
          failures++;
          continue;
        }
        Result<std::optional<Record>> record = store_->Get("rw", id);
        Result<LogRead> log = store_->ReadLog(id, 0, 1 << 20);
        Result<std::vector<Record>> all = store_->List("rw");
        if (!record.ok() || !log.ok() || !all.ok()) {
          failures++;
          continue;
        }
        if (!record->has_value() || (*record)->version != i + 1 ||
            log->data.size() != static_cast<size_t>(i + 1)) {
          stale_reads++;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(stale_reads.load(), 0) << "a read missed the reader's own acknowledged commit";
}

// Collects CommitAsync answers and waits for them (with a deadline only against hanging).
class AsyncAnswers {
 public:
  std::function<void(Status)> Expect(int index) {
    return [this, index](Status status) {
      base::MutexLock lock(mu_);
      order_.push_back(index);
      statuses_[index] = std::move(status);
      cv_.SignalAll();
    };
  }
  bool WaitFor(size_t count) {
    base::MutexLock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (order_.size() < count) {
      if (cv_.WaitUntil(mu_, deadline)) return order_.size() >= count;
    }
    return true;
  }
  std::vector<int> order() {
    base::MutexLock lock(mu_);
    return order_;
  }
  Status status(int index) {
    base::MutexLock lock(mu_);
    return statuses_[index];
  }

 private:
  base::Mutex mu_;
  base::CondVar cv_;
  std::vector<int> order_ ABSL_GUARDED_BY(mu_);
  std::map<int, Status> statuses_ ABSL_GUARDED_BY(mu_);
};

TEST_P(StateStoreContractTest, CommitAsyncAppliesAndAnswersInCallOrder) {
  constexpr int kBatches = 100;
  AsyncAnswers answers;
  for (int i = 0; i < kBatches; ++i) {
    WriteBatch batch;
    // Each expects the version the previous batch made: they succeed only if applied in order.
    batch.Put("seq", "x", std::to_string(i), i);
    store_->CommitAsync(std::move(batch), answers.Expect(i));
  }
  ASSERT_TRUE(answers.WaitFor(kBatches));
  std::vector<int> expected_order(kBatches);
  for (int i = 0; i < kBatches; ++i) expected_order[i] = i;
  EXPECT_EQ(answers.order(), expected_order);
  for (int i = 0; i < kBatches; ++i) EXPECT_TRUE(answers.status(i).ok()) << i;
  EXPECT_EQ(VersionOf("seq", "x"), kBatches);
}

TEST_P(StateStoreContractTest, CommitAsyncReportsConflictsAndBadBatchesAlone) {
  ASSERT_TRUE(Put("job", "taken", "{}").ok());
  AsyncAnswers answers;
  WriteBatch conflict;
  conflict.Put("job", "taken", "{}", 0);
  store_->CommitAsync(std::move(conflict), answers.Expect(0));
  WriteBatch malformed;
  malformed.Put("", "no-kind", "{}");
  store_->CommitAsync(std::move(malformed), answers.Expect(1));
  WriteBatch good;
  good.Put("job", "fine", "{}");
  store_->CommitAsync(std::move(good), answers.Expect(2));
  ASSERT_TRUE(answers.WaitFor(3));
  EXPECT_EQ(answers.status(0).code(), absl::StatusCode::kAborted) << answers.status(0);
  EXPECT_EQ(answers.status(1).code(), absl::StatusCode::kInvalidArgument) << answers.status(1);
  EXPECT_TRUE(answers.status(2).ok()) << answers.status(2);
  EXPECT_EQ(VersionOf("job", "fine"), 1);
  EXPECT_EQ(VersionOf("job", "taken"), 1);
}

TEST_P(StateStoreContractTest, ReopenKeepsRecordsVersionsAndLogs) {
  ASSERT_TRUE(Put("job", "j1", "one").ok());
  ASSERT_TRUE(Put("job", "j1", "two").ok());
  ASSERT_TRUE(Put("cloud", "c1", "{}").ok());
  ASSERT_TRUE(Append("log", 0, "0123456789").ok());
  ASSERT_TRUE(store_->TrimLog("log", 4).ok());

  Open();
  Result<std::optional<Record>> record = store_->Get("job", "j1");
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->version, 2);
  EXPECT_EQ((*record)->body, "two");
  EXPECT_EQ(VersionOf("cloud", "c1"), 1);
  EXPECT_EQ(End("log"), 10);
  LogRead read = Read("log", 0);
  EXPECT_EQ(read.start_offset + static_cast<int64_t>(read.data.size()), 10);
  EXPECT_EQ(read.data, std::string("0123456789").substr(static_cast<size_t>(read.start_offset)));
  // The resend of already stored (and trimmed) bytes is still recognised after reopening.
  ASSERT_TRUE(Append("log", 0, "0123456789AB").ok());
  EXPECT_EQ(End("log"), 12);
  EXPECT_EQ(Read("log", 10).data, "AB");
}

TEST_P(StateStoreContractTest, LogAppendsReadBackInOrder) {
  ASSERT_TRUE(Append("a/log", 0, "hello ").ok());
  ASSERT_TRUE(Append("a/log", 6, "world").ok());
  EXPECT_EQ(End("a/log"), 11);

  LogRead all = Read("a/log", 0);
  EXPECT_EQ(all.data, "hello world");
  EXPECT_EQ(all.start_offset, 0);
  EXPECT_EQ(all.next_offset, 11);

  LogRead middle = Read("a/log", 3, 4);
  EXPECT_EQ(middle.data, "lo w");
  EXPECT_EQ(middle.start_offset, 3);
  EXPECT_EQ(middle.next_offset, 7);

  LogRead at_end = Read("a/log", 11);
  EXPECT_EQ(at_end.data, "");
  EXPECT_EQ(at_end.next_offset, 11);

  EXPECT_EQ(End("unknown"), 0);
  EXPECT_EQ(Read("unknown", 0).data, "");
}

TEST_P(StateStoreContractTest, LogResendAndOverlapStoreOnlyNewBytes) {
  ASSERT_TRUE(Append("s", 0, "hello ").ok());
  ASSERT_TRUE(Append("s", 6, "world").ok());
  ASSERT_TRUE(Append("s", 6, "world").ok());    // resend after a lost reply
  ASSERT_TRUE(Append("s", 0, "hello").ok());    // an older resend
  ASSERT_TRUE(Append("s", 6, "world!!").ok());  // overlaps: only "!!" is new
  EXPECT_EQ(End("s"), 13);
  EXPECT_EQ(Read("s", 0).data, "hello world!!");
}

TEST_P(StateStoreContractTest, LogGapIsSkippedByReaders) {
  ASSERT_TRUE(Append("s", 0, "abc").ok());
  ASSERT_TRUE(Append("s", 10, "xyz").ok());
  EXPECT_EQ(End("s"), 13);

  LogRead first = Read("s", 0);
  EXPECT_EQ(first.data, "abc");
  EXPECT_EQ(first.next_offset, 3);
  LogRead after_gap = Read("s", first.next_offset);
  EXPECT_EQ(after_gap.data, "xyz");
  EXPECT_EQ(after_gap.start_offset, 10);
  EXPECT_EQ(after_gap.next_offset, 13);
  LogRead inside = Read("s", 11);
  EXPECT_EQ(inside.data, "yz");
  EXPECT_EQ(inside.start_offset, 11);

  // Bytes that would fill the gap arrive too late: the stream's end is already past them.
  ASSERT_TRUE(Append("s", 3, "defg").ok());
  EXPECT_EQ(Read("s", 3).start_offset, 10);
}

TEST_P(StateStoreContractTest, TrimLogKeepsTheNewestBytes) {
  std::string written;
  for (int chunk = 0; chunk < 10; ++chunk) {
    std::string data(10, static_cast<char>('a' + chunk));
    ASSERT_TRUE(Append("s", static_cast<int64_t>(written.size()), data).ok());
    written += data;
  }
  ASSERT_TRUE(store_->TrimLog("s", 25).ok());
  EXPECT_EQ(End("s"), 100) << "trimming must not move the end";

  LogRead read = Read("s", 0);
  // An implementation may keep the whole chunk that straddles the cut (offsets 70..79).
  EXPECT_GE(read.start_offset, 70);
  EXPECT_LE(read.start_offset, 75);
  EXPECT_EQ(read.data, written.substr(static_cast<size_t>(read.start_offset)));
  EXPECT_EQ(read.next_offset, 100);

  ASSERT_TRUE(Append("s", 100, "tail").ok());
  EXPECT_EQ(Read("s", 95).data, written.substr(95) + "tail");

  ASSERT_TRUE(store_->TrimLog("s", 0).ok());
  EXPECT_EQ(Read("s", 0).data, "");
  EXPECT_EQ(End("s"), 104);
}

TEST_P(StateStoreContractTest, LargeBodiesAndLogChunksRoundTrip) {
  std::string body = R"({"blob":")";
  for (int i = 0; body.size() < (1 << 20); ++i) body += static_cast<char>('a' + i % 26);
  body += R"("})";
  ASSERT_TRUE(Put("job", "big", body).ok());
  Result<std::optional<Record>> record = store_->Get("job", "big");
  ASSERT_TRUE(record.ok() && record->has_value()) << record.status();
  EXPECT_EQ((*record)->body, body);

  std::string bytes(1 << 20, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7919 % 251);
  ASSERT_TRUE(Append("big", 0, bytes).ok());
  std::string read_back;
  int64_t offset = 0;
  for (int reads = 0; reads < 100 && offset < static_cast<int64_t>(bytes.size()); ++reads) {
    LogRead piece = Read("big", offset, 64 * 1024);
    ASSERT_EQ(piece.start_offset, offset);
    ASSERT_LE(piece.data.size(), size_t{64 * 1024});
    read_back += piece.data;
    offset = piece.next_offset;
  }
  EXPECT_TRUE(read_back == bytes) << "log bytes differ after a round trip";
}

TEST_P(StateStoreContractTest, MalformedRequestsAreInvalidArguments) {
  EXPECT_EQ(Put("", "id", "{}").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Put("job", "", "{}").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Put("job", "id", "{}", -5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Append("s", -1, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ReadLog("s", 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->TrimLog("s", -1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->Commit(WriteBatch()).ok()) << "an empty batch is a no-op";
}

// The contract a caller relies on to call CommitAsync under its own lock: the answer never
// comes on the caller's thread, so a `done` that takes the same lock cannot deadlock.
TEST_P(StateStoreContractTest, CommitAsyncNeverAnswersOnTheCallersThread) {
  base::Mutex caller_lock;
  std::promise<bool> answered_elsewhere;
  {
    base::MutexLock hold(caller_lock);
    WriteBatch batch;
    batch.Put("job", "a", "{}");
    const std::thread::id caller = std::this_thread::get_id();
    store_->CommitAsync(std::move(batch), [&, caller](Status status) {
      EXPECT_TRUE(status.ok()) << status;
      base::MutexLock taken(caller_lock);  // would deadlock (or fail) if run inline
      answered_elsewhere.set_value(std::this_thread::get_id() != caller);
    });
  }
  EXPECT_TRUE(answered_elsewhere.get_future().get());
}

Result<std::unique_ptr<StateStore>> OpenUnarmedFaultInjector(const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<StateStore> sqlite, OpenSqliteInDir(dir));
  return std::unique_ptr<StateStore>(std::make_unique<FaultInjectingStore>(std::move(sqlite)));
}

INSTANTIATE_TEST_SUITE_P(
    Stores, StateStoreContractTest,
    ::testing::Values(StoreImplementation{"Sqlite", &OpenSqliteInDir},
                      StoreImplementation{"FaultInjectorUnarmed", &OpenUnarmedFaultInjector}),
    [](const auto& info) { return info.param.name; });

// ---- What only the SQLite implementation promises ----

// Runs `sql` on the database file directly, bypassing the store; returns the first column of
// the last row (empty when none) or "error: ...".
std::string RawSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::string error = fmt::format("error: {}", sqlite3_errmsg(db));
    sqlite3_close(db);
    return error;
  }
  std::string value;
  char* error = nullptr;
  int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int columns, char** values, char**) {
        if (columns > 0 && values[0] != nullptr) *static_cast<std::string*>(out) = values[0];
        return 0;
      },
      &value, &error);
  if (rc != SQLITE_OK) value = fmt::format("error: {}", error != nullptr ? error : "?");
  sqlite3_free(error);
  sqlite3_close(db);
  return value;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()) << "cannot create a temp dir"; }
  std::string path() const { return SqlitePath(dir_.path()); }

  TempDir dir_;
};

TEST_F(SqliteStoreTest, MigratesAnEmptyFileToTheCurrentSchemaInWalMode) {
  FILE* file = fopen(path().c_str(), "w");
  ASSERT_NE(file, nullptr);
  fclose(file);

  Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path());
  ASSERT_TRUE(store.ok()) << store.status();
  WriteBatch batch;
  batch.Put("job", "j1", "{}");
  batch.AppendLog("j1", 0, "out");
  ASSERT_TRUE((*store)->Commit(std::move(batch)).ok());

  EXPECT_EQ(RawSql(path(), "SELECT version FROM schema_version"), "1");
  EXPECT_EQ(RawSql(path(), "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(RawSql(path(), "SELECT count(*) FROM records"), "1");
  EXPECT_EQ(RawSql(path(), "SELECT count(*) FROM logs"), "1");
}

TEST_F(SqliteStoreTest, RefusesADatabaseWrittenByANewerSchema) {
  {
    Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path());
    ASSERT_TRUE(store.ok()) << store.status();
  }
  ASSERT_EQ(RawSql(path(), "UPDATE schema_version SET version = 7"), "");

  Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path());
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(
      std::string(store.status().message()),
      HasSubstr("state.db was written by a newer meridian (schema 7, this binary knows 1)"));
  EXPECT_EQ(RawSql(path(), "SELECT version FROM schema_version"), "7") << "the file was changed";
}

TEST_F(SqliteStoreTest, AFileThatIsNotADatabaseIsAnInternalErrorNamingIt) {
  ASSERT_TRUE(base::WriteFileAtomic(path(), std::string(4096, 'x')).ok());
  Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path());
  ASSERT_EQ(store.status().code(), absl::StatusCode::kInternal) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(path()));
}

TEST_F(SqliteStoreTest, BatchesInOneGroupFailAlone) {
  // A long window makes the concurrent batches share one transaction; what is checked holds
  // however they are grouped.
  SqliteStoreOptions options;
  options.group_commit_window_us = 50'000;
  Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  WriteBatch seed;
  seed.Put("job", "taken", "{}");
  ASSERT_TRUE((*store)->Commit(std::move(seed)).ok());

  constexpr int kThreads = 8;
  std::vector<Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      WriteBatch batch;
      batch.Put("job", fmt::format("t{}", t), "{}");
      if (t == 3) batch.Put("job", "taken", "{}", 0);
      results[t] = (*store)->Commit(std::move(batch));
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    Result<std::optional<Record>> record = (*store)->Get("job", fmt::format("t{}", t));
    ASSERT_TRUE(record.ok()) << record.status();
    if (t == 3) {
      EXPECT_EQ(results[t].code(), absl::StatusCode::kAborted) << results[t];
      EXPECT_FALSE(record->has_value());
    } else {
      EXPECT_TRUE(results[t].ok()) << t << ": " << results[t];
      EXPECT_TRUE(record->has_value()) << t;
    }
  }
}

TEST_F(SqliteStoreTest, CommitAsyncAnswersOnTheWriterThread) {
  Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path());
  ASSERT_TRUE(store.ok()) << store.status();
  std::promise<std::thread::id> answered_on;
  WriteBatch batch;
  batch.Put("job", "j1", "{}");
  (*store)->CommitAsync(std::move(batch), [&answered_on](Status status) {
    answered_on.set_value(std::this_thread::get_id());
  });
  std::future<std::thread::id> answer = answered_on.get_future();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_NE(answer.get(), std::this_thread::get_id())
      << "the callback ran on the caller, which may hold a lock the callback needs";
}

TEST_F(SqliteStoreTest, ClosingStoresWhatWasQueuedBeforeItAnswers) {
  // The writer waits this long for a second batch to join the first, so the batch is still
  // queued when the store is destroyed: closing must store it, not drop it (a control plane
  // shutting down has already changed its memory for it).
  SqliteStoreOptions options;
  options.group_commit_window_us = 60'000'000;
  Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  std::optional<Status> result;
  WriteBatch batch;
  batch.Put("job", "late", "{}");
  (*store)->CommitAsync(std::move(batch), [&result](Status status) { result = status; });
  store->reset();  // joins the writer, which stores and answers before it exits
  ASSERT_TRUE(result.has_value()) << "the queued batch was never answered";
  EXPECT_TRUE(result->ok()) << *result;

  store = OpenSqliteStore(path());
  ASSERT_TRUE(store.ok()) << store.status();
  Result<std::optional<Record>> late = (*store)->Get("job", "late");
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_TRUE(late->has_value()) << "a batch answered OK was not stored";
}

// Child side of the crash test: commits records from several threads and reports each id on
// `fd` only after its Commit returned OK. Never returns.
[[noreturn]] void CommitUntilKilled(const std::string& path, int fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test that died
  Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path);
  if (!store.ok()) _exit(2);
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t i = 0; i < 1'000'000; ++i) {
        int64_t id = t * 1'000'000 + i;
        WriteBatch batch;
        batch.Put("job", fmt::format("{:08}", id), fmt::format(R"({{"id":{}}})", id), 0);
        if (!(*store)->Commit(std::move(batch)).ok()) _exit(3);
        // 8 bytes: below PIPE_BUF, so each write is atomic among the threads.
        if (write(fd, &id, sizeof(id)) != sizeof(id)) _exit(4);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  _exit(0);
}

TEST_F(SqliteStoreTest, KillNineLosesNoAcknowledgedCommit) {
  {
    // Create the schema first so that the child only commits.
    Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path());
    ASSERT_TRUE(store.ok()) << store.status();
  }
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    CommitUntilKilled(path(), fds[1]);
  }
  close(fds[1]);

  std::vector<int64_t> acknowledged;
  std::string pending;
  auto read_some = [&] {
    char buffer[4096];
    ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n <= 0) return false;
    pending.append(buffer, static_cast<size_t>(n));
    while (pending.size() >= sizeof(int64_t)) {
      int64_t id;
      std::memcpy(&id, pending.data(), sizeof(id));
      acknowledged.push_back(id);
      pending.erase(0, sizeof(id));
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (acknowledged.size() < 500 && std::chrono::steady_clock::now() < deadline) {
    if (!read_some()) break;  // the child ended early: its exit status says why
  }
  kill(child, SIGKILL);
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
      << "the child ended on its own, status " << wait_status;
  while (read_some()) {
  }  // acknowledgements written before the kill still count
  close(fds[0]);
  ASSERT_GE(acknowledged.size(), size_t{500});

  Result<std::unique_ptr<StateStore>> store = OpenSqliteStore(path());
  ASSERT_TRUE(store.ok()) << store.status();
  Result<std::vector<Record>> records = (*store)->List("job");
  ASSERT_TRUE(records.ok()) << records.status();
  std::set<std::string> stored;
  for (const Record& record : *records) stored.insert(record.id);
  int missing = 0;
  for (int64_t id : acknowledged) {
    if (!stored.contains(fmt::format("{:08}", id))) ++missing;
  }
  EXPECT_EQ(missing, 0) << "of " << acknowledged.size() << " acknowledged commits";
  WriteBatch after;
  after.Put("job", "after-crash", "{}");
  EXPECT_TRUE((*store)->Commit(std::move(after)).ok());
}

}  // namespace
}  // namespace meridian::state
