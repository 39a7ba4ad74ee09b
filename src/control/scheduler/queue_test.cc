#include "control/scheduler/scheduler.h"
#include "control/scheduler/scheduler_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meridian::control::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace ::meridian::control::scheduler::testing;

// "job: outcome resource" per decision, in queue order.
std::vector<std::string> Outline(const QueuePlan& plan) {
  std::vector<std::string> lines;
  for (const QueueDecision& item : plan.decisions) {
    std::string line = item.job_id + ": " + std::string(OutcomeName(item.decision.outcome));
    if (item.decision.outcome == Outcome::kPlaced) line += " " + item.decision.cloud_resource;
    lines.push_back(line);
  }
  return lines;
}

TEST(PlanQueue, PriorityFirstThenSubmitOrder) {
  Jobs jobs;
  Snapshot snapshot = Build({Resource("a", "eastus", {Shape(Cpu2(), 2)})});
  std::vector<Request> requests = {
      jobs.Make("early-low", "priority: 500\n", 1),
      jobs.Make("late-high", "priority: 0\n", 4),
      jobs.Make("second", "", 3),
      jobs.Make("first", "", 2),
  };
  QueuePlan plan = PlanQueue(requests, std::move(snapshot), {});
  EXPECT_THAT(Outline(plan), ElementsAre("late-high: placed a", "first: placed a",
                                         "second: pending", "early-low: pending"));
  EXPECT_EQ(plan.decisions[0].request_index, 1u);
  // The snapshot comes back with the placed nodes taken.
  EXPECT_EQ(plan.snapshot.FreeNodes(0, 0), 0);
}

TEST(PlanQueue, EachPlacementTakesNodesBeforeTheNextIsDecided) {
  Jobs jobs;
  Snapshot snapshot = Build({
      Resource("a", "eastus", {Shape(Cpu2(), 2), Shape(T4(), 3)}),
      Resource("b", "westus", {Shape(Cpu2(), 2), Shape(T4(), 2)}),
  });
  std::string gang =
      "compute_config:\n  head_node: {instance_type: 2CPU-8GB}\n  worker_nodes: "
      "[{instance_type: 1xT4, min_nodes: 2}]\n";
  std::vector<Request> requests = {jobs.Make("j1", gang, 1), jobs.Make("j2", gang, 2),
                                   jobs.Make("j3", gang, 3)};
  QueuePlan plan = PlanQueue(requests, std::move(snapshot), {});
  // j1 best-fits b (fewer nodes left over), j2 then takes a, j3 finds neither.
  EXPECT_THAT(Outline(plan), ElementsAre("j1: placed b", "j2: placed a", "j3: pending"));
  EXPECT_EQ(plan.decisions[2].decision.summary,
            "waiting for capacity: a: 1 of 3 free 1xT4 (2 allocated), needs 2; b: 0 of 2 free "
            "1xT4 (2 allocated), needs 2 (holding 2 free nodes on a until the rest frees)");
}

TEST(PlanQueue, BigWaitingJobHoldsItsNodesAndSmallJobsBackfillAroundIt) {
  Jobs jobs;
  Snapshot snapshot = Build({
      // 3 of 4 T4s busy: the big job needs all 4 (and the head node).
      Resource("gpu", "eastus", {Shape(Cpu2(), 1), Shape(T4(), 4, 3)}),
      Resource("cpu", "eastus", {Shape(Cpu2(), 4)}),
  });
  std::vector<Request> requests = {
      jobs.Make("big",
                "priority: 10\ncompute_config:\n  worker_nodes: [{instance_type: 1xT4, "
                "min_nodes: 4}]\n",
                1),
      jobs.Make("small-gpu",
                "compute_config:\n  worker_nodes: [{instance_type: 1xT4, "
                "min_nodes: 1}]\n",
                2),
      jobs.Make("small-cpu", "", 3),
  };
  QueuePlan plan = PlanQueue(requests, std::move(snapshot), {});
  // The free head node and T4 stay for "big"; the CPU job still runs elsewhere.
  EXPECT_THAT(Outline(plan),
              ElementsAre("big: pending", "small-gpu: pending", "small-cpu: placed cpu"));
  EXPECT_EQ(plan.decisions[0].held_on, "gpu");
  EXPECT_EQ(plan.decisions[0].held_nodes, 2);
  EXPECT_THAT(plan.decisions[0].decision.summary,
              HasSubstr("(holding 2 free nodes on gpu until the rest frees)"));
  EXPECT_THAT(plan.decisions[1].decision.summary,
              HasSubstr("gpu: 1 of 1 2CPU-8GB free but held for waiting job big, needs 1"));

  // Without holds the small job would have taken it: the limit is what enables backfill.
  Options no_holds;
  no_holds.max_holds = 0;
  QueuePlan greedy =
      PlanQueue(requests,
                Build({Resource("gpu", "eastus", {Shape(Cpu2(), 1), Shape(T4(), 4, 3)}),
                       Resource("cpu", "eastus", {Shape(Cpu2(), 4)})}),
                no_holds);
  EXPECT_THAT(Outline(greedy),
              ElementsAre("big: pending", "small-gpu: placed gpu", "small-cpu: placed cpu"));
}

TEST(PlanQueue, QuotaUsageGrowsAsJobsArePlacedAndQuotaWaitersHoldNothing) {
  Jobs jobs;
  Quota quota;
  quota.project = "p";
  quota.max_gpus = 2;
  Snapshot snapshot = Build({Resource("a", "eastus", {Shape(Cpu2(), 8), Shape(T4(), 8)})}, {quota});
  std::string one_gpu =
      "project: p\ncompute_config:\n  worker_nodes: [{instance_type: 1xT4, "
      "min_nodes: 1}]\n";
  std::vector<Request> requests = {jobs.Make("j1", one_gpu, 1), jobs.Make("j2", one_gpu, 2),
                                   jobs.Make("j3", one_gpu, 3), jobs.Make("other", "", 4)};
  QueuePlan plan = PlanQueue(requests, std::move(snapshot), {});
  EXPECT_THAT(Outline(plan),
              ElementsAre("j1: placed a", "j2: placed a", "j3: pending", "other: placed a"));
  EXPECT_EQ(plan.decisions[2].decision.summary,
            "waiting for quota: a: quota gpus for project p: 2 of 2 used, needs 1");
  EXPECT_TRUE(plan.decisions[2].held_on.empty());
  EXPECT_EQ(plan.snapshot.quotas()[0].used_gpus, 2);
  EXPECT_EQ(plan.snapshot.quotas()[0].running_jobs, 2);
}

TEST(PlanQueue, OnlyTheFirstMaxHoldsWaitingJobsHold) {
  Jobs jobs;
  Snapshot snapshot = Build({Resource("a", "eastus", {Shape(T4(), 4, 2)})});
  std::string three =
      "compute_config:\n  head_node: {instance_type: 1xT4}\n  worker_nodes: "
      "[{instance_type: 1xT4, min_nodes: 2}]\n";
  std::string one = "compute_config:\n  head_node: {instance_type: 1xT4}\n";
  Options options;
  options.max_holds = 1;
  std::vector<Request> requests = {jobs.Make("big-1", three, 1), jobs.Make("small", one, 2)};
  QueuePlan plan = PlanQueue(requests, std::move(snapshot), options);
  // big-1 holds both free nodes: small cannot take one.
  EXPECT_THAT(Outline(plan), ElementsAre("big-1: pending", "small: pending"));
  EXPECT_EQ(plan.decisions[0].held_nodes, 2);
}

TEST(PlanQueue, InfeasibleJobsFailWithoutBlockingOthers) {
  Jobs jobs;
  Snapshot snapshot = Build({Resource("a", "eastus", {Shape(Cpu2(), 1)})});
  std::vector<Request> requests = {
      jobs.Make("impossible",
                "priority: 0\ncompute_config:\n  worker_nodes: [{instance_type: "
                "8xH100, min_nodes: 1}]\n",
                1),
      jobs.Make("fine", "", 2)};
  QueuePlan plan = PlanQueue(requests, std::move(snapshot), {});
  EXPECT_THAT(Outline(plan), ElementsAre("impossible: infeasible", "fine: placed a"));
}

}  // namespace
}  // namespace meridian::control::scheduler
