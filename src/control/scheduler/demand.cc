#include "control/scheduler/demand.h"

#include <cmath>

#include "fmt/format.h"

namespace meridian::control::scheduler {
namespace {

constexpr std::string_view kAcceleratorPrefix = "accelerator_type:";

MarketRule RuleFor(spec::MarketType market) {
  switch (market) {
    case spec::MarketType::kSpot:
      return MarketRule::kSpot;
    case spec::MarketType::kPreferSpot:
      return MarketRule::kPreferSpot;
    case spec::MarketType::kOnDemand:
      return MarketRule::kOnDemand;
  }
  return MarketRule::kOnDemand;
}

// min_resources -> an ask, or the reason no shape can satisfy it.
std::string ReadAsk(const std::map<std::string, double>& min_resources, ResourceAsk& ask) {
  for (const auto& [key, amount] : min_resources) {
    if (key == "CPU") {
      ask.cpu = amount;
    } else if (key == "GPU") {
      ask.gpu = static_cast<int64_t>(std::ceil(amount));
    } else if (key == "memory") {
      ask.memory_bytes = static_cast<int64_t>(std::ceil(amount));
    } else if (key.rfind(kAcceleratorPrefix, 0) == 0 && key.size() > kAcceleratorPrefix.size()) {
      if (amount <= 0) continue;
      std::string type = key.substr(kAcceleratorPrefix.size());
      if (!ask.accelerator.empty()) {
        return fmt::format(
            "min_resources asks for two accelerator types ({} and {}); a job's GPUs "
            "are of one type",
            ask.accelerator, type);
      }
      ask.accelerator = std::move(type);
    } else {
      return fmt::format(
          "min_resources.{}: no instance type provides this resource (meridian "
          "knows CPU, GPU, memory and accelerator_type:<type>)",
          key);
    }
  }
  // Asking for an accelerator type is asking for at least one GPU of it, as in Ray.
  if (!ask.accelerator.empty() && ask.gpu == 0) ask.gpu = 1;
  return "";
}

}  // namespace

Demand CompileDemand(const spec::ComputeConfig& compute, const spec::ComputeTarget& target,
                     const Snapshot& snapshot) {
  Demand demand;
  GroupDemand head;
  head.label = "head";
  head.instance_type = target.head_instance_type;
  head.name_id = head.instance_type.empty() ? -1 : snapshot.NameId(head.instance_type);
  head.count = 1;
  demand.groups.push_back(head);
  for (const spec::WorkerNodeGroup& group : target.worker_nodes) {
    if (group.min_nodes <= 0) continue;
    GroupDemand worker;
    worker.label = group.name;
    worker.instance_type = group.instance_type;
    worker.name_id = snapshot.NameId(group.instance_type);
    worker.count = group.min_nodes;
    worker.rule = RuleFor(group.market_type);
    demand.groups.push_back(worker);
  }
  if (target.worker_nodes.empty() &&
      (compute.auto_select_worker_config || !compute.min_resources.empty())) {
    ResourceAsk ask;
    demand.impossible = ReadAsk(compute.min_resources, ask);
    demand.auto_ask = std::move(ask);
  }
  return demand;
}

std::string NodesText(int count, const std::string& instance_type, Market market) {
  if (market == Market::kSpot) return fmt::format("{} x {} (SPOT)", count, instance_type);
  return fmt::format("{} x {}", count, instance_type);
}

}  // namespace meridian::control::scheduler
