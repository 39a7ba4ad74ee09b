// ControlPlane: placement, jobs and their output.
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

// ---------------------------------------------------------------------------------------
// Placement

std::vector<ResourceView> ControlPlane::SnapshotLocked() const {
  std::vector<ResourceView> snapshot;
  snapshot.reserve(resources_.size());
  // Oldest first: "the first healthy resource where the job fits".
  for (const auto& [name, resource] : resources_) {
    ResourceView view;
    view.name = name;
    view.region = resource.spec.region;
    // A resource on probation after flapping takes no new work; jobs pinned to it wait.
    view.health = TrustedLocked(resource) ? resource.health : Health::kUnhealthy;
    view.capacity = resource.capacity;
    auto active = active_by_resource_.find(name);
    if (active != active_by_resource_.end()) {
      for (const std::string& id : active->second) {
        const Attempt* attempt = jobs_.at(id).current_attempt();
        for (const NodeAllocation& node : attempt->nodes) {
          view.allocated_nodes[node.instance_type] += node.count;
        }
      }
    }
    snapshot.push_back(std::move(view));
  }
  std::stable_sort(snapshot.begin(), snapshot.end(), [this](const auto& a, const auto& b) {
    return resources_.at(a.name).created_unix_ms < resources_.at(b.name).created_unix_ms;
  });
  return snapshot;
}

// Tries to start `job`'s next attempt. On success the attempt is active on its resource;
// otherwise the job's message says why it waits (or it has failed as infeasible).
void ControlPlane::PlaceLocked(Job& job) { PlaceLocked(job, SnapshotLocked()); }

void ControlPlane::PlaceLocked(Job& job, const std::vector<ResourceView>& snapshot) {
  PlacementDecision decision = PlaceJob(job.config, snapshot);
  switch (decision.kind) {
    case PlacementDecision::Kind::kPlaced: {
      Attempt attempt;
      attempt.number = static_cast<int>(job.attempts.size()) + 1;
      attempt.state = JobState::kStarting;
      attempt.cloud_resource = decision.cloud_resource;
      attempt.region = decision.region;
      attempt.epoch = next_epoch_++;
      attempt.nodes = decision.nodes;
      attempt.placed_unix_ms = NowMs();
      job.attempts.push_back(std::move(attempt));
      job.state = JobState::kStarting;
      job.message = fmt::format("attempt {} placed on {} ({})", job.attempts.size(),
                                decision.cloud_resource, decision.region);
      AddEventLocked(job, job.message);
      active_by_resource_[decision.cloud_resource].insert(job.id);
      TouchResourceLocked(decision.cloud_resource);
      counters_["attempts_placed_total"] += 1;
      return;
    }
    case PlacementDecision::Kind::kPending: {
      std::string message = fmt::format("waiting for capacity: {}", decision.reason);
      if (message != job.message) AddEventLocked(job, message);
      job.message = std::move(message);
      // Callers only place jobs that are not queued (new, retried, or just taken off the
      // queue), so this never duplicates an entry.
      pending_.push_back(job.id);
      return;
    }
    case PlacementDecision::Kind::kInfeasible: {
      job.state = JobState::kFailed;
      job.ended_unix_ms = NowMs();
      job.message = fmt::format("infeasible: {}", decision.reason);
      AddEventLocked(job, job.message);
      counters_["jobs_infeasible_total"] += 1;
      return;
    }
  }
}

// True when some healthy resource has at least one node free: only then can a pending job
// start, so a full pool costs one check per event instead of a pass over the whole queue.
bool ControlPlane::AnyFreeNode(const std::vector<ResourceView>& snapshot) {
  for (const ResourceView& view : snapshot) {
    if (view.health != Health::kHealthy) continue;
    for (const InstanceCapacity& type : view.capacity) {
      auto used = view.allocated_nodes.find(type.type.name);
      if (type.total_nodes > (used == view.allocated_nodes.end() ? 0 : used->second)) return true;
    }
  }
  return false;
}

void ControlPlane::PlacePendingLocked(state::WriteBatch& batch) {
  std::deque<std::string> waiting;
  waiting.swap(pending_);
  // One snapshot serves every job until a placement takes nodes from it.
  std::vector<ResourceView> snapshot = SnapshotLocked();
  while (!waiting.empty()) {
    if (!AnyFreeNode(snapshot)) {
      // Keep the rest waiting, in order, ahead of anything queued meanwhile.
      pending_.insert(pending_.begin(), waiting.begin(), waiting.end());
      return;
    }
    std::string id = std::move(waiting.front());
    waiting.pop_front();
    auto it = jobs_.find(id);
    if (it == jobs_.end() || IsFinal(it->second.state)) continue;
    Job& job = it->second;
    std::string before = job.message;
    size_t attempts_before = job.attempts.size();
    PlaceLocked(job, snapshot);
    if (job.attempts.size() != attempts_before) snapshot = SnapshotLocked();
    if (job.message != before || IsFinal(job.state)) StoreJobLocked(job, batch);
  }
}

// ---------------------------------------------------------------------------------------
// Jobs

void ControlPlane::SubmitJob(spec::JobConfig config, std::string package, std::string owner,
                             JsonDone done) {
  std::unique_lock lock(mu_);
  if (jobs_.size() >= options_.max_jobs) {
    lock.unlock();
    done(absl::ResourceExhaustedError(
        fmt::format("the control plane holds its limit of {} jobs", options_.max_jobs)));
    return;
  }
  Job job;
  job.id = base::NewId("job");
  job.config = std::move(config);
  if (job.config.name.empty()) job.config.name = job.id;
  job.package = std::move(package);
  job.owner = std::move(owner);
  job.created_unix_ms = NowMs();
  AddEventLocked(job, "submitted");
  PlaceLocked(job);
  state::WriteBatch batch;
  auto [it, inserted] = jobs_.emplace(job.id, std::move(job));
  StoreJobLocked(it->second, batch);
  json result = ToJson(it->second);
  counters_["jobs_submitted_total"] += 1;
  CommitLocked(std::move(batch), [done, result](Status) { done(result); });
}

json ControlPlane::ListJobs(const JobFilter& filter) {
  std::lock_guard lock(mu_);
  std::vector<const Job*> matching;
  for (const auto& [id, job] : jobs_) {
    if (filter.state.has_value() && job.state != *filter.state) continue;
    if (!filter.cloud_resource.empty()) {
      const Attempt* attempt = job.current_attempt();
      if (attempt == nullptr || attempt->cloud_resource != filter.cloud_resource) continue;
    }
    matching.push_back(&job);
  }
  std::sort(matching.begin(), matching.end(), [](const Job* a, const Job* b) {
    return a->created_unix_ms != b->created_unix_ms ? a->created_unix_ms > b->created_unix_ms
                                                    : a->id > b->id;
  });
  json items = json::array();
  for (size_t i = 0; i < matching.size() && i < filter.limit; ++i) {
    const Job& job = *matching[i];
    const Attempt* attempt = job.current_attempt();
    items.push_back({{"id", job.id},
                     {"name", job.config.name},
                     {"state", JobStateName(job.state)},
                     {"message", job.message},
                     {"owner", job.owner},
                     {"attempts", job.attempts.size()},
                     {"cloud_resource", attempt != nullptr ? attempt->cloud_resource : ""},
                     {"region", attempt != nullptr ? attempt->region : ""},
                     {"created_at", base::FormatTimeMs(job.created_unix_ms)},
                     {"ended_at", base::FormatTimeMs(job.ended_unix_ms)}});
  }
  return {{"items", std::move(items)}, {"total", matching.size()}};
}

Result<json> ControlPlane::GetJob(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return internal::JobNotFound(id);
  return ToJson(it->second);
}

void ControlPlane::WaitJob(const std::string& id, int64_t seen_version, int64_t wait_ms,
                           JsonDone done) {
  std::unique_lock lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    lock.unlock();
    done(internal::JobNotFound(id));
    return;
  }
  if (it->second.version != seen_version || wait_ms <= 0 ||
      !AddWaiterLocked(job_waiters_, id, wait_ms, [this, id, done] { done(GetJob(id)); })) {
    json result = ToJson(it->second);
    lock.unlock();
    done(result);
  }
}

void ControlPlane::TerminateJob(const std::string& id, JsonDone done) {
  std::unique_lock lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    lock.unlock();
    done(internal::JobNotFound(id));
    return;
  }
  Job& job = it->second;
  if (IsFinal(job.state)) {
    json result = ToJson(job);
    lock.unlock();
    done(result);  // terminating an ended job changes nothing
    return;
  }
  state::WriteBatch batch;
  job.terminate_requested = true;
  Attempt* attempt = job.current_attempt();
  if (attempt != nullptr && IsActive(*attempt)) {
    attempt->terminate_requested = true;
    AddEventLocked(job, fmt::format("terminate requested; stopping attempt {} on {}",
                                    attempt->number, attempt->cloud_resource));
    TouchResourceLocked(attempt->cloud_resource);
  } else {
    job.state = JobState::kTerminated;
    job.ended_unix_ms = NowMs();
    job.message = "terminated before it started";
    AddEventLocked(job, job.message);
    pending_.erase(std::remove(pending_.begin(), pending_.end(), id), pending_.end());
  }
  StoreJobLocked(job, batch);
  json result = ToJson(job);
  CommitLocked(std::move(batch), [done, result](Status) { done(result); });
}

void ControlPlane::ReadLog(const std::string& job_id, int attempt_number, int64_t offset,
                           int64_t max_bytes, int64_t wait_ms, LogDone done) {
  std::unique_lock lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    lock.unlock();
    done(internal::JobNotFound(job_id));
    return;
  }
  const Job& job = it->second;
  if (job.attempts.empty()) {
    // Nothing has run yet: wait for the first attempt to appear.
    if (IsFinal(job.state) || wait_ms <= 0 ||
        !AddWaiterLocked(job_waiters_, job_id, wait_ms, [=, this] {
          ReadLog(job_id, attempt_number, offset, max_bytes, 0, done);
        })) {
      lock.unlock();
      done(LogResult{0, {}, IsFinal(job.state)});
    }
    return;
  }
  if (attempt_number <= 0) attempt_number = static_cast<int>(job.attempts.size());
  if (attempt_number > static_cast<int>(job.attempts.size())) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format("job '{}' has no attempt {} (it has {})", job_id,
                                         attempt_number, job.attempts.size())));
    return;
  }
  bool ended = IsFinal(job.attempts[attempt_number - 1].state);
  int64_t appends_seen = log_appends_[job_id];
  lock.unlock();

  Result<state::LogRead> read = store_->ReadLog(LogStream(job_id, attempt_number), offset,
                                                std::clamp<int64_t>(max_bytes, 1, 4 << 20));
  if (!read.ok()) {
    done(read.status());
    return;
  }
  if (read->data.empty() && !ended && wait_ms > 0) {
    lock.lock();
    // An append that landed while the lock was released would not wake us: look again.
    bool changed = log_appends_[job_id] != appends_seen;
    bool waiting = !changed && AddWaiterLocked(job_waiters_, job_id, wait_ms, [=, this] {
      ReadLog(job_id, attempt_number, offset, max_bytes, 0, done);
    });
    lock.unlock();
    if (waiting) return;
    if (changed) {
      ReadLog(job_id, attempt_number, offset, max_bytes, wait_ms, std::move(done));
      return;
    }
  }
  bool complete = false;
  if (ended) {
    Result<int64_t> end = store_->LogEnd(LogStream(job_id, attempt_number));
    complete = end.ok() && read->next_offset >= *end;
  }
  done(LogResult{attempt_number, *std::move(read), complete});
}

}  // namespace meridian::control
