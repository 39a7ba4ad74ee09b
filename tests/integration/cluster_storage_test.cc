// Cluster storage end to end: two LOCAL cloud resources in two regions share one local object
// store (object_storage.bucket_name: file://...); each operator mounts it and every attempt
// sees it at MERIDIAN_CLUSTER_STORAGE. A checkpoint written by examples/jobs/train in one
// region is read by examples/jobs/evaluate.yaml in the other.
//
// Where /dev/fuse is usable the jobs must see a real FUSE mount and the checkpoint must be an
// object of the store; elsewhere the operators fall back to a shared plain directory.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "fmt/format.h"
#include "gtest/gtest.h"
#include "operator/cluster_storage.h"
#include "tests/integration/harness.h"

namespace meridian::itest {
namespace {

using nlohmann::json;

using op::IsMountPoint;

class ClusterStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status started = platform_.StartServer();
    ASSERT_TRUE(started.ok()) << started;
    bucket_ = "file://" + platform_.home() + "/object-storage";
    Result<net::HttpResponse> cloud =
        platform_.Request("POST", "/api/v1/clouds", json{{"name", "default"}}.dump());
    ASSERT_TRUE(cloud.ok()) << cloud.status();
    ASSERT_EQ(cloud->status, 201) << cloud->body;
    for (const auto& [name, region] : {std::pair{"local-eastus", "eastus"},
                                       std::pair{"local-westus", "westus"}}) {
      json spec = {{"name", name},
                   {"provider", "LOCAL"},
                   {"compute_stack", "LOCAL"},
                   {"region", region},
                   {"object_storage", {{"bucket_name", bucket_}}}};
      Result<net::HttpResponse> created =
          platform_.Request("POST", "/api/v1/clouds/default/resources", spec.dump());
      ASSERT_TRUE(created.ok()) << created.status();
      ASSERT_EQ(created->status, 201) << created->body;
      Status operator_started = platform_.StartOperator({name, "", {"2CPU-8GB=2"}});
      ASSERT_TRUE(operator_started.ok()) << operator_started;
    }
    for (const char* name : {"local-eastus", "local-westus"}) {
      ASSERT_TRUE(platform_.WaitHealth(name, "HEALTHY")) << platform_.LogTail(name);
    }
  }

  std::string MountDir(const std::string& resource) const {
    return fmt::format("{}/operators/{}/cluster-storage/mnt", platform_.home(), resource);
  }

  // SIGTERM to every operator, as at shutdown; returns whether their mounts went away.
  bool StopOperatorsAndWaitUnmounted() {
    for (pid_t pid : platform_.ProcessesOfHome("operator")) ::kill(pid, SIGTERM);
    return Eventually([&] {
      return !IsMountPoint(MountDir("local-eastus")) && !IsMountPoint(MountDir("local-westus"));
    });
  }

  void TearDown() override {
    // A safety net only: the operators unmount on SIGTERM (asserted by the test).
    for (const char* name : {"local-eastus", "local-westus"}) {
      if (IsMountPoint(MountDir(name))) {
        platform_.KillOperator(name);
        (void)std::system(fmt::format("fusermount3 -u -z '{}' 2>/dev/null", MountDir(name)).c_str());
      }
    }
  }

  // Submits `file` with --wait; returns the job's JSON after it finished.
  json SubmitAndWait(const std::string& file) {
    CommandResult submitted = platform_.Cli({"job", "submit", "-f", file, "--wait"});
    std::string id = SubmittedJobId(submitted.out);
    EXPECT_FALSE(id.empty()) << submitted.Describe();
    if (id.empty()) return json();
    json job = platform_.WaitJobFinal(id);
    job["_logs"] = platform_.Cli({"job", "logs", id}).out;
    return job;
  }

  Platform platform_;
  std::string bucket_;
};

TEST_F(ClusterStorageTest, CheckpointWrittenInOneRegionIsReadInTheOtherThroughTheMounts) {
  bool fuse = op::FuseDeviceUsable();
  // train.py from the examples, pinned to eastus; it also prints the filesystem type it sees.
  std::string train = platform_.WriteFile(
      "jobs/train.yaml",
      fmt::format("name: train-tiny\n"
                  "entrypoint: stat -f -c fs=%T \"$MERIDIAN_CLUSTER_STORAGE\" && "
                  "python3 train.py --steps 7 --step-seconds 0\n"
                  "working_dir: {}/examples/jobs/train\n"
                  "compute_config:\n  cloud_resource: local-eastus\n"
                  "  head_node:\n    instance_type: 2CPU-8GB\n"
                  "max_retries: 0\n"
                  "env_vars:\n  CHECKPOINT_NAME: train-tiny\n",
                  SourceDir()));
  json trained = SubmitAndWait(train);
  ASSERT_EQ(trained.value("state", ""), "SUCCEEDED") << trained.dump(2);
  std::string train_logs = trained["_logs"].get<std::string>();
  EXPECT_NE(train_logs.find("step 7/7"), std::string::npos) << train_logs;

  // The example as shipped: pinned to westus.
  json evaluated = SubmitAndWait(SourceDir() + "/examples/jobs/evaluate.yaml");
  ASSERT_EQ(evaluated.value("state", ""), "SUCCEEDED") << evaluated.dump(2);
  std::string evaluate_logs = evaluated["_logs"].get<std::string>();
  EXPECT_NE(evaluate_logs.find("found checkpoint train-tiny at step 7, written in region eastus; "
                               "evaluating in region westus"),
            std::string::npos)
      << evaluate_logs;

  if (fuse) {
    // A real FUSE mount in both jobs, and the checkpoint is an object of the shared store.
    EXPECT_NE(train_logs.find("fs=fuse"), std::string::npos) << train_logs;
    EXPECT_NE(evaluate_logs.find("(filesystem fuse"), std::string::npos) << evaluate_logs;
    CommandResult object = platform_.Cli(
        {"storage", "cat", bucket_, "checkpoints/train-tiny/latest.json"});
    ASSERT_EQ(object.exit_code, 0) << object.Describe();
    json checkpoint = json::parse(object.out, nullptr, false);
    EXPECT_EQ(checkpoint.value("step", 0), 7) << object.out;
    EXPECT_TRUE(StopOperatorsAndWaitUnmounted()) << "operators must unmount on shutdown";
  } else {
    EXPECT_NE(platform_.LogTail("local-eastus").find("cannot mount cluster storage"),
              std::string::npos)
        << "without FUSE the operator must say it falls back";
  }
}

}  // namespace
}  // namespace meridian::itest
