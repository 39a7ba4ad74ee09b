// Place(): picks the policy for the job and words its decision.
#include <algorithm>
#include <tuple>

#include "control/scheduler/policy.h"
#include "fmt/format.h"

namespace meridian::control::scheduler {
namespace {

// A placed job's summary names at most this many resources it passed over: an event is one line.
constexpr size_t kPlacedReasons = 2;
// How many of the most hopeful waiting resources are checked for a hold.
constexpr size_t kHoldCandidates = 8;

std::tuple<Verdict, int32_t, int32_t, uint32_t> MissKey(const Miss& miss) {
  return {miss.verdict, miss.region_rank, miss.missing, miss.resource};
}

// The resource closest to fitting a waiting job (fewest nodes short, then preferred region), if
// the job waits only for nodes there: not for a quota, not for the resource to recover.
std::optional<HoldHint> FindHold(Evaluator& evaluator, const std::vector<Miss>& misses) {
  std::vector<const Miss*> candidates;
  for (const Miss& miss : misses) {
    if (miss.verdict == Verdict::kShort || miss.verdict == Verdict::kHeld) {
      candidates.push_back(&miss);
    }
  }
  size_t count = std::min(kHoldCandidates, candidates.size());
  auto closer = [](const Miss* a, const Miss* b) {
    return std::tie(a->missing, a->region_rank, a->resource) <
           std::tie(b->missing, b->region_rank, b->resource);
  };
  std::partial_sort(candidates.begin(), candidates.begin() + count, candidates.end(), closer);
  for (size_t i = 0; i < count; ++i) {
    Verdict verdict = evaluator.Explain(candidates[i]->resource).verdict;
    if (verdict == Verdict::kShort || verdict == Verdict::kHeld) {
      return HoldHint{candidates[i]->resource, evaluator.Needs(candidates[i]->resource)};
    }
  }
  return std::nullopt;
}

void FillPlaced(const Evaluator& evaluator, const Evaluation& best, Decision& decision) {
  const Snapshot& snapshot = evaluator.snapshot();
  size_t resource = best.score.resource;
  decision.outcome = Outcome::kPlaced;
  decision.resource_index = resource;
  decision.cloud_resource = snapshot.resource(resource).name;
  decision.region = snapshot.resource(resource).region;
  decision.gpus = best.gpus;
  decision.cpus = best.cpus;
  for (const Take& take : best.takes) {
    const Slot& slot = snapshot.slot(resource, take.shape);
    NodeAssignment node;
    node.group = take.group >= 0 ? std::string(evaluator.demand().groups[take.group].label)
                                 : std::string("auto");
    node.instance_type = snapshot.Name(slot.name_id);
    node.market = slot.market;
    node.count = take.count;
    node.shape_index = static_cast<size_t>(take.shape);
    decision.nodes.push_back(std::move(node));
  }
}

}  // namespace

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kPlaced:
      return "placed";
    case Outcome::kPending:
      return "pending";
    case Outcome::kInfeasible:
      return "infeasible";
  }
  return "pending";
}

Request RequestFor(std::string job_id, const spec::JobConfig& config, int64_t submit_order) {
  Request request;
  request.job_id = std::move(job_id);
  request.config = &config;
  request.cloud = config.cloud;
  request.project = config.project;
  request.priority = config.priority;
  request.submit_order = submit_order;
  return request;
}

const PlacementPolicy& PolicyFor(const spec::JobConfig& config) {
  if (!config.compute_config.configs.empty()) return InputOrderPolicy();
  if (!config.compute_config.target.cloud_resource.empty()) return PinnedPolicy();
  return CapacityAwarePolicy();
}

Decision Place(const Request& request, const Snapshot& snapshot, const Options& options) {
  return PolicyFor(*request.config)
      .Decide(request, snapshot, options, /*want_hold=*/false)
      .decision;
}

Verdict ExplainMisses(Evaluator& evaluator, std::vector<Miss> misses, size_t limit,
                      size_t not_listed_elsewhere, Decision& decision) {
  size_t count = std::min(limit, misses.size());
  std::partial_sort(misses.begin(), misses.begin() + count, misses.end(),
                    [](const Miss& a, const Miss& b) { return MissKey(a) < MissKey(b); });
  struct Listed {
    Miss miss;
    Evaluator::Reason reason;
  };
  std::vector<Listed> listed;
  listed.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    listed.push_back({misses[i], evaluator.Explain(misses[i].resource)});
    listed.back().miss.verdict = listed.back().reason.verdict;  // provisional -> exact
  }
  std::stable_sort(listed.begin(), listed.end(), [](const Listed& a, const Listed& b) {
    return MissKey(a.miss) < MissKey(b.miss);
  });
  for (Listed& item : listed) {
    decision.why.push_back(
        {evaluator.snapshot().resource(item.miss.resource).name, std::move(item.reason.text)});
  }
  decision.why_omitted += misses.size() - count + not_listed_elsewhere;
  return listed.empty() ? Verdict::kNoShape : listed.front().miss.verdict;
}

std::string JoinReasons(const Decision& decision, size_t count) {
  std::string text;
  size_t shown = std::min(count, decision.why.size());
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) text += "; ";
    text += fmt::format("{}: {}", decision.why[i].resource, decision.why[i].reason);
  }
  size_t more = decision.why.size() + decision.why_omitted - shown;
  if (more > 0) text += fmt::format(" (+{} more)", more);
  return text;
}

Placement MakeDecision(const Request& request, Evaluator& evaluator, ScanResult& scan,
                       const Options& options, bool pinned, int config_index, bool want_hold) {
  Placement placement;
  Decision& decision = placement.decision;
  decision.config_index = config_index;
  if (scan.found) {
    FillPlaced(evaluator, scan.best, decision);
    // Say why resources at least as preferred did not get it: that is what a reader of the
    // event wonders about.
    std::vector<Miss> passed_over;
    for (const Miss& miss : scan.misses) {
      if (miss.region_rank <= scan.best.score.region_rank) passed_over.push_back(miss);
    }
    ExplainMisses(evaluator, std::move(passed_over), std::min(options.max_reasons, kPlacedReasons),
                  0, decision);
    decision.summary = fmt::format("placed on {} ({})", decision.cloud_resource, decision.region);
    if (!decision.why.empty()) decision.summary += "; " + JoinReasons(decision, 2);
    return placement;
  }
  std::string_view infeasible_prefix =
      request.wait_if_infeasible ? "infeasible, waiting as asked: " : "infeasible: ";
  decision.outcome = request.wait_if_infeasible ? Outcome::kPending : Outcome::kInfeasible;
  if (!scan.no_candidates.empty()) {
    decision.infeasible = true;
    decision.summary = fmt::format("{}{}", infeasible_prefix, scan.no_candidates);
    return placement;
  }
  if (!pinned) evaluator.AddUnvisited(scan, options.max_reasons);
  size_t unvisited = pinned ? 0 : evaluator.scope_size() - scan.misses.size();
  if (scan.ever && want_hold) placement.hold = FindHold(evaluator, scan.misses);
  Verdict first =
      ExplainMisses(evaluator, std::move(scan.misses), options.max_reasons, unvisited, decision);
  if (scan.ever) {
    decision.outcome = Outcome::kPending;
    decision.summary =
        (first == Verdict::kQuota ? "waiting for quota: " : "waiting for capacity: ") +
        JoinReasons(decision, 2);
  } else {
    decision.infeasible = true;
    decision.summary = fmt::format("{}{}", infeasible_prefix, JoinReasons(decision, 2));
  }
  return placement;
}

}  // namespace meridian::control::scheduler
