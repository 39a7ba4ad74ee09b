// Fuzzes the API's JSON validators: the same bytes are offered as a job config, a cloud
// resource and an instance type. Whatever one accepts must come back unchanged through
// ToJson and serialize.
#include <cstddef>
#include <cstdint>

#include "fuzz_check.h"
#include "spec/spec_json.h"
#include "spec/specs.h"

namespace {

template <typename T, typename FromJson>
void CheckOne(const nlohmann::json& json, FromJson from_json, const char* what) {
  meridian::Result<T> value = from_json(json);
  if (!value.ok()) {
    FUZZ_CHECK(value.status().code() == absl::StatusCode::kInvalidArgument, what);
    return;
  }
  const nlohmann::json again_json = meridian::spec::ToJson(*value);
  again_json.dump();  // throws (and so fails the run) on a string that is not UTF-8
  meridian::Result<T> again = from_json(again_json);
  FUZZ_CHECK(again.ok(), what);
  FUZZ_CHECK(*again == *value, what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meridian::spec;
  const nlohmann::json json = nlohmann::json::parse(data, data + size, nullptr, false);
  if (json.is_discarded()) return 0;
  CheckOne<JobConfig>(json, JobConfigFromJson, "job config from JSON");
  CheckOne<CloudResourceSpec>(json, CloudResourceFromJson, "cloud resource from JSON");
  CheckOne<InstanceType>(json, InstanceTypeFromJson, "instance type from JSON");
  return 0;
}
