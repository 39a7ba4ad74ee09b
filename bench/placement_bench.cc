// The placement core in process: 1,000 cloud resources x 20 instance types and 100,000 queued
// jobs of mixed shapes, placed by PlanQueue (each placement taking nodes before the next job is
// decided). Prints decisions and placements per second and the latency of one decision, next to
// the published figures of the alternatives and the goal of the scheduling issue.
//
// The fleet and the queue are generated from a fixed seed, so every run decides the same jobs
// the same way; only the timings vary.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "control/scheduler/scheduler.h"
#include "fmt/format.h"

namespace meridian::bench {
namespace {

namespace sched = ::meridian::control::scheduler;

struct Options {
  int resources = 1'000;
  int types_per_resource = 20;
  int jobs = 100'000;
  int runs = 3;
  bool examples = false;  // print a few decisions of each kind
  std::string out = "build/bench/placement.json";
};

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int kRegions = 30;
constexpr int kProjects = 10;
constexpr uint64_t kSeed = 20'240'601;

// The catalog every resource draws its instance types from: CPU shapes in several sizes and GPU
// shapes of several accelerators (60 in all).
std::vector<spec::InstanceType> Catalog() {
  std::vector<spec::InstanceType> catalog;
  for (int cpu : {2, 4, 8, 16, 32, 48, 64, 96}) {
    for (int memory_per_cpu : {2, 4, 8}) {
      catalog.push_back({fmt::format("{}CPU-{}GB", cpu, cpu * memory_per_cpu),
                         double(cpu),
                         0,
                         cpu * memory_per_cpu * kGiB,
                         {}});
    }
  }
  struct Gpu {
    const char* accelerator;
    int cpu_per_gpu;
    int memory_per_gpu_gb;
  };
  for (Gpu gpu : {Gpu{"T4", 4, 16}, Gpu{"A10", 8, 32}, Gpu{"L4", 8, 32}, Gpu{"A100", 12, 96},
                  Gpu{"H100", 24, 240}, Gpu{"V100", 8, 64}}) {
    for (int count : {1, 2, 4, 8}) {
      catalog.push_back({fmt::format("{}x{}", count, gpu.accelerator),
                         double(count * gpu.cpu_per_gpu),
                         count,
                         int64_t{count} * gpu.memory_per_gpu_gb * kGiB,
                         {gpu.accelerator}});
    }
  }
  while (catalog.size() < 60) {
    int cpu = 6 + 2 * static_cast<int>(catalog.size());
    catalog.push_back({fmt::format("{}CPU-hm", cpu), double(cpu), 0, cpu * 16 * kGiB, {}});
  }
  return catalog;
}

std::string RegionName(int index) { return fmt::format("region{:02}", index); }

// 1,000 resources in 30 regions, each with 20 of the catalog's shapes (always two small CPU
// shapes, so every resource can host head nodes), a quarter of the GPU shapes sold as spot, prices
// on half the resources, up to 30% of nodes already busy, a few resources unhealthy, on probation
// or not reported yet. Sized so that most of the queue fits: the figure is placements, and the
// jobs that do not fit exercise the "why pending" path.
std::vector<sched::ResourceState> Fleet(const Options& options,
                                        const std::vector<spec::InstanceType>& catalog,
                                        std::mt19937_64& random) {
  std::vector<sched::ResourceState> fleet;
  for (int r = 0; r < options.resources; ++r) {
    sched::ResourceState resource;
    resource.name = fmt::format("res-{:04}", r);
    resource.cloud = "bench";
    resource.region = RegionName(r % kRegions);
    int health = static_cast<int>(random() % 1000);
    resource.health = health < 20   ? sched::ResourceHealth::kUnhealthy
                      : health < 25 ? sched::ResourceHealth::kUnknown
                                    : sched::ResourceHealth::kHealthy;
    resource.trusted = health < 25 || health >= 35;
    if (resource.health == sched::ResourceHealth::kUnknown) {
      fleet.push_back(std::move(resource));  // not reported: no shapes yet
      continue;
    }
    std::vector<size_t> picks(catalog.size());
    std::iota(picks.begin(), picks.end(), 0);
    std::shuffle(picks.begin() + 2, picks.end(), random);  // 2CPU-4GB and 2CPU-8GB always
    bool priced = random() % 2 == 0;
    for (int t = 0; t < options.types_per_resource; ++t) {
      const spec::InstanceType& type = catalog[picks[t]];
      sched::ShapeCapacity shape;
      shape.type = type;
      shape.market =
          type.gpu > 0 && random() % 4 == 0 ? sched::Market::kSpot : sched::Market::kOnDemand;
      shape.total_nodes = type.gpu > 0 ? 4 + static_cast<int>(random() % 29)
                                       : 30 + static_cast<int>(random() % 101);
      shape.allocated_nodes = static_cast<int>(random() % (shape.total_nodes * 3 / 10 + 1));
      if (priced) shape.price_per_hour = 0.05 * type.cpu + 0.9 * type.gpu;
      resource.shapes.push_back(std::move(shape));
    }
    fleet.push_back(std::move(resource));
  }
  return fleet;
}

// Per-project GPU quotas in a third of the regions, and a cloud-wide one.
std::vector<sched::Quota> Quotas() {
  std::vector<sched::Quota> quotas;
  for (int p = 0; p < kProjects; ++p) {
    for (int region = p % 3; region < kRegions; region += 3) {
      sched::Quota quota;
      quota.cloud = "bench";
      quota.project = fmt::format("project-{}", p);
      quota.region = RegionName(region);
      quota.max_gpus = 400;
      quotas.push_back(quota);
    }
  }
  sched::Quota cloud_wide;
  cloud_wide.cloud = "bench";
  cloud_wide.max_running_jobs = 90'000;
  quotas.push_back(cloud_wide);
  return quotas;
}

spec::WorkerNodeGroup Group(const std::string& type, int min_nodes, spec::MarketType market) {
  return spec::WorkerNodeGroup{type, type, min_nodes, min_nodes * 2, market};
}

// A job of one of the shapes users submit: CPU gangs, GPU gangs (in every market), GPU + CPU
// groups, auto-selected workers (some naming an accelerator), pinned jobs, input_order fallbacks
// and region preferences.
spec::JobConfig MakeJob(int index, const std::vector<spec::InstanceType>& catalog,
                        const Options& options, std::mt19937_64& random) {
  spec::JobConfig job;
  job.entrypoint = "python train.py";
  job.cloud = "bench";
  job.project = fmt::format("project-{}", random() % kProjects);
  static constexpr int kPriorities[] = {0, 50, 100, 100, 100, 100, 500, 1000};
  job.priority = kPriorities[random() % 8];
  auto cpu_type = [&] { return catalog[random() % 24].name; };       // the 24 CPU shapes
  auto gpu_type = [&] { return catalog[24 + random() % 24].name; };  // the 24 GPU shapes
  static constexpr spec::MarketType kMarkets[] = {
      spec::MarketType::kOnDemand,   spec::MarketType::kOnDemand,   spec::MarketType::kOnDemand,
      spec::MarketType::kPreferSpot, spec::MarketType::kPreferSpot, spec::MarketType::kSpot};
  spec::ComputeConfig& compute = job.compute_config;
  int kind = static_cast<int>(random() % 100);
  if (random() % 2 == 0) compute.target.head_instance_type = "2CPU-8GB";
  if (kind < 40) {
    compute.target.worker_nodes.push_back(
        Group(cpu_type(), 1 + static_cast<int>(random() % 8), spec::MarketType::kOnDemand));
  } else if (kind < 65) {
    compute.target.worker_nodes.push_back(
        Group(gpu_type(), 1 + static_cast<int>(random() % 4), kMarkets[random() % 6]));
  } else if (kind < 75) {
    compute.target.worker_nodes.push_back(
        Group(gpu_type(), 1 + static_cast<int>(random() % 2), spec::MarketType::kOnDemand));
    compute.target.worker_nodes.push_back(
        Group(cpu_type(), 1 + static_cast<int>(random() % 4), spec::MarketType::kOnDemand));
  } else if (kind < 85) {
    compute.auto_select_worker_config = true;
    compute.min_resources = {{"CPU", 8.0 * (1 + random() % 8)}, {"GPU", double(random() % 5)}};
    if (random() % 3 == 0) {
      static const char* kAccelerators[] = {"T4", "A10", "A100", "H100"};
      compute.min_resources[fmt::format("accelerator_type:{}", kAccelerators[random() % 4])] = 1;
    }
  } else if (kind < 90) {
    compute.target.cloud_resource = fmt::format("res-{:04}", random() % options.resources);
    compute.target.worker_nodes.push_back(
        Group(cpu_type(), 1 + static_cast<int>(random() % 4), spec::MarketType::kOnDemand));
  } else if (kind < 95) {
    std::string worker = gpu_type();
    for (int c = 0; c < 3; ++c) {
      spec::ComputeTarget target;
      target.cloud_resource = fmt::format("res-{:04}", random() % options.resources);
      target.worker_nodes.push_back(Group(worker, 1, spec::MarketType::kOnDemand));
      compute.configs.push_back(std::move(target));
    }
    compute.cloud_resource_strategy = "input_order";
    compute.cloud_resource_starting_timeout_s = 600;
  } else {
    compute.regions = {RegionName(static_cast<int>(random() % kRegions)),
                       RegionName(static_cast<int>(random() % kRegions))};
    if (compute.regions[0] == compute.regions[1]) compute.regions.pop_back();
    compute.target.worker_nodes.push_back(
        Group(gpu_type(), 1 + static_cast<int>(random() % 2), kMarkets[random() % 6]));
  }
  (void)index;
  return job;
}

int64_t ThreadCpuUs() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return int64_t{now.tv_sec} * 1'000'000 + now.tv_nsec / 1'000;
}

struct QueueRun {
  double seconds = 0;
  double cpu_seconds = 0;
  size_t placed = 0;
  size_t pending = 0;
  size_t infeasible = 0;
};

QueueRun RunQueue(const std::vector<sched::Request>& requests, const sched::Snapshot& snapshot,
                  const sched::Options& options) {
  sched::Snapshot copy = snapshot;  // copied outside the timed part
  int64_t start = NowUs();
  int64_t cpu_start = ThreadCpuUs();
  sched::QueuePlan plan = sched::PlanQueue(requests, std::move(copy), options);
  QueueRun run;
  run.cpu_seconds = static_cast<double>(ThreadCpuUs() - cpu_start) / 1e6;
  run.seconds = static_cast<double>(NowUs() - start) / 1e6;
  for (const sched::QueueDecision& item : plan.decisions) {
    switch (item.decision.outcome) {
      case sched::Outcome::kPlaced:
        run.placed += 1;
        break;
      case sched::Outcome::kPending:
        run.pending += 1;
        break;
      case sched::Outcome::kInfeasible:
        run.infeasible += 1;
        break;
    }
  }
  return run;
}

// What kind of job a config is, for latency by kind.
std::string KindOf(const spec::JobConfig& config) {
  const spec::ComputeConfig& compute = config.compute_config;
  if (!compute.configs.empty()) return "input_order";
  if (!compute.target.cloud_resource.empty()) return "pinned";
  if (!compute.min_resources.empty()) return "auto-select";
  if (!compute.regions.empty()) return "regions";
  return compute.target.worker_nodes.size() > 1 ? "two groups" : "one group";
}

struct Latencies {
  std::vector<double> all_us;
  std::map<std::string, std::vector<double>> by_kind_us;
};

// The latency of each decision while walking the same queue with Place(): each placement takes
// its nodes before the next decision, as in PlanQueue (which also lets waiting jobs hold nodes).
Latencies DecisionLatenciesUs(const std::vector<sched::Request>& requests, sched::Snapshot snapshot,
                              const sched::Options& options, bool examples) {
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(requests[a].priority, requests[a].submit_order) <
           std::tie(requests[b].priority, requests[b].submit_order);
  });
  Latencies latencies;
  latencies.all_us.reserve(requests.size());
  for (size_t index : order) {
    int64_t start = NowUs();
    sched::Decision decision = sched::Place(requests[index], snapshot, options);
    double elapsed_us = static_cast<double>(NowUs() - start);
    latencies.all_us.push_back(elapsed_us);
    std::vector<double>& kind =
        latencies.by_kind_us[KindOf(*requests[index].config) + " " +
                             std::string(sched::OutcomeName(decision.outcome))];
    kind.push_back(elapsed_us);
    if (examples && kind.size() <= 2) {
      std::printf("example %s: %s\n", requests[index].job_id.c_str(), decision.summary.c_str());
    }
    if (decision.outcome != sched::Outcome::kPlaced) continue;
    for (const sched::NodeAssignment& node : decision.nodes) {
      snapshot.Allocate(decision.resource_index, node.shape_index, node.count);
    }
    snapshot.ChargeQuotas(decision.resource_index, requests[index].project, decision.gpus,
                          decision.cpus);
  }
  return latencies;
}

int Run(const Options& options) {
  std::mt19937_64 random(kSeed);
  std::vector<spec::InstanceType> catalog = Catalog();
  std::vector<sched::ResourceState> fleet = Fleet(options, catalog, random);
  std::vector<spec::JobConfig> configs;
  configs.reserve(options.jobs);
  for (int i = 0; i < options.jobs; ++i) configs.push_back(MakeJob(i, catalog, options, random));
  std::vector<sched::Request> requests;
  requests.reserve(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) {
    requests.push_back(
        sched::RequestFor(fmt::format("job-{:06}", i), configs[i], static_cast<int64_t>(i)));
    requests.back().data_region = RegionName(static_cast<int>(i % kRegions));
  }

  int64_t build_start = NowUs();
  Result<sched::Snapshot> snapshot = sched::Snapshot::Build(fleet, Quotas());
  double build_ms = static_cast<double>(NowUs() - build_start) / 1000.0;
  if (!snapshot.ok()) {
    std::fprintf(stderr, "snapshot: %s\n", std::string(snapshot.status().message()).c_str());
    return 1;
  }
  sched::Options place_options;
  place_options.now_unix_ms = 1'700'000'000'000;

  std::vector<QueueRun> runs;
  for (int i = 0; i < options.runs; ++i)
    runs.push_back(RunQueue(requests, *snapshot, place_options));
  std::sort(runs.begin(), runs.end(),
            [](const QueueRun& a, const QueueRun& b) { return a.seconds < b.seconds; });
  const QueueRun& median = runs[runs.size() / 2];
  double decisions_per_s = static_cast<double>(requests.size()) / median.seconds;
  double placements_per_s = static_cast<double>(median.placed) / median.seconds;
  Latencies measured = DecisionLatenciesUs(requests, *snapshot, place_options, options.examples);
  const std::vector<double>& latencies = measured.all_us;
  std::string by_kind = "latency by job kind (count, mean / p99 us):";
  for (const auto& [kind, values] : measured.by_kind_us) {
    double sum = std::accumulate(values.begin(), values.end(), 0.0);
    by_kind += fmt::format(" {} ({}, {:.1f} / {:.0f});", kind, values.size(),
                           sum / static_cast<double>(values.size()), Percentile(values, 0.99));
  }

  std::vector<Figure> figures = {
      {"placements/s (jobs placed / PlanQueue time)", placements_per_s, "placements/s",
       "kube-scheduler CI floor, one cluster (published)", 680, false},
      {"placements/s vs MultiKueue", placements_per_s, "placements/s",
       "MultiKueue dispatch, at most (published)", 95, false},
      {"placements/s vs Armada", placements_per_s, "placements/s", "Armada (published)", 1'000,
       false},
      {"placements/s vs goal", placements_per_s, "placements/s", "goal of the scheduling issue",
       100'000, false},
      {"decisions/s (placed + pending with reasons)", decisions_per_s, "decisions/s",
       "goal of the scheduling issue", 100'000, false},
      {"decisions/s by the queue's CPU time (an idle core)",
       static_cast<double>(requests.size()) / median.cpu_seconds, "decisions/s",
       "goal of the scheduling issue", 100'000, false},
      {"decision latency p50", Percentile(latencies, 0.50), "us", "", 0, true},
      {"decision latency p99", Percentile(latencies, 0.99), "us", "goal of the scheduling issue",
       1'000, true},
      {"decision latency max", Percentile(latencies, 1.0), "us", "", 0, true},
      {"snapshot build (index 1,000 x 20 shapes)", build_ms, "ms", "", 0, true},
  };
  Report("placement: in-process placement core (PlanQueue over one snapshot)", figures, options.out,
         {fmt::format("{} resources x {} instance types in {} regions; {} jobs: {} placed, {} "
                      "pending, {} infeasible (median of {} PlanQueue runs: {:.3f} s wall, {:.3f} "
                      "s on the CPU; wall > CPU means the machine was busy with other work)",
                      options.resources, options.types_per_resource, kRegions, requests.size(),
                      median.placed, median.pending, median.infeasible, options.runs,
                      median.seconds, median.cpu_seconds),
          "published figures are quoted, not measured here: kube-scheduler's CI floor is "
          "680-1,100 pods/s for one cluster (the lower bound is shown); MultiKueue dispatches at "
          "most ~95 workloads/s; Armada about 1,000 pods/s.",
          "latency: Place() for every job of the same queue, one thread, placements applied as "
          "it goes.",
          by_kind});
  return 0;
}

}  // namespace
}  // namespace meridian::bench

int main(int argc, char** argv) {
  meridian::bench::Options options;
  meridian::bench::Flags flags("placement_bench",
                               "placement decisions over a large snapshot (docs/scheduling.md)");
  flags.Add("out", &options.out, "JSON file for the figures");
  flags.Add("jobs", &options.jobs, 1, 100'000'000, "queued jobs to place");
  flags.Add("resources", &options.resources, 1, 1'000'000, "cloud resources in the snapshot");
  flags.Add("runs", &options.runs, 1, 100, "runs (the median is shown)");
  flags.Add("examples", &options.examples, "print a few decisions of each kind");
  if (int exit_code = flags.Parse(argc, argv); exit_code >= 0) return exit_code;
  return meridian::bench::Run(options);
}
