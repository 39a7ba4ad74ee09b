// Helpers shared by the ControlPlane's .cc files (not part of its interface).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "control/model.h"
#include "fmt/format.h"

namespace meridian::control::internal {

inline constexpr std::string_view kCloudKind = "cloud";
inline constexpr std::string_view kResourceKind = "cloud_resource";
inline constexpr std::string_view kJobKind = "job";
inline constexpr std::string_view kQuotaKind = "quota";
inline constexpr std::string_view kComputeConfigKind = "compute_config";

// The state-store log stream of one attempt's output.
inline std::string LogStream(const std::string& job_id, int attempt) {
  return fmt::format("job/{}/{}", job_id, attempt);
}

// JSON text; invalid UTF-8 in user strings is replaced rather than thrown.
inline std::string Dump(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline bool IsActive(const Attempt& attempt) { return !IsFinal(attempt.state); }

// Attempts that failed for the user's reasons (exit code, timeout): what max_retries
// counts. LOST and TERMINATED attempts are not failures of the workload.
inline int UserFailures(const Job& job) {
  int failures = 0;
  for (const Attempt& attempt : job.attempts) failures += attempt.state == JobState::kFailed;
  return failures;
}

inline absl::Status JobNotFound(const std::string& id) {
  return absl::NotFoundError(fmt::format("job '{}' does not exist", id));
}

}  // namespace meridian::control::internal
