// ControlPlane: the operator protocol (heartbeats, assignments, output) and housekeeping.
#include <algorithm>

#include "base/ids.h"
#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "spec/spec_json.h"

namespace meridian::control {

using nlohmann::json;

using internal::Dump;
using internal::IsActive;
using internal::kJobKind;
using internal::LogStream;
using internal::UserFailures;

// ---------------------------------------------------------------------------------------
// Operators

void ControlPlane::FinishAttemptLocked(Job& job, Attempt& attempt, JobState state, int exit_code,
                                       std::string message, int64_t ended_ms) {
  attempt.state = state;
  attempt.exit_code = exit_code;
  attempt.message = std::move(message);
  attempt.ended_unix_ms = ended_ms > 0 ? ended_ms : NowMs();
  active_by_resource_[attempt.cloud_resource].erase(job.id);
  InvalidateSnapshotLocked();
  TouchResourceLocked(attempt.cloud_resource);
  counters_[fmt::format("attempts_{}_total", JobStateName(state))] += 1;
  std::string outcome = state == JobState::kSucceeded    ? "succeeded"
                        : state == JobState::kTerminated ? "was terminated"
                                                         : "failed";
  std::string what =
      fmt::format("attempt {} on {} {}", attempt.number, attempt.cloud_resource, outcome);
  if (!attempt.message.empty()) what += ": " + attempt.message;
  if (state == JobState::kSucceeded) {
    job.state = JobState::kSucceeded;
    job.message = what;
  } else if (job.terminate_requested) {
    job.state = JobState::kTerminated;
    job.message = fmt::format("terminated by request ({})", what);
  } else if (UserFailures(job) <= job.config.max_retries) {
    AddEventLocked(job, fmt::format("{}; retrying ({} of {} retries used)", what,
                                    UserFailures(job), job.config.max_retries));
    PlaceLocked(job);
    return;
  } else {
    job.state = JobState::kFailed;
    job.message = job.config.max_retries > 0 ? fmt::format("{}; no retries left (max_retries {})",
                                                           what, job.config.max_retries)
                                             : what;
  }
  job.ended_unix_ms = attempt.ended_unix_ms;
  AddEventLocked(job, job.message);
}

void ControlPlane::LoseAttemptLocked(Job& job, Attempt& attempt, const std::string& why,
                                     state::WriteBatch& batch) {
  attempt.state = JobState::kLost;
  attempt.message = why;
  attempt.ended_unix_ms = NowMs();
  active_by_resource_[attempt.cloud_resource].erase(job.id);
  InvalidateSnapshotLocked();
  TouchResourceLocked(attempt.cloud_resource);
  counters_["attempts_lost_total"] += 1;
  std::string what = fmt::format("attempt {} on {} LOST: {}", attempt.number,
                                 attempt.cloud_resource, why);
  if (job.terminate_requested) {
    job.state = JobState::kTerminated;
    job.message = fmt::format("terminated by request ({})", what);
    job.ended_unix_ms = attempt.ended_unix_ms;
    AddEventLocked(job, job.message);
  } else {
    AddEventLocked(job, fmt::format("{}; placing it again (an infrastructure loss does not use "
                                    "up max_retries)",
                                    what));
    job.state = JobState::kStarting;
    PlaceLocked(job);
  }
  StoreJobLocked(job, batch);
}

void ControlPlane::MarkUnhealthyLocked(CloudResource& resource, int64_t now,
                                       state::WriteBatch& batch) {
  const std::string name = resource.spec.name;
  int64_t silent_ms = now - std::max(resource.last_heartbeat_unix_ms, start_unix_ms_);
  resource.health = Health::kUnhealthy;
  InvalidateSnapshotLocked();
  resource.unhealthy_since_unix_ms = now;
  auto& losses = resource.recent_losses_unix_ms;
  losses.push_back(now);
  std::erase_if(losses, [&](int64_t at) { return now - at > options_.flap_window_ms; });
  counters_["resources_marked_unhealthy_total"] += 1;
  spdlog::warn("cloud resource {} is UNHEALTHY: no heartbeat for {} ms", name, silent_ms);
  std::string why = fmt::format("no heartbeat from {} for {:.1f} s", name, silent_ms / 1000.0);
  auto active = active_by_resource_.find(name);
  if (active == active_by_resource_.end()) return;
  std::vector<std::string> ids(active->second.begin(), active->second.end());
  for (const std::string& id : ids) {
    Job& job = jobs_.at(id);
    Attempt* attempt = job.current_attempt();
    if (attempt != nullptr && IsActive(*attempt) && attempt->cloud_resource == name) {
      LoseAttemptLocked(job, *attempt, why, batch);
    }
  }
}

void ControlPlane::MarkHealthyLocked(CloudResource& resource, int64_t now) {
  if (resource.health == Health::kHealthy) return;
  const auto& losses = resource.recent_losses_unix_ms;
  int recent = static_cast<int>(std::count_if(losses.begin(), losses.end(), [&](int64_t at) {
    return now - at <= options_.flap_window_ms;
  }));
  if (recent >= options_.flap_losses) {
    resource.probation_until_unix_ms = now + options_.flap_probation_ms;
    spdlog::warn(
        "cloud resource {} is back but lost contact {} times in {} s: no new work for {} s",
        resource.spec.name, recent, options_.flap_window_ms / 1000,
        options_.flap_probation_ms / 1000);
  }
  resource.health = Health::kHealthy;
  InvalidateSnapshotLocked();
}

bool ControlPlane::TrustedLocked(const CloudResource& resource) const {
  return resource.probation_until_unix_ms <= NowMs();
}

void ControlPlane::ApplyReportLocked(const std::string& resource, const AttemptReport& report,
                                     state::WriteBatch& batch) {
  auto it = jobs_.find(report.job_id);
  if (it == jobs_.end()) return;  // unknown: not in the assignments, so the operator stops it
  Job& job = it->second;
  if (report.attempt < 1 || report.attempt > static_cast<int>(job.attempts.size())) return;
  Attempt& attempt = job.attempts[report.attempt - 1];
  if (attempt.cloud_resource != resource || attempt.epoch != report.epoch) {
    counters_["stale_reports_ignored_total"] += 1;
    return;
  }
  if (!IsActive(attempt)) {
    // Already final: a repeated report changes nothing, and a late one for an attempt given
    // up as LOST is ignored (the job runs elsewhere; the operator is told to stop it).
    if (attempt.state == JobState::kLost) counters_["stale_reports_ignored_total"] += 1;
    return;
  }
  switch (report.state) {
    case JobState::kStarting:
    case JobState::kUnknown:
    case JobState::kLost:  // only the control plane decides that an attempt is lost
      return;
    case JobState::kRunning:
      if (attempt.state == JobState::kRunning) return;
      attempt.state = JobState::kRunning;
      attempt.started_unix_ms = report.started_unix_ms > 0 ? report.started_unix_ms : NowMs();
      job.state = JobState::kRunning;
      job.message =
          fmt::format("attempt {} running on {} ({})", attempt.number, resource, attempt.region);
      AddEventLocked(job, job.message);
      break;
    case JobState::kSucceeded:
    case JobState::kFailed:
    case JobState::kTerminated:
      if (attempt.started_unix_ms == 0) attempt.started_unix_ms = report.started_unix_ms;
      FinishAttemptLocked(job, attempt, report.state, report.exit_code, report.message,
                          report.ended_unix_ms);
      break;
  }
  StoreJobLocked(job, batch);
}

void ControlPlane::OperatorHeartbeat(const std::string& resource_name, OperatorReport report,
                                     HeartbeatDone done) {
  std::unique_lock lock(mu_);
  CloudResource* resource = FindResourceLocked(resource_name);
  if (resource == nullptr) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format(
        "cloud resource '{}' does not exist; create it first with `meridian cloud resource "
        "create`",
        resource_name)));
    return;
  }
  bool capacity_changed =
      resource->health != Health::kHealthy || resource->capacity.size() != report.capacity.size();
  for (size_t i = 0; !capacity_changed && i < report.capacity.size(); ++i) {
    const InstanceCapacity& had = resource->capacity[i];
    const InstanceCapacity& has = report.capacity[i];
    capacity_changed = !(had.type == has.type) || had.total_nodes != has.total_nodes ||
                       had.spot != has.spot || had.price_per_hour != has.price_per_hour;
  }
  if (resource->health != Health::kHealthy) {
    spdlog::info("cloud resource {} is HEALTHY (operator {})", resource_name, report.operator_id);
  }
  MarkHealthyLocked(*resource, NowMs());
  resource->last_heartbeat_unix_ms = NowMs();
  resource->operator_id = report.operator_id;
  resource->operator_version = report.version;
  if (capacity_changed) InvalidateSnapshotLocked();
  resource->capacity = std::move(report.capacity);
  resource->real_gpus = report.real_gpus;

  state::WriteBatch batch;
  for (const AttemptReport& attempt : report.attempts) {
    ApplyReportLocked(resource_name, attempt, batch);
  }
  if (capacity_changed || !batch.empty()) PlacePendingLocked(batch);
  api::HeartbeatAnswer result{options_.heartbeat_interval_ms, options_.heartbeat_timeout_ms,
                              AssignmentVersionLocked(resource_name)};
  if (batch.empty()) {
    Notifications wake;
    CollectNotificationsLocked(wake);
    lock.unlock();
    for (const auto& fire : wake) fire();
    done(result);
    return;
  }
  CommitLocked(std::move(batch), [done, result](Status) { done(result); });
}

std::string ControlPlane::AssignmentVersionLocked(const std::string& resource) const {
  auto it = assignment_versions_.find(resource);
  return fmt::format("{}.{}", start_unix_ms_, it == assignment_versions_.end() ? 0 : it->second);
}

api::AssignmentList ControlPlane::AssignmentsLocked(const std::string& resource_name) const {
  api::AssignmentList result;
  result.version = AssignmentVersionLocked(resource_name);
  result.cloud_resource = resource_name;
  auto resource = resources_.find(resource_name);
  auto active = active_by_resource_.find(resource_name);
  if (active != active_by_resource_.end()) {
    for (const std::string& id : active->second) {
      const Job& job = jobs_.at(id);
      const Attempt& attempt = job.attempts.back();
      api::Assignment& assignment = result.assignments.emplace_back();
      for (const NodeAllocation& node : attempt.nodes) {
        assignment.nodes.push_back({node.instance_type, node.count});
        if (resource == resources_.end()) continue;
        for (const InstanceCapacity& type : resource->second.capacity) {
          if (type.type.name == node.instance_type) assignment.gpus += type.type.gpu * node.count;
        }
      }
      assignment.job_id = job.id;
      assignment.job_name = job.config.name;
      assignment.attempt = attempt.number;
      assignment.epoch = attempt.epoch;
      assignment.entrypoint = job.config.entrypoint;
      assignment.env_vars = job.config.env_vars;
      assignment.package = job.package;
      assignment.timeout_s = job.config.timeout_s;
      assignment.terminate = attempt.terminate_requested;
    }
  }
  if (resource != resources_.end()) {
    result.region = resource->second.spec.region;
    result.object_storage = resource->second.spec.object_storage_bucket;
  }
  return result;
}

void ControlPlane::WatchAssignments(const std::string& resource_name,
                                    const std::string& seen_version, int64_t wait_ms,
                                    std::function<void(Result<api::AssignmentList>)> done) {
  std::unique_lock lock(mu_);
  if (FindResourceLocked(resource_name) == nullptr) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format("cloud resource '{}' does not exist", resource_name)));
    return;
  }
  auto answer = [this, resource_name, done] {
    std::unique_lock inner(mu_);
    api::AssignmentList result = AssignmentsLocked(resource_name);
    inner.unlock();
    done(result);
  };
  if (AssignmentVersionLocked(resource_name) != seen_version || wait_ms <= 0 ||
      !AddWaiterLocked(assignment_waiters_, resource_name, wait_ms, answer)) {
    api::AssignmentList result = AssignmentsLocked(resource_name);
    lock.unlock();
    done(result);
  }
}

void ControlPlane::AppendAttemptLog(const std::string& resource, const std::string& job_id,
                                    int attempt_number, int64_t epoch, int64_t offset,
                                    std::string data, JsonDone done) {
  std::unique_lock lock(mu_);
  auto it = jobs_.find(job_id);
  const Attempt* attempt = nullptr;
  if (it != jobs_.end() && attempt_number >= 1 &&
      attempt_number <= static_cast<int>(it->second.attempts.size())) {
    attempt = &it->second.attempts[attempt_number - 1];
  }
  if (attempt == nullptr || attempt->cloud_resource != resource || attempt->epoch != epoch) {
    counters_["stale_reports_ignored_total"] += 1;
    lock.unlock();
    done(absl::FailedPreconditionError(
        fmt::format("attempt {} of job {} is not assigned to {} with epoch {}", attempt_number,
                    job_id, resource, epoch)));
    return;
  }
  std::string stream = LogStream(job_id, attempt_number);
  if (offset + static_cast<int64_t>(data.size()) > options_.max_log_bytes_per_attempt) {
    needs_trim_.insert(stream);
  }
  counters_["log_bytes_received_total"] += static_cast<int64_t>(data.size());
  state::WriteBatch batch;
  batch.AppendLog(stream, offset, std::move(data));
  log_appends_[job_id] += 1;
  TouchJobLocked(job_id);
  CommitLocked(std::move(batch), [done](Status) { done(json{{"accepted", true}}); });
}

// ---------------------------------------------------------------------------------------
// Housekeeping

void ControlPlane::Tick() {
  std::unique_lock lock(mu_);
  int64_t now = NowMs();
  state::WriteBatch batch;
  bool probation_ended = false;
  for (auto& [name, resource] : resources_) {
    // A resource not heard from since this server started counts from the start, so work
    // assigned before a restart is not stranded on an operator that never comes back.
    int64_t heard = std::max(resource.last_heartbeat_unix_ms, start_unix_ms_);
    bool silent = now - heard > options_.heartbeat_timeout_ms;
    auto active = active_by_resource_.find(name);
    bool has_work = active != active_by_resource_.end() && !active->second.empty();
    if (silent && (resource.health == Health::kHealthy ||
                   (resource.health == Health::kUnknown && has_work))) {
      MarkUnhealthyLocked(resource, now, batch);
    }
    if (resource.probation_until_unix_ms != 0 && resource.probation_until_unix_ms <= now) {
      resource.probation_until_unix_ms = 0;
      InvalidateSnapshotLocked();
      probation_ended = resource.health == Health::kHealthy;
      spdlog::info("cloud resource {} has been healthy through its probation: trusted again",
                   name);
    }
  }
  // A starting timeout ran out (input_order): decide the queue again even with no new capacity.
  bool reconsider = reconsider_at_ms_ != 0 && reconsider_at_ms_ <= now;
  if (probation_ended || reconsider) PlacePendingLocked(batch);
  if (!batch.empty()) CommitLocked(std::move(batch), [](Status) {});
  int64_t monotonic = clock_->MonotonicMs();
  for (auto* waiters : {&job_waiters_, &assignment_waiters_}) {
    for (auto it = waiters->begin(); it != waiters->end();) {
      if (it->second.deadline_ms <= monotonic) {
        ready_.push_back(std::move(it->second.fire));
        it = waiters->erase(it);
      } else {
        ++it;
      }
    }
  }
  Notifications wake;
  CollectNotificationsLocked(wake);
  std::set<std::string> trim;
  trim.swap(needs_trim_);
  lock.unlock();
  for (const auto& fire : wake) fire();
  for (const std::string& stream : trim) {
    Status status = store_->TrimLog(stream, options_.max_log_bytes_per_attempt);
    if (!status.ok()) spdlog::warn("cannot trim log {}: {}", stream, status.ToString());
  }
}

void ControlPlane::AnswerAllWaiters() {
  std::unique_lock lock(mu_);
  for (auto* waiters : {&job_waiters_, &assignment_waiters_}) {
    for (auto& [key, waiter] : *waiters) ready_.push_back(std::move(waiter.fire));
    waiters->clear();
  }
  Notifications wake;
  CollectNotificationsLocked(wake);
  lock.unlock();
  for (const auto& fire : wake) fire();
}

std::string ControlPlane::MetricsText() {
  std::lock_guard lock(mu_);
  std::string out;
  std::map<std::string, int> jobs_by_state;
  for (const auto& [id, job] : jobs_) jobs_by_state[std::string(JobStateName(job.state))] += 1;
  out += "# HELP meridian_jobs Jobs by state.\n# TYPE meridian_jobs gauge\n";
  for (JobState state : {JobState::kStarting, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kTerminated, JobState::kUnknown}) {
    std::string name(JobStateName(state));
    out += fmt::format("meridian_jobs{{state=\"{}\"}} {}\n", name, jobs_by_state[name]);
  }
  out +=
      "# HELP meridian_jobs_pending Jobs waiting for capacity.\n"
      "# TYPE meridian_jobs_pending gauge\n";
  out += fmt::format("meridian_jobs_pending {}\n", pending_.size());
  out +=
      "# HELP meridian_cloud_resources Cloud resources by health.\n"
      "# TYPE meridian_cloud_resources gauge\n";
  for (const auto& [name, resource] : resources_) {
    out +=
        fmt::format("meridian_cloud_resource_healthy{{cloud_resource=\"{}\",region=\"{}\"}} {}\n",
                    name, resource.spec.region, resource.health == Health::kHealthy ? 1 : 0);
  }
  out += fmt::format("meridian_long_polls_waiting {}\n",
                     job_waiters_.size() + assignment_waiters_.size());
  for (const auto& [name, value] : counters_) {
    out += fmt::format("# TYPE meridian_{} counter\nmeridian_{} {}\n", name, name, value);
  }
  return out;
}

}  // namespace meridian::control
