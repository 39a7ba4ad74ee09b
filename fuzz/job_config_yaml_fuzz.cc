// Fuzzes the job.yaml parser: any bytes give a JobConfig or a Status, never a crash, an
// exception or a hang. An accepted config must survive the API's JSON form unchanged (the
// CLI sends exactly that), and that form must serialize (valid UTF-8).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "spec/spec_json.h"
#include "spec/specs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meridian::spec;
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  meridian::Result<JobConfig> config = ParseJobConfigYaml(yaml, "job.yaml");
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument,
               "a bad job.yaml is kInvalidArgument");
    return 0;
  }
  IgnoredJobFields(*config);
  const nlohmann::json json = ToJson(*config);
  json.dump();  // throws (and so fails the run) on a string that is not UTF-8
  meridian::Result<JobConfig> again = JobConfigFromJson(json);
  FUZZ_CHECK(again.ok(), "the JSON form of an accepted job config is accepted");
  FUZZ_CHECK(*again == *config, "a job config survives its JSON form unchanged");
  return 0;
}
