// The bodies an operator and the control plane exchange under /api/v1/operators/<resource>/.
//
//   POST heartbeat      OperatorHeartbeat -> HeartbeatAnswer. The first one registers the
//                       operator; it carries the protocol version, and only an incompatible
//                       one (another major version) is refused, naming both.
//   GET  assignments    ?version=&wait_ms= (a long-poll) -> AssignmentList.
//   POST tokens         WorkloadTokenRequest -> WorkloadToken (the per-attempt token route).
//   POST logs           ?job_id=&attempt=&epoch=&offset= with the output bytes as the body.
//
// These are between meridian's own processes: an unknown field is ignored (and logged once),
// so that a newer operator works with an older server and the other way round; a field of the
// wrong type is refused with its path ("attempts[2].epoch: expected an integer").
// The instance types inside a heartbeat are the user format's (spec::InstanceType), refused
// like a user's when they carry an unknown field.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "spec/specs.h"

namespace meridian::api {

// "<major>.<minor>": a minor step only adds fields, which the other side ignores.
inline constexpr int kOperatorProtocolMajor = 1;
inline constexpr int kOperatorProtocolMinor = 0;
std::string OperatorProtocolVersion();  // "1.0"
// OK when an operator speaking `version` can work with this process; an operator from before
// versioning sends none ("") and speaks 1.0.
Status CheckOperatorProtocol(std::string_view version);

struct ReportedInstanceType {
  spec::InstanceType type;
  int total_nodes = 0;
  bool spot = false;          // market_type "SPOT" rather than "ON_DEMAND"
  double price_per_hour = 0;  // per node; 0: not given

  friend bool operator==(const ReportedInstanceType&, const ReportedInstanceType&) = default;
};

struct ReportedAttempt {
  std::string job_id;
  int attempt = 0;
  int64_t epoch = 0;
  std::string state;  // STARTING, RUNNING, SUCCEEDED, FAILED, TERMINATED (checked by the server)
  int exit_code = -1;
  std::string message;
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;

  friend bool operator==(const ReportedAttempt&, const ReportedAttempt&) = default;
};

struct OperatorHeartbeat {
  std::string operator_id;
  std::string version;           // the operator's release
  std::string protocol_version;  // OperatorProtocolVersion() of the sender
  std::vector<ReportedInstanceType> instance_types;
  int real_gpus = 0;
  std::vector<ReportedAttempt> attempts;

  friend bool operator==(const OperatorHeartbeat&, const OperatorHeartbeat&) = default;
};

struct HeartbeatAnswer {
  int64_t heartbeat_interval_ms = 2'000;
  int64_t heartbeat_timeout_ms = 0;
  std::string assignments_version;

  friend bool operator==(const HeartbeatAnswer&, const HeartbeatAnswer&) = default;
};

// The identity an attempt's workload gets (agent.h, "Workload identity").
struct WorkloadIdentity {
  std::string client_id;
  std::string tenant_id;
  std::string authority;
  int64_t token_lifetime_s = 3600;

  friend bool operator==(const WorkloadIdentity&, const WorkloadIdentity&) = default;
};

struct AssignedNodes {
  std::string instance_type;
  int count = 0;

  friend bool operator==(const AssignedNodes&, const AssignedNodes&) = default;
};

struct Assignment {
  std::string job_id;
  std::string job_name;
  int attempt = 0;
  int64_t epoch = 0;
  std::string entrypoint;
  std::map<std::string, std::string> env_vars;
  std::string package;  // "sha256:<hex>" or ""
  int64_t timeout_s = 0;
  std::vector<AssignedNodes> nodes;
  int gpus = 0;
  bool terminate = false;
  std::optional<WorkloadIdentity> workload_identity;

  friend bool operator==(const Assignment&, const Assignment&) = default;
};

struct AssignmentList {
  std::string version;
  std::string cloud_resource;
  std::string region;
  std::string object_storage;  // the resource's object_storage.bucket_name ("": none)
  std::optional<WorkloadIdentity> workload_identity;
  std::vector<Assignment> assignments;

  friend bool operator==(const AssignmentList&, const AssignmentList&) = default;
};

// A token for one attempt names it: job_id, attempt and epoch come together or not at all.
struct AttemptRef {
  std::string job_id;
  int attempt = 0;
  int64_t epoch = 0;

  friend bool operator==(const AttemptRef&, const AttemptRef&) = default;
};

struct WorkloadTokenRequest {
  std::string service_account;        // "": the workload account
  std::optional<int64_t> lifetime_s;  // capped by the server
  std::optional<AttemptRef> attempt;

  friend bool operator==(const WorkloadTokenRequest&, const WorkloadTokenRequest&) = default;
};

struct WorkloadToken {
  std::string token;
  int64_t expires_at_unix_s = 0;
  int64_t lifetime_s = 0;

  friend bool operator==(const WorkloadToken&, const WorkloadToken&) = default;
};

// The query of a log chunk upload (the body is the bytes themselves).
struct LogChunkRef {
  std::string job_id;
  int attempt = 0;
  int64_t epoch = 0;
  int64_t offset = 0;

  friend bool operator==(const LogChunkRef&, const LogChunkRef&) = default;
};

std::string ToJson(const OperatorHeartbeat& body);
std::string ToJson(const HeartbeatAnswer& body);
std::string ToJson(const AssignmentList& body);
std::string ToJson(const WorkloadTokenRequest& body);
std::string ToJson(const WorkloadToken& body);

// Errors are kInvalidArgument naming the field's path; OperatorHeartbeatFromJson also refuses
// an incompatible protocol version (CheckOperatorProtocol).
Result<OperatorHeartbeat> OperatorHeartbeatFromJson(std::string_view text);
Result<HeartbeatAnswer> HeartbeatAnswerFromJson(std::string_view text);
Result<AssignmentList> AssignmentListFromJson(std::string_view text);
Result<WorkloadTokenRequest> WorkloadTokenRequestFromJson(std::string_view text);
Result<WorkloadToken> WorkloadTokenFromJson(std::string_view text);

// The query parameters of a log chunk upload, and back (offset is required, >= 0).
std::map<std::string, std::string> ToQuery(const LogChunkRef& chunk);
Result<LogChunkRef> LogChunkRefFromQuery(const std::map<std::string, std::string>& query);

}  // namespace meridian::api
