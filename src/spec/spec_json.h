// JSON forms of the specs, as the REST API carries them. Includes nlohmann/json: include
// only from .cc files that speak the API.
#pragma once

#include <nlohmann/json.hpp>

#include "spec/specs.h"

namespace meridian::spec {

nlohmann::json ToJson(const InstanceType& type);
nlohmann::json ToJson(const CloudResourceSpec& spec);
nlohmann::json ToJson(const JobConfig& config);
nlohmann::json ToJson(const ComputeConfig& config);  // a name when `named` is set

// Validate like the YAML parsers; errors name the JSON field path (e.g.
// "compute_config.worker_nodes[0].min_nodes: must be >= 0"). Unknown fields are errors.
Result<InstanceType> InstanceTypeFromJson(const nlohmann::json& json);
Result<CloudResourceSpec> CloudResourceFromJson(const nlohmann::json& json);
Result<JobConfig> JobConfigFromJson(const nlohmann::json& json);
// A registered compute config's body (a mapping, never a name); paths are relative to it.
Result<ComputeConfig> ComputeConfigFromJson(const nlohmann::json& json);

}  // namespace meridian::spec
