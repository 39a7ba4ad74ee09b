// No pin: every resource of the job's cloud is a candidate, and the best-ranked one that has room
// now wins (evaluate.h). This is where live capacity pays: the job goes where nodes are free now
// instead of waiting on a fixed first choice.
#include "control/scheduler/policy.h"

namespace meridian::control::scheduler {
namespace {

class CapacityAware final : public PlacementPolicy {
 public:
  Placement Decide(const Request& request, const Snapshot& snapshot, const Options& options,
                   bool want_hold) const override {
    const spec::ComputeConfig& compute = request.config->compute_config;
    Demand demand = CompileDemand(compute, compute.target, snapshot);
    Evaluator evaluator(request, demand, snapshot, options);
    ScanResult scan = evaluator.Scan("");
    return MakeDecision(request, evaluator, scan, options, /*pinned=*/false,
                        /*config_index=*/-1, want_hold);
  }
};

}  // namespace

const PlacementPolicy& CapacityAwarePolicy() {
  static const PlacementPolicy* const policy = new CapacityAware();
  return *policy;
}

}  // namespace meridian::control::scheduler
