#include "api/operator_protocol.h"

#include <charconv>
#include <limits>

#include "api/json_fields.h"
#include "fmt/format.h"
#include "spec/spec_json.h"

namespace meridian::api {

using internal::FieldReader;
using internal::IndexPath;
using nlohmann::json;

std::string OperatorProtocolVersion() {
  return fmt::format("{}.{}", kOperatorProtocolMajor, kOperatorProtocolMinor);
}

Status CheckOperatorProtocol(std::string_view version) {
  if (version.empty()) return OkStatus();  // an operator from before versioning: 1.0
  int major = -1;
  auto [end, error] = std::from_chars(version.data(), version.data() + version.size(), major);
  bool well_formed =
      error == std::errc() && (end == version.data() + version.size() ||
                               (*end == '.' && end + 1 != version.data() + version.size()));
  if (well_formed && major == kOperatorProtocolMajor) return OkStatus();
  return absl::InvalidArgumentError(fmt::format(
      "protocol_version: the operator speaks protocol {} and this server speaks {}; run an "
      "operator of a release that speaks protocol {}.x",
      version, OperatorProtocolVersion(), kOperatorProtocolMajor));
}

namespace {

json WorkloadIdentityJson(const WorkloadIdentity& identity) {
  return {{"client_id", identity.client_id},
          {"tenant_id", identity.tenant_id},
          {"authority", identity.authority},
          {"token_lifetime_s", identity.token_lifetime_s}};
}

std::optional<WorkloadIdentity> ReadWorkloadIdentity(FieldReader& parent, std::string_view body) {
  const json* value = parent.Object("workload_identity");
  if (value == nullptr) return std::nullopt;
  WorkloadIdentity identity;
  FieldReader reader(*value, parent.PathOf("workload_identity"), body);
  reader.String("client_id", &identity.client_id);
  reader.String("tenant_id", &identity.tenant_id);
  reader.String("authority", &identity.authority);
  reader.Int("token_lifetime_s", &identity.token_lifetime_s);
  parent.Fail(reader.Finish());
  return identity;
}

void ReadInstanceType(const json& item, const std::string& path, ReportedInstanceType& out,
                      FieldReader& parent) {
  FieldReader reader(item, path, "heartbeat");
  reader.Int("total_nodes", &out.total_nodes);
  std::string market = "ON_DEMAND";
  reader.String("market_type", &market);
  reader.Double("price_per_hour", &out.price_per_hour);
  reader.Skip("allocated_nodes");  // what a capacity listing adds; sent back by old operators
  if (reader.ok() && market != "ON_DEMAND" && market != "SPOT") {
    reader.Fail(absl::InvalidArgumentError(
        fmt::format("{}: '{}' is not ON_DEMAND or SPOT", reader.PathOf("market_type"), market)));
  }
  if (reader.ok() && (out.total_nodes < 0 || out.price_per_hour < 0)) {
    reader.Fail(absl::InvalidArgumentError(
        fmt::format("{}: total_nodes and price_per_hour must not be negative", path)));
  }
  out.spot = market == "SPOT";
  if (!reader.ok()) return parent.Fail(reader.Finish());
  // The shape itself is the user format's, validated (and unknown fields refused) by spec.
  json type = item;
  for (const char* key : {"total_nodes", "market_type", "price_per_hour", "allocated_nodes"}) {
    type.erase(key);
  }
  Result<spec::InstanceType> parsed = spec::InstanceTypeFromJson(type);
  if (!parsed.ok()) {
    return parent.Fail(
        absl::InvalidArgumentError(fmt::format("{}: {}", path, parsed.status().message())));
  }
  out.type = *std::move(parsed);
}

void ReadAttempt(const json& item, const std::string& path, ReportedAttempt& out,
                 FieldReader& parent) {
  FieldReader reader(item, path, "heartbeat");
  reader.String("job_id", &out.job_id, /*required=*/true);
  reader.Int("attempt", &out.attempt, /*required=*/true);
  reader.Int("epoch", &out.epoch, /*required=*/true);
  reader.String("state", &out.state, /*required=*/true);
  reader.Int("exit_code", &out.exit_code);
  reader.String("message", &out.message);
  reader.Int("started_unix_ms", &out.started_unix_ms);
  reader.Int("ended_unix_ms", &out.ended_unix_ms);
  parent.Fail(reader.Finish());
}

// Calls read(item, path) for each element of the array field `name`.
template <typename Read>
void ForEach(FieldReader& reader, const char* name, Read read) {
  const json* items = reader.Array(name);
  if (items == nullptr) return;
  for (size_t i = 0; i < items->size() && reader.ok(); ++i) {
    read((*items)[i], IndexPath(reader.PathOf(name), i));
  }
}

}  // namespace

std::string ToJson(const OperatorHeartbeat& body) {
  json types = json::array();
  for (const ReportedInstanceType& reported : body.instance_types) {
    json entry = spec::ToJson(reported.type);
    entry["total_nodes"] = reported.total_nodes;
    entry["market_type"] = reported.spot ? "SPOT" : "ON_DEMAND";
    if (reported.price_per_hour > 0) entry["price_per_hour"] = reported.price_per_hour;
    types.push_back(std::move(entry));
  }
  json attempts = json::array();
  for (const ReportedAttempt& attempt : body.attempts) {
    json entry = {{"job_id", attempt.job_id},       {"attempt", attempt.attempt},
                  {"epoch", attempt.epoch},         {"state", attempt.state},
                  {"exit_code", attempt.exit_code}, {"message", attempt.message}};
    if (attempt.started_unix_ms != 0) entry["started_unix_ms"] = attempt.started_unix_ms;
    if (attempt.ended_unix_ms != 0) entry["ended_unix_ms"] = attempt.ended_unix_ms;
    attempts.push_back(std::move(entry));
  }
  return internal::Dump({{"operator_id", body.operator_id},
                         {"version", body.version},
                         {"protocol_version", body.protocol_version},
                         {"instance_types", std::move(types)},
                         {"real_gpus", body.real_gpus},
                         {"attempts", std::move(attempts)}});
}

Result<OperatorHeartbeat> OperatorHeartbeatFromJson(std::string_view text) {
  ASSIGN_OR_RETURN(json value, internal::ParseObject(text, "heartbeat"));
  OperatorHeartbeat body;
  FieldReader reader(value, "", "heartbeat");
  reader.String("protocol_version", &body.protocol_version);
  if (reader.ok()) reader.Fail(CheckOperatorProtocol(body.protocol_version));
  reader.String("operator_id", &body.operator_id);
  reader.String("version", &body.version);
  reader.Int("real_gpus", &body.real_gpus);
  ForEach(reader, "instance_types", [&](const json& item, const std::string& path) {
    ReadInstanceType(item, path, body.instance_types.emplace_back(), reader);
  });
  ForEach(reader, "attempts", [&](const json& item, const std::string& path) {
    ReadAttempt(item, path, body.attempts.emplace_back(), reader);
  });
  RETURN_IF_ERROR(reader.Finish());
  return body;
}

std::string ToJson(const HeartbeatAnswer& body) {
  return internal::Dump({{"heartbeat_interval_ms", body.heartbeat_interval_ms},
                         {"heartbeat_timeout_ms", body.heartbeat_timeout_ms},
                         {"assignments_version", body.assignments_version}});
}

Result<HeartbeatAnswer> HeartbeatAnswerFromJson(std::string_view text) {
  ASSIGN_OR_RETURN(json value, internal::ParseObject(text, "heartbeat answer"));
  HeartbeatAnswer body;
  FieldReader reader(value, "", "heartbeat answer");
  reader.Int("heartbeat_interval_ms", &body.heartbeat_interval_ms);
  reader.Int("heartbeat_timeout_ms", &body.heartbeat_timeout_ms);
  reader.String("assignments_version", &body.assignments_version);
  RETURN_IF_ERROR(reader.Finish());
  return body;
}

std::string ToJson(const AssignmentList& body) {
  json assignments = json::array();
  for (const Assignment& a : body.assignments) {
    json nodes = json::array();
    for (const AssignedNodes& node : a.nodes) {
      nodes.push_back({{"instance_type", node.instance_type}, {"count", node.count}});
    }
    json entry = {{"job_id", a.job_id},   {"job_name", a.job_name},     {"attempt", a.attempt},
                  {"epoch", a.epoch},     {"entrypoint", a.entrypoint}, {"env_vars", a.env_vars},
                  {"package", a.package}, {"timeout_s", a.timeout_s},   {"nodes", std::move(nodes)},
                  {"gpus", a.gpus},       {"terminate", a.terminate}};
    if (a.workload_identity.has_value()) {
      entry["workload_identity"] = WorkloadIdentityJson(*a.workload_identity);
    }
    assignments.push_back(std::move(entry));
  }
  json result = {{"version", body.version},
                 {"cloud_resource", body.cloud_resource},
                 {"region", body.region},
                 {"object_storage", body.object_storage},
                 {"assignments", std::move(assignments)}};
  if (body.workload_identity.has_value()) {
    result["workload_identity"] = WorkloadIdentityJson(*body.workload_identity);
  }
  return internal::Dump(result);
}

Result<AssignmentList> AssignmentListFromJson(std::string_view text) {
  constexpr std::string_view kBody = "assignments";
  ASSIGN_OR_RETURN(json value, internal::ParseObject(text, kBody));
  AssignmentList body;
  FieldReader reader(value, "", kBody);
  reader.String("version", &body.version, /*required=*/true);
  reader.String("cloud_resource", &body.cloud_resource);
  reader.String("region", &body.region);
  reader.String("object_storage", &body.object_storage);
  body.workload_identity = ReadWorkloadIdentity(reader, kBody);
  ForEach(reader, "assignments", [&](const json& item, const std::string& path) {
    Assignment& a = body.assignments.emplace_back();
    FieldReader entry(item, path, kBody);
    entry.String("job_id", &a.job_id, /*required=*/true);
    entry.String("job_name", &a.job_name);
    entry.Int("attempt", &a.attempt, /*required=*/true);
    entry.Int("epoch", &a.epoch, /*required=*/true);
    entry.String("entrypoint", &a.entrypoint, /*required=*/true);
    entry.StringMap("env_vars", &a.env_vars);
    entry.String("package", &a.package);
    entry.Int("timeout_s", &a.timeout_s);
    ForEach(entry, "nodes", [&](const json& node_json, const std::string& node_path) {
      AssignedNodes& node = a.nodes.emplace_back();
      FieldReader node_reader(node_json, node_path, kBody);
      node_reader.String("instance_type", &node.instance_type);
      node_reader.Int("count", &node.count);
      entry.Fail(node_reader.Finish());
    });
    entry.Int("gpus", &a.gpus);
    entry.Bool("terminate", &a.terminate);
    a.workload_identity = ReadWorkloadIdentity(entry, kBody);
    reader.Fail(entry.Finish());
  });
  RETURN_IF_ERROR(reader.Finish());
  return body;
}

std::string ToJson(const WorkloadTokenRequest& body) {
  json result = {{"service_account", body.service_account}};
  if (body.lifetime_s.has_value()) result["lifetime_s"] = *body.lifetime_s;
  if (body.attempt.has_value()) {
    result["job_id"] = body.attempt->job_id;
    result["attempt"] = body.attempt->attempt;
    result["epoch"] = body.attempt->epoch;
  }
  return internal::Dump(result);
}

Result<WorkloadTokenRequest> WorkloadTokenRequestFromJson(std::string_view text) {
  ASSIGN_OR_RETURN(json value, internal::ParseObject(text, "token request"));
  WorkloadTokenRequest body;
  FieldReader reader(value, "", "token request");
  reader.String("service_account", &body.service_account);
  reader.OptionalInt("lifetime_s", &body.lifetime_s);
  bool any = value.contains("job_id") || value.contains("attempt") || value.contains("epoch");
  AttemptRef attempt;
  reader.String("job_id", &attempt.job_id, /*required=*/any);
  reader.Int("attempt", &attempt.attempt, /*required=*/any);
  reader.Int("epoch", &attempt.epoch, /*required=*/any);
  Status read = reader.Finish();
  if (!read.ok()) {
    if (!any) return read;
    return absl::InvalidArgumentError(fmt::format(
        "{} (job_id, attempt, epoch: a string and two integers, given together)", read.message()));
  }
  if (any) body.attempt = std::move(attempt);
  return body;
}

std::string ToJson(const WorkloadToken& body) {
  return internal::Dump({{"token", body.token},
                         {"expires_at_unix_s", body.expires_at_unix_s},
                         {"lifetime_s", body.lifetime_s}});
}

Result<WorkloadToken> WorkloadTokenFromJson(std::string_view text) {
  ASSIGN_OR_RETURN(json value, internal::ParseObject(text, "token"));
  WorkloadToken body;
  FieldReader reader(value, "", "token");
  reader.String("token", &body.token, /*required=*/true);
  reader.Int("expires_at_unix_s", &body.expires_at_unix_s);
  reader.Int("lifetime_s", &body.lifetime_s);
  RETURN_IF_ERROR(reader.Finish());
  return body;
}

std::map<std::string, std::string> ToQuery(const LogChunkRef& chunk) {
  return {{"job_id", chunk.job_id},
          {"attempt", std::to_string(chunk.attempt)},
          {"epoch", std::to_string(chunk.epoch)},
          {"offset", std::to_string(chunk.offset)}};
}

Result<LogChunkRef> LogChunkRefFromQuery(const std::map<std::string, std::string>& query) {
  auto integer = [&](const char* name, int64_t fallback) -> Result<int64_t> {
    auto it = query.find(name);
    if (it == query.end() || it->second.empty()) return fallback;
    int64_t value = 0;
    const std::string& text = it->second;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) {
      return absl::InvalidArgumentError(
          fmt::format("query parameter {}: expected an integer, got '{}'", name, text));
    }
    return value;
  };
  LogChunkRef chunk;
  auto job_id = query.find("job_id");
  if (job_id != query.end()) chunk.job_id = job_id->second;
  ASSIGN_OR_RETURN(int64_t attempt, integer("attempt", 0));
  ASSIGN_OR_RETURN(chunk.epoch, integer("epoch", 0));
  ASSIGN_OR_RETURN(chunk.offset, integer("offset", -1));
  if (attempt < std::numeric_limits<int>::min() || attempt > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError("query parameter attempt: out of range");
  }
  chunk.attempt = static_cast<int>(attempt);
  if (chunk.offset < 0) return absl::InvalidArgumentError("query parameter offset: required");
  return chunk;
}

}  // namespace meridian::api
