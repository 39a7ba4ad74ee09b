// Internal to the scheduler: one placement policy per way a job names where it may run, behind one
// interface, each in its own file:
//   pinned_policy.cc          compute_config.cloud_resource: that resource only
//   input_order_policy.cc     compute_config.configs: Anyscale's input_order with its timeout
//   capacity_aware_policy.cc  anything else: every resource of the job's cloud, ranked
// A policy only chooses which resources to look at and in what order; fitting and ranking are the
// Evaluator's (evaluate.h), and the wording of decisions is shared (MakeDecision).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "control/scheduler/evaluate.h"
#include "control/scheduler/scheduler.h"

namespace meridian::control::scheduler {

// For PlanQueue: the nodes a waiting job would hold, on the resource closest to fitting it.
struct HoldHint {
  size_t resource = 0;
  std::vector<Take> needs;  // the whole gang, by shape
};

struct Placement {
  Decision decision;
  std::optional<HoldHint> hold;  // pending jobs that wait for capacity on a healthy resource
};

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;
  // `want_hold`: also find the HoldHint (PlanQueue); Place() does without.
  virtual Placement Decide(const Request& request, const Snapshot& snapshot, const Options& options,
                           bool want_hold) const = 0;
};

const PlacementPolicy& PinnedPolicy();
const PlacementPolicy& InputOrderPolicy();
const PlacementPolicy& CapacityAwarePolicy();
// The policy for a request's config.
const PlacementPolicy& PolicyFor(const spec::JobConfig& config);

// Words the decision for one scanned target: placed on scan.best, or pending/infeasible with the
// most relevant reasons. `pinned`: the scan looked at one named resource only. `config_index` goes
// into the decision.
Placement MakeDecision(const Request& request, Evaluator& evaluator, ScanResult& scan,
                       const Options& options, bool pinned, int config_index, bool want_hold);

// Appends the reasons for `misses` to decision.why, most relevant first, at most `limit`; adds the
// rest and `not_listed_elsewhere` to why_omitted. Returns the first one's verdict.
Verdict ExplainMisses(Evaluator& evaluator, std::vector<Miss> misses, size_t limit,
                      size_t not_listed_elsewhere, Decision& decision);

// "a: reason; b: reason (+3 more)": the first `count` reasons of a decision for its summary.
std::string JoinReasons(const Decision& decision, size_t count);

}  // namespace meridian::control::scheduler
