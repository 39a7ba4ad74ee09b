// The platform as an operator of it sees it: cloud resources, health, placement, durability
// across a crash, and the API's answers to bad input.
#include <algorithm>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace meridian::itest {
namespace {

using nlohmann::json;

json ParseOrFail(const CommandResult& result) {
  json parsed = json::parse(result.out, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << result.Describe();
  return parsed.is_discarded() ? json::object() : parsed;
}

const json* FindByName(const json& list, const std::string& name) {
  if (!list.contains("items")) return nullptr;
  for (const json& item : list.at("items")) {
    if (item.value("name", "") == name) return &item;
  }
  return nullptr;
}

std::map<std::string, std::string> AnyscaleEnvironment() {
  return {{"REGION", "eastus2"},
          {"STORAGE_CONTAINER", "datasets"},
          {"STORAGE_ACCOUNT", "acmeml"},
          {"STORAGE_PROTOCOL", "nfs"},
          {"AZURE_TENANT_ID", "11111111-2222-3333-4444-555555555555"},
          {"IDENTITY_PRINCIPAL_ID", "66666666-7777-8888-9999-000000000000"}};
}

TEST(CloudResources, AnyscaleYamlIsAcceptedVerbatimAndValidated) {
  Platform platform;
  Status started = platform.StartServer();
  ASSERT_TRUE(started.ok()) << started;
  CommandResult cloud = platform.Cli({"cloud", "create", "acme"});
  ASSERT_EQ(cloud.exit_code, 0) << cloud.Describe();

  std::string example = SourceDir() + "/examples/cloud_resource.yaml";
  std::map<std::string, std::string> env = AnyscaleEnvironment();
  CommandResult created =
      platform.Cli({"cloud", "resource", "create", "--cloud", "acme", "-f", example}, env);
  ASSERT_EQ(created.exit_code, 0) << created.Describe();
  EXPECT_NE(created.out.find("k8s-azure-eastus2"), std::string::npos) << created.Describe();

  CommandResult listed = platform.Cli({"cloud", "resource", "list", "-o", "json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.Describe();
  json list = ParseOrFail(listed);
  const json* resource = FindByName(list, "k8s-azure-eastus2");
  ASSERT_NE(resource, nullptr) << list.dump(2);
  EXPECT_EQ(resource->value("health", ""), "UNKNOWN");
  EXPECT_EQ(resource->value("provider", ""), "AZURE");
  EXPECT_EQ(resource->value("compute_stack", ""), "K8S");
  EXPECT_EQ(resource->value("region", ""), "eastus2");
  EXPECT_EQ(resource->value("cloud", ""), "acme");
  std::string spec = (*resource)["spec"].dump();
  for (const char* expected :
       {"abfss://datasets@acmeml.dfs.core.windows.net", "blob-nfs",
        "11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000"}) {
    EXPECT_NE(spec.find(expected), std::string::npos) << expected << " not in " << spec;
  }

  // A variable the file references but the environment lacks.
  std::map<std::string, std::string> missing = env;
  missing["STORAGE_ACCOUNT"] = kUnsetEnv;
  missing["REGION"] = "westus3";
  CommandResult unset =
      platform.Cli({"cloud", "resource", "create", "--cloud", "acme", "-f", example}, missing);
  EXPECT_EQ(unset.exit_code, 2) << unset.Describe();
  EXPECT_NE(unset.err.find("STORAGE_ACCOUNT"), std::string::npos) << unset.Describe();

  CommandResult duplicate =
      platform.Cli({"cloud", "resource", "create", "--cloud", "acme", "-f", example}, env);
  EXPECT_EQ(duplicate.exit_code, 4) << duplicate.Describe();
  EXPECT_NE(duplicate.err.find("already exists"), std::string::npos) << duplicate.Describe();

  std::string typo = platform.WriteFile("typo.yaml",
                                        "name: typo-resource\n"
                                        "provider: LOCAL\n"
                                        "compute_stack: LOCAL\n"
                                        "regoin: eastus\n");
  CommandResult unknown =
      platform.Cli({"cloud", "resource", "create", "--cloud", "acme", "-f", typo});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.Describe();
  EXPECT_NE(unknown.err.find(typo + ":4"), std::string::npos) << unknown.Describe();
  EXPECT_NE(unknown.err.find("did you mean 'region'"), std::string::npos) << unknown.Describe();

  std::string absent = platform.home() + "/no-such-file.yaml";
  CommandResult missing_file =
      platform.Cli({"cloud", "resource", "create", "--cloud", "acme", "-f", absent});
  EXPECT_NE(missing_file.exit_code, 0) << missing_file.Describe();
  EXPECT_NE(missing_file.err.find(absent), std::string::npos) << missing_file.Describe();
  EXPECT_EQ(missing_file.err.find("terminate"), std::string::npos) << missing_file.Describe();

  CommandResult deleted = platform.Cli({"cloud", "resource", "delete", "k8s-azure-eastus2"});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.Describe();
  json after = ParseOrFail(platform.Cli({"cloud", "resource", "list", "-o", "json"}));
  EXPECT_EQ(FindByName(after, "k8s-azure-eastus2"), nullptr) << after.dump(2);
  CommandResult deleted_again = platform.Cli({"cloud", "resource", "delete", "k8s-azure-eastus2"});
  EXPECT_EQ(deleted_again.exit_code, 3) << deleted_again.Describe();
}

TEST(Health, UnknownThenHealthyThenUnhealthyWhenTheOperatorDies) {
  Platform platform;
  Status started = platform.StartServer(/*heartbeat_timeout_ms=*/1'500);
  ASSERT_TRUE(started.ok()) << started;
  ASSERT_TRUE(platform.CreateLocalResource("local-h", "northeurope").ok());
  auto health = [&] {
    json list = ParseOrFail(platform.Cli({"cloud", "resource", "list", "-o", "json"}));
    const json* item = FindByName(list, "local-h");
    return item == nullptr ? std::string("(missing)") : item->value("health", "");
  };
  EXPECT_EQ(health(), "UNKNOWN");
  ASSERT_TRUE(platform.StartOperator({"local-h", "", {}}).ok());
  EXPECT_TRUE(Eventually([&] { return health() == "HEALTHY"; })) << platform.LogTail("local-h");
  platform.KillOperator("local-h");
  EXPECT_TRUE(Eventually([&] { return health() == "UNHEALTHY"; })) << health();
  // The table says it too.
  CommandResult table = platform.Cli({"cloud", "resource", "list"});
  EXPECT_NE(table.out.find("UNHEALTHY"), std::string::npos) << table.Describe();
  // An operator that comes back makes it healthy again.
  ASSERT_TRUE(platform.StartOperator({"local-h", "", {}}).ok());
  EXPECT_TRUE(Eventually([&] { return health() == "HEALTHY"; })) << platform.LogTail("local-h");
}

TEST(Operators, OperatorOfAResourceThatDoesNotExistExitsWithAClearError) {
  Platform platform;
  Status started = platform.StartServer();
  ASSERT_TRUE(started.ok()) << started;
  std::string types =
      platform.WriteFile("types.yaml",
                         "workloads:\n  instanceTypes:\n    additional:\n"
                         "      2CPU-8GB:\n        resources: {CPU: 2, memory: 8Gi}\n");
  CommandResult result =
      platform.Cli({"operator", "--cloud-resource", "nowhere", "--instance-types", types});
  EXPECT_EQ(result.exit_code, 3) << result.Describe();
  EXPECT_NE(result.err.find("'nowhere' does not exist"), std::string::npos) << result.Describe();
  EXPECT_NE(result.err.find("meridian cloud resource create"), std::string::npos)
      << result.Describe();
  // It ended because of the error, not because anyone signalled it.
  EXPECT_EQ(result.err.find("received"), std::string::npos) << result.Describe();

  CommandResult bad_nodes = platform.Cli({"operator", "--cloud-resource", "nowhere",
                                          "--instance-types", types, "--nodes", "8xA100=2"});
  EXPECT_EQ(bad_nodes.exit_code, 2) << bad_nodes.Describe();
  EXPECT_NE(bad_nodes.err.find("8xA100"), std::string::npos) << bad_nodes.Describe();
}

class PlacementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status started = platform_.StartServer();
    ASSERT_TRUE(started.ok()) << started;
    // Oldest first: cpu-only is tried first and has no GPU shape.
    ASSERT_TRUE(platform_.CreateLocalResource("cpu-only", "eastus").ok());
    ASSERT_TRUE(platform_.CreateLocalResource("with-t4", "westus").ok());
    std::string cpu_types =
        platform_.WriteFile("local/cpu-types.yaml",
                            "workloads:\n  instanceTypes:\n    additional:\n"
                            "      2CPU-8GB:\n        resources: {CPU: 2, memory: 8Gi}\n");
    ASSERT_TRUE(platform_.StartOperator({"cpu-only", cpu_types, {"2CPU-8GB=1"}}).ok());
    ASSERT_TRUE(platform_.StartOperator({"with-t4", "", {"2CPU-8GB=2", "1xT4=1"}}).ok());
    ASSERT_TRUE(platform_.WaitHealth("cpu-only", "HEALTHY")) << platform_.LogTail("cpu-only");
    ASSERT_TRUE(platform_.WaitHealth("with-t4", "HEALTHY")) << platform_.LogTail("with-t4");
  }

  std::string Submit(const std::string& name, const std::string& body) {
    std::string file = platform_.WriteFile("jobs/" + name + ".yaml", "name: " + name + "\n" + body);
    CommandResult submitted = platform_.Cli({"job", "submit", "-f", file});
    EXPECT_EQ(submitted.exit_code, 0) << submitted.Describe();
    return SubmittedJobId(submitted.out);
  }

  Platform platform_;
};

TEST_F(PlacementTest, UnofferedInstanceTypeFailsAtOnceAsInfeasible) {
  std::string id = Submit("huge",
                          "entrypoint: echo never\n"
                          "compute_config:\n  head_node:\n    instance_type: 64xH100\n");
  ASSERT_FALSE(id.empty());
  json job = platform_.Job(id);  // decided at submission: no waiting needed
  EXPECT_EQ(job.value("state", ""), "FAILED") << job.dump(2);
  EXPECT_NE(job.value("message", "").find("infeasible"), std::string::npos) << job.dump(2);
  EXPECT_TRUE(job["attempts"].empty()) << job.dump(2);
}

TEST_F(PlacementTest, JobPinnedToAFullResourceWaitsThenRuns) {
  const std::string gated =
      "entrypoint: 'while [ ! -f \"$MERIDIAN_CLUSTER_STORAGE/go\" ]; do sleep 0.1; done'\n"
      "compute_config:\n  cloud_resource: cpu-only\n  head_node:\n    instance_type: 2CPU-8GB\n"
      "max_retries: 0\n";
  std::string first = Submit("first", gated);
  ASSERT_FALSE(first.empty());
  ASSERT_TRUE(Eventually([&] { return platform_.Job(first).value("state", "") == "RUNNING"; }))
      << platform_.Job(first).dump(2);
  std::string second = Submit("second", gated);
  ASSERT_FALSE(second.empty());
  json waiting = platform_.Job(second);
  EXPECT_EQ(waiting.value("state", ""), "STARTING") << waiting.dump(2);
  EXPECT_NE(waiting.value("message", "").find("waiting for capacity"), std::string::npos)
      << waiting.dump(2);
  EXPECT_TRUE(waiting["attempts"].empty()) << waiting.dump(2);

  // A waiting job can be terminated; it never runs afterwards.
  std::string third = Submit("third", gated);
  ASSERT_FALSE(third.empty());
  CommandResult terminated = platform_.Cli({"job", "terminate", third, "--wait"});
  EXPECT_EQ(terminated.exit_code, 0) << terminated.Describe();
  CommandResult waited = platform_.Cli({"job", "wait", third});
  EXPECT_EQ(waited.exit_code, 8) << waited.Describe();

  // Nothing can be deleted from under a running job.
  CommandResult busy = platform_.Cli({"cloud", "resource", "delete", "cpu-only"});
  EXPECT_EQ(busy.exit_code, 4) << busy.Describe();
  CommandResult cloud_in_use = platform_.Cli({"cloud", "delete", "default"});
  EXPECT_EQ(cloud_in_use.exit_code, 4) << cloud_in_use.Describe();

  platform_.WriteFile("cluster-storage/go", "go\n");
  for (const std::string& id : {first, second}) {
    json job = platform_.WaitJobFinal(id);
    EXPECT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump(2);
    ASSERT_EQ(job["attempts"].size(), 1u) << job.dump(2);
    EXPECT_EQ(job["attempts"][0].value("cloud_resource", ""), "cpu-only") << job.dump(2);
  }
  json never_ran = platform_.Job(third);
  EXPECT_EQ(never_ran.value("state", ""), "TERMINATED") << never_ran.dump(2);
  EXPECT_TRUE(never_ran["attempts"].empty()) << never_ran.dump(2);
}

TEST_F(PlacementTest, GpuShapedJobGoesToTheResourceThatOffersIt) {
  std::string id = Submit("gpu",
                          "entrypoint: 'echo on-$MERIDIAN_CLOUD_RESOURCE'\n"
                          "compute_config:\n  head_node:\n    instance_type: 1xT4\n"
                          "max_retries: 0\n");
  ASSERT_FALSE(id.empty());
  json job = platform_.WaitJobFinal(id);
  EXPECT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump(2);
  ASSERT_EQ(job["attempts"].size(), 1u) << job.dump(2);
  EXPECT_EQ(job["attempts"][0].value("cloud_resource", ""), "with-t4") << job.dump(2);
  EXPECT_EQ(job["attempts"][0]["nodes"][0].value("instance_type", ""), "1xT4") << job.dump(2);
  CommandResult logs = platform_.Cli({"job", "logs", id});
  EXPECT_NE(logs.out.find("on-with-t4"), std::string::npos) << logs.Describe();
}

// Regression: the table read GPU and accelerators one level above where the API puts them
// (under each type's "resources"), so a T4 shape showed ACCELERATOR "-" and no GPUS/NODE.
TEST_F(PlacementTest, CapacityTableShowsEachShapesAcceleratorAndGpusPerNode) {
  CommandResult capacity = platform_.Cli({"capacity"});
  ASSERT_EQ(capacity.exit_code, 0) << capacity.Describe();
  std::map<std::string, std::vector<std::string>> rows;  // "resource/type" -> columns
  std::istringstream lines(capacity.out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> columns{std::istream_iterator<std::string>(words), {}};
    // REGION, CLOUD RESOURCE, HEALTH, INSTANCE TYPE, ACCELERATOR, GPUS/NODE, ...
    if (columns.size() >= 6 && columns[2] == "HEALTHY") rows[columns[1] + "/" + columns[3]] = columns;
  }
  ASSERT_TRUE(rows.count("with-t4/1xT4")) << capacity.Describe();
  EXPECT_EQ(rows["with-t4/1xT4"][4], "T4") << capacity.Describe();
  EXPECT_EQ(rows["with-t4/1xT4"][5], "1") << capacity.Describe();
  ASSERT_TRUE(rows.count("cpu-only/2CPU-8GB")) << capacity.Describe();
  EXPECT_EQ(rows["cpu-only/2CPU-8GB"][4], "-") << capacity.Describe();
  EXPECT_EQ(rows["cpu-only/2CPU-8GB"][5], "0") << capacity.Describe();
}

TEST_F(PlacementTest, NamedComputeConfigsAreVersionedAndCopiedAtSubmit) {
  std::string cpu = platform_.WriteFile("cc/cpu.yaml", "head_node: {instance_type: 2CPU-8GB}\n");
  std::string gpu = platform_.WriteFile("cc/gpu.yaml", "head_node: {instance_type: 1xT4}\n");
  CommandResult v1 = platform_.Cli({"compute-config", "create", "-n", "shape", "-f", cpu});
  ASSERT_EQ(v1.exit_code, 0) << v1.Describe();
  EXPECT_NE(v1.out.find("compute_config: shape:1"), std::string::npos) << v1.Describe();
  CommandResult v2 =
      platform_.Cli({"compute-config", "create", "-n", "shape", "-f", gpu, "-o", "json"});
  ASSERT_EQ(v2.exit_code, 0) << v2.Describe();
  EXPECT_EQ(json::parse(v2.out).value("version", 0), 2) << v2.out;

  // A pinned version and the latest are each resolved at submit, and the job records which.
  std::string pinned = Submit("pinned", "entrypoint: echo pinned\ncompute_config: shape:1\n");
  std::string latest = Submit("latest", "entrypoint: echo latest\ncompute_config: shape\n");
  ASSERT_FALSE(pinned.empty());
  ASSERT_FALSE(latest.empty());
  json pinned_job = platform_.WaitJobFinal(pinned);
  EXPECT_EQ(pinned_job.value("compute_config_ref", ""), "shape:1") << pinned_job.dump(2);
  ASSERT_EQ(pinned_job["attempts"].size(), 1u) << pinned_job.dump(2);
  EXPECT_EQ(pinned_job["attempts"][0]["nodes"][0].value("instance_type", ""), "2CPU-8GB");
  json latest_job = platform_.WaitJobFinal(latest);
  EXPECT_EQ(latest_job.value("compute_config_ref", ""), "shape:2") << latest_job.dump(2);
  ASSERT_EQ(latest_job["attempts"].size(), 1u) << latest_job.dump(2);
  EXPECT_EQ(latest_job["attempts"][0].value("cloud_resource", ""), "with-t4");

  // A later version never changes a submitted job: it keeps its copy.
  ASSERT_EQ(platform_.Cli({"compute-config", "create", "-n", "shape", "-f", cpu}).exit_code, 0);
  json kept = platform_.Job(latest);
  EXPECT_EQ(kept["config"]["compute_config"]["head_node"].value("instance_type", ""), "1xT4")
      << kept.dump(2);

  CommandResult described = platform_.Cli({"compute-config", "describe", "shape:2", "-o", "json"});
  ASSERT_EQ(described.exit_code, 0) << described.Describe();
  EXPECT_EQ(json::parse(described.out)["config"]["head_node"].value("instance_type", ""), "1xT4");
  CommandResult missing_version = platform_.Cli({"compute-config", "describe", "shape:9"});
  EXPECT_EQ(missing_version.exit_code, 3) << missing_version.Describe();
  EXPECT_NE(missing_version.err.find("1 to 3"), std::string::npos) << missing_version.Describe();
  std::string unknown = platform_.WriteFile("jobs/unknown.yaml",
                                            "entrypoint: echo x\ncompute_config: nothing-here\n");
  CommandResult no_such = platform_.Cli({"job", "submit", "-f", unknown});
  EXPECT_EQ(no_such.exit_code, 3) << no_such.Describe();
  EXPECT_NE(no_such.err.find("compute-config create -n nothing-here"), std::string::npos)
      << no_such.Describe();

  // Archived: gone from the list, refused to new jobs, still readable.
  CommandResult archived = platform_.Cli({"compute-config", "archive", "shape"});
  ASSERT_EQ(archived.exit_code, 0) << archived.Describe();
  CommandResult listed = platform_.Cli({"compute-config", "list", "-o", "json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.Describe();
  EXPECT_TRUE(json::parse(listed.out)["items"].empty()) << listed.out;
  CommandResult all = platform_.Cli({"compute-config", "list", "--include-archived"});
  EXPECT_NE(all.out.find("shape"), std::string::npos) << all.Describe();
  std::string after = platform_.WriteFile("jobs/after.yaml",
                                          "entrypoint: echo x\ncompute_config: shape:1\n");
  CommandResult refused = platform_.Cli({"job", "submit", "-f", after});
  EXPECT_EQ(refused.exit_code, 4) << refused.Describe();
  EXPECT_NE(refused.err.find("archived"), std::string::npos) << refused.Describe();

  // The file is checked before anything is sent, with its line.
  std::string bad = platform_.WriteFile("cc/bad.yaml", "head_node: {instance_type: 2CPU-8GB}\n"
                                                       "worker_nodes: 3\n");
  CommandResult bad_file = platform_.Cli({"compute-config", "create", "-n", "bad", "-f", bad});
  EXPECT_EQ(bad_file.exit_code, 2) << bad_file.Describe();
  EXPECT_NE(bad_file.err.find("bad.yaml:2:15: worker_nodes: expected a list"), std::string::npos)
      << bad_file.Describe();
}

TEST(Durability, EveryAcknowledgedJobSurvivesServerKill9) {
  Platform platform;
  Status started = platform.StartServer();
  ASSERT_TRUE(started.ok()) << started;
  // No operator ever serves "parked": its jobs stay STARTING.
  ASSERT_TRUE(platform.CreateLocalResource("parked", "eastus").ok());

  const std::string token = platform.AccessToken();
  constexpr int kThreads = 5;
  constexpr int kJobsPerThread = 10;
  std::mutex mu;
  std::set<std::string> acknowledged;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      net::HttpClient client = platform.Client();
      for (int i = 0; i < kJobsPerThread; ++i) {
        json body = {{"config",
                      {{"name", "durable-" + std::to_string(t) + "-" + std::to_string(i)},
                       {"entrypoint", "true"},
                       {"compute_config", {{"cloud_resource", "parked"}}}}}};
        net::HttpClientRequest request;
        request.method = "POST";
        request.url = platform.url() + "/api/v1/jobs";
        request.headers = {{"content-type", "application/json"},
                           {"authorization", "Bearer " + token}};
        request.body = body.dump();
        Result<net::HttpResponse> response = client.Send(request);
        std::lock_guard lock(mu);
        if (!response.ok() || response->status != 201) {
          errors.push_back(response.ok() ? response->body : response.status().ToString());
          continue;
        }
        acknowledged.insert(json::parse(response->body).value("id", ""));
      }
    });
  }
  // And a few through the CLI at the same time.
  std::string job_file = platform.WriteFile("jobs/cli.yaml",
                                            "name: durable-cli\nentrypoint: 'true'\n"
                                            "compute_config:\n  cloud_resource: parked\n");
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      CommandResult submitted = platform.Cli({"job", "submit", "-f", job_file});
      std::lock_guard lock(mu);
      if (submitted.exit_code != 0) {
        errors.push_back(submitted.Describe());
      } else {
        acknowledged.insert(SubmittedJobId(submitted.out));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  platform.KillServer();
  EXPECT_TRUE(errors.empty()) << errors.size() << " submissions failed, first: " << errors[0];
  ASSERT_EQ(acknowledged.size(), static_cast<size_t>(kThreads * kJobsPerThread + 3));

  started = platform.StartServer();
  ASSERT_TRUE(started.ok()) << started;
  CommandResult listed = platform.Cli({"job", "list", "-o", "json", "--limit", "1000"});
  ASSERT_EQ(listed.exit_code, 0) << listed.Describe();
  json list = ParseOrFail(listed);
  std::map<std::string, json> found;
  for (const json& item : list.value("items", json::array())) found[item.value("id", "")] = item;
  for (const std::string& id : acknowledged) {
    auto it = found.find(id);
    ASSERT_NE(it, found.end()) << "acknowledged job " << id << " was lost";
    EXPECT_EQ(it->second.value("state", ""), "STARTING") << it->second.dump(2);
    EXPECT_NE(it->second.value("message", "").find("waiting for capacity"), std::string::npos)
        << it->second.dump(2);
  }

  // Once an operator serves the resource, every one of them runs, once.
  ASSERT_TRUE(platform.StartOperator({"parked", "", {"2CPU-8GB=16"}}).ok());
  for (const std::string& id : acknowledged) {
    json job = platform.WaitJobFinal(id);
    EXPECT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump(2);
    EXPECT_EQ(job["attempts"].size(), 1u) << job.dump(2);
  }
}

TEST(BadInput, ApiAnswersWithStatusAndJsonErrorsAndKeepsServing) {
  Platform platform;
  Status started = platform.StartServer();
  ASSERT_TRUE(started.ok()) << started;
  auto request = [&](const std::string& method, const std::string& path,
                     const std::string& body = "") {
    Result<net::HttpResponse> response = platform.Request(method, path, body);
    EXPECT_TRUE(response.ok()) << method << " " << path << ": " << response.status();
    return response.ok() ? *response : net::HttpResponse{0, {}, "", ""};
  };
  auto expect_error = [](const net::HttpResponse& response, int status, const char* what) {
    EXPECT_EQ(response.status, status) << what << ": " << response.body;
    json body = json::parse(response.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << what << ": " << response.body;
    EXPECT_TRUE(body.contains("code") && body["code"].is_string()) << what << ": " << response.body;
    EXPECT_TRUE(body.contains("message") && body["message"].is_string()) << response.body;
    EXPECT_TRUE(body.contains("details")) << what << ": " << response.body;
  };

  expect_error(request("POST", "/api/v1/jobs", "{\"config\": {"), 400, "malformed JSON");
  net::HttpResponse wrong_type =
      request("POST", "/api/v1/jobs", R"({"config": {"name": "x", "entrypoint": 42}})");
  expect_error(wrong_type, 400, "wrong type");
  EXPECT_NE(wrong_type.body.find("config.entrypoint"), std::string::npos) << wrong_type.body;
  net::HttpResponse nested =
      request("POST", "/api/v1/jobs",
              R"({"config": {"name": "x", "entrypoint": "true", "max_retries": "three"}})");
  expect_error(nested, 400, "wrong type");
  EXPECT_NE(nested.body.find("config.max_retries"), std::string::npos) << nested.body;

  std::string oversized = "{\"config\": {\"name\": \"" + std::string(2 << 20, 'x') + "\"}}";
  expect_error(request("POST", "/api/v1/jobs", oversized), 413, "oversized body");
  EXPECT_EQ(request("GET", "/healthz").status, 200) << "the server must keep serving";

  expect_error(request("GET", "/api/v1/no-such-thing"), 404, "unknown API path");
  expect_error(request("GET", "/no-such-page"), 404, "unknown path");
  net::HttpResponse wrong_method = request("DELETE", "/api/v1/jobs");
  expect_error(wrong_method, 405, "wrong method");
  EXPECT_NE(wrong_method.Header("allow").find("POST"), std::string::npos);
  expect_error(request("GET", "/api/v1/jobs/job_doesnotexist"), 404, "unknown job");
  expect_error(request("GET", "/api/v1/jobs/%2e%2e%2f%2e%2e"), 404, "invalid job id");
  expect_error(request("POST", "/api/v1/jobs/job_doesnotexist/terminate", "{}"), 404,
               "terminate unknown job");
  expect_error(request("GET", "/api/v1/jobs?limit=abc"), 400, "bad query parameter");

  EXPECT_EQ(request("GET", "/healthz").status, 200);
  net::HttpResponse jobs = request("GET", "/api/v1/jobs");
  EXPECT_EQ(jobs.status, 200) << jobs.body;
  EXPECT_TRUE(platform.ServerAlive());
}

}  // namespace
}  // namespace meridian::itest
