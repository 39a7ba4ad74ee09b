#include "control/scheduler/evaluate.h"

#include <algorithm>
#include <cmath>

#include "fmt/format.h"

namespace meridian::control::scheduler {
namespace {

int32_t TakenOf(const std::vector<Take>& takes, int32_t shape) {
  int32_t taken = 0;
  for (const Take& take : takes) {
    if (take.shape == shape) taken += take.count;
  }
  return taken;
}

std::string_view SpotSuffix(const Slot& slot) {
  return slot.market == Market::kSpot ? " (SPOT)" : "";
}

}  // namespace

bool Score::BetterThan(const Score& other) const {
  if (region_rank != other.region_rank) return region_rank < other.region_rank;
  if (market_penalty != other.market_penalty) return market_penalty < other.market_penalty;
  if (leftover != other.leftover) return leftover < other.leftover;
  if (price != other.price) return price < other.price;
  return resource < other.resource;
}

Evaluator::Evaluator(const Request& request, const Demand& demand, const Snapshot& snapshot,
                     const Options& options)
    : request_(request),
      demand_(demand),
      snapshot_(snapshot),
      max_fits_compared_(options.max_fits_compared == 0 ? SIZE_MAX : options.max_fits_compared) {
  if (!request.cloud.empty()) {
    cloud_filter_ = true;
    cloud_id_ = snapshot.CloudId(request.cloud);
  }
  const std::vector<std::string>& preferred = request.config->compute_config.regions;
  if (!preferred.empty() || !request.data_region.empty()) {
    region_ranks_.resize(snapshot.region_count());
    for (size_t id = 0; id < region_ranks_.size(); ++id) {
      const std::string& region = snapshot.region_name(static_cast<int32_t>(id));
      auto it = std::find(preferred.begin(), preferred.end(), region);
      int32_t rank = static_cast<int32_t>(preferred.size()) + 1;
      if (it != preferred.end()) {
        rank = static_cast<int32_t>(it - preferred.begin());
      } else if (region == request.data_region) {
        rank = static_cast<int32_t>(preferred.size());
      }
      region_ranks_[id] = rank;
    }
    distinct_ranks_ = region_ranks_;
    std::sort(distinct_ranks_.begin(), distinct_ranks_.end());
    distinct_ranks_.erase(std::unique(distinct_ranks_.begin(), distinct_ranks_.end()),
                          distinct_ranks_.end());
  } else {
    distinct_ranks_ = {0};
  }
  // A quota on a cloud or region with no resources applies to none of them.
  auto add_quota = [&](size_t quota) {
    QuotaCheck check{quota, snapshot.quota_cloud_id(quota), snapshot.quota_region_id(quota)};
    if (check.cloud_id != -2 && check.region_id != -2) quotas_.push_back(check);
  };
  for (size_t quota : snapshot.quotas_of_every_project()) add_quota(quota);
  if (!request.project.empty()) {
    for (size_t quota : snapshot.QuotasOfProject(request.project)) add_quota(quota);
  }
  if (demand.auto_ask) accelerator_matches_ = AcceleratorMatches(snapshot, *demand.auto_ask);
  filter_group_ = ChooseFilterGroup();
  if (filter_group_ >= 0) {
    int32_t name_id = demand.groups[filter_group_].name_id;
    for (const GroupDemand& group : demand.groups) {
      if (group.instance_type.empty() || group.name_id == name_id) {
        filter_shape_max_nodes_ += group.count;
      }
    }
  }
  seen_.assign(snapshot.size(), 0);
  default_head_ = !demand.groups.empty() && demand.groups.front().instance_type.empty();
}

// The named group whose shape the fewest resources have enough free nodes of now: scanning its
// free-node index visits the fewest resources. A name nobody offers wins outright (only
// resources that have not reported could hold the job).
int Evaluator::ChooseFilterGroup() const {
  int chosen = -1;
  size_t chosen_passing = SIZE_MAX;
  for (size_t g = 0; g < demand_.groups.size(); ++g) {
    const GroupDemand& group = demand_.groups[g];
    if (group.instance_type.empty()) continue;
    if (group.name_id < 0) return static_cast<int>(g);
    size_t passing = 0;
    for (Market market : {Market::kOnDemand, Market::kSpot}) {
      bool usable = group.rule == MarketRule::kPreferSpot ||
                    (market == Market::kSpot) == (group.rule == MarketRule::kSpot);
      if (!usable) continue;
      const std::vector<FreeEntry>& entries = snapshot_.ByFree(group.name_id, market).entries;
      passing += static_cast<size_t>(
          std::partition_point(entries.begin(), entries.end(),
                               [&](const FreeEntry& e) { return e.free >= group.count; }) -
          entries.begin());
    }
    if (passing < chosen_passing) {
      chosen = static_cast<int>(g);
      chosen_passing = passing;
    }
  }
  return chosen;
}

size_t Evaluator::scope_size() const {
  if (!cloud_filter_) return snapshot_.size();
  return cloud_id_ < 0 ? 0 : snapshot_.resources_in_cloud(cloud_id_);
}

ScanResult Evaluator::Scan(std::string_view pinned) {
  ScanResult result;
  result.misses.reserve(48);
  if (!demand_.impossible.empty()) {
    result.no_candidates = demand_.impossible;
    return result;
  }
  if (!pinned.empty()) {
    std::optional<size_t> index = snapshot_.Find(pinned);
    if (!index) {
      result.no_candidates = fmt::format("cloud resource {} does not exist", pinned);
    } else if (!InScope(*index)) {
      result.no_candidates =
          fmt::format("cloud resource {} is not in cloud {}", pinned, request_.cloud);
    } else {
      Visit(*index, result);
    }
    return result;
  }
  if (scope_size() == 0) {
    result.no_candidates = cloud_filter_
                               ? fmt::format("cloud {} has no cloud resources", request_.cloud)
                               : std::string("no cloud resource is registered");
    return result;
  }
  if (filter_group_ >= 0) {
    ScanNamed(result);
  } else if (demand_.auto_ask) {
    ScanAuto(result);
  } else {
    ScanEvery(result);
  }
  // A resource that has not reported may offer what the job needs: the job may fit it.
  for (uint32_t resource : snapshot_.unknown_resources()) {
    if (InScope(resource) && !Seen(resource)) Visit(resource, result);
  }
  if (!result.ever) FindEver(result);
  return result;
}

void Evaluator::Visit(size_t resource, ScanResult& result) {
  MarkSeen(resource);
  Evaluate(resource, scratch_, /*now_only=*/result.ever);
  if (scratch_.verdict == Verdict::kFits) {
    fits_seen_ += 1;
    result.ever = true;
    if (!result.found || scratch_.score.BetterThan(result.best.score)) {
      std::swap(result.best, scratch_);  // keeps both buffers: no allocation per resource
      result.found = true;
    }
    return;
  }
  result.ever = result.ever || CouldEverFit(scratch_.verdict);
  result.misses.push_back(
      {static_cast<uint32_t>(resource), scratch_.verdict, RegionRank(resource), scratch_.missing});
}

// Region rank by region rank (the first key of the ranking): a rank where something fits ends
// the scan. Within a rank, each list is walked from its tightest passing entry up (best fit ranks
// those first); in a bounded walk, once the best is unpenalized an entry whose own shape alone
// would leave more free nodes than the best cannot win, nor can any after it.
void Evaluator::ScanPhases(const std::vector<Walk>& walks, ScanResult& result) {
  for (int32_t rank : distinct_ranks_) {
    size_t fits_before = fits_seen_;
    for (const Walk& walk : walks) {
      const std::vector<FreeEntry>& entries = *walk.entries;
      auto passing = std::partition_point(entries.begin(), entries.end(), [&](const FreeEntry& e) {
        return e.free >= walk.needed;
      });
      for (auto it = passing;
           it != entries.begin() && fits_seen_ - fits_before < max_fits_compared_;) {
        --it;
        if (RegionRank(it->resource) != rank || !InScope(it->resource) || Seen(it->resource) ||
            (result.ever && !HeadMayFit(it->resource))) {
          continue;
        }
        if (walk.bounded && result.found && result.best.score.market_penalty == 0 &&
            it->free - filter_shape_max_nodes_ > result.best.score.leftover) {
          break;
        }
        Visit(it->resource, result);
      }
    }
    if (result.found) return;
  }
}

// Through the free-node index of the filter group's shape; of the entries short of nodes, only
// the most hopeful are kept to explain the wait.
void Evaluator::ScanNamed(ScanResult& result) {
  constexpr size_t kShortListed = 32;
  const GroupDemand& group = demand_.groups[filter_group_];
  if (group.name_id < 0) return;
  std::vector<Walk> walks;
  if (group.rule != MarketRule::kOnDemand) {
    walks.push_back({&snapshot_.ByFree(group.name_id, Market::kSpot).entries, group.count,
                     group.rule == MarketRule::kSpot});
  }
  if (group.rule != MarketRule::kSpot) {
    walks.push_back({&snapshot_.ByFree(group.name_id, Market::kOnDemand).entries, group.count,
                     group.rule == MarketRule::kOnDemand});
  }
  ScanPhases(walks, result);
  for (const Walk& walk : walks) {
    const std::vector<FreeEntry>& entries = *walk.entries;
    auto it = std::partition_point(entries.begin(), entries.end(),
                                   [&](const FreeEntry& e) { return e.free >= walk.needed; });
    for (size_t listed = 0; it != entries.end() && listed < kShortListed; ++it) {
      if (!InScope(it->resource) || Seen(it->resource)) continue;
      listed += 1;
      if (!result.ever) {
        Visit(it->resource, result);  // also learns whether the job could ever fit
        continue;
      }
      MarkSeen(it->resource);
      result.misses.push_back(
          {it->resource, Verdict::kShort, RegionRank(it->resource), group.count - it->free});
    }
  }
}

// Auto-selected workers: every resource, region rank by region rank, in name order, skipping at
// a glance those without enough GPUs (or, for a CPU-only ask, CPUs) free in one shape.
void Evaluator::ScanAuto(ScanResult& result) {
  const ResourceAsk& ask = *demand_.auto_ask;
  for (int32_t rank : distinct_ranks_) {
    size_t fits_before = fits_seen_;
    for (size_t resource = 0;
         resource < snapshot_.size() && fits_seen_ - fits_before < max_fits_compared_; ++resource) {
      if (RegionRank(resource) != rank || !InScope(resource) || Seen(resource)) continue;
      if (result.ever) {
        if (!snapshot_.accepts_work(resource)) continue;  // AddUnvisited lists it
        if (!HeadMayFit(resource) || TooFewFreeForAsk(resource, ask)) continue;
      }
      Visit(resource, result);
    }
    if (result.found) return;
  }
}

bool Evaluator::HeadMayFit(size_t resource) const {
  if (!default_head_) return true;
  int32_t shape = snapshot_.default_head_shape(resource);
  return shape >= 0 && snapshot_.slot(resource, shape).Free() >= 1;
}

bool Evaluator::TooFewFreeForAsk(size_t resource, const ResourceAsk& ask) const {
  if (ask.gpu <= 0) return snapshot_.cpu_block(resource) < ask.cpu;
  if (accelerator_matches_.empty()) return snapshot_.gpu_block(resource) < ask.gpu;
  for (const auto& [set, gpus] : snapshot_.gpu_blocks_by_accelerator(resource)) {
    if (accelerator_matches_[set] && gpus >= ask.gpu) return false;
  }
  return true;
}

// No named shape to index on (a head-only job): every resource, region rank by region rank, in
// name order, comparing at most max_fits_compared that fit.
void Evaluator::ScanEvery(ScanResult& result) {
  for (int32_t rank : distinct_ranks_) {
    size_t fits_before = fits_seen_;
    for (size_t resource = 0;
         resource < snapshot_.size() && fits_seen_ - fits_before < max_fits_compared_; ++resource) {
      if (RegionRank(resource) != rank || !InScope(resource)) continue;
      if (result.ever && (!snapshot_.accepts_work(resource) || !HeadMayFit(resource))) {
        continue;  // AddUnvisited lists it if there is room
      }
      Visit(resource, result);
    }
    if (result.found) return;
  }
}

void Evaluator::FindEver(ScanResult& result) {
  auto try_resource = [&](size_t resource) {
    if (!InScope(resource) || Seen(resource)) return;
    Visit(resource, result);
  };
  if (filter_group_ >= 0) {
    int32_t name_id = demand_.groups[filter_group_].name_id;
    if (name_id < 0) return;
    for (const Offer& offer : snapshot_.OfferedBy(name_id)) {
      try_resource(offer.resource);
      if (result.ever) return;
    }
    return;
  }
  for (size_t resource = 0; resource < snapshot_.size() && !result.ever; ++resource) {
    try_resource(resource);
  }
}

Verdict Evaluator::ProvisionalVerdict(size_t resource) const {
  const ResourceState& state = snapshot_.resource(resource);
  if (state.health == ResourceHealth::kUnknown) return Verdict::kUnknown;
  if (state.health == ResourceHealth::kUnhealthy) return Verdict::kUnhealthy;
  if (!state.trusted) return Verdict::kUntrusted;
  if (filter_group_ >= 0) {
    int32_t name_id = demand_.groups[filter_group_].name_id;
    if (name_id < 0 || (snapshot_.FindShape(resource, name_id, Market::kOnDemand) < 0 &&
                        snapshot_.FindShape(resource, name_id, Market::kSpot) < 0)) {
      return Verdict::kNoShape;
    }
  }
  return Verdict::kShort;
}

bool Evaluator::Resolve(size_t resource, CountBy by, Evaluation& out) {
  resolved_.clear();
  for (size_t g = 0; g < demand_.groups.size(); ++g) {
    const GroupDemand& group = demand_.groups[g];
    Resolved item{
        static_cast<int32_t>(g), group.count, -1, -1, false, group.rule == MarketRule::kPreferSpot};
    if (group.instance_type.empty()) {
      item.preferred = snapshot_.default_head_shape(resource);
    } else if (group.name_id >= 0) {
      switch (group.rule) {
        case MarketRule::kOnDemand:
          item.preferred = snapshot_.FindShape(resource, group.name_id, Market::kOnDemand);
          break;
        case MarketRule::kSpot:
          item.preferred = snapshot_.FindShape(resource, group.name_id, Market::kSpot);
          break;
        case MarketRule::kPreferSpot:
          item.preferred = snapshot_.FindShape(resource, group.name_id, Market::kSpot);
          item.fallback = snapshot_.FindShape(resource, group.name_id, Market::kOnDemand);
          if (item.preferred < 0) {
            item.preferred = std::exchange(item.fallback, -1);
            item.preferred_off_market = true;
          }
          break;
      }
    }
    if (item.preferred < 0) {
      out.verdict = Verdict::kNoShape;
      out.failed_group = static_cast<int32_t>(g);
      return false;
    }
    resolved_.push_back(item);
  }
  if (!demand_.auto_ask) return true;
  AutoChoice choice = ChooseWorkers(snapshot_, resource, *demand_.auto_ask, accelerator_matches_,
                                    by, resolved_.front().preferred);
  if (!choice.failure.empty()) {
    out.verdict = choice.shape_missing ? Verdict::kNoShape : Verdict::kTooSmall;
    out.auto_failure = std::move(choice.failure);
    return false;
  }
  if (choice.gpu_shape >= 0) {
    resolved_.push_back({-1, choice.gpu_count, choice.gpu_shape, -1, false, false});
  }
  if (choice.cpu_shape >= 0) {
    resolved_.push_back({-2, choice.cpu_count, choice.cpu_shape, -1, false, false});
  }
  return true;
}

// Groups with a required market first, so a PREFER_SPOT group never takes the spot nodes a SPOT
// group needs.
int32_t Evaluator::Assign(size_t resource, CountBy by, std::vector<Take>& takes,
                          Evaluation* failure) {
  takes.clear();
  int32_t missing = 0;
  for (bool prefer_pass : {false, true}) {
    for (const Resolved& item : resolved_) {
      if (item.prefer_rule != prefer_pass) continue;
      int32_t preferred =
          Available(snapshot_.slot(resource, item.preferred), by) - TakenOf(takes, item.preferred);
      if (preferred >= item.count) {
        takes.push_back({item.group, item.preferred, item.count, item.preferred_off_market});
        continue;
      }
      int32_t fallback = -1;
      if (item.fallback >= 0) {
        fallback =
            Available(snapshot_.slot(resource, item.fallback), by) - TakenOf(takes, item.fallback);
        if (fallback >= item.count) {
          takes.push_back({item.group, item.fallback, item.count, true});
          continue;
        }
      }
      int32_t shape = fallback > preferred ? item.fallback : item.preferred;
      missing += item.count - std::max(0, std::max(preferred, fallback));
      if (failure != nullptr && failure->failed_shape < 0) {
        failure->failed_group = item.group;
        failure->failed_shape = shape;
        failure->failed_need = item.count + TakenOf(takes, shape);
      }
    }
  }
  return missing;
}

void Evaluator::Usage(size_t resource, Evaluation& out) const {
  out.gpus = 0;
  out.cpus = 0;
  for (const Take& take : out.takes) {
    const Slot& slot = snapshot_.slot(resource, take.shape);
    out.gpus += static_cast<int64_t>(take.count) * slot.gpu;
    out.cpus += take.count * slot.cpu;
  }
}

// Whether the gang could ever run on `resource` (against total nodes, quota limits and health);
// false with the verdict set when it cannot now.
bool Evaluator::CouldRunThere(size_t resource, Evaluation& out) {
  const ResourceState& state = snapshot_.resource(resource);
  if (!Resolve(resource, CountBy::kTotal, out)) return false;
  if (Assign(resource, CountBy::kTotal, out.takes, &out) > 0) {
    out.verdict = Verdict::kTooSmall;
    return false;
  }
  Usage(resource, out);
  if (!quotas_.empty() && QuotaBlocks(resource, /*ever=*/true, out)) {
    out.verdict = Verdict::kQuotaNever;
    return false;
  }
  if (state.health != ResourceHealth::kHealthy || !state.trusted) {
    out.verdict =
        state.health != ResourceHealth::kHealthy ? Verdict::kUnhealthy : Verdict::kUntrusted;
    return false;
  }
  // Auto-selected workers are chosen again among free shapes; when none has room, the plan
  // chosen by totals says what is short.
  if (demand_.auto_ask && !Resolve(resource, CountBy::kFree, out)) {
    Resolve(resource, CountBy::kTotal, out);
  }
  return true;
}

void Evaluator::Evaluate(size_t resource, Evaluation& out, bool now_only) {
  out.verdict = Verdict::kNoShape;
  out.takes.clear();
  out.missing = 0;
  out.failed_group = out.failed_shape = -1;
  out.failed_need = 0;
  out.auto_failure.clear();
  out.quota = -1;
  if (snapshot_.resource(resource).health == ResourceHealth::kUnknown) {
    out.verdict = Verdict::kUnknown;
    return;
  }
  if (!now_only) {
    if (!CouldRunThere(resource, out)) return;
  } else if (!snapshot_.accepts_work(resource)) {
    out.verdict = snapshot_.resource(resource).health == ResourceHealth::kUnhealthy
                      ? Verdict::kUnhealthy
                      : Verdict::kUntrusted;
    return;
  } else if (!Resolve(resource, CountBy::kFree, out)) {
    // Named shapes missing: exact. Auto-selected workers without room now: provisional.
    if (demand_.auto_ask) {
      out.verdict = Verdict::kShort;
      out.missing = 1;
    }
    return;
  }
  // Can it now: against free nodes.
  out.failed_group = out.failed_shape = -1;
  out.auto_failure.clear();
  out.missing = Assign(resource, CountBy::kFree, out.takes, &out);
  if (out.missing > 0) {
    bool held =
        !now_only && Assign(resource, CountBy::kFreeIgnoringHolds, scratch_takes_, nullptr) == 0;
    out.verdict = held ? Verdict::kHeld : Verdict::kShort;
    return;
  }
  Usage(resource, out);
  if (!quotas_.empty() && QuotaBlocks(resource, /*ever=*/false, out)) {
    out.verdict = Verdict::kQuota;
    return;
  }
  ScoreFit(resource, out);
  out.verdict = Verdict::kFits;
}

bool Evaluator::QuotaBlocks(size_t resource, bool ever, Evaluation& out) const {
  int32_t cloud_id = snapshot_.cloud_id(resource);
  int32_t region_id = snapshot_.region_id(resource);
  for (const QuotaCheck& check : quotas_) {
    if (check.cloud_id >= 0 && check.cloud_id != cloud_id) continue;
    if (check.region_id >= 0 && check.region_id != region_id) continue;
    size_t index = check.quota;
    const Quota& quota = snapshot_.quotas()[index];
    auto blocks = [&](double used, double need, double limit, char what) {
      if (need <= 0 || (ever ? 0 : used) + need <= limit) return false;
      out.quota = static_cast<int32_t>(index);
      out.quota_what = what;
      out.quota_need = need;
      return true;
    };
    if (quota.max_gpus &&
        blocks(static_cast<double>(quota.used_gpus), static_cast<double>(out.gpus),
               static_cast<double>(*quota.max_gpus), 'g')) {
      return true;
    }
    if (quota.max_cpus && blocks(quota.used_cpus, out.cpus, *quota.max_cpus, 'c')) return true;
    if (quota.max_running_jobs &&
        blocks(quota.running_jobs, 1, static_cast<double>(*quota.max_running_jobs), 'j')) {
      return true;
    }
  }
  return false;
}

void Evaluator::ScoreFit(size_t resource, Evaluation& out) const {
  Score& score = out.score;
  score.resource = static_cast<uint32_t>(resource);
  score.region_rank = RegionRank(resource);
  score.market_penalty = 0;
  score.leftover = 0;
  score.price = 0;
  for (size_t i = 0; i < out.takes.size(); ++i) {
    const Take& take = out.takes[i];
    const Slot& slot = snapshot_.slot(resource, take.shape);
    if (take.off_preference) score.market_penalty += take.count;
    bool first_use = true;
    for (size_t j = 0; j < i; ++j) first_use = first_use && out.takes[j].shape != take.shape;
    if (first_use) score.leftover += slot.Free() - TakenOf(out.takes, take.shape);
    score.price = slot.price_per_hour < 0 ? std::numeric_limits<double>::infinity()
                                          : score.price + take.count * slot.price_per_hour;
  }
}

void Evaluator::AddUnvisited(ScanResult& scan, size_t limit) {
  for (size_t resource = 0; resource < snapshot_.size() && scan.misses.size() < limit; ++resource) {
    if (Seen(resource) || !InScope(resource)) continue;
    MarkSeen(resource);
    scan.misses.push_back(
        {static_cast<uint32_t>(resource), ProvisionalVerdict(resource), RegionRank(resource), 0});
  }
}

std::vector<Take> Evaluator::Needs(size_t resource) {
  std::vector<Take> needs;
  scratch_.failed_shape = -1;
  if (Resolve(resource, CountBy::kTotal, scratch_)) {
    Assign(resource, CountBy::kTotal, needs, nullptr);
  }
  return needs;
}

Evaluator::Reason Evaluator::Explain(size_t resource) {
  Evaluate(resource, scratch_);
  return {scratch_.verdict, ExplainEvaluated(resource, scratch_)};
}

std::string Evaluator::ExplainEvaluated(size_t resource, const Evaluation& evaluation) const {
  switch (evaluation.verdict) {
    case Verdict::kFits:
      return "has room now";
    case Verdict::kQuota:
    case Verdict::kQuotaNever:
      return ExplainQuota(evaluation);
    case Verdict::kHeld:
    case Verdict::kShort:
      return ExplainShortage(resource, evaluation);
    case Verdict::kUntrusted:
      return "on probation after flapping (healthy again, not yet trusted with new work)";
    case Verdict::kUnhealthy:
      return std::string(ResourceHealthName(ResourceHealth::kUnhealthy));
    case Verdict::kUnknown:
      return "has not reported its capacity yet (UNKNOWN)";
    case Verdict::kTooSmall:
    case Verdict::kNoShape:
      break;
  }
  if (!evaluation.auto_failure.empty()) return evaluation.auto_failure;
  if (evaluation.verdict == Verdict::kTooSmall) {
    const Slot& slot = snapshot_.slot(resource, evaluation.failed_shape);
    return fmt::format("needs {} x {}{} but has {} in total", evaluation.failed_need,
                       snapshot_.Name(slot.name_id), SpotSuffix(slot), slot.total);
  }
  const GroupDemand& group = demand_.groups[evaluation.failed_group];
  if (group.instance_type.empty()) return "has no on-demand instance type for a head node";
  if (group.name_id >= 0) {
    bool spot = snapshot_.FindShape(resource, group.name_id, Market::kSpot) >= 0;
    bool on_demand = snapshot_.FindShape(resource, group.name_id, Market::kOnDemand) >= 0;
    if (spot && !on_demand) {
      return fmt::format("has {} only as SPOT; {} needs ON_DEMAND", group.instance_type,
                         group.label);
    }
    if (on_demand && !spot) {
      return fmt::format("has {} only as ON_DEMAND; {} needs SPOT", group.instance_type,
                         group.label);
    }
  }
  return fmt::format("has no instance type {}", group.instance_type);
}

std::string Evaluator::ExplainShortage(size_t resource, const Evaluation& evaluation) const {
  const Slot& slot = snapshot_.slot(resource, evaluation.failed_shape);
  const std::string& type = snapshot_.Name(slot.name_id);
  if (evaluation.verdict == Verdict::kHeld) {
    const std::string holder = slot.holder >= 0 ? snapshot_.holders()[slot.holder] : "";
    return fmt::format("{} of {} {}{} free but held for waiting job {}, needs {}",
                       slot.FreeIgnoringHolds(), slot.total, type, SpotSuffix(slot), holder,
                       evaluation.failed_need);
  }
  std::string held =
      slot.held > 0 ? fmt::format(", {} held for waiting jobs", slot.held) : std::string();
  return fmt::format("{} of {} free {}{} ({} allocated{}), needs {}", slot.Free(), slot.total, type,
                     SpotSuffix(slot), slot.allocated, held, evaluation.failed_need);
}

std::string Evaluator::ExplainQuota(const Evaluation& evaluation) const {
  const Quota& quota = snapshot_.quotas()[evaluation.quota];
  std::string_view what = "gpus";
  double used = static_cast<double>(quota.used_gpus);
  double limit = quota.max_gpus ? static_cast<double>(*quota.max_gpus) : 0;
  if (evaluation.quota_what == 'c') {
    what = "cpus";
    used = quota.used_cpus;
    limit = quota.max_cpus.value_or(0);
  } else if (evaluation.quota_what == 'j') {
    what = "running jobs";
    used = quota.running_jobs;
    limit = quota.max_running_jobs.value_or(0);
  }
  std::string name = QuotaName(quota, what);
  if (evaluation.verdict == Verdict::kQuotaNever) {
    return fmt::format("quota {} allows {:g}, the job needs {:g}", name, limit,
                       evaluation.quota_need);
  }
  return fmt::format("quota {}: {:g} of {:g} used, needs {:g}", name, used, limit,
                     evaluation.quota_need);
}

}  // namespace meridian::control::scheduler
