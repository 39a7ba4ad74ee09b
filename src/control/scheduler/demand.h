// Internal to the scheduler: a job's gang (one compute target of its config) compiled against a
// snapshot, so the inner loop compares integers instead of strings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/scheduler/snapshot.h"
#include "spec/specs.h"

namespace meridian::control::scheduler {

// Which market a node group may use. The head node and ON_DEMAND groups need on-demand nodes
// (a head lost to a spot reclaim ends the whole job), SPOT groups spot nodes; PREFER_SPOT groups
// take spot nodes when the resource has enough free, else on-demand ones.
enum class MarketRule : uint8_t { kOnDemand, kSpot, kPreferSpot };

// Views into the job config, which outlives the demand.
struct GroupDemand {
  std::string_view label;          // "head" or a worker group's name
  std::string_view instance_type;  // "" for a head node without one (the resource's default head)
  int32_t name_id = -1;            // the snapshot's id of instance_type; -1: nobody offers it
  int32_t count = 0;
  MarketRule rule = MarketRule::kOnDemand;
};

// What min_resources asks of auto-selected workers. A job names an accelerator the way Ray labels
// nodes: min_resources key "accelerator_type:T4" (any positive value); the GPUs counted are then
// only those of shapes whose `accelerators` list T4 (compared ignoring case), and at least one
// such GPU is needed.
struct ResourceAsk {
  double cpu = 0;
  int64_t gpu = 0;
  int64_t memory_bytes = 0;
  std::string accelerator;  // "" any
};

struct Demand {
  // The head first, then each worker group with min_nodes > 0, in config order.
  std::vector<GroupDemand> groups;
  // Workers chosen per resource from min_resources (the target lists no worker_nodes).
  std::optional<ResourceAsk> auto_ask;
  // Why no resource could hold this whatever it offered (e.g. an unsupported min_resources key);
  // "" when none.
  std::string impossible;
};

// `compute` supplies min_resources and auto_select_worker_config; `target` the nodes.
Demand CompileDemand(const spec::ComputeConfig& compute, const spec::ComputeTarget& target,
                     const Snapshot& snapshot);

// "2 x 1xT4", "1 x 1xT4 (SPOT)": a count of one shape as reasons print it.
std::string NodesText(int count, const std::string& instance_type, Market market);

}  // namespace meridian::control::scheduler
