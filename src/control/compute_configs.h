// Named compute configs, as Anyscale users keep them: a name with numbered versions
// (`my-gpus:1`, `my-gpus:2`, ...). Each create of an existing name adds the next version; a
// version never changes once made, so a job that names one always gets what was registered.
// Archiving a name stops new jobs from using any of its versions; jobs already submitted keep
// the copy they took at submission.
//
// These are plain values, owned by the ControlPlane under its mutex. The stored form
// (StoredJson / FromStoredJson) is the record's own and is separate from the API's view
// (api_compute_configs.cc), so a change to the API is not a data migration.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "spec/specs.h"

namespace meridian::control {

// Limits, so that a script in a loop cannot grow the state without bound.
inline constexpr size_t kMaxComputeConfigs = 10'000;
inline constexpr size_t kMaxComputeConfigVersions = 1'000;

struct ComputeConfigVersion {
  int version = 0;  // 1, 2, ...
  spec::ComputeConfig config;
  std::string created_by;  // the creator's subject
  int64_t created_unix_ms = 0;
};

struct NamedComputeConfig {
  std::string name;
  std::vector<ComputeConfigVersion> versions;  // versions[i].version == i + 1
  bool archived = false;
  int64_t archived_unix_ms = 0;

  const ComputeConfigVersion& latest() const { return versions.back(); }
};

nlohmann::json StoredJson(const NamedComputeConfig& record);
Result<NamedComputeConfig> FromStoredJson(const nlohmann::json& stored);

// The version `ref` names (version 0: the latest) of `record`, or kNotFound naming the
// versions there are.
Result<const ComputeConfigVersion*> FindVersion(const NamedComputeConfig& record,
                                                const spec::ComputeConfigRef& ref);

}  // namespace meridian::control
