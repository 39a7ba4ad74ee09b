#include "control/control_plane.h"

#include <algorithm>
#include <cstdlib>

#include "base/ids.h"
#include "control/control_plane_internal.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "spec/spec_json.h"

namespace meridian::control {

using nlohmann::json;

using internal::Dump;
using internal::IsActive;
using internal::kCloudKind;
using internal::kJobKind;
using internal::kResourceKind;

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
  InvalidateSnapshotLocked();
  }
  ASSIGN_OR_RETURN(auto quotas, store_->List(internal::kQuotaKind));
  for (const state::Record& record : quotas) {
    ASSIGN_OR_RETURN(Quota quota, QuotaFromJson(json::parse(record.body, nullptr, false)));
    quotas_[quota.id] = std::move(quota);
  }
  ASSIGN_OR_RETURN(auto compute_configs, store_->List(internal::kComputeConfigKind));
  for (const state::Record& record : compute_configs) {
    ASSIGN_OR_RETURN(NamedComputeConfig config,
                     FromStoredJson(json::parse(record.body, nullptr, false)));
    compute_configs_[config.name] = std::move(config);
  }
  ASSIGN_OR_RETURN(auto jobs, store_->List(kJobKind));
  std::vector<const Job*> waiting;
  for (const state::Record& record : jobs) {
    ASSIGN_OR_RETURN(Job job, JobFromJson(json::parse(record.body, nullptr, false)));
    for (const Attempt& attempt : job.attempts)
      next_epoch_ = std::max(next_epoch_, attempt.epoch + 1);
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
  std::sort(waiting.begin(), waiting.end(),
            [](const Job* a, const Job* b) { return a->created_unix_ms < b->created_unix_ms; });
  for (const Job* job : waiting) pending_.push_back(job->id);
  spdlog::info("loaded {} clouds, {} cloud resources, {} jobs ({} waiting for capacity)",
               clouds_.size(), resources_.size(), jobs_.size(), pending_.size());
  return OkStatus();
}

// ---------------------------------------------------------------------------------------
// Write path

void ControlPlane::CommitLocked(state::WriteBatch batch, std::function<void(Status)> done,
                                SubmitAudit* audit) {
  Notifications wake;
  wake.swap(ready_);
  auto committed = [done = std::move(done), wake = std::move(wake)](Status status) {
    if (!status.ok()) {
      // Memory already holds the write; serving on would show state that is not on disk.
      spdlog::critical(
          "state store write failed, exiting so a restart reloads durable state: {}",
          status.ToString());
      std::_Exit(70);
    }
    done(status);
    for (const auto& fire : wake) fire();
  };
  if (audit != nullptr && audit->log != nullptr) {
    audit->log->CommitWith(std::move(audit->entry), std::move(batch), std::move(committed));
  } else {
    store_->CommitAsync(std::move(batch), std::move(committed));
  }
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
    job.events.erase(job.events.begin(), job.events.begin() + (job.events.size() - kMaxJobEvents));
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

void ControlPlane::WakeLocked(std::multimap<std::string, Waiter>& waiters, const std::string& key) {
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
    done(absl::InvalidArgumentError(
        fmt::format("name: '{}' is not a valid cloud name (letters, digits, '_' and '-', 1 to 256 "
                    "characters)",
                    name)));
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
      done(absl::FailedPreconditionError(
          fmt::format("cloud '{}' still has cloud resource '{}'; delete its cloud resources first",
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
    done(absl::NotFoundError(
        fmt::format("cloud '{}' does not exist (create it with `meridian cloud create {}`)",
                    cloud_name, cloud_name)));
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
  InvalidateSnapshotLocked();
  active_by_resource_.erase(name);
  TouchResourceLocked(name);
  CommitLocked(std::move(batch), [done, result](Status) { done(result); });
}

}  // namespace meridian::control
