// compute_config.configs with cloud_resource_strategy input_order, as Anyscale runs it, so a
// migrating user's fallback list behaves the same:
//  - The first config is tried. The job moves on to the next only after it has waited on (or
//    been starting on) a config for cloud_resource_starting_timeout without starting there; the
//    control plane tells since when (Request::config_tries) and the decision says when to look
//    again (reconsider_at_unix_ms).
//  - A config that could never hold the job (its resource does not exist, lacks the shapes, is too
//    small) is skipped at once: waiting on it would only burn the timeout.
//  - Once every config has had its timeout, all are tried at every decision, in input order, and
//    the job takes the first with room.
//  - Within a config, a pinned resource is that resource only; a config without cloud_resource
//    may use any resource of the job's cloud, ranked as usual.
#include <memory>

#include "control/scheduler/policy.h"
#include "fmt/format.h"

namespace meridian::control::scheduler {
namespace {

std::optional<int64_t> TriedSince(const Request& request, size_t config_index) {
  for (const ConfigTry& tried : request.config_tries) {
    if (tried.config_index == static_cast<int>(config_index)) return tried.since_unix_ms;
  }
  return std::nullopt;
}

class InputOrder final : public PlacementPolicy {
 public:
  Placement Decide(const Request& request, const Snapshot& snapshot, const Options& options,
                   bool want_hold) const override {
    const spec::ComputeConfig& compute = request.config->compute_config;
    const std::vector<spec::ComputeTarget>& configs = compute.configs;
    int64_t timeout_s = compute.cloud_resource_starting_timeout_s > 0
                            ? compute.cloud_resource_starting_timeout_s
                            : options.default_starting_timeout_s;
    int64_t timeout_ms = timeout_s * 1000;
    // Evaluators keep references to their demands: size the vector once.
    std::vector<Demand> demands;
    demands.reserve(configs.size());
    std::vector<std::unique_ptr<Evaluator>> evaluators;
    std::vector<ScanResult> scans;
    bool feasible_anywhere = false;
    for (const spec::ComputeTarget& target : configs) {
      demands.push_back(CompileDemand(compute, target, snapshot));
      evaluators.push_back(std::make_unique<Evaluator>(request, demands.back(), snapshot, options));
      scans.push_back(evaluators.back()->Scan(target.cloud_resource));
      feasible_anywhere = feasible_anywhere || scans.back().ever;
    }
    if (!feasible_anywhere) return Infeasible(request, evaluators, scans, options);

    for (size_t i = 0; i < configs.size(); ++i) {
      if (!scans[i].ever) continue;
      std::optional<int64_t> since = TriedSince(request, i);
      if (since && options.now_unix_ms - *since >= timeout_ms) continue;
      Placement placement =
          MakeDecision(request, *evaluators[i], scans[i], options,
                       !configs[i].cloud_resource.empty(), static_cast<int>(i), want_hold);
      Decision& decision = placement.decision;
      decision.reconsider_at_unix_ms = since.value_or(options.now_unix_ms) + timeout_ms;
      decision.summary = decision.outcome == Outcome::kPlaced
                             ? fmt::format("configs[{}]: {}", i, decision.summary)
                             : fmt::format(
                                   "configs[{}] (next config after its {} s starting "
                                   "timeout): {}",
                                   i, timeout_s, decision.summary);
      return placement;
    }
    // Every config that could hold the job has had its timeout: take the first with room.
    std::optional<Placement> first_waiting;
    for (size_t i = 0; i < configs.size(); ++i) {
      if (!scans[i].ever) continue;
      if (!scans[i].found && first_waiting) continue;
      Placement placement = MakeDecision(request, *evaluators[i], scans[i], options,
                                         !configs[i].cloud_resource.empty(), static_cast<int>(i),
                                         want_hold && !first_waiting);
      if (placement.decision.outcome == Outcome::kPlaced) {
        placement.decision.summary = fmt::format("configs[{}]: {}", i, placement.decision.summary);
        return placement;
      }
      first_waiting = std::move(placement);
    }
    Decision& decision = first_waiting->decision;
    decision.config_index = -1;
    decision.summary = fmt::format(
        "every config has had its {} s starting timeout; trying all in "
        "order: {}",
        timeout_s, decision.summary);
    return std::move(*first_waiting);
  }

 private:
  static Placement Infeasible(const Request& request,
                              const std::vector<std::unique_ptr<Evaluator>>& evaluators,
                              std::vector<ScanResult>& scans, const Options& options) {
    Placement placement;
    Decision& decision = placement.decision;
    decision.infeasible = true;
    decision.outcome = request.wait_if_infeasible ? Outcome::kPending : Outcome::kInfeasible;
    for (size_t i = 0; i < scans.size(); ++i) {
      size_t room = options.max_reasons - std::min(options.max_reasons, decision.why.size());
      if (!scans[i].no_candidates.empty()) {
        if (room > 0) {
          decision.why.push_back({fmt::format("configs[{}]", i), scans[i].no_candidates});
        } else {
          decision.why_omitted += 1;
        }
        continue;
      }
      ExplainMisses(*evaluators[i], std::move(scans[i].misses), room, 0, decision);
    }
    decision.summary = fmt::format(
        "{}{}", request.wait_if_infeasible ? "infeasible, waiting as asked: " : "infeasible: ",
        JoinReasons(decision, 2));
    return placement;
  }
};

}  // namespace

const PlacementPolicy& InputOrderPolicy() {
  static const PlacementPolicy* const policy = new InputOrder();
  return *policy;
}

}  // namespace meridian::control::scheduler
