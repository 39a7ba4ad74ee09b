// Internal to the scheduler: choosing worker nodes on one resource from min_resources
// (auto_select_worker_config, or min_resources without worker_nodes).
//
// The smallest set of nodes that covers the ask, built in two steps so the result is predictable:
//  1. GPUs: nodes of ONE on-demand shape with GPUs (of the accelerator asked for, if any): the
//     shape needing the fewest nodes, then wasting the fewest GPUs, then by name.
//  2. CPU and memory that the GPU nodes do not cover: nodes of ONE on-demand shape, preferring
//     shapes without GPUs (GPUs are the scarce thing), then the fewest nodes, then the least CPU
//     left over, then by name.
// Auto-selected workers are on-demand, as worker groups are by default. The ask is what the
// workers must provide: the head node coordinates and is not counted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/scheduler/demand.h"
#include "control/scheduler/snapshot.h"

namespace meridian::control::scheduler {

enum class CountBy { kTotal, kFreeIgnoringHolds, kFree };

inline int32_t Available(const Slot& slot, CountBy by) {
  switch (by) {
    case CountBy::kTotal:
      return slot.total;
    case CountBy::kFreeIgnoringHolds:
      return slot.FreeIgnoringHolds();
    case CountBy::kFree:
      return slot.Free();
  }
  return 0;
}

struct AutoChoice {
  int32_t gpu_shape = -1;  // index into the resource's shapes; -1: none needed
  int32_t gpu_count = 0;
  int32_t cpu_shape = -1;
  int32_t cpu_count = 0;
  // When no choice exists: which step failed, for the reason text ("" when it succeeded).
  std::string failure;
  bool shape_missing = false;  // the resource offers no fitting shape at all (vs too few nodes)
};

// By accelerator set id (Snapshot::accelerator_set): whether the set has ask.accelerator. Empty
// when the ask names no accelerator.
std::vector<uint8_t> AcceleratorMatches(const Snapshot& snapshot, const ResourceAsk& ask);

// Chooses among shapes with enough nodes counted `by` (so kTotal answers "could it ever", kFree
// "can it now"). `head_shape` (-1: none) is one node the head takes from the same counts.
// `matches` is AcceleratorMatches(snapshot, ask).
AutoChoice ChooseWorkers(const Snapshot& snapshot, size_t resource, const ResourceAsk& ask,
                         const std::vector<uint8_t>& matches, CountBy by, int32_t head_shape);

}  // namespace meridian::control::scheduler
