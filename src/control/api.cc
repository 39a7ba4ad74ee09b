#include "control/api.h"

#include <charconv>
#include <memory>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "base/archive.h"
#include "base/files.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "spec/spec_json.h"

namespace meridian::control {

using nlohmann::json;

namespace {

std::string_view CodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return "OK";
    case absl::StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case absl::StatusCode::kNotFound: return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case absl::StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case absl::StatusCode::kUnavailable: return "UNAVAILABLE";
    case absl::StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kAborted: return "ABORTED";
    case absl::StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case absl::StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case absl::StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case absl::StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    default: return "INTERNAL";
  }
}

net::HttpResponse JsonResponse(int status, const json& body) {
  net::HttpResponse response;
  response.status = status;
  response.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return response;
}

net::HttpResponse ErrorResponse(const Status& status, json details = json::object()) {
  return JsonResponse(HttpStatusFor(status),
                      {{"code", CodeName(status.code())},
                       {"message", std::string(status.message())},
                       {"details", std::move(details)}});
}

// Answers with `ok_status` and the JSON value, or with the error.
ControlPlane::JsonDone Reply(net::Responder respond, int ok_status = 200) {
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
  auto [end, error] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), value);
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

bool IsPackageDigest(const std::string& digest) {
  if (digest.size() != 7 + 64 || digest.rfind("sha256:", 0) != 0) return false;
  return digest.find_first_not_of("0123456789abcdef", 7) == std::string::npos;
}

Result<OperatorReport> ParseOperatorReport(const json& body) {
  OperatorReport report;
  try {
    report.operator_id = body.value("operator_id", std::string());
    report.version = body.value("version", std::string());
    report.real_gpus = body.value("real_gpus", 0);
    const json& types = body.value("instance_types", json::array());
    for (size_t i = 0; i < types.size(); ++i) {
      json type = types.at(i);
      int total = type.value("total_nodes", 0);
      type.erase("total_nodes");
      Result<spec::InstanceType> parsed = spec::InstanceTypeFromJson(type);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(
            fmt::format("instance_types[{}]: {}", i, parsed.status().message()));
      }
      report.capacity.push_back({*std::move(parsed), total});
    }
    const json& attempts = body.value("attempts", json::array());
    for (size_t i = 0; i < attempts.size(); ++i) {
      const json& item = attempts.at(i);
      AttemptReport attempt;
      attempt.job_id = item.at("job_id").get<std::string>();
      attempt.attempt = item.at("attempt").get<int>();
      attempt.epoch = item.at("epoch").get<int64_t>();
      std::optional<JobState> state = ParseJobState(item.at("state").get<std::string>());
      if (!state.has_value()) {
        return absl::InvalidArgumentError(fmt::format("attempts[{}].state: unknown state", i));
      }
      attempt.state = *state;
      attempt.exit_code = item.value("exit_code", -1);
      attempt.message = item.value("message", std::string());
      attempt.started_unix_ms = item.value("started_unix_ms", int64_t{0});
      attempt.ended_unix_ms = item.value("ended_unix_ms", int64_t{0});
      report.attempts.push_back(std::move(attempt));
    }
  } catch (const json::exception& error) {
    return absl::InvalidArgumentError(fmt::format("operator report: {}", error.what()));
  }
  return report;
}

// A route: the path split on '/', and the method.
struct Route {
  std::vector<std::string> parts;
  const std::string& method;
  bool Is(std::initializer_list<std::string_view> pattern) const {
    if (pattern.size() != parts.size()) return false;
    size_t i = 0;
    for (std::string_view want : pattern) {
      if (want != "*" && want != parts[i]) return false;
      ++i;
    }
    return true;
  }
};

}  // namespace

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition: return 409;
    case absl::StatusCode::kResourceExhausted: return 413;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

ApiHandler::ApiHandler(ControlPlane* plane, Authenticator* auth, ApiOptions options)
    : plane_(plane), auth_(auth), options_(std::move(options)) {}

int64_t ApiHandler::BodyLimit(std::string_view method, std::string_view path) const {
  if (method == "PUT" && path.rfind("/api/v1/packages/", 0) == 0) return options_.max_package_bytes;
  if (path.rfind("/api/v1/operators/", 0) == 0) return options_.max_log_chunk_bytes + 4096;
  return options_.max_request_bytes;
}

void ApiHandler::Handle(net::HttpRequest request, net::Responder respond) {
  const std::string& method = request.method;
  if (request.path == "/healthz" || request.path == "/readyz") {
    respond(JsonResponse(200, {{"status", "ok"}}));
    return;
  }
  if (request.path == "/metrics") {
    net::HttpResponse response;
    response.content_type = "text/plain; version=0.0.4";
    response.body = plane_->MetricsText();
    respond(std::move(response));
    return;
  }
  if (request.path.rfind("/api/v1/", 0) != 0) {
    respond(ErrorResponse(absl::NotFoundError(fmt::format("no such path: {}", request.path))));
    return;
  }
  Result<Principal> principal = auth_->Authenticate(request);
  if (!principal.ok()) {
    respond(ErrorResponse(principal.status()));
    return;
  }
  std::vector<std::string> parts =
      absl::StrSplit(request.path.substr(8), '/', absl::SkipEmpty());
  Route route{std::move(parts), method};
  auto bad_method = [&](std::string allowed) {
    net::HttpResponse response = ErrorResponse(absl::InvalidArgumentError(
        fmt::format("{} is not allowed on {} (allowed: {})", method, request.path, allowed)));
    response.status = 405;
    response.headers.push_back({"allow", allowed});
    respond(std::move(response));
  };
  auto fail = [&](const Status& status) { respond(ErrorResponse(status)); };

  // ---- clouds ----
  if (route.Is({"clouds"})) {
    if (method == "GET") return respond(JsonResponse(200, plane_->ListClouds()));
    if (method != "POST") return bad_method("GET, POST");
    Result<json> body = ParseBody(request);
    if (!body.ok()) return fail(body.status());
    if (!body->contains("name") || !(*body)["name"].is_string()) {
      return fail(absl::InvalidArgumentError("name: required, a string"));
    }
    return plane_->CreateCloud((*body)["name"].get<std::string>(), Reply(std::move(respond), 201));
  }
  if (route.Is({"clouds", "*"})) {
    if (method == "GET") return Reply(std::move(respond))(plane_->GetCloud(route.parts[1]));
    if (method == "DELETE") return plane_->DeleteCloud(route.parts[1], Reply(std::move(respond)));
    return bad_method("GET, DELETE");
  }
  if (route.Is({"clouds", "*", "resources"})) {
    if (method == "GET") return Reply(std::move(respond))(plane_->ListResources(route.parts[1]));
    if (method != "POST") return bad_method("GET, POST");
    Result<json> body = ParseBody(request);
    if (!body.ok()) return fail(body.status());
    Result<spec::CloudResourceSpec> spec = spec::CloudResourceFromJson(*body);
    if (!spec.ok()) return fail(spec.status());
    return plane_->CreateResource(route.parts[1], *std::move(spec), Reply(std::move(respond), 201));
  }
  // ---- cloud resources ----
  if (route.Is({"resources"})) {
    if (method != "GET") return bad_method("GET");
    return Reply(std::move(respond))(plane_->ListResources(QueryString(request, "cloud")));
  }
  if (route.Is({"resources", "*"})) {
    if (method == "GET") return Reply(std::move(respond))(plane_->GetResource(route.parts[1]));
    if (method == "DELETE") return plane_->DeleteResource(route.parts[1], Reply(std::move(respond)));
    return bad_method("GET, DELETE");
  }
  // ---- jobs ----
  if (route.Is({"jobs"})) {
    if (method == "GET") {
      JobFilter filter;
      std::string state = QueryString(request, "state");
      if (!state.empty()) {
        filter.state = ParseJobState(state);
        if (!filter.state.has_value()) {
          return fail(absl::InvalidArgumentError(fmt::format(
              "query parameter state: '{}' is not one of STARTING, RUNNING, SUCCEEDED, FAILED, "
              "TERMINATED, UNKNOWN", state)));
        }
      }
      filter.cloud_resource = QueryString(request, "cloud_resource");
      Result<int64_t> limit = QueryInt(request, "limit", 100);
      if (!limit.ok()) return fail(limit.status());
      if (*limit < 1 || *limit > 10'000) {
        return fail(absl::InvalidArgumentError("query parameter limit: must be 1 to 10000"));
      }
      filter.limit = static_cast<size_t>(*limit);
      return respond(JsonResponse(200, plane_->ListJobs(filter)));
    }
    if (method != "POST") return bad_method("GET, POST");
    Result<json> body = ParseBody(request);
    if (!body.ok()) return fail(body.status());
    if (!body->contains("config")) return fail(absl::InvalidArgumentError("config: required"));
    Result<spec::JobConfig> config = spec::JobConfigFromJson((*body)["config"]);
    if (!config.ok()) {
      return fail(absl::InvalidArgumentError(fmt::format("config.{}", config.status().message())));
    }
    std::string package = body->value("package", std::string());
    if (!package.empty()) {
      if (!IsPackageDigest(package)) {
        return fail(absl::InvalidArgumentError("package: expected sha256:<64 hex digits>"));
      }
      if (!base::PathExists(fmt::format("{}/{}.tar.gz", options_.package_dir, package.substr(7)))) {
        return fail(absl::FailedPreconditionError(
            fmt::format("package: {} has not been uploaded", package)));
      }
    }
    return plane_->SubmitJob(*std::move(config), std::move(package), Reply(std::move(respond), 201));
  }
  if (route.Is({"jobs", "*"})) {
    if (method != "GET") return bad_method("GET");
    Result<int64_t> seen = QueryInt(request, "wait_version", -1);
    Result<int64_t> wait_ms = QueryInt(request, "wait_ms", 0);
    if (!seen.ok()) return fail(seen.status());
    if (!wait_ms.ok()) return fail(wait_ms.status());
    return plane_->WaitJob(route.parts[1], *seen, *seen < 0 ? 0 : *wait_ms, Reply(std::move(respond)));
  }
  if (route.Is({"jobs", "*", "terminate"})) {
    if (method != "POST") return bad_method("POST");
    return plane_->TerminateJob(route.parts[1], Reply(std::move(respond)));
  }
  if (route.Is({"jobs", "*", "logs"})) {
    if (method != "GET") return bad_method("GET");
    Result<int64_t> attempt = QueryInt(request, "attempt", 0);
    Result<int64_t> offset = QueryInt(request, "offset", 0);
    Result<int64_t> max_bytes = QueryInt(request, "max_bytes", 1 << 20);
    Result<int64_t> wait_ms = QueryInt(request, "wait_ms", 0);
    for (const auto* value : {&attempt, &offset, &max_bytes, &wait_ms}) {
      if (!value->ok()) return fail(value->status());
    }
    if (*offset < 0) return fail(absl::InvalidArgumentError("query parameter offset: must be >= 0"));
    auto shared = std::make_shared<net::Responder>(std::move(respond));
    return plane_->ReadLog(
        route.parts[1], static_cast<int>(*attempt), *offset, *max_bytes, *wait_ms,
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
  // ---- packages ----
  if (route.Is({"packages", "*"})) {
    const std::string& digest = route.parts[1];
    if (!IsPackageDigest(digest)) {
      return fail(absl::InvalidArgumentError(
          fmt::format("package '{}': expected sha256:<64 hex digits>", digest)));
    }
    std::string path = fmt::format("{}/{}.tar.gz", options_.package_dir, digest.substr(7));
    if (method == "PUT") {
      if ("sha256:" + base::Sha256Hex(request.body) != digest) {
        return fail(absl::InvalidArgumentError(
            fmt::format("package body does not hash to {}", digest)));
      }
      if (!base::PathExists(path)) {
        Status written = base::WriteFileAtomic(path, request.body, 0644);
        if (!written.ok()) return fail(written);
      }
      return respond(JsonResponse(201, {{"package", digest}, {"size", request.body.size()}}));
    }
    if (method != "GET") return bad_method("GET, PUT");
    if (QueryString(request, "stat") == "1") {
      bool exists = base::PathExists(path);
      return respond(JsonResponse(200, {{"package", digest}, {"exists", exists}}));
    }
    Result<std::string> data = base::ReadFile(path, options_.max_package_bytes);
    if (!data.ok()) {
      return fail(data.status().code() == absl::StatusCode::kNotFound
                      ? absl::NotFoundError(fmt::format("package {} does not exist", digest))
                      : data.status());
    }
    net::HttpResponse response;
    response.content_type = "application/gzip";
    response.body = *std::move(data);
    return respond(std::move(response));
  }
  // ---- operators ----
  if (route.parts.size() == 3 && route.parts[0] == "operators") {
    const std::string& resource = route.parts[1];
    const std::string& what = route.parts[2];
    if (what == "heartbeat") {
      if (method != "POST") return bad_method("POST");
      Result<json> body = ParseBody(request);
      if (!body.ok()) return fail(body.status());
      Result<OperatorReport> report = ParseOperatorReport(*body);
      if (!report.ok()) return fail(report.status());
      return plane_->OperatorHeartbeat(resource, *std::move(report), Reply(std::move(respond)));
    }
    if (what == "assignments") {
      if (method != "GET") return bad_method("GET");
      Result<int64_t> wait_ms = QueryInt(request, "wait_ms", 0);
      if (!wait_ms.ok()) return fail(wait_ms.status());
      return plane_->WatchAssignments(resource, QueryString(request, "version"), *wait_ms,
                                      Reply(std::move(respond)));
    }
    if (what == "logs") {
      if (method != "POST") return bad_method("POST");
      Result<int64_t> attempt = QueryInt(request, "attempt", 0);
      Result<int64_t> epoch = QueryInt(request, "epoch", 0);
      Result<int64_t> offset = QueryInt(request, "offset", -1);
      for (const auto* value : {&attempt, &epoch, &offset}) {
        if (!value->ok()) return fail(value->status());
      }
      if (*offset < 0) return fail(absl::InvalidArgumentError("query parameter offset: required"));
      return plane_->AppendAttemptLog(resource, QueryString(request, "job_id"),
                                      static_cast<int>(*attempt), *epoch, *offset,
                                      std::move(request.body), Reply(std::move(respond)));
    }
  }
  fail(absl::NotFoundError(fmt::format("no such API path: {} {}", method, request.path)));
}

}  // namespace meridian::control
