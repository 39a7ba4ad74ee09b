// Multi-region scheduling and failover with real processes and real network links: three
// LOCAL cloud resources in three regions, each operator in its own network namespace that
// the test makes, linked to the control plane by its own veth pair. Cutting a link is
// `ip link set <veth> down` on the control plane's side, so the operator keeps running and
// its attempts keep running too, exactly as in a region that lost its network.
//
// Addresses and names: see tests/netlab/netlab.h. Needs root (CAP_NET_ADMIN); ctest runs these
// tests one at a time (RESOURCE_LOCK), since the names and addresses are fixed.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "fmt/format.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/netlab/netlab.h"

namespace meridian::itest {
namespace {

using nlohmann::json;

using netlab::NetLab;
using netlab::Region;

constexpr int64_t kHeartbeatTimeoutMs = 3'000;

class FailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to make network namespaces";
    std::string failed = lab_.Create();
    ASSERT_EQ(failed, "") << failed;
    Status started =
        platform_.StartServer(kHeartbeatTimeoutMs, 0, "0.0.0.0", lab_.HostAddresses());
    ASSERT_TRUE(started.ok()) << started;
    types_ = platform_.WriteFile("local/types.yaml",
                                 "workloads:\n"
                                 "  instanceTypes:\n"
                                 "    additional:\n"
                                 "      2CPU-8GB:\n        resources: {CPU: 2, memory: 8Gi}\n"
                                 "      1xT4:\n"
                                 "        resources: {CPU: 12, GPU: 1, memory: 92Gi, "
                                 "accelerators: [T4]}\n");
  }

  // Starts every region's operator in its namespace; `t4` is each region's T4 node count.
  void StartRegions(const std::vector<int>& t4) {
    for (size_t i = 0; i < lab_.regions().size(); ++i) {
      const Region& r = lab_.regions()[i];
      ASSERT_TRUE(platform_.CreateLocalResource(r.resource, r.region).ok());
      OperatorSpec spec;
      spec.cloud_resource = r.resource;
      spec.instance_types_file = types_;
      spec.nodes = {"2CPU-8GB=8", fmt::format("1xT4={}", t4[i])};
      spec.netns = r.netns;
      spec.server_url = fmt::format("https://{}:{}", r.host_address, platform_.port());
      Status started = platform_.StartOperator(spec);
      ASSERT_TRUE(started.ok()) << started;
    }
    for (const Region& r : lab_.regions()) {
      ASSERT_TRUE(platform_.WaitHealth(r.resource, "HEALTHY")) << platform_.LogTail(r.resource);
    }
  }

  int IndexOf(const std::string& resource) const {
    for (size_t i = 0; i < lab_.regions().size(); ++i) {
      if (lab_.regions()[i].resource == resource) return static_cast<int>(i);
    }
    return -1;
  }

  std::string Submit(const std::string& name, const std::string& body) {
    std::string file = platform_.WriteFile("jobs/" + name + ".yaml", "name: " + name + "\n" + body);
    CommandResult submitted = platform_.Cli({"job", "submit", "-f", file});
    EXPECT_EQ(submitted.exit_code, 0) << submitted.Describe();
    return SubmittedJobId(submitted.out);
  }

  std::string Logs(const std::string& id, int attempt) {
    return platform_.Cli({"job", "logs", id, "--attempt", std::to_string(attempt)}).out;
  }

  // Processes of this platform whose command line mentions `needle`.
  std::vector<pid_t> ProcessesMentioning(const std::string& needle) {
    std::vector<pid_t> found;
    for (pid_t pid : platform_.ProcessesOfHome()) {
      std::ifstream in(fmt::format("/proc/{}/cmdline", pid));
      std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (cmdline.find(needle) != std::string::npos) found.push_back(pid);
    }
    return found;
  }

  NetLab lab_;
  Platform platform_;
  std::string types_;
};

TEST_F(FailoverTest, GpuJobsGoWhereGpusAreFreeAndWaitWhenNoneAre) {
  StartRegions({1, 2, 0});
  std::string body =
      "entrypoint: sleep 120\ncompute_config:\n  head_node:\n    instance_type: 1xT4\n";
  std::map<std::string, int> placed;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    std::string id = Submit(fmt::format("gpu-{}", i), body);
    ASSERT_FALSE(id.empty());
    ids.push_back(id);
    json job = platform_.Job(id);
    ASSERT_EQ(job["attempts"].size(), 1u) << job.dump(2);
    placed[job["attempts"][0]["cloud_resource"].get<std::string>()] += 1;
  }
  // eastus has one T4 and westus two; northeurope has none.
  EXPECT_EQ(placed["east"], 1) << json(placed).dump();
  EXPECT_EQ(placed["west"], 2) << json(placed).dump();

  // Every T4 is taken: the next GPU job waits and says why.
  std::string waiting = Submit("gpu-waiting", body);
  json job = platform_.Job(waiting);
  EXPECT_EQ(job["attempts"].size(), 0u) << job.dump(2);
  EXPECT_EQ(job["state"], "STARTING");
  std::string message = job["message"].get<std::string>();
  EXPECT_NE(message.find("waiting for capacity"), std::string::npos) << message;
  EXPECT_NE(message.find("east"), std::string::npos) << message;

  // The capacity view agrees.
  CommandResult capacity = platform_.Cli({"capacity", "-o", "json"});
  ASSERT_EQ(capacity.exit_code, 0) << capacity.Describe();
  json view = json::parse(capacity.out);
  bool found_t4 = false;
  for (const json& accelerator : view["accelerators"]) {
    if (accelerator["accelerator"] != "T4") continue;
    found_t4 = true;
    EXPECT_EQ(accelerator["gpus_total"], 3);
    EXPECT_EQ(accelerator["gpus_free"], 0);
  }
  EXPECT_TRUE(found_t4) << view.dump(2);

  // Freeing one T4 lets the waiting job start there.
  CommandResult terminated = platform_.Cli({"job", "terminate", ids[0], "--wait"});
  EXPECT_EQ(terminated.exit_code, 0) << terminated.Describe();
  EXPECT_TRUE(Eventually([&] { return platform_.Job(waiting)["attempts"].size() == 1; }))
      << platform_.Job(waiting).dump(2);
}

TEST_F(FailoverTest, InfeasibleJobFailsAtOnceNamingWhyEveryResourceCannotHoldIt) {
  StartRegions({1, 2, 0});
  std::string id = Submit("too-big",
                          "entrypoint: sleep 1\ncompute_config:\n  head_node:\n"
                          "    instance_type: 1xT4\n  worker_nodes:\n"
                          "    - instance_type: 1xT4\n      min_nodes: 4\n");
  json job = platform_.Job(id);
  EXPECT_EQ(job["state"], "FAILED") << job.dump(2);
  std::string message = job["message"].get<std::string>();
  EXPECT_NE(message.find("infeasible"), std::string::npos) << message;
  // `meridian job status` lists every resource with its reason.
  std::set<std::string> explained;
  for (const json& item : job["why_pending"]) explained.insert(item["cloud_resource"]);
  EXPECT_EQ(explained, (std::set<std::string>{"east", "west", "north"})) << job.dump(2);
  CommandResult status = platform_.Cli({"job", "status", id});
  EXPECT_NE(status.out.find("Why no cloud resource can hold it"), std::string::npos)
      << status.Describe();
}

TEST_F(FailoverTest, InputOrderWaitsForTheFirstConfigUntilItsStartingTimeoutThenUsesTheNext) {
  StartRegions({1, 1, 0});
  std::string gpu = "entrypoint: sleep 120\ncompute_config:\n  head_node:\n    instance_type: 1xT4\n";
  std::string blocker = Submit("east-blocker", gpu + "  cloud_resource: east\n");
  ASSERT_EQ(platform_.Job(blocker)["attempts"].size(), 1u);
  std::string id = Submit("fallback",
                          "entrypoint: sleep 1\n"
                          "compute_config:\n"
                          "  configs:\n"
                          "    - cloud_resource: east\n"
                          "      head_node: {instance_type: 1xT4}\n"
                          "    - cloud_resource: west\n"
                          "      head_node: {instance_type: 1xT4}\n"
                          "  flags:\n"
                          "    cloud_resource_strategy: input_order\n"
                          "    cloud_resource_starting_timeout: 4s\n");
  // Like Anyscale: the first config is tried for its starting timeout even though the second
  // has room right now.
  json job = platform_.Job(id);
  EXPECT_EQ(job["attempts"].size(), 0u) << job.dump(2);
  ASSERT_TRUE(Eventually([&] { return platform_.Job(id)["attempts"].size() == 1; }))
      << platform_.Job(id).dump(2);
  job = platform_.WaitJobFinal(id);
  EXPECT_EQ(job["state"], "SUCCEEDED") << job.dump(2);
  EXPECT_EQ(job["attempts"][0]["cloud_resource"], "west");
}

TEST_F(FailoverTest, QuotaKeepsAJobWaitingAndNamesTheQuota) {
  StartRegions({2, 2, 0});
  CommandResult set =
      platform_.Cli({"quota", "set", "--cloud", "default", "--region", "eastus", "--gpus", "1"});
  ASSERT_EQ(set.exit_code, 0) << set.Describe();
  std::string gpu =
      "entrypoint: sleep 120\ncompute_config:\n  cloud_resource: east\n  head_node:\n"
      "    instance_type: 1xT4\n";
  std::string first = Submit("quota-1", gpu);
  ASSERT_EQ(platform_.Job(first)["attempts"].size(), 1u);
  std::string second = Submit("quota-2", gpu);
  json job = platform_.Job(second);
  EXPECT_EQ(job["attempts"].size(), 0u) << job.dump(2);
  EXPECT_NE(job["message"].get<std::string>().find("quota"), std::string::npos) << job.dump(2);
  CommandResult status = platform_.Cli({"job", "status", second});
  EXPECT_NE(status.out.find("Why it is waiting"), std::string::npos) << status.Describe();
  CommandResult list = platform_.Cli({"quota", "list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  json quotas = json::parse(list.out);
  ASSERT_EQ(quotas["items"].size(), 1u);
  EXPECT_EQ(quotas["items"][0]["used_gpus"], 1);
}

TEST_F(FailoverTest, CutRegionsJobResumesElsewhereAndTheStaleAttemptIsStoppedOnReturn) {
  StartRegions({1, 1, 1});
  std::string train = SourceDir() + "/examples/jobs/train";
  std::string id = Submit("train-failover",
                          fmt::format("entrypoint: python3 train.py --steps 400 --step-seconds "
                                      "0.1\nworking_dir: {}\nmax_retries: 0\nenv_vars:\n"
                                      "  CHECKPOINT_NAME: failover\n",
                                      train));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(Eventually([&] { return platform_.Job(id)["state"] == "RUNNING"; }))
      << platform_.Job(id).dump(2);
  std::string first = platform_.Job(id)["attempts"][0]["cloud_resource"].get<std::string>();
  int cut = IndexOf(first);
  ASSERT_GE(cut, 0);
  // Let it make progress, then cut its region off.
  std::string checkpoint = platform_.home() + "/cluster-storage/checkpoints/failover/latest.json";
  ASSERT_TRUE(Eventually([&] {
    std::ifstream in(checkpoint);
    json state = json::parse(in, nullptr, false);
    return !state.is_discarded() && state.value("step", 0) >= 10;
  }));
  ASSERT_TRUE(lab_.SetLink(cut, false));

  // The attempt is LOST and the job runs again in another region, resuming its checkpoint.
  ASSERT_TRUE(Eventually([&] {
    json job = platform_.Job(id);
    return job["attempts"].size() == 2 && job["attempts"][1]["state"] == "RUNNING";
  })) << platform_.Job(id).dump(2);
  json job = platform_.Job(id);
  EXPECT_EQ(job["attempts"][0]["state"], "LOST");
  EXPECT_NE(job["attempts"][1]["cloud_resource"], first);
  EXPECT_EQ(platform_.Resource(first)["health"], "UNHEALTHY");

  // The link comes back while the stale attempt still trains: its operator is told to stop it.
  ASSERT_TRUE(lab_.SetLink(cut, true));
  job = platform_.WaitJobFinal(id);
  EXPECT_EQ(job["state"], "SUCCEEDED") << job.dump(2);
  std::string resumed = Logs(id, 2);
  size_t at = resumed.find("resumed from step ");
  ASSERT_NE(at, std::string::npos) << resumed;
  EXPECT_GE(std::atoi(resumed.c_str() + at + 18), 10) << resumed;

  EXPECT_TRUE(Eventually([&] { return platform_.Resource(first)["health"] == "HEALTHY"; }));
  EXPECT_TRUE(Eventually([&] { return ProcessesMentioning("train.py").empty(); }))
      << "the stale attempt still runs after its region came back";
  // No duplicate completion: the lost attempt stays LOST, one attempt succeeded.
  job = platform_.Job(id);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_EQ(job["attempts"][0]["state"], "LOST") << job.dump(2);
  int succeeded = 0;
  for (const json& attempt : job["attempts"]) succeeded += attempt["state"] == "SUCCEEDED";
  EXPECT_EQ(succeeded, 1) << job.dump(2);
}

}  // namespace
}  // namespace meridian::itest
