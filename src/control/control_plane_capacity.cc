// ControlPlane: the live capacity of every cloud resource, aggregated for `meridian capacity`.
#include "base/ids.h"
#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "fmt/format.h"
#include "spec/spec_json.h"

namespace meridian::control {

using nlohmann::json;

namespace {

struct Totals {
  int64_t nodes_total = 0;
  int64_t nodes_free = 0;
  int64_t gpus_total = 0;
  int64_t gpus_free = 0;
  double cpus_total = 0;
  double cpus_free = 0;

  void Add(const InstanceCapacity& type, int free_nodes, bool usable) {
    nodes_total += type.total_nodes;
    gpus_total += int64_t{type.type.gpu} * type.total_nodes;
    cpus_total += type.type.cpu * type.total_nodes;
    if (!usable) return;  // an unhealthy resource's free nodes cannot take work
    nodes_free += free_nodes;
    gpus_free += int64_t{type.type.gpu} * free_nodes;
    cpus_free += type.type.cpu * free_nodes;
  }
  json ToJson() const {
    return {{"nodes_total", nodes_total}, {"nodes_free", nodes_free},
            {"gpus_total", gpus_total},   {"gpus_free", gpus_free},
            {"cpus_total", cpus_total},   {"cpus_free", cpus_free}};
  }
};

}  // namespace

json ControlPlane::Capacity() {
  std::lock_guard lock(mu_);
  std::map<std::string, int> allocated_by_key;  // "<resource>/<type>" -> nodes
  for (const auto& [resource, ids] : active_by_resource_) {
    for (const std::string& id : ids) {
      const Attempt* attempt = jobs_.at(id).current_attempt();
      if (attempt == nullptr) continue;
      for (const NodeAllocation& node : attempt->nodes) {
        allocated_by_key[resource + "/" + node.instance_type] += node.count;
      }
    }
  }
  std::map<std::string, json> regions;  // region -> resources
  std::map<std::string, Totals> region_totals;
  std::map<std::string, Totals> accelerator_totals;
  Totals all;
  for (const auto& [name, resource] : resources_) {
    bool trusted = TrustedLocked(resource);
    bool usable = resource.health == Health::kHealthy && trusted;
    json types = json::array();
    for (const InstanceCapacity& type : resource.capacity) {
      auto allocated = allocated_by_key.find(name + "/" + type.type.name);
      int used = allocated == allocated_by_key.end() ? 0 : allocated->second;
      int free_nodes = std::max(0, type.total_nodes - used);
      json entry = spec::ToJson(type.type);
      entry["market_type"] = type.spot ? "SPOT" : "ON_DEMAND";
      if (type.price_per_hour > 0) entry["price_per_hour"] = type.price_per_hour;
      entry["total_nodes"] = type.total_nodes;
      entry["allocated_nodes"] = used;
      entry["free_nodes"] = free_nodes;
      types.push_back(std::move(entry));
      region_totals[resource.spec.region].Add(type, free_nodes, usable);
      all.Add(type, free_nodes, usable);
      if (type.type.gpu > 0) {
        std::string accelerator =
            type.type.accelerators.empty() ? "GPU" : type.type.accelerators.front();
        accelerator_totals[accelerator].Add(type, free_nodes, usable);
      }
    }
    json item = {{"name", name},
                 {"cloud", resource.cloud_name},
                 {"health", HealthName(resource.health)},
                 {"trusted", trusted},
                 {"instance_types", std::move(types)}};
    if (!trusted) item["probation_until"] = base::FormatTimeMs(resource.probation_until_unix_ms);
    regions[resource.spec.region].push_back(std::move(item));
  }
  json region_list = json::array();
  for (auto& [region, resources] : regions) {
    json entry = region_totals[region].ToJson();
    entry["region"] = region;
    entry["cloud_resources"] = std::move(resources);
    region_list.push_back(std::move(entry));
  }
  json accelerators = json::array();
  for (const auto& [name, totals] : accelerator_totals) {
    json entry = totals.ToJson();
    entry["accelerator"] = name;
    accelerators.push_back(std::move(entry));
  }
  json result = all.ToJson();
  result["regions"] = std::move(region_list);
  result["accelerators"] = std::move(accelerators);
  return result;
}

void ControlPlane::CreateQuota(Quota quota, JsonDone done) {
  std::unique_lock lock(mu_);
  if (!quota.cloud.empty() && FindCloudLocked(quota.cloud) == nullptr) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format("cloud '{}' does not exist", quota.cloud)));
    return;
  }
  for (const auto& [id, have] : quotas_) {
    if (have.cloud == quota.cloud && have.project == quota.project &&
        have.region == quota.region) {
      lock.unlock();
      done(absl::AlreadyExistsError(fmt::format(
          "quota {} already limits this scope; delete it first (`meridian quota delete {}`)", id,
          id)));
      return;
    }
  }
  quota.id = base::NewId("quota");
  quota.created_unix_ms = NowMs();
  state::WriteBatch batch;
  batch.Put(std::string(internal::kQuotaKind), quota.id, internal::Dump(ToJson(quota)), 0);
  json result = ToJson(quota);
  quotas_[quota.id] = std::move(quota);
  InvalidateSnapshotLocked();
  PlacePendingLocked(batch);  // a raised limit may let waiting jobs start
  CommitLocked(std::move(batch), [done, result](Status) { done(result); });
}

json ControlPlane::ListQuotas() {
  std::lock_guard lock(mu_);
  json items = json::array();
  for (const auto& [id, quota] : quotas_) {
    int64_t gpus = 0;
    double cpus = 0;
    int jobs = 0;
    for (const auto& [resource_name, ids] : active_by_resource_) {
      auto resource = resources_.find(resource_name);
      if (resource == resources_.end()) continue;
      if (!quota.cloud.empty() && resource->second.cloud_name != quota.cloud) continue;
      if (!quota.region.empty() && resource->second.spec.region != quota.region) continue;
      for (const std::string& job_id : ids) {
        const Job& job = jobs_.at(job_id);
        if (!quota.project.empty() && job.config.project != quota.project) continue;
        gpus += job.attempts.back().gpus;
        cpus += job.attempts.back().cpus;
        jobs += 1;
      }
    }
    json item = ToJson(quota);
    item["used_gpus"] = gpus;
    item["used_cpus"] = cpus;
    item["running_jobs"] = jobs;
    items.push_back(std::move(item));
  }
  return {{"items", std::move(items)}};
}

void ControlPlane::DeleteQuota(const std::string& id, JsonDone done) {
  std::unique_lock lock(mu_);
  auto it = quotas_.find(id);
  if (it == quotas_.end()) {
    lock.unlock();
    done(absl::NotFoundError(fmt::format("quota '{}' does not exist", id)));
    return;
  }
  quotas_.erase(it);
  state::WriteBatch batch;
  batch.Delete(std::string(internal::kQuotaKind), id);
  InvalidateSnapshotLocked();
  PlacePendingLocked(batch);
  CommitLocked(std::move(batch), [done, id](Status) { done(json{{"deleted", id}}); });
}

}  // namespace meridian::control
