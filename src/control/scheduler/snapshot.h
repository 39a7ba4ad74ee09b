// What the scheduler knows about the world at one moment: every cloud resource with its health
// and, per instance type, how many nodes it has and how many are taken; and the quotas with their
// current usage. The control plane builds one from live operator reports; tests build them by
// hand.
//
// A Snapshot is a value: it copies what it is given, indexes it once (Build), and then answers
// the placement core's questions in constant or near-constant time. PlanQueue updates its copy as
// it places jobs (Allocate) and as waiting jobs hold nodes (Hold), so one placement takes nodes
// before the next is decided.
//
// Thread safety: none. A const Snapshot may be read from several threads; the mutators need
// exclusive access.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "spec/specs.h"

namespace meridian::control::scheduler {

enum class ResourceHealth { kUnknown, kHealthy, kUnhealthy };
std::string_view ResourceHealthName(ResourceHealth health);  // "UNKNOWN", "HEALTHY", ...

// How the nodes of one instance type are bought. A resource may report the same instance type
// twice, once per market.
enum class Market { kOnDemand, kSpot };
std::string_view MarketName(Market market);  // "ON_DEMAND", "SPOT"

// One instance type of one cloud resource, as its operator reports it.
struct ShapeCapacity {
  spec::InstanceType type;
  Market market = Market::kOnDemand;
  int total_nodes = 0;
  int allocated_nodes = 0;               // held by attempts placed or running there
  std::optional<double> price_per_hour;  // per node; absent when the operator does not know
};

struct ResourceState {
  std::string name;   // unique
  std::string cloud;  // the cloud's name
  std::string region;
  ResourceHealth health = ResourceHealth::kUnknown;
  // False while the resource is on probation after flapping: it is healthy again but is not given
  // new work until it has stayed healthy for a while (the control plane decides how long).
  bool trusted = true;
  std::vector<ShapeCapacity> shapes;
};

// A limit on what one scope may hold at once. The scope is every job whose cloud, project and
// resource region match; an empty field matches everything (so {cloud: c} limits the whole cloud,
// {cloud: c, project: p, region: eastus} one project in one region). Absent limits do not apply.
// Usage is what jobs already placed or running in the scope hold, as the control plane counts it.
struct Quota {
  std::string cloud;
  std::string project;
  std::string region;
  std::optional<int64_t> max_gpus;
  std::optional<double> max_cpus;
  std::optional<int> max_running_jobs;
  int64_t used_gpus = 0;
  double used_cpus = 0;
  int running_jobs = 0;
};
// "gpus/eastus for project p", "gpus for cloud c": how a quota is named in reasons.
std::string QuotaName(const Quota& quota, std::string_view what);

// Internal to the scheduler (the placement core reads it in its inner loop): one instance type of
// one resource, flattened. Not part of the contract callers rely on.
struct Slot {
  int32_t name_id = -1;      // interned instance type name
  int32_t name_rank = 0;     // position of the name in sorted order, for tie-breaks by name
  int32_t accelerators = 0;  // interned set of accelerator names
  int32_t total = 0;
  int32_t allocated = 0;
  int32_t held = 0;     // free nodes a waiting job holds (PlanQueue)
  int32_t holder = -1;  // index into Snapshot::holders() of the first job holding here
  int32_t gpu = 0;
  Market market = Market::kOnDemand;
  double cpu = 0;
  int64_t memory_bytes = 0;
  double price_per_hour = -1;  // < 0: unknown
  int32_t Free() const { return total - allocated - held > 0 ? total - allocated - held : 0; }
  int32_t FreeIgnoringHolds() const { return total - allocated > 0 ? total - allocated : 0; }
};

// Where one instance type is offered: a resource and the index of the shape in each market.
struct Offer {
  uint32_t resource = 0;
  int32_t on_demand_shape = -1;
  int32_t spot_shape = -1;
};

// One entry of the free-node index: a resource that accepts work and offers a shape.
struct FreeEntry {
  uint32_t resource = 0;
  int32_t shape = 0;
  int32_t free = 0;
};

// Per (instance type name, market): the resources accepting work that offer it, most free nodes
// first, and the largest shape under that name (names are not guaranteed to mean one shape on every
// resource, so gates built from these are bounds, never exact).
struct FreeList {
  std::vector<FreeEntry> entries;
  int32_t max_gpu = 0;
  double max_cpu = 0;
  int64_t max_memory_bytes = 0;
  std::vector<int32_t> accelerator_sets;  // every set seen under this name
};

class Snapshot {
 public:
  // Limits on what one snapshot may hold, so a bad report cannot exhaust memory.
  static constexpr size_t kMaxResources = 100'000;
  static constexpr size_t kMaxShapesPerResource = 1'000;
  static constexpr size_t kMaxQuotas = 10'000;

  // kInvalidArgument for two resources with one name, the same instance type and market twice in
  // one resource, negative node counts or more than the limits above. allocated_nodes above
  // total_nodes is accepted (the resource shrank under running work): it has no free nodes.
  static Result<Snapshot> Build(std::vector<ResourceState> resources, std::vector<Quota> quotas);

  // Resources in name order; indexes below refer to this order.
  size_t size() const { return resources_.size(); }
  const ResourceState& resource(size_t index) const { return resources_[index]; }
  std::optional<size_t> Find(std::string_view name) const;
  const std::vector<Quota>& quotas() const { return quotas_; }
  // Where a quota applies: its cloud's and region's ids (-1: any; -2: a cloud or region no
  // resource is in, so it applies to none).
  int32_t quota_cloud_id(size_t quota) const { return quota_scopes_[quota].first; }
  int32_t quota_region_id(size_t quota) const { return quota_scopes_[quota].second; }
  // Quotas for one project and for every project (those naming none), ascending.
  const std::vector<size_t>& QuotasOfProject(std::string_view project) const;
  const std::vector<size_t>& quotas_of_every_project() const { return quotas_of_every_project_; }

  // Free nodes of shapes[shape] of a resource (total - allocated - held, at least 0).
  int FreeNodes(size_t resource, size_t shape) const { return slot(resource, shape).Free(); }
  int HeldNodes(size_t resource, size_t shape) const { return slot(resource, shape).held; }

  // Takes `count` nodes of shapes[shape] of a resource (a placement).
  void Allocate(size_t resource, size_t shape, int count);
  // Adds one running job of `project` holding gpus/cpus in the resource's region to every quota
  // whose scope covers it.
  void ChargeQuotas(size_t resource, std::string_view project, int64_t gpus, double cpus);
  // A waiting job keeps up to `count` free nodes of shapes[shape] from later jobs; returns how many
  // it holds.
  int Hold(size_t resource, size_t shape, int count, std::string_view job_id);
  // Job ids of holders, in the order they first held something.
  const std::vector<std::string>& holders() const { return holders_; }

  // ---- For the placement core ----
  const Slot& slot(size_t resource, size_t shape) const {
    return slots_[first_slot_[resource] + shape];
  }
  size_t first_slot(size_t resource) const { return first_slot_[resource]; }
  size_t slot_count(size_t resource) const {
    return first_slot_[resource + 1] - first_slot_[resource];
  }
  const Slot& slot_at(size_t flat_index) const { return slots_[flat_index]; }
  // The shape of `resource` with this name and market; -1 when it has none.
  int32_t FindShape(size_t resource, int32_t name_id, Market market) const {
    int32_t key = name_id * 2 + (market == Market::kSpot ? 1 : 0);
    const int32_t* keys = slot_keys_.data() + first_slot_[resource];
    int32_t count = static_cast<int32_t>(slot_count(resource));
    for (int32_t s = 0; s < count; ++s) {
      if (keys[s] == key) return s;
    }
    return -1;
  }
  // The most GPUs (CPUs) free on-demand in nodes of ONE shape of a resource: auto-selection takes
  // its GPU (CPU) nodes from one shape, so an ask above this cannot fit there now.
  int64_t gpu_block(size_t resource) const { return gpu_blocks_[resource]; }
  // The same per accelerator set: (set id, GPUs), one entry per set the resource has GPUs of.
  const std::vector<std::pair<int32_t, int64_t>>& gpu_blocks_by_accelerator(size_t resource) const {
    return accelerator_blocks_[resource];
  }
  double cpu_block(size_t resource) const { return cpu_blocks_[resource]; }
  // Interned instance type names; -1 when no resource offers `name`.
  int32_t NameId(std::string_view name) const;
  const std::string& Name(int32_t name_id) const { return names_[name_id]; }
  // Resources that offer an instance type (in any market), by ascending resource index.
  const std::vector<Offer>& OfferedBy(int32_t name_id) const { return offered_by_[name_id]; }
  // Resources accepting work that offer `name_id` in `market`, by free nodes, most first. Kept in
  // order by Allocate and Hold.
  const FreeList& ByFree(int32_t name_id, Market market) const {
    return free_lists_[static_cast<size_t>(name_id) * 2 + (market == Market::kSpot ? 1 : 0)];
  }
  size_t name_count() const { return names_.size(); }
  // Interned accelerator sets: the lowercase names of a shape's accelerators.
  const std::vector<std::string>& accelerator_set(int32_t id) const {
    return accelerator_sets_[id];
  }
  size_t accelerator_set_count() const { return accelerator_sets_.size(); }
  // Resources whose health is UNKNOWN, ascending.
  const std::vector<uint32_t>& unknown_resources() const { return unknown_; }
  // HEALTHY and trusted: the resource may receive new work.
  bool accepts_work(size_t resource) const { return accepts_work_[resource] != 0; }
  int32_t region_id(size_t resource) const { return region_ids_[resource]; }
  // Interned region names; -1 when no resource is in `region`.
  int32_t RegionId(std::string_view region) const;
  // Interned cloud names; -1 when no resource is in `cloud`.
  int32_t CloudId(std::string_view cloud) const;
  int32_t cloud_id(size_t resource) const { return cloud_ids_[resource]; }
  size_t resources_in_cloud(int32_t cloud_id) const { return cloud_sizes_[cloud_id]; }
  size_t region_count() const { return regions_.size(); }
  const std::string& region_name(int32_t region_id) const { return regions_[region_id]; }
  // The shape a head node without an instance type gets: the smallest on-demand shape without
  // GPUs (by CPU, then memory, then name), else the smallest on-demand shape; -1 when none.
  int32_t default_head_shape(size_t resource) const { return default_head_[resource]; }

 private:
  Snapshot() = default;
  Status Index();
  void IndexFreeNodes();
  void IndexQuotas();
  // Keeps the free-node index and per-resource sums right after a slot lost `nodes` free nodes.
  void FreeNodesTaken(size_t resource, size_t shape);
  void ComputeBlocks(size_t resource);
  // Moves a slot's entry down its free list after its free count dropped.
  void Reindex(size_t flat_slot);

  std::vector<ResourceState> resources_;
  std::vector<Quota> quotas_;
  std::vector<Slot> slots_;
  std::vector<int32_t> slot_keys_;   // by flat slot: name_id * 2 + market, scanned by FindShape
  std::vector<int64_t> gpu_blocks_;  // by resource
  std::vector<double> cpu_blocks_;   // by resource
  std::vector<std::vector<std::pair<int32_t, int64_t>>> accelerator_blocks_;  // by resource
  std::vector<std::pair<int32_t, int32_t>> quota_scopes_;
  std::unordered_map<std::string, std::vector<size_t>> quotas_by_project_;
  std::vector<size_t> quotas_of_every_project_;
  std::vector<size_t> first_slot_;  // size() + 1 entries
  std::unordered_map<std::string, int32_t> name_ids_;
  std::vector<std::string> names_;
  std::vector<std::vector<Offer>> offered_by_;
  std::vector<int32_t> cloud_ids_;
  std::vector<std::string> clouds_;
  std::vector<size_t> cloud_sizes_;
  std::vector<uint32_t> unknown_;
  std::vector<uint8_t> accepts_work_;
  std::vector<int32_t> region_ids_;
  std::vector<std::string> regions_;
  std::unordered_map<std::string, int32_t> region_ids_by_name_;
  std::vector<int32_t> default_head_;
  std::vector<FreeList> free_lists_;         // by name_id * 2 + market
  std::vector<int32_t> free_list_position_;  // by flat slot; -1: not listed
  std::vector<std::vector<std::string>> accelerator_sets_;
  std::vector<std::string> holders_;
  std::unordered_map<std::string, int32_t> holder_ids_;
};

}  // namespace meridian::control::scheduler
