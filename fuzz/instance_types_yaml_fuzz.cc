// Fuzzes the Helm values (instance types) parser. Every accepted shape must survive the
// API's JSON form unchanged and serialize.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "spec/spec_json.h"
#include "spec/specs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meridian::spec;
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  meridian::Result<std::vector<InstanceType>> types = ParseInstanceTypes(yaml, "values.yaml");
  if (!types.ok()) {
    FUZZ_CHECK(types.status().code() == absl::StatusCode::kInvalidArgument,
               "a bad instance types file is kInvalidArgument");
    return 0;
  }
  FUZZ_CHECK(!types->empty(), "an accepted file defines at least one instance type");
  for (const InstanceType& type : *types) {
    const nlohmann::json json = ToJson(type);
    json.dump();  // throws (and so fails the run) on a string that is not UTF-8
    meridian::Result<InstanceType> again = InstanceTypeFromJson(json);
    FUZZ_CHECK(again.ok(), "the JSON form of an accepted instance type is accepted");
    FUZZ_CHECK(*again == type, "an instance type survives its JSON form unchanged");
  }
  return 0;
}
