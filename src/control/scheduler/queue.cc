// PlanQueue(): the pending queue in order, each job placed on what the jobs before it left.
#include <algorithm>
#include <numeric>
#include <tuple>

#include "control/scheduler/policy.h"
#include "fmt/format.h"

namespace meridian::control::scheduler {
namespace {

std::vector<size_t> QueueOrder(const std::vector<Request>& requests) {
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Request& x = requests[a];
    const Request& y = requests[b];
    return std::tie(x.priority, x.submit_order, x.job_id) <
           std::tie(y.priority, y.submit_order, y.job_id);
  });
  return order;
}

}  // namespace

QueuePlan PlanQueue(const std::vector<Request>& requests, Snapshot snapshot,
                    const Options& options) {
  std::vector<QueueDecision> decisions;
  decisions.reserve(requests.size());
  size_t holding_jobs = 0;
  for (size_t index : QueueOrder(requests)) {
    const Request& request = requests[index];
    bool may_hold = holding_jobs < options.max_holds;
    Placement placement = PolicyFor(*request.config).Decide(request, snapshot, options, may_hold);
    QueueDecision item;
    item.request_index = index;
    item.job_id = request.job_id;
    item.decision = std::move(placement.decision);
    const Decision& decision = item.decision;
    if (decision.outcome == Outcome::kPlaced) {
      for (const NodeAssignment& node : decision.nodes) {
        snapshot.Allocate(decision.resource_index, node.shape_index, node.count);
      }
      snapshot.ChargeQuotas(decision.resource_index, request.project, decision.gpus, decision.cpus);
    } else if (may_hold && placement.hold) {
      // It is first in line on that resource from now on, whether or not a node is free yet.
      holding_jobs += 1;
      int held = 0;
      for (const Take& need : placement.hold->needs) {
        held += snapshot.Hold(placement.hold->resource, static_cast<size_t>(need.shape), need.count,
                              request.job_id);
      }
      if (held > 0) {
        item.held_on = snapshot.resource(placement.hold->resource).name;
        item.held_nodes = held;
        item.decision.summary += fmt::format(" (holding {} free node{} on {} until the rest frees)",
                                             held, held == 1 ? "" : "s", item.held_on);
      }
    }
    decisions.push_back(std::move(item));
  }
  return QueuePlan{std::move(decisions), std::move(snapshot)};
}

}  // namespace meridian::control::scheduler
