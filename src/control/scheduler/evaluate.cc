#include "control/scheduler/evaluate.h"

#include <algorithm>

#include "fmt/format.h"

namespace meridian::control::scheduler {
namespace {

int32_t FindShape(const Snapshot& snapshot, size_t resource, int32_t name_id, Market market) {
  size_t first = snapshot.first_slot(resource);
  size_t count = snapshot.slot_count(resource);
  for (size_t s = 0; s < count; ++s) {
    const Slot& slot = snapshot.slot_at(first + s);
    if (slot.name_id == name_id && slot.market == market) return static_cast<int32_t>(s);
  }
  return -1;
}

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

Evaluator::Evaluator(const Request& request, const Demand& demand, const Snapshot& snapshot)
    : request_(request), demand_(demand), snapshot_(snapshot) {
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
  }
  const std::vector<Quota>& quotas = snapshot.quotas();
  for (size_t q = 0; q < quotas.size(); ++q) {
    if (!quotas[q].project.empty() && quotas[q].project != request.project) continue;
    quotas_.push_back(q);
  }
}

size_t Evaluator::scope_size() const {
  if (!cloud_filter_) return snapshot_.size();
  return cloud_id_ < 0 ? 0 : snapshot_.resources_in_cloud(cloud_id_);
}

ScanResult Evaluator::Scan(std::string_view pinned) {
  ScanResult result;
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
  if (demand_.filter_group >= 0) {
    int32_t name_id = demand_.groups[demand_.filter_group].name_id;
    if (name_id >= 0) {
      for (const Offer& offer : snapshot_.OfferedBy(name_id)) {
        if (!InScope(offer.resource)) continue;
        if (!snapshot_.accepts_work(offer.resource) &&
            snapshot_.resource(offer.resource).health == ResourceHealth::kUnknown) {
          continue;  // visited below with the other UNKNOWN resources
        }
        VisitGated(offer, result);
      }
    }
    // A resource that has not reported may offer the shape: the job may fit it.
    for (uint32_t resource : snapshot_.unknown_resources()) {
      if (InScope(resource)) Visit(resource, result);
    }
    return result;
  }
  for (size_t resource = 0; resource < snapshot_.size(); ++resource) {
    if (!InScope(resource)) continue;
    if (result.ever && !snapshot_.accepts_work(resource)) {
      ResourceHealth health = snapshot_.resource(resource).health;
      Verdict verdict = health == ResourceHealth::kUnhealthy ? Verdict::kUnhealthy
                        : health == ResourceHealth::kUnknown ? Verdict::kUnknown
                                                             : Verdict::kUntrusted;
      result.misses.push_back(
          {static_cast<uint32_t>(resource), verdict, RegionRank(resource), 0});
      continue;
    }
    Visit(resource, result);
  }
  return result;
}

void Evaluator::Visit(size_t resource, ScanResult& result) {
  Evaluate(resource, scratch_);
  if (scratch_.verdict == Verdict::kFits) {
    result.ever = true;
    if (!result.found || scratch_.score.BetterThan(result.best.score)) {
      std::swap(result.best, scratch_);  // keeps both buffers: no allocation per resource
      result.found = true;
    }
    return;
  }
  result.ever = result.ever || CouldEverFit(scratch_.verdict);
  result.misses.push_back({static_cast<uint32_t>(resource), scratch_.verdict,
                           RegionRank(resource), scratch_.missing});
}

// The cheap necessary conditions first: most resources of a busy fleet fail them, and once the
// job is known to fit somewhere some day, a failing resource needs no full evaluation.
void Evaluator::VisitGated(const Offer& offer, ScanResult& result) {
  size_t resource = offer.resource;
  if (!result.ever) {
    Visit(resource, result);
    return;
  }
  if (!snapshot_.accepts_work(resource)) {
    Verdict verdict = snapshot_.resource(resource).health == ResourceHealth::kUnhealthy
                          ? Verdict::kUnhealthy
                          : Verdict::kUntrusted;
    result.misses.push_back({offer.resource, verdict, RegionRank(resource), 0});
    return;
  }
  const GroupDemand& group = demand_.groups[demand_.filter_group];
  int32_t shapes[2] = {-1, -1};
  switch (group.rule) {
    case MarketRule::kOnDemand:
      shapes[0] = offer.on_demand_shape;
      break;
    case MarketRule::kSpot:
      shapes[0] = offer.spot_shape;
      break;
    case MarketRule::kPreferSpot:
      shapes[0] = offer.spot_shape;
      shapes[1] = offer.on_demand_shape;
      break;
  }
  int32_t free_nodes = -1;
  int32_t free_ignoring_holds = -1;
  for (int32_t shape : shapes) {
    if (shape < 0) continue;
    const Slot& slot = snapshot_.slot(resource, shape);
    free_nodes = std::max(free_nodes, slot.Free());
    free_ignoring_holds = std::max(free_ignoring_holds, slot.FreeIgnoringHolds());
  }
  if (free_nodes >= group.count || free_nodes < 0) {
    Visit(resource, result);
    return;
  }
  Verdict verdict = free_ignoring_holds >= group.count ? Verdict::kHeld : Verdict::kShort;
  result.misses.push_back(
      {offer.resource, verdict, RegionRank(resource), group.count - free_nodes});
}

bool Evaluator::Resolve(size_t resource, CountBy by, Evaluation& out) {
  resolved_.clear();
  for (size_t g = 0; g < demand_.groups.size(); ++g) {
    const GroupDemand& group = demand_.groups[g];
    Resolved item{static_cast<int32_t>(g), group.count, -1, -1, false,
                  group.rule == MarketRule::kPreferSpot};
    if (group.instance_type.empty()) {
      item.preferred = snapshot_.default_head_shape(resource);
    } else if (group.name_id >= 0) {
      switch (group.rule) {
        case MarketRule::kOnDemand:
          item.preferred = FindShape(snapshot_, resource, group.name_id, Market::kOnDemand);
          break;
        case MarketRule::kSpot:
          item.preferred = FindShape(snapshot_, resource, group.name_id, Market::kSpot);
          break;
        case MarketRule::kPreferSpot:
          item.preferred = FindShape(snapshot_, resource, group.name_id, Market::kSpot);
          item.fallback = FindShape(snapshot_, resource, group.name_id, Market::kOnDemand);
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
  AutoChoice choice =
      ChooseWorkers(snapshot_, resource, *demand_.auto_ask, by, resolved_.front().preferred);
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
      int32_t preferred = Available(snapshot_.slot(resource, item.preferred), by) -
                          TakenOf(takes, item.preferred);
      if (preferred >= item.count) {
        takes.push_back({item.group, item.preferred, item.count, item.preferred_off_market});
        continue;
      }
      int32_t fallback = -1;
      if (item.fallback >= 0) {
        fallback = Available(snapshot_.slot(resource, item.fallback), by) -
                   TakenOf(takes, item.fallback);
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

void Evaluator::Evaluate(size_t resource, Evaluation& out) {
  out.verdict = Verdict::kNoShape;
  out.takes.clear();
  out.missing = 0;
  out.failed_group = out.failed_shape = -1;
  out.failed_need = 0;
  out.auto_failure.clear();
  out.quota = -1;
  const ResourceState& state = snapshot_.resource(resource);
  if (state.health == ResourceHealth::kUnknown) {
    out.verdict = Verdict::kUnknown;
    return;
  }
  // Could it ever: against total nodes.
  if (!Resolve(resource, CountBy::kTotal, out)) return;
  if (Assign(resource, CountBy::kTotal, out.takes, &out) > 0) {
    out.verdict = Verdict::kTooSmall;
    return;
  }
  auto usage = [&] {
    out.gpus = 0;
    out.cpus = 0;
    for (const Take& take : out.takes) {
      const Slot& slot = snapshot_.slot(resource, take.shape);
      out.gpus += static_cast<int64_t>(take.count) * slot.gpu;
      out.cpus += take.count * slot.cpu;
    }
  };
  usage();
  if (!quotas_.empty() && QuotaBlocks(resource, /*ever=*/true, out)) {
    out.verdict = Verdict::kQuotaNever;
    return;
  }
  if (state.health != ResourceHealth::kHealthy) {
    out.verdict = Verdict::kUnhealthy;
    return;
  }
  if (!state.trusted) {
    out.verdict = Verdict::kUntrusted;
    return;
  }
  // Can it now: against free nodes. Auto-selected workers are chosen again among free shapes;
  // when none has room, the plan chosen by totals says what is short.
  if (demand_.auto_ask && !Resolve(resource, CountBy::kFree, out)) {
    Resolve(resource, CountBy::kTotal, out);
  }
  out.failed_group = out.failed_shape = -1;
  out.auto_failure.clear();
  out.missing = Assign(resource, CountBy::kFree, out.takes, &out);
  if (out.missing > 0) {
    bool held = Assign(resource, CountBy::kFreeIgnoringHolds, scratch_takes_, nullptr) == 0;
    out.verdict = held ? Verdict::kHeld : Verdict::kShort;
    return;
  }
  usage();
  if (!quotas_.empty() && QuotaBlocks(resource, /*ever=*/false, out)) {
    out.verdict = Verdict::kQuota;
    return;
  }
  ScoreFit(resource, out);
  out.verdict = Verdict::kFits;
}

bool Evaluator::QuotaBlocks(size_t resource, bool ever, Evaluation& out) const {
  const ResourceState& state = snapshot_.resource(resource);
  for (size_t index : quotas_) {
    const Quota& quota = snapshot_.quotas()[index];
    if (!quota.cloud.empty() && quota.cloud != state.cloud) continue;
    if (!quota.region.empty() && quota.region != state.region) continue;
    auto blocks = [&](double used, double need, double limit, char what) {
      if (need <= 0 || (ever ? 0 : used) + need <= limit) return false;
      out.quota = static_cast<int32_t>(index);
      out.quota_what = what;
      out.quota_need = need;
      return true;
    };
    if (quota.max_gpus && blocks(static_cast<double>(quota.used_gpus),
                                 static_cast<double>(out.gpus),
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

void Evaluator::AddUnvisited(ScanResult& scan, size_t limit) const {
  if (scan.misses.size() >= limit) return;
  std::vector<bool> seen(snapshot_.size());
  for (const Miss& miss : scan.misses) seen[miss.resource] = true;
  if (scan.found) seen[scan.best.score.resource] = true;
  for (size_t resource = 0; resource < snapshot_.size() && scan.misses.size() < limit;
       ++resource) {
    if (seen[resource] || !InScope(resource)) continue;
    scan.misses.push_back({static_cast<uint32_t>(resource), Verdict::kNoShape,
                           RegionRank(resource), 0});
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
    bool spot = FindShape(snapshot_, resource, group.name_id, Market::kSpot) >= 0;
    bool on_demand = FindShape(snapshot_, resource, group.name_id, Market::kOnDemand) >= 0;
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
  return fmt::format("{} of {} free {}{} ({} allocated{}), needs {}", slot.Free(), slot.total,
                     type, SpotSuffix(slot), slot.allocated, held, evaluation.failed_need);
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
