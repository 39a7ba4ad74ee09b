// Instance types (pod shapes) from the Anyscale operator's Helm values.
#include <cmath>
#include <regex>

#include "fmt/format.h"
#include "spec/spec_json.h"
#include "spec/specs.h"
#include "spec/tree.h"

namespace meridian::spec {
namespace {

constexpr size_t kMaxInstanceTypeNameChars = 128;
constexpr size_t kMaxInstanceTypes = 1000;
constexpr double kMaxCpus = 1 << 20;
constexpr int64_t kMaxGpus = 1024;
constexpr double kMaxMemoryBytes = static_cast<double>(int64_t{1} << 60);  // 1 EiB
constexpr size_t kMaxAccelerators = 64;

constexpr std::string_view kAdditionalPath = "workloads.instanceTypes.additional";

// A Kubernetes quantity: "92Gi", "1.5G", "512Mi", "1e9", "1024".
Result<int64_t> ParseMemory(const Checker& check, const Tree& value, std::string_view path) {
  double bytes = 0;
  if (value.is_number()) {
    ASSIGN_OR_RETURN(bytes, check.Number(value, path, 0, kMaxMemoryBytes));
    return static_cast<int64_t>(std::ceil(bytes));
  }
  if (!value.is_string()) {
    return check.Fail(path,
                      fmt::format("expected a quantity such as \"92Gi\", got {}", Describe(value)));
  }
  static const std::regex kQuantity(
      "([0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?");
  const std::string& text = value.get_ref<const std::string&>();
  std::smatch match;
  if (!std::regex_match(text, match, kQuantity)) {
    return check.Fail(path, fmt::format("'{}' is not a memory quantity (a number with an "
                                        "optional suffix Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P "
                                        "or E, e.g. \"92Gi\")",
                                        text));
  }
  static const std::vector<std::pair<std::string, double>> kSuffixes = {
      {"Ki", 0x1p10}, {"Mi", 0x1p20}, {"Gi", 0x1p30}, {"Ti", 0x1p40},
      {"Pi", 0x1p50}, {"Ei", 0x1p60}, {"k", 1e3},     {"M", 1e6},
      {"G", 1e9},     {"T", 1e12},    {"P", 1e15},    {"E", 1e18}};
  double multiplier = 1;
  for (const auto& [suffix, factor] : kSuffixes) {
    if (match[4] == suffix) multiplier = factor;
  }
  bytes = std::strtod(match[1].str().c_str(), nullptr) * multiplier;
  if (!(bytes <= kMaxMemoryBytes)) {
    return check.Fail(path, fmt::format("'{}' is above the limit of 1Ei", text));
  }
  return static_cast<int64_t>(std::ceil(bytes));  // Kubernetes rounds fractional bytes up
}

// CPU as a number of cores or Kubernetes millicores ("500m").
Result<double> ParseCpu(const Checker& check, const Tree& value, std::string_view path) {
  if (value.is_number()) return check.Number(value, path, 0, kMaxCpus);
  static const std::regex kCpu("([0-9]+(\\.[0-9]+)?)(m?)");
  std::smatch match;
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (std::regex_match(text, match, kCpu)) {
      double cores = std::strtod(match[1].str().c_str(), nullptr);
      if (match[3] == "m") cores /= 1000;
      if (cores <= kMaxCpus) return cores;
    }
  }
  return check.Fail(path, fmt::format("expected a number of cores such as 8 or \"500m\", got {}",
                                      Describe(value)));
}

Status CheckInstanceTypeName(const Checker& check, const std::string& name, std::string_view path) {
  static const std::regex kPattern("[A-Za-z0-9][A-Za-z0-9._-]*");
  if (name.size() > kMaxInstanceTypeNameChars) {
    return check.Fail(path, fmt::format("instance type name is longer than {} characters",
                                        kMaxInstanceTypeNameChars));
  }
  if (!std::regex_match(name, kPattern)) {
    return check.Fail(path, fmt::format("instance type name '{}' may contain only letters, "
                                        "digits, '.', '_' and '-'",
                                        name));
  }
  return OkStatus();
}

// `resources` of one instance type, at `path` (".../<name>.resources" or "resources").
Result<InstanceType> ResourcesFromTree(const Checker& check, const Tree& resources,
                                       const std::string& path, std::string name) {
  RETURN_IF_ERROR(check.ExpectObject(resources, path));
  RETURN_IF_ERROR(
      check.CheckKnownFields(resources, path, {"CPU", "GPU", "memory", "accelerators"}));
  InstanceType type;
  type.name = std::move(name);
  ASSIGN_OR_RETURN(const Tree* cpu, check.Required(resources, path, "CPU"));
  ASSIGN_OR_RETURN(type.cpu, ParseCpu(check, *cpu, ChildPath(path, "CPU")));
  if (const Tree* gpu = Field(resources, "GPU")) {
    ASSIGN_OR_RETURN(int64_t gpus, check.Integer(*gpu, ChildPath(path, "GPU"), 0, kMaxGpus));
    type.gpu = static_cast<int>(gpus);
  }
  ASSIGN_OR_RETURN(const Tree* memory, check.Required(resources, path, "memory"));
  ASSIGN_OR_RETURN(type.memory_bytes, ParseMemory(check, *memory, ChildPath(path, "memory")));
  if (const Tree* accelerators = Field(resources, "accelerators")) {
    std::string accelerators_path = ChildPath(path, "accelerators");
    ASSIGN_OR_RETURN(type.accelerators, check.StringList(*accelerators, accelerators_path));
    if (type.accelerators.size() > kMaxAccelerators) {
      return check.Fail(accelerators_path,
                        fmt::format("more than {} accelerators", kMaxAccelerators));
    }
  }
  return type;
}

// Reports a misspelt key on the way to `additional` instead of "no instance types".
Status MissingKey(const Checker& check, const Tree& object, std::string_view path,
                  std::string_view key) {
  std::vector<std::string> present;
  for (const auto& [name, value] : object.items()) present.push_back(name);
  std::string message = fmt::format("no instance types: {} is not set", ChildPath(path, key));
  std::string suggestion = DidYouMean(key, present);
  if (!suggestion.empty()) {
    message += fmt::format(" (found '{}': did you mean '{}'?)", suggestion, key);
  }
  return check.Fail(path, message);
}

Result<std::vector<InstanceType>> InstanceTypesFromTree(const Tree& root, const Checker& check) {
  RETURN_IF_ERROR(check.ExpectObject(root, ""));
  const Tree* workloads = Field(root, "workloads");
  if (workloads == nullptr) return MissingKey(check, root, "", "workloads");
  RETURN_IF_ERROR(check.ExpectObject(*workloads, "workloads"));
  const Tree* types = Field(*workloads, "instanceTypes");
  if (types == nullptr) return MissingKey(check, *workloads, "workloads", "instanceTypes");
  RETURN_IF_ERROR(check.ExpectObject(*types, "workloads.instanceTypes"));
  const Tree* additional = Field(*types, "additional");
  if (additional == nullptr) {
    return MissingKey(check, *types, "workloads.instanceTypes", "additional");
  }
  RETURN_IF_ERROR(check.ExpectObject(*additional, kAdditionalPath));
  if (additional->empty()) return check.Fail(kAdditionalPath, "defines no instance types");
  if (additional->size() > kMaxInstanceTypes) {
    return check.Fail(kAdditionalPath,
                      fmt::format("defines more than {} instance types", kMaxInstanceTypes));
  }
  std::vector<InstanceType> result;
  for (const auto& [name, entry] : additional->items()) {
    std::string entry_path = ChildPath(kAdditionalPath, name);
    RETURN_IF_ERROR(CheckInstanceTypeName(check, name, entry_path));
    RETURN_IF_ERROR(check.ExpectObject(entry, entry_path));
    RETURN_IF_ERROR(check.CheckKnownFields(entry, entry_path, {"resources"}));
    ASSIGN_OR_RETURN(const Tree* resources, check.Required(entry, entry_path, "resources"));
    ASSIGN_OR_RETURN(
        InstanceType type,
        ResourcesFromTree(check, *resources, ChildPath(entry_path, "resources"), name));
    result.push_back(std::move(type));
  }
  return result;
}

}  // namespace

Result<std::vector<InstanceType>> ParseInstanceTypes(std::string_view yaml,
                                                     std::string_view source_name) {
  ASSIGN_OR_RETURN(YamlTree tree, ParseYamlTree(yaml, source_name, nullptr));
  return InstanceTypesFromTree(tree.root, Checker(&tree.positions));
}

Result<InstanceType> InstanceTypeFromJson(const nlohmann::json& json) {
  Tree root(json);
  Checker check(nullptr);
  RETURN_IF_ERROR(check.ExpectObject(root, ""));
  RETURN_IF_ERROR(check.CheckKnownFields(root, "", {"name", "resources"}));
  ASSIGN_OR_RETURN(const Tree* name_value, check.Required(root, "", "name"));
  ASSIGN_OR_RETURN(std::string name, check.String(*name_value, "name"));
  RETURN_IF_ERROR(CheckInstanceTypeName(check, name, "name"));
  ASSIGN_OR_RETURN(const Tree* resources, check.Required(root, "", "resources"));
  return ResourcesFromTree(check, *resources, "resources", std::move(name));
}

nlohmann::json ToJson(const InstanceType& type) {
  return {{"name", type.name},
          {"resources",
           {{"CPU", type.cpu},
            {"GPU", type.gpu},
            {"memory", type.memory_bytes},
            {"accelerators", type.accelerators}}}};
}

}  // namespace meridian::spec
