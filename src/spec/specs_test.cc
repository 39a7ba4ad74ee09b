#include "spec/specs.h"

#include <map>
#include <string>

#include "base/files.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spec/spec_json.h"

namespace meridian::spec {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

EnvLookup MapEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

EnvLookup ReferenceEnv() {
  return MapEnv({{"REGION", "westus2"},
                 {"STORAGE_CONTAINER", "data"},
                 {"STORAGE_ACCOUNT", "meridianwest"},
                 {"STORAGE_PROTOCOL", "fuse2"},
                 {"AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"},
                 {"IDENTITY_PRINCIPAL_ID", "5b2e4ab7-0b1f-4d0e-9c53-6c4c2f1f6e11"}});
}

std::string Example(const std::string& name) {
  Result<std::string> text = base::ReadFile(std::string(MERIDIAN_SOURCE_DIR) + "/examples/" + name);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

std::string ErrorOf(const Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

constexpr char kMinimalCloud[] = R"(name: local-a
provider: LOCAL
compute_stack: LOCAL
region: local-1
)";

// ---- cloud resources ----

TEST(CloudResource, ReferenceFileParsesWithItsVariablesSet) {
  Result<CloudResourceSpec> spec =
      ParseCloudResourceYaml(Example("cloud_resource.yaml"), "cloud_resource.yaml", ReferenceEnv());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "k8s-azure-westus2");
  EXPECT_EQ(spec->provider, Provider::kAzure);
  EXPECT_EQ(spec->compute_stack, ComputeStack::kK8s);
  EXPECT_EQ(spec->region, "westus2");
  EXPECT_EQ(spec->object_storage_bucket, "abfss://data@meridianwest.dfs.core.windows.net");
  EXPECT_EQ(spec->file_storage_pvc, "blob-fuse2");
  EXPECT_EQ(spec->azure_tenant_id, "72f988bf-86f1-41af-91ab-2d7cd011db47");
  EXPECT_EQ(spec->operator_identity, "5b2e4ab7-0b1f-4d0e-9c53-6c4c2f1f6e11");
}

TEST(CloudResource, UnsetVariableNamesItAndWhereItIsUsed) {
  EnvLookup env = MapEnv({{"STORAGE_CONTAINER", "c"}});
  Status status =
      ParseCloudResourceYaml(Example("cloud_resource.yaml"), "cloud_resource.yaml", env).status();
  EXPECT_EQ(ErrorOf(status),
            "cloud_resource.yaml:1:7: name: environment variable REGION is not set");
}

TEST(CloudResource, ExpandsBracedAndDollarDollar) {
  std::string yaml = R"(name: "${NAME}_x"
provider: azure
compute_stack: k8s
region: eastus
azure_config:
  tenant_id: "cost$$center-$T"
)";
  Result<CloudResourceSpec> spec =
      ParseCloudResourceYaml(yaml, "c.yaml", MapEnv({{"NAME", "east"}, {"T", "7"}}));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "east_x");
  EXPECT_EQ(spec->provider, Provider::kAzure);  // case-insensitive input
  EXPECT_EQ(spec->compute_stack, ComputeStack::kK8s);
  EXPECT_EQ(spec->azure_tenant_id, "cost$center-7");
}

TEST(CloudResource, RejectsBadNameRegionAndProvider) {
  EnvLookup env = MapEnv({});
  std::string bad_name = std::string(kMinimalCloud).replace(6, 7, "local a!");
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml(bad_name, "c.yaml", env).status()),
            "c.yaml:1:7: name: 'local a!' may contain only letters, digits, '_' and '-'");

  std::string long_name = "name: " + std::string(257, 'n') + R"(
provider: LOCAL
compute_stack: LOCAL
region: r
)";
  EXPECT_THAT(ErrorOf(ParseCloudResourceYaml(long_name, "c.yaml", env).status()),
              HasSubstr("name: is 257 characters long; the limit is 256"));

  std::string bad_region = std::string(kMinimalCloud).replace(59, 7, "West_US");
  EXPECT_THAT(ErrorOf(ParseCloudResourceYaml(bad_region, "c.yaml", env).status()),
              HasSubstr("c.yaml:4:9: region: 'West_US' must be lowercase"));
  std::string long_region = std::string(kMinimalCloud).replace(59, 7, std::string(36, 'a'));
  EXPECT_THAT(ErrorOf(ParseCloudResourceYaml(long_region, "c.yaml", env).status()),
              HasSubstr("region: is 36 characters long; the limit is 35"));

  std::string bad_provider = std::string(kMinimalCloud).replace(24, 5, "AZUR");
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml(bad_provider, "c.yaml", env).status()),
            "c.yaml:2:11: provider: unknown provider \"AZUR\" (accepted: AZURE, AWS, GCP, "
            "GENERIC, LOCAL); did you mean 'AZURE'?");

  std::string bad_stack = std::string(kMinimalCloud).replace(45, 5, "EKS");
  EXPECT_THAT(ErrorOf(ParseCloudResourceYaml(bad_stack, "c.yaml", env).status()),
              HasSubstr("compute_stack: unknown compute stack \"EKS\" (accepted: K8S, VM, LOCAL)"));
}

TEST(CloudResource, MissingRequiredFieldIsNamed) {
  Status status =
      ParseCloudResourceYaml("name: a\nprovider: AWS\ncompute_stack: VM\n", "c.yaml", MapEnv({}))
          .status();
  EXPECT_EQ(ErrorOf(status), "c.yaml:1:1: region: is required");
}

TEST(CloudResource, UnknownFieldSuggestsAndGivesTheLine) {
  std::string yaml = std::string(kMinimalCloud) + "regoin: west\n";
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml(yaml, "c.yaml", MapEnv({})).status()),
            "c.yaml:5:1: regoin: unknown field 'regoin' (did you mean 'region'?)");
  std::string nested = std::string(kMinimalCloud) + "object_storage:\n  bucket_nam: x\n";
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml(nested, "c.yaml", MapEnv({})).status()),
            "c.yaml:6:3: object_storage.bucket_nam: unknown field 'bucket_nam' (did you mean "
            "'bucket_name'?)");
  std::string far = std::string(kMinimalCloud) + "colour: blue\n";
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml(far, "c.yaml", MapEnv({})).status()),
            "c.yaml:5:1: colour: unknown field 'colour'");
}

TEST(CloudResource, MalformedYamlGivesTheLine) {
  std::string yaml = "name: a\nprovider: [AWS\ncompute_stack: VM\n";
  EXPECT_THAT(ErrorOf(ParseCloudResourceYaml(yaml, "c.yaml", MapEnv({})).status()),
              ::testing::MatchesRegex("c\\.yaml:[34]:[0-9]+: .*flow.*"));
  EXPECT_THAT(ErrorOf(ParseCloudResourceYaml("a: 1\n b: 2\n", "c.yaml", MapEnv({})).status()),
              ::testing::StartsWith("c.yaml:2:"));
}

TEST(CloudResource, AcceptsOlderIdentitySpellingAndOtherAnyscaleKeys) {
  std::string yaml = std::string(kMinimalCloud) + R"(networking_mode: PRIVATE
object_storage:
  bucket_name: s3://bucket
  region: us-west-2
  endpoint: https://s3.example
file_storage:
  persistent_volume_claim: shared
  mount_path: /mnt/shared
kubernetes_config:
  anyscale_operator_iam_id: arn:aws:iam::1:role/op
  namespace: anyscale-operator
)";
  Result<CloudResourceSpec> spec = ParseCloudResourceYaml(yaml, "c.yaml", MapEnv({}));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->operator_identity, "arn:aws:iam::1:role/op");
  EXPECT_EQ(spec->object_storage_bucket, "s3://bucket");
  EXPECT_EQ(spec->file_storage_pvc, "shared");

  std::string both = std::string(kMinimalCloud) + R"(kubernetes_config:
  anyscale_operator_iam_identity: a
  anyscale_operator_iam_id: b
)";
  EXPECT_THAT(ErrorOf(ParseCloudResourceYaml(both, "c.yaml", MapEnv({})).status()),
              HasSubstr("c.yaml:7:3: kubernetes_config.anyscale_operator_iam_id: give either"));
}

TEST(CloudResource, WrongTypeIsDescribed) {
  std::string yaml = "name: [a, b]\nprovider: AWS\ncompute_stack: VM\nregion: r\n";
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml(yaml, "c.yaml", MapEnv({})).status()),
            "c.yaml:1:7: name: expected a string, got a list");
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml("- a\n", "c.yaml", MapEnv({})).status()),
            "c.yaml:1:1: expected a mapping, got a list");
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml("", "c.yaml", MapEnv({})).status()),
            "c.yaml:1:1: expected a mapping, got null");
}

TEST(CloudResource, InvalidUtf8IsRefused) {
  std::string yaml = std::string(kMinimalCloud) + "networking_mode: \"caf\xc3\"\n";
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml(yaml, "c.yaml", MapEnv({})).status()),
            "c.yaml:5:18: networking_mode: is not valid UTF-8 text");
  std::string long_name = "name: " + std::string(39, 'x') + "\xc3\xa9" + std::string(10, 'y') +
                          "!\nprovider: LOCAL\ncompute_stack: LOCAL\nregion: r\n";
  EXPECT_THAT(ErrorOf(ParseCloudResourceYaml(long_name, "c.yaml", MapEnv({})).status()),
              HasSubstr("may contain only letters"));
}

TEST(CloudResource, DuplicateKeyIsAnError) {
  std::string yaml = std::string(kMinimalCloud) + "region: local-2\n";
  EXPECT_EQ(ErrorOf(ParseCloudResourceYaml(yaml, "c.yaml", MapEnv({})).status()),
            "c.yaml:5:1: region: duplicate field 'region'");
}

TEST(CloudResource, JsonRoundTripAndJsonErrorPaths) {
  Result<CloudResourceSpec> spec =
      ParseCloudResourceYaml(Example("cloud_resource.yaml"), "c.yaml", ReferenceEnv());
  ASSERT_TRUE(spec.ok()) << spec.status();
  Result<CloudResourceSpec> back = CloudResourceFromJson(ToJson(*spec));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, *spec);

  nlohmann::json json = ToJson(*spec);
  json["region"] = "Bad Region";
  EXPECT_THAT(ErrorOf(CloudResourceFromJson(json).status()),
              ::testing::StartsWith("region: 'Bad Region' must be lowercase"));
  json = ToJson(*spec);
  json["object_storage"]["bucket_nme"] = "x";
  EXPECT_EQ(ErrorOf(CloudResourceFromJson(json).status()),
            "object_storage.bucket_nme: unknown field 'bucket_nme' (did you mean 'bucket_name'?)");
  EXPECT_EQ(ErrorOf(CloudResourceFromJson(nlohmann::json::array()).status()),
            "expected a mapping, got a list");
}

// ---- instance types ----

// The Anyscale reference Helm values, as users have them.
constexpr char kReferenceValues[] = R"(workloads:
  instanceTypes:
    additional:
      1xT4:
        resources:
          CPU: 12
          GPU: 1
          memory: 92Gi
          accelerators:
            - T4
      8xA100:
        resources:
          CPU: 92
          GPU: 8
          memory: 864Gi
          accelerators:
            - A100-40G
)";

constexpr int64_t kGi = int64_t{1} << 30;

TEST(InstanceTypes, ReferenceValuesParse) {
  Result<std::vector<InstanceType>> types = ParseInstanceTypes(kReferenceValues, "values.yaml");
  ASSERT_TRUE(types.ok()) << types.status();
  ASSERT_EQ(types->size(), 2u);
  EXPECT_EQ((*types)[0], (InstanceType{"1xT4", 12, 1, 92 * kGi, {"T4"}}));
  EXPECT_EQ((*types)[1], (InstanceType{"8xA100", 92, 8, 864 * kGi, {"A100-40G"}}));
}

TEST(InstanceTypes, ExampleFileOffersCpuAndGpuShapes) {
  Result<std::vector<InstanceType>> types =
      ParseInstanceTypes(Example("instance-types.yaml"), "instance-types.yaml");
  ASSERT_TRUE(types.ok()) << types.status();
  std::vector<std::string> names;
  for (const InstanceType& type : *types) names.push_back(type.name);
  EXPECT_THAT(names, ElementsAre("2CPU-8GB", "4CPU-16GB", "8CPU-32GB", "1xT4", "8xA100"));
  EXPECT_EQ((*types)[0].cpu, 2);
  EXPECT_EQ((*types)[0].gpu, 0);
  EXPECT_EQ((*types)[0].memory_bytes, 8 * kGi);
  EXPECT_EQ((*types)[4].gpu, 8);
}

TEST(InstanceTypes, QuantitiesMillicoresAndOtherHelmKeys) {
  std::string yaml = R"(global:
  cloudDeploymentId: cld_1
workloads:
  serviceAccount: x
  instanceTypes:
    defaults: ignored
    additional:
      small:
        resources: {CPU: "500m", memory: 512Mi}
      decimal:
        resources: {CPU: "1.5", memory: 1G}
      bytes:
        resources: {CPU: 1, memory: 1048576}
      fractional:
        resources: {CPU: 2.5, memory: 1.5Ki}
)";
  Result<std::vector<InstanceType>> types = ParseInstanceTypes(yaml, "v.yaml");
  ASSERT_TRUE(types.ok()) << types.status();
  ASSERT_EQ(types->size(), 4u);
  EXPECT_DOUBLE_EQ((*types)[0].cpu, 0.5);
  EXPECT_EQ((*types)[0].memory_bytes, 512 << 20);
  EXPECT_DOUBLE_EQ((*types)[1].cpu, 1.5);
  EXPECT_EQ((*types)[1].memory_bytes, 1'000'000'000);
  EXPECT_EQ((*types)[2].memory_bytes, 1048576);
  EXPECT_DOUBLE_EQ((*types)[3].cpu, 2.5);
  EXPECT_EQ((*types)[3].memory_bytes, 1536);
}

TEST(InstanceTypes, ErrorsNameTheFieldAndLine) {
  std::string bad_memory =
      std::string(kReferenceValues).replace(std::string(kReferenceValues).find("92Gi"), 4, "92GB");
  EXPECT_THAT(ErrorOf(ParseInstanceTypes(bad_memory, "v.yaml").status()),
              HasSubstr("v.yaml:8:19: workloads.instanceTypes.additional.1xT4.resources.memory: "
                        "'92GB' is not a memory quantity"));
  std::string bad_gpu = std::string(kReferenceValues)
                            .replace(std::string(kReferenceValues).find("GPU: 1"), 6, "GPU: -1");
  EXPECT_EQ(ErrorOf(ParseInstanceTypes(bad_gpu, "v.yaml").status()),
            "v.yaml:7:16: workloads.instanceTypes.additional.1xT4.resources.GPU: must be at "
            "least 0, got -1");
  std::string unknown = std::string(kReferenceValues)
                            .replace(std::string(kReferenceValues).find("GPU: 1"), 6, "GPUS: 1");
  EXPECT_EQ(ErrorOf(ParseInstanceTypes(unknown, "v.yaml").status()),
            "v.yaml:7:11: workloads.instanceTypes.additional.1xT4.resources.GPUS: unknown "
            "field 'GPUS' (did you mean 'GPU'?)");
  EXPECT_EQ(ErrorOf(ParseInstanceTypes("workloads:\n  instancetypes: {}\n", "v.yaml").status()),
            "v.yaml:2:3: workloads: no instance types: workloads.instanceTypes is not set "
            "(found 'instancetypes': did you mean 'instanceTypes'?)");
  EXPECT_THAT(ErrorOf(ParseInstanceTypes("a: [", "v.yaml").status()), HasSubstr("v.yaml:"));
}

TEST(InstanceTypes, JsonRoundTrip) {
  InstanceType type{"1xT4", 12, 1, 92 * kGi, {"T4"}};
  Result<InstanceType> back = InstanceTypeFromJson(ToJson(type));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, type);
  nlohmann::json json = ToJson(type);
  json["resources"]["CPU"] = "many";
  EXPECT_EQ(ErrorOf(InstanceTypeFromJson(json).status()),
            "resources.CPU: expected a number of cores such as 8 or \"500m\", got string \"many\"");
}

// ---- job configs ----

TEST(JobConfig, MinimalHasDefaults) {
  Result<JobConfig> job = ParseJobConfigYaml("entrypoint: python main.py\n", "job.yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->entrypoint, "python main.py");
  EXPECT_EQ(job->max_retries, 1);
  EXPECT_EQ(job->timeout_s, 0);
  EXPECT_TRUE(job->compute_config.target.worker_nodes.empty());
  EXPECT_TRUE(IgnoredJobFields(*job).empty());
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml("name: x\n", "job.yaml").status()),
            "job.yaml:1:1: entrypoint: is required");
}

constexpr char kFullJob[] = R"(name: train-llm
entrypoint: python train.py --epochs 3
image_uri: anyscale/ray:2.9.0-py310
compute_config:
  configs:
    - cloud_resource: k8s-azure-westus2
      head_node:
        instance_type: 8CPU-32GB
      worker_nodes:
        - instance_type: 1xT4
          min_nodes: 1
          max_nodes: 4
          market_type: SPOT
          resources: {CPU: 12}
    - cloud_resource: k8s-azure-eastus
      worker_nodes:
        - instance_type: 8xA100
          name: big
  flags:
    cloud_resource_strategy: input_order
    cloud_resource_starting_timeout: 10m
  min_resources: {GPU: 1}
  max_resources: {GPU: 8, CPU: 96}
  auto_select_worker_config: false
  enable_cross_zone_scaling: true
working_dir: .
excludes: ["*.pyc", data/]
requirements: requirements.txt
env_vars:
  EPOCHS: 3
  DEBUG: true
  RATIO: 0.5
  NAME: run
py_modules: [mylib]
cloud: my-cloud
project: research
max_retries: 2
timeout_s: 7200
tags:
  team: ml
  cost-center: 42
)";

TEST(JobConfig, FullAnyscaleExampleWithFallbackConfigs) {
  Result<JobConfig> job = ParseJobConfigYaml(kFullJob, "job.yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->name, "train-llm");
  const ComputeConfig& compute = job->compute_config;
  ASSERT_EQ(compute.configs.size(), 2u);
  EXPECT_EQ(compute.configs[0].cloud_resource, "k8s-azure-westus2");
  EXPECT_EQ(compute.configs[0].head_instance_type, "8CPU-32GB");
  EXPECT_EQ(compute.configs[0].worker_nodes[0],
            (WorkerNodeGroup{"1xT4", "1xT4", 1, 4, MarketType::kSpot}));
  EXPECT_EQ(compute.configs[1].worker_nodes[0],
            (WorkerNodeGroup{"8xA100", "big", 0, 0, MarketType::kOnDemand}));
  EXPECT_EQ(compute.cloud_resource_strategy, "input_order");
  EXPECT_EQ(compute.cloud_resource_starting_timeout_s, 600);
  EXPECT_EQ(compute.min_resources.at("GPU"), 1);
  EXPECT_EQ(compute.max_resources.at("CPU"), 96);
  EXPECT_THAT(job->excludes, ElementsAre("*.pyc", "data/"));
  EXPECT_THAT(job->requirements, ElementsAre("file:requirements.txt"));
  EXPECT_EQ(job->env_vars,
            (std::map<std::string, std::string>{
                {"DEBUG", "true"}, {"EPOCHS", "3"}, {"NAME", "run"}, {"RATIO", "0.5"}}));
  EXPECT_EQ(job->tags.at("cost-center"), "42");
  EXPECT_EQ(job->max_retries, 2);
  EXPECT_EQ(job->timeout_s, 7200);
  EXPECT_THAT(IgnoredJobFields(*job), ElementsAre("image_uri", "requirements", "py_modules"));
}

TEST(JobConfig, SingleResourceFormAndNamedConfig) {
  Result<JobConfig> job = ParseJobConfigYaml(R"(entrypoint: python a.py
compute_config:
  cloud_resource: local-a
  head_node: {instance_type: 2CPU-8GB}
  worker_nodes:
    - {instance_type: 2CPU-8GB, min_nodes: 2, market_type: prefer_spot}
)",
                                             "job.yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->compute_config.target.cloud_resource, "local-a");
  EXPECT_EQ(job->compute_config.target.worker_nodes[0],
            (WorkerNodeGroup{"2CPU-8GB", "2CPU-8GB", 2, 2, MarketType::kPreferSpot}));

  Result<JobConfig> named =
      ParseJobConfigYaml("entrypoint: x\ncompute_config: my-config:1\n", "job.yaml");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->compute_config.named, "my-config:1");
}

TEST(JobConfig, LegacyComputeConfigShapeIsAnsweredWithTheConvertedYaml) {
  std::string legacy = R"(entrypoint: python train.py
compute_config:
  cloud_resource: local-westus
  head_node_type:
    name: head
    instance_type: 8CPU-32GB
  worker_node_types:
    - name: gpu
      instance_type: 1xT4
      min_workers: 1
      max_workers: 4
      use_spot: true
      fallback_to_ondemand: true
)";
  std::string error = ErrorOf(ParseJobConfigYaml(legacy, "job.yaml").status());
  EXPECT_THAT(error, HasSubstr("job.yaml:4:3: compute_config.head_node_type: is the legacy "
                               "compute config shape; write head_node"));
  EXPECT_THAT(error, HasSubstr("min_nodes, max_nodes"));
  // What it prints is a compute_config that loads as the same cluster.
  size_t converted = error.find("Converted:\n");
  ASSERT_NE(converted, std::string::npos) << error;
  Result<JobConfig> job = ParseJobConfigYaml(
      "entrypoint: python train.py\n" + error.substr(converted + 11), "converted.yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->compute_config.target.cloud_resource, "local-westus");
  EXPECT_EQ(job->compute_config.target.head_instance_type, "8CPU-32GB");
  ASSERT_EQ(job->compute_config.target.worker_nodes.size(), 1u);
  EXPECT_EQ(job->compute_config.target.worker_nodes[0],
            (WorkerNodeGroup{"1xT4", "gpu", 1, 4, MarketType::kPreferSpot}));

  // A field with no one-to-one mapping: the hint without a conversion.
  std::string ambiguous = ErrorOf(
      ParseJobConfigYaml("entrypoint: x\ncompute_config:\n  region: us-west-2\n  "
                         "worker_node_types: [{instance_type: a, resources: {CPU: 2}}]\n",
                         "job.yaml")
          .status());
  EXPECT_THAT(ambiguous, HasSubstr("compute_config.worker_node_types: is the legacy"));
  EXPECT_THAT(ambiguous, HasSubstr("convert it by hand"));
  EXPECT_EQ(ambiguous.find("Converted:"), std::string::npos);
}

TEST(JobConfig, WrongTypesAreDescribedWithPathAndLine) {
  std::string yaml = R"(entrypoint: x
compute_config:
  worker_nodes:
    - instance_type: a
      min_nodes: two
)";
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml(yaml, "job.yaml").status()),
            "job.yaml:5:18: compute_config.worker_nodes[0].min_nodes: expected an integer, got "
            "string \"two\"");
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml("entrypoint: x\nmax_retries: -1\n", "job.yaml").status()),
            "job.yaml:2:14: max_retries: must be at least 0, got -1");
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml("entrypoint: x\nexcludes: a\n", "job.yaml").status()),
            "job.yaml:2:11: excludes: expected a list of strings, got string \"a\"");
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml("entrypoint: x\nenv_vars: {A: [1]}\n", "job.yaml").status()),
            "job.yaml:2:15: env_vars.A: expected a string, got a list");
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml("entrypoint: x\ncompute_config: 5\n", "job.yaml").status()),
            "job.yaml:2:17: compute_config: expected a compute config name or a mapping, got 5");
  EXPECT_THAT(
      ErrorOf(ParseJobConfigYaml("entrypoint: x\ncompute_config:\n  flags:\n    "
                                 "cloud_resource_strategy: random\n",
                                 "job.yaml")
                  .status()),
      HasSubstr("job.yaml:4:30: compute_config.flags.cloud_resource_strategy: unknown strategy "
                "\"random\" (accepted: input_order)"));
}

TEST(JobConfig, MinAboveMaxNamesTheField) {
  std::string yaml = R"(entrypoint: x
compute_config:
  worker_nodes:
    - instance_type: a
      min_nodes: 5
      max_nodes: 2
)";
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml(yaml, "job.yaml").status()),
            "job.yaml:6:18: compute_config.worker_nodes[0].max_nodes: max_nodes (2) is below "
            "min_nodes (5)");
}

TEST(JobConfig, UnknownNestedFieldHasPathAndLine) {
  std::string yaml = R"(entrypoint: x
compute_config:
  configs:
    - cloud_resource: a
    - cloud_resource: b
      worker_nodes:
        - instance_type: t
          max_node: 3
)";
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml(yaml, "job.yaml").status()),
            "job.yaml:8:11: compute_config.configs[1].worker_nodes[0].max_node: unknown field "
            "'max_node' (did you mean 'max_nodes'?)");
}

TEST(JobConfig, ConfigsAndSingleFormAreExclusive) {
  std::string yaml = R"(entrypoint: x
compute_config:
  cloud_resource: a
  configs:
    - cloud_resource: b
)";
  EXPECT_THAT(ErrorOf(ParseJobConfigYaml(yaml, "job.yaml").status()),
              HasSubstr("job.yaml:3:3: compute_config.cloud_resource: give either configs"));
}

TEST(JobConfig, DuplicateWorkerGroupNamesAreRefused) {
  std::string yaml = R"(entrypoint: x
compute_config:
  worker_nodes:
    - instance_type: a
    - instance_type: a
)";
  EXPECT_THAT(ErrorOf(ParseJobConfigYaml(yaml, "job.yaml").status()),
              HasSubstr("job.yaml:5:7: compute_config.worker_nodes[1]: two worker groups"));
}

TEST(JobConfig, StartingTimeoutForms) {
  auto timeout = [](const std::string& value) -> Result<int> {
    ASSIGN_OR_RETURN(JobConfig job,
                     ParseJobConfigYaml("entrypoint: x\ncompute_config:\n  flags:\n    "
                                        "cloud_resource_starting_timeout: " +
                                            value + "\n",
                                        "job.yaml"));
    return job.compute_config.cloud_resource_starting_timeout_s;
  };
  EXPECT_EQ(*timeout("90"), 90);
  EXPECT_EQ(*timeout("\"90s\""), 90);
  EXPECT_EQ(*timeout("1h30m"), 5400);
  EXPECT_EQ(*timeout("\"600\""), 600);
  EXPECT_THAT(ErrorOf(timeout("soon").status()), HasSubstr("expected seconds or a duration"));
}

TEST(JobConfig, JsonRoundTrip) {
  Result<JobConfig> job = ParseJobConfigYaml(kFullJob, "job.yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  Result<JobConfig> back = JobConfigFromJson(ToJson(*job));
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << ToJson(*job).dump(2);
  EXPECT_EQ(*back, *job);

  Result<JobConfig> single = ParseJobConfigYaml(R"(entrypoint: x
compute_config:
  cloud_resource: a
  head_node: {instance_type: h}
  worker_nodes: [{instance_type: w, max_nodes: 3, market_type: SPOT}]
)",
                                                "job.yaml");
  ASSERT_TRUE(single.ok()) << single.status();
  Result<JobConfig> single_back = JobConfigFromJson(ToJson(*single));
  ASSERT_TRUE(single_back.ok()) << single_back.status();
  EXPECT_EQ(*single_back, *single);

  JobConfig named;
  named.entrypoint = "x";
  named.compute_config.named = "cfg:2";
  named.max_retries = 0;
  EXPECT_EQ(*JobConfigFromJson(ToJson(named)), named);
}

TEST(JobConfig, PriorityAndPreferredRegionsExtensions) {
  Result<JobConfig> plain = ParseJobConfigYaml("entrypoint: x\n", "job.yaml");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->priority, kDefaultJobPriority);
  EXPECT_TRUE(plain->compute_config.regions.empty());

  Result<JobConfig> job = ParseJobConfigYaml(R"(entrypoint: x
priority: 0
compute_config:
  regions: [eastus, westus2]
  worker_nodes: [{instance_type: 1xT4, min_nodes: 1}]
)",
                                             "job.yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->priority, 0);
  EXPECT_THAT(job->compute_config.regions, ElementsAre("eastus", "westus2"));
  Result<JobConfig> back = JobConfigFromJson(ToJson(*job));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, *job);
  EXPECT_EQ(ToJson(*job)["priority"], 0);
}

TEST(JobConfig, PriorityAndRegionErrorsNameFileLineAndField) {
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml("entrypoint: x\npriority: 1001\n", "job.yaml").status()),
            "job.yaml:2:11: priority: must be at most 1000, got 1001");
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml("entrypoint: x\npriority: high\n", "job.yaml").status()),
            "job.yaml:2:11: priority: expected an integer, got string \"high\"");
  EXPECT_THAT(ErrorOf(ParseJobConfigYaml("entrypoint: x\ncompute_config:\n  regions: [eastus, "
                                         "East US]\n",
                                         "job.yaml")
                          .status()),
              HasSubstr("job.yaml:3:21: compute_config.regions[1]: 'East US' must be lowercase"));
  EXPECT_EQ(ErrorOf(ParseJobConfigYaml("entrypoint: x\ncompute_config:\n  regions: [eastus, "
                                       "eastus]\n",
                                       "job.yaml")
                        .status()),
            "job.yaml:3:21: compute_config.regions[1]: 'eastus' is listed twice");
  EXPECT_EQ(
      ErrorOf(ParseJobConfigYaml("entrypoint: x\ncompute_config:\n  regions: eastus\n", "job.yaml")
                  .status()),
      "job.yaml:3:12: compute_config.regions: expected a list of strings, got string "
      "\"eastus\"");
  EXPECT_EQ(ErrorOf(JobConfigFromJson({{"entrypoint", "x"}, {"priority", -1}}).status()),
            "priority: must be at least 0, got -1");
}

TEST(JobConfig, JsonErrorsUseTheApiPath) {
  nlohmann::json json = nlohmann::json::parse(R"({"entrypoint": "x", "compute_config":
      {"worker_nodes": [{"instance_type": "a", "min_nodes": "two"}]}})");
  EXPECT_EQ(ErrorOf(JobConfigFromJson(json).status()),
            "compute_config.worker_nodes[0].min_nodes: expected an integer, got string \"two\"");
  EXPECT_EQ(ErrorOf(JobConfigFromJson({{"entrypoint", "x"}, {"timout_s", 5}}).status()),
            "timout_s: unknown field 'timout_s' (did you mean 'timeout_s'?)");
  EXPECT_EQ(ErrorOf(JobConfigFromJson({{"name", "x"}}).status()), "entrypoint: is required");
}

TEST(YamlLimits, AliasBombIsRefused) {
  std::string yaml = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char previous = 'a';
  for (char name = 'b'; name <= 'h'; ++name) {
    yaml += fmt::format("{0}: &{0} [*{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}]\n",
                        name, previous);
    previous = name;
  }
  yaml += "entrypoint: x\n";
  EXPECT_THAT(ErrorOf(ParseJobConfigYaml(yaml, "job.yaml").status()),
              HasSubstr("more than 100000 values"));
}

TEST(DidYouMean, SuggestsOnlyCloseWords) {
  EXPECT_EQ(DidYouMean("regoin", {"name", "region"}), "region");
  EXPECT_EQ(DidYouMean("REGION", {"name", "region"}), "region");
  EXPECT_EQ(DidYouMean("xyz", {"name", "region"}), "");
  EXPECT_EQ(DidYouMean("workin_dir", {"working_dir", "name"}), "working_dir");
  EXPECT_EQ(DidYouMean("working_directory", {"working_dir", "name"}), "");
}

}  // namespace
}  // namespace meridian::spec
