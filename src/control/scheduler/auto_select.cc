#include "control/scheduler/auto_select.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <tuple>

#include "fmt/format.h"

namespace meridian::control::scheduler {
namespace {

int64_t CeilDiv(double need, double per_node) {
  return static_cast<int64_t>(std::ceil(need / per_node - 1e-9));
}

// Step 1; returns false with choice.failure set when no shape can take the GPUs.
bool ChooseGpuNodes(const Snapshot& snapshot, size_t resource, const ResourceAsk& ask,
                    const std::vector<uint8_t>& matches, CountBy by, int32_t head_shape,
                    AutoChoice& choice) {
  bool offered = false;
  std::tuple<int64_t, int64_t, int32_t> best_key;  // nodes, GPUs wasted, name rank
  size_t first = snapshot.first_slot(resource);
  for (size_t s = 0; s < snapshot.slot_count(resource); ++s) {
    const Slot& slot = snapshot.slot_at(first + s);
    if (slot.market != Market::kOnDemand || slot.gpu <= 0) continue;
    if (!matches.empty() && !matches[slot.accelerators]) continue;
    offered = true;
    int64_t nodes = (ask.gpu + slot.gpu - 1) / slot.gpu;
    int64_t available = Available(slot, by) - (static_cast<int32_t>(s) == head_shape ? 1 : 0);
    if (available < nodes) continue;
    auto key = std::make_tuple(nodes, nodes * slot.gpu - ask.gpu, slot.name_rank);
    if (choice.gpu_shape < 0 || key < best_key) {
      choice.gpu_shape = static_cast<int32_t>(s);
      choice.gpu_count = static_cast<int32_t>(nodes);
      best_key = key;
    }
  }
  if (choice.gpu_shape >= 0) return true;
  choice.shape_missing = !offered;
  std::string gpus = ask.accelerator.empty() ? "GPUs" : ask.accelerator + " GPUs";
  choice.failure =
      offered ? fmt::format("has too few on-demand nodes with {} for {} {}", gpus, ask.gpu, gpus)
              : fmt::format("has no on-demand instance type with {}", gpus);
  return false;
}

// Step 2 for what the GPU nodes leave.
bool ChooseCpuNodes(const Snapshot& snapshot, size_t resource, double cpu_left, int64_t memory_left,
                    CountBy by, int32_t head_shape, AutoChoice& choice) {
  bool offered = false;
  struct Key {
    bool has_gpu;
    int64_t nodes;
    double waste;
    int32_t name_rank;
  } best{};
  size_t first = snapshot.first_slot(resource);
  for (size_t s = 0; s < snapshot.slot_count(resource); ++s) {
    const Slot& slot = snapshot.slot_at(first + s);
    if (slot.market != Market::kOnDemand) continue;
    if ((cpu_left > 0 && slot.cpu <= 0) || (memory_left > 0 && slot.memory_bytes <= 0)) continue;
    offered = true;
    int64_t nodes = 0;
    if (cpu_left > 0) nodes = CeilDiv(cpu_left, slot.cpu);
    if (memory_left > 0) {
      nodes = std::max(
          nodes, CeilDiv(static_cast<double>(memory_left), static_cast<double>(slot.memory_bytes)));
    }
    int64_t available = Available(slot, by) - (static_cast<int32_t>(s) == head_shape ? 1 : 0) -
                        (static_cast<int32_t>(s) == choice.gpu_shape ? choice.gpu_count : 0);
    if (available < nodes) continue;
    Key key{slot.gpu > 0, nodes, static_cast<double>(nodes) * slot.cpu - cpu_left, slot.name_rank};
    auto better = [](const Key& a, const Key& b) {
      if (a.has_gpu != b.has_gpu) return !a.has_gpu;
      if (a.nodes != b.nodes) return a.nodes < b.nodes;
      if (a.waste != b.waste) return a.waste < b.waste;
      return a.name_rank < b.name_rank;
    };
    if (choice.cpu_shape < 0 || better(key, best)) {
      choice.cpu_shape = static_cast<int32_t>(s);
      choice.cpu_count = static_cast<int32_t>(nodes);
      best = key;
    }
  }
  if (choice.cpu_shape >= 0) return true;
  choice.shape_missing = !offered;
  choice.failure = offered ? fmt::format(
                                 "has too few on-demand nodes for {} more CPUs and {} more "
                                 "bytes of memory",
                                 cpu_left, memory_left)
                           : "has no on-demand instance type with CPUs and memory";
  return false;
}

}  // namespace

std::vector<uint8_t> AcceleratorMatches(const Snapshot& snapshot, const ResourceAsk& ask) {
  std::vector<uint8_t> matches;
  if (ask.accelerator.empty()) return matches;
  std::string wanted = ask.accelerator;
  for (char& c : wanted) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  matches.resize(snapshot.accelerator_set_count());
  for (size_t id = 0; id < matches.size(); ++id) {
    const std::vector<std::string>& set = snapshot.accelerator_set(static_cast<int32_t>(id));
    matches[id] = std::find(set.begin(), set.end(), wanted) != set.end();
  }
  // A snapshot where no shape has it still needs a non-empty table, so "no accelerator asked"
  // (empty) stays distinguishable.
  if (matches.empty()) matches.push_back(0);
  return matches;
}

AutoChoice ChooseWorkers(const Snapshot& snapshot, size_t resource, const ResourceAsk& ask,
                         const std::vector<uint8_t>& matches, CountBy by, int32_t head_shape) {
  AutoChoice choice;
  double cpu_left = ask.cpu;
  int64_t memory_left = ask.memory_bytes;
  if (ask.gpu > 0) {
    if (!ChooseGpuNodes(snapshot, resource, ask, matches, by, head_shape, choice)) return choice;
    const Slot& slot = snapshot.slot(resource, choice.gpu_shape);
    cpu_left -= choice.gpu_count * slot.cpu;
    memory_left -= choice.gpu_count * slot.memory_bytes;
  }
  if (cpu_left > 1e-9 || memory_left > 0) {
    ChooseCpuNodes(snapshot, resource, std::max(0.0, cpu_left), std::max<int64_t>(0, memory_left),
                   by, head_shape, choice);
  }
  return choice;
}

}  // namespace meridian::control::scheduler
