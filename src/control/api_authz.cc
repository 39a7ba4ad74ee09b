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
std::string MutationAction(const std::string& method, const std::vector<std::string>& parts) {
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

// "job.logs", "resource.read", ...: what a read is, for the audit entry of a refused one.
std::string ReadAction(const std::vector<std::string>& parts) {
  auto is = [&](std::initializer_list<std::string_view> pattern) {
    return PathMatches(parts, pattern);
  };
  if (is({"jobs"})) return "job.list";
  if (is({"jobs", "*"})) return "job.read";
  if (is({"jobs", "*", "logs"})) return "job.logs";
  if (is({"clouds"})) return "cloud.list";
  if (is({"clouds", "*"})) return "cloud.read";
  if (is({"clouds", "*", "resources"}) || is({"resources"})) return "resource.list";
  if (is({"resources", "*"})) return "resource.read";
  if (is({"packages", "*"})) return "package.read";
  if (is({"capacity"})) return "capacity.read";
  if (is({"quotas"})) return "quota.list";
  if (!parts.empty() &&
      (parts[0] == "identity" || parts[0] == "audit" || parts[0] == "operators")) {
    return parts[0] + ".read";
  }
  return "api.GET";
}

bool IsMutating(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "DELETE";
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
  return identity::Authorize(principal, action, target).ok();
}

bool CanSomewhere(const Principal& principal, identity::Action action) {
  for (const identity::RoleGrant& grant : principal.grants) {
    Result<identity::Scope> scope = identity::ParseScope(grant.scope);
    if (!scope.ok()) continue;
    identity::Target target{scope->cloud, scope->resource, principal.subject};
    identity::Caller one_grant{principal.subject, principal.person, {grant}, std::nullopt};
    if (identity::Authorize(one_grant, action, target).ok()) return true;
  }
  return false;
}

bool ApiHandler::Allowed(Call& call, identity::Action action, const identity::Target& target) {
  Status allowed = identity::Authorize(call.principal, action, target);
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

std::optional<identity::AttemptRef> LiveAttempt(const json& job) {
  if (!job.contains("attempts") || !job["attempts"].is_array() || job["attempts"].empty()) {
    return std::nullopt;
  }
  // Only the newest attempt can be live: an earlier one has ended or been superseded.
  const json& newest = job["attempts"].back();
  std::optional<JobState> state = ParseJobState(newest.value("state", ""));
  if (!state.has_value() || IsFinal(*state)) return std::nullopt;
  return identity::AttemptRef{job.value("id", ""), newest.value("number", 0),
                              newest.value("epoch", int64_t{0})};
}

identity::Target ApiHandler::JobTarget(const json& job) {
  // A listing item names its resource; a whole job has its attempts.
  std::string resource = job.value("cloud_resource", "");
  if (job.contains("attempts") && job["attempts"].is_array() && !job["attempts"].empty()) {
    resource = job["attempts"].back().value("cloud_resource", "");
  }
  std::string cloud = resource.empty() ? "" : CloudOfResource(resource);
  return identity::Target{cloud, cloud.empty() ? "" : resource, job.value("owner", ""),
                          LiveAttempt(job)};
}

bool ApiHandler::TakeRefusalBudget(const std::string& actor) {
  constexpr int64_t kWindowMs = 60'000;
  constexpr size_t kMaxActors = 10'000;
  const int64_t now_ms = identity_->clock()->NowUnixMs();
  std::lock_guard lock(refusals_mu_);
  if (refusals_.size() >= kMaxActors && !refusals_.count(actor)) refusals_.clear();
  RefusalWindow& window = refusals_[actor];
  if (now_ms - window.start_ms >= kWindowMs) {
    if (window.dropped > 0) {
      spdlog::warn("audit: {} more refused reads by {} were not recorded (over {} a minute)",
                   window.dropped, actor, options_.max_audited_refusals_per_minute);
    }
    window = RefusalWindow{now_ms, 0, 0};
  }
  if (window.audited < options_.max_audited_refusals_per_minute) {
    window.audited += 1;
    return true;
  }
  if (window.dropped == 0) {
    spdlog::warn("audit: {} was refused over {} reads this minute; not recording more of them",
                 actor, options_.max_audited_refusals_per_minute);
  }
  window.dropped += 1;
  return false;
}

void ApiHandler::AuditCall(Call& call) {
  const std::string& method = call.method();
  if (identity_ == nullptr) return;
  const bool mutating = IsMutating(method);
  if (mutating && IsOperatorTelemetry(call.parts)) return;
  // Reads are many and not audited, except a refused one by an application (a workload
  // above all): a job probing what else it can see is worth a record.
  const bool application_read =
      !mutating && !call.principal.subject.empty() && !call.principal.person;
  if (!mutating && !application_read) return;
  identity::AuditEntry entry;
  entry.actor = call.principal.subject.empty() ? "anonymous" : call.principal.subject;
  entry.action = mutating ? MutationAction(method, call.parts) : ReadAction(call.parts);
  entry.target = call.request.path.substr(std::min<size_t>(7, call.request.path.size()));
  entry.correlation_id = call.correlation_id;
  entry.source_address = call.request.remote_address;
  if (call.principal.attempt.has_value()) {
    entry.detail =
        fmt::format("workload of job {} attempt {} epoch {}", call.principal.attempt->job_id,
                    call.principal.attempt->attempt, call.principal.attempt->epoch);
  }
  // An accepted submission's entry is written with the job (one durable write, recording the
  // decision); this wrapper records only a refused one.
  const bool submission = mutating && entry.action == "job.submit";
  if (submission) call.submit_audit = entry;
  auto original = std::make_shared<net::Responder>(std::move(call.respond));
  call.respond = [this, entry = std::move(entry), original, submission,
                  refusals_only = !mutating](net::HttpResponse response) mutable {
    if (refusals_only && (response.status != 403 || !TakeRefusalBudget(entry.actor))) {
      return (*original)(std::move(response));
    }
    if (submission && response.status == 201) {
      response.headers.push_back({"x-request-id", entry.correlation_id});
      return (*original)(std::move(response));
    }
    entry.result = std::to_string(response.status);
    if (submission) {
      json error = json::parse(response.body, nullptr, false);
      std::string code = error.is_object() ? error.value("code", "") : "";
      entry.result = code.empty() ? fmt::format("refused ({})", response.status)
                                  : fmt::format("refused: {}", code);
    }
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
