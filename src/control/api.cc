#include "control/api.h"

#include <charconv>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "api/errors.h"
#include "api/operator_protocol.h"
#include "base/files.h"
#include "base/hash.h"
#include "base/ids.h"
#include "control/api_internal.h"
#include "control/identity_plane.h"
#include "control/worker_pool.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "spec/spec_json.h"

namespace meridian::control {

using nlohmann::json;

namespace {

bool IsPackageDigest(const std::string& digest) {
  if (digest.size() != 7 + 64 || digest.rfind("sha256:", 0) != 0) return false;
  return digest.find_first_not_of("0123456789abcdef", 7) == std::string::npos;
}

// The control plane's report from the operator's heartbeat body (api/operator_protocol.h).
Result<OperatorReport> ToOperatorReport(api::OperatorHeartbeat body) {
  OperatorReport report;
  report.operator_id = std::move(body.operator_id);
  report.version = std::move(body.version);
  report.real_gpus = body.real_gpus;
  for (api::ReportedInstanceType& reported : body.instance_types) {
    report.capacity.push_back(InstanceCapacity{std::move(reported.type), reported.total_nodes,
                                               reported.spot, reported.price_per_hour});
  }
  for (size_t i = 0; i < body.attempts.size(); ++i) {
    api::ReportedAttempt& reported = body.attempts[i];
    std::optional<JobState> state = ParseJobState(reported.state);
    if (!state.has_value()) {
      return absl::InvalidArgumentError(fmt::format("attempts[{}].state: unknown state", i));
    }
    report.attempts.push_back(AttemptReport{
        std::move(reported.job_id), reported.attempt, reported.epoch, *state, reported.exit_code,
        std::move(reported.message), reported.started_unix_ms, reported.ended_unix_ms});
  }
  return report;
}

}  // namespace

net::HttpResponse JsonResponse(int status, const json& body) {
  net::HttpResponse response;
  response.status = status;
  response.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return response;
}

net::HttpResponse ErrorResponse(const Status& status) {
  return JsonTextResponse(HttpStatusFor(status), api::ErrorJson(status));
}

net::HttpResponse JsonTextResponse(int status, std::string body) {
  net::HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

// Answers with `ok_status` and the JSON value, or with the error.
ControlPlane::JsonDone Reply(net::Responder respond, int ok_status) {
  auto shared = std::make_shared<net::Responder>(std::move(respond));
  return [shared, ok_status](Result<json> result) {
    (*shared)(result.ok() ? JsonResponse(ok_status, *result) : ErrorResponse(result.status()));
  };
}

Result<json> ParseBody(const net::HttpRequest& request) {
  json body = json::parse(request.body, nullptr, false);
  if (body.is_discarded()) {
    return absl::InvalidArgumentError("request body is not valid JSON");
  }
  if (!body.is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  return body;
}

Result<int64_t> QueryInt(const net::HttpRequest& request, const std::string& name,
                         int64_t fallback) {
  auto it = request.query.find(name);
  if (it == request.query.end() || it->second.empty()) return fallback;
  int64_t value = 0;
  auto [end, error] =
      std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
  if (error != std::errc() || end != it->second.data() + it->second.size()) {
    return absl::InvalidArgumentError(
        fmt::format("query parameter {}: expected an integer, got '{}'", name, it->second));
  }
  return value;
}

std::string QueryString(const net::HttpRequest& request, const std::string& name) {
  auto it = request.query.find(name);
  return it == request.query.end() ? std::string() : it->second;
}

int HttpStatusFor(const Status& status) { return api::HttpStatusFor(status); }

ApiHandler::ApiHandler(ControlPlane* plane, Authenticator* auth, ApiOptions options,
                       IdentityPlane* identity)
    : plane_(plane), auth_(auth), options_(std::move(options)), identity_(identity) {
  if (identity_ != nullptr) {
    blocking_ = std::make_unique<WorkerPool>(options_.blocking_threads, options_.max_blocking_queue);
  }
}

ApiHandler::~ApiHandler() = default;

int64_t ApiHandler::BodyLimit(std::string_view method, std::string_view path) const {
  if (method == "PUT" && path.rfind("/api/v1/packages/", 0) == 0) return options_.max_package_bytes;
  if (path.rfind("/api/v1/operators/", 0) == 0) return options_.max_log_chunk_bytes + 4096;
  return options_.max_request_bytes;
}

void ApiHandler::Call::BadMethod(const std::string& allowed) {
  net::HttpResponse response = ErrorResponse(absl::InvalidArgumentError(fmt::format(
      "{} is not allowed on {} (allowed: {})", request.method, request.path, allowed)));
  response.status = 405;
  response.headers.push_back({"allow", allowed});
  respond(std::move(response));
}

void ApiHandler::Handle(net::HttpRequest request, net::Responder respond) {
  if (request.path == "/healthz" || request.path == "/readyz") {
    respond(JsonResponse(200, {{"status", "ok"}}));
    return;
  }
  if (HandlePublic(request, respond)) return;
  const bool metrics = request.path == "/metrics";
  if (!metrics && request.path.rfind("/api/v1/", 0) != 0) {
    respond(ErrorResponse(absl::NotFoundError(fmt::format("no such path: {}", request.path))));
    return;
  }
  std::vector<std::string> parts;
  if (!metrics) parts = absl::StrSplit(request.path.substr(8), '/', absl::SkipEmpty());
  std::string correlation_id = request.Header("x-request-id");
  if (correlation_id.empty() || correlation_id.size() > 128) correlation_id = base::NewId("req");
  Call call{std::move(request), std::move(respond), std::move(parts), {}, correlation_id};
  Result<Principal> principal = auth_->Authenticate(call.request);
  if (principal.ok()) call.principal = *std::move(principal);
  AuditCall(call);  // after authentication: the actor is known (or "anonymous")
  if (!principal.ok()) return call.Fail(principal.status());
  if (metrics) {
    if (!AllowedSomewhere(call, identity::Action::kReadCloud)) return;
    net::HttpResponse response;
    response.content_type = "text/plain; version=0.0.4";
    response.body = plane_->MetricsText();
    return call.respond(std::move(response));
  }
  const std::string first = call.parts.empty() ? "" : call.parts[0];
  if (first == "clouds") return HandleClouds(call);
  if (first == "resources") return HandleResources(call);
  if (first == "jobs") return HandleJobs(call);
  if (first == "packages") return HandlePackages(call);
  if (first == "quotas") return HandleQuotas(call);
  if (first == "compute-configs") return HandleComputeConfigs(call);
  if (call.Is({"capacity"})) {
    if (call.method() != "GET") return call.BadMethod("GET");
    if (!AllowedSomewhere(call, identity::Action::kReadCloud)) return;
    return call.respond(JsonResponse(200, plane_->Capacity()));
  }
  if (first == "operators") return HandleOperators(call);
  if (first == "identity") return HandleIdentity(call);
  if (first == "audit") return HandleAudit(call);
  call.Fail(absl::NotFoundError(
      fmt::format("no such API path: {} {}", call.method(), call.request.path)));
}

void ApiHandler::NotFound(Call& call) {
  call.Fail(absl::NotFoundError(
      fmt::format("no such API path: {} {}", call.method(), call.request.path)));
}

void ApiHandler::HandleClouds(Call& call) {
  using identity::Action;
  const std::string& method = call.method();
  if (call.Is({"clouds"})) {
    if (method == "GET") {
      if (!AllowedSomewhere(call, Action::kReadCloud)) return;
      json listing = plane_->ListClouds();
      json visible = json::array();
      for (json& item : listing["items"]) {
        if (Can(call.principal, Action::kReadCloud, {item.value("name", ""), "", ""})) {
          visible.push_back(std::move(item));
        }
      }
      listing["items"] = std::move(visible);
      return call.respond(JsonResponse(200, listing));
    }
    if (method != "POST") return call.BadMethod("GET, POST");
    if (!Allowed(call, Action::kManageCloud, {})) return;
    Result<json> body = ParseBody(call.request);
    if (!body.ok()) return call.Fail(body.status());
    if (!body->contains("name") || !(*body)["name"].is_string()) {
      return call.Fail(absl::InvalidArgumentError("name: required, a string"));
    }
    return plane_->CreateCloud((*body)["name"].get<std::string>(),
                               Reply(std::move(call.respond), 201));
  }
  if (call.Is({"clouds", "*"}) || call.Is({"clouds", "*", "resources"})) {
    Result<json> cloud = plane_->GetCloud(call.parts[1]);
    if (!cloud.ok()) return call.Fail(cloud.status());
    identity::Target target{cloud->value("name", ""), "", ""};
    bool reading = method == "GET";
    if (!Allowed(call, reading ? Action::kReadCloud : Action::kManageCloud, target)) return;
    if (call.parts.size() == 2) {
      if (method == "GET") return Reply(std::move(call.respond))(*std::move(cloud));
      if (method == "DELETE") {
        return plane_->DeleteCloud(call.parts[1], Reply(std::move(call.respond)));
      }
      return call.BadMethod("GET, DELETE");
    }
    if (method == "GET") {
      return Reply(std::move(call.respond))(plane_->ListResources(call.parts[1]));
    }
    if (method != "POST") return call.BadMethod("GET, POST");
    Result<json> body = ParseBody(call.request);
    if (!body.ok()) return call.Fail(body.status());
    Result<spec::CloudResourceSpec> spec = spec::CloudResourceFromJson(*body);
    if (!spec.ok()) return call.Fail(spec.status());
    auto respond = std::make_shared<net::Responder>(std::move(call.respond));
    return plane_->CreateResource(
        call.parts[1], *std::move(spec), [this, respond](Result<json> created) {
          OnResourceCreated(std::move(created), std::move(*respond));
        });
  }
  NotFound(call);
}

void ApiHandler::HandleQuotas(Call& call) {
  if (call.Is({"quotas"})) {
    if (call.method() == "GET") {
      if (!AllowedSomewhere(call, identity::Action::kReadCloud)) return;
      return call.respond(JsonResponse(200, plane_->ListQuotas()));
    }
    if (call.method() != "POST") return call.BadMethod("GET, POST");
    Result<json> body = ParseBody(call.request);
    if (!body.ok()) return call.Fail(body.status());
    for (const char* key : {"id", "created_at", "created_unix_ms"}) body->erase(key);
    Result<Quota> quota = QuotaFromJson(*body);
    if (!quota.ok()) return call.Fail(quota.status());
    if (!Allowed(call, identity::Action::kManageCloud, {quota->cloud, "", ""})) return;
    return plane_->CreateQuota(*std::move(quota), Reply(std::move(call.respond), 201));
  }
  if (call.Is({"quotas", "*"})) {
    if (call.method() != "DELETE") return call.BadMethod("DELETE");
    std::string cloud;
    json quotas = plane_->ListQuotas();
    for (const json& item : quotas.value("items", json::array())) {
      if (item.value("id", "") == call.parts[1]) cloud = item.value("cloud", "");
    }
    if (!Allowed(call, identity::Action::kManageCloud, {cloud, "", ""})) return;
    return plane_->DeleteQuota(call.parts[1], Reply(std::move(call.respond)));
  }
  NotFound(call);
}

void ApiHandler::HandleResources(Call& call) {
  using identity::Action;
  const std::string& method = call.method();
  if (call.Is({"resources"})) {
    if (method != "GET") return call.BadMethod("GET");
    if (!AllowedSomewhere(call, Action::kReadCloud)) return;
    Result<json> listing = plane_->ListResources(QueryString(call.request, "cloud"));
    if (listing.ok()) {
      json visible = json::array();
      for (json& item : (*listing)["items"]) {
        identity::Target target{item.value("cloud", ""), item.value("name", ""), ""};
        if (Can(call.principal, Action::kReadCloud, target)) visible.push_back(std::move(item));
      }
      (*listing)["items"] = std::move(visible);
    }
    return Reply(std::move(call.respond))(std::move(listing));
  }
  if (call.Is({"resources", "*"})) {
    Result<json> resource = plane_->GetResource(call.parts[1]);
    if (!resource.ok()) return call.Fail(resource.status());
    const std::string name = resource->value("name", "");
    identity::Target target{resource->value("cloud", ""), name, ""};
    if (method == "GET") {
      if (!Allowed(call, Action::kReadCloud, target)) return;
      return Reply(std::move(call.respond))(*std::move(resource));
    }
    if (method == "DELETE") {
      if (!Allowed(call, Action::kManageCloud, target)) return;
      auto respond = std::make_shared<net::Responder>(std::move(call.respond));
      return plane_->DeleteResource(call.parts[1], [this, respond, name](Result<json> deleted) {
        OnResourceDeleted(name, std::move(deleted), std::move(*respond));
      });
    }
    return call.BadMethod("GET, DELETE");
  }
  NotFound(call);
}

void ApiHandler::HandleJobs(Call& call) {
  using identity::Action;
  const std::string& method = call.method();
  if (call.Is({"jobs"})) {
    if (method == "GET") {
      if (!AllowedSomewhere(call, Action::kReadJob)) return;
      return ListJobs(call);
    }
    if (method != "POST") return call.BadMethod("GET, POST");
    if (!AllowedSomewhere(call, Action::kSubmitJob)) return;
    return SubmitJob(call);
  }
  if (call.parts.size() < 2 || call.parts.size() > 3) return NotFound(call);
  Result<json> job = plane_->GetJob(call.parts[1]);
  if (!job.ok()) return call.Fail(job.status());
  if (call.Is({"jobs", "*"})) {
    if (method != "GET") return call.BadMethod("GET");
    if (!Allowed(call, Action::kReadJob, JobTarget(*job))) return;
    Result<int64_t> seen = QueryInt(call.request, "wait_version", -1);
    Result<int64_t> wait_ms = QueryInt(call.request, "wait_ms", 0);
    if (!seen.ok()) return call.Fail(seen.status());
    if (!wait_ms.ok()) return call.Fail(wait_ms.status());
    return plane_->WaitJob(call.parts[1], *seen, *seen < 0 ? 0 : *wait_ms,
                           Reply(std::move(call.respond)));
  }
  if (call.Is({"jobs", "*", "terminate"})) {
    if (method != "POST") return call.BadMethod("POST");
    if (!Allowed(call, Action::kTerminateJob, JobTarget(*job))) return;
    return plane_->TerminateJob(call.parts[1], Reply(std::move(call.respond)));
  }
  if (call.Is({"jobs", "*", "logs"})) {
    if (method != "GET") return call.BadMethod("GET");
    if (!Allowed(call, Action::kReadJobOutput, JobTarget(*job))) return;
    return ReadJobLog(call);
  }
  NotFound(call);
}

void ApiHandler::ListJobs(Call& call) {
  JobFilter filter;
  std::string state = QueryString(call.request, "state");
  if (!state.empty()) {
    filter.state = ParseJobState(state);
    if (!filter.state.has_value()) {
      return call.Fail(absl::InvalidArgumentError(fmt::format(
          "query parameter state: '{}' is not one of STARTING, RUNNING, SUCCEEDED, FAILED, "
          "TERMINATED, UNKNOWN",
          state)));
    }
  }
  filter.cloud_resource = QueryString(call.request, "cloud_resource");
  Result<int64_t> limit = QueryInt(call.request, "limit", 100);
  if (!limit.ok()) return call.Fail(limit.status());
  if (*limit < 1 || *limit > 10'000) {
    return call.Fail(absl::InvalidArgumentError("query parameter limit: must be 1 to 10000"));
  }
  filter.limit = static_cast<size_t>(*limit);
  json listing = plane_->ListJobs(filter);
  json visible = json::array();
  for (json& item : listing["items"]) {
    if (Can(call.principal, identity::Action::kReadJob, JobTarget(item))) {
      visible.push_back(std::move(item));
    }
  }
  listing["items"] = std::move(visible);
  call.respond(JsonResponse(200, listing));
}

void ApiHandler::SubmitJob(Call& call) {
  Result<json> body = ParseBody(call.request);
  if (!body.ok()) return call.Fail(body.status());
  if (!body->contains("config")) return call.Fail(absl::InvalidArgumentError("config: required"));
  Result<spec::JobConfig> config = spec::JobConfigFromJson((*body)["config"]);
  if (!config.ok()) {
    return call.Fail(
        absl::InvalidArgumentError(fmt::format("config.{}", config.status().message())));
  }
  const json& package_field = body->contains("package") ? (*body)["package"] : json();
  if (!package_field.is_null() && !package_field.is_string()) {
    return call.Fail(absl::InvalidArgumentError("package: expected a string"));
  }
  std::string package = package_field.is_string() ? package_field.get<std::string>() : "";
  if (!package.empty()) {
    if (!IsPackageDigest(package)) {
      return call.Fail(absl::InvalidArgumentError("package: expected sha256:<64 hex digits>"));
    }
    if (!base::PathExists(PackagePath(package))) {
      return call.Fail(
          absl::FailedPreconditionError(fmt::format("package: {} has not been uploaded", package)));
    }
  }
  SubmitAudit audit;
  if (identity_ != nullptr && call.submit_audit.has_value()) {
    audit = {&identity_->audit(), *std::move(call.submit_audit)};
  }
  plane_->SubmitJob(*std::move(config), std::move(package), call.principal.subject,
                    Reply(std::move(call.respond), 201), std::move(audit));
}

void ApiHandler::ReadJobLog(Call& call) {
  Result<int64_t> attempt = QueryInt(call.request, "attempt", 0);
  Result<int64_t> offset = QueryInt(call.request, "offset", 0);
  Result<int64_t> max_bytes = QueryInt(call.request, "max_bytes", 1 << 20);
  Result<int64_t> wait_ms = QueryInt(call.request, "wait_ms", 0);
  for (const auto* value : {&attempt, &offset, &max_bytes, &wait_ms}) {
    if (!value->ok()) return call.Fail(value->status());
  }
  if (*offset < 0) {
    return call.Fail(absl::InvalidArgumentError("query parameter offset: must be >= 0"));
  }
  auto shared = std::make_shared<net::Responder>(std::move(call.respond));
  plane_->ReadLog(call.parts[1], static_cast<int>(*attempt), *offset, *max_bytes, *wait_ms,
                  [shared](Result<ControlPlane::LogResult> result) {
                    if (!result.ok()) return (*shared)(ErrorResponse(result.status()));
                    net::HttpResponse response;
                    response.content_type = "application/octet-stream";
                    response.headers = {
                        {"x-meridian-attempt", std::to_string(result->attempt)},
                        {"x-meridian-start-offset", std::to_string(result->read.start_offset)},
                        {"x-meridian-next-offset", std::to_string(result->read.next_offset)},
                        {"x-meridian-complete", result->complete ? "true" : "false"}};
                    response.body = std::move(result->read.data);
                    (*shared)(std::move(response));
                  });
}

std::string ApiHandler::PackagePath(const std::string& digest) const {
  return fmt::format("{}/{}.tar.gz", options_.package_dir, digest.substr(7));
}

void ApiHandler::HandlePackages(Call& call) {
  if (!call.Is({"packages", "*"})) return NotFound(call);
  const std::string& digest = call.parts[1];
  if (!IsPackageDigest(digest)) {
    return call.Fail(absl::InvalidArgumentError(
        fmt::format("package '{}': expected sha256:<64 hex digits>", digest)));
  }
  std::string path = PackagePath(digest);
  if (call.method() == "PUT") {
    if (!AllowedSomewhere(call, identity::Action::kSubmitJob)) return;
    if ("sha256:" + base::Sha256Hex(call.request.body) != digest) {
      return call.Fail(
          absl::InvalidArgumentError(fmt::format("package body does not hash to {}", digest)));
    }
    if (!base::PathExists(path)) {
      Status written = base::WriteFileAtomic(path, call.request.body, 0644);
      if (!written.ok()) return call.Fail(written);
    }
    return call.respond(
        JsonResponse(201, {{"package", digest}, {"size", call.request.body.size()}}));
  }
  if (call.method() != "GET") return call.BadMethod("GET, PUT");
  if (!CanSomewhere(call.principal, identity::Action::kOperatorConnect) &&
      !AllowedSomewhere(call, identity::Action::kReadJob)) {
    return;
  }
  if (QueryString(call.request, "stat") == "1") {
    return call.respond(
        JsonResponse(200, {{"package", digest}, {"exists", base::PathExists(path)}}));
  }
  Result<std::string> data = base::ReadFile(path, options_.max_package_bytes);
  if (!data.ok()) {
    return call.Fail(data.status().code() == absl::StatusCode::kNotFound
                         ? absl::NotFoundError(fmt::format("package {} does not exist", digest))
                         : data.status());
  }
  net::HttpResponse response;
  response.content_type = "application/gzip";
  response.body = *std::move(data);
  call.respond(std::move(response));
}

void ApiHandler::HandleOperators(Call& call) {
  if (call.parts.size() != 3) return NotFound(call);
  const std::string& resource = call.parts[1];
  const std::string& what = call.parts[2];
  const std::string& method = call.method();
  if (!Allowed(call, identity::Action::kOperatorConnect,
               {CloudOfResource(resource), resource, ""})) {
    return;
  }
  if (what == "tokens") {
    if (method != "POST") return call.BadMethod("POST");
    return MintOperatorToken(call, resource);
  }
  if (what == "heartbeat") {
    if (method != "POST") return call.BadMethod("POST");
    Result<api::OperatorHeartbeat> body = api::OperatorHeartbeatFromJson(call.request.body);
    if (!body.ok()) return call.Fail(body.status());
    Result<OperatorReport> report = ToOperatorReport(*std::move(body));
    if (!report.ok()) return call.Fail(report.status());
    auto respond = std::make_shared<net::Responder>(std::move(call.respond));
    return plane_->OperatorHeartbeat(
        resource, *std::move(report), [respond](Result<api::HeartbeatAnswer> answer) {
          (*respond)(answer.ok() ? JsonTextResponse(200, api::ToJson(*answer))
                                 : ErrorResponse(answer.status()));
        });
  }
  if (what == "assignments") {
    if (method != "GET") return call.BadMethod("GET");
    Result<int64_t> wait_ms = QueryInt(call.request, "wait_ms", 0);
    if (!wait_ms.ok()) return call.Fail(wait_ms.status());
    auto respond = std::make_shared<net::Responder>(std::move(call.respond));
    return plane_->WatchAssignments(resource, QueryString(call.request, "version"), *wait_ms,
                                    [this, respond, resource](Result<api::AssignmentList> listing) {
                                      if (!listing.ok())
                                        return (*respond)(ErrorResponse(listing.status()));
                                      AddWorkloadIdentity(resource, *listing);
                                      (*respond)(JsonTextResponse(200, api::ToJson(*listing)));
                                    });
  }
  if (what == "logs") {
    if (method != "POST") return call.BadMethod("POST");
    Result<api::LogChunkRef> chunk = api::LogChunkRefFromQuery(call.request.query);
    if (!chunk.ok()) return call.Fail(chunk.status());
    return plane_->AppendAttemptLog(resource, chunk->job_id, chunk->attempt, chunk->epoch,
                                    chunk->offset, std::move(call.request.body),
                                    Reply(std::move(call.respond)));
  }
  NotFound(call);
}

}  // namespace meridian::control
