#include "control/scheduler/snapshot.h"

#include <algorithm>
#include <cctype>
#include <map>
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
  std::map<std::vector<std::string>, int32_t> accelerator_ids;
  for (size_t r = 0; r < resources_.size(); ++r) {
    const ResourceState& resource = resources_[r];
    if (r > 0 && resources_[r - 1].name == resource.name) {
      return absl::InvalidArgumentError(
          fmt::format("cloud resource {} appears twice in the snapshot", resource.name));
    }
    if (resource.shapes.size() > kMaxShapesPerResource) {
      return absl::InvalidArgumentError(
          fmt::format("cloud resource {} reports {} shapes; the limit "
                      "is {}",
                      resource.name, resource.shapes.size(), kMaxShapesPerResource));
    }
    auto [region, added] =
        region_ids_by_name_.emplace(resource.region, static_cast<int32_t>(regions_.size()));
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
      std::vector<std::string> accelerators;
      for (const std::string& accelerator : shape.type.accelerators) {
        std::string lower = accelerator;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        accelerators.push_back(std::move(lower));
      }
      std::sort(accelerators.begin(), accelerators.end());
      auto [set, set_added] =
          accelerator_ids.emplace(accelerators, static_cast<int32_t>(accelerator_sets_.size()));
      if (set_added) accelerator_sets_.push_back(std::move(accelerators));
      slot.accelerators = set->second;
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
  // Ranks of names in sorted order, so tie-breaks "by name" compare integers.
  std::vector<int32_t> by_name(names_.size());
  for (size_t i = 0; i < by_name.size(); ++i) by_name[i] = static_cast<int32_t>(i);
  std::sort(by_name.begin(), by_name.end(),
            [&](int32_t a, int32_t b) { return names_[a] < names_[b]; });
  std::vector<int32_t> rank(names_.size());
  for (size_t i = 0; i < by_name.size(); ++i) rank[by_name[i]] = static_cast<int32_t>(i);
  for (Slot& slot : slots_) slot.name_rank = rank[slot.name_id];
  slot_keys_.reserve(slots_.size());
  for (const Slot& slot : slots_) {
    slot_keys_.push_back(slot.name_id * 2 + (slot.market == Market::kSpot ? 1 : 0));
  }
  gpu_blocks_.assign(resources_.size(), 0);
  cpu_blocks_.assign(resources_.size(), 0);
  accelerator_blocks_.assign(resources_.size(), {});
  for (size_t r = 0; r < resources_.size(); ++r) ComputeBlocks(r);
  IndexFreeNodes();
  IndexQuotas();
  return OkStatus();
}

void Snapshot::IndexQuotas() {
  for (size_t q = 0; q < quotas_.size(); ++q) {
    const Quota& quota = quotas_[q];
    int32_t cloud = quota.cloud.empty() ? -1 : CloudId(quota.cloud);
    int32_t region = quota.region.empty() ? -1 : RegionId(quota.region);
    quota_scopes_.emplace_back(quota.cloud.empty() || cloud >= 0 ? cloud : -2,
                               quota.region.empty() || region >= 0 ? region : -2);
    if (quota.project.empty()) {
      quotas_of_every_project_.push_back(q);
    } else {
      quotas_by_project_[quota.project].push_back(q);
    }
  }
}

const std::vector<size_t>& Snapshot::QuotasOfProject(std::string_view project) const {
  static const std::vector<size_t>* const kNone = new std::vector<size_t>();
  auto it = quotas_by_project_.find(std::string(project));
  return it == quotas_by_project_.end() ? *kNone : it->second;
}

void Snapshot::ComputeBlocks(size_t resource) {
  int64_t gpus = 0;
  double cpus = 0;
  std::vector<std::pair<int32_t, int64_t>>& by_accelerator = accelerator_blocks_[resource];
  by_accelerator.clear();
  for (size_t s = 0; s < slot_count(resource); ++s) {
    const Slot& slot = slots_[first_slot_[resource] + s];
    if (slot.market != Market::kOnDemand) continue;
    int64_t slot_gpus = int64_t{slot.Free()} * slot.gpu;
    gpus = std::max(gpus, slot_gpus);
    cpus = std::max(cpus, slot.Free() * slot.cpu);
    if (slot.gpu <= 0) continue;
    auto it = std::find_if(by_accelerator.begin(), by_accelerator.end(),
                           [&](const auto& entry) { return entry.first == slot.accelerators; });
    if (it == by_accelerator.end()) {
      by_accelerator.emplace_back(slot.accelerators, slot_gpus);
    } else {
      it->second = std::max(it->second, slot_gpus);
    }
  }
  gpu_blocks_[resource] = gpus;
  cpu_blocks_[resource] = cpus;
}

void Snapshot::FreeNodesTaken(size_t resource, size_t shape) {
  ComputeBlocks(resource);
  Reindex(first_slot_[resource] + shape);
}

void Snapshot::IndexFreeNodes() {
  free_lists_.assign(names_.size() * 2, FreeList{});
  free_list_position_.assign(slots_.size(), -1);
  for (size_t r = 0; r < resources_.size(); ++r) {
    if (!accepts_work(r)) continue;
    for (size_t s = 0; s < slot_count(r); ++s) {
      const Slot& slot = slots_[first_slot_[r] + s];
      FreeList& list = free_lists_[static_cast<size_t>(slot.name_id) * 2 +
                                   (slot.market == Market::kSpot ? 1 : 0)];
      list.entries.push_back({static_cast<uint32_t>(r), static_cast<int32_t>(s), slot.Free()});
      list.max_gpu = std::max(list.max_gpu, slot.gpu);
      list.max_cpu = std::max(list.max_cpu, slot.cpu);
      list.max_memory_bytes = std::max(list.max_memory_bytes, slot.memory_bytes);
      if (std::find(list.accelerator_sets.begin(), list.accelerator_sets.end(),
                    slot.accelerators) == list.accelerator_sets.end()) {
        list.accelerator_sets.push_back(slot.accelerators);
      }
    }
  }
  for (FreeList& list : free_lists_) {
    std::sort(list.entries.begin(), list.entries.end(), [](const FreeEntry& a, const FreeEntry& b) {
      return a.free != b.free ? a.free > b.free : a.resource < b.resource;
    });
    for (size_t i = 0; i < list.entries.size(); ++i) {
      const FreeEntry& entry = list.entries[i];
      free_list_position_[first_slot_[entry.resource] + entry.shape] = static_cast<int32_t>(i);
    }
  }
}

void Snapshot::Reindex(size_t flat_slot) {
  int32_t position = free_list_position_[flat_slot];
  if (position < 0) return;
  const Slot& slot = slots_[flat_slot];
  std::vector<FreeEntry>& entries =
      free_lists_[static_cast<size_t>(slot.name_id) * 2 + (slot.market == Market::kSpot ? 1 : 0)]
          .entries;
  int32_t free_nodes = slot.Free();
  auto from = entries.begin() + position;
  // Entries after this one that still have more free nodes move up one place; it goes after them.
  auto after = std::partition_point(from + 1, entries.end(),
                                    [&](const FreeEntry& e) { return e.free > free_nodes; });
  std::rotate(from, from + 1, after);
  (after - 1)->free = free_nodes;
  for (auto it = from; it != after; ++it) {
    free_list_position_[first_slot_[it->resource] + it->shape] =
        static_cast<int32_t>(it - entries.begin());
  }
}

int32_t Snapshot::RegionId(std::string_view region) const {
  auto it = region_ids_by_name_.find(std::string(region));
  return it == region_ids_by_name_.end() ? -1 : it->second;
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
  FreeNodesTaken(resource, shape);
}

void Snapshot::ChargeQuotas(size_t resource, std::string_view project, int64_t gpus, double cpus) {
  auto charge = [&](size_t index) {
    int32_t cloud = quota_scopes_[index].first;
    int32_t region = quota_scopes_[index].second;
    if ((cloud != -1 && cloud != cloud_ids_[resource]) ||
        (region != -1 && region != region_ids_[resource])) {
      return;
    }
    Quota& quota = quotas_[index];
    quota.used_gpus += gpus;
    quota.used_cpus += cpus;
    quota.running_jobs += 1;
  };
  for (size_t index : quotas_of_every_project_) charge(index);
  if (!project.empty()) {
    for (size_t index : QuotasOfProject(project)) charge(index);
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
  FreeNodesTaken(resource, shape);
  return held;
}

}  // namespace meridian::control::scheduler
