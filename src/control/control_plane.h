// ControlPlane: the live state of clouds, cloud resources, jobs and attempts, kept in memory
// and written through to the StateStore, plus the long-poll waiters of operators and clients.
//
// Durability: every mutation is applied to memory and queued to the store in one critical
// section (so the store sees writes in the order memory did); its `done` callback runs only
// after the store reports the write durable, and that is when the API answers. If the store
// fails a write, memory and disk disagree: the process logs the error and exits, and a
// restart reloads the last durable state (fail-stop, like a database on a failed fsync).
//
// Threading: every public method may be called from any thread. State is guarded by `mu_`.
// Callbacks (`done`) run after `mu_` is released, on the calling thread or the store's
// writer thread, and must not block.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "api/operator_protocol.h"
#include "base/clock.h"
#include "base/status.h"
#include "control/compute_configs.h"
#include "control/model.h"
#include "identity/audit.h"
#include "control/scheduler/scheduler.h"
#include "state/state_store.h"

namespace meridian::control {

struct ControlPlaneOptions {
  int64_t heartbeat_interval_ms = 2'000;                 // told to operators
  int64_t heartbeat_timeout_ms = 10'000;                 // silent longer: UNHEALTHY
  // A resource that went UNHEALTHY flap_losses times within flap_window_ms is on probation
  // when it recovers: it gets no new work until it has been healthy for flap_probation_ms.
  int64_t flap_window_ms = 10 * 60'000;
  int flap_losses = 2;
  int64_t flap_probation_ms = 60'000;
  int64_t max_log_bytes_per_attempt = int64_t{8} << 20;  // older output is dropped
  int64_t max_wait_ms = 60'000;                          // cap on any long-poll
  size_t max_waiters = 10'000;                           // long-polls held at once
  size_t max_jobs = 1'000'000;   // jobs kept; submissions above it are refused
  base::Clock* clock = nullptr;  // default: SystemClock
};

// An operator's report: its capacity and what it knows of its attempts.
struct AttemptReport {
  std::string job_id;
  int attempt = 0;
  int64_t epoch = 0;
  JobState state = JobState::kStarting;
  int exit_code = -1;
  std::string message;
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;
};

struct OperatorReport {
  std::string operator_id;
  std::string version;
  std::vector<InstanceCapacity> capacity;
  int real_gpus = 0;
  std::vector<AttemptReport> attempts;
};

struct JobFilter {
  std::optional<JobState> state;
  std::string cloud_resource;
  size_t limit = 100;
};

// The audit entry of a submission, written in the job's own commit (one durable write per
// submission): `log` may be null (no audit). The control plane sets its result ("accepted")
// and its detail (the job's id).
struct SubmitAudit {
  identity::AuditLog* log = nullptr;
  identity::AuditEntry entry;
};

class ControlPlane {
 public:
  using JsonDone = std::function<void(Result<nlohmann::json>)>;

  // Loads every record from `store` (which must outlive this object).
  static Result<std::unique_ptr<ControlPlane>> Open(state::StateStore* store,
                                                    ControlPlaneOptions options);
  ~ControlPlane();

  // ---- clouds ----
  void CreateCloud(std::string name, JsonDone done);
  nlohmann::json ListClouds();
  Result<nlohmann::json> GetCloud(const std::string& name_or_id);
  void DeleteCloud(const std::string& name_or_id, JsonDone done);

  // ---- cloud resources (names are unique across clouds) ----
  void CreateResource(const std::string& cloud, spec::CloudResourceSpec spec, JsonDone done);
  Result<nlohmann::json> ListResources(const std::string& cloud);  // "" = every cloud
  Result<nlohmann::json> GetResource(const std::string& name_or_id);
  void DeleteResource(const std::string& name_or_id, JsonDone done);

  // ---- jobs ----
  // `owner`: the submitter's subject, kept with the job and shown in the API.
  void SubmitJob(spec::JobConfig config, std::string package, std::string owner, JsonDone done,
                 SubmitAudit audit = {});
  nlohmann::json ListJobs(const JobFilter& filter);
  Result<nlohmann::json> GetJob(const std::string& id);
  // Answers when the job's version differs from `seen_version` or after `wait_ms`.
  void WaitJob(const std::string& id, int64_t seen_version, int64_t wait_ms, JsonDone done);
  void TerminateJob(const std::string& id, JsonDone done);

  struct LogResult {
    int attempt = 0;
    state::LogRead read;
    bool complete = false;  // the attempt has ended and every byte of it was read
  };
  using LogDone = std::function<void(Result<LogResult>)>;
  // attempt 0: the newest attempt. Waits up to `wait_ms` when there is nothing new yet.
  void ReadLog(const std::string& job_id, int attempt, int64_t offset, int64_t max_bytes,
               int64_t wait_ms, LogDone done);

  // ---- operators ----
  using HeartbeatDone = std::function<void(Result<api::HeartbeatAnswer>)>;
  void OperatorHeartbeat(const std::string& resource, OperatorReport report, HeartbeatDone done);
  // Answers at once when the resource's assignment version differs from `seen_version`,
  // else when it changes or after `wait_ms`.
  void WatchAssignments(const std::string& resource, const std::string& seen_version,
                        int64_t wait_ms, std::function<void(Result<api::AssignmentList>)> done);
  void AppendAttemptLog(const std::string& resource, const std::string& job_id, int attempt,
                        int64_t epoch, int64_t offset, std::string data, JsonDone done);

  // ---- capacity ----
  // Every resource's instance types with total, allocated and free nodes, grouped by region,
  // with totals per region and per accelerator. Free capacity of a resource that is not
  // HEALTHY (or on probation after flapping) is not counted as free.
  nlohmann::json Capacity();

  // ---- quotas (limits on GPUs, CPUs and running jobs per cloud / project / region) ----
  void CreateQuota(Quota quota, JsonDone done);
  nlohmann::json ListQuotas();  // with what running work uses of each
  void DeleteQuota(const std::string& id, JsonDone done);

  // ---- named compute configs (compute_configs.h) ----
  using ComputeConfigDone = std::function<void(Result<NamedComputeConfig>)>;
  // Adds version N+1 of `name` (version 1 of a new name); answers with the whole record, whose
  // latest() is the version made. kFailedPrecondition for an archived name.
  void CreateComputeConfig(std::string name, spec::ComputeConfig config, std::string creator,
                           ComputeConfigDone done);
  std::vector<NamedComputeConfig> ListComputeConfigs();  // by name
  Result<NamedComputeConfig> GetComputeConfig(const std::string& name);
  // No new job may name any version of it; submitted jobs keep their copies.
  void ArchiveComputeConfig(const std::string& name, ComputeConfigDone done);

  // Marks silent resources UNHEALTHY and answers expired long-polls. Call every ~100 ms.
  void Tick();

  // Answers every long-poll now with the current state (for shutdown: clients get an answer
  // and retry against the next server instead of waiting out their poll).
  void AnswerAllWaiters();

  // Counters and gauges in the Prometheus text format.
  std::string MetricsText();

 private:
  struct Waiter {
    int64_t deadline_ms;
    std::function<void()> fire;  // answers with the current state
  };
  using Notifications = std::vector<std::function<void()>>;

  ControlPlane(state::StateStore* store, ControlPlaneOptions options);
  Status Load();

  // All *Locked methods require mu_.
  // `audit`, when given, goes into the same commit (lock order: mu_, then the log's).
  void CommitLocked(state::WriteBatch batch, std::function<void(Status)> done,
                    SubmitAudit* audit = nullptr);
  void StoreJobLocked(Job& job, state::WriteBatch& batch);
  void AddEventLocked(Job& job, std::string message);
  // Replaces a job's named compute_config with a copy of the version it names; returns
  // "NAME:VERSION" of what was taken.
  Result<std::string> ResolveComputeConfigLocked(spec::ComputeConfig& config) const;
  void PlaceLocked(Job& job);
  void PlacePendingLocked(state::WriteBatch& batch);
  void ApplyDecisionLocked(Job& job, const scheduler::Decision& decision, bool take);
  scheduler::Request RequestForLocked(const Job& job) const;
  scheduler::Options SchedulerOptionsLocked() const;
  void FinishAttemptLocked(Job& job, Attempt& attempt, JobState state, int exit_code,
                           std::string message, int64_t ended_ms);
  // The attempt's resource went silent: the attempt is LOST and the job placed again
  // without using up a retry.
  void LoseAttemptLocked(Job& job, Attempt& attempt, const std::string& why,
                         state::WriteBatch& batch);
  void MarkUnhealthyLocked(CloudResource& resource, int64_t now, state::WriteBatch& batch);
  void MarkHealthyLocked(CloudResource& resource, int64_t now);
  bool TrustedLocked(const CloudResource& resource) const;
  void ApplyReportLocked(const std::string& resource, const AttemptReport& report,
                         state::WriteBatch& batch);
  void TouchResourceLocked(const std::string& resource);
  void TouchJobLocked(const std::string& job_id);
  scheduler::Snapshot& SnapshotLocked();
  // Capacity, health, allocations or quotas changed in a way the cached snapshot misses.
  void InvalidateSnapshotLocked();
  api::AssignmentList AssignmentsLocked(const std::string& resource) const;
  std::string AssignmentVersionLocked(const std::string& resource) const;
  CloudResource* FindResourceLocked(const std::string& name_or_id);
  Cloud* FindCloudLocked(const std::string& name_or_id);
  bool AddWaiterLocked(std::multimap<std::string, Waiter>& waiters, const std::string& key,
                       int64_t wait_ms, std::function<void()> fire);
  void WakeLocked(std::multimap<std::string, Waiter>& waiters, const std::string& key);
  void CollectNotificationsLocked(Notifications& out);
  int64_t NowMs() const { return clock_->NowUnixMs(); }

  // Constant after construction.
  state::StateStore* const store_;
  const ControlPlaneOptions options_;
  base::Clock* const clock_;
  const int64_t start_unix_ms_;  // prefixes assignment versions: a restart never repeats one

  std::mutex mu_;
  // Protected by mu_.
  std::map<std::string, Cloud> clouds_;             // by id
  std::map<std::string, CloudResource> resources_;  // by name
  std::map<std::string, Job> jobs_;                 // by id
  std::deque<std::string> pending_;  // job ids waiting for capacity (PlanQueue orders them)
  std::map<std::string, Quota> quotas_;  // by id
  std::map<std::string, NamedComputeConfig> compute_configs_;  // by name
  std::optional<scheduler::Snapshot> snapshot_;  // see SnapshotLocked
  int64_t reconsider_at_ms_ = 0;  // decide the queue again then (a starting timeout); 0: never
  std::map<std::string, std::set<std::string>> active_by_resource_;  // resource -> job ids
  std::map<std::string, int64_t> assignment_versions_;               // resource -> counter
  std::multimap<std::string, Waiter> job_waiters_;                   // job id ->
  std::multimap<std::string, Waiter> assignment_waiters_;            // resource name ->
  Notifications ready_;  // waiters to answer after unlock
  int64_t next_epoch_ = 1;
  std::map<std::string, int64_t> counters_;     // metrics
  std::map<std::string, int64_t> log_appends_;  // job id -> appends seen
  std::set<std::string> needs_trim_;            // log streams over their cap
};

}  // namespace meridian::control
