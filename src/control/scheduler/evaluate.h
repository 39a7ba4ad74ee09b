// Internal to the scheduler: whether one compiled gang fits one resource, how well, and why not;
// and the scan over the resources a policy allows. Every policy ranks fitting resources with the
// same Score, so a job placed by any policy lands where the same rules say.
//
// Ranking among resources that fit now, each key deciding only ties of the one before:
//  1. region: the job's compute_config.regions in order, then the region of its data
//     (Request::data_region), then every other region;
//  2. market: fewest PREFER_SPOT nodes that had to fall back to on-demand;
//  3. packing (best fit): fewest free nodes left, after the gang, of the shapes it uses, so large
//     holes stay free for large gangs;
//  4. price per hour of the gang, where every shape it uses has a price (unpriced ranks last);
//  5. resource name.
//
// Performance: a scan does not evaluate every resource. Through the snapshot's free-node index it
// evaluates only resources with enough free nodes of the job's most selective named shape (or,
// for auto-selected workers, of some shape that could serve the ask). It looks region rank by
// region rank, stopping at the first rank where something fits; within a rank it goes from the
// tightest fit up, stops once no further resource can rank better, and compares at most
// Options::max_fits_compared resources that fit (as kube-scheduler bounds its scoring with
// percentageOfNodesToScore). Of the resources short of nodes it keeps only the most hopeful few,
// to explain why the job waits. Others are evaluated in full only until one shows that the job
// could ever fit.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "control/scheduler/auto_select.h"
#include "control/scheduler/demand.h"
#include "control/scheduler/scheduler.h"
#include "control/scheduler/snapshot.h"

namespace meridian::control::scheduler {

// Why a resource did or did not take a job, in the order reasons are listed: most hopeful first.
enum class Verdict : uint8_t {
  kFits,
  kQuota,      // fits, but a quota is used up
  kHeld,       // enough free nodes, but a job ahead in the queue holds them
  kShort,      // too few free nodes now
  kUntrusted,  // on probation after flapping
  kUnhealthy,
  kUnknown,     // has not reported yet: might fit
  kQuotaNever,  // the gang is larger than a quota allows
  kTooSmall,    // fewer nodes in total than the gang needs
  kNoShape,     // lacks an instance type the gang needs
};
inline bool CouldEverFit(Verdict verdict) { return verdict <= Verdict::kUnknown; }

struct Take {
  int32_t group = 0;  // index into Demand::groups, or -1/-2 for auto-selected GPU/CPU workers
  int32_t shape = 0;  // index into the resource's shapes
  int32_t count = 0;
  bool off_preference = false;  // a PREFER_SPOT group on on-demand nodes
};

struct Score {
  int32_t region_rank = 0;
  int32_t market_penalty = 0;
  int64_t leftover = 0;
  double price = 0;
  uint32_t resource = 0;
  bool BetterThan(const Score& other) const;
};

// A full evaluation of one resource.
struct Evaluation {
  Verdict verdict = Verdict::kNoShape;
  std::vector<Take> takes;  // kFits: the gang's nodes
  int32_t missing = 0;      // kShort, kHeld: nodes short
  // The first group that does not fit (kShort, kHeld, kTooSmall, kNoShape).
  int32_t failed_group = -1;
  int32_t failed_shape = -1;
  int32_t failed_need = 0;
  std::string auto_failure;  // kTooSmall, kNoShape of auto-selected workers
  int32_t quota = -1;        // kQuota, kQuotaNever: index into Snapshot::quotas()
  char quota_what = 'g';     // 'g' GPUs, 'c' CPUs, 'j' running jobs
  double quota_need = 0;
  int64_t gpus = 0;
  double cpus = 0;
  Score score;  // kFits
};

// A resource that did not take the job. `verdict` is provisional for resources the scan rejected
// on a cheap test; Evaluator::Explain evaluates fully before it words a reason.
struct Miss {
  uint32_t resource = 0;
  Verdict verdict = Verdict::kNoShape;
  int32_t region_rank = 0;
  int32_t missing = 0;
};

struct ScanResult {
  bool ever = false;   // some candidate could hold the gang (now or later)
  bool found = false;  // some candidate takes it now: `best`
  Evaluation best;
  std::vector<Miss> misses;   // visited candidates that cannot take it now
  std::string no_candidates;  // why the scan had nothing to look at ("" when it had)
};

class Evaluator {
 public:
  // All arguments must outlive the Evaluator.
  Evaluator(const Request& request, const Demand& demand, const Snapshot& snapshot,
            const Options& options);

  // Every resource the request may use, or only `pinned` when not empty.
  ScanResult Scan(std::string_view pinned);
  // `now_only`: the caller already knows the job could fit somewhere some day, so a resource that
  // cannot take it now gets a provisional verdict (kShort, kQuota) without the checks against
  // totals (Explain evaluates in full).
  void Evaluate(size_t resource, Evaluation& out, bool now_only = false);
  // The exact verdict for `resource` and its reason, e.g. {kShort, "0 of 2 free 1xT4 (2
  // allocated), needs 1"}.
  struct Reason {
    Verdict verdict;
    std::string text;
  };
  Reason Explain(size_t resource);
  // The nodes the whole gang takes on `resource` when it is empty.
  std::vector<Take> Needs(size_t resource);
  // Adds resources in scope the scan did not visit (they lack the filter shape) until `misses`
  // has `limit` entries.
  void AddUnvisited(ScanResult& scan, size_t limit);
  // Resources this request may use (its cloud's, or all).
  size_t scope_size() const;
  int32_t RegionRank(size_t resource) const {
    return region_ranks_.empty() ? 0 : region_ranks_[snapshot_.region_id(resource)];
  }
  const Demand& demand() const { return demand_; }
  const Snapshot& snapshot() const { return snapshot_; }

 private:
  bool InScope(size_t resource) const {
    return !cloud_filter_ || snapshot_.cloud_id(resource) == cloud_id_;
  }
  void Visit(size_t resource, ScanResult& result);
  // One list of the free-node index to walk, and how many free nodes an entry needs to pass.
  struct Walk {
    const std::vector<FreeEntry>* entries;
    int32_t needed;
    bool bounded;  // a single-market filter group: stop early on packing
  };
  void ScanPhases(const std::vector<Walk>& walks, ScanResult& result);
  void ScanNamed(ScanResult& result);
  void ScanAuto(ScanResult& result);
  // Whether no single shape of `resource` has enough free GPUs (or CPUs) for the ask: it cannot
  // take the job now.
  bool TooFewFreeForAsk(size_t resource, const ResourceAsk& ask) const;
  // False when the job's head has no instance type and the resource's default head shape has no
  // free node: it cannot take the job now (a cheap test before the full evaluation).
  bool HeadMayFit(size_t resource) const;
  void ScanEvery(ScanResult& result);
  // Evaluates unvisited candidates in full until one shows the job could ever fit.
  void FindEver(ScanResult& result);
  // A cheap guess at why an unvisited resource does not take the job (Explain checks it).
  Verdict ProvisionalVerdict(size_t resource) const;
  int ChooseFilterGroup() const;
  bool Seen(size_t resource) const { return seen_[resource] != 0; }
  void MarkSeen(size_t resource) { seen_[resource] = 1; }
  // Shapes for each group on `resource` (auto-selected ones counted `by`); false:
  // kNoShape/kTooSmall.
  bool Resolve(size_t resource, CountBy by, Evaluation& out);
  // Greedy assignment of resolved groups to nodes counted `by`; returns the nodes short.
  int32_t Assign(size_t resource, CountBy by, std::vector<Take>& takes, Evaluation* failure);
  bool CouldRunThere(size_t resource, Evaluation& out);
  void Usage(size_t resource, Evaluation& out) const;
  bool QuotaBlocks(size_t resource, bool ever, Evaluation& out) const;
  void ScoreFit(size_t resource, Evaluation& out) const;
  std::string ExplainEvaluated(size_t resource, const Evaluation& evaluation) const;
  std::string ExplainShortage(size_t resource, const Evaluation& evaluation) const;
  std::string ExplainQuota(const Evaluation& evaluation) const;

  struct Resolved {
    int32_t group;
    int32_t count;
    int32_t preferred;
    int32_t fallback;  // -1: none
    bool preferred_off_market;
    bool prefer_rule;  // assigned after the groups with a required market
  };

  // Constant after construction.
  const Request& request_;
  const Demand& demand_;
  const Snapshot& snapshot_;
  size_t max_fits_compared_;
  bool cloud_filter_ = false;
  int32_t cloud_id_ = -1;
  std::vector<int32_t> region_ranks_;    // by region id; empty: all 0
  std::vector<int32_t> distinct_ranks_;  // ascending
  struct QuotaCheck {
    size_t quota;
    int32_t cloud_id;   // -1: any cloud
    int32_t region_id;  // -1: any region
  };
  std::vector<QuotaCheck> quotas_;            // quotas whose project matches the request
  std::vector<uint8_t> accelerator_matches_;  // auto-selected workers (AcceleratorMatches)
  bool default_head_ = false;                 // the head node has no instance type
  // The named group whose free-node index the scan walks; -1: none (no named group).
  int filter_group_ = -1;
  // The most nodes of the filter group's shape the gang can take (for stopping early).
  int32_t filter_shape_max_nodes_ = 0;

  // Scratch, reused across resources.
  std::vector<uint8_t> seen_;  // by resource: visited or listed by this scan
  size_t fits_seen_ = 0;       // resources evaluated that fit now
  std::vector<Resolved> resolved_;
  std::vector<Take> scratch_takes_;
  Evaluation scratch_;
};

}  // namespace meridian::control::scheduler
