// The control plane's records: clouds, cloud resources, jobs and their attempts.
//
// These are plain values. The ControlPlane owns the live copies (under its mutex) and
// stores each record as one JSON document in the StateStore; ToJson/FromJson here are the
// stored and the API shape at once (the API adds nothing a stored record lacks).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "spec/specs.h"

namespace meridian::control {

struct Cloud {
  std::string id;
  std::string name;
  int64_t created_unix_ms = 0;
};

enum class Health { kUnknown, kHealthy, kUnhealthy };
std::string_view HealthName(Health health);

// What an operator reports about one instance type of its cloud resource.
struct InstanceCapacity {
  spec::InstanceType type;
  int total_nodes = 0;
  bool spot = false;          // market type: spot (preemptible) or on-demand
  double price_per_hour = 0;  // per node, in the operator's currency; 0: not given
};

struct CloudResource {
  std::string id;
  std::string cloud_id;
  std::string cloud_name;
  spec::CloudResourceSpec spec;
  int64_t created_unix_ms = 0;
  // Below: live state, not stored (an operator re-reports it after a server restart).
  Health health = Health::kUnknown;
  int64_t last_heartbeat_unix_ms = 0;
  std::string operator_id;  // random id of the operator process now connected
  std::string operator_version;
  std::vector<InstanceCapacity> capacity;
  int real_gpus = 0;
  int64_t unhealthy_since_unix_ms = 0;   // when it last went UNHEALTHY
  std::vector<int64_t> recent_losses_unix_ms;  // UNHEALTHY transitions within the flap window
  int64_t probation_until_unix_ms = 0;   // flapped: receives no new work before this time
};

// kLost is for attempts only: the attempt's cloud resource went silent, so the attempt was
// given up and the job placed again (an infrastructure loss, which does not use up
// max_retries). A job itself is never LOST.
enum class JobState { kStarting, kRunning, kSucceeded, kFailed, kTerminated, kUnknown, kLost };
std::string_view JobStateName(JobState state);
std::optional<JobState> ParseJobState(std::string_view name);
bool IsFinal(JobState state);

// Attempts use the same state names as jobs (an attempt is RUNNING, SUCCEEDED, ...).
struct NodeAllocation {
  std::string instance_type;
  int count = 0;
  bool spot = false;  // taken from the type's spot nodes
};

struct Attempt {
  int number = 1;  // 1, 2, ...
  JobState state = JobState::kStarting;
  std::string cloud_resource;  // name
  std::string region;
  int64_t epoch = 0;  // unique per placement; stale reports carry an old one
  std::vector<NodeAllocation> nodes;
  int64_t gpus = 0;  // what the placed gang holds (for quotas)
  double cpus = 0;
  int64_t placed_unix_ms = 0;
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;
  int exit_code = -1;
  std::string message;
  bool terminate_requested = false;
};

struct JobEvent {
  int64_t unix_ms = 0;
  std::string message;
};

struct Job {
  std::string id;
  spec::JobConfig config;
  std::string package;  // "sha256:<hex>" of the working_dir package, or ""
  std::string owner;    // subject of the submitter's access token ("" before identity)
  // "NAME:VERSION" of the named compute config whose copy is config.compute_config, or "".
  std::string compute_config_ref;
  JobState state = JobState::kStarting;
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
  int64_t ended_unix_ms = 0;
  std::string message;  // why it is in its state ("waiting for capacity: ...")
  bool terminate_requested = false;
  std::vector<Attempt> attempts;
  std::vector<JobEvent> events;  // newest last, at most kMaxJobEvents
  // While waiting: each cloud resource that could not take it and why (most relevant first).
  std::vector<std::pair<std::string, std::string>> why_pending;
  // compute_config.configs (input_order): since when each config has been tried, as
  // (config index, unix ms); the starting timeout counts from there.
  std::vector<std::pair<int, int64_t>> config_tries;
  int64_t version = 0;           // bumps on every change; long-poll waiters compare it

  Attempt* current_attempt() { return attempts.empty() ? nullptr : &attempts.back(); }
  const Attempt* current_attempt() const { return attempts.empty() ? nullptr : &attempts.back(); }
};

inline constexpr size_t kMaxJobEvents = 100;

// A limit on what jobs in one scope may hold at once: every job whose cloud, project and
// resource region match (an empty field matches everything). Absent limits do not apply.
struct Quota {
  std::string id;
  std::string cloud;
  std::string project;
  std::string region;
  std::optional<int64_t> max_gpus;
  std::optional<double> max_cpus;
  std::optional<int> max_running_jobs;
  int64_t created_unix_ms = 0;
};
nlohmann::json ToJson(const Quota& quota);
Result<Quota> QuotaFromJson(const nlohmann::json& json);

nlohmann::json ToJson(const Cloud& cloud);
nlohmann::json ToJson(const CloudResource& resource);
nlohmann::json ToJson(const Attempt& attempt);
nlohmann::json ToJson(const Job& job);

Result<Cloud> CloudFromJson(const nlohmann::json& json);
Result<CloudResource> CloudResourceFromJson(const nlohmann::json& json);
Result<Job> JobFromJson(const nlohmann::json& json);

}  // namespace meridian::control
