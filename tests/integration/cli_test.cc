// The CLI on its own: `meridian up`, errors without a control plane, and help texts.
#include <signal.h>

#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace meridian::itest {
namespace {

using nlohmann::json;

TEST(Up, RunsTheExampleAndReusesItsStateOnTheSecondRun) {
  Platform platform;
  std::vector<std::string> up = {
      "up",     "--example",    SourceDir() + "/examples/jobs/hello.yaml", "--exit-after-example",
      "--home", platform.home()};
  CommandResult first = platform.Cli(up, {}, /*prepend_home=*/false);
  EXPECT_EQ(first.exit_code, 0) << first.Describe();
  EXPECT_NE(first.out.find("hello from meridian"), std::string::npos) << first.Describe();
  CommandResult second = platform.Cli(up, {}, /*prepend_home=*/false);
  EXPECT_EQ(second.exit_code, 0) << second.Describe();
  EXPECT_NE(second.out.find("hello from meridian"), std::string::npos) << second.Describe();
  // `up` stopped everything it started.
  EXPECT_TRUE(platform.ProcessesOfHome().empty());

  // The state on disk: one cloud 'default', two resources, two jobs that succeeded.
  Status started = platform.StartServer();
  ASSERT_TRUE(started.ok()) << started;
  json clouds = platform.GetJson("/api/v1/clouds");
  int defaults = 0;
  for (const json& cloud : clouds["items"]) defaults += cloud.value("name", "") == "default";
  EXPECT_EQ(defaults, 1) << clouds.dump(2);
  json resources = platform.GetJson("/api/v1/resources");
  EXPECT_EQ(resources["items"].size(), 2u) << resources.dump(2);
  json jobs = platform.GetJson("/api/v1/jobs");
  ASSERT_EQ(jobs["items"].size(), 2u) << jobs.dump(2);
  for (const json& job : jobs["items"]) EXPECT_EQ(job.value("state", ""), "SUCCEEDED");
}

TEST(Up, ControlPlaneRestartedAfterACrashIsReachedByItsOperators) {
  Platform platform;
  Status started = platform.StartBackground("up", {"--home", platform.home(), "up"});
  ASSERT_TRUE(started.ok()) << started;
  ASSERT_TRUE(Eventually([&] { return platform.AdoptServerFromConfig().ok(); }));
  ASSERT_TRUE(platform.WaitHealth("local-eastus", "HEALTHY")) << platform.LogTail("up");
  ASSERT_TRUE(platform.WaitHealth("local-westus", "HEALTHY")) << platform.LogTail("up");

  std::vector<pid_t> servers = platform.ProcessesOfHome("server");
  ASSERT_EQ(servers.size(), 1u);
  ::kill(servers[0], SIGKILL);
  // `up` starts it again; its operators must find it.
  ASSERT_TRUE(Eventually([&] {
    std::vector<pid_t> now = platform.ProcessesOfHome("server");
    return now.size() == 1 && now[0] != servers[0];
  })) << platform.LogTail("up");
  ASSERT_TRUE(Eventually([&] {
    return platform.AdoptServerFromConfig().ok() && platform.Request("GET", "/healthz").ok();
  }));
  ASSERT_TRUE(platform.WaitHealth("local-eastus", "HEALTHY")) << platform.LogTail("up");
  ASSERT_TRUE(platform.WaitHealth("local-westus", "HEALTHY")) << platform.LogTail("up");
  CommandResult submitted =
      platform.Cli({"job", "submit", "-f", SourceDir() + "/examples/jobs/hello.yaml", "--wait"});
  EXPECT_EQ(submitted.exit_code, 0) << submitted.Describe() << platform.LogTail("up");
  EXPECT_NE(submitted.out.find("hello from meridian"), std::string::npos) << submitted.Describe();
}

TEST(NoServer, HomeWithoutConfigSaysToRunUp) {
  Platform platform;
  CommandResult listed = platform.Cli({"job", "list"});
  EXPECT_TRUE(listed.exit_code == 2 || listed.exit_code == 4) << listed.Describe();
  EXPECT_NE(listed.err.find("meridian up"), std::string::npos) << listed.Describe();
}

TEST(NoServer, ConfigPointingAtAClosedPortCannotReachTheControlPlane) {
  Platform platform;
  Status started = platform.StartServer();
  ASSERT_TRUE(started.ok()) << started;
  platform.KillServer();  // config.yaml and the CA stay; nothing listens any more
  CommandResult listed = platform.Cli({"job", "list"});
  EXPECT_EQ(listed.exit_code, 5) << listed.Describe();
  EXPECT_NE(listed.err.find("cannot reach the control plane"), std::string::npos)
      << listed.Describe();
}

// Regression: with no control plane configured, a bad file was reported only as the missing
// control plane; the file is now checked first.
TEST(NoServer, SubmitOfABadFileNamesTheFileNotTheMissingControlPlane) {
  Platform platform;
  std::string bad = platform.WriteFile("bad.yaml", "entrypoint: echo x\nmax_retries: lots\n");
  CommandResult submitted = platform.Cli({"job", "submit", "-f", bad});
  EXPECT_EQ(submitted.exit_code, 2) << submitted.Describe();
  EXPECT_NE(submitted.err.find("bad.yaml:2:14: max_retries"), std::string::npos)
      << submitted.Describe();
  EXPECT_EQ(submitted.err.find("meridian up"), std::string::npos) << submitted.Describe();

  std::string no_dir = platform.WriteFile("nodir.yaml", "entrypoint: echo x\nworking_dir: gone\n");
  CommandResult missing_dir = platform.Cli({"job", "submit", "-f", no_dir});
  EXPECT_EQ(missing_dir.exit_code, 2) << missing_dir.Describe();
  EXPECT_NE(missing_dir.err.find("working_dir"), std::string::npos) << missing_dir.Describe();

  // A good file still needs the control plane, and says so.
  std::string good = platform.WriteFile("good.yaml", "entrypoint: echo x\n");
  CommandResult unconfigured = platform.Cli({"job", "submit", "-f", good});
  EXPECT_NE(unconfigured.exit_code, 0) << unconfigured.Describe();
  EXPECT_NE(unconfigured.err.find("meridian up"), std::string::npos) << unconfigured.Describe();
}

TEST(NoServer, ValidateChecksAFileWithoutAControlPlane) {
  Platform platform;
  CommandResult example = platform.Cli(
      {"job", "validate", "-f", SourceDir() + "/examples/jobs/train.yaml", "-o", "json"});
  ASSERT_EQ(example.exit_code, 0) << example.Describe();
  json stored = json::parse(example.out);
  EXPECT_FALSE(stored.value("entrypoint", "").empty()) << example.out;

  std::string named = platform.WriteFile(
      "named.yaml", "name: n\nentrypoint: python train.py\ncompute_config: my-gpus:2\n");
  CommandResult by_name = platform.Cli({"job", "validate", "-f", named});
  EXPECT_EQ(by_name.exit_code, 0) << by_name.Describe();
  EXPECT_NE(by_name.out.find("valid job 'n'"), std::string::npos) << by_name.Describe();
  EXPECT_NE(by_name.out.find("'my-gpus:2'"), std::string::npos) << by_name.Describe();
  EXPECT_NE(by_name.out.find("resolved when the job is submitted"), std::string::npos)
      << by_name.Describe();

  std::string legacy = platform.WriteFile(
      "legacy.yaml",
      "entrypoint: x\ncompute_config:\n  head_node_type: {name: head, instance_type: 2CPU-8GB}\n");
  CommandResult old_shape = platform.Cli({"job", "validate", "-f", legacy});
  EXPECT_EQ(old_shape.exit_code, 2) << old_shape.Describe();
  EXPECT_NE(old_shape.err.find("legacy compute config shape"), std::string::npos)
      << old_shape.Describe();
  EXPECT_NE(old_shape.err.find("head_node:\n    instance_type: 2CPU-8GB"), std::string::npos)
      << old_shape.Describe();
}

TEST(Help, TopLevelAndCommandsShowExamples) {
  Platform platform;
  CommandResult top = platform.Cli({"--help"}, {}, false);
  EXPECT_EQ(top.exit_code, 0) << top.Describe();
  EXPECT_NE(top.out.find("meridian job submit -f"), std::string::npos) << top.Describe();
  EXPECT_NE(top.out.find("meridian up"), std::string::npos) << top.Describe();

  CommandResult submit = platform.Cli({"job", "submit", "--help"}, {}, false);
  EXPECT_EQ(submit.exit_code, 0) << submit.Describe();
  EXPECT_NE(submit.out.find("Example"), std::string::npos) << submit.Describe();
  EXPECT_NE(submit.out.find("meridian job submit -f "), std::string::npos) << submit.Describe();

  // Every command a user runs shows how to run it.
  const std::vector<std::vector<std::string>> commands = {{"cloud", "create"},
                                                          {"cloud", "list"},
                                                          {"cloud", "describe"},
                                                          {"cloud", "delete"},
                                                          {"cloud", "resource", "create"},
                                                          {"cloud", "resource", "list"},
                                                          {"cloud", "resource", "describe"},
                                                          {"cloud", "resource", "delete"},
                                                          {"job", "list"},
                                                          {"job", "status"},
                                                          {"job", "logs"},
                                                          {"job", "terminate"},
                                                          {"job", "wait"},
                                                          {"job", "validate"},
                                                          {"server"},
                                                          {"operator"},
                                                          {"up"}};
  for (std::vector<std::string> command : commands) {
    std::string name = "meridian";
    for (const std::string& word : command) name += " " + word;
    command.push_back("--help");
    CommandResult help = platform.Cli(command, {}, false);
    EXPECT_EQ(help.exit_code, 0) << name << ": " << help.Describe();
    EXPECT_NE(help.out.find("Example"), std::string::npos) << name << ": " << help.Describe();
    EXPECT_NE(help.out.find("  " + name), std::string::npos) << name << ": " << help.Describe();
  }
}

}  // namespace
}  // namespace meridian::itest
