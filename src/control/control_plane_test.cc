// The control plane's failover rules, driven through its public methods with a fake clock:
// a silent resource's attempts are LOST and placed elsewhere without using a retry, late
// reports of a lost attempt are ignored, and a flapping resource is put on probation.
#include "control/control_plane.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "base/clock.h"
#include "base/files.h"
#include "identity/audit.h"
#include "state/fault_injecting_store.h"
#include "state/state_store.h"

namespace meridian::control {
namespace {

using nlohmann::json;

class ControlPlaneFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/control_plane_test.XXXXXX";
    dir_ = mkdtemp(pattern);
    store_ = state::OpenSqliteStore(dir_ + "/state.db").value();
    ControlPlaneOptions options;
    options.clock = &clock_;
    options.heartbeat_timeout_ms = 10'000;
    options.flap_window_ms = 600'000;
    options.flap_losses = 2;
    options.flap_probation_ms = 60'000;
    plane_ = ControlPlane::Open(store_.get(), options).value();
    ASSERT_TRUE(Call([&](auto done) { plane_->CreateCloud("c", done); }).ok());
    for (const char* region : {"eastus", "westus"}) {
      spec::CloudResourceSpec spec;
      spec.name = region;
      spec.region = region;
      ASSERT_TRUE(Call([&](auto done) { plane_->CreateResource("c", spec, done); }).ok());
    }
  }
  void TearDown() override {
    // Writes queued by Tick finish before the store closes (commits apply in order).
    state::WriteBatch barrier;
    barrier.Put("test", "barrier", "{}");
    ASSERT_TRUE(store_->Commit(std::move(barrier)).ok());
    plane_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  template <typename T = json, typename F>
  Result<T> Call(F&& call) {
    std::promise<Result<T>> promise;
    call([&](Result<T> result) { promise.set_value(std::move(result)); });
    return promise.get_future().get();
  }

  // One heartbeat from `resource`'s operator offering one 4-CPU node, with `reports`.
  void Heartbeat(const std::string& resource, std::vector<AttemptReport> reports = {}) {
    OperatorReport report;
    report.operator_id = "op-" + resource;
    InstanceCapacity cpu;
    cpu.type.name = "cpu4";
    cpu.type.cpu = 4;
    cpu.type.memory_bytes = int64_t{8} << 30;
    cpu.total_nodes = 1;
    report.capacity = {cpu};
    report.attempts = std::move(reports);
    ASSERT_TRUE(Call<api::HeartbeatAnswer>([&](auto done) {
                  plane_->OperatorHeartbeat(resource, report, done);
                }).ok());
  }

  std::string Submit(int max_retries, const std::string& pin = "") {
    spec::JobConfig config;
    config.entrypoint = "python train.py";
    config.max_retries = max_retries;
    config.compute_config.target.cloud_resource = pin;
    Result<json> job = Call([&](auto done) { plane_->SubmitJob(config, "", "", done); });
    EXPECT_TRUE(job.ok()) << job.status();
    return job->at("id").get<std::string>();
  }

  json Job(const std::string& id) { return plane_->GetJob(id).value(); }

  AttemptReport Report(const std::string& id, int number, JobState state) {
    json attempt = Job(id)["attempts"][number - 1];
    AttemptReport report;
    report.job_id = id;
    report.attempt = number;
    report.epoch = attempt["epoch"].get<int64_t>();
    report.state = state;
    report.exit_code = state == JobState::kFailed ? 1 : 0;
    return report;
  }

  // Time passes with only `alive` heartbeating.
  void Silence(const std::string& alive, int64_t ms) {
    for (int64_t passed = 0; passed < ms; passed += 2'000) {
      clock_.AdvanceMs(2'000);
      Heartbeat(alive);
      plane_->Tick();
    }
  }

  std::string dir_;
  base::FakeClock clock_;
  std::unique_ptr<state::StateStore> store_;
  std::unique_ptr<ControlPlane> plane_;
};

TEST_F(ControlPlaneFailoverTest, SilentResourceLosesItsRunningAttemptWithoutUsingARetry) {
  Heartbeat("eastus");
  Heartbeat("westus");
  std::string id = Submit(/*max_retries=*/0, "");
  ASSERT_EQ(Job(id)["attempts"][0]["cloud_resource"], "eastus");
  Heartbeat("eastus", {Report(id, 1, JobState::kRunning)});
  ASSERT_EQ(Job(id)["state"], "RUNNING");

  Silence("westus", 12'000);

  json job = Job(id);
  ASSERT_EQ(job["attempts"].size(), 2u) << job.dump(2);
  EXPECT_EQ(job["attempts"][0]["state"], "LOST");
  EXPECT_EQ(job["attempts"][1]["cloud_resource"], "westus");
  EXPECT_EQ(job["attempts"][1]["state"], "STARTING");
  EXPECT_NE(job["attempts"][1]["epoch"], job["attempts"][0]["epoch"]);
  EXPECT_EQ(plane_->GetResource("eastus").value()["health"], "UNHEALTHY");
}

TEST_F(ControlPlaneFailoverTest, LateReportOfALostAttemptIsIgnoredAndTheOperatorIsToldToStop) {
  Heartbeat("eastus");
  Heartbeat("westus");
  std::string id = Submit(0);
  AttemptReport lost_running = Report(id, 1, JobState::kRunning);
  Heartbeat("eastus", {lost_running});
  Silence("westus", 12'000);

  // The link comes back: eastus reports the old attempt as finished.
  AttemptReport late = lost_running;
  late.state = JobState::kSucceeded;
  Heartbeat("eastus", {late});
  json job = Job(id);
  EXPECT_EQ(job["attempts"][0]["state"], "LOST");
  EXPECT_EQ(job["state"], "STARTING") << "a late report must not finish the job";

  // eastus's assignment list no longer holds the job, which is how its operator learns to stop.
  Result<api::AssignmentList> assignments = Call<api::AssignmentList>(
      [&](auto done) { plane_->WatchAssignments("eastus", "", 0, done); });
  ASSERT_TRUE(assignments.ok());
  EXPECT_TRUE(assignments->assignments.empty()) << api::ToJson(*assignments);

  Heartbeat("westus", {Report(id, 2, JobState::kSucceeded)});
  Heartbeat("eastus", {late});  // and again: still ignored
  job = Job(id);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  int succeeded = 0;
  for (const json& attempt : job["attempts"]) succeeded += attempt["state"] == "SUCCEEDED";
  EXPECT_EQ(succeeded, 1);
}

TEST_F(ControlPlaneFailoverTest, UserFailuresUseRetriesAndLossesDoNot) {
  Heartbeat("eastus");
  Heartbeat("westus");
  std::string id = Submit(/*max_retries=*/1);
  Heartbeat("eastus", {Report(id, 1, JobState::kRunning)});
  Silence("westus", 12'000);  // attempt 1 LOST, attempt 2 on westus
  ASSERT_EQ(Job(id)["attempts"].size(), 2u);
  Heartbeat("westus", {Report(id, 2, JobState::kFailed)});  // first failure: one retry left
  json job = Job(id);
  ASSERT_EQ(job["attempts"].size(), 3u) << job.dump(2);
  EXPECT_NE(job["state"], "FAILED");
  Heartbeat("westus", {Report(id, 3, JobState::kFailed)});  // second failure: no retries left
  EXPECT_EQ(Job(id)["state"], "FAILED");
}

TEST_F(ControlPlaneFailoverTest, FlappingResourceGetsNoNewWorkUntilItsProbationEnds) {
  Heartbeat("eastus");
  Heartbeat("westus");
  Silence("westus", 12'000);  // eastus lost once
  Heartbeat("eastus");
  EXPECT_EQ(plane_->GetResource("eastus").value()["probation_until"], "");
  Silence("westus", 12'000);  // and again within the flap window
  Heartbeat("eastus");
  EXPECT_NE(plane_->GetResource("eastus").value()["probation_until"], "");

  std::string id = Submit(0, "eastus");
  EXPECT_EQ(Job(id)["attempts"].size(), 0u) << "a job pinned to a resource on probation waits";
  EXPECT_NE(Job(id)["state"], "FAILED");

  for (int i = 0; i < 31; ++i) {  // 62 s of steady heartbeats
    clock_.AdvanceMs(2'000);
    Heartbeat("eastus");
    Heartbeat("westus");
    plane_->Tick();
  }
  json job = Job(id);
  ASSERT_EQ(job["attempts"].size(), 1u) << job.dump(2);
  EXPECT_EQ(job["attempts"][0]["cloud_resource"], "eastus");
}

TEST_F(ControlPlaneFailoverTest, AttemptsOfAnOperatorThatNeverReturnsAfterARestartAreLost) {
  Heartbeat("eastus");
  std::string id = Submit(0, "");
  ASSERT_EQ(Job(id)["attempts"][0]["cloud_resource"], "eastus");
  // Restart the control plane: every resource is UNKNOWN until its operator reports.
  plane_.reset();
  ControlPlaneOptions options;
  options.clock = &clock_;
  plane_ = ControlPlane::Open(store_.get(), options).value();
  Heartbeat("westus");
  Silence("westus", 12'000);
  json job = Job(id);
  ASSERT_EQ(job["attempts"].size(), 2u) << job.dump(2);
  EXPECT_EQ(job["attempts"][0]["state"], "LOST");
  EXPECT_EQ(job["attempts"][1]["cloud_resource"], "westus");
}

TEST_F(ControlPlaneFailoverTest, NamedComputeConfigsSurviveARestartAndArchivingRefusesNewJobs) {
  auto create = [&](const std::string& head) {
    spec::ComputeConfig config;
    config.target.head_instance_type = head;
    std::promise<Result<NamedComputeConfig>> promise;
    plane_->CreateComputeConfig("shape", config, "alice", [&](Result<NamedComputeConfig> made) {
      promise.set_value(std::move(made));
    });
    return promise.get_future().get();
  };
  ASSERT_TRUE(create("cpu4").ok());
  Result<NamedComputeConfig> second = create("gpu1");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->latest().version, 2);
  EXPECT_EQ(second->latest().created_by, "alice");

  plane_.reset();  // a restart loads them back from the store
  ControlPlaneOptions options;
  options.clock = &clock_;
  plane_ = ControlPlane::Open(store_.get(), options).value();
  Result<NamedComputeConfig> loaded = plane_->GetComputeConfig("shape");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->versions.size(), 2u);
  EXPECT_EQ(loaded->versions[0].config.target.head_instance_type, "cpu4");

  spec::JobConfig job;
  job.entrypoint = "python train.py";
  job.compute_config.named = "shape:1";
  Result<json> submitted = Call([&](auto done) { plane_->SubmitJob(job, "", "", done); });
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ((*submitted)["compute_config_ref"], "shape:1");
  EXPECT_EQ((*submitted)["config"]["compute_config"]["head_node"]["instance_type"], "cpu4");

  std::promise<Result<NamedComputeConfig>> archived;
  plane_->ArchiveComputeConfig("shape", [&](Result<NamedComputeConfig> result) {
    archived.set_value(std::move(result));
  });
  ASSERT_TRUE(archived.get_future().get().ok());
  Result<json> refused = Call([&](auto done) { plane_->SubmitJob(job, "", "", done); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  job.compute_config.named = "other";
  Result<json> unknown = Call([&](auto done) { plane_->SubmitJob(job, "", "", done); });
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();
}

// A submission is one durable write: the job and its audit entry commit together, and the
// entry records the decision ("accepted") with the job's id.
class ControlPlaneAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/control_plane_audit_test.XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Opens the store (behind a fault injector), the audit log and the control plane.
  void Open() {
    store_ = std::make_unique<state::FaultInjectingStore>(
        state::OpenSqliteStore(dir_ + "/state.db").value());
    audit_ = identity::AuditLog::Open(store_.get(), base::SystemClock::Get()).value();
    plane_ = ControlPlane::Open(store_.get(), ControlPlaneOptions{}).value();
  }

  Result<json> Submit() {
    SubmitAudit audit{audit_.get(), {}};
    audit.entry.actor = "alice";
    audit.entry.action = "job.submit";
    spec::JobConfig config;
    config.entrypoint = "python train.py";
    std::promise<Result<json>> answer;
    plane_->SubmitJob(
        config, "", "alice", [&](Result<json> result) { answer.set_value(std::move(result)); },
        std::move(audit));
    return answer.get_future().get();
  }

  std::string dir_;
  std::unique_ptr<state::FaultInjectingStore> store_;
  std::unique_ptr<identity::AuditLog> audit_;
  std::unique_ptr<ControlPlane> plane_;
};

TEST_F(ControlPlaneAuditTest, ASubmissionAndItsAuditEntryAreOneCommit) {
  Open();
  const int64_t before = store_->batches_answered();
  Result<json> job = Submit();
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(store_->batches_answered() - before, 1) << "the job and its entry: one commit";
  auto entries = audit_->List(identity::AuditFilter{}).value();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].result, "accepted");
  EXPECT_EQ(entries[0].detail, "id=" + (*job)["id"].get<std::string>());
  EXPECT_TRUE(audit_->Verify().ok());
}

TEST_F(ControlPlaneAuditTest, ACrashLosesAJobAndItsAuditEntryTogether) {
  // The child (forked while this process runs no thread of its own) submits one job, then
  // crashes in the middle of the second submission's commit.
  EXPECT_EXIT(
      {
        Open();
        if (!Submit().ok()) std::_Exit(1);
        store_->Arm(state::FaultInjectingStore::Fault::kCrash);
        (void)Submit();
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(70), "");
  auto store = state::OpenSqliteStore(dir_ + "/state.db").value();
  auto plane = ControlPlane::Open(store.get(), ControlPlaneOptions{}).value();
  auto log = identity::AuditLog::Open(store.get(), base::SystemClock::Get()).value();
  EXPECT_EQ(plane->ListJobs(JobFilter{})["items"].size(), 1u);
  EXPECT_EQ(log->List(identity::AuditFilter{}).value().size(), 1u);
  EXPECT_TRUE(log->Verify().ok());
}

// A store that fails a write must never lead to an acknowledgement, and a restart must show
// exactly what is durable: the control plane stops (exit 70) rather than serve memory that
// disk does not hold, and reloads from disk. Each fault runs in a child process (a death
// test), because stopping is the behaviour under test.
class ControlPlaneStoreFailureTest
    : public ::testing::TestWithParam<state::FaultInjectingStore::Fault> {};

TEST_P(ControlPlaneStoreFailureTest, AFailedCommitIsNeverAcknowledgedAndARestartShowsWhatIsDurable) {
  // The default ("fast") style forks here, where this process runs no thread of its own: the
  // child shares the directory made below, and makes its store and control plane itself.
  char pattern[] = "/tmp/control_plane_fault_test.XXXXXX";
  const std::string dir = mkdtemp(pattern);
  const std::string db = dir + "/state.db";
  const std::string acknowledged = dir + "/acknowledged";
  EXPECT_EXIT(
      {
        auto store = std::make_unique<state::FaultInjectingStore>(
            state::OpenSqliteStore(db).value());
        auto plane = ControlPlane::Open(store.get(), ControlPlaneOptions{}).value();
        std::promise<void> cloud_made;
        plane->CreateCloud("c", [&](Result<json>) { cloud_made.set_value(); });
        cloud_made.get_future().get();
        store->Arm(GetParam());
        spec::JobConfig config;
        config.entrypoint = "python train.py";
        plane->SubmitJob(config, "", "alice", [&](Result<json> answer) {
          if (answer.ok()) (void)base::WriteFileAtomic(acknowledged, "yes");
        });
        std::this_thread::sleep_for(std::chrono::seconds(20));  // the exit comes first
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(70), "");
  EXPECT_FALSE(base::PathExists(acknowledged)) << "a failed commit was acknowledged";

  auto store = state::OpenSqliteStore(db).value();
  auto plane = ControlPlane::Open(store.get(), ControlPlaneOptions{}).value();
  json jobs = plane->ListJobs(JobFilter{});
  // A write that failed before reaching the disk left nothing; one whose sync failed may have
  // reached it, and then the restarted control plane shows it whole (it was never promised).
  size_t expected = GetParam() == state::FaultInjectingStore::Fault::kSyncError ? 1 : 0;
  EXPECT_EQ(jobs["items"].size(), expected) << jobs.dump(2);
  EXPECT_TRUE(plane->GetCloud("c").ok()) << "the commit before the fault is durable";
  plane.reset();
  store.reset();
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Faults, ControlPlaneStoreFailureTest,
                         ::testing::Values(state::FaultInjectingStore::Fault::kWriteError,
                                           state::FaultInjectingStore::Fault::kDiskFull,
                                           state::FaultInjectingStore::Fault::kSyncError,
                                           state::FaultInjectingStore::Fault::kCrash),
                         [](const auto& info) {
                           switch (info.param) {
                             case state::FaultInjectingStore::Fault::kWriteError:
                               return "WriteError";
                             case state::FaultInjectingStore::Fault::kDiskFull:
                               return "DiskFull";
                             case state::FaultInjectingStore::Fault::kSyncError:
                               return "SyncError";
                             case state::FaultInjectingStore::Fault::kCrash:
                               return "Crash";
                           }
                           return "Unknown";
                         });

}  // namespace
}  // namespace meridian::control
