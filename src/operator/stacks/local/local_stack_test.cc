// LocalStack runs real processes: this binary is also the shim (see main at the bottom), as
// the meridian binary is in production.
#include "operator/stacks/local/local_stack.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <variant>

#include "package/tar_writer.h"
#include "base/files.h"
#include "base/testing/eventually.h"
#include "gtest/gtest.h"
#include "operator/stacks/local/attempt_dir.h"

namespace meridian::op {
namespace {

std::string SelfPath() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "local_stack_test.XXXXXX";
  char* made = ::mkdtemp(pattern.data());
  EXPECT_NE(made, nullptr);
  return pattern;
}

AttemptLaunch Launch(const std::string& key, const std::string& entrypoint) {
  AttemptLaunch launch;
  launch.key = key;
  launch.entrypoint = entrypoint;
  return launch;
}

std::optional<AttemptStatus> Find(ComputeStack& stack, const std::string& key) {
  for (AttemptStatus& status : stack.List()) {
    if (status.key == key) return status;
  }
  return std::nullopt;
}

AttemptStatus WaitFor(ComputeStack& stack, const std::string& key,
                      const std::function<bool(const AttemptStatus&)>& done) {
  std::optional<AttemptStatus> status;
  if (Eventually([&] {
        status = Find(stack, key);
        return status && done(*status);
      })) {
    return *status;
  }
  ADD_FAILURE() << "attempt " << key << " never reached the expected state; last phase "
                << (status ? AttemptPhaseName(status->phase) : "(absent)");
  return status.value_or(AttemptStatus{});
}

AttemptStatus WaitFinal(ComputeStack& stack, const std::string& key) {
  return WaitFor(stack, key, [](const AttemptStatus& s) { return IsFinal(s.phase); });
}

AttemptStatus WaitRunning(ComputeStack& stack, const std::string& key) {
  return WaitFor(stack, key,
                 [](const AttemptStatus& s) { return s.phase == AttemptPhase::kRunning; });
}

std::string ReadWholeLog(ComputeStack& stack, const std::string& key) {
  std::string all;
  int64_t offset = 0;
  while (true) {
    Result<LogChunk> chunk = stack.ReadLog(key, offset, 4096);
    EXPECT_TRUE(chunk.ok()) << chunk.status();
    if (!chunk.ok() || chunk->data.empty()) return all;
    all += chunk->data;
    offset = chunk->next_offset;
  }
}

void WaitForLog(ComputeStack& stack, const std::string& key, const std::string& text) {
  WaitFor(stack, key, [&](const AttemptStatus&) {
    return ReadWholeLog(stack, key).find(text) != std::string::npos;
  });
}

// Gone, or a zombie nobody has reaped yet: either way it no longer runs.
bool ProcessRuns(pid_t pid) {
  Result<std::string> stat = base::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return false;
  size_t close = stat->rfind(')');
  return close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] != 'Z';
}

void Touch(const std::string& path) { std::ofstream(path) << "go\n"; }

class LocalStackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    temp_ = MakeTempDir();
    root_ = temp_ + "/attempts";
    stack_ = Open();
  }

  void TearDown() override {
    // A failed test may leave attempts running: stop them so nothing outlives the test.
    if (stack_ == nullptr) stack_ = Open();
    for (const AttemptStatus& status : stack_->List()) {
      if (!IsFinal(status.phase)) {
        stack_->Terminate(status.key, 0).IgnoreError();
        WaitFinal(*stack_, status.key);
      }
    }
    stack_.reset();
    base::RemoveAll(temp_).IgnoreError();
  }

  std::unique_ptr<ComputeStack> Open(int64_t max_log_bytes = int64_t{64} << 20) {
    LocalStackOptions options;
    options.root = root_;
    options.shim_binary = SelfPath();
    options.max_log_bytes = max_log_bytes;
    Result<std::unique_ptr<ComputeStack>> stack = OpenLocalStack(options);
    EXPECT_TRUE(stack.ok()) << stack.status();
    return stack.ok() ? std::move(*stack) : nullptr;
  }

  // An entrypoint that prints `before`, waits until the test creates the gate file, then
  // runs `after`.
  std::string Gated(const std::string& before, const std::string& after) {
    gate_ = temp_ + "/gate";
    return "echo " + before + "; while [ ! -f '" + gate_ + "' ]; do sleep 0.05; done; " + after;
  }

  std::string AttemptFile(const std::string& key, const std::string& name) const {
    return root_ + "/" + key + "/" + name;
  }

  std::string temp_;
  std::string root_;
  std::string gate_;
  std::unique_ptr<ComputeStack> stack_;
};

TEST(AttemptPhaseTest, NamesAndFinality) {
  EXPECT_EQ(AttemptPhaseName(AttemptPhase::kStarting), "STARTING");
  EXPECT_EQ(AttemptPhaseName(AttemptPhase::kRunning), "RUNNING");
  EXPECT_EQ(AttemptPhaseName(AttemptPhase::kSucceeded), "SUCCEEDED");
  EXPECT_EQ(AttemptPhaseName(AttemptPhase::kFailed), "FAILED");
  EXPECT_EQ(AttemptPhaseName(AttemptPhase::kTerminated), "TERMINATED");
  EXPECT_FALSE(IsFinal(AttemptPhase::kStarting));
  EXPECT_FALSE(IsFinal(AttemptPhase::kRunning));
  EXPECT_TRUE(IsFinal(AttemptPhase::kSucceeded));
  EXPECT_TRUE(IsFinal(AttemptPhase::kFailed));
  EXPECT_TRUE(IsFinal(AttemptPhase::kTerminated));
}

TEST_F(LocalStackTest, SucceedsAndCapturesOutputInOrder) {
  ASSERT_TRUE(stack_->Start(Launch("job_a.1", "echo one; echo two >&2; echo three")).ok());
  AttemptStatus status = WaitFinal(*stack_, "job_a.1");
  EXPECT_EQ(status.phase, AttemptPhase::kSucceeded);
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_EQ(ReadWholeLog(*stack_, "job_a.1"), "one\ntwo\nthree\n");
  EXPECT_EQ(status.log_bytes, 14);
  EXPECT_GT(status.started_unix_ms, 0);
  EXPECT_GE(status.ended_unix_ms, status.started_unix_ms);
}

TEST_F(LocalStackTest, NonZeroExitFails) {
  ASSERT_TRUE(stack_->Start(Launch("job_a.1", "echo failing; exit 3")).ok());
  AttemptStatus status = WaitFinal(*stack_, "job_a.1");
  EXPECT_EQ(status.phase, AttemptPhase::kFailed);
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_EQ(status.message, "exited with code 3");
}

TEST_F(LocalStackTest, DeathBySignalFails) {
  ASSERT_TRUE(stack_->Start(Launch("job_a.1", "kill -9 $$")).ok());
  AttemptStatus status = WaitFinal(*stack_, "job_a.1");
  EXPECT_EQ(status.phase, AttemptPhase::kFailed);
  EXPECT_EQ(status.exit_code, 128 + 9);
  EXPECT_EQ(status.message, "killed by signal 9");
}

TEST_F(LocalStackTest, EnvironmentIsMinimalPlusLaunchEnvAndGpus) {
  ::setenv("MERIDIAN_TEST_OPERATOR_ONLY", "leaked", 1);
  AttemptLaunch launch =
      Launch("job_env.1",
             "echo \"foo=$FOO\"; echo \"leak=$MERIDIAN_TEST_OPERATOR_ONLY\"; "
             "echo \"gpus=$CUDA_VISIBLE_DEVICES\"; echo \"order=$CUDA_DEVICE_ORDER\"; "
             "echo \"path_set=${PATH:+yes}\"; pwd");
  launch.env = {{"FOO", "bar baz"}};
  launch.gpu_indices = {0, 2};
  ASSERT_TRUE(stack_->Start(launch).ok());
  ASSERT_TRUE(
      stack_->Start(Launch("job_env.2", "echo \"gpus=${CUDA_VISIBLE_DEVICES-unset}\"")).ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_env.1").phase, AttemptPhase::kSucceeded);
  EXPECT_EQ(WaitFinal(*stack_, "job_env.2").phase, AttemptPhase::kSucceeded);
  ::unsetenv("MERIDIAN_TEST_OPERATOR_ONLY");

  std::string work = std::filesystem::canonical(root_ + "/job_env.1/work").string();
  EXPECT_EQ(ReadWholeLog(*stack_, "job_env.1"),
            "foo=bar baz\nleak=\ngpus=0,2\norder=PCI_BUS_ID\npath_set=yes\n" + work + "\n");
  EXPECT_EQ(ReadWholeLog(*stack_, "job_env.2"), "gpus=unset\n");
}

TEST_F(LocalStackTest, WorkingDirectoryIsUnpackedFromTheArchive) {
  std::string source = temp_ + "/source";
  ASSERT_TRUE(base::MakeDirs(source + "/scripts").ok());
  std::ofstream(source + "/hello.txt") << "hello from the package\n";
  std::ofstream(source + "/scripts/run.sh") << "echo script ran in $(basename \"$PWD\")\n";
  Result<std::string> packed = package::PackDirectory(source, package::PackOptions{});
  ASSERT_TRUE(packed.ok()) << packed.status();
  std::string archive = temp_ + "/package.tar.gz";
  ASSERT_TRUE(base::WriteFileAtomic(archive, *packed).ok());

  AttemptLaunch launch = Launch("job_pkg.1", "cat hello.txt; sh scripts/run.sh");
  launch.working_dir_archive = archive;
  ASSERT_TRUE(stack_->Start(launch).ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_pkg.1").phase, AttemptPhase::kSucceeded);
  EXPECT_EQ(ReadWholeLog(*stack_, "job_pkg.1"), "hello from the package\nscript ran in work\n");
}

TEST_F(LocalStackTest, BrokenArchiveIsRefusedAndLeavesNothing) {
  std::string archive = temp_ + "/broken.tar.gz";
  ASSERT_TRUE(base::WriteFileAtomic(archive, "this is not a gzip stream").ok());
  AttemptLaunch launch = Launch("job_pkg.1", "true");
  launch.working_dir_archive = archive;
  EXPECT_FALSE(stack_->Start(launch).ok());
  EXPECT_FALSE(Find(*stack_, "job_pkg.1").has_value());
  EXPECT_FALSE(base::PathExists(root_ + "/job_pkg.1"));
  // The key is free again once the archive is fixed.
  EXPECT_TRUE(stack_->Start(Launch("job_pkg.1", "true")).ok());
}

TEST_F(LocalStackTest, TerminateKillsAProcessThatIgnoresSigtermAfterTheGrace) {
  ASSERT_TRUE(
      stack_->Start(Launch("job_t.1", "trap '' TERM; echo ready; while true; do sleep 0.1; done"))
          .ok());
  WaitForLog(*stack_, "job_t.1", "ready");
  ASSERT_TRUE(stack_->Terminate("job_t.1", 300).ok());
  AttemptStatus status = WaitFinal(*stack_, "job_t.1");
  EXPECT_EQ(status.phase, AttemptPhase::kTerminated);
  EXPECT_EQ(status.exit_code, 128 + SIGKILL);
}

TEST_F(LocalStackTest, TerminateStopsTheWholeProcessGroup) {
  // Two grandchildren, one of which ignores SIGTERM; their pids are written to work/pids.
  ASSERT_TRUE(stack_
                  ->Start(Launch("job_g.1",
                                 "(trap '' TERM; exec sleep 1000) & echo $! > pids; "
                                 "sleep 1000 & echo $! >> pids; echo ready; wait"))
                  .ok());
  WaitForLog(*stack_, "job_g.1", "ready");
  std::ifstream pid_file(AttemptFile("job_g.1", "work/pids"));
  std::vector<pid_t> grandchildren;
  for (pid_t pid; pid_file >> pid;) grandchildren.push_back(pid);
  ASSERT_EQ(grandchildren.size(), 2u);
  for (pid_t pid : grandchildren) EXPECT_TRUE(ProcessRuns(pid));

  ASSERT_TRUE(stack_->Terminate("job_g.1", 500).ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_g.1").phase, AttemptPhase::kTerminated);
  for (pid_t pid : grandchildren) {
    EXPECT_TRUE(Eventually([pid] { return !ProcessRuns(pid); })) << "pid " << pid << " survived";
  }
}

TEST_F(LocalStackTest, TerminateAlsoStopsDescendantsThatLeftTheGroup) {
  ASSERT_TRUE(stack_
                  ->Start(Launch("job_g.2",
                                 "setsid sh -c 'echo $$ > pids; exec sleep 1000' & "
                                 "while [ ! -s pids ]; do sleep 0.05; done; echo ready; wait"))
                  .ok());
  WaitForLog(*stack_, "job_g.2", "ready");
  pid_t escaped = 0;
  std::ifstream(AttemptFile("job_g.2", "work/pids")) >> escaped;
  ASSERT_GT(escaped, 0);
  ASSERT_TRUE(stack_->Terminate("job_g.2", 500).ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_g.2").phase, AttemptPhase::kTerminated);
  EXPECT_TRUE(Eventually([escaped] { return !ProcessRuns(escaped); }));
}

TEST_F(LocalStackTest, ProcessesLeftBehindByTheEntrypointAreStopped) {
  // The second one has left the group (and the session) before the entrypoint exits.
  ASSERT_TRUE(stack_
                  ->Start(Launch("job_g.3",
                                 "sleep 1000 & echo $! > pids; "
                                 "setsid sh -c 'echo $$ >> pids; exec sleep 1000' & "
                                 "while [ $(wc -l < pids) -lt 2 ]; do sleep 0.05; done"))
                  .ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_g.3").phase, AttemptPhase::kSucceeded);
  std::ifstream pid_file(AttemptFile("job_g.3", "work/pids"));
  std::vector<pid_t> left_behind;
  for (pid_t pid; pid_file >> pid;) left_behind.push_back(pid);
  ASSERT_EQ(left_behind.size(), 2u);
  for (pid_t pid : left_behind) {
    EXPECT_TRUE(Eventually([pid] { return !ProcessRuns(pid); })) << "pid " << pid << " survived";
  }
}

TEST_F(LocalStackTest, TimeoutFailsTheAttempt) {
  AttemptLaunch launch = Launch("job_to.1", "echo started; sleep 1000");
  launch.timeout_s = 1;
  ASSERT_TRUE(stack_->Start(launch).ok());
  AttemptStatus status = WaitFinal(*stack_, "job_to.1");
  EXPECT_EQ(status.phase, AttemptPhase::kFailed);
  EXPECT_EQ(status.message, "timed out after 1 s");
  EXPECT_NE(status.exit_code, 0);
  EXPECT_EQ(ReadWholeLog(*stack_, "job_to.1"), "started\n");
}

TEST_F(LocalStackTest, OutputPastTheLimitIsDroppedWithAMarkerLine) {
  stack_.reset();
  stack_ = Open(/*max_log_bytes=*/1000);
  ASSERT_NE(stack_, nullptr);
  ASSERT_TRUE(stack_
                  ->Start(Launch("job_big.1",
                                 "head -c 5000 /dev/zero | tr '\\0' a; echo; echo done; exit 0"))
                  .ok());
  AttemptStatus status = WaitFinal(*stack_, "job_big.1");
  EXPECT_EQ(status.phase, AttemptPhase::kSucceeded);
  std::string expected = std::string(1000, 'a') + "\n[meridian: output truncated at 1000 bytes]\n";
  EXPECT_EQ(ReadWholeLog(*stack_, "job_big.1"), expected);
  EXPECT_EQ(status.log_bytes, static_cast<int64_t>(expected.size()));
}

TEST_F(LocalStackTest, StartingAKnownKeyAgainIsAlreadyExists) {
  ASSERT_TRUE(stack_->Start(Launch("job_d.1", "true")).ok());
  EXPECT_EQ(stack_->Start(Launch("job_d.1", "true")).code(), absl::StatusCode::kAlreadyExists);
  WaitFinal(*stack_, "job_d.1");
  stack_.reset();
  stack_ = Open();
  EXPECT_EQ(stack_->Start(Launch("job_d.1", "true")).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(LocalStackTest, UnsafeKeysAndBadLaunchesAreRefused) {
  for (const std::string& key :
       {std::string(""), std::string("../escape"), std::string("a/b"), std::string(".hidden"),
        std::string("-flag"), std::string("with space"), std::string(200, 'k')}) {
    EXPECT_EQ(stack_->Start(Launch(key, "true")).code(), absl::StatusCode::kInvalidArgument) << key;
  }
  AttemptLaunch bad_env = Launch("job_e.1", "true");
  bad_env.env = {{"A=B", "c"}};
  EXPECT_EQ(stack_->Start(bad_env).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stack_->Start(Launch("job_e.2", "")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(stack_->List().empty());
  EXPECT_FALSE(base::PathExists(temp_ + "/escape"));
}

TEST_F(LocalStackTest, RunningAttemptSurvivesAnOperatorRestart) {
  ASSERT_TRUE(stack_->Start(Launch("job_r.1", Gated("before", "echo after"))).ok());
  WaitForLog(*stack_, "job_r.1", "before");
  EXPECT_EQ(WaitRunning(*stack_, "job_r.1").phase, AttemptPhase::kRunning);
  stack_.reset();

  stack_ = Open();
  std::optional<AttemptStatus> status = Find(*stack_, "job_r.1");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->phase, AttemptPhase::kRunning);
  Touch(gate_);
  AttemptStatus final_status = WaitFinal(*stack_, "job_r.1");
  EXPECT_EQ(final_status.phase, AttemptPhase::kSucceeded);
  EXPECT_EQ(final_status.exit_code, 0);
  EXPECT_EQ(ReadWholeLog(*stack_, "job_r.1"), "before\nafter\n");
}

TEST_F(LocalStackTest, ExitWhileNoOperatorRunsIsReportedByTheNextOne) {
  ASSERT_TRUE(stack_->Start(Launch("job_r.2", Gated("waiting", "exit 4"))).ok());
  WaitForLog(*stack_, "job_r.2", "waiting");
  stack_.reset();
  Touch(gate_);
  ASSERT_TRUE(Eventually([&] { return base::PathExists(AttemptFile("job_r.2", "exit_code")); }));

  stack_ = Open();
  std::optional<AttemptStatus> status = Find(*stack_, "job_r.2");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->phase, AttemptPhase::kFailed);
  EXPECT_EQ(status->exit_code, 4);
  EXPECT_EQ(status->message, "exited with code 4");
}

TEST_F(LocalStackTest, TerminateAfterAnOperatorRestart) {
  ASSERT_TRUE(stack_
                  ->Start(Launch("job_r.3",
                                 "trap '' TERM; echo ready; "
                                 "while true; do sleep 0.1; done"))
                  .ok());
  WaitForLog(*stack_, "job_r.3", "ready");
  stack_.reset();
  stack_ = Open();
  ASSERT_TRUE(stack_->Terminate("job_r.3", 200).ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_r.3").phase, AttemptPhase::kTerminated);
}

TEST_F(LocalStackTest, AttemptWhoseProcessesVanishedIsLost) {
  ASSERT_TRUE(stack_->Start(Launch("job_l.1", Gated("ready", "true"))).ok());
  WaitForLog(*stack_, "job_l.1", "ready");
  Result<local::ProcessIdentity> shim =
      local::ReadIdentity(AttemptFile("job_l.1", std::string(local::kShimPidFile)));
  Result<local::ProcessIdentity> child =
      local::ReadIdentity(AttemptFile("job_l.1", std::string(local::kChildPidFile)));
  ASSERT_TRUE(shim.ok() && child.ok());
  ASSERT_EQ(::kill(shim->pid, SIGKILL), 0);
  ASSERT_EQ(::kill(-child->pid, SIGKILL), 0);
  AttemptStatus status = WaitFinal(*stack_, "job_l.1");
  EXPECT_EQ(status.phase, AttemptPhase::kFailed);
  EXPECT_EQ(status.message, "lost: the process disappeared without an exit status");
}

TEST_F(LocalStackTest, ForgetRefusesARunningAttemptAndRemovesAFinishedOne) {
  ASSERT_TRUE(stack_->Start(Launch("job_f.1", Gated("ready", "true"))).ok());
  WaitForLog(*stack_, "job_f.1", "ready");
  EXPECT_EQ(stack_->Forget("job_f.1").code(), absl::StatusCode::kFailedPrecondition);
  Touch(gate_);
  EXPECT_EQ(WaitFinal(*stack_, "job_f.1").phase, AttemptPhase::kSucceeded);

  ASSERT_TRUE(stack_->Forget("job_f.1").ok());
  EXPECT_FALSE(Find(*stack_, "job_f.1").has_value());
  EXPECT_FALSE(base::PathExists(root_ + "/job_f.1"));
  EXPECT_EQ(stack_->ReadLog("job_f.1", 0, 10).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(stack_->Forget("job_f.1").code(), absl::StatusCode::kNotFound);
}

TEST_F(LocalStackTest, ReadLogPagesThroughTheOutput) {
  ASSERT_TRUE(stack_->Start(Launch("job_p.1", "printf abcdefghij")).ok());
  WaitFinal(*stack_, "job_p.1");
  Result<LogChunk> first = stack_->ReadLog("job_p.1", 0, 4);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->data, "abcd");
  EXPECT_EQ(first->next_offset, 4);
  Result<LogChunk> rest = stack_->ReadLog("job_p.1", first->next_offset, 100);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->data, "efghij");
  EXPECT_EQ(rest->next_offset, 10);
  Result<LogChunk> end = stack_->ReadLog("job_p.1", 10, 100);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->data, "");
  EXPECT_EQ(end->next_offset, 10);
  EXPECT_EQ(stack_->ReadLog("job_p.1", -1, 10).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stack_->ReadLog("nope", 0, 10).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LocalStackTest, TerminateOfAFinishedOrUnknownAttempt) {
  ASSERT_TRUE(stack_->Start(Launch("job_x.1", "true")).ok());
  WaitFinal(*stack_, "job_x.1");
  EXPECT_TRUE(stack_->Terminate("job_x.1", 0).ok());
  EXPECT_EQ(Find(*stack_, "job_x.1")->phase, AttemptPhase::kSucceeded);
  EXPECT_EQ(stack_->Terminate("nope", 0).code(), absl::StatusCode::kNotFound);
}

TEST_F(LocalStackTest, OneStackPerRoot) {
  LocalStackOptions options;
  options.root = root_;
  options.shim_binary = SelfPath();
  EXPECT_EQ(OpenLocalStack(options).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DetectGpusTest, CountsGpusWhoseDeviceNodeIsPresent) {
  std::string temp = MakeTempDir();
  std::string gpus = temp + "/gpus";
  std::string dev = temp + "/dev";
  ASSERT_TRUE(base::MakeDirs(dev).ok());
  auto add_gpu = [&](const std::string& bus_id, int minor, const std::string& excluded) {
    ASSERT_TRUE(base::MakeDirs(gpus + "/" + bus_id).ok());
    std::ofstream(gpus + "/" + bus_id + "/information")
        << "Model: \t\t NVIDIA H100 80GB HBM3\nBus Location: \t " << bus_id << "\nDevice Minor: \t "
        << minor << "\nGPU Excluded:\t " << excluded << "\n";
  };
  add_gpu("0000:18:00.0", 0, "No");
  add_gpu("0000:2a:00.0", 1, "No");  // no /dev/nvidia1: not given to this container
  add_gpu("0000:3a:00.0", 2, "No");
  add_gpu("0000:5d:00.0", 3, "Yes");  // excluded by the driver
  for (int minor : {0, 2, 3}) std::ofstream(dev + "/nvidia" + std::to_string(minor)) << "";
  EXPECT_EQ(DetectGpusIn(gpus, dev), (std::vector<int>{0, 1}));
  EXPECT_TRUE(DetectGpusIn(temp + "/no-driver", dev).empty());
  base::RemoveAll(temp).IgnoreError();
}

// ---- attempts run as other users (needs root: only root can change uid) ----

class UnprivilegedStackTest : public ::testing::Test {
 protected:
  // Each test its own uids, so tests running at once in other processes do not meet.
  static constexpr uid_t kFirstUid = 27100;
  static constexpr uid_t kLastUid = 27199;

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "only a root operator runs attempts as other users";
    temp_ = MakeTempDir();
    ::chmod(temp_.c_str(), 0711);  // the sandbox must be reachable by the attempts' users
    root_ = temp_ + "/attempts";
    sandbox_ = temp_ + "/sandbox";
    stack_ = Open();
    ASSERT_NE(stack_, nullptr);
  }
  void TearDown() override {
    if (temp_.empty()) return;
    if (stack_ == nullptr) stack_ = Open();
    for (const AttemptStatus& status : stack_->List()) {
      if (!IsFinal(status.phase)) {
        stack_->Terminate(status.key, 0).IgnoreError();
        WaitFinal(*stack_, status.key);
      }
    }
    stack_.reset();
    base::RemoveAll(temp_).IgnoreError();
  }

  std::unique_ptr<ComputeStack> Open() {
    LocalStackOptions options;
    options.root = root_;
    options.shim_binary = SelfPath();
    options.run_as = RunAsUidRange{kFirstUid, kLastUid, kFirstUid};
    options.sandbox_root = sandbox_;
    options.uid_lock_dir = temp_ + "/uid-claims";
    Result<std::unique_ptr<ComputeStack>> stack = OpenLocalStack(options);
    EXPECT_TRUE(stack.ok()) << stack.status();
    return stack.ok() ? std::move(*stack) : nullptr;
  }
  // A launch with a federated token file the test keeps, like the operator's writer.
  AttemptLaunch WithToken(const std::string& key, const std::string& entrypoint,
                          const std::string& token) {
    AttemptLaunch launch = Launch(key, entrypoint);
    launch.federated_token_file = temp_ + "/token-" + key;
    EXPECT_TRUE(base::WriteFileAtomic(launch.federated_token_file, token, 0600).ok());
    return launch;
  }
  std::string Secret() {
    std::string path = temp_ + "/secret";
    EXPECT_TRUE(base::WriteFileAtomic(path, "operator only\n", 0600).ok());
    return path;
  }

  std::string temp_;
  std::string root_;
  std::string sandbox_;
  std::unique_ptr<ComputeStack> stack_;
};

struct stat StatOf(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path << ": " << std::strerror(errno);
  return info;
}

TEST_F(UnprivilegedStackTest, AnAttemptRunsAsItsOwnUserWithItsOwnDirectoryAndToken) {
  const std::string secret = Secret();
  AttemptLaunch launch = WithToken(
      "job_u.1.1",
      "id -u; id -G; echo home=$HOME; echo tmp=$TMPDIR; cat \"$AZURE_FEDERATED_TOKEN_FILE\"; "
      "touch made-here; cat '" +
          secret + "' || echo secret-refused; cat '" + root_ +
          "/job_u.1.1/launch.json' || echo launch-refused",
      "token-one\n");
  ASSERT_TRUE(stack_->Start(launch).ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_u.1.1").phase, AttemptPhase::kSucceeded);
  std::string log = ReadWholeLog(*stack_, "job_u.1.1");
  std::istringstream lines(log);
  uid_t uid = 0;
  gid_t groups = 0;
  lines >> uid >> groups;
  EXPECT_GE(uid, kFirstUid) << log;
  EXPECT_LE(uid, kLastUid) << log;
  EXPECT_EQ(groups, kFirstUid) << "no other group: " << log;
  const std::string sandbox = sandbox_ + "/job_u.1.1";
  EXPECT_NE(log.find("home=" + sandbox + "/work\n"), std::string::npos) << log;
  EXPECT_NE(log.find("tmp=" + sandbox + "/tmp\n"), std::string::npos) << log;
  EXPECT_NE(log.find("token-one\n"), std::string::npos) << log;
  EXPECT_NE(log.find("Permission denied"), std::string::npos) << log;
  EXPECT_NE(log.find("secret-refused"), std::string::npos) << log;
  EXPECT_NE(log.find("launch-refused"), std::string::npos) << log;
  struct stat work = StatOf(sandbox + "/work");
  EXPECT_EQ(work.st_uid, uid);
  EXPECT_EQ(work.st_mode & 07777, 0700u);
  EXPECT_EQ(StatOf(sandbox + "/work/made-here").st_uid, uid);
  struct stat token = StatOf(sandbox + "/federated-token");
  EXPECT_EQ(token.st_uid, uid);
  EXPECT_EQ(token.st_mode & 07777, 0600u);
  // Closed once it ended: a later attempt given the same uid cannot reach it.
  EXPECT_EQ(StatOf(sandbox).st_mode & 07777, 0700u);
  EXPECT_EQ(StatOf(root_ + "/job_u.1.1/launch.json").st_mode & 07777, 0600u);
  ASSERT_TRUE(stack_->Forget("job_u.1.1").ok());
  EXPECT_FALSE(base::PathExists(sandbox));
}

TEST_F(UnprivilegedStackTest, RunningAttemptsCannotReadEachOthersFilesOrTokens) {
  const std::string gate = temp_ + "/gate";
  ASSERT_TRUE(stack_
                  ->Start(WithToken("job_a.1.1",
                                    "echo private > mine.txt; echo ready; while [ ! -f '" + gate +
                                        "' ]; do sleep 0.05; done",
                                    "token-of-a\n"))
                  .ok());
  WaitForLog(*stack_, "job_a.1.1", "ready");
  const std::string other = sandbox_ + "/job_a.1.1";
  ASSERT_TRUE(stack_
                  ->Start(WithToken("job_b.1.1",
                                    "id -u; cat '" + other +
                                        "/federated-token' || echo no-token; "
                                        "cat '" +
                                        other +
                                        "/work/mine.txt' || echo no-file; "
                                        "cat '" +
                                        temp_ + "/token-job_a.1.1' || echo no-source",
                                    "token-of-b\n"))
                  .ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_b.1.1").phase, AttemptPhase::kSucceeded);
  std::string log = ReadWholeLog(*stack_, "job_b.1.1");
  for (const char* refused : {"no-token", "no-file", "no-source"}) {
    EXPECT_NE(log.find(refused), std::string::npos) << refused << " in " << log;
  }
  EXPECT_EQ(log.find("token-of-a"), std::string::npos) << log;
  EXPECT_EQ(log.find("private"), std::string::npos) << log;
  EXPECT_NE(StatOf(other + "/work").st_uid, StatOf(sandbox_ + "/job_b.1.1/work").st_uid)
      << "each attempt its own uid";
  Touch(gate);
  EXPECT_EQ(WaitFinal(*stack_, "job_a.1.1").phase, AttemptPhase::kSucceeded);
}

TEST_F(UnprivilegedStackTest, TheTokenCopyFollowsTheOperatorsTokenFile) {
  AttemptLaunch launch =
      WithToken("job_t.1.1",
                "until grep -q second \"$AZURE_FEDERATED_TOKEN_FILE\"; do sleep 0.05; done; "
                "echo saw-second",
                "first\n");
  ASSERT_TRUE(stack_->Start(launch).ok());
  WaitRunning(*stack_, "job_t.1.1");
  ASSERT_TRUE(base::WriteFileAtomic(launch.federated_token_file, "second\n", 0600).ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_t.1.1").phase, AttemptPhase::kSucceeded);
  EXPECT_NE(ReadWholeLog(*stack_, "job_t.1.1").find("saw-second"), std::string::npos);
}

TEST_F(UnprivilegedStackTest, ExitAndTerminateOfAnotherUsersAttemptAcrossAnOperatorRestart) {
  const std::string gate = temp_ + "/gate";
  ASSERT_TRUE(stack_
                  ->Start(Launch("job_x.1.1", "while [ ! -f '" + gate +
                                                  "' ]; do sleep 0.05; done; "
                                                  "exit 7"))
                  .ok());
  ASSERT_TRUE(stack_->Start(Launch("job_y.1.1", "trap '' TERM; sleep 300")).ok());
  WaitRunning(*stack_, "job_x.1.1");
  WaitRunning(*stack_, "job_y.1.1");
  stack_.reset();  // the operator goes away; the shims (root) keep their attempts
  Touch(gate);
  stack_ = Open();
  ASSERT_NE(stack_, nullptr);
  AttemptStatus x = WaitFinal(*stack_, "job_x.1.1");
  EXPECT_EQ(x.phase, AttemptPhase::kFailed);
  EXPECT_EQ(x.exit_code, 7);
  ASSERT_TRUE(stack_->Terminate("job_y.1.1", 100).ok());
  EXPECT_EQ(WaitFinal(*stack_, "job_y.1.1").phase, AttemptPhase::kTerminated);
}

TEST_F(UnprivilegedStackTest, ASandboxOthersCannotReachIsRefused) {
  std::string closed = temp_ + "/closed";
  ASSERT_TRUE(base::MakeDirs(closed, 0700).ok());
  LocalStackOptions options;
  options.root = temp_ + "/other-attempts";
  options.shim_binary = SelfPath();
  options.run_as = RunAsUidRange{kFirstUid, kLastUid, kFirstUid};
  options.sandbox_root = closed + "/sandbox";
  options.uid_lock_dir = temp_ + "/uid-claims";
  Result<std::unique_ptr<ComputeStack>> stack = OpenLocalStack(options);
  EXPECT_EQ(stack.status().code(), absl::StatusCode::kFailedPrecondition) << stack.status();
  EXPECT_NE(std::string(stack.status().message()).find(closed), std::string::npos)
      << stack.status();
}

TEST(RunAsTest, ClaimsAreExclusiveUntilReleased) {
  std::string dir = MakeTempDir();
  RunAs range = RunAsUidRange{28000, 28001, 28000};
  Result<AttemptUser> first = ClaimAttemptUser(range, "job_a.1.1", dir);
  Result<AttemptUser> second = ClaimAttemptUser(range, "job_a.1.1", dir);
  ASSERT_TRUE(first.ok() && second.ok()) << first.status() << second.status();
  EXPECT_NE(first->uid, second->uid) << "the same key still gets another uid";
  EXPECT_EQ(first->gid, 28000u);
  EXPECT_EQ(ClaimAttemptUser(range, "job_c.1.1", dir).status().code(),
            absl::StatusCode::kResourceExhausted);
  ::close(first->lock_fd);
  Result<AttemptUser> again = ClaimAttemptUser(range, "job_c.1.1", dir);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->uid, first->uid) << "a released uid is claimed again";
  ::close(second->lock_fd);
  ::close(again->lock_fd);
  base::RemoveAll(dir).IgnoreError();
}

TEST(RunAsTest, ParsesWhatTheFlagAccepts) {
  EXPECT_TRUE(std::holds_alternative<RunAsOperator>(*ParseRunAs("operator")));
  if (::geteuid() != 0) {
    EXPECT_EQ(ParseRunAs("20000-29999").status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(std::holds_alternative<RunAsOperator>(DefaultRunAs()));
    return;
  }
  Result<RunAs> range = ParseRunAs("20000-29999");
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(std::get<RunAsUidRange>(*range).first_uid, 20000u);
  EXPECT_EQ(std::get<RunAsUidRange>(*range).last_uid, 29999u);
  EXPECT_TRUE(std::holds_alternative<RunAsUidRange>(DefaultRunAs()));
  for (const char* bad : {"20-30", "30000-20000", "20000-", "2e4-3e4"}) {
    EXPECT_EQ(ParseRunAs(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ParseRunAs("root").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRunAs("no-such-user-here").status().code(), absl::StatusCode::kNotFound);
  Result<RunAs> nobody = ParseRunAs("nobody");
  if (nobody.ok()) EXPECT_EQ(std::get<RunAsUser>(*nobody).name, "nobody");
}

}  // namespace
}  // namespace meridian::op

int main(int argc, char** argv) {
  if (argc >= 4 && std::string(argv[1]) == "operator" && std::string(argv[2]) == "shim") {
    return meridian::op::RunShim(argv[3]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
