#include <algorithm>

#include "control/scheduler/scheduler.h"
#include "control/scheduler/scheduler_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meridian::control::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::meridian::control::scheduler::testing;

constexpr char kT4Gang[] = R"(compute_config:
  head_node: {instance_type: 2CPU-8GB}
  worker_nodes: [{instance_type: 1xT4, min_nodes: 2, max_nodes: 8}]
)";

std::vector<std::pair<std::string, int>> Nodes(const Decision& decision) {
  std::vector<std::pair<std::string, int>> nodes;
  for (const NodeAssignment& node : decision.nodes) {
    nodes.emplace_back(node.group + "=" + node.instance_type, node.count);
  }
  return nodes;
}

using NodeList = std::vector<std::pair<std::string, int>>;

TEST(Place, GangGoesWhereHeadAndEveryMinNodeFitTogether) {
  Jobs jobs;
  // eastus has the head shape but only 1 free T4; westus has both. max_nodes is not reserved.
  Snapshot snapshot = Build({
      Resource("local-eastus", "eastus", {Shape(Cpu2(), 4), Shape(T4(), 2, 1)}),
      Resource("local-westus", "westus", {Shape(Cpu2(), 1), Shape(T4(), 2)}),
  });
  Decision decision = Place(jobs.Make("j1", kT4Gang), snapshot, {});
  ASSERT_EQ(decision.outcome, Outcome::kPlaced) << decision.summary;
  EXPECT_EQ(decision.cloud_resource, "local-westus");
  EXPECT_EQ(decision.region, "westus");
  EXPECT_EQ(Nodes(decision), (NodeList{{"head=2CPU-8GB", 1}, {"1xT4=1xT4", 2}}));
  EXPECT_EQ(decision.gpus, 2);
  EXPECT_EQ(decision.cpus, 10);
  EXPECT_EQ(decision.summary,
            "placed on local-westus (westus); local-eastus: 1 of 2 free 1xT4 (1 allocated), "
            "needs 2");
}

TEST(Place, GangIsNeverSplitAcrossResources) {
  Jobs jobs;
  // Two free T4s in all, but one per resource: the job waits.
  Snapshot snapshot = Build({
      Resource("a", "eastus", {Shape(Cpu2(), 1), Shape(T4(), 2, 1)}),
      Resource("b", "westus", {Shape(Cpu2(), 1), Shape(T4(), 2, 1)}),
  });
  Decision decision = Place(jobs.Make("j1", kT4Gang), snapshot, {});
  EXPECT_EQ(decision.outcome, Outcome::kPending);
  EXPECT_FALSE(decision.infeasible);
  EXPECT_EQ(decision.summary,
            "waiting for capacity: a: 1 of 2 free 1xT4 (1 allocated), needs 2; b: 1 of 2 free "
            "1xT4 (1 allocated), needs 2");
}

TEST(Place, HeadWithoutInstanceTypeTakesTheSmallestShapeWithoutGpus) {
  Jobs jobs;
  Snapshot snapshot =
      Build({Resource("a", "eastus", {Shape(T4(), 2), Shape(Cpu8(), 2), Shape(Cpu2(), 2)})});
  Decision decision = Place(jobs.Make("j1",
                                      "compute_config:\n  worker_nodes: [{instance_type: "
                                      "1xT4, min_nodes: 1}]\n"),
                            snapshot, {});
  ASSERT_EQ(decision.outcome, Outcome::kPlaced) << decision.summary;
  EXPECT_EQ(Nodes(decision), (NodeList{{"head=2CPU-8GB", 1}, {"1xT4=1xT4", 1}}));

  Snapshot gpu_only = Build({Resource("a", "eastus", {Shape(T4(), 1)})});
  Decision head_only = Place(jobs.Make("j2", ""), gpu_only, {});
  ASSERT_EQ(head_only.outcome, Outcome::kPlaced) << head_only.summary;
  EXPECT_EQ(Nodes(head_only), (NodeList{{"head=1xT4", 1}}));
}

TEST(Place, HeadSharingAShapeWithWorkersCountsTogether) {
  Jobs jobs;
  Snapshot snapshot = Build({Resource("a", "eastus", {Shape(T4(), 3, 1)})});
  Decision decision = Place(jobs.Make("j1",
                                      "compute_config:\n  head_node: {instance_type: 1xT4}\n"
                                      "  worker_nodes: [{instance_type: 1xT4, min_nodes: "
                                      "2}]\n"),
                            snapshot, {});
  EXPECT_EQ(decision.outcome, Outcome::kPending);
  EXPECT_THAT(WhyLines(decision), ElementsAre("a: 2 of 3 free 1xT4 (1 allocated), needs 3"));
}

TEST(Place, AutoSelectCoversGpusFirstThenCpuWithFewestNodes) {
  Jobs jobs;
  Snapshot snapshot = Build({Resource(
      "a", "eastus", {Shape(Cpu2(), 4), Shape(T4(), 8), Shape(T4x2(), 4), Shape(Cpu8(), 8)})});
  Decision decision =
      Place(jobs.Make("j1", "compute_config:\n  min_resources: {GPU: 2, CPU: 24}\n"), snapshot, {});
  ASSERT_EQ(decision.outcome, Outcome::kPlaced) << decision.summary;
  // One 2xT4 node (8 CPUs) covers the GPUs; 16 more CPUs are two 8-CPU nodes, not 8 small ones.
  EXPECT_EQ(Nodes(decision),
            (NodeList{{"head=2CPU-8GB", 1}, {"auto=2xT4", 1}, {"auto=8CPU-32GB", 2}}));

  // With the 2xT4 nodes taken, two 1xT4 nodes do it.
  Snapshot busy = Build({Resource(
      "a", "eastus", {Shape(Cpu2(), 4), Shape(T4(), 8), Shape(T4x2(), 4, 4), Shape(Cpu8(), 8)})});
  Decision fallback =
      Place(jobs.Make("j2",
                      "compute_config:\n  auto_select_worker_config: true\n  min_resources: "
                      "{GPU: 2}\n"),
            busy, {});
  ASSERT_EQ(fallback.outcome, Outcome::kPlaced) << fallback.summary;
  EXPECT_EQ(Nodes(fallback), (NodeList{{"head=2CPU-8GB", 1}, {"auto=1xT4", 2}}));
}

TEST(Place, AcceleratorTypeIsHonoured) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("a-t4", "eastus", {Shape(Cpu2(), 2), Shape(T4(), 8)}),
      Resource("b-a100", "westus", {Shape(Cpu2(), 2), Shape(A100(), 2)}),
  });
  Decision decision =
      Place(jobs.Make("j1", "compute_config:\n  min_resources: {\"accelerator_type:A100\": 1}\n"),
            snapshot, {});
  ASSERT_EQ(decision.outcome, Outcome::kPlaced) << decision.summary;
  EXPECT_EQ(decision.cloud_resource, "b-a100");
  EXPECT_EQ(Nodes(decision), (NodeList{{"head=2CPU-8GB", 1}, {"auto=1xA100", 1}}));

  Decision none = Place(
      jobs.Make("j2", "compute_config:\n  min_resources: {GPU: 1, \"accelerator_type:H100\": 1}\n"),
      snapshot, {});
  EXPECT_EQ(none.outcome, Outcome::kInfeasible);
  EXPECT_THAT(WhyLines(none), ElementsAre("a-t4: has no on-demand instance type with H100 GPUs",
                                          "b-a100: has no on-demand instance type with H100 GPUs"));
}

TEST(Place, UnsupportedMinResourcesKeyIsInfeasible) {
  Jobs jobs;
  Snapshot snapshot = Build({Resource("a", "eastus", {Shape(Cpu2(), 2)})});
  Decision decision =
      Place(jobs.Make("j1", "compute_config:\n  min_resources: {TPU: 4}\n"), snapshot, {});
  EXPECT_EQ(decision.outcome, Outcome::kInfeasible);
  EXPECT_THAT(decision.summary, HasSubstr("min_resources.TPU: no instance type provides"));
}

TEST(Place, PinnedResourceOnlyAndItsAbsenceIsInfeasible) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("a", "eastus", {Shape(Cpu2(), 2, 2)}),
      Resource("b", "westus", {Shape(Cpu2(), 2)}),
  });
  Decision pinned = Place(jobs.Make("j1", "compute_config:\n  cloud_resource: a\n"), snapshot, {});
  EXPECT_EQ(pinned.outcome, Outcome::kPending);
  EXPECT_EQ(pinned.summary, "waiting for capacity: a: 0 of 2 free 2CPU-8GB (2 allocated), needs 1");

  Decision free = Place(jobs.Make("j2", "compute_config:\n  cloud_resource: b\n"), snapshot, {});
  EXPECT_EQ(free.cloud_resource, "b");

  Decision missing =
      Place(jobs.Make("j3", "compute_config:\n  cloud_resource: nowhere\n"), snapshot, {});
  EXPECT_EQ(missing.outcome, Outcome::kInfeasible);
  EXPECT_EQ(missing.summary, "infeasible: cloud resource nowhere does not exist");
}

constexpr char kInputOrder[] = R"(compute_config:
  configs:
    - cloud_resource: first
      worker_nodes: [{instance_type: 1xT4, min_nodes: 1}]
    - cloud_resource: second
      worker_nodes: [{instance_type: 1xT4, min_nodes: 1}]
  flags:
    cloud_resource_strategy: input_order
    cloud_resource_starting_timeout: 10m
)";

TEST(Place, InputOrderWaitsOnTheFirstConfigUntilItsTimeout) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("first", "eastus", {Shape(Cpu2(), 1), Shape(T4(), 1, 1)}),
      Resource("second", "westus", {Shape(Cpu2(), 1), Shape(T4(), 1)}),
  });
  Options options;
  options.now_unix_ms = 1'000'000;
  Request request = jobs.Make("j1", kInputOrder);
  // Never tried: the first config is where it waits, though the second has room.
  Decision waiting = Place(request, snapshot, options);
  EXPECT_EQ(waiting.outcome, Outcome::kPending);
  EXPECT_EQ(waiting.config_index, 0);
  EXPECT_EQ(waiting.reconsider_at_unix_ms, 1'000'000 + 600'000);
  EXPECT_EQ(waiting.summary,
            "configs[0] (next config after its 600 s starting timeout): waiting for capacity: "
            "first: 0 of 1 free 1xT4 (1 allocated), needs 1");

  // Waiting on it for less than the timeout: still there.
  request.config_tries = {{0, options.now_unix_ms - 599'999}};
  EXPECT_EQ(Place(request, snapshot, options).config_index, 0);

  // After the timeout: the next config.
  request.config_tries = {{0, options.now_unix_ms - 600'000}};
  Decision moved = Place(request, snapshot, options);
  ASSERT_EQ(moved.outcome, Outcome::kPlaced) << moved.summary;
  EXPECT_EQ(moved.cloud_resource, "second");
  EXPECT_EQ(moved.config_index, 1);
  EXPECT_EQ(moved.summary, "configs[1]: placed on second (westus)");
}

TEST(Place, InputOrderSkipsAConfigThatCanNeverFitAndCyclesAfterAllTimeouts) {
  Jobs jobs;
  Options options;
  options.now_unix_ms = 5'000'000;
  Request request = jobs.Make("j1", kInputOrder);
  // "first" does not exist: no use waiting 10 minutes on it.
  Snapshot without_first =
      Build({Resource("second", "westus", {Shape(Cpu2(), 1), Shape(T4(), 1)})});
  Decision skipped = Place(request, without_first, options);
  EXPECT_EQ(skipped.cloud_resource, "second");
  EXPECT_EQ(skipped.config_index, 1);

  // Both have had their timeout: whichever has room, in input order.
  Snapshot first_free = Build({
      Resource("first", "eastus", {Shape(Cpu2(), 1), Shape(T4(), 1)}),
      Resource("second", "westus", {Shape(Cpu2(), 1), Shape(T4(), 1, 1)}),
  });
  request.config_tries = {{0, 0}, {1, 0}};
  Decision cycled = Place(request, first_free, options);
  EXPECT_EQ(cycled.cloud_resource, "first");
  EXPECT_EQ(cycled.config_index, 0);

  Snapshot none_free = Build({
      Resource("first", "eastus", {Shape(Cpu2(), 1), Shape(T4(), 1, 1)}),
      Resource("second", "westus", {Shape(Cpu2(), 1), Shape(T4(), 1, 1)}),
  });
  Decision waiting = Place(request, none_free, options);
  EXPECT_EQ(waiting.outcome, Outcome::kPending);
  EXPECT_EQ(waiting.config_index, -1);
  EXPECT_THAT(waiting.summary, HasSubstr("every config has had its 600 s starting timeout"));

  Snapshot neither = Build({Resource("other", "westus", {Shape(Cpu2(), 1)})});
  Decision infeasible = Place(request, neither, options);
  EXPECT_EQ(infeasible.outcome, Outcome::kInfeasible);
  EXPECT_THAT(WhyLines(infeasible),
              ElementsAre("configs[0]: cloud resource first does not exist",
                          "configs[1]: cloud resource second does not exist"));
}

TEST(Place, RegionPreferenceComesBeforePacking) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("east", "eastus", {Shape(Cpu2(), 10)}),
      Resource("west", "westus", {Shape(Cpu2(), 1)}),
      Resource("north", "northeurope", {Shape(Cpu2(), 5)}),
  });
  // Without a preference, best fit: the resource left with the fewest free nodes.
  EXPECT_EQ(Place(jobs.Make("j1", ""), snapshot, {}).cloud_resource, "west");
  // An explicit preference, in order.
  EXPECT_EQ(
      Place(jobs.Make("j2", "compute_config:\n  regions: [northeurope, eastus]\n"), snapshot, {})
          .cloud_resource,
      "north");
  // The data's region when the job names none.
  Request near_data = jobs.Make("j3", "");
  near_data.data_region = "eastus";
  EXPECT_EQ(Place(near_data, snapshot, {}).cloud_resource, "east");
}

TEST(Place, PlacedElsewhereSaysWhyThePreferredRegionDidNotTakeIt) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("local-eastus", "eastus", {Shape(Cpu2(), 2), Shape(T4(), 2, 2)}),
      Resource("local-westus", "westus", {Shape(Cpu2(), 2), Shape(T4(), 2)}),
  });
  Decision decision = Place(jobs.Make("j1",
                                      "compute_config:\n  regions: [eastus]\n  worker_nodes: "
                                      "[{instance_type: 1xT4, min_nodes: 1}]\n"),
                            snapshot, {});
  EXPECT_EQ(decision.summary,
            "placed on local-westus (westus); local-eastus: 0 of 2 free 1xT4 (2 allocated), "
            "needs 1");
}

TEST(Place, MarketTypes) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("a-ondemand", "eastus", {Shape(Cpu2(), 2), Shape(T4(), 4)}),
      Resource("b-spot", "eastus", {Shape(Cpu2(), 2), Shape(T4(), 4, 0, Market::kSpot)}),
  });
  auto job = [&](const std::string& id, const std::string& market) {
    return jobs.Make(id,
                     "compute_config:\n  worker_nodes: [{instance_type: 1xT4, min_nodes: 2, "
                     "market_type: " +
                         market + "}]\n");
  };
  Decision prefer = Place(job("j1", "PREFER_SPOT"), snapshot, {});
  EXPECT_EQ(prefer.cloud_resource, "b-spot");
  EXPECT_EQ(prefer.nodes.back().market, Market::kSpot);

  Decision spot = Place(job("j2", "SPOT"), snapshot, {});
  EXPECT_EQ(spot.cloud_resource, "b-spot");
  Decision on_demand = Place(job("j3", "ON_DEMAND"), snapshot, {});
  EXPECT_EQ(on_demand.cloud_resource, "a-ondemand");

  // With spot nodes gone, PREFER_SPOT takes on-demand ones; SPOT waits.
  Snapshot no_spot = Build({
      Resource("a-ondemand", "eastus", {Shape(Cpu2(), 2), Shape(T4(), 4)}),
      Resource("b-spot", "eastus", {Shape(Cpu2(), 2), Shape(T4(), 4, 4, Market::kSpot)}),
  });
  Decision fallback = Place(job("j4", "PREFER_SPOT"), no_spot, {});
  EXPECT_EQ(fallback.cloud_resource, "a-ondemand");
  EXPECT_EQ(fallback.nodes.back().market, Market::kOnDemand);
  Decision waiting = Place(job("j5", "SPOT"), no_spot, {});
  EXPECT_EQ(waiting.outcome, Outcome::kPending);
  EXPECT_THAT(WhyLines(waiting),
              ElementsAre("b-spot: 0 of 4 free 1xT4 (SPOT) (4 allocated), needs 2",
                          "a-ondemand: has 1xT4 only as ON_DEMAND; 1xT4 needs SPOT"));
}

TEST(Place, PackingKeepsLargeHolesFree) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("big-hole", "eastus", {Shape(Cpu2(), 1), Shape(T4(), 8)}),
      Resource("small-hole", "eastus", {Shape(Cpu2(), 1), Shape(T4(), 8, 5)}),
  });
  Decision decision = Place(jobs.Make("j1", kT4Gang), snapshot, {});
  EXPECT_EQ(decision.cloud_resource, "small-hole");
}

TEST(Place, PriceBreaksPackingTiesAndUnpricedRanksLast) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("a-unpriced", "eastus", {Shape(Cpu2(), 2)}),
      Resource("b-dear", "eastus", {Shape(Cpu2(), 2, 0, Market::kOnDemand, 0.50)}),
      Resource("c-cheap", "eastus", {Shape(Cpu2(), 2, 0, Market::kOnDemand, 0.10)}),
  });
  EXPECT_EQ(Place(jobs.Make("j1", ""), snapshot, {}).cloud_resource, "c-cheap");
}

TEST(Place, TiesGoToTheFirstNameWhateverTheSnapshotOrder) {
  Jobs jobs;
  std::vector<ResourceState> resources = {
      Resource("charlie", "eastus", {Shape(Cpu2(), 2)}),
      Resource("alpha", "westus", {Shape(Cpu2(), 2)}),
      Resource("bravo", "eastus", {Shape(Cpu2(), 2)}),
  };
  Request request = jobs.Make("j1", "");
  EXPECT_EQ(Place(request, Build(resources), {}).cloud_resource, "alpha");
  std::reverse(resources.begin(), resources.end());
  EXPECT_EQ(Place(request, Build(resources), {}).cloud_resource, "alpha");
}

TEST(Place, InfeasibleFailsAtOnceUnlessAskedToWait) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("a", "eastus", {Shape(Cpu2(), 2), Shape(T4(), 4)}),
      Resource("b", "westus", {Shape(Cpu2(), 2)}),
  });
  Request too_big = jobs.Make("j1",
                              "compute_config:\n  worker_nodes: [{instance_type: 1xT4, "
                              "min_nodes: 5}]\n");
  Decision decision = Place(too_big, snapshot, {});
  EXPECT_EQ(decision.outcome, Outcome::kInfeasible);
  EXPECT_TRUE(decision.infeasible);
  EXPECT_EQ(decision.summary,
            "infeasible: a: needs 5 x 1xT4 but has 4 in total; b: has no instance type 1xT4");

  too_big.wait_if_infeasible = true;
  Decision waiting = Place(too_big, snapshot, {});
  EXPECT_EQ(waiting.outcome, Outcome::kPending);
  EXPECT_TRUE(waiting.infeasible);
  EXPECT_THAT(waiting.summary, HasSubstr("infeasible, waiting as asked: "));

  Decision nobody = Place(jobs.Make("j2",
                                    "compute_config:\n  worker_nodes: [{instance_type: "
                                    "8xH100, min_nodes: 1}]\n"),
                          snapshot, {});
  EXPECT_EQ(nobody.outcome, Outcome::kInfeasible);
  EXPECT_THAT(WhyLines(nobody),
              ElementsAre("a: has no instance type 8xH100", "b: has no instance type 8xH100"));
}

TEST(Place, UnknownResourceKeepsJobsThatMightFitItPending) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("known", "eastus", {Shape(Cpu2(), 2)}),
      Resource("new", "westus", {}, ResourceHealth::kUnknown),
  });
  Decision decision = Place(jobs.Make("j1",
                                      "compute_config:\n  worker_nodes: [{instance_type: "
                                      "8xH100, min_nodes: 1}]\n"),
                            snapshot, {});
  EXPECT_EQ(decision.outcome, Outcome::kPending);
  EXPECT_FALSE(decision.infeasible);
  EXPECT_THAT(WhyLines(decision), ElementsAre("new: has not reported its capacity yet (UNKNOWN)",
                                              "known: has no instance type 8xH100"));
}

TEST(Place, UnhealthyAndUntrustedResourcesReceiveNoWork) {
  Jobs jobs;
  ResourceState flapping = Resource("b-flapping", "westus", {Shape(Cpu2(), 8)});
  flapping.trusted = false;
  Snapshot snapshot = Build({
      Resource("a-down", "eastus", {Shape(Cpu2(), 8)}, ResourceHealth::kUnhealthy),
      flapping,
      Resource("c-busy", "eastus", {Shape(Cpu2(), 8, 8)}),
  });
  Decision decision = Place(jobs.Make("j1", ""), snapshot, {});
  EXPECT_EQ(decision.outcome, Outcome::kPending);
  EXPECT_THAT(WhyLines(decision),
              ElementsAre("c-busy: 0 of 8 free 2CPU-8GB (8 allocated), needs 1",
                          "b-flapping: on probation after flapping (healthy again, not yet trusted "
                          "with new work)",
                          "a-down: UNHEALTHY"));

  Snapshot with_healthy = Build({
      Resource("a-down", "eastus", {Shape(Cpu2(), 8)}, ResourceHealth::kUnhealthy),
      flapping,
      Resource("d-ok", "eastus", {Shape(Cpu2(), 8, 7)}),
  });
  EXPECT_EQ(Place(jobs.Make("j2", ""), with_healthy, {}).cloud_resource, "d-ok");
}

TEST(Place, QuotasPerRegionAndProject) {
  Jobs jobs;
  Quota east_gpus;
  east_gpus.project = "p";
  east_gpus.region = "eastus";
  east_gpus.max_gpus = 8;
  east_gpus.used_gpus = 8;
  std::vector<ResourceState> resources = {
      Resource("east", "eastus", {Shape(Cpu2(), 2), Shape(T4(), 4)}),
      Resource("west", "westus", {Shape(Cpu2(), 2), Shape(T4(), 4, 4)}),
  };
  Snapshot snapshot = Build(resources, {east_gpus});
  std::string gang =
      "project: p\ncompute_config:\n  worker_nodes: [{instance_type: 1xT4, "
      "min_nodes: 1}]\n";
  Decision blocked = Place(jobs.Make("j1", gang), snapshot, {});
  EXPECT_EQ(blocked.outcome, Outcome::kPending);
  EXPECT_EQ(blocked.summary,
            "waiting for quota: east: quota gpus/eastus for project p: 8 of 8 used, needs 1; "
            "west: 0 of 4 free 1xT4 (4 allocated), needs 1");

  // Another project is not limited by p's quota.
  Decision other =
      Place(jobs.Make("j2", "project: q\n" + gang.substr(gang.find('\n') + 1)), snapshot, {});
  EXPECT_EQ(other.cloud_resource, "east");

  // A CPU-only job is not limited by a GPU quota.
  EXPECT_EQ(Place(jobs.Make("j3", "project: p\n"), snapshot, {}).outcome, Outcome::kPlaced);

  // A gang larger than the quota allows could never run there.
  Quota small;
  small.cloud = "cloud";
  small.max_gpus = 2;
  Decision never = Place(jobs.Make("j4",
                                   "compute_config:\n  worker_nodes: [{instance_type: 1xT4, "
                                   "min_nodes: 3}]\n"),
                         Build(resources, {small}), {});
  EXPECT_EQ(never.outcome, Outcome::kInfeasible);
  EXPECT_THAT(WhyLines(never), ElementsAre("east: quota gpus for cloud cloud allows 2, the job "
                                           "needs 3",
                                           "west: quota gpus for cloud cloud allows 2, the job "
                                           "needs 3"));
}

TEST(Place, RunningJobAndCpuQuotas) {
  Jobs jobs;
  Quota jobs_quota;
  jobs_quota.project = "p";
  jobs_quota.max_running_jobs = 3;
  jobs_quota.running_jobs = 3;
  Snapshot snapshot = Build({Resource("a", "eastus", {Shape(Cpu8(), 4)})}, {jobs_quota});
  Decision decision = Place(jobs.Make("j1", "project: p\n"), snapshot, {});
  EXPECT_EQ(decision.summary,
            "waiting for quota: a: quota running jobs for project p: 3 of 3 used, needs 1");

  Quota cpus;
  cpus.max_cpus = 10;
  cpus.used_cpus = 4;
  Decision cpu =
      Place(jobs.Make("j2", ""), Build({Resource("a", "eastus", {Shape(Cpu8(), 4)})}, {cpus}), {});
  EXPECT_EQ(cpu.summary, "waiting for quota: a: quota cpus: 4 of 10 used, needs 8");
}

TEST(Place, OnlyTheJobsCloud) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("mine", "eastus", {Shape(Cpu2(), 1, 1)}, ResourceHealth::kHealthy, "research"),
      Resource("theirs", "eastus", {Shape(Cpu2(), 8)}, ResourceHealth::kHealthy, "prod"),
  });
  Decision decision = Place(jobs.Make("j1", "cloud: research\n"), snapshot, {});
  EXPECT_EQ(decision.outcome, Outcome::kPending);
  EXPECT_THAT(WhyLines(decision), ElementsAre("mine: 0 of 1 free 2CPU-8GB (1 allocated), needs 1"));
  Decision unknown_cloud = Place(jobs.Make("j2", "cloud: nowhere\n"), snapshot, {});
  EXPECT_EQ(unknown_cloud.summary, "infeasible: cloud nowhere has no cloud resources");
}

TEST(Place, WhyListsTheMostHopefulResourcesAndCountsTheRest) {
  Jobs jobs;
  std::vector<ResourceState> resources;
  for (int i = 0; i < 30; ++i) {
    resources.push_back(
        Resource(fmt::format("r{:02}", i), "eastus", {Shape(Cpu2(), 4, i < 5 ? 3 : 4)}));
  }
  Snapshot snapshot = Build(resources);
  Options options;
  options.max_reasons = 3;
  Decision decision = Place(jobs.Make("j1",
                                      "compute_config:\n  head_node: {instance_type: "
                                      "2CPU-8GB}\n  worker_nodes: [{instance_type: "
                                      "2CPU-8GB, min_nodes: 1}]\n"),
                            snapshot, options);
  EXPECT_EQ(decision.outcome, Outcome::kPending);
  // Those one node short come first.
  EXPECT_THAT(WhyLines(decision), ElementsAre("r00: 1 of 4 free 2CPU-8GB (3 allocated), needs 2",
                                              "r01: 1 of 4 free 2CPU-8GB (3 allocated), needs 2",
                                              "r02: 1 of 4 free 2CPU-8GB (3 allocated), needs 2"));
  EXPECT_EQ(decision.why_omitted, 27u);
  EXPECT_THAT(decision.summary, HasSubstr("(+28 more)"));
}

TEST(Snapshot, RefusesDuplicatesAndNegativeCounts) {
  auto error = [](std::vector<ResourceState> resources) {
    return std::string(Snapshot::Build(std::move(resources), {}).status().message());
  };
  EXPECT_EQ(error({Resource("a", "eastus", {}), Resource("a", "westus", {})}),
            "cloud resource a appears twice in the snapshot");
  EXPECT_EQ(error({Resource("a", "eastus", {Shape(Cpu2(), 1), Shape(Cpu2(), 2)})}),
            "cloud resource a reports instance type 2CPU-8GB (ON_DEMAND) twice");
  EXPECT_EQ(error({Resource("a", "eastus", {Shape(Cpu2(), -1)})}),
            "cloud resource a reports a negative node count for 2CPU-8GB");
  // The same shape in both markets is two capacities, not a duplicate.
  EXPECT_TRUE(Snapshot::Build(
                  {Resource("a", "eastus", {Shape(T4(), 1), Shape(T4(), 1, 0, Market::kSpot)})}, {})
                  .ok());
}

}  // namespace
}  // namespace meridian::control::scheduler
