// The API's authorisation and audit steps: which action on what target a route is, and the
// audit entry every mutating call leaves (api.h).
#include <nlohmann/json.hpp>

#include "control/api.h"
#include "control/api_internal.h"
#include "control/identity_plane.h"
#include "control/worker_pool.h"
#include "fmt/format.h"
#include "identity/audit.h"
#include "spdlog/spdlog.h"

namespace meridian::control {

using nlohmann::json;

namespace {

// "job.submit", "identity.app.create", ...: what a mutating call does, for the audit log.
std::string AuditAction(const std::string& method, const std::vector<std::string>& parts) {
  auto is = [&](std::initializer_list<std::string_view> pattern) {
    return PathMatches(parts, pattern);
  };
  const bool post = method == "POST";
  const bool del = method == "DELETE";
  if (is({"clouds"}) && post) return "cloud.create";
  if (is({"clouds", "*"}) && del) return "cloud.delete";
  if (is({"clouds", "*", "resources"}) && post) return "resource.create";
  if (is({"resources", "*"}) && del) return "resource.delete";
  if (is({"jobs"}) && post) return "job.submit";
  if (is({"jobs", "*", "terminate"})) return "job.terminate";
  if (is({"packages", "*"})) return "package.upload";
  if (is({"compute-configs"}) && post) return "compute_config.create";
  if (is({"compute-configs", "*", "archive"})) return "compute_config.archive";
  if (is({"quotas"}) && post) return "quota.create";
  if (is({"quotas", "*"}) && del) return "quota.delete";
  if (is({"operators", "*", "tokens"})) return "operator.token";
  if (is({"identity", "apps"}) && post) return "identity.app.create";
  if (is({"identity", "apps", "*"}) && del) return "identity.app.delete";
  if (is({"identity", "apps", "*", "federated-credentials"})) return "identity.fic.create";
  if (is({"identity", "apps", "*", "federated-credentials", "*"})) return "identity.fic.delete";
  if (is({"identity", "apps", "*", "keys"})) return "identity.key.add";
  if (is({"identity", "role-assignments"}) && post) return "identity.role.assign";
  if (is({"identity", "role-assignments", "*"}) && del) return "identity.role.revoke";
  if (is({"identity", "keys", "rotate"})) return "identity.signing_key.rotate";
  return fmt::format("api.{}", method);
}

// Operator heartbeats and log shipping report what happened rather than change anything a
// person asked for, and arrive every few seconds: they would drown the log. Their effects
// (a job's state) are visible in the job itself.
bool IsOperatorTelemetry(const std::vector<std::string>& parts) {
  return parts.size() == 3 && parts[0] == "operators" &&
         (parts[2] == "heartbeat" || parts[2] == "logs");
}

}  // namespace

bool Can(const Principal& principal, identity::Action action, const identity::Target& target) {
  return identity::Authorize(principal.subject, principal.grants, action, target).ok();
}

bool CanSomewhere(const Principal& principal, identity::Action action) {
  for (const identity::RoleGrant& grant : principal.grants) {
    Result<identity::Scope> scope = identity::ParseScope(grant.scope);
    if (!scope.ok()) continue;
    identity::Target target{scope->cloud, scope->resource, principal.subject};
    if (identity::Authorize(principal.subject, {grant}, action, target).ok()) return true;
  }
  return false;
}

bool ApiHandler::Allowed(Call& call, identity::Action action, const identity::Target& target) {
  Status allowed =
      identity::Authorize(call.principal.subject, call.principal.grants, action, target);
  if (allowed.ok()) return true;
  call.Fail(allowed);
  return false;
}

bool ApiHandler::AllowedSomewhere(Call& call, identity::Action action) {
  if (CanSomewhere(call.principal, action)) return true;
  call.Fail(absl::PermissionDeniedError(
      fmt::format("{} may not {} anywhere", call.principal.subject, identity::ActionName(action))));
  return false;
}

std::string ApiHandler::CloudOfResource(const std::string& resource) {
  Result<json> found = plane_->GetResource(resource);
  return found.ok() ? found->value("cloud", "") : "";
}

identity::Target ApiHandler::JobTarget(const json& job) {
  // A listing item names its resource; a whole job has its attempts.
  std::string resource = job.value("cloud_resource", "");
  if (job.contains("attempts") && job["attempts"].is_array() && !job["attempts"].empty()) {
    resource = job["attempts"].back().value("cloud_resource", "");
  }
  std::string cloud = resource.empty() ? "" : CloudOfResource(resource);
  return identity::Target{cloud, cloud.empty() ? "" : resource, job.value("owner", "")};
}

void ApiHandler::AuditMutation(Call& call) {
  const std::string& method = call.method();
  if (identity_ == nullptr || (method != "POST" && method != "PUT" && method != "DELETE") ||
      IsOperatorTelemetry(call.parts)) {
    return;
  }
  identity::AuditEntry entry;
  entry.actor = call.principal.subject.empty() ? "anonymous" : call.principal.subject;
  entry.action = AuditAction(method, call.parts);
  entry.target = call.request.path.substr(std::min<size_t>(7, call.request.path.size()));
  entry.correlation_id = call.correlation_id;
  entry.source_address = call.request.remote_address;
  auto original = std::make_shared<net::Responder>(std::move(call.respond));
  call.respond = [this, entry = std::move(entry), original](net::HttpResponse response) mutable {
    entry.result = std::to_string(response.status);
    if (response.status == 200 || response.status == 201) {
      // Name what was made (a job id, an app id) when the answer says.
      json body = json::parse(response.body, nullptr, false);
      if (body.is_object()) {
        for (const char* key : {"id", "app_id", "kid"}) {
          if (body.contains(key) && body[key].is_string()) {
            entry.detail = fmt::format("{}={}", key, body[key].get<std::string>());
            break;
          }
        }
      }
    }
    response.headers.push_back({"x-request-id", entry.correlation_id});
    // The append waits for its commit: never on an I/O thread or the store's writer thread.
    auto task = [this, entry, original, response = std::move(response)]() mutable {
      Result<identity::AuditEntry> appended = identity_->audit().Append(entry);
      if (!appended.ok()) {
        spdlog::error("audit: could not record {} {}: {}", entry.action, entry.target,
                      appended.status().message());
      }
      (*original)(std::move(response));
    };
    if (!blocking_->Post(task)) {
      spdlog::error("audit: queue full; {} {} answered without an entry", entry.action,
                    entry.target);
      (*original)(ErrorResponse(absl::UnavailableError("the server is overloaded; retry")));
    }
  };
}

}  // namespace meridian::control
