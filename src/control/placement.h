// Placement: which cloud resource runs a job now. A pure function over a snapshot: no I/O,
// no clock, no randomness, so it is unit-tested in isolation.
//
// Rules (the platform-core version; the scheduling work replaces the policy behind the
// same signature):
//  - A job is a gang: the head node and every worker group's min_nodes must fit in one cloud
//    resource, counted in whole nodes of the named instance types.
//  - A head node without an instance type takes the smallest shape without GPUs that the
//    resource offers (smallest by CPU, then memory), else the smallest shape.
//  - compute_config.cloud_resource pins the job to that resource; compute_config.configs
//    are tried in input order; otherwise resources are tried in snapshot order.
//  - Only HEALTHY resources receive work. A job that no resource could ever hold (unknown
//    pinned resource, a shape nobody offers, more nodes than a resource has in total) is
//    infeasible; one that fits somewhere once capacity frees (or a resource recovers) is
//    pending. A resource whose health is UNKNOWN has not reported its shapes yet, so any
//    job might fit it: jobs it could take are pending, never infeasible.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "control/model.h"
#include "spec/specs.h"

namespace meridian::control {

struct ResourceView {
  std::string name;
  std::string region;
  Health health = Health::kUnknown;
  std::vector<InstanceCapacity> capacity;
  std::map<std::string, int> allocated_nodes;  // by instance type
};

struct PlacementDecision {
  enum class Kind { kPlaced, kPending, kInfeasible };
  Kind kind = Kind::kPending;
  std::string cloud_resource;         // when placed
  std::string region;                 // when placed
  std::vector<NodeAllocation> nodes;  // when placed
  std::string reason;                 // when pending or infeasible: one line per resource
};

PlacementDecision PlaceJob(const spec::JobConfig& config,
                           const std::vector<ResourceView>& snapshot);

}  // namespace meridian::control
