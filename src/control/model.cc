#include "control/model.h"

#include <nlohmann/json.hpp>
#include <set>

#include "base/ids.h"
#include "fmt/format.h"
#include "spec/spec_json.h"

namespace meridian::control {

using nlohmann::json;

std::string_view HealthName(Health health) {
  switch (health) {
    case Health::kHealthy:
      return "HEALTHY";
    case Health::kUnhealthy:
      return "UNHEALTHY";
    case Health::kUnknown:
      break;
  }
  return "UNKNOWN";
}

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kStarting:
      return "STARTING";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kTerminated:
      return "TERMINATED";
    case JobState::kLost:
      return "LOST";
    case JobState::kUnknown:
      break;
  }
  return "UNKNOWN";
}

std::optional<JobState> ParseJobState(std::string_view name) {
  for (JobState state : {JobState::kStarting, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kTerminated, JobState::kUnknown,
                         JobState::kLost}) {
    if (JobStateName(state) == name) return state;
  }
  return std::nullopt;
}

bool IsFinal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kTerminated || state == JobState::kLost;
}

json ToJson(const Cloud& cloud) {
  return {{"id", cloud.id},
          {"name", cloud.name},
          {"created_at", base::FormatTimeMs(cloud.created_unix_ms)},
          {"created_unix_ms", cloud.created_unix_ms}};
}

json ToJson(const CloudResource& resource) {
  json capacity = json::array();
  for (const InstanceCapacity& item : resource.capacity) {
    json entry = spec::ToJson(item.type);
    entry["total_nodes"] = item.total_nodes;
    entry["market_type"] = item.spot ? "SPOT" : "ON_DEMAND";
    if (item.price_per_hour > 0) entry["price_per_hour"] = item.price_per_hour;
    capacity.push_back(std::move(entry));
  }
  return {{"id", resource.id},
          {"name", resource.spec.name},
          {"cloud_id", resource.cloud_id},
          {"cloud", resource.cloud_name},
          {"region", resource.spec.region},
          {"provider", spec::ProviderName(resource.spec.provider)},
          {"compute_stack", spec::ComputeStackName(resource.spec.compute_stack)},
          {"spec", spec::ToJson(resource.spec)},
          {"created_at", base::FormatTimeMs(resource.created_unix_ms)},
          {"created_unix_ms", resource.created_unix_ms},
          {"health", HealthName(resource.health)},
          {"last_heartbeat_at", base::FormatTimeMs(resource.last_heartbeat_unix_ms)},
          {"operator_id", resource.operator_id},
          {"instance_types", std::move(capacity)},
          {"real_gpus", resource.real_gpus},
          {"probation_until",
           resource.probation_until_unix_ms > 0 ? base::FormatTimeMs(resource.probation_until_unix_ms)
                                                : ""}};
}

json ToJson(const Attempt& attempt) {
  json nodes = json::array();
  for (const NodeAllocation& node : attempt.nodes) {
    nodes.push_back({{"instance_type", node.instance_type},
                     {"count", node.count},
                     {"market_type", node.spot ? "SPOT" : "ON_DEMAND"}});
  }
  return {{"number", attempt.number},
          {"state", JobStateName(attempt.state)},
          {"cloud_resource", attempt.cloud_resource},
          {"region", attempt.region},
          {"epoch", attempt.epoch},
          {"nodes", std::move(nodes)},
          {"gpus", attempt.gpus},
          {"cpus", attempt.cpus},
          {"placed_at", base::FormatTimeMs(attempt.placed_unix_ms)},
          {"started_at", base::FormatTimeMs(attempt.started_unix_ms)},
          {"ended_at", base::FormatTimeMs(attempt.ended_unix_ms)},
          {"placed_unix_ms", attempt.placed_unix_ms},
          {"started_unix_ms", attempt.started_unix_ms},
          {"ended_unix_ms", attempt.ended_unix_ms},
          {"exit_code", attempt.exit_code},
          {"message", attempt.message},
          {"terminate_requested", attempt.terminate_requested}};
}

json ToJson(const Job& job) {
  json why = json::array();
  for (const auto& [resource, reason] : job.why_pending) {
    why.push_back({{"cloud_resource", resource}, {"reason", reason}});
  }
  json tries = json::array();
  for (const auto& [index, since] : job.config_tries) {
    tries.push_back({{"config_index", index}, {"since_unix_ms", since}});
  }
  json attempts = json::array();
  for (const Attempt& attempt : job.attempts) attempts.push_back(ToJson(attempt));
  json events = json::array();
  for (const JobEvent& event : job.events) {
    events.push_back({{"time", base::FormatTimeMs(event.unix_ms)},
                      {"unix_ms", event.unix_ms},
                      {"message", event.message}});
  }
  return {{"id", job.id},
          {"name", job.config.name},
          {"state", JobStateName(job.state)},
          {"message", job.message},
          {"config", spec::ToJson(job.config)},
          {"package", job.package},
          {"owner", job.owner},
          {"compute_config_ref", job.compute_config_ref},
          {"created_at", base::FormatTimeMs(job.created_unix_ms)},
          {"updated_at", base::FormatTimeMs(job.updated_unix_ms)},
          {"ended_at", base::FormatTimeMs(job.ended_unix_ms)},
          {"created_unix_ms", job.created_unix_ms},
          {"updated_unix_ms", job.updated_unix_ms},
          {"ended_unix_ms", job.ended_unix_ms},
          {"terminate_requested", job.terminate_requested},
          {"attempts", std::move(attempts)},
          {"events", std::move(events)},
          {"why_pending", std::move(why)},
          {"config_tries", std::move(tries)},
          {"version", job.version}};
}

json ToJson(const Quota& quota) {
  json out = {{"id", quota.id},
              {"cloud", quota.cloud},
              {"project", quota.project},
              {"region", quota.region},
              {"created_at", base::FormatTimeMs(quota.created_unix_ms)},
              {"created_unix_ms", quota.created_unix_ms}};
  if (quota.max_gpus) out["max_gpus"] = *quota.max_gpus;
  if (quota.max_cpus) out["max_cpus"] = *quota.max_cpus;
  if (quota.max_running_jobs) out["max_running_jobs"] = *quota.max_running_jobs;
  return out;
}

Result<Quota> QuotaFromJson(const json& in) {
  if (!in.is_object()) return absl::InvalidArgumentError("a quota must be a JSON object");
  Quota quota;
  for (const auto& [key, value] : in.items()) {
    static const std::set<std::string> kKnown = {"id", "cloud", "project", "region", "max_gpus",
                                                 "max_cpus", "max_running_jobs", "created_at",
                                                 "created_unix_ms"};
    if (!kKnown.count(key)) return absl::InvalidArgumentError(fmt::format("{}: unknown field", key));
    bool text = key == "id" || key == "cloud" || key == "project" || key == "region" ||
                key == "created_at";
    if (text && !value.is_string()) {
      return absl::InvalidArgumentError(fmt::format("{}: must be a string", key));
    }
    if (!text && !value.is_number()) {
      return absl::InvalidArgumentError(fmt::format("{}: must be a number", key));
    }
    if (!text && key != "created_unix_ms" && value.get<double>() < 0) {
      return absl::InvalidArgumentError(fmt::format("{}: must not be negative", key));
    }
  }
  quota.id = in.value("id", std::string());
  quota.cloud = in.value("cloud", std::string());
  quota.project = in.value("project", std::string());
  quota.region = in.value("region", std::string());
  if (in.contains("max_gpus")) quota.max_gpus = in["max_gpus"].get<int64_t>();
  if (in.contains("max_cpus")) quota.max_cpus = in["max_cpus"].get<double>();
  if (in.contains("max_running_jobs")) quota.max_running_jobs = in["max_running_jobs"].get<int>();
  quota.created_unix_ms = in.value("created_unix_ms", int64_t{0});
  if (!quota.max_gpus && !quota.max_cpus && !quota.max_running_jobs) {
    return absl::InvalidArgumentError(
        "a quota needs at least one limit: max_gpus, max_cpus or max_running_jobs");
  }
  return quota;
}

// Stored records were written by this program; a record that does not read back is
// corruption, reported with the record's id rather than thrown.
Result<Cloud> CloudFromJson(const json& in) {
  try {
    Cloud cloud;
    cloud.id = in.at("id").get<std::string>();
    cloud.name = in.at("name").get<std::string>();
    cloud.created_unix_ms = in.value("created_unix_ms", int64_t{0});
    return cloud;
  } catch (const json::exception& error) {
    return absl::InternalError(fmt::format("stored cloud record is unreadable: {}", error.what()));
  }
}

Result<CloudResource> CloudResourceFromJson(const json& in) {
  try {
    CloudResource resource;
    resource.id = in.at("id").get<std::string>();
    resource.cloud_id = in.at("cloud_id").get<std::string>();
    resource.cloud_name = in.value("cloud", std::string());
    resource.created_unix_ms = in.value("created_unix_ms", int64_t{0});
    ASSIGN_OR_RETURN(resource.spec, spec::CloudResourceFromJson(in.at("spec")));
    return resource;
  } catch (const json::exception& error) {
    return absl::InternalError(
        fmt::format("stored cloud resource record is unreadable: {}", error.what()));
  }
}

namespace {

Attempt AttemptFromJson(const json& in) {
  Attempt attempt;
  attempt.number = in.at("number").get<int>();
  attempt.state = ParseJobState(in.at("state").get<std::string>()).value_or(JobState::kUnknown);
  attempt.cloud_resource = in.value("cloud_resource", std::string());
  attempt.region = in.value("region", std::string());
  attempt.epoch = in.value("epoch", int64_t{0});
  for (const json& node : in.value("nodes", json::array())) {
    attempt.nodes.push_back({node.at("instance_type").get<std::string>(),
                             node.at("count").get<int>(),
                             node.value("market_type", std::string()) == "SPOT"});
  }
  attempt.gpus = in.value("gpus", int64_t{0});
  attempt.cpus = in.value("cpus", 0.0);
  attempt.placed_unix_ms = in.value("placed_unix_ms", int64_t{0});
  attempt.started_unix_ms = in.value("started_unix_ms", int64_t{0});
  attempt.ended_unix_ms = in.value("ended_unix_ms", int64_t{0});
  attempt.exit_code = in.value("exit_code", -1);
  attempt.message = in.value("message", std::string());
  attempt.terminate_requested = in.value("terminate_requested", false);
  return attempt;
}

}  // namespace

Result<Job> JobFromJson(const json& in) {
  try {
    Job job;
    job.id = in.at("id").get<std::string>();
    ASSIGN_OR_RETURN(job.config, spec::JobConfigFromJson(in.at("config")));
    job.package = in.value("package", std::string());
    job.owner = in.value("owner", std::string());
    job.compute_config_ref = in.value("compute_config_ref", std::string());
    job.state = ParseJobState(in.at("state").get<std::string>()).value_or(JobState::kUnknown);
    job.message = in.value("message", std::string());
    job.created_unix_ms = in.value("created_unix_ms", int64_t{0});
    job.updated_unix_ms = in.value("updated_unix_ms", int64_t{0});
    job.ended_unix_ms = in.value("ended_unix_ms", int64_t{0});
    job.terminate_requested = in.value("terminate_requested", false);
    for (const json& attempt : in.value("attempts", json::array())) {
      job.attempts.push_back(AttemptFromJson(attempt));
    }
    for (const json& item : in.value("why_pending", json::array())) {
      job.why_pending.emplace_back(item.at("cloud_resource").get<std::string>(),
                                   item.at("reason").get<std::string>());
    }
    for (const json& item : in.value("config_tries", json::array())) {
      job.config_tries.emplace_back(item.at("config_index").get<int>(),
                                    item.at("since_unix_ms").get<int64_t>());
    }
    for (const json& event : in.value("events", json::array())) {
      job.events.push_back(
          {event.value("unix_ms", int64_t{0}), event.value("message", std::string())});
    }
    job.version = in.value("version", int64_t{0});
    return job;
  } catch (const json::exception& error) {
    return absl::InternalError(fmt::format("stored job record is unreadable: {}", error.what()));
  }
}

}  // namespace meridian::control
