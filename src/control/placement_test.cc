#include "control/placement.h"

#include "gtest/gtest.h"

namespace meridian::control {
namespace {

spec::InstanceType Type(std::string name, double cpu, int gpu, std::vector<std::string> acc = {}) {
  spec::InstanceType type;
  type.name = std::move(name);
  type.cpu = cpu;
  type.gpu = gpu;
  type.memory_bytes = static_cast<int64_t>(cpu) * (int64_t{4} << 30);
  type.accelerators = std::move(acc);
  return type;
}

ResourceView Resource(std::string name, std::string region, Health health = Health::kHealthy) {
  ResourceView view;
  view.name = std::move(name);
  view.region = std::move(region);
  view.health = health;
  view.capacity = {{Type("8CPU-32GB", 8, 0), 2}, {Type("2CPU-8GB", 2, 0), 4}};
  return view;
}

spec::JobConfig Job(std::string head = "", std::vector<spec::WorkerNodeGroup> workers = {}) {
  spec::JobConfig config;
  config.entrypoint = "true";
  config.compute_config.target.head_instance_type = std::move(head);
  config.compute_config.target.worker_nodes = std::move(workers);
  return config;
}

TEST(Placement, HeadWithoutTypeTakesTheSmallestCpuShape) {
  PlacementDecision decision = PlaceJob(Job(), {Resource("east", "eastus")});
  ASSERT_EQ(decision.kind, PlacementDecision::Kind::kPlaced);
  EXPECT_EQ(decision.cloud_resource, "east");
  EXPECT_EQ(decision.region, "eastus");
  ASSERT_EQ(decision.nodes.size(), 1u);
  EXPECT_EQ(decision.nodes[0].instance_type, "2CPU-8GB");
}

TEST(Placement, GangNeedsHeadAndMinWorkersInOneResource) {
  ResourceView east = Resource("east", "eastus");
  east.allocated_nodes["8CPU-32GB"] = 1;  // one of two busy
  ResourceView west = Resource("west", "westus");
  spec::WorkerNodeGroup group{"8CPU-32GB", "workers", 2, 4};
  PlacementDecision decision = PlaceJob(Job("2CPU-8GB", {group}), {east, west});
  ASSERT_EQ(decision.kind, PlacementDecision::Kind::kPlaced);
  EXPECT_EQ(decision.cloud_resource, "west");
}

TEST(Placement, FullResourceIsPendingWithAReason) {
  ResourceView east = Resource("east", "eastus");
  east.allocated_nodes["8CPU-32GB"] = 2;
  PlacementDecision decision = PlaceJob(Job("8CPU-32GB"), {east});
  EXPECT_EQ(decision.kind, PlacementDecision::Kind::kPending);
  EXPECT_NE(decision.reason.find("needs 1 x 8CPU-32GB, 0 of 2 free"), std::string::npos)
      << decision.reason;
}

TEST(Placement, UnknownShapeOrTooManyNodesIsInfeasible) {
  EXPECT_EQ(PlaceJob(Job("1xT4"), {Resource("east", "eastus")}).kind,
            PlacementDecision::Kind::kInfeasible);
  spec::WorkerNodeGroup group{"8CPU-32GB", "workers", 3, 3};
  PlacementDecision decision = PlaceJob(Job("2CPU-8GB", {group}), {Resource("east", "eastus")});
  EXPECT_EQ(decision.kind, PlacementDecision::Kind::kInfeasible);
  EXPECT_NE(decision.reason.find("has 2 in total"), std::string::npos) << decision.reason;
}

TEST(Placement, PinnedResourceIsHonouredAndMissingPinIsInfeasible) {
  spec::JobConfig config = Job();
  config.compute_config.target.cloud_resource = "west";
  PlacementDecision decision =
      PlaceJob(config, {Resource("east", "eastus"), Resource("west", "westus")});
  ASSERT_EQ(decision.kind, PlacementDecision::Kind::kPlaced);
  EXPECT_EQ(decision.cloud_resource, "west");
  config.compute_config.target.cloud_resource = "north";
  decision = PlaceJob(config, {Resource("east", "eastus")});
  EXPECT_EQ(decision.kind, PlacementDecision::Kind::kInfeasible);
  EXPECT_NE(decision.reason.find("north does not exist"), std::string::npos);
}

TEST(Placement, UnhealthyResourcesGetNoWorkButKeepJobsPending) {
  PlacementDecision decision = PlaceJob(Job(), {Resource("east", "eastus", Health::kUnhealthy)});
  EXPECT_EQ(decision.kind, PlacementDecision::Kind::kPending);
  EXPECT_NE(decision.reason.find("UNHEALTHY"), std::string::npos);
}

TEST(Placement, ConfigsAreTriedInInputOrder) {
  spec::JobConfig config = Job();
  spec::ComputeTarget first;
  first.cloud_resource = "west";
  first.head_instance_type = "1xT4";  // west has no T4: skip to the next config
  spec::ComputeTarget second;
  second.cloud_resource = "east";
  config.compute_config.configs = {first, second};
  PlacementDecision decision =
      PlaceJob(config, {Resource("east", "eastus"), Resource("west", "westus")});
  ASSERT_EQ(decision.kind, PlacementDecision::Kind::kPlaced);
  EXPECT_EQ(decision.cloud_resource, "east");
}

// Regression (found by Durability.EveryAcknowledgedJobSurvivesServerKill9): a resource whose
// operator had not reported yet made every job pinned to it FAILED as infeasible.
TEST(Placement, ResourceThatHasNotReportedKeepsJobsPending) {
  ResourceView fresh;
  fresh.name = "fresh";
  fresh.region = "eastus";
  fresh.health = Health::kUnknown;
  spec::JobConfig config = Job("1xT4");
  config.compute_config.target.cloud_resource = "fresh";
  PlacementDecision decision = PlaceJob(config, {fresh});
  EXPECT_EQ(decision.kind, PlacementDecision::Kind::kPending);
  EXPECT_NE(decision.reason.find("has not reported"), std::string::npos) << decision.reason;
  // A shape that a reporting resource lacks is still pending while another may offer it.
  decision = PlaceJob(Job("1xT4"), {Resource("east", "eastus"), fresh});
  EXPECT_EQ(decision.kind, PlacementDecision::Kind::kPending);
}

TEST(Placement, NoResourcesAtAllIsInfeasible) {
  PlacementDecision decision = PlaceJob(Job(), {});
  EXPECT_EQ(decision.kind, PlacementDecision::Kind::kInfeasible);
  EXPECT_NE(decision.reason.find("no cloud resource"), std::string::npos);
}

}  // namespace
}  // namespace meridian::control
