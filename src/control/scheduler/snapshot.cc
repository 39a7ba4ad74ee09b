#include "control/scheduler/snapshot.h"

#include <algorithm>
#include <set>
#include <utility>

#include "fmt/format.h"

namespace meridian::control::scheduler {

std::string_view ResourceHealthName(ResourceHealth health) {
  switch (health) {
    case ResourceHealth::kHealthy:
      return "HEALTHY";
    case ResourceHealth::kUnhealthy:
      return "UNHEALTHY";
    case ResourceHealth::kUnknown:
      return "UNKNOWN";
  }
  return "UNKNOWN";
}

std::string_view MarketName(Market market) {
  return market == Market::kSpot ? "SPOT" : "ON_DEMAND";
}

std::string QuotaName(const Quota& quota, std::string_view what) {
  std::string name(what);
  if (!quota.region.empty()) name += "/" + quota.region;
  if (!quota.project.empty()) return fmt::format("{} for project {}", name, quota.project);
  if (!quota.cloud.empty()) return fmt::format("{} for cloud {}", name, quota.cloud);
  return name;
}

Result<Snapshot> Snapshot::Build(std::vector<ResourceState> resources, std::vector<Quota> quotas) {
  if (resources.size() > kMaxResources) {
    return absl::InvalidArgumentError(
        fmt::format("{} cloud resources; the limit is {}", resources.size(), kMaxResources));
  }
  if (quotas.size() > kMaxQuotas) {
    return absl::InvalidArgumentError(
        fmt::format("{} quotas; the limit is {}", quotas.size(), kMaxQuotas));
  }
  Snapshot snapshot;
  snapshot.resources_ = std::move(resources);
  snapshot.quotas_ = std::move(quotas);
  // Name order makes every tie-break and every listing deterministic whatever order the caller
  // used.
  std::sort(snapshot.resources_.begin(), snapshot.resources_.end(),
            [](const ResourceState& a, const ResourceState& b) { return a.name < b.name; });
  RETURN_IF_ERROR(snapshot.Index());
  return snapshot;
}

Status Snapshot::Index() {
  first_slot_.assign(1, 0);
  default_head_.assign(resources_.size(), -1);
  region_ids_.assign(resources_.size(), -1);
  cloud_ids_.assign(resources_.size(), -1);
  std::unordered_map<std::string, int32_t> region_ids;
  for (size_t r = 0; r < resources_.size(); ++r) {
    const ResourceState& resource = resources_[r];
    if (r > 0 && resources_[r - 1].name == resource.name) {
      return absl::InvalidArgumentError(
          fmt::format("cloud resource {} appears twice in the snapshot", resource.name));
    }
    if (resource.shapes.size() > kMaxShapesPerResource) {
      return absl::InvalidArgumentError(fmt::format("cloud resource {} reports {} shapes; the limit "
                                                    "is {}",
                                                    resource.name, resource.shapes.size(),
                                                    kMaxShapesPerResource));
    }
    auto [region, added] =
        region_ids.emplace(resource.region, static_cast<int32_t>(regions_.size()));
    if (added) regions_.push_back(resource.region);
    region_ids_[r] = region->second;
    int32_t cloud = CloudId(resource.cloud);
    if (cloud < 0) {
      cloud = static_cast<int32_t>(clouds_.size());
      clouds_.push_back(resource.cloud);
      cloud_sizes_.push_back(0);
    }
    cloud_ids_[r] = cloud;
    cloud_sizes_[cloud] += 1;
    if (resource.health == ResourceHealth::kUnknown) unknown_.push_back(static_cast<uint32_t>(r));
    accepts_work_.push_back(resource.health == ResourceHealth::kHealthy && resource.trusted);

    std::set<std::pair<std::string, Market>> seen;
    for (const ShapeCapacity& shape : resource.shapes) {
      if (!seen.emplace(shape.type.name, shape.market).second) {
        return absl::InvalidArgumentError(
            fmt::format("cloud resource {} reports instance type {} ({}) twice", resource.name,
                        shape.type.name, MarketName(shape.market)));
      }
      if (shape.total_nodes < 0 || shape.allocated_nodes < 0) {
        return absl::InvalidArgumentError(
            fmt::format("cloud resource {} reports a negative node count for {}", resource.name,
                        shape.type.name));
      }
      auto [name, name_added] =
          name_ids_.emplace(shape.type.name, static_cast<int32_t>(names_.size()));
      if (name_added) {
        names_.push_back(shape.type.name);
        offered_by_.emplace_back();
      }
      std::vector<Offer>& offered = offered_by_[name->second];
      if (offered.empty() || offered.back().resource != r) {
        offered.push_back(Offer{static_cast<uint32_t>(r), -1, -1});
      }
      int32_t shape_index = static_cast<int32_t>(slots_.size() - first_slot_.back());
      if (shape.market == Market::kSpot) {
        offered.back().spot_shape = shape_index;
      } else {
        offered.back().on_demand_shape = shape_index;
      }
      Slot slot;
      slot.name_id = name->second;
      slot.total = shape.total_nodes;
      slot.allocated = shape.allocated_nodes;
      slot.gpu = shape.type.gpu;
      slot.market = shape.market;
      slot.cpu = shape.type.cpu;
      slot.memory_bytes = shape.type.memory_bytes;
      slot.price_per_hour = shape.price_per_hour.value_or(-1);
      slots_.push_back(slot);
    }
    first_slot_.push_back(slots_.size());

    // The default head: on-demand only (a head node lost to a spot reclaim ends the whole job).
    auto smaller = [&](const ShapeCapacity& a, const ShapeCapacity& b) {
      if ((a.type.gpu == 0) != (b.type.gpu == 0)) return a.type.gpu == 0;
      if (a.type.cpu != b.type.cpu) return a.type.cpu < b.type.cpu;
      if (a.type.memory_bytes != b.type.memory_bytes) {
        return a.type.memory_bytes < b.type.memory_bytes;
      }
      return a.type.name < b.type.name;
    };
    for (size_t s = 0; s < resource.shapes.size(); ++s) {
      const ShapeCapacity& shape = resource.shapes[s];
      if (shape.market != Market::kOnDemand || shape.total_nodes <= 0) continue;
      int32_t best = default_head_[r];
      if (best < 0 || smaller(shape, resource.shapes[best])) {
        default_head_[r] = static_cast<int32_t>(s);
      }
    }
  }
  return OkStatus();
}

std::optional<size_t> Snapshot::Find(std::string_view name) const {
  auto it = std::lower_bound(
      resources_.begin(), resources_.end(), name,
      [](const ResourceState& resource, std::string_view key) { return resource.name < key; });
  if (it == resources_.end() || it->name != name) return std::nullopt;
  return static_cast<size_t>(it - resources_.begin());
}

int32_t Snapshot::CloudId(std::string_view cloud) const {
  // Few clouds: a scan beats hashing.
  for (size_t i = 0; i < clouds_.size(); ++i) {
    if (clouds_[i] == cloud) return static_cast<int32_t>(i);
  }
  return -1;
}

int32_t Snapshot::NameId(std::string_view name) const {
  auto it = name_ids_.find(std::string(name));
  return it == name_ids_.end() ? -1 : it->second;
}

void Snapshot::Allocate(size_t resource, size_t shape, int count) {
  Slot& target = slots_[first_slot_[resource] + shape];
  target.allocated += count;
  resources_[resource].shapes[shape].allocated_nodes += count;
}

void Snapshot::ChargeQuotas(size_t resource, std::string_view project, int64_t gpus, double cpus) {
  const ResourceState& state = resources_[resource];
  for (Quota& quota : quotas_) {
    if (!quota.cloud.empty() && quota.cloud != state.cloud) continue;
    if (!quota.project.empty() && quota.project != project) continue;
    if (!quota.region.empty() && quota.region != state.region) continue;
    quota.used_gpus += gpus;
    quota.used_cpus += cpus;
    quota.running_jobs += 1;
  }
}

int Snapshot::Hold(size_t resource, size_t shape, int count, std::string_view job_id) {
  Slot& target = slots_[first_slot_[resource] + shape];
  int held = std::min(count, target.Free());
  if (held <= 0) return 0;
  if (target.holder < 0) {
    auto [it, added] =
        holder_ids_.emplace(std::string(job_id), static_cast<int32_t>(holders_.size()));
    if (added) holders_.emplace_back(job_id);
    target.holder = it->second;
  }
  target.held += held;
  return held;
}

}  // namespace meridian::control::scheduler
