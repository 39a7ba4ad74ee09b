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

namespace {

scheduler::ResourceHealth SchedulerHealth(Health health) {
  switch (health) {
    case Health::kHealthy:
      return scheduler::ResourceHealth::kHealthy;
    case Health::kUnhealthy:
      return scheduler::ResourceHealth::kUnhealthy;
    case Health::kUnknown:
      break;
  }
  return scheduler::ResourceHealth::kUnknown;
}

}  // namespace

// The scheduler's view of the world: every resource's shapes with the nodes the control
// plane's own assignments take, and the quotas with what running work uses of them. Built
// once and kept while nothing changes; a placement updates it in place.
scheduler::Snapshot& ControlPlane::SnapshotLocked() {
  if (snapshot_.has_value()) return *snapshot_;
  std::map<std::string, std::map<std::pair<std::string, bool>, int>> allocated;
  for (const auto& [name, ids] : active_by_resource_) {
    for (const std::string& id : ids) {
      for (const NodeAllocation& node : jobs_.at(id).attempts.back().nodes) {
        allocated[name][{node.instance_type, node.spot}] += node.count;
      }
    }
  }
  std::vector<scheduler::ResourceState> states;
  states.reserve(resources_.size());
  for (const auto& [name, resource] : resources_) {
    scheduler::ResourceState state;
    state.name = name;
    state.cloud = resource.cloud_name;
    state.region = resource.spec.region;
    state.health = SchedulerHealth(resource.health);
    state.trusted = TrustedLocked(resource);
    for (const InstanceCapacity& type : resource.capacity) {
      scheduler::ShapeCapacity shape;
      shape.type = type.type;
      shape.market = type.spot ? scheduler::Market::kSpot : scheduler::Market::kOnDemand;
      shape.total_nodes = type.total_nodes;
      shape.allocated_nodes = allocated[name][{type.type.name, type.spot}];
      if (type.price_per_hour > 0) shape.price_per_hour = type.price_per_hour;
      state.shapes.push_back(std::move(shape));
    }
    states.push_back(std::move(state));
  }
  std::vector<scheduler::Quota> quotas;
  for (const auto& [id, quota] : quotas_) {
    quotas.push_back({quota.cloud, quota.project, quota.region, quota.max_gpus, quota.max_cpus,
                      quota.max_running_jobs});
  }
  Result<scheduler::Snapshot> built = scheduler::Snapshot::Build(std::move(states), quotas);
  if (!built.ok()) {
    // Reports are validated at the API, so this is a bug; place nothing rather than guess.
    spdlog::error("cannot build the placement snapshot: {}", built.status().ToString());
    built = scheduler::Snapshot::Build({}, {});
  }
  snapshot_ = *std::move(built);
  for (const auto& [name, ids] : active_by_resource_) {
    std::optional<size_t> index = snapshot_->Find(name);
    if (!index) continue;
    for (const std::string& id : ids) {
      const Job& job = jobs_.at(id);
      const Attempt& attempt = job.attempts.back();
      snapshot_->ChargeQuotas(*index, job.config.project, attempt.gpus, attempt.cpus);
    }
  }
  return *snapshot_;
}

void ControlPlane::InvalidateSnapshotLocked() { snapshot_.reset(); }

scheduler::Request ControlPlane::RequestForLocked(const Job& job) const {
  scheduler::Request request = scheduler::RequestFor(job.id, job.config, job.created_unix_ms);
  for (const auto& [index, since] : job.config_tries) request.config_tries.push_back({index, since});
  return request;
}

scheduler::Options ControlPlane::SchedulerOptionsLocked() const {
  scheduler::Options options;
  options.now_unix_ms = NowMs();
  return options;
}

// Starts `job`'s next attempt when the decision places it; otherwise records why it waits
// (or fails it as infeasible). `take`: the decision's nodes are not yet taken from the cached
// snapshot (a single Place; PlanQueue's snapshot already has them taken).
void ControlPlane::ApplyDecisionLocked(Job& job, const scheduler::Decision& decision, bool take) {
  if (decision.config_index >= 0) {
    bool known = false;
    for (const auto& [index, since] : job.config_tries) known |= index == decision.config_index;
    if (!known) job.config_tries.emplace_back(decision.config_index, NowMs());
  }
  if (decision.reconsider_at_unix_ms.has_value()) {
    reconsider_at_ms_ = reconsider_at_ms_ == 0
                            ? *decision.reconsider_at_unix_ms
                            : std::min(reconsider_at_ms_, *decision.reconsider_at_unix_ms);
  }
  job.why_pending.clear();
  switch (decision.outcome) {
    case scheduler::Outcome::kPlaced: {
      Attempt attempt;
      attempt.number = static_cast<int>(job.attempts.size()) + 1;
      attempt.state = JobState::kStarting;
      attempt.cloud_resource = decision.cloud_resource;
      attempt.region = decision.region;
      attempt.epoch = next_epoch_++;
      attempt.gpus = decision.gpus;
      attempt.cpus = decision.cpus;
      for (const scheduler::NodeAssignment& node : decision.nodes) {
        bool spot = node.market == scheduler::Market::kSpot;
        bool merged = false;
        for (NodeAllocation& have : attempt.nodes) {
          if (have.instance_type == node.instance_type && have.spot == spot) {
            have.count += node.count;
            merged = true;
          }
        }
        if (!merged) attempt.nodes.push_back({node.instance_type, node.count, spot});
        if (take && snapshot_.has_value()) {
          snapshot_->Allocate(decision.resource_index, node.shape_index, node.count);
        }
      }
      if (take && snapshot_.has_value()) {
        snapshot_->ChargeQuotas(decision.resource_index, job.config.project, decision.gpus,
                                decision.cpus);
      }
      attempt.placed_unix_ms = NowMs();
      job.attempts.push_back(std::move(attempt));
      job.state = JobState::kStarting;
      job.message = fmt::format("attempt {} {}", job.attempts.size(), decision.summary);
      AddEventLocked(job, job.message);
      active_by_resource_[decision.cloud_resource].insert(job.id);
      TouchResourceLocked(decision.cloud_resource);
      counters_["attempts_placed_total"] += 1;
      return;
    }
    case scheduler::Outcome::kPending: {
      for (const scheduler::WhyNot& why : decision.why) {
        job.why_pending.emplace_back(why.resource, why.reason);
      }
      if (decision.summary != job.message) AddEventLocked(job, decision.summary);
      job.message = decision.summary;
      return;
    }
    case scheduler::Outcome::kInfeasible: {
      for (const scheduler::WhyNot& why : decision.why) {
        job.why_pending.emplace_back(why.resource, why.reason);
      }
      job.state = JobState::kFailed;
      job.ended_unix_ms = NowMs();
      job.message = decision.summary;
      AddEventLocked(job, job.message);
      counters_["jobs_infeasible_total"] += 1;
      return;
    }
  }
}

// Places a job that is not queued (new, retried or moved): it runs now, or joins the queue.
void ControlPlane::PlaceLocked(Job& job) {
  // The cached snapshot keeps the nodes that waiting jobs hold (see PlanQueue), so a new job
  // backfills around them and never takes what a job ahead of it waits for.
  scheduler::Decision decision =
      scheduler::Place(RequestForLocked(job), SnapshotLocked(), SchedulerOptionsLocked());
  ApplyDecisionLocked(job, decision, /*take=*/true);
  if (decision.outcome == scheduler::Outcome::kPending) pending_.push_back(job.id);
}

// Walks the waiting jobs in queue order (priority, then submission) against one snapshot.
void ControlPlane::PlacePendingLocked(state::WriteBatch& batch) {
  if (pending_.empty()) return;
  std::vector<scheduler::Request> requests;
  std::vector<Job*> waiting;
  requests.reserve(pending_.size());
  for (const std::string& id : pending_) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || IsFinal(it->second.state)) continue;
    waiting.push_back(&it->second);
    requests.push_back(RequestForLocked(it->second));
  }
  pending_.clear();
  reconsider_at_ms_ = 0;
  scheduler::QueuePlan plan =
      scheduler::PlanQueue(requests, SnapshotLocked(), SchedulerOptionsLocked());
  // The plan's snapshot has its placements taken and the waiting jobs' holds: it is the
  // cache from now on.
  snapshot_ = std::move(plan.snapshot);
  for (const scheduler::QueueDecision& item : plan.decisions) {
    Job& job = *waiting[item.request_index];
    std::string before = job.message;
    ApplyDecisionLocked(job, item.decision, /*take=*/false);
    if (item.decision.outcome == scheduler::Outcome::kPending) pending_.push_back(job.id);
    if (job.message != before || IsFinal(job.state)) StoreJobLocked(job, batch);
  }
}

// ---------------------------------------------------------------------------------------
// Jobs

void ControlPlane::SubmitJob(spec::JobConfig config, std::string package, std::string owner,
                             JsonDone done, SubmitAudit audit) {
  std::unique_lock lock(mu_);
  if (jobs_.size() >= options_.max_jobs) {
    lock.unlock();
    done(absl::ResourceExhaustedError(
        fmt::format("the control plane holds its limit of {} jobs", options_.max_jobs)));
    return;
  }
  Job job;
  if (!config.compute_config.named.empty()) {
    Result<std::string> taken = ResolveComputeConfigLocked(config.compute_config);
    if (!taken.ok()) {
      lock.unlock();
      done(taken.status());
      return;
    }
    job.compute_config_ref = *std::move(taken);
  }
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
  audit.entry.result = "accepted";
  audit.entry.detail = fmt::format("id={}", it->first);
  CommitLocked(std::move(batch), [done, result](Status) { done(result); }, &audit);
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
