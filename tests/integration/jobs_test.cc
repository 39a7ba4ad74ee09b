// Jobs end to end: submit through the CLI, run on a LOCAL operator, read state and output.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace meridian::itest {
namespace {

using nlohmann::json;

// Blocks until the file go-<job id> exists in the cluster storage, so a test decides when a
// job ends instead of guessing with sleeps.
constexpr char kGatedEntrypoint[] =
    "'echo before; while [ ! -f \"$MERIDIAN_CLUSTER_STORAGE/go-$MERIDIAN_JOB_ID\" ]; "
    "do sleep 0.1; done; echo after'";

// Whether `pid` runs (a zombie left for an init that does not reap runs nothing).
bool Running(pid_t pid) {
  std::string stat;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::getline(in, stat);
  size_t paren = stat.rfind(')');
  return !stat.empty() && paren != std::string::npos && paren + 2 < stat.size() &&
         stat[paren + 2] != 'Z';
}

class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status started = platform_.StartServer();
    ASSERT_TRUE(started.ok()) << started;
    Status created = platform_.CreateLocalResource("local-a", "eastus");
    ASSERT_TRUE(created.ok()) << created;
    StartOperator();
  }

  void StartOperator() {
    Status started = platform_.StartOperator({"local-a", "", {"2CPU-8GB=8"}});
    ASSERT_TRUE(started.ok()) << started;
    ASSERT_TRUE(platform_.WaitHealth("local-a", "HEALTHY")) << platform_.LogTail("local-a");
  }

  // Writes jobs/<name>.yaml and returns its path.
  std::string JobFile(const std::string& name, const std::string& body) {
    return platform_.WriteFile("jobs/" + name + ".yaml", "name: " + name + "\n" + body);
  }

  // `job submit -f file` without --wait; returns the job id.
  std::string Submit(const std::string& file) {
    CommandResult submitted = platform_.Cli({"job", "submit", "-f", file});
    EXPECT_EQ(submitted.exit_code, 0) << submitted.Describe();
    std::string id = SubmittedJobId(submitted.out);
    EXPECT_FALSE(id.empty()) << submitted.Describe();
    return id;
  }

  json StatusJson(const std::string& id) {
    CommandResult status = platform_.Cli({"job", "status", id, "-o", "json"});
    EXPECT_EQ(status.exit_code, 0) << status.Describe();
    json parsed = json::parse(status.out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << status.Describe();
    return parsed;
  }

  std::string Logs(const std::string& id, int attempt = 0) {
    std::vector<std::string> args = {"job", "logs", id};
    if (attempt > 0) {
      args.push_back("--attempt");
      args.push_back(std::to_string(attempt));
    }
    CommandResult logs = platform_.Cli(args);
    EXPECT_EQ(logs.exit_code, 0) << logs.Describe();
    return logs.out;
  }

  std::string ApiLogs(const std::string& id) {
    Result<net::HttpResponse> response =
        platform_.Request("GET", "/api/v1/jobs/" + id + "/logs?attempt=1");
    return response.ok() && response->status == 200 ? response->body : "";
  }

  void Release(const std::string& id) { platform_.WriteFile("cluster-storage/go-" + id, "go\n"); }

  // The attempt directories of a job on local-a's operator.
  std::vector<std::string> AttemptDirs(const std::string& id) {
    std::vector<std::string> dirs;
    std::error_code error;
    std::filesystem::path root = platform_.home() + "/operators/local-a/attempts";
    for (const auto& entry : std::filesystem::directory_iterator(root, error)) {
      if (entry.path().filename().string().rfind(id + ".", 0) == 0) {
        dirs.push_back(entry.path().string());
      }
    }
    return dirs;
  }

  Platform platform_;
};

TEST_F(JobsTest, SubmitWaitRunsWorkingDirWithExcludesAndShowsStatusLogsAndEnvironment) {
  platform_.WriteFile("jobs/app/data.txt", "payload-from-working-dir\n");
  platform_.WriteFile("jobs/app/sub/keep.txt", "kept\n");
  platform_.WriteFile("jobs/app/secret.key", "must-not-ship\n");
  platform_.WriteFile("jobs/app/cache/blob.bin", "cached\n");
  std::string file =
      JobFile("cwd-lister",
              "entrypoint: 'ls -R .; cat data.txt; echo \"JOB=$MERIDIAN_JOB_ID\"; "
              "echo \"ATTEMPT=$MERIDIAN_ATTEMPT\"; echo \"RESOURCE=$MERIDIAN_CLOUD_RESOURCE\"; "
              "echo \"REGION=$MERIDIAN_REGION\"; echo \"STORAGE=$MERIDIAN_CLUSTER_STORAGE\"; "
              "echo \"GREETING=$GREETING\"'\n"
              "working_dir: app\n"
              "excludes: ['*.key', 'cache/']\n"
              "max_retries: 0\n"
              "env_vars:\n  GREETING: hi there\n");

  CommandResult submitted = platform_.Cli({"job", "submit", "-f", file, "--wait"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.Describe();
  std::string id = SubmittedJobId(submitted.out);
  ASSERT_FALSE(id.empty()) << submitted.Describe();
  EXPECT_NE(submitted.out.find("payload-from-working-dir"), std::string::npos)
      << submitted.Describe();

  json job = StatusJson(id);
  EXPECT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump(2);
  ASSERT_EQ(job["attempts"].size(), 1u) << job.dump(2);
  const json& attempt = job["attempts"][0];
  EXPECT_EQ(attempt.value("cloud_resource", ""), "local-a");
  EXPECT_EQ(attempt.value("region", ""), "eastus");
  EXPECT_EQ(attempt.value("exit_code", -1), 0);
  EXPECT_FALSE(job.value("created_at", "").empty());
  EXPECT_FALSE(job.value("ended_at", "").empty());
  EXPECT_FALSE(attempt.value("started_at", "").empty());
  EXPECT_FALSE(attempt.value("ended_at", "").empty());
  EXPECT_GT(attempt.value("started_unix_ms", int64_t{0}), 0);
  EXPECT_LE(attempt.value("started_unix_ms", int64_t{0}),
            attempt.value("ended_unix_ms", int64_t{0}));

  std::string output = Logs(id);
  for (const std::string& expected :
       {std::string("payload-from-working-dir"), std::string("data.txt"), std::string("keep.txt"),
        "JOB=" + id, std::string("ATTEMPT=1"), std::string("RESOURCE=local-a"),
        std::string("REGION=eastus"), "STORAGE=" + platform_.home() + "/cluster-storage",
        std::string("GREETING=hi there")}) {
    EXPECT_NE(output.find(expected), std::string::npos) << expected << " missing in:\n" << output;
  }
  EXPECT_EQ(output.find("secret.key"), std::string::npos) << output;
  EXPECT_EQ(output.find("blob.bin"), std::string::npos) << output;
  EXPECT_EQ(output.find("cache"), std::string::npos) << output;
  // The table form of the status names the same facts for people.
  CommandResult table = platform_.Cli({"job", "status", id});
  EXPECT_EQ(table.exit_code, 0) << table.Describe();
  EXPECT_NE(table.out.find("SUCCEEDED"), std::string::npos) << table.Describe();
  EXPECT_NE(table.out.find("local-a"), std::string::npos) << table.Describe();
}

TEST_F(JobsTest, OutputBeyondTheKeptLimitShowsTheNewestPartAndSaysTheRestWasDropped) {
  constexpr int kLines = 2'000'000;  // about 15 MB, beyond what the control plane keeps
  std::string file =
      JobFile("chatty", "entrypoint: seq 1 " + std::to_string(kLines) + "\nmax_retries: 0\n");
  CommandResult submitted = platform_.Cli({"job", "submit", "-f", file, "--wait"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  std::string id = SubmittedJobId(submitted.out);
  ASSERT_FALSE(id.empty());
  std::string expected;
  for (int i = 1; i <= kLines; ++i) expected += std::to_string(i) + "\n";

  // The control plane drops older output in the background: wait until it has.
  ASSERT_TRUE(Eventually([&] {
    Result<net::HttpResponse> head =
        platform_.Request("GET", "/api/v1/jobs/" + id + "/logs?attempt=1&max_bytes=1");
    return head.ok() && head->Header("x-meridian-start-offset") != "0";
  }));
  CommandResult logs = platform_.Cli({"job", "logs", id});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  ASSERT_FALSE(logs.out.empty());
  ASSERT_LT(logs.out.size(), expected.size());
  EXPECT_EQ(logs.out, expected.substr(expected.size() - logs.out.size()))
      << "the output shown must be the newest part, unchanged";
  EXPECT_NE(logs.err.find("older output were dropped"), std::string::npos) << logs.err;
}

TEST_F(JobsTest, FailingEntrypointIsRetriedOnceThenFails) {
  std::string file = JobFile("exits-3",
                             "entrypoint: 'echo try-$MERIDIAN_ATTEMPT; exit 3'\n"
                             "max_retries: 1\n");
  CommandResult submitted = platform_.Cli({"job", "submit", "-f", file, "--wait"});
  EXPECT_EQ(submitted.exit_code, 1) << submitted.Describe();
  std::string id = SubmittedJobId(submitted.out);
  ASSERT_FALSE(id.empty()) << submitted.Describe();
  json job = StatusJson(id);
  EXPECT_EQ(job.value("state", ""), "FAILED") << job.dump(2);
  ASSERT_EQ(job["attempts"].size(), 2u) << job.dump(2);
  for (const json& attempt : job["attempts"]) {
    EXPECT_EQ(attempt.value("state", ""), "FAILED") << job.dump(2);
    EXPECT_EQ(attempt.value("exit_code", -1), 3) << job.dump(2);
  }
  EXPECT_NE(Logs(id, 1).find("try-1"), std::string::npos);
  EXPECT_NE(Logs(id, 2).find("try-2"), std::string::npos);
}

TEST_F(JobsTest, FailureOnTheFirstAttemptOnlySucceedsOnTheRetry) {
  std::string file = JobFile(
      "fails-once",
      "entrypoint: 'if [ -f \"$MERIDIAN_CLUSTER_STORAGE/marker-$MERIDIAN_JOB_ID\" ]; then "
      "echo second-try-ok; else touch \"$MERIDIAN_CLUSTER_STORAGE/marker-$MERIDIAN_JOB_ID\"; "
      "echo first-try-fails; exit 1; fi'\n"
      "max_retries: 1\n");
  CommandResult submitted = platform_.Cli({"job", "submit", "-f", file, "--wait"});
  EXPECT_EQ(submitted.exit_code, 0) << submitted.Describe();
  std::string id = SubmittedJobId(submitted.out);
  ASSERT_FALSE(id.empty()) << submitted.Describe();
  json job = StatusJson(id);
  EXPECT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump(2);
  ASSERT_EQ(job["attempts"].size(), 2u) << job.dump(2);
  EXPECT_EQ(job["attempts"][0].value("state", ""), "FAILED");
  EXPECT_EQ(job["attempts"][0].value("exit_code", -1), 1);
  EXPECT_EQ(job["attempts"][1].value("state", ""), "SUCCEEDED");
  EXPECT_NE(Logs(id, 1).find("first-try-fails"), std::string::npos);
  EXPECT_NE(Logs(id).find("second-try-ok"), std::string::npos);
}

TEST_F(JobsTest, TimeoutFailsTheJobWithAMessage) {
  std::string file = JobFile("too-slow", "entrypoint: sleep 30\ntimeout_s: 1\nmax_retries: 0\n");
  CommandResult submitted = platform_.Cli({"job", "submit", "-f", file, "--wait"});
  EXPECT_EQ(submitted.exit_code, 1) << submitted.Describe();
  std::string id = SubmittedJobId(submitted.out);
  ASSERT_FALSE(id.empty()) << submitted.Describe();
  json job = StatusJson(id);
  EXPECT_EQ(job.value("state", ""), "FAILED") << job.dump(2);
  EXPECT_NE(job.value("message", "").find("timed out"), std::string::npos) << job.dump(2);
  ASSERT_EQ(job["attempts"].size(), 1u) << job.dump(2);
  EXPECT_NE(job["attempts"][0].value("message", "").find("timed out"), std::string::npos);
}

TEST_F(JobsTest, TerminateWaitStopsTheJobAndItsProcesses) {
  std::string file = JobFile(
      "sleeper",
      "entrypoint: 'sleep 300 & echo $! > \"$MERIDIAN_CLUSTER_STORAGE/sleep-$MERIDIAN_JOB_ID\"; "
      "echo started; wait'\n"
      "max_retries: 0\n");
  std::string id = Submit(file);
  ASSERT_FALSE(id.empty());
  std::string pid_file = platform_.home() + "/cluster-storage/sleep-" + id;
  pid_t sleep_pid = 0;
  ASSERT_TRUE(Eventually([&] {
    std::ifstream in(pid_file);
    return static_cast<bool>(in >> sleep_pid) && sleep_pid > 0 &&
           platform_.Job(id).value("state", "") == "RUNNING";
  })) << platform_.Job(id).dump(2);
  ASSERT_TRUE(Running(sleep_pid)) << "the job's sleep should be running";

  CommandResult terminated = platform_.Cli({"job", "terminate", id, "--wait"});
  EXPECT_EQ(terminated.exit_code, 0) << terminated.Describe();
  json job = StatusJson(id);
  EXPECT_EQ(job.value("state", ""), "TERMINATED") << job.dump(2);
  EXPECT_EQ(job["attempts"][0].value("state", ""), "TERMINATED") << job.dump(2);
  // Nothing of the attempt is left: neither the sleep nor any process with the job's id.
  auto gone = [&] {
    if (Running(sleep_pid)) return false;
    for (pid_t pid : platform_.ProcessesOfHome()) {
      std::ifstream environ("/proc/" + std::to_string(pid) + "/environ");
      std::stringstream text;
      text << environ.rdbuf();
      if (text.str().find("MERIDIAN_JOB_ID=" + id) != std::string::npos) return false;
    }
    return true;
  };
  EXPECT_TRUE(Eventually(gone)) << "a process of the terminated job is still running";
}

TEST_F(JobsTest, TerminateKillsAnEntrypointThatIgnoresSigtermAndWhatItDetached) {
  // The shell ignores SIGTERM (so only the SIGKILL after the grace period stops it), and a
  // sleep escapes into its own session, out of the entrypoint's process group.
  std::string file = JobFile("stubborn",
                             "entrypoint: 'trap \"\" TERM; setsid sleep 301 & "
                             "echo $! > \"$MERIDIAN_CLUSTER_STORAGE/detached-$MERIDIAN_JOB_ID\"; "
                             "while true; do sleep 1; done'\n"
                             "max_retries: 0\n");
  std::string id = Submit(file);
  ASSERT_FALSE(id.empty());
  pid_t detached = 0;
  ASSERT_TRUE(Eventually([&] {
    std::ifstream in(platform_.home() + "/cluster-storage/detached-" + id);
    return static_cast<bool>(in >> detached) && detached > 0 &&
           platform_.Job(id).value("state", "") == "RUNNING";
  })) << platform_.Job(id).dump(2);

  CommandResult terminated = platform_.Cli({"job", "terminate", id, "--wait"});
  EXPECT_EQ(terminated.exit_code, 0) << terminated.Describe();
  EXPECT_EQ(platform_.Job(id).value("state", ""), "TERMINATED");
  EXPECT_TRUE(Eventually([&] { return !Running(detached); }))
      << "the detached sleep of a terminated job is still running";
}

TEST_F(JobsTest, OperatorKilledAndRestartedKeepsOneAttemptAndTheWholeOutput) {
  // Job A ends after the operator is back; job B ends while no operator runs.
  std::string a = Submit(
      JobFile("gated-a", std::string("entrypoint: ") + kGatedEntrypoint + "\nmax_retries: 0\n"));
  std::string b = Submit(
      JobFile("gated-b", std::string("entrypoint: ") + kGatedEntrypoint + "\nmax_retries: 0\n"));
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  for (const std::string& id : {a, b}) {
    ASSERT_TRUE(Eventually([&] {
      return platform_.Job(id).value("state", "") == "RUNNING" &&
             ApiLogs(id).find("before") != std::string::npos;
    })) << platform_.Job(id).dump(2);
  }

  platform_.KillOperator("local-a");
  Release(b);
  ASSERT_TRUE(Eventually([&] {
    std::vector<std::string> dirs = AttemptDirs(b);
    return dirs.size() == 1 && std::filesystem::exists(dirs[0] + "/exit_code");
  })) << "job B's entrypoint should end by itself while the operator is down";
  StartOperator();
  Release(a);

  for (const std::string& id : {a, b}) {
    json job = platform_.WaitJobFinal(id);
    EXPECT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump(2);
    EXPECT_EQ(job["attempts"].size(), 1u) << job.dump(2);
    EXPECT_EQ(Logs(id), "before\nafter\n") << "job " << id;
  }
}

TEST_F(JobsTest, ServerKill9WhileAJobRunsLosesNeitherTheJobNorItsOutput) {
  std::string id = Submit(
      JobFile("survivor", std::string("entrypoint: ") + kGatedEntrypoint + "\nmax_retries: 0\n"));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(Eventually([&] {
    return platform_.Job(id).value("state", "") == "RUNNING" &&
           ApiLogs(id).find("before") != std::string::npos;
  })) << platform_.Job(id).dump(2);

  platform_.KillServer();
  // Same address: the operator keeps the URL it was started with.
  Status restarted = platform_.StartServer(10'000, platform_.port());
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_EQ(platform_.Job(id).value("state", ""), "RUNNING");
  Release(id);
  json job = platform_.WaitJobFinal(id);
  EXPECT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump(2);
  EXPECT_EQ(job["attempts"].size(), 1u) << job.dump(2);
  EXPECT_EQ(Logs(id), "before\nafter\n");
}

}  // namespace
}  // namespace meridian::itest
