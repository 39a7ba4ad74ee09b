// Hand-built snapshots and jobs for the scheduler's tests.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "control/scheduler/scheduler.h"
#include "gtest/gtest.h"

namespace meridian::control::scheduler::testing {

inline constexpr int64_t kGiB = int64_t{1} << 30;

inline spec::InstanceType Type(std::string name, double cpu, int gpu, int64_t memory_gib,
                               std::vector<std::string> accelerators = {}) {
  return spec::InstanceType{std::move(name), cpu, gpu, memory_gib * kGiB, std::move(accelerators)};
}

// Shapes used across the tests.
inline spec::InstanceType Cpu2() { return Type("2CPU-8GB", 2, 0, 8); }
inline spec::InstanceType Cpu8() { return Type("8CPU-32GB", 8, 0, 32); }
inline spec::InstanceType T4() { return Type("1xT4", 4, 1, 16, {"T4"}); }
inline spec::InstanceType T4x2() { return Type("2xT4", 8, 2, 32, {"T4"}); }
inline spec::InstanceType A100() { return Type("1xA100", 12, 1, 96, {"A100"}); }

inline ShapeCapacity Shape(spec::InstanceType type, int total, int allocated = 0,
                           Market market = Market::kOnDemand,
                           std::optional<double> price = std::nullopt) {
  return ShapeCapacity{std::move(type), market, total, allocated, price};
}

inline ResourceState Resource(std::string name, std::string region,
                              std::vector<ShapeCapacity> shapes,
                              ResourceHealth health = ResourceHealth::kHealthy,
                              std::string cloud = "cloud") {
  ResourceState state;
  state.name = std::move(name);
  state.cloud = std::move(cloud);
  state.region = std::move(region);
  state.health = health;
  state.shapes = std::move(shapes);
  return state;
}

inline Snapshot Build(std::vector<ResourceState> resources, std::vector<Quota> quotas = {}) {
  Result<Snapshot> snapshot = Snapshot::Build(std::move(resources), std::move(quotas));
  EXPECT_TRUE(snapshot.ok()) << snapshot.status();
  return std::move(*snapshot);
}

// Keeps job configs alive for the requests that point at them.
class Jobs {
 public:
  // `yaml` is a job.yaml body without the entrypoint line.
  Request Make(const std::string& job_id, const std::string& yaml, int64_t submit_order = 0) {
    Result<spec::JobConfig> config =
        spec::ParseJobConfigYaml("entrypoint: python train.py\n" + yaml, job_id + ".yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    configs_.push_back(config.ok() ? *config : spec::JobConfig{});
    return RequestFor(job_id, configs_.back(), submit_order);
  }

 private:
  std::deque<spec::JobConfig> configs_;
};

// "eastus-a: reason" lines of a decision, for compact assertions.
inline std::vector<std::string> WhyLines(const Decision& decision) {
  std::vector<std::string> lines;
  for (const WhyNot& why : decision.why) lines.push_back(why.resource + ": " + why.reason);
  return lines;
}

}  // namespace meridian::control::scheduler::testing
