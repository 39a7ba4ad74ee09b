// What the fault injector does when armed: each fault answers with its code, is never
// reported as success, and leaves on disk exactly what its description says.
#include "state/fault_injecting_store.h"

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "state/state_test_util.h"

namespace meridian::state {
namespace {

using Fault = FaultInjectingStore::Fault;

class FaultInjectingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "cannot create a temp dir";
    Reopen();
  }

  void Reopen() {
    store_.reset();
    Result<std::unique_ptr<StateStore>> sqlite = OpenSqliteStore(dir_.path() + "/state.db");
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    store_ = std::make_unique<FaultInjectingStore>(std::move(sqlite).value());
  }

  static WriteBatch PutOf(const std::string& id) {
    WriteBatch batch;
    batch.Put("job", id, "{}");
    return batch;
  }

  // Whether job/id is durable, read through a fresh SQLite store (the injector closed first).
  bool DurableAfterRestart(const std::string& id) {
    store_.reset();
    Result<std::unique_ptr<StateStore>> sqlite = OpenSqliteStore(dir_.path() + "/state.db");
    EXPECT_TRUE(sqlite.ok()) << sqlite.status();
    Result<std::optional<Record>> record = (*sqlite)->Get("job", id);
    EXPECT_TRUE(record.ok()) << record.status();
    return record.ok() && record->has_value();
  }

  TempDir dir_;
  std::unique_ptr<FaultInjectingStore> store_;
};

TEST_F(FaultInjectingStoreTest, WriteErrorAndDiskFullFailAndWriteNothing) {
  store_->Arm(Fault::kWriteError);
  EXPECT_EQ(store_->Commit(PutOf("a")).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(store_->Commit(PutOf("b")).code(), absl::StatusCode::kInternal) << "it stays broken";
  store_->Arm(Fault::kDiskFull);
  EXPECT_EQ(store_->Commit(PutOf("c")).code(), absl::StatusCode::kResourceExhausted);
  store_->Heal();
  EXPECT_TRUE(store_->Commit(PutOf("d")).ok());
  EXPECT_FALSE(DurableAfterRestart("a"));
  Reopen();
  EXPECT_FALSE(DurableAfterRestart("c"));
  Reopen();
  EXPECT_TRUE(DurableAfterRestart("d"));
}

TEST_F(FaultInjectingStoreTest, SkipCountsBatchesBeforeTheFault) {
  store_->Arm(Fault::kWriteError, /*skip=*/2);
  EXPECT_TRUE(store_->Commit(PutOf("a")).ok());
  EXPECT_TRUE(store_->Commit(PutOf("b")).ok());
  EXPECT_FALSE(store_->Commit(PutOf("c")).ok());
}

TEST_F(FaultInjectingStoreTest, SyncErrorFailsAlthoughTheBatchReachedTheDisk) {
  store_->Arm(Fault::kSyncError);
  EXPECT_EQ(store_->Commit(PutOf("a")).code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(DurableAfterRestart("a")) << "a failed sync does not undo the write";
}

TEST_F(FaultInjectingStoreTest, CrashLosesItsWholeGroupAndEverythingAfterButNotEarlierGroups) {
  ASSERT_TRUE(store_->Commit(PutOf("before")).ok());
  store_->Pause();  // the next three form one group
  store_->Arm(Fault::kCrash, /*skip=*/1);
  std::vector<std::future<Status>> answers;
  for (const char* id : {"g1", "g2", "g3"}) {
    auto promise = std::make_shared<std::promise<Status>>();
    answers.push_back(promise->get_future());
    store_->CommitAsync(PutOf(id), [promise](Status status) { promise->set_value(status); });
  }
  store_->Resume();
  for (std::future<Status>& answer : answers) {
    EXPECT_EQ(answer.get().code(), absl::StatusCode::kUnavailable);
  }
  store_->Heal();  // a crashed store stays down
  EXPECT_EQ(store_->Commit(PutOf("after")).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_->Get("job", "before").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(DurableAfterRestart("before"));
  for (const char* id : {"g1", "g2", "g3", "after"}) {
    Reopen();
    EXPECT_FALSE(DurableAfterRestart(id)) << id;
  }
}

}  // namespace
}  // namespace meridian::state
