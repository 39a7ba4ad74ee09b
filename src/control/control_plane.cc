#include "control/control_plane.h"

#include <algorithm>
#include <cstdlib>

#include "base/ids.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "spec/spec_json.h"

namespace meridian::control {

using nlohmann::json;

namespace {

constexpr std::string_view kCloudKind = "cloud";
constexpr std::string_view kResourceKind = "cloud_resource";
constexpr std::string_view kJobKind = "job";

std::string LogStream(const std::string& job_id, int attempt) {
  return fmt::format("job/{}/{}", job_id, attempt);
}

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool IsActive(const Attempt& attempt) { return !IsFinal(attempt.state); }

}  // namespace

ControlPlane::ControlPlane(state::StateStore* store, ControlPlaneOptions options)
    : store_(store),
      options_(options),
      clock_(options.clock != nullptr ? options.clock : base::SystemClock::Get()),
      start_unix_ms_(clock_->NowUnixMs()) {}

ControlPlane::~ControlPlane() = default;

Result<std::unique_ptr<ControlPlane>> ControlPlane::Open(state::StateStore* store,
                                                         ControlPlaneOptions options) {
  std::unique_ptr<ControlPlane> plane(new ControlPlane(store, options));
  RETURN_IF_ERROR(plane->Load());
  return plane;
}

Status ControlPlane::Load() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(auto clouds, store_->List(kCloudKind));
  for (const state::Record& record : clouds) {
    ASSIGN_OR_RETURN(Cloud cloud, CloudFromJson(json::parse(record.body, nullptr, false)));
    clouds_[cloud.id] = std::move(cloud);
  }
  ASSIGN_OR_RETURN(auto resources, store_->List(kResourceKind));
  for (const state::Record& record : resources) {
    ASSIGN_OR_RETURN(CloudResource resource,
                     CloudResourceFromJson(json::parse(record.body, nullptr, false)));
    resources_[resource.spec.name] = std::move(resource);
  }
  ASSIGN_OR_RETURN(auto jobs, store_->List(kJobKind));
  std::vector<const Job*> waiting;
  for (const state::Record& record : jobs) {
    ASSIGN_OR_RETURN(Job job, JobFromJson(json::parse(record.body, nullptr, false)));
    for (const Attempt& attempt : job.attempts) next_epoch_ = std::max(next_epoch_, attempt.epoch + 1);
    auto [it, inserted] = jobs_.emplace(job.id, std::move(job));
    const Job& stored = it->second;
    const Attempt* attempt = stored.current_attempt();
    if (IsFinal(stored.state)) continue;
    if (attempt != nullptr && IsActive(*attempt)) {
      active_by_resource_[attempt->cloud_resource].insert(stored.id);
    } else {
      waiting.push_back(&stored);
    }
  }
  std::sort(waiting.begin(), waiting.end(), [](const Job* a, const Job* b) {
    return a->created_unix_ms < b->created_unix_ms;
  });
  for (const Job* job : waiting) pending_.push_back(job->id);
  spdlog::info("loaded {} clouds, {} cloud resources, {} jobs ({} waiting for capacity)",
               clouds_.size(), resources_.size(), jobs_.size(), pending_.size());
  return OkStatus();
}

// ---------------------------------------------------------------------------------------
// Write path

void ControlPlane::CommitLocked(state::WriteBatch batch, std::function<void(Status)> done) {
  Notifications wake;
  wake.swap(ready_);
  store_->CommitAsync(std::move(batch), [done = std::move(done),
                                         wake = std::move(wake)](Status status) {
    if (!status.ok()) {
      // Memory already holds the write; serving on would show state that is not on disk.
      spdlog::critical("state store write failed, exiting so a restart reloads durable "
                       "state: {}", status.ToString());
      std::_Exit(70);
    }
    done(status);
    for (const auto& fire : wake) fire();
  });
}

void ControlPlane::StoreJobLocked(Job& job, state::WriteBatch& batch) {
  job.version += 1;
  job.updated_unix_ms = NowMs();
  batch.Put(std::string(kJobKind), job.id, Dump(ToJson(job)));
  TouchJobLocked(job.id);
}

void ControlPlane::AddEventLocked(Job& job, std::string message) {
  job.events.push_back({NowMs(), std::move(message)});
  if (job.events.size() > kMaxJobEvents) {
    job.events.erase(job.events.begin(),
                     job.events.begin() + (job.events.size() - kMaxJobEvents));
  }
}

void ControlPlane::TouchJobLocked(const std::string& job_id) { WakeLocked(job_waiters_, job_id); }

void ControlPlane::TouchResourceLocked(const std::string& resource) {
  assignment_versions_[resource] += 1;
  WakeLocked(assignment_waiters_, resource);
}

bool ControlPlane::AddWaiterLocked(std::multimap<std::string, Waiter>& waiters,
                                   const std::string& key, int64_t wait_ms,
                                   std::function<void()> fire) {
  if (job_waiters_.size() + assignment_waiters_.size() >= options_.max_waiters) return false;
  wait_ms = std::clamp<int64_t>(wait_ms, 0, options_.max_wait_ms);
  waiters.emplace(key, Waiter{clock_->MonotonicMs() + wait_ms, std::move(fire)});
  return true;
}

void ControlPlane::WakeLocked(std::multimap<std::string, Waiter>& waiters,
                              const std::string& key) {
  auto [begin, end] = waiters.equal_range(key);
  for (auto it = begin; it != end; ++it) ready_.push_back(std::move(it->second.fire));
  waiters.erase(begin, end);
}

void ControlPlane::CollectNotificationsLocked(Notifications& out) {
  out.insert(out.end(), std::make_move_iterator(ready_.begin()),
             std::make_move_iterator(ready_.end()));
  ready_.clear();
}

// ---------------------------------------------------------------------------------------
// Clouds

Cloud* ControlPlane::FindCloudLocked(const std::string& name_or_id) {
  auto by_id = clouds_.find(name_or_id);
  if (by_id != clouds_.end()) return &by_id->second;
  for (auto& [id, cloud] : clouds_) {
    if (cloud.name == name_or_id) return &cloud;
  }
  return nullptr;
}

void ControlPlane::CreateCloud(std::string name, JsonDone done) {
  std::unique_lock lock(mu_);
  static const std::string kAllowed =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
  if (name.empty() || name.size() > 256 || name.find_first_not_of(kAllowed) != std::string::npos) {
    lock.unlock();
    done(absl::InvalidArgumentError(fmt::format(
        "name: '{}' is not a valid cloud name (letters, digits, '_' and '-', 1 to 256 "
        "characters)", name)));
    return;
  }
  if (FindCloudLocked(name) != nullptr) {
    lock.unlock();
    done(absl::AlreadyExistsError(fmt::format("a cloud named '{}' already exists", name)));
    return;
  }
  Cloud cloud{base::NewId("cld"), name, NowMs()};
  clouds_[cloud.id] = cloud;
  json result = ToJson(cloud);
  state::WriteBatch batch;
  batch.Put(std::string(kCloudKind), cloud.id, Dump(result));
  counters_["clouds_created_total"] += 1;
  CommitLocked(std::move(batch), [done, result](Status) { done(result); });
}

json ControlPlane::ListClouds() {
  std::lock_guard lock(mu_);
  json items = json::array();
  for (const auto& [id, cloud] : clouds_) {
    json item = ToJson(cloud);
    int count = 0;
    for (const auto& [name, resource] : resources_) count += resource.cloud_id == id;
    item["cloud_resources"] = count;
    items.push_back(std::move(item));
  }
  return {{"items", std::move(items)}};
}

Result<json> ControlPlane::GetCloud(const std::string& name_or_id) {
  std::lock_guard lock(mu_);
  Cloud* cloud = FindCloudLocked(name_or_id);
  if (cloud == nullptr) {
    return absl::NotFoundError(fmt::format("cloud '{}' does not exist", name_or_id));
  }
  json item = ToJson(*cloud);
  json names = json::array();
  for (const auto& [name, resource] : resources_) {
    if (resource.cloud_id == cloud->id) names.push_back(name);
  }
  item["cloud_resources"] = std::move(names);
  return item;
}

void ControlPlane::DeleteCloud(const std::string& name_or_id, JsonDone done) {
  std::unique_lock lock(mu_);
  Cloud* cloud = FindCloudLocked(name_or_id);
  if (cloud == nullptr) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format("cloud '{}' does not exist", name_or_id)));
    return;
  }
  for (const auto& [name, resource] : resources_) {
    if (resource.cloud_id == cloud->id) {
      lock.unlock();
      done(absl::FailedPreconditionError(fmt::format(
          "cloud '{}' still has cloud resource '{}'; delete its cloud resources first",
          name_or_id, name)));
      return;
    }
  }
  json result = ToJson(*cloud);
  state::WriteBatch batch;
  batch.Delete(std::string(kCloudKind), cloud->id);
  clouds_.erase(cloud->id);
  CommitLocked(std::move(batch), [done, result](Status) { done(result); });
}

// ---------------------------------------------------------------------------------------
// Cloud resources

CloudResource* ControlPlane::FindResourceLocked(const std::string& name_or_id) {
  auto by_name = resources_.find(name_or_id);
  if (by_name != resources_.end()) return &by_name->second;
  for (auto& [name, resource] : resources_) {
    if (resource.id == name_or_id) return &resource;
  }
  return nullptr;
}

void ControlPlane::CreateResource(const std::string& cloud_name, spec::CloudResourceSpec spec,
                                  JsonDone done) {
  std::unique_lock lock(mu_);
  Cloud* cloud = FindCloudLocked(cloud_name);
  if (cloud == nullptr) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format(
        "cloud '{}' does not exist (create it with `meridian cloud create {}`)", cloud_name,
        cloud_name)));
    return;
  }
  if (resources_.count(spec.name) > 0) {
    lock.unlock();
    done(absl::AlreadyExistsError(
        fmt::format("a cloud resource named '{}' already exists", spec.name)));
    return;
  }
  CloudResource resource;
  resource.id = base::NewId("cldrsrc");
  resource.cloud_id = cloud->id;
  resource.cloud_name = cloud->name;
  resource.spec = std::move(spec);
  resource.created_unix_ms = NowMs();
  json result = ToJson(resource);
  state::WriteBatch batch;
  batch.Put(std::string(kResourceKind), resource.id, Dump(result));
  resources_[resource.spec.name] = std::move(resource);
  // A pinned job may have been waiting for exactly this resource.
  PlacePendingLocked(batch);
  CommitLocked(std::move(batch), [done, result](Status) { done(result); });
}

Result<json> ControlPlane::ListResources(const std::string& cloud_name) {
  std::lock_guard lock(mu_);
  std::string cloud_id;
  if (!cloud_name.empty()) {
    Cloud* cloud = FindCloudLocked(cloud_name);
    if (cloud == nullptr) {
      return absl::NotFoundError(fmt::format("cloud '{}' does not exist", cloud_name));
    }
    cloud_id = cloud->id;
  }
  json items = json::array();
  for (const auto& [name, resource] : resources_) {
    if (!cloud_id.empty() && resource.cloud_id != cloud_id) continue;
    json item = ToJson(resource);
    auto active = active_by_resource_.find(name);
    item["active_jobs"] = active == active_by_resource_.end() ? 0 : active->second.size();
    items.push_back(std::move(item));
  }
  return json{{"items", std::move(items)}};
}

Result<json> ControlPlane::GetResource(const std::string& name_or_id) {
  std::lock_guard lock(mu_);
  CloudResource* resource = FindResourceLocked(name_or_id);
  if (resource == nullptr) {
    return absl::NotFoundError(fmt::format("cloud resource '{}' does not exist", name_or_id));
  }
  json item = ToJson(*resource);
  auto active = active_by_resource_.find(resource->spec.name);
  json jobs = json::array();
  if (active != active_by_resource_.end()) {
    for (const std::string& id : active->second) jobs.push_back(id);
  }
  item["active_jobs"] = std::move(jobs);
  return item;
}

void ControlPlane::DeleteResource(const std::string& name_or_id, JsonDone done) {
  std::unique_lock lock(mu_);
  CloudResource* resource = FindResourceLocked(name_or_id);
  if (resource == nullptr) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format("cloud resource '{}' does not exist", name_or_id)));
    return;
  }
  auto active = active_by_resource_.find(resource->spec.name);
  if (active != active_by_resource_.end() && !active->second.empty()) {
    lock.unlock();
    done(absl::FailedPreconditionError(fmt::format(
        "cloud resource '{}' has {} running workload(s) (for example job {}); terminate them "
        "or wait for them to end",
        name_or_id, active->second.size(), *active->second.begin())));
    return;
  }
  json result = ToJson(*resource);
  std::string name = resource->spec.name;
  state::WriteBatch batch;
  batch.Delete(std::string(kResourceKind), resource->id);
  resources_.erase(name);
  active_by_resource_.erase(name);
  TouchResourceLocked(name);
  CommitLocked(std::move(batch), [done, result](Status) { done(result); });
}

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
    view.health = resource.health;
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
void ControlPlane::PlaceLocked(Job& job) {
  PlacementDecision decision = PlaceJob(job.config, SnapshotLocked());
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
bool ControlPlane::AnyFreeNodeLocked() const {
  for (const ResourceView& view : SnapshotLocked()) {
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
  while (!waiting.empty()) {
    if (!AnyFreeNodeLocked()) {
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
    PlaceLocked(job);
    if (job.message != before || IsFinal(job.state)) StoreJobLocked(job, batch);
  }
}

// ---------------------------------------------------------------------------------------
// Jobs

void ControlPlane::SubmitJob(spec::JobConfig config, std::string package, JsonDone done) {
  std::unique_lock lock(mu_);
  if (jobs_.size() >= options_.max_jobs) {
    lock.unlock();
    done(absl::ResourceExhaustedError(fmt::format(
        "the control plane holds its limit of {} jobs", options_.max_jobs)));
    return;
  }
  Job job;
  job.id = base::NewId("job");
  job.config = std::move(config);
  if (job.config.name.empty()) job.config.name = job.id;
  job.package = std::move(package);
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
  if (it == jobs_.end()) return absl::NotFoundError(fmt::format("job '{}' does not exist", id));
  return ToJson(it->second);
}

void ControlPlane::WaitJob(const std::string& id, int64_t seen_version, int64_t wait_ms,
                           JsonDone done) {
  std::unique_lock lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format("job '{}' does not exist", id)));
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
    done(absl::NotFoundError(fmt::format("job '{}' does not exist", id)));
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
    done(absl::NotFoundError(fmt::format("job '{}' does not exist", job_id)));
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

// ---------------------------------------------------------------------------------------
// Operators

void ControlPlane::FinishAttemptLocked(Job& job, Attempt& attempt, JobState state,
                                       int exit_code, std::string message, int64_t ended_ms) {
  attempt.state = state;
  attempt.exit_code = exit_code;
  attempt.message = std::move(message);
  attempt.ended_unix_ms = ended_ms > 0 ? ended_ms : NowMs();
  active_by_resource_[attempt.cloud_resource].erase(job.id);
  TouchResourceLocked(attempt.cloud_resource);
  counters_[fmt::format("attempts_{}_total", JobStateName(state))] += 1;
  std::string outcome = state == JobState::kSucceeded    ? "succeeded"
                        : state == JobState::kTerminated ? "was terminated"
                                                         : "failed";
  std::string what = fmt::format("attempt {} on {} {}", attempt.number, attempt.cloud_resource,
                                 outcome);
  if (!attempt.message.empty()) what += ": " + attempt.message;
  if (state == JobState::kSucceeded) {
    job.state = JobState::kSucceeded;
    job.message = what;
  } else if (job.terminate_requested) {
    job.state = JobState::kTerminated;
    job.message = fmt::format("terminated by request ({})", what);
  } else if (static_cast<int>(job.attempts.size()) <= job.config.max_retries) {
    AddEventLocked(job, fmt::format("{}; retrying ({} of {} retries used)", what,
                                    job.attempts.size(), job.config.max_retries));
    PlaceLocked(job);
    return;
  } else {
    job.state = JobState::kFailed;
    job.message = job.config.max_retries > 0
                      ? fmt::format("{}; no retries left (max_retries {})", what,
                                    job.config.max_retries)
                      : what;
  }
  job.ended_unix_ms = attempt.ended_unix_ms;
  AddEventLocked(job, job.message);
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
  if (!IsActive(attempt)) return;  // already final: a repeated report changes nothing
  switch (report.state) {
    case JobState::kStarting:
    case JobState::kUnknown:
      return;
    case JobState::kRunning:
      if (attempt.state == JobState::kRunning) return;
      attempt.state = JobState::kRunning;
      attempt.started_unix_ms = report.started_unix_ms > 0 ? report.started_unix_ms : NowMs();
      job.state = JobState::kRunning;
      job.message = fmt::format("attempt {} running on {} ({})", attempt.number, resource,
                                attempt.region);
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
                                     JsonDone done) {
  std::unique_lock lock(mu_);
  CloudResource* resource = FindResourceLocked(resource_name);
  if (resource == nullptr) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format(
        "cloud resource '{}' does not exist; create it first with `meridian cloud resource "
        "create`", resource_name)));
    return;
  }
  bool capacity_changed = resource->health != Health::kHealthy ||
                          resource->capacity.size() != report.capacity.size();
  for (size_t i = 0; !capacity_changed && i < report.capacity.size(); ++i) {
    capacity_changed = resource->capacity[i].type.name != report.capacity[i].type.name ||
                       resource->capacity[i].total_nodes != report.capacity[i].total_nodes;
  }
  if (resource->health != Health::kHealthy) {
    spdlog::info("cloud resource {} is HEALTHY (operator {})", resource_name,
                 report.operator_id);
  }
  resource->health = Health::kHealthy;
  resource->last_heartbeat_unix_ms = NowMs();
  resource->operator_id = report.operator_id;
  resource->operator_version = report.version;
  resource->capacity = std::move(report.capacity);
  resource->real_gpus = report.real_gpus;

  state::WriteBatch batch;
  for (const AttemptReport& attempt : report.attempts) {
    ApplyReportLocked(resource_name, attempt, batch);
  }
  if (capacity_changed || !batch.empty()) PlacePendingLocked(batch);
  json result = {{"heartbeat_interval_ms", options_.heartbeat_interval_ms},
                 {"heartbeat_timeout_ms", options_.heartbeat_timeout_ms},
                 {"assignments_version", AssignmentVersionLocked(resource_name)}};
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

json ControlPlane::AssignmentsLocked(const std::string& resource_name) const {
  json assignments = json::array();
  auto resource = resources_.find(resource_name);
  auto active = active_by_resource_.find(resource_name);
  if (active != active_by_resource_.end()) {
    for (const std::string& id : active->second) {
      const Job& job = jobs_.at(id);
      const Attempt& attempt = job.attempts.back();
      int gpus = 0;
      json nodes = json::array();
      for (const NodeAllocation& node : attempt.nodes) {
        nodes.push_back({{"instance_type", node.instance_type}, {"count", node.count}});
        if (resource == resources_.end()) continue;
        for (const InstanceCapacity& type : resource->second.capacity) {
          if (type.type.name == node.instance_type) gpus += type.type.gpu * node.count;
        }
      }
      assignments.push_back({{"job_id", job.id},
                             {"job_name", job.config.name},
                             {"attempt", attempt.number},
                             {"epoch", attempt.epoch},
                             {"entrypoint", job.config.entrypoint},
                             {"env_vars", job.config.env_vars},
                             {"package", job.package},
                             {"timeout_s", job.config.timeout_s},
                             {"nodes", std::move(nodes)},
                             {"gpus", gpus},
                             {"terminate", attempt.terminate_requested}});
    }
  }
  json result = {{"version", AssignmentVersionLocked(resource_name)},
                 {"cloud_resource", resource_name},
                 {"assignments", std::move(assignments)}};
  if (resource != resources_.end()) {
    result["region"] = resource->second.spec.region;
    result["object_storage"] = resource->second.spec.object_storage_bucket;
  }
  return result;
}

void ControlPlane::WatchAssignments(const std::string& resource_name,
                                    const std::string& seen_version, int64_t wait_ms,
                                    JsonDone done) {
  std::unique_lock lock(mu_);
  if (FindResourceLocked(resource_name) == nullptr) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format("cloud resource '{}' does not exist", resource_name)));
    return;
  }
  auto answer = [this, resource_name, done] {
    std::unique_lock inner(mu_);
    json result = AssignmentsLocked(resource_name);
    inner.unlock();
    done(result);
  };
  if (AssignmentVersionLocked(resource_name) != seen_version || wait_ms <= 0 ||
      !AddWaiterLocked(assignment_waiters_, resource_name, wait_ms, answer)) {
    json result = AssignmentsLocked(resource_name);
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
    done(absl::FailedPreconditionError(fmt::format(
        "attempt {} of job {} is not assigned to {} with epoch {}", attempt_number, job_id,
        resource, epoch)));
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
  for (auto& [name, resource] : resources_) {
    if (resource.health == Health::kHealthy &&
        now - resource.last_heartbeat_unix_ms > options_.heartbeat_timeout_ms) {
      resource.health = Health::kUnhealthy;
      counters_["resources_marked_unhealthy_total"] += 1;
      spdlog::warn("cloud resource {} is UNHEALTHY: no heartbeat for {} ms", name,
                   now - resource.last_heartbeat_unix_ms);
    }
  }
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
  out += "# HELP meridian_jobs_pending Jobs waiting for capacity.\n"
         "# TYPE meridian_jobs_pending gauge\n";
  out += fmt::format("meridian_jobs_pending {}\n", pending_.size());
  out += "# HELP meridian_cloud_resources Cloud resources by health.\n"
         "# TYPE meridian_cloud_resources gauge\n";
  for (const auto& [name, resource] : resources_) {
    out += fmt::format("meridian_cloud_resource_healthy{{cloud_resource=\"{}\",region=\"{}\"}} {}\n",
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
