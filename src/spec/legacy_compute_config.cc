// Older Anyscale samples write compute configs in the legacy shape (`head_node_type`,
// `worker_node_types` with `min_workers`/`max_workers`). meridian does not accept it silently:
// the user is told which fields to write instead and, where the mapping is unambiguous, given
// the converted YAML to paste.
#include "spec/legacy_compute_config.h"

#include <string>
#include <vector>

#include "fmt/format.h"

namespace meridian::spec {
namespace {

// The fields of one legacy node type that map one to one onto the current shape.
const std::vector<std::string> kLegacyNodeFields = {
    "name", "instance_type", "min_workers", "max_workers", "use_spot", "fallback_to_ondemand"};

bool OnlyKnownKeys(const Tree& object, const std::vector<std::string>& known) {
  if (!object.is_object()) return false;
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (const std::string& name : known) found = found || name == key;
    if (!found) return false;
  }
  return true;
}

bool IsPlainText(const Tree* value) { return value != nullptr && value->is_string(); }
bool IsCount(const Tree* value) {
  return value != nullptr && value->is_number_integer() && value->get<int64_t>() >= 0;
}

// One worker group in the current shape, indented for a compute_config block; "" when the
// legacy entry does not map one to one.
std::string ConvertWorker(const Tree& legacy) {
  if (!OnlyKnownKeys(legacy, kLegacyNodeFields)) return "";
  const Tree* instance_type = Field(legacy, "instance_type");
  if (!IsPlainText(instance_type)) return "";
  std::string out = "    - instance_type: " + instance_type->get<std::string>() + "\n";
  if (const Tree* name = Field(legacy, "name")) {
    if (!IsPlainText(name)) return "";
    out += "      name: " + name->get<std::string>() + "\n";
  }
  for (const auto& [from, to] :
       {std::pair{"min_workers", "min_nodes"}, {"max_workers", "max_nodes"}}) {
    const Tree* count = Field(legacy, from);
    if (count == nullptr) continue;
    if (!IsCount(count)) return "";
    out += fmt::format("      {}: {}\n", to, count->get<int64_t>());
  }
  const Tree* spot = Field(legacy, "use_spot");
  const Tree* fallback = Field(legacy, "fallback_to_ondemand");
  if ((spot != nullptr && !spot->is_boolean()) ||
      (fallback != nullptr && !fallback->is_boolean())) {
    return "";
  }
  if (spot != nullptr && spot->get<bool>()) {
    bool falls_back = fallback != nullptr && fallback->get<bool>();
    out += fmt::format("      market_type: {}\n", falls_back ? "PREFER_SPOT" : "SPOT");
  }
  return out;
}

// The whole converted compute_config, or "" when any part is ambiguous.
std::string Convert(const Tree& compute_config) {
  std::string out = "compute_config:\n";
  for (const auto& [key, value] : compute_config.items()) {
    if (key == "head_node_type") {
      if (!OnlyKnownKeys(value, {"name", "instance_type"})) return "";
      const Tree* instance_type = Field(value, "instance_type");
      if (!IsPlainText(instance_type)) return "";
      out += "  head_node:\n    instance_type: " + instance_type->get<std::string>() + "\n";
    } else if (key == "worker_node_types") {
      if (!value.is_array()) return "";
      out += "  worker_nodes:\n";
      for (const Tree& legacy : value) {
        std::string group = ConvertWorker(legacy);
        if (group.empty()) return "";
        out += group;
      }
    } else if (value.is_string() && (key == "cloud_resource" || key == "cloud")) {
      out += fmt::format("  {}: {}\n", key, value.get<std::string>());
    } else {
      return "";  // cloud_id, region, allowed_azs, aws/gcp blocks: no one-to-one field
    }
  }
  return out;
}

}  // namespace

bool IsLegacyComputeConfig(const Tree& compute_config) {
  return compute_config.is_object() && (Field(compute_config, "head_node_type") != nullptr ||
                                        Field(compute_config, "worker_node_types") != nullptr);
}

Status LegacyComputeConfigError(const Checker& check, const Tree& compute_config,
                                std::string_view path) {
  std::string key =
      Field(compute_config, "head_node_type") != nullptr ? "head_node_type" : "worker_node_types";
  std::string message =
      "is the legacy compute config shape; write head_node {instance_type} instead of "
      "head_node_type, and worker_nodes [{name, instance_type, min_nodes, max_nodes, "
      "market_type}] instead of worker_node_types [{name, instance_type, min_workers, "
      "max_workers, use_spot}]";
  std::string converted = Convert(compute_config);
  if (converted.empty()) {
    message += " (this one has fields with no one-to-one mapping, so convert it by hand)";
  } else {
    message += ". Converted:\n" + converted;
  }
  return check.FailAtKey(ChildPath(path, key), message);
}

}  // namespace meridian::spec
