// Fuzzes the cloud_resource.yaml parser, $VAR expansion included: some variables are set
// (one to a value that itself holds '$', which must not be expanded again), others are not.
// An accepted spec must survive the API's JSON form unchanged and serialize.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "spec/spec_json.h"
#include "spec/specs.h"

namespace {

std::optional<std::string> FixedEnv(const std::string& name) {
  if (name == "REGION") return "westus2";
  if (name == "STORAGE_CONTAINER") return "data";
  if (name == "STORAGE_ACCOUNT") return "acct";
  if (name == "STORAGE_PROTOCOL") return "nfs";
  if (name == "AZURE_TENANT_ID") return "00000000-0000-0000-0000-000000000000";
  if (name == "IDENTITY_PRINCIPAL_ID") return "11111111-1111-1111-1111-111111111111";
  if (name == "NAME") return "k8s-azure";
  if (name == "EMPTY") return "";
  if (name == "DOLLAR") return "${REGION}$$";
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meridian::spec;
  static const EnvLookup env = FixedEnv;
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  meridian::Result<CloudResourceSpec> spec = ParseCloudResourceYaml(yaml, "cloud.yaml", env);
  if (!spec.ok()) {
    FUZZ_CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument,
               "a bad cloud_resource.yaml is kInvalidArgument");
    return 0;
  }
  const nlohmann::json json = ToJson(*spec);
  json.dump();  // throws (and so fails the run) on a string that is not UTF-8
  meridian::Result<CloudResourceSpec> again = CloudResourceFromJson(json);
  FUZZ_CHECK(again.ok(), "the JSON form of an accepted cloud resource is accepted");
  FUZZ_CHECK(*again == *spec, "a cloud resource survives its JSON form unchanged");
  return 0;
}
