// The identity routes of the API: the public endpoints of the token service (OpenID
// discovery, keys, the token endpoint, the LOCAL cluster issuers), the directory under
// /api/v1/identity, the audit log under /api/v1/audit, and the operators' TokenRequest API.
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/ids.h"
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

constexpr size_t kMaxFormFields = 64;

// application/x-www-form-urlencoded: '+' is a space, then percent-decoding. Fields that do
// not decode are dropped (the token service then names the missing one).
std::map<std::string, std::string> DecodeForm(std::string_view body) {
  std::map<std::string, std::string> form;
  for (absl::string_view piece : absl::StrSplit(absl::string_view(body.data(), body.size()), '&')) {
    std::string_view pair(piece.data(), piece.size());
    if (pair.empty() || form.size() >= kMaxFormFields) continue;
    size_t equals = pair.find('=');
    std::string name(pair.substr(0, equals));
    std::string value(equals == std::string_view::npos ? "" : pair.substr(equals + 1));
    for (std::string* text : {&name, &value}) std::replace(text->begin(), text->end(), '+', ' ');
    std::string decoded_name;
    std::string decoded_value;
    if (!net::PercentDecode(name, &decoded_name) || !net::PercentDecode(value, &decoded_value)) {
      continue;
    }
    form.emplace(std::move(decoded_name), std::move(decoded_value));
  }
  return form;
}

net::HttpResponse NoStore(net::HttpResponse response) {
  response.headers.push_back({"cache-control", "no-store"});
  response.headers.push_back({"pragma", "no-cache"});
  return response;
}

json ToJson(const identity::FederatedCredential& fic) {
  return {{"name", fic.name},
          {"issuer", fic.issuer},
          {"subject", fic.subject},
          {"audiences", fic.audiences},
          {"description", fic.description}};
}

json ToJson(const identity::Application& app) {
  json fics = json::array();
  for (const auto& fic : app.federated_credentials) fics.push_back(ToJson(fic));
  json keys = json::array();
  for (const auto& key : app.keys) {
    keys.push_back({{"kid", key.kid}, {"alg", identity::JwtAlgName(key.alg)}});
  }
  return {{"app_id", app.app_id},
          {"display_name", app.display_name},
          {"kind", identity::PrincipalKindName(app.kind)},
          {"user_subject", app.user_subject},
          {"subject", app.subject()},
          {"federated_credentials", std::move(fics)},
          {"keys", std::move(keys)},
          {"created_at", base::FormatTimeMs(app.created_ms)}};
}

json ToJson(const identity::RoleAssignment& assignment) {
  return {{"id", assignment.id},
          {"role", identity::RoleName(assignment.role)},
          {"principal", assignment.principal},
          {"scope", assignment.scope},
          {"created_at", base::FormatTimeMs(assignment.created_ms)}};
}

json ToJson(const identity::AuditEntry& entry) {
  return {{"seq", entry.seq},
          {"time", base::FormatTimeMs(entry.time_ms)},
          {"time_ms", entry.time_ms},
          {"actor", entry.actor},
          {"action", entry.action},
          {"target", entry.target},
          {"result", entry.result},
          {"correlation_id", entry.correlation_id},
          {"source_address", entry.source_address},
          {"detail", entry.detail},
          {"prev_hash", entry.prev_hash},
          {"hash", entry.hash}};
}

json ToJson(const identity::KeyInfo& key) {
  return {{"kid", key.kid},
          {"alg", identity::JwtAlgName(key.alg)},
          {"state", identity::KeyStateName(key.state)},
          {"created_at", base::FormatTimeMs(key.created_ms)},
          {"active_from", base::FormatTimeMs(key.active_from_ms)},
          {"retire_at", base::FormatTimeMs(key.retire_at_ms)}};
}

// "2024-05-01T10:00:00Z" or unix milliseconds; 0 for "".
Result<int64_t> ParseSince(const std::string& text) {
  if (text.empty()) return 0;
  if (text.find_first_not_of("0123456789") == std::string::npos && text.size() < 19) {
    return std::stoll(text);
  }
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr || (*end != '\0' && *end != 'Z' && *end != '.')) {
    return absl::InvalidArgumentError(fmt::format(
        "query parameter since: '{}' is neither RFC 3339 (UTC) nor unix milliseconds", text));
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

std::string StringField(const json& body, const char* name) {
  return body.contains(name) && body[name].is_string() ? body[name].get<std::string>() : "";
}

}  // namespace

bool ApiHandler::HandlePublic(net::HttpRequest& request, net::Responder& respond) {
  if (identity_ == nullptr || request.path.rfind("/api/", 0) == 0) return false;
  std::vector<std::string> parts = absl::StrSplit(request.path, '/', absl::SkipEmpty());
  auto is = [&](std::initializer_list<std::string_view> pattern) {
    return PathMatches(parts, pattern);
  };
  identity::TokenService& tokens = identity_->tokens();
  if (is({"*", "oauth2", "v2.0", "token"})) {
    HandleTokenEndpoint(std::move(request), std::move(respond));
    return true;
  }
  net::HttpResponse response;
  if (is({".well-known", "openid-configuration"}) ||
      is({"*", "v2.0", ".well-known", "openid-configuration"})) {
    Result<std::string> document = tokens.OpenIdConfiguration(parts.size() == 2 ? "" : parts[0]);
    response = document.ok() ? JsonTextResponse(200, *document) : ErrorResponse(document.status());
  } else if (is({"*", "discovery", "v2.0", "keys"})) {
    response = tokens.KnowsTenant(parts[0])
                   ? JsonTextResponse(200, tokens.JwksJson())
                   : ErrorResponse(absl::NotFoundError(fmt::format("no tenant {}", parts[0])));
  } else if (is({"clusters", "*", ".well-known", "openid-configuration"}) ||
             is({"clusters", "*", "openid", "v1", "jwks"})) {
    if (!plane_->GetResource(parts[1]).ok()) {
      response = ErrorResponse(
          absl::NotFoundError(fmt::format("no cloud resource {} issues tokens here", parts[1])));
    } else if (parts[2] == "openid") {
      response = JsonTextResponse(200, identity_->keys().JwksJson());
    } else {
      response =
          JsonTextResponse(200, identity_->cluster_issuer().OpenIdConfigurationJson(parts[1]));
    }
  } else {
    return false;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    response = ErrorResponse(absl::InvalidArgumentError(
        fmt::format("{} is not allowed on {} (allowed: GET)", request.method, request.path)));
    response.status = 405;
    response.headers.push_back({"allow", "GET"});
  }
  respond(std::move(response));
  return true;
}

void ApiHandler::HandleTokenEndpoint(net::HttpRequest request, net::Responder respond) {
  auto work = [this, request = std::move(request), respond]() mutable {
    identity::TokenService& tokens = identity_->tokens();
    const int64_t now_ms = identity_->clock()->NowUnixMs();
    std::string correlation_id = request.Header("client-request-id");
    if (correlation_id.empty()) correlation_id = request.Header("x-request-id");
    if (correlation_id.size() > 128) correlation_id.clear();
    identity::TokenResponse answer;
    if (request.method != "POST") {
      answer = tokens.MethodNotAllowed(request.method, now_ms, correlation_id);
    } else {
      identity::TokenRequest token_request;
      token_request.form = DecodeForm(request.body);
      token_request.tenant = request.path.substr(1, request.path.find('/', 1) - 1);
      token_request.source_address = request.remote_address;
      token_request.correlation_id = correlation_id;
      token_request.now_unix_ms = now_ms;
      answer = tokens.HandleTokenRequest(token_request);
    }
    net::HttpResponse response = NoStore(JsonTextResponse(answer.http_status, answer.body));
    if (answer.http_status == 405) response.headers.push_back({"allow", "POST"});
    if (!answer.correlation_id.empty()) {
      response.headers.push_back({"client-request-id", answer.correlation_id});
    }
    respond(std::move(response));
  };
  // An exchange waits for its audit entry's commit: run it off the I/O thread.
  if (!blocking_->Post(std::move(work))) {
    respond(NoStore(ErrorResponse(absl::UnavailableError("the token service is overloaded"))));
  }
}

void ApiHandler::HandleIdentity(Call& call) {
  if (identity_ == nullptr) return NotFound(call);
  using identity::Action;
  const std::string& method = call.method();
  identity::Directory& directory = identity_->directory();
  if (call.Is({"identity", "tenant"})) {
    if (method != "GET") return call.BadMethod("GET");
    return call.respond(
        JsonResponse(200, {{"tenant_id", identity_->tenant_id()},
                           {"authority", identity_->authority()},
                           {"audience", kControlPlaneAudience},
                           {"token_endpoint", identity_->tokens().TokenEndpoint()}}));
  }
  const bool reading = method == "GET";
  if (!Allowed(call, reading ? Action::kReadIdentity : Action::kManageIdentity, {})) return;
  auto reply = [&call](Result<json> result, int ok_status = 200) {
    Reply(std::move(call.respond), ok_status)(std::move(result));
  };
  Result<json> body = reading || method == "DELETE" ? json::object() : ParseBody(call.request);
  if (!body.ok()) return call.Fail(body.status());
  if (call.Is({"identity", "apps"})) {
    if (reading) {
      json items = json::array();
      for (const auto& app : directory.ListApplications()) items.push_back(ToJson(app));
      return reply(json{{"items", std::move(items)}});
    }
    if (method != "POST") return call.BadMethod("GET, POST");
    identity::ApplicationSpec spec;
    spec.display_name = StringField(*body, "display_name");
    std::string kind = StringField(*body, "kind");
    if (kind != "" && kind != "application" && kind != "user") {
      return call.Fail(absl::InvalidArgumentError("kind: must be 'application' or 'user'"));
    }
    spec.kind =
        kind == "user" ? identity::PrincipalKind::kUser : identity::PrincipalKind::kApplication;
    spec.user_subject = StringField(*body, "user_subject");
    Result<identity::Application> app = directory.CreateApplication(spec);
    return app.ok() ? reply(ToJson(*app), 201) : call.Fail(app.status());
  }
  if (call.Is({"identity", "apps", "*"})) {
    if (reading) {
      Result<identity::Application> app = directory.GetApplication(call.parts[2]);
      return app.ok() ? reply(ToJson(*app)) : call.Fail(app.status());
    }
    if (method != "DELETE") return call.BadMethod("GET, DELETE");
    Status deleted = directory.DeleteApplication(call.parts[2]);
    return deleted.ok() ? reply(json{{"deleted", call.parts[2]}}) : call.Fail(deleted);
  }
  if (call.Is({"identity", "apps", "*", "federated-credentials"})) {
    if (reading) {
      Result<std::vector<identity::FederatedCredential>> fics =
          directory.ListFederatedCredentials(call.parts[2]);
      if (!fics.ok()) return call.Fail(fics.status());
      json items = json::array();
      for (const auto& fic : *fics) items.push_back(ToJson(fic));
      return reply(json{{"items", std::move(items)}});
    }
    if (method != "POST") return call.BadMethod("GET, POST");
    identity::FederatedCredential fic;
    fic.name = StringField(*body, "name");
    fic.issuer = StringField(*body, "issuer");
    fic.subject = StringField(*body, "subject");
    fic.description = StringField(*body, "description");
    if (body->contains("audiences")) {
      if (!(*body)["audiences"].is_array()) {
        return call.Fail(absl::InvalidArgumentError("audiences: expected an array of strings"));
      }
      for (const json& audience : (*body)["audiences"]) {
        if (!audience.is_string()) {
          return call.Fail(absl::InvalidArgumentError("audiences: expected an array of strings"));
        }
        fic.audiences.push_back(audience.get<std::string>());
      }
    }
    Result<identity::FederatedCredential> added =
        directory.AddFederatedCredential(call.parts[2], std::move(fic));
    return added.ok() ? reply(ToJson(*added), 201) : call.Fail(added.status());
  }
  if (call.Is({"identity", "apps", "*", "federated-credentials", "*"})) {
    if (method != "DELETE") return call.BadMethod("DELETE");
    Status deleted = directory.DeleteFederatedCredential(call.parts[2], call.parts[4]);
    return deleted.ok() ? reply(json{{"deleted", call.parts[4]}}) : call.Fail(deleted);
  }
  if (call.Is({"identity", "apps", "*", "keys"})) {
    if (method != "POST") return call.BadMethod("POST");
    Result<identity::RegisteredKey> key =
        directory.AddKey(call.parts[2], StringField(*body, "public_pem"));
    if (!key.ok()) return call.Fail(key.status());
    return reply(json{{"kid", key->kid}, {"alg", identity::JwtAlgName(key->alg)}}, 201);
  }
  if (call.Is({"identity", "role-assignments"})) {
    if (reading) {
      json items = json::array();
      for (const auto& assignment :
           directory.ListRoleAssignments(QueryString(call.request, "principal"))) {
        items.push_back(ToJson(assignment));
      }
      return reply(json{{"items", std::move(items)}});
    }
    if (method != "POST") return call.BadMethod("GET, POST");
    std::optional<identity::Role> role = identity::ParseRole(StringField(*body, "role"));
    if (!role.has_value()) {
      return call.Fail(
          absl::InvalidArgumentError("role: must be one of Admin, Developer, Viewer, Operator"));
    }
    std::string scope = StringField(*body, "scope");
    Result<identity::RoleAssignment> assigned =
        directory.AssignRole(*role, StringField(*body, "principal"), scope.empty() ? "/" : scope);
    return assigned.ok() ? reply(ToJson(*assigned), 201) : call.Fail(assigned.status());
  }
  if (call.Is({"identity", "role-assignments", "*"})) {
    if (method != "DELETE") return call.BadMethod("DELETE");
    Status revoked = directory.RevokeRoleAssignment(call.parts[2]);
    return revoked.ok() ? reply(json{{"deleted", call.parts[2]}}) : call.Fail(revoked);
  }
  if (call.Is({"identity", "keys"})) {
    if (!reading) return call.BadMethod("GET");
    json items = json::array();
    for (const auto& key : identity_->keys().Keys()) items.push_back(ToJson(key));
    return reply(json{{"items", std::move(items)}});
  }
  if (call.Is({"identity", "keys", "rotate"})) {
    if (method != "POST") return call.BadMethod("POST");
    Status rotated = identity_->keys().Rotate();
    if (!rotated.ok()) return call.Fail(rotated);
    json items = json::array();
    for (const auto& key : identity_->keys().Keys()) items.push_back(ToJson(key));
    return reply(json{{"items", std::move(items)}}, 201);
  }
  NotFound(call);
}

void ApiHandler::HandleAudit(Call& call) {
  if (identity_ == nullptr) return NotFound(call);
  if (call.method() != "GET") return call.BadMethod("GET");
  if (!Allowed(call, identity::Action::kReadAudit, {})) return;
  if (call.Is({"audit"})) {
    identity::AuditFilter filter;
    filter.actor = QueryString(call.request, "actor");
    filter.action = QueryString(call.request, "action");
    Result<int64_t> since = ParseSince(QueryString(call.request, "since"));
    Result<int64_t> limit = QueryInt(call.request, "limit", 100);
    if (!since.ok()) return call.Fail(since.status());
    if (!limit.ok()) return call.Fail(limit.status());
    if (*limit < 1 || *limit > identity::kMaxAuditListEntries) {
      return call.Fail(absl::InvalidArgumentError(
          fmt::format("query parameter limit: must be 1 to {}", identity::kMaxAuditListEntries)));
    }
    filter.since_ms = *since;
    filter.limit = *limit;
    Result<std::vector<identity::AuditEntry>> entries = identity_->audit().List(filter);
    if (!entries.ok()) return call.Fail(entries.status());
    json items = json::array();
    for (const auto& entry : *entries) items.push_back(ToJson(entry));
    return call.respond(JsonResponse(200, {{"items", std::move(items)}}));
  }
  if (call.Is({"audit", "verify"})) {
    Status verified = identity_->audit().Verify();
    if (!verified.ok()) {
      net::HttpResponse response = ErrorResponse(verified);
      response.status = 409;
      return call.respond(std::move(response));
    }
    identity::AuditFilter newest;
    newest.limit = 1;
    Result<std::vector<identity::AuditEntry>> last = identity_->audit().List(newest);
    int64_t entries = last.ok() && !last->empty() ? last->front().seq : 0;
    return call.respond(JsonResponse(200, {{"ok", true}, {"entries", entries}}));
  }
  NotFound(call);
}

void ApiHandler::MintOperatorToken(Call& call, const std::string& resource) {
  if (identity_ == nullptr) return NotFound(call);
  Result<api::WorkloadTokenRequest> body = api::WorkloadTokenRequestFromJson(call.request.body);
  if (!body.ok()) return call.Fail(body.status());
  std::string account = body->service_account;
  if (account.empty()) account = kWorkloadServiceAccount;
  if (account != kWorkloadServiceAccount) {
    return call.Fail(absl::InvalidArgumentError(fmt::format(
        "service_account: an operator mints tokens for '{}' only", kWorkloadServiceAccount)));
  }
  int64_t lifetime_s = identity_->options().cluster_token_lifetime_s;
  if (body->lifetime_s.has_value()) lifetime_s = std::min(lifetime_s, *body->lifetime_s);
  // A token for one job attempt names it, so that the workload may read its own job: only
  // an attempt live on this operator's resource.
  std::optional<identity::AttemptRef> attempt;
  if (body->attempt.has_value()) {
    attempt =
        identity::AttemptRef{body->attempt->job_id, body->attempt->attempt, body->attempt->epoch};
    Result<json> job = plane_->GetJob(attempt->job_id);
    if (!job.ok()) return call.Fail(job.status());
    std::optional<identity::AttemptRef> live = LiveAttempt(*job);
    if (!live.has_value() || *live != *attempt ||
        (*job)["attempts"].back().value("cloud_resource", "") != resource) {
      return call.Fail(absl::FailedPreconditionError(
          fmt::format("job {} attempt {} (epoch {}) is not running on cloud resource {}",
                      attempt->job_id, attempt->attempt, attempt->epoch, resource)));
    }
  }
  Result<std::string> token =
      identity_->MintServiceAccountToken(resource, account, lifetime_s, attempt);
  if (!token.ok()) return call.Fail(token.status());
  int64_t now_s = identity_->clock()->NowUnixMs() / 1000;
  call.respond(NoStore(JsonTextResponse(
      201, api::ToJson(api::WorkloadToken{*token, now_s + lifetime_s, lifetime_s}))));
}

void ApiHandler::AddWorkloadIdentity(const std::string& resource,
                                     api::AssignmentList& listing) const {
  if (identity_ == nullptr) return;
  std::optional<WorkloadIdentity> workload = identity_->WorkloadIdentityFor(resource);
  if (!workload.has_value()) return;
  api::WorkloadIdentity value{workload->client_id, workload->tenant_id, workload->authority,
                              identity_->options().cluster_token_lifetime_s};
  listing.workload_identity = value;
  for (api::Assignment& item : listing.assignments) item.workload_identity = value;
}

void ApiHandler::OnResourceCreated(Result<json> result, net::Responder respond) {
  if (identity_ == nullptr || !result.ok() || result->value("compute_stack", "") != "LOCAL") {
    return Reply(std::move(respond), 201)(std::move(result));
  }
  auto work = [this, result, respond]() mutable {
    Status registered =
        identity_->RegisterLocalResource(result->value("cloud", ""), result->value("name", ""));
    if (!registered.ok()) {
      spdlog::error("cloud resource {}: registering its identities: {}", result->value("name", ""),
                    registered.message());
      return Reply(std::move(respond))(registered);
    }
    Reply(std::move(respond), 201)(std::move(result));
  };
  if (!blocking_->Post(work)) {
    Reply(std::move(respond))(absl::UnavailableError(
        "the resource was created but its identities were not registered (server overloaded); "
        "they are registered at the next server start"));
  }
}

void ApiHandler::OnResourceDeleted(const std::string& resource, Result<json> result,
                                   net::Responder respond) {
  if (identity_ == nullptr || !result.ok()) return Reply(std::move(respond))(std::move(result));
  auto work = [this, resource, result, respond]() mutable {
    Status removed = identity_->UnregisterResource(resource);
    if (!removed.ok()) {
      spdlog::error("cloud resource {}: removing its identities: {}", resource, removed.message());
    }
    Reply(std::move(respond))(std::move(result));
  };
  if (!blocking_->Post(work)) Reply(std::move(respond))(std::move(result));
}

}  // namespace meridian::control
