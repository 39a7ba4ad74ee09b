// The formats users already have (Anyscale cloud_resource.yaml, operator Helm values,
// job.yaml), parsed and validated.
//
// Every parser reads YAML into a JSON tree (so the API and the CLI share one validator)
// and reports the first error as "<source>:<line>:<column>: <field.path>: <what is wrong>"
// when the input came from a file, or "<field.path>: <what is wrong>" when it came as JSON
// through the API. Unknown fields are errors with a "did you mean" suggestion. Errors are
// kInvalidArgument.
//
// JSON conversion (ToJson/FromJson) lives in spec/spec_json.h so that this header stays
// light.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meridian::spec {

// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
// The process environment.
EnvLookup ProcessEnv();

// ---- Instance types (Helm values: workloads.instanceTypes.additional.<name>.resources) ----

struct InstanceType {
  std::string name;
  double cpu = 0;
  int gpu = 0;
  int64_t memory_bytes = 0;               // "92Gi", "512Mi", "1G" or a plain byte count
  std::vector<std::string> accelerators;  // e.g. {"T4"}, {"A100-40G"}

  friend bool operator==(const InstanceType&, const InstanceType&) = default;
};

// Parses the Helm values shape, in file order. Other Helm keys (top-level, under `workloads`
// and under `workloads.instanceTypes`) are ignored: they configure the Anyscale operator
// itself, not shapes. Each entry of `additional` has only `resources`, whose keys are CPU
// (a number or "500m"; required), GPU (an integer >= 0; default 0), memory (a Kubernetes
// quantity such as "92Gi", "512Mi", "1G", or a plain byte count; required) and accelerators
// (a list of strings); unknown keys there are errors. A file that defines no instance type is
// an error (it is almost always a misspelt key).
Result<std::vector<InstanceType>> ParseInstanceTypes(std::string_view yaml,
                                                     std::string_view source_name);

// ---- Cloud resource (Anyscale cloud_resource.yaml) ----

enum class Provider { kAzure, kAws, kGcp, kGeneric, kLocal };
enum class ComputeStack { kK8s, kVm, kLocal };

std::string_view ProviderName(Provider provider);       // "AZURE", ...
std::string_view ComputeStackName(ComputeStack stack);  // "K8S", ...

struct CloudResourceSpec {
  std::string name;  // ^[a-zA-Z0-9_-]+$, at most 256 characters
  Provider provider = Provider::kLocal;
  ComputeStack compute_stack = ComputeStack::kLocal;
  std::string region;                 // ^[a-z0-9]+(-[a-z0-9]+)*$, at most 35 characters
  std::string object_storage_bucket;  // object_storage.bucket_name
  std::string file_storage_pvc;       // file_storage.persistent_volume_claim
  std::string azure_tenant_id;        // azure_config.tenant_id
  std::string operator_identity;      // kubernetes_config.anyscale_operator_iam_identity
                                      // (or the older anyscale_operator_iam_id)

  friend bool operator==(const CloudResourceSpec&, const CloudResourceSpec&) = default;
};

// `$VAR` and `${VAR}` expand from `env` in every string value; an unset variable is an
// error naming it and where it is used. `$$` is a literal '$'.
// name, provider, compute_stack and region are required; provider and compute_stack are
// matched ignoring case. These other Anyscale keys are accepted and not kept:
// object_storage.region, object_storage.endpoint, file_storage.mount_path, networking_mode,
// kubernetes_config.namespace.
Result<CloudResourceSpec> ParseCloudResourceYaml(std::string_view yaml,
                                                 std::string_view source_name,
                                                 const EnvLookup& env);

// ---- Job config (Anyscale job.yaml) ----

enum class MarketType { kOnDemand, kSpot, kPreferSpot };

struct WorkerNodeGroup {
  std::string instance_type;
  std::string name;  // defaults to instance_type
  int min_nodes = 0;
  int max_nodes = 0;  // defaults to min_nodes when absent; an error when below min_nodes
  MarketType market_type = MarketType::kOnDemand;

  friend bool operator==(const WorkerNodeGroup&, const WorkerNodeGroup&) = default;
};

struct ComputeTarget {
  std::string cloud_resource;      // empty: any
  std::string head_instance_type;  // empty: chosen automatically
  std::vector<WorkerNodeGroup> worker_nodes;

  friend bool operator==(const ComputeTarget&, const ComputeTarget&) = default;
};

struct ComputeConfig {
  // The single-resource form (compute_config.cloud_resource / head_node / worker_nodes).
  ComputeTarget target;
  // The multi-resource fallback form compute_config.configs[...]; empty when not used.
  std::vector<ComputeTarget> configs;
  std::string cloud_resource_strategy;          // flags.cloud_resource_strategy, e.g. "input_order"
  int cloud_resource_starting_timeout_s = 0;    // flags.cloud_resource_starting_timeout
  std::map<std::string, double> min_resources;  // e.g. {"CPU": 8, "GPU": 1}
  std::map<std::string, double> max_resources;
  bool auto_select_worker_config = false;
  // meridian extension: regions to place the job in, most preferred first (a preference, not a
  // restriction: other regions are used when none of these has room). Each a region name.
  std::vector<std::string> regions;
  // compute_config given as a string (a named compute config such as "my-config:1").
  std::string named;

  friend bool operator==(const ComputeConfig&, const ComputeConfig&) = default;
};

// meridian extension: queue priority, 0 the highest.
inline constexpr int kDefaultJobPriority = 100;
inline constexpr int kMaxJobPriority = 1000;

struct JobConfig {
  std::string name;
  std::string entrypoint;  // required
  std::string image_uri;
  ComputeConfig compute_config;
  std::string working_dir;  // a local directory (the CLI packs it) or a package reference
  std::vector<std::string> excludes;
  // The list form as given. `requirements: path/to/requirements.txt` (a string) becomes the
  // one element "file:path/to/requirements.txt": the CLI reads that file.
  std::vector<std::string> requirements;
  std::map<std::string, std::string> env_vars;
  std::vector<std::string> py_modules;
  std::string cloud;
  std::string project;
  int max_retries = 1;
  int64_t timeout_s = 0;  // 0: none
  std::map<std::string, std::string> tags;
  int priority = kDefaultJobPriority;  // 0..kMaxJobPriority; lower runs first

  friend bool operator==(const JobConfig&, const JobConfig&) = default;
};

// entrypoint is required. env_vars and tags values may be strings, numbers or booleans (kept
// as their text). compute_config is a string (a named config) or a mapping; `configs` and the
// single-resource fields (cloud_resource, head_node, worker_nodes) are mutually exclusive.
// These Anyscale keys are accepted and not kept: compute_config.cloud, .zones,
// .enable_cross_zone_scaling, .advanced_instance_config; head_node/worker_nodes[] resources,
// labels and advanced_instance_config. flags.cloud_resource_starting_timeout is seconds, as an
// integer or a duration such as "10m", "90s", "1h30m".
// meridian extensions (not in Anyscale's schema): `priority` (an integer 0..1000, default 100,
// 0 the highest) and compute_config.regions (a list of at most 32 distinct region names in
// preference order).
Result<JobConfig> ParseJobConfigYaml(std::string_view yaml, std::string_view source_name);

// A compute config file, as `meridian compute-config create -f` reads it: what a job writes
// under compute_config (a mapping), with errors at paths relative to the file's root.
Result<ComputeConfig> ParseComputeConfigYaml(std::string_view yaml, std::string_view source_name);

// "NAME" or "NAME:VERSION" (VERSION a positive integer) of a named compute config; `version` 0
// means the latest. kInvalidArgument naming what is wrong otherwise.
struct ComputeConfigRef {
  std::string name;
  int version = 0;
};
Result<ComputeConfigRef> ParseComputeConfigRef(std::string_view text);

// Names of fields that were given but that meridian does not act on yet (e.g. "image_uri",
// "requirements", "py_modules"), for the one-line notice.
std::vector<std::string> IgnoredJobFields(const JobConfig& config);

// Edit distance suggestion: the closest of `candidates` to `word` (ignoring case), or "" when
// none is within max(2, word.size() / 3) edits.
std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace meridian::spec
