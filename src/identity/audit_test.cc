// The audit log's chain against a real SQLite store, tampered with the way an intruder with
// database access would: rows edited (with and without recomputing the hash) and deleted.
#include "identity/audit.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "base/files.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/audit_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    store_ = *state::OpenSqliteStore(dir_ + "/state.db");
    log_ = *AuditLog::Open(store_.get(), &clock_);
  }
  void TearDown() override {
    log_.reset();
    store_.reset();
    (void)base::RemoveAll(dir_);
  }
  void AppendSome(int count) {
    for (int i = 0; i < count; ++i) {
      clock_.AdvanceMs(1000);
      AuditEntry entry{0,
                       0,
                       i % 2 ? "alice@example.com" : "app-1",
                       i % 3 ? "job.submit" : "token.issue",
                       "/clouds/prod",
                       "ok",
                       "corr",
                       "127.0.0.1",
                       "",
                       "",
                       ""};
      ASSERT_TRUE(log_->Append(entry).ok());
    }
  }
  std::string RecordId(int64_t seq) { return fmt::format("{:020d}", seq); }
  // Rewrites the stored entry `seq` with `edit` applied, bypassing the log.
  void EditRecord(int64_t seq, const std::function<void(json&)>& edit) {
    auto record = store_->Get(kAuditRecordKind, RecordId(seq));
    ASSERT_TRUE(record.ok() && record->has_value());
    json body = json::parse((*record)->body);
    edit(body);
    state::WriteBatch batch;
    batch.Put(kAuditRecordKind, RecordId(seq), body.dump());
    ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
  }
  void DeleteRecord(int64_t seq) {
    state::WriteBatch batch;
    batch.Delete(kAuditRecordKind, RecordId(seq));
    ASSERT_TRUE(store_->Commit(std::move(batch)).ok());
  }
  std::string VerifyMessage() {
    Status status = log_->Verify();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
    return std::string(status.message());
  }

  std::string dir_;
  base::FakeClock clock_;
  std::unique_ptr<state::StateStore> store_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(AuditTest, EntriesAreChainedAndTheChainSurvivesARestart) {
  EXPECT_TRUE(log_->Verify().ok()) << "an empty log verifies";
  AppendSome(3);
  auto entries = log_->List({});
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].seq, 3) << "newest first";
  EXPECT_EQ((*entries)[0].prev_hash, (*entries)[1].hash);
  EXPECT_EQ((*entries)[2].prev_hash, "");
  EXPECT_EQ((*entries)[2].hash, AuditEntryHash((*entries)[2]));
  log_ = *AuditLog::Open(store_.get(), &clock_);
  AppendSome(1);
  EXPECT_EQ(log_->List({})->front().seq, 4);
  EXPECT_EQ(log_->List({})->front().prev_hash, (*entries)[0].hash);
  EXPECT_TRUE(log_->Verify().ok()) << log_->Verify();
}

TEST_F(AuditTest, DetectsAnEditedEntry) {
  AppendSome(5);
  EditRecord(3, [](json& body) { body["actor"] = "someone-else"; });
  std::string message = VerifyMessage();
  EXPECT_NE(message.find("seq 3"), std::string::npos) << message;
  EXPECT_NE(message.find("hash mismatch"), std::string::npos) << message;
}

TEST_F(AuditTest, DetectsAnEditWhoseHashWasRecomputed) {
  AppendSome(5);
  EditRecord(2, [](json& body) {
    body["result"] = "denied";
    AuditEntry entry{body["seq"],
                     body["time_ms"],
                     body["actor"],
                     body["action"],
                     body["target"],
                     body["result"],
                     body["correlation_id"],
                     body["source_address"],
                     body["detail"],
                     body["prev_hash"],
                     ""};
    body["hash"] = AuditEntryHash(entry);
  });
  std::string message = VerifyMessage();
  EXPECT_NE(message.find("seq 3"), std::string::npos) << message;
  EXPECT_NE(message.find("prev_hash"), std::string::npos) << message;
}

TEST_F(AuditTest, DetectsADeletedEntryInTheMiddleAndAtTheEnd) {
  AppendSome(5);
  DeleteRecord(3);
  std::string message = VerifyMessage();
  EXPECT_NE(message.find("seq 3: missing"), std::string::npos) << message;

  TearDown();
  SetUp();
  AppendSome(5);
  DeleteRecord(5);
  message = VerifyMessage();
  EXPECT_NE(message.find("seq 5: missing"), std::string::npos) << message;
}

TEST_F(AuditTest, ConcurrentAppendsGetConsecutiveSeqsAndAnIntactChain) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 25; ++i) {
        EXPECT_TRUE(log_->Append({0, 0, fmt::format("thread-{}", t), "token.issue"}).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_TRUE(log_->Verify().ok()) << log_->Verify();
  EXPECT_EQ(log_->List({.limit = 1000})->size(), 200u);
  EXPECT_EQ(log_->List({})->front().seq, 200);
}

TEST_F(AuditTest, ListFiltersByActorActionAndTime) {
  AppendSome(6);  // times +1 s .. +6 s
  EXPECT_EQ(log_->List({.actor = "alice@example.com"})->size(), 3u);
  EXPECT_EQ(log_->List({.action = "token.issue"})->size(), 2u);
  EXPECT_EQ(log_->List({.action = "token."})->size(), 2u) << "a prefix ending in '.'";
  EXPECT_EQ(log_->List({.action = "token"})->size(), 0u);
  EXPECT_EQ(log_->List({.since_ms = clock_.NowUnixMs() - 1000})->size(), 2u);
  EXPECT_EQ(log_->List({.limit = 4})->size(), 4u);
}

TEST_F(AuditTest, FieldsAreBoundedAndTokensAreOnlyFingerprinted) {
  std::string token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
  std::string fingerprint = TokenFingerprint(token);
  EXPECT_EQ(fingerprint.rfind("sha256:", 0), 0u);
  EXPECT_EQ(fingerprint.size(), 7u + 16u);
  EXPECT_EQ(fingerprint, TokenFingerprint(token));
  EXPECT_EQ(fingerprint.find("eyJ"), std::string::npos);
  auto stored =
      log_->Append({0, 0, std::string(5000, 'a'), "x", "t", "ok", "", "", "bad \xff utf8"});
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->actor.size(), kMaxAuditFieldChars);
  EXPECT_TRUE(log_->Verify().ok()) << log_->Verify();
}

}  // namespace
}  // namespace meridian::identity
