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

}  // namespace meridian::control
