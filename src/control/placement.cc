#include "control/placement.h"

#include <algorithm>

#include "fmt/format.h"

namespace meridian::control {
namespace {

const InstanceCapacity* FindType(const ResourceView& resource, const std::string& name) {
  for (const InstanceCapacity& item : resource.capacity) {
    if (item.type.name == name) return &item;
  }
  return nullptr;
}

const InstanceCapacity* DefaultHeadType(const ResourceView& resource) {
  const InstanceCapacity* best = nullptr;
  auto smaller = [](const InstanceCapacity& a, const InstanceCapacity& b) {
    if ((a.type.gpu == 0) != (b.type.gpu == 0)) return a.type.gpu == 0;
    if (a.type.cpu != b.type.cpu) return a.type.cpu < b.type.cpu;
    return a.type.memory_bytes < b.type.memory_bytes;
  };
  for (const InstanceCapacity& item : resource.capacity) {
    if (item.total_nodes <= 0) continue;
    if (best == nullptr || smaller(item, *best)) best = &item;
  }
  return best;
}

struct Fit {
  bool ever = false;  // could fit when the resource is empty
  bool now = false;   // fits in what is free now
  std::vector<NodeAllocation> nodes;
  std::string reason;
};

// Whether `target` fits `resource`, counting nodes per instance type.
Fit FitTarget(const spec::ComputeTarget& target, const ResourceView& resource) {
  Fit fit;
  if (resource.health == Health::kUnknown) {
    // No operator has reported since this control plane started (a new resource, or any
    // resource just after a restart): its shapes are not known yet, so the job may fit once
    // they are. Calling it infeasible would fail jobs that only need the operator to connect.
    fit.ever = true;
    fit.reason = "has not reported its capacity yet (its operator has not connected)";
    return fit;
  }
  std::map<std::string, int> wanted;
  if (target.head_instance_type.empty()) {
    const InstanceCapacity* head = DefaultHeadType(resource);
    if (head == nullptr) {
      fit.reason = "offers no instance types";
      return fit;
    }
    wanted[head->type.name] += 1;
  } else {
    wanted[target.head_instance_type] += 1;
  }
  for (const spec::WorkerNodeGroup& group : target.worker_nodes) {
    if (group.min_nodes > 0) wanted[group.instance_type] += group.min_nodes;
  }
  fit.ever = true;
  fit.now = true;
  for (const auto& [type_name, count] : wanted) {
    const InstanceCapacity* type = FindType(resource, type_name);
    if (type == nullptr) {
      fit.ever = fit.now = false;
      fit.reason = fmt::format("has no instance type {}", type_name);
      return fit;
    }
    if (count > type->total_nodes) {
      fit.ever = fit.now = false;
      fit.reason =
          fmt::format("needs {} x {} but has {} in total", count, type_name, type->total_nodes);
      return fit;
    }
    auto allocated = resource.allocated_nodes.find(type_name);
    int used = allocated == resource.allocated_nodes.end() ? 0 : allocated->second;
    int free_nodes = std::max(0, type->total_nodes - used);
    if (count > free_nodes && fit.now) {
      fit.now = false;
      fit.reason = fmt::format("needs {} x {}, {} of {} free", count, type_name, free_nodes,
                               type->total_nodes);
    }
    fit.nodes.push_back({type_name, count});
  }
  if (fit.now && resource.health != Health::kHealthy) {
    fit.now = false;
    fit.reason = fmt::format("is {}", HealthName(resource.health));
  }
  return fit;
}

}  // namespace

PlacementDecision PlaceJob(const spec::JobConfig& config,
                           const std::vector<ResourceView>& snapshot) {
  std::vector<spec::ComputeTarget> targets = config.compute_config.configs;
  if (targets.empty()) targets.push_back(config.compute_config.target);

  PlacementDecision decision;
  bool feasible_somewhere = false;
  std::vector<std::string> reasons;
  for (const spec::ComputeTarget& target : targets) {
    bool matched_any = false;
    for (const ResourceView& resource : snapshot) {
      if (!target.cloud_resource.empty() && resource.name != target.cloud_resource) continue;
      matched_any = true;
      Fit fit = FitTarget(target, resource);
      feasible_somewhere = feasible_somewhere || fit.ever;
      if (fit.now) {
        decision.kind = PlacementDecision::Kind::kPlaced;
        decision.cloud_resource = resource.name;
        decision.region = resource.region;
        decision.nodes = std::move(fit.nodes);
        return decision;
      }
      reasons.push_back(fmt::format("{} {}", resource.name, fit.reason));
    }
    if (!matched_any) {
      reasons.push_back(
          target.cloud_resource.empty()
              ? std::string("no cloud resource is registered")
              : fmt::format("cloud resource {} does not exist", target.cloud_resource));
    }
  }
  decision.kind =
      feasible_somewhere ? PlacementDecision::Kind::kPending : PlacementDecision::Kind::kInfeasible;
  std::string joined;
  for (const std::string& reason : reasons) {
    if (!joined.empty()) joined += "; ";
    joined += reason;
  }
  decision.reason = std::move(joined);
  return decision;
}

}  // namespace meridian::control
