// Anyscale job.yaml.
#include <regex>
#include <set>

#include "fmt/format.h"
#include "spec/legacy_compute_config.h"
#include "spec/spec_json.h"
#include "spec/specs.h"
#include "spec/tree.h"

namespace meridian::spec {
namespace {

constexpr int64_t kMaxNodesPerGroup = 10'000;
constexpr size_t kMaxWorkerGroups = 100;
constexpr size_t kMaxConfigs = 32;
constexpr int64_t kMaxRetries = 1000;
constexpr int64_t kMaxTimeoutS = int64_t{365} * 24 * 3600;
constexpr int64_t kMaxStartingTimeoutS = int64_t{7} * 24 * 3600;
constexpr size_t kMaxEntrypointChars = 64 * 1024;
constexpr size_t kMaxListItems = 10'000;  // excludes, requirements, py_modules, env_vars, tags
constexpr double kMaxResourceAmount = 1e9;
constexpr size_t kMaxPreferredRegions = 32;

const std::vector<std::string> kMarketTypes = {"ON_DEMAND", "SPOT", "PREFER_SPOT"};
// Accepted on head_node and worker_nodes[] so Anyscale files load; meridian does not use them.
const std::vector<std::string> kIgnoredNodeFields = {"resources", "labels",
                                                     "advanced_instance_config"};

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Status CheckListSize(const Checker& check, const Tree& value, std::string_view path) {
  if (value.size() > kMaxListItems) {
    return check.Fail(path, fmt::format("has more than {} entries", kMaxListItems));
  }
  return OkStatus();
}

Result<std::string> OptionalString(const Checker& check, const Tree& object, std::string_view path,
                                   std::string_view key) {
  const Tree* value = Field(object, key);
  if (value == nullptr) return std::string();
  return check.String(*value, ChildPath(path, key));
}

Result<WorkerNodeGroup> WorkerGroupFromTree(const Checker& check, const Tree& node,
                                            const std::string& path) {
  RETURN_IF_ERROR(check.ExpectObject(node, path));
  RETURN_IF_ERROR(check.CheckKnownFields(
      node, path,
      Concat({"instance_type", "name", "min_nodes", "max_nodes", "market_type"},
             kIgnoredNodeFields)));
  WorkerNodeGroup group;
  ASSIGN_OR_RETURN(const Tree* instance_type, check.Required(node, path, "instance_type"));
  ASSIGN_OR_RETURN(group.instance_type,
                   check.String(*instance_type, ChildPath(path, "instance_type")));
  if (group.instance_type.empty()) {
    return check.Fail(ChildPath(path, "instance_type"), "must not be empty");
  }
  ASSIGN_OR_RETURN(group.name, OptionalString(check, node, path, "name"));
  if (group.name.empty()) group.name = group.instance_type;
  if (const Tree* min_nodes = Field(node, "min_nodes")) {
    ASSIGN_OR_RETURN(int64_t value,
                     check.Integer(*min_nodes, ChildPath(path, "min_nodes"), 0, kMaxNodesPerGroup));
    group.min_nodes = static_cast<int>(value);
  }
  group.max_nodes = group.min_nodes;
  if (const Tree* max_nodes = Field(node, "max_nodes")) {
    std::string max_path = ChildPath(path, "max_nodes");
    ASSIGN_OR_RETURN(int64_t value, check.Integer(*max_nodes, max_path, 0, kMaxNodesPerGroup));
    if (value < group.min_nodes) {
      return check.Fail(
          max_path, fmt::format("max_nodes ({}) is below min_nodes ({})", value, group.min_nodes));
    }
    group.max_nodes = static_cast<int>(value);
  }
  if (const Tree* market = Field(node, "market_type")) {
    ASSIGN_OR_RETURN(size_t index, check.OneOf(*market, ChildPath(path, "market_type"),
                                               "market type", kMarketTypes));
    group.market_type = static_cast<MarketType>(index);
  }
  return group;
}

Result<std::string> HeadInstanceType(const Checker& check, const Tree& head,
                                     const std::string& path) {
  RETURN_IF_ERROR(check.ExpectObject(head, path));
  RETURN_IF_ERROR(
      check.CheckKnownFields(head, path, Concat({"instance_type"}, kIgnoredNodeFields)));
  return OptionalString(check, head, path, "instance_type");
}

// cloud_resource, head_node and worker_nodes of `object` (a compute_config or a configs[] entry).
Result<ComputeTarget> TargetFromTree(const Checker& check, const Tree& object,
                                     const std::string& path) {
  ComputeTarget target;
  ASSIGN_OR_RETURN(target.cloud_resource, OptionalString(check, object, path, "cloud_resource"));
  if (const Tree* head = Field(object, "head_node")) {
    ASSIGN_OR_RETURN(target.head_instance_type,
                     HeadInstanceType(check, *head, ChildPath(path, "head_node")));
  }
  const Tree* workers = Field(object, "worker_nodes");
  if (workers == nullptr) return target;
  std::string workers_path = ChildPath(path, "worker_nodes");
  if (!workers->is_array()) {
    return check.Fail(workers_path, fmt::format("expected a list, got {}", Describe(*workers)));
  }
  if (workers->size() > kMaxWorkerGroups) {
    return check.Fail(workers_path, fmt::format("more than {} worker groups", kMaxWorkerGroups));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < workers->size(); ++i) {
    std::string group_path = IndexPath(workers_path, i);
    ASSIGN_OR_RETURN(WorkerNodeGroup group, WorkerGroupFromTree(check, (*workers)[i], group_path));
    if (!names.insert(group.name).second) {
      return check.Fail(group_path, fmt::format("two worker groups are named '{}'; give each a "
                                                "distinct name",
                                                group.name));
    }
    target.worker_nodes.push_back(std::move(group));
  }
  return target;
}

// "600", 600, "10m", "90s", "1h30m" -> seconds.
Result<int64_t> ParseDuration(const Checker& check, const Tree& value, std::string_view path) {
  if (value.is_number()) return check.Integer(value, path, 0, kMaxStartingTimeoutS);
  // At most 9 digits a part, so the sum cannot overflow.
  static const std::regex kDuration("(([0-9]{1,9})h)?(([0-9]{1,9})m)?(([0-9]{1,9})s?)?");
  std::smatch match;
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    if (!text.empty() && text.size() <= 32 && std::regex_match(text, match, kDuration)) {
      auto part = [&](int group) {
        return match[group].matched ? std::stoll(match[group].str()) : 0LL;
      };
      int64_t seconds = part(2) * 3600 + part(4) * 60 + part(6);
      if (seconds > kMaxStartingTimeoutS) {
        return check.Fail(
            path, fmt::format("must be at most {} seconds, got {}", kMaxStartingTimeoutS, seconds));
      }
      return seconds;
    }
  }
  return check.Fail(path, fmt::format("expected seconds or a duration such as \"10m\" or "
                                      "\"90s\", got {}",
                                      Describe(value)));
}

Status FlagsFromTree(const Checker& check, const Tree& flags, std::string_view base,
                     ComputeConfig& config) {
  const std::string kPath = ChildPath(base, "flags");
  RETURN_IF_ERROR(check.ExpectObject(flags, kPath));
  RETURN_IF_ERROR(check.CheckKnownFields(
      flags, kPath, {"cloud_resource_strategy", "cloud_resource_starting_timeout"}));
  if (const Tree* strategy = Field(flags, "cloud_resource_strategy")) {
    ASSIGN_OR_RETURN(size_t index,
                     check.OneOf(*strategy, ChildPath(kPath, "cloud_resource_strategy"), "strategy",
                                 {"input_order"}));
    (void)index;
    config.cloud_resource_strategy = "input_order";
  }
  if (const Tree* timeout = Field(flags, "cloud_resource_starting_timeout")) {
    ASSIGN_OR_RETURN(
        int64_t seconds,
        ParseDuration(check, *timeout, ChildPath(kPath, "cloud_resource_starting_timeout")));
    config.cloud_resource_starting_timeout_s = static_cast<int>(seconds);
  }
  return OkStatus();
}

Status ConfigsFromTree(const Checker& check, const Tree& configs, std::string_view base,
                       ComputeConfig& config) {
  const std::string kPath = ChildPath(base, "configs");
  if (!configs.is_array()) {
    return check.Fail(kPath, fmt::format("expected a list, got {}", Describe(configs)));
  }
  if (configs.empty()) return check.Fail(kPath, "must list at least one config");
  if (configs.size() > kMaxConfigs) {
    return check.Fail(kPath, fmt::format("more than {} configs", kMaxConfigs));
  }
  for (size_t i = 0; i < configs.size(); ++i) {
    std::string entry_path = IndexPath(kPath, i);
    RETURN_IF_ERROR(check.ExpectObject(configs[i], entry_path));
    RETURN_IF_ERROR(check.CheckKnownFields(configs[i], entry_path,
                                           {"cloud_resource", "head_node", "worker_nodes"}));
    ASSIGN_OR_RETURN(ComputeTarget target, TargetFromTree(check, configs[i], entry_path));
    config.configs.push_back(std::move(target));
  }
  return OkStatus();
}

// compute_config.regions: distinct region names, most preferred first.
Result<std::vector<std::string>> PreferredRegions(const Checker& check, const Tree& value,
                                                  std::string_view base) {
  const std::string path = ChildPath(base, "regions");
  if (value.is_array() && value.size() > kMaxPreferredRegions) {
    return check.Fail(path, fmt::format("lists more than {} regions", kMaxPreferredRegions));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> regions, check.StringList(value, path));
  std::set<std::string> seen;
  for (size_t i = 0; i < regions.size(); ++i) {
    std::string item_path = IndexPath(path, i);
    RETURN_IF_ERROR(CheckRegionName(check, item_path, regions[i]));
    if (!seen.insert(regions[i]).second) {
      return check.Fail(item_path, fmt::format("'{}' is listed twice", regions[i]));
    }
  }
  return regions;
}

// A compute config at `kPath`: "compute_config" in a job, "" for a compute config file.
Result<ComputeConfig> ComputeConfigFromTree(const Checker& check, const Tree& value,
                                            const std::string& kPath) {
  ComputeConfig config;
  if (value.is_string()) {
    config.named = value.get<std::string>();
    if (config.named.empty()) return check.Fail(kPath, "must not be empty");
    Result<ComputeConfigRef> ref = ParseComputeConfigRef(config.named);
    if (!ref.ok()) return check.Fail(kPath, std::string(ref.status().message()));
    return config;
  }
  if (!value.is_object()) {
    return check.Fail(
        kPath, fmt::format("expected a compute config name or a mapping, got {}", Describe(value)));
  }
  if (IsLegacyComputeConfig(value)) return LegacyComputeConfigError(check, value, kPath);
  RETURN_IF_ERROR(check.CheckKnownFields(
      value, kPath,
      {"cloud_resource", "head_node", "worker_nodes", "min_resources", "max_resources",
       "auto_select_worker_config", "configs", "flags", "cloud", "zones",
       "enable_cross_zone_scaling", "advanced_instance_config", "regions"}));
  ASSIGN_OR_RETURN(config.target, TargetFromTree(check, value, kPath));
  if (const Tree* configs = Field(value, "configs")) {
    for (const char* single : {"cloud_resource", "head_node", "worker_nodes"}) {
      if (Field(value, single) != nullptr) {
        return check.FailAtKey(ChildPath(kPath, single),
                               fmt::format("give either configs or {} (inside each config), not "
                                           "both",
                                           single));
      }
    }
    RETURN_IF_ERROR(ConfigsFromTree(check, *configs, kPath, config));
  }
  if (const Tree* flags = Field(value, "flags"))
    RETURN_IF_ERROR(FlagsFromTree(check, *flags, kPath, config));
  if (const Tree* minimum = Field(value, "min_resources")) {
    ASSIGN_OR_RETURN(
        config.min_resources,
        check.NumberMap(*minimum, ChildPath(kPath, "min_resources"), 0, kMaxResourceAmount));
  }
  if (const Tree* maximum = Field(value, "max_resources")) {
    ASSIGN_OR_RETURN(
        config.max_resources,
        check.NumberMap(*maximum, ChildPath(kPath, "max_resources"), 0, kMaxResourceAmount));
  }
  for (const auto& [resource, amount] : config.min_resources) {
    auto it = config.max_resources.find(resource);
    if (it != config.max_resources.end() && it->second < amount) {
      return check.Fail(ChildPath(ChildPath(kPath, "max_resources"), resource),
                        fmt::format("is below min_resources.{} ({})", resource, amount));
    }
  }
  if (const Tree* auto_select = Field(value, "auto_select_worker_config")) {
    ASSIGN_OR_RETURN(config.auto_select_worker_config,
                     check.Bool(*auto_select, ChildPath(kPath, "auto_select_worker_config")));
  }
  if (const Tree* regions = Field(value, "regions")) {
    ASSIGN_OR_RETURN(config.regions, PreferredRegions(check, *regions, kPath));
  }
  return config;
}

Result<std::vector<std::string>> BoundedStringList(const Checker& check, const Tree& value,
                                                   std::string_view path) {
  RETURN_IF_ERROR(CheckListSize(check, value, path));
  return check.StringList(value, path);
}

Result<std::map<std::string, std::string>> EnvVars(const Checker& check, const Tree& value) {
  RETURN_IF_ERROR(CheckListSize(check, value, "env_vars"));
  ASSIGN_OR_RETURN(auto vars, check.TextMap(value, "env_vars"));
  for (const auto& [name, text] : vars) {
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos) {
      return check.FailAtKey(ChildPath("env_vars", name),
                             fmt::format("'{}' is not a valid environment variable name", name));
    }
  }
  return vars;
}

Status ReadPackaging(const Checker& check, const Tree& root, JobConfig& job) {
  ASSIGN_OR_RETURN(job.working_dir, OptionalString(check, root, "", "working_dir"));
  if (const Tree* excludes = Field(root, "excludes")) {
    ASSIGN_OR_RETURN(job.excludes, BoundedStringList(check, *excludes, "excludes"));
  }
  if (const Tree* requirements = Field(root, "requirements")) {
    if (requirements->is_string()) {
      job.requirements = {"file:" + requirements->get<std::string>()};
    } else if (requirements->is_array()) {
      ASSIGN_OR_RETURN(job.requirements, BoundedStringList(check, *requirements, "requirements"));
    } else {
      return check.Fail("requirements", fmt::format("expected a list of packages or a file "
                                                    "path, got {}",
                                                    Describe(*requirements)));
    }
  }
  if (const Tree* modules = Field(root, "py_modules")) {
    ASSIGN_OR_RETURN(job.py_modules, BoundedStringList(check, *modules, "py_modules"));
  }
  return OkStatus();
}

Result<JobConfig> JobFromTree(const Tree& root, const Checker& check) {
  RETURN_IF_ERROR(check.ExpectObject(root, ""));
  RETURN_IF_ERROR(
      check.CheckKnownFields(root, "",
                             {"name", "entrypoint", "image_uri", "compute_config", "working_dir",
                              "excludes", "requirements", "env_vars", "py_modules", "cloud",
                              "project", "max_retries", "timeout_s", "tags", "priority"}));
  JobConfig job;
  ASSIGN_OR_RETURN(job.name, OptionalString(check, root, "", "name"));
  ASSIGN_OR_RETURN(const Tree* entrypoint, check.Required(root, "", "entrypoint"));
  ASSIGN_OR_RETURN(job.entrypoint, check.String(*entrypoint, "entrypoint"));
  if (job.entrypoint.empty()) return check.Fail("entrypoint", "must not be empty");
  if (job.entrypoint.size() > kMaxEntrypointChars) {
    return check.Fail("entrypoint",
                      fmt::format("is longer than {} characters", kMaxEntrypointChars));
  }
  ASSIGN_OR_RETURN(job.image_uri, OptionalString(check, root, "", "image_uri"));
  if (const Tree* compute = Field(root, "compute_config")) {
    ASSIGN_OR_RETURN(job.compute_config, ComputeConfigFromTree(check, *compute, "compute_config"));
  }
  RETURN_IF_ERROR(ReadPackaging(check, root, job));
  if (const Tree* env_vars = Field(root, "env_vars")) {
    ASSIGN_OR_RETURN(job.env_vars, EnvVars(check, *env_vars));
  }
  ASSIGN_OR_RETURN(job.cloud, OptionalString(check, root, "", "cloud"));
  ASSIGN_OR_RETURN(job.project, OptionalString(check, root, "", "project"));
  if (const Tree* retries = Field(root, "max_retries")) {
    ASSIGN_OR_RETURN(int64_t value, check.Integer(*retries, "max_retries", 0, kMaxRetries));
    job.max_retries = static_cast<int>(value);
  }
  if (const Tree* timeout = Field(root, "timeout_s")) {
    ASSIGN_OR_RETURN(job.timeout_s, check.Integer(*timeout, "timeout_s", 0, kMaxTimeoutS));
  }
  if (const Tree* priority = Field(root, "priority")) {
    ASSIGN_OR_RETURN(int64_t value, check.Integer(*priority, "priority", 0, kMaxJobPriority));
    job.priority = static_cast<int>(value);
  }
  if (const Tree* tags = Field(root, "tags")) {
    RETURN_IF_ERROR(CheckListSize(check, *tags, "tags"));
    ASSIGN_OR_RETURN(job.tags, check.TextMap(*tags, "tags"));
  }
  return job;
}

nlohmann::json TargetToJson(const ComputeTarget& target) {
  nlohmann::json out = nlohmann::json::object();
  if (!target.cloud_resource.empty()) out["cloud_resource"] = target.cloud_resource;
  if (!target.head_instance_type.empty()) {
    out["head_node"]["instance_type"] = target.head_instance_type;
  }
  if (!target.worker_nodes.empty()) {
    nlohmann::json workers = nlohmann::json::array();
    for (const WorkerNodeGroup& group : target.worker_nodes) {
      workers.push_back({{"instance_type", group.instance_type},
                         {"name", group.name},
                         {"min_nodes", group.min_nodes},
                         {"max_nodes", group.max_nodes},
                         {"market_type", kMarketTypes[static_cast<size_t>(group.market_type)]}});
    }
    out["worker_nodes"] = std::move(workers);
  }
  return out;
}

nlohmann::json ComputeConfigToJson(const ComputeConfig& config) {
  if (!config.named.empty()) return config.named;
  nlohmann::json out = TargetToJson(config.target);
  if (!config.configs.empty()) {
    nlohmann::json configs = nlohmann::json::array();
    for (const ComputeTarget& target : config.configs) configs.push_back(TargetToJson(target));
    out["configs"] = std::move(configs);
  }
  if (!config.cloud_resource_strategy.empty()) {
    out["flags"]["cloud_resource_strategy"] = config.cloud_resource_strategy;
  }
  if (config.cloud_resource_starting_timeout_s > 0) {
    out["flags"]["cloud_resource_starting_timeout"] = config.cloud_resource_starting_timeout_s;
  }
  if (!config.min_resources.empty()) out["min_resources"] = config.min_resources;
  if (!config.max_resources.empty()) out["max_resources"] = config.max_resources;
  if (config.auto_select_worker_config) out["auto_select_worker_config"] = true;
  if (!config.regions.empty()) out["regions"] = config.regions;
  return out;
}

}  // namespace

Result<JobConfig> ParseJobConfigYaml(std::string_view yaml, std::string_view source_name) {
  ASSIGN_OR_RETURN(YamlTree tree, ParseYamlTree(yaml, source_name, nullptr));
  return JobFromTree(tree.root, Checker(&tree.positions));
}

Result<JobConfig> JobConfigFromJson(const nlohmann::json& json) {
  return JobFromTree(Tree(json), Checker(nullptr));
}

namespace {

Result<ComputeConfig> RegisteredComputeConfigFromTree(const Checker& check, const Tree& root) {
  if (root.is_string()) {
    return check.Fail("", "a registered compute config must be a mapping (head_node, "
                          "worker_nodes, ...), not the name of another one");
  }
  return ComputeConfigFromTree(check, root, "");
}

}  // namespace

Result<ComputeConfig> ParseComputeConfigYaml(std::string_view yaml, std::string_view source_name) {
  ASSIGN_OR_RETURN(YamlTree tree, ParseYamlTree(yaml, source_name, nullptr));
  return RegisteredComputeConfigFromTree(Checker(&tree.positions), tree.root);
}

Result<ComputeConfig> ComputeConfigFromJson(const nlohmann::json& json) {
  return RegisteredComputeConfigFromTree(Checker(nullptr), Tree(json));
}

nlohmann::json ToJson(const ComputeConfig& config) { return ComputeConfigToJson(config); }

Result<ComputeConfigRef> ParseComputeConfigRef(std::string_view text) {
  // Names as Anyscale allows them for compute configs; the version after the last ':'.
  static const std::regex kRef("([A-Za-z0-9][A-Za-z0-9._-]{0,127})(:([0-9]{1,9}))?");
  std::match_results<std::string_view::const_iterator> match;
  if (!std::regex_match(text.begin(), text.end(), match, kRef)) {
    return absl::InvalidArgumentError(fmt::format(
        "'{}' is not a compute config name: expected NAME or NAME:VERSION, NAME of letters, "
        "digits, '.', '_' and '-' (at most 128), VERSION a positive integer",
        text));
  }
  ComputeConfigRef ref{match[1].str(), 0};
  if (match[3].matched) {
    ref.version = std::stoi(match[3].str());
    if (ref.version == 0) {
      return absl::InvalidArgumentError(
          fmt::format("'{}': versions start at 1 (leave the version out for the latest)", text));
    }
  }
  return ref;
}

nlohmann::json ToJson(const JobConfig& config) {
  nlohmann::json out = {{"entrypoint", config.entrypoint},
                        {"max_retries", config.max_retries},
                        {"priority", config.priority}};
  auto put_string = [&](const char* key, const std::string& value) {
    if (!value.empty()) out[key] = value;
  };
  put_string("name", config.name);
  put_string("image_uri", config.image_uri);
  nlohmann::json compute = ComputeConfigToJson(config.compute_config);
  if (!compute.empty()) out["compute_config"] = std::move(compute);
  put_string("working_dir", config.working_dir);
  if (!config.excludes.empty()) out["excludes"] = config.excludes;
  if (!config.requirements.empty()) out["requirements"] = config.requirements;
  if (!config.env_vars.empty()) out["env_vars"] = config.env_vars;
  if (!config.py_modules.empty()) out["py_modules"] = config.py_modules;
  put_string("cloud", config.cloud);
  put_string("project", config.project);
  if (config.timeout_s > 0) out["timeout_s"] = config.timeout_s;
  if (!config.tags.empty()) out["tags"] = config.tags;
  return out;
}

}  // namespace meridian::spec
