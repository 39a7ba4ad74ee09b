// compute_config.cloud_resource: the job runs there or nowhere. A pinned resource that does not
// exist (or is in another cloud) makes the job infeasible; one that is full, unhealthy or on
// probation keeps it pending.
#include "control/scheduler/policy.h"

namespace meridian::control::scheduler {
namespace {

class Pinned final : public PlacementPolicy {
 public:
  Placement Decide(const Request& request, const Snapshot& snapshot, const Options& options,
                   bool want_hold) const override {
    const spec::ComputeConfig& compute = request.config->compute_config;
    Demand demand = CompileDemand(compute, compute.target, snapshot);
    Evaluator evaluator(request, demand, snapshot, options);
    ScanResult scan = evaluator.Scan(compute.target.cloud_resource);
    return MakeDecision(request, evaluator, scan, options, /*pinned=*/true,
                        /*config_index=*/-1, want_hold);
  }
};

}  // namespace

const PlacementPolicy& PinnedPolicy() {
  static const PlacementPolicy* const policy = new Pinned();
  return *policy;
}

}  // namespace meridian::control::scheduler
