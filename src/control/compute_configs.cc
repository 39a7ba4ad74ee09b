#include "control/compute_configs.h"

#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "spec/spec_json.h"

namespace meridian::control {

using nlohmann::json;

json StoredJson(const NamedComputeConfig& record) {
  json versions = json::array();
  for (const ComputeConfigVersion& version : record.versions) {
    versions.push_back({{"version", version.version},
                        {"config", spec::ToJson(version.config)},
                        {"created_by", version.created_by},
                        {"created_unix_ms", version.created_unix_ms}});
  }
  return {{"name", record.name},
          {"versions", std::move(versions)},
          {"archived", record.archived},
          {"archived_unix_ms", record.archived_unix_ms}};
}

Result<NamedComputeConfig> FromStoredJson(const json& stored) {
  try {
    NamedComputeConfig record;
    record.name = stored.at("name").get<std::string>();
    record.archived = stored.value("archived", false);
    record.archived_unix_ms = stored.value("archived_unix_ms", int64_t{0});
    for (const json& item : stored.at("versions")) {
      ComputeConfigVersion version;
      version.version = item.at("version").get<int>();
      ASSIGN_OR_RETURN(version.config, spec::ComputeConfigFromJson(item.at("config")));
      version.created_by = item.value("created_by", std::string());
      version.created_unix_ms = item.value("created_unix_ms", int64_t{0});
      if (version.version != static_cast<int>(record.versions.size()) + 1) {
        return absl::InternalError(
            fmt::format("stored compute config '{}': version {} is out of order", record.name,
                        version.version));
      }
      record.versions.push_back(std::move(version));
    }
    if (record.versions.empty()) {
      return absl::InternalError(
          fmt::format("stored compute config '{}' has no versions", record.name));
    }
    return record;
  } catch (const json::exception& error) {
    return absl::InternalError(
        fmt::format("stored compute config record is unreadable: {}", error.what()));
  }
}

Result<const ComputeConfigVersion*> FindVersion(const NamedComputeConfig& record,
                                                const spec::ComputeConfigRef& ref) {
  if (ref.version == 0) return &record.latest();
  if (ref.version > static_cast<int>(record.versions.size())) {
    return absl::NotFoundError(fmt::format("compute config '{}' has no version {} (it has 1 to {})",
                                           record.name, ref.version, record.versions.size()));
  }
  return &record.versions[ref.version - 1];
}

}  // namespace meridian::control
