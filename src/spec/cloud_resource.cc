// Anyscale cloud_resource.yaml: one cluster in one region.
#include <regex>

#include "fmt/format.h"
#include "spec/spec_json.h"
#include "spec/specs.h"
#include "spec/tree.h"

namespace meridian::spec {
namespace {

constexpr size_t kMaxNameChars = 256;
// Values such as bucket URLs, tenant ids and identity ids are short; this bounds what is stored.
constexpr size_t kMaxValueChars = 2048;

const std::vector<std::string> kProviders = {"AZURE", "AWS", "GCP", "GENERIC", "LOCAL"};
const std::vector<std::string> kComputeStacks = {"K8S", "VM", "LOCAL"};

Result<std::string> BoundedString(const Checker& check, const Tree& object, std::string_view path,
                                  std::string_view key) {
  const Tree* value = Field(object, key);
  if (value == nullptr) return std::string();
  std::string field_path = ChildPath(path, key);
  ASSIGN_OR_RETURN(std::string text, check.String(*value, field_path));
  if (text.size() > kMaxValueChars) {
    return check.Fail(field_path, fmt::format("is longer than {} characters", kMaxValueChars));
  }
  return text;
}

Status CheckName(const Checker& check, const std::string& name) {
  static const std::regex kPattern("[a-zA-Z0-9_-]+");
  if (name.empty()) return check.Fail("name", "must not be empty");
  if (name.size() > kMaxNameChars) {
    return check.Fail(
        "name", fmt::format("is {} characters long; the limit is {}", name.size(), kMaxNameChars));
  }
  if (!std::regex_match(name, kPattern)) {
    return check.Fail("name",
                      fmt::format("'{}' may contain only letters, digits, '_' and '-'", name));
  }
  return OkStatus();
}

Status ReadNested(const Checker& check, const Tree& root, CloudResourceSpec& spec) {
  if (const Tree* storage = Field(root, "object_storage")) {
    RETURN_IF_ERROR(check.ExpectObject(*storage, "object_storage"));
    RETURN_IF_ERROR(
        check.CheckKnownFields(*storage, "object_storage", {"bucket_name", "region", "endpoint"}));
    ASSIGN_OR_RETURN(spec.object_storage_bucket,
                     BoundedString(check, *storage, "object_storage", "bucket_name"));
    RETURN_IF_ERROR(BoundedString(check, *storage, "object_storage", "region").status());
    RETURN_IF_ERROR(BoundedString(check, *storage, "object_storage", "endpoint").status());
  }
  if (const Tree* files = Field(root, "file_storage")) {
    RETURN_IF_ERROR(check.ExpectObject(*files, "file_storage"));
    RETURN_IF_ERROR(
        check.CheckKnownFields(*files, "file_storage", {"persistent_volume_claim", "mount_path"}));
    ASSIGN_OR_RETURN(spec.file_storage_pvc,
                     BoundedString(check, *files, "file_storage", "persistent_volume_claim"));
    RETURN_IF_ERROR(BoundedString(check, *files, "file_storage", "mount_path").status());
  }
  if (const Tree* azure = Field(root, "azure_config")) {
    RETURN_IF_ERROR(check.ExpectObject(*azure, "azure_config"));
    RETURN_IF_ERROR(check.CheckKnownFields(*azure, "azure_config", {"tenant_id"}));
    ASSIGN_OR_RETURN(spec.azure_tenant_id,
                     BoundedString(check, *azure, "azure_config", "tenant_id"));
  }
  if (const Tree* kubernetes = Field(root, "kubernetes_config")) {
    constexpr std::string_view kPath = "kubernetes_config";
    RETURN_IF_ERROR(check.ExpectObject(*kubernetes, kPath));
    RETURN_IF_ERROR(check.CheckKnownFields(
        *kubernetes, kPath,
        {"anyscale_operator_iam_identity", "anyscale_operator_iam_id", "namespace"}));
    ASSIGN_OR_RETURN(std::string identity,
                     BoundedString(check, *kubernetes, kPath, "anyscale_operator_iam_identity"));
    ASSIGN_OR_RETURN(std::string older,
                     BoundedString(check, *kubernetes, kPath, "anyscale_operator_iam_id"));
    if (!identity.empty() && !older.empty()) {
      return check.FailAtKey(ChildPath(kPath, "anyscale_operator_iam_id"),
                             "give either anyscale_operator_iam_identity or the older "
                             "anyscale_operator_iam_id, not both");
    }
    spec.operator_identity = identity.empty() ? older : identity;
    RETURN_IF_ERROR(BoundedString(check, *kubernetes, kPath, "namespace").status());
  }
  return OkStatus();
}

Result<CloudResourceSpec> CloudResourceFromTree(const Tree& root, const Checker& check) {
  RETURN_IF_ERROR(check.ExpectObject(root, ""));
  RETURN_IF_ERROR(check.CheckKnownFields(
      root, "",
      {"name", "provider", "compute_stack", "region", "object_storage", "file_storage",
       "azure_config", "kubernetes_config", "networking_mode"}));
  CloudResourceSpec spec;
  ASSIGN_OR_RETURN(const Tree* name, check.Required(root, "", "name"));
  ASSIGN_OR_RETURN(spec.name, check.String(*name, "name"));
  RETURN_IF_ERROR(CheckName(check, spec.name));

  ASSIGN_OR_RETURN(const Tree* provider, check.Required(root, "", "provider"));
  ASSIGN_OR_RETURN(size_t provider_index,
                   check.OneOf(*provider, "provider", "provider", kProviders));
  spec.provider = static_cast<Provider>(provider_index);

  ASSIGN_OR_RETURN(const Tree* stack, check.Required(root, "", "compute_stack"));
  ASSIGN_OR_RETURN(size_t stack_index,
                   check.OneOf(*stack, "compute_stack", "compute stack", kComputeStacks));
  spec.compute_stack = static_cast<ComputeStack>(stack_index);

  ASSIGN_OR_RETURN(const Tree* region, check.Required(root, "", "region"));
  ASSIGN_OR_RETURN(spec.region, check.String(*region, "region"));
  RETURN_IF_ERROR(CheckRegionName(check, "region", spec.region));

  RETURN_IF_ERROR(BoundedString(check, root, "", "networking_mode").status());
  RETURN_IF_ERROR(ReadNested(check, root, spec));
  return spec;
}

}  // namespace

Result<CloudResourceSpec> ParseCloudResourceYaml(std::string_view yaml,
                                                 std::string_view source_name,
                                                 const EnvLookup& env) {
  ASSIGN_OR_RETURN(YamlTree tree, ParseYamlTree(yaml, source_name, &env));
  return CloudResourceFromTree(tree.root, Checker(&tree.positions));
}

Result<CloudResourceSpec> CloudResourceFromJson(const nlohmann::json& json) {
  return CloudResourceFromTree(Tree(json), Checker(nullptr));
}

nlohmann::json ToJson(const CloudResourceSpec& spec) {
  nlohmann::json out = {
      {"name", spec.name},
      {"provider", std::string(ProviderName(spec.provider))},
      {"compute_stack", std::string(ComputeStackName(spec.compute_stack))},
      {"region", spec.region},
  };
  if (!spec.object_storage_bucket.empty()) {
    out["object_storage"]["bucket_name"] = spec.object_storage_bucket;
  }
  if (!spec.file_storage_pvc.empty()) {
    out["file_storage"]["persistent_volume_claim"] = spec.file_storage_pvc;
  }
  if (!spec.azure_tenant_id.empty()) out["azure_config"]["tenant_id"] = spec.azure_tenant_id;
  if (!spec.operator_identity.empty()) {
    out["kubernetes_config"]["anyscale_operator_iam_identity"] = spec.operator_identity;
  }
  return out;
}

}  // namespace meridian::spec
