#include "identity/token_service.h"

#include <time.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "fmt/format.h"
#include "identity/audit.h"
#include "identity/cluster_issuer.h"
#include "identity/guid.h"
#include "spdlog/spdlog.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;

constexpr std::string_view kDefaultSuffix = "/.default";
constexpr size_t kMaxScopeChars = 4096;

// Entra's timestamp form: "2024-05-01 10:00:00Z".
std::string EntraTimestamp(int64_t unix_ms) {
  time_t seconds = static_cast<time_t>(unix_ms / 1000);
  struct tm utc;
  gmtime_r(&seconds, &utc);
  char buffer[32];
  strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%SZ", &utc);
  return buffer;
}

std::string ToLower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string Join(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& value : values) out += (out.empty() ? "" : ",") + value;
  return out;
}

}  // namespace

// An error to answer with, or success (code 0).
struct TokenService::Outcome {
  int http_status = 200;
  std::string error;
  int code = 0;
  std::string description;  // the text after "AADSTSnnnn: "
  bool ok() const { return code == 0; }
};

namespace {

using Outcome = TokenService::Outcome;

Outcome Fail(int http_status, std::string error, int code, std::string description) {
  return Outcome{http_status, std::move(error), code, std::move(description)};
}
Outcome MissingParameter(std::string_view name) {
  return Fail(400, "invalid_request", 900144,
              fmt::format("The request body must contain the following parameter: '{}'.", name));
}
Outcome InvalidClient(int code, std::string description) {
  return Fail(401, "invalid_client", code, std::move(description));
}

Outcome NoMatchingFederatedCredential(const ParsedJwt& parsed, std::string_view why) {
  return InvalidClient(
      70021, fmt::format("No matching federated identity record found for presented assertion. "
                         "Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: "
                         "'{}'.{}",
                         parsed.iss, parsed.sub, Join(parsed.aud), why));
}

// Entra's answer to an assertion VerifyJwt refused.
Outcome FromJwtFailure(const JwtFailure& failure, const ParsedJwt& parsed, int64_t now_s,
                       bool federated) {
  switch (failure.error) {
    case JwtError::kMalformed:
      return Fail(400, "invalid_request", 50027,
                  fmt::format("JWT token is invalid or malformed. {}", failure.detail));
    case JwtError::kUnknownKey:
      return InvalidClient(700027, fmt::format("Client assertion contains an invalid signature. "
                                               "[Reason - The key was not found., Key ID: '{}']",
                                               parsed.kid));
    case JwtError::kBadSignature:
      return InvalidClient(700027, fmt::format("Client assertion contains an invalid signature. "
                                               "[Reason - {}]",
                                               failure.detail));
    case JwtError::kExpired:
    case JwtError::kNotYetValid:
      return InvalidClient(
          700024, fmt::format("Client assertion is not within its valid time range. Current time: "
                              "{}, assertion valid from {}, expiry time of assertion {}.",
                              EntraTimestamp(now_s * 1000),
                              parsed.nbf ? EntraTimestamp(*parsed.nbf * 1000) : "(none)",
                              parsed.exp ? EntraTimestamp(*parsed.exp * 1000) : "(none)"));
    case JwtError::kWrongIssuer:
    case JwtError::kWrongAudience:
    case JwtError::kWrongSubject:
      if (federated) return NoMatchingFederatedCredential(parsed, "");
      return InvalidClient(700027, fmt::format("Client assertion is not valid for this token "
                                               "endpoint. [Reason - {}]",
                                               failure.detail));
  }
  return InvalidClient(700027, failure.detail);
}

// The one resource a client-credentials scope names ("<resource>/.default", space-separated).
Result<std::string> ScopeResource(std::string_view scope, Outcome* outcome) {
  std::set<std::string> resources;
  size_t start = 0;
  while (start < scope.size()) {
    size_t end = scope.find(' ', start);
    if (end == std::string_view::npos) end = scope.size();
    std::string_view item = scope.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    if (item.size() <= kDefaultSuffix.size() ||
        item.substr(item.size() - kDefaultSuffix.size()) != kDefaultSuffix) {
      *outcome = Fail(400, "invalid_scope", 1002012,
                      fmt::format("The provided value for scope {} is not valid. Client credential "
                                  "flows must have a scope value with /.default suffixed to the "
                                  "resource identifier (application ID URI).",
                                  item));
      return absl::InvalidArgumentError("scope");
    }
    resources.insert(std::string(item.substr(0, item.size() - kDefaultSuffix.size())));
  }
  if (resources.size() != 1) {
    *outcome = resources.empty()
                   ? MissingParameter("scope")
                   : Fail(400, "invalid_scope", 700022,
                          fmt::format("The provided value for the input parameter scope is not "
                                      "valid because it contains more than one resource. Scope "
                                      "{} is not valid.",
                                      scope));
    return absl::InvalidArgumentError("scope");
  }
  return *resources.begin();
}

}  // namespace

std::string OpenIdConfigurationJson(std::string_view authority, std::string_view tenant) {
  std::string base = fmt::format("{}/{}", authority, tenant);
  return json{{"issuer", base + "/v2.0"},
              {"token_endpoint", base + "/oauth2/v2.0/token"},
              {"authorization_endpoint", base + "/oauth2/v2.0/authorize"},
              {"jwks_uri", base + "/discovery/v2.0/keys"},
              {"token_endpoint_auth_methods_supported", {"private_key_jwt"}},
              {"grant_types_supported", {"client_credentials"}},
              {"response_types_supported", {"token"}},
              {"subject_types_supported", {"pairwise"}},
              {"id_token_signing_alg_values_supported", {"RS256", "ES256"}},
              {"tenant_region_scope", nullptr},
              {"cloud_instance_name", std::string(authority)}}
      .dump();
}

TokenService::TokenService(TokenServiceOptions options, KeyManager* keys, Directory* directory,
                           std::vector<IssuerKeySource*> trusted_issuers, AuditLog* audit)
    : options_(std::move(options)),
      keys_(keys),
      directory_(directory),
      trusted_issuers_(std::move(trusted_issuers)),
      audit_(audit),
      access_issuer_(fmt::format("{}/{}/v2.0", options_.authority, options_.tenant_id)) {}

bool TokenService::KnowsTenant(std::string_view tenant) const {
  return ToLower(tenant) == ToLower(options_.tenant_id);
}

std::string TokenService::AccessTokenIssuer() const { return access_issuer_; }

std::string TokenService::TokenEndpoint() const {
  return fmt::format("{}/{}/oauth2/v2.0/token", options_.authority, options_.tenant_id);
}

Result<std::string> TokenService::OpenIdConfiguration(std::string_view tenant) const {
  if (!tenant.empty() && !KnowsTenant(tenant)) {
    return absl::NotFoundError(fmt::format("tenant {} not found", tenant));
  }
  return OpenIdConfigurationJson(options_.authority, options_.tenant_id);
}

std::string TokenService::JwksJson() const { return keys_->JwksJson(); }

TokenResponse TokenService::HandleTokenRequest(const TokenRequest& request) const {
  TokenResponse response;
  response.correlation_id = request.correlation_id.empty() ? NewGuid() : request.correlation_id;
  Outcome outcome = Exchange(request, &response);
  // A token is handed out only once its issue is on the audit record.
  if (outcome.ok() && !Audit(request, response).ok()) {
    outcome = Fail(503, "temporarily_unavailable", 50000,
                   "There was an error issuing a token: the audit log is unavailable.");
  }
  if (outcome.ok()) return response;
  response.http_status = outcome.http_status;
  response.error_code = outcome.code;
  response.jti.clear();
  response.body = ErrorBody(outcome, request.now_unix_ms, response.correlation_id);
  (void)Audit(request, response);
  return response;
}

std::string TokenService::ErrorBody(const Outcome& outcome, int64_t now_unix_ms,
                                    const std::string& correlation_id) const {
  const std::string trace_id = NewGuid();
  const std::string timestamp = EntraTimestamp(now_unix_ms);
  return json{{"error", outcome.error},
              {"error_description",
               fmt::format("AADSTS{}: {} Trace ID: {} Correlation ID: {} Timestamp: {}",
                           outcome.code, outcome.description, trace_id, correlation_id, timestamp)},
              {"error_codes", {outcome.code}},
              {"timestamp", timestamp},
              {"trace_id", trace_id},
              {"correlation_id", correlation_id},
              {"error_uri", fmt::format("{}/error?code={}", options_.authority, outcome.code)}}
      .dump();
}

TokenResponse TokenService::MethodNotAllowed(std::string_view method, int64_t now_unix_ms,
                                             std::string_view correlation_id) const {
  TokenRequest request;
  request.now_unix_ms = now_unix_ms;
  TokenResponse response;
  response.correlation_id = correlation_id.empty() ? NewGuid() : std::string(correlation_id);
  response.http_status = 405;
  response.error_code = 900561;
  Outcome outcome = Fail(405, "invalid_request", 900561,
                         fmt::format("The endpoint only accepts POST requests. Received a {} "
                                     "request.",
                                     method.substr(0, 16)));
  response.body = ErrorBody(outcome, now_unix_ms, response.correlation_id);
  (void)Audit(request, response);
  return response;
}

TokenService::Outcome TokenService::Exchange(const TokenRequest& request,
                                             TokenResponse* response) const {
  if (!KnowsTenant(request.tenant)) {
    return Fail(400, "invalid_request", 90002,
                fmt::format("Tenant '{}' not found. Check to make sure you have the correct "
                            "tenant ID and are signing into the correct cloud.",
                            request.tenant.substr(0, 100)));
  }
  auto field = [&](const char* name) -> std::string {
    auto it = request.form.find(name);
    return it == request.form.end() ? "" : it->second;
  };
  const std::string grant_type = field("grant_type");
  if (grant_type.empty()) return MissingParameter("grant_type");
  if (grant_type != "client_credentials") {
    return Fail(400, "unsupported_grant_type", 70003,
                fmt::format("The app requested an unsupported grant type '{}'.",
                            grant_type.substr(0, 100)));
  }
  response->client_id = field("client_id").substr(0, 100);
  if (response->client_id.empty()) return MissingParameter("client_id");
  const std::string scope = field("scope");
  if (scope.empty()) return MissingParameter("scope");
  if (scope.size() > kMaxScopeChars) return Fail(400, "invalid_scope", 70011, "Scope too long.");
  Outcome outcome;
  Result<std::string> resource = ScopeResource(scope, &outcome);
  if (!resource.ok()) return outcome;
  if (!options_.resources.empty() && std::find(options_.resources.begin(), options_.resources.end(),
                                               *resource) == options_.resources.end()) {
    return Fail(400, "invalid_resource", 500011,
                fmt::format("The resource principal named {} was not found in the tenant named "
                            "{}.",
                            *resource, options_.tenant_id));
  }
  std::shared_ptr<const Application> app = directory_->FindApplication(response->client_id);
  if (app == nullptr) {
    return Fail(400, "unauthorized_client", 700016,
                fmt::format("Application with identifier '{}' was not found in the directory "
                            "'{}'.",
                            response->client_id, options_.tenant_id));
  }
  const std::string assertion = field("client_assertion");
  if (assertion.empty()) {
    return InvalidClient(7000218,
                         "The request body must contain the following parameter: "
                         "'client_assertion' or 'client_secret'. (meridian accepts no secrets.)");
  }
  const std::string assertion_type = field("client_assertion_type");
  if (assertion_type.empty()) return MissingParameter("client_assertion_type");
  if (assertion_type != kJwtBearerAssertionType) {
    return Fail(400, "invalid_request", 50027,
                fmt::format("client_assertion_type must be {}.", kJwtBearerAssertionType));
  }
  Result<ParsedJwt> parsed = ParseJwt(assertion);
  if (!parsed.ok()) {
    return Fail(400, "invalid_request", 50027,
                fmt::format("JWT token is invalid or malformed. {}", parsed.status().message()));
  }
  response->subject = parsed->sub.substr(0, kMaxSubjectChars);
  json claims = json::parse(parsed->claims_json, nullptr, /*allow_exceptions=*/false);
  if (parsed->iss == access_issuer_ || ToLower(parsed->typ) == kAccessTokenType ||
      claims.contains("meridian_token_use")) {
    return NoMatchingFederatedCredential(
        *parsed, " A token issued by this service is never accepted as an assertion.");
  }
  const int64_t now_s = request.now_unix_ms / 1000;
  std::optional<AttemptRef> attempt;
  outcome = parsed->iss == app->app_id && parsed->sub == app->app_id
                ? VerifyPrivateKeyJwt(*app, assertion, request.tenant, now_s)
                : VerifyFederated(*app, *parsed, assertion, now_s, &attempt);
  if (!outcome.ok()) return outcome;

  const int64_t lifetime_s =
      std::min(options_.access_token_lifetime_s, keys_->options().max_token_lifetime_s);
  Result<std::string> token =
      IssueAccessToken(*app, *resource, now_s, lifetime_s, attempt, &response->jti);
  if (!token.ok()) {
    return Fail(500, "temporarily_unavailable", 50000,
                fmt::format("There was an error issuing a token: {}", token.status().message()));
  }
  response->body = json{
      {"token_type", "Bearer"},
      {"expires_in", lifetime_s},
      {"ext_expires_in", lifetime_s},
      {"refresh_in", lifetime_s / 2},
      {"access_token",
       *token}}.dump();
  return Outcome{};
}

TokenService::Outcome TokenService::VerifyPrivateKeyJwt(const Application& app,
                                                        std::string_view assertion,
                                                        std::string_view tenant,
                                                        int64_t now_s) const {
  KeyLookup lookup = [&](std::string_view,
                         std::string_view kid) -> Result<std::shared_ptr<const PublicKey>> {
    return directory_->FindKey(app.app_id, kid);
  };
  VerifyOptions options;
  options.issuer = app.app_id;
  options.subject = app.app_id;
  options.now_unix_s = now_s;
  options.leeway_s = options_.leeway_s;
  // Entra accepts the token endpoint (v2 or v1) or the issuer, with the tenant as the client
  // wrote it in the URL.
  for (std::string_view spelling : {std::string_view(options_.tenant_id), tenant}) {
    std::string base = fmt::format("{}/{}", options_.authority, spelling);
    options.audiences.push_back(base + "/oauth2/v2.0/token");
    options.audiences.push_back(base + "/oauth2/token");
    options.audiences.push_back(base + "/v2.0");
  }
  JwtFailure failure;
  Result<ParsedJwt> verified = VerifyJwt(assertion, lookup, options, &failure);
  if (verified.ok()) return Outcome{};
  Result<ParsedJwt> parsed = ParseJwt(assertion);
  return FromJwtFailure(failure, parsed.ok() ? *parsed : ParsedJwt{}, now_s, false);
}

TokenService::Outcome TokenService::VerifyFederated(const Application& app, const ParsedJwt& parsed,
                                                    std::string_view assertion, int64_t now_s,
                                                    std::optional<AttemptRef>* attempt) const {
  const FederatedCredential* match = nullptr;
  for (const FederatedCredential& credential : app.federated_credentials) {
    if (credential.issuer == parsed.iss && credential.subject == parsed.sub) match = &credential;
  }
  if (match == nullptr) return NoMatchingFederatedCredential(parsed, "");
  IssuerKeySource* source = nullptr;
  for (IssuerKeySource* candidate : trusted_issuers_) {
    if (candidate->Trusts(parsed.iss)) {
      source = candidate;
      break;
    }
  }
  if (source == nullptr) {
    return NoMatchingFederatedCredential(parsed, " The assertion's issuer is not trusted here.");
  }
  KeyLookup lookup = [source](std::string_view iss, std::string_view kid) {
    return source->Find(iss, kid);
  };
  VerifyOptions options;
  options.issuer = match->issuer;
  options.subject = match->subject;
  options.audiences = match->audiences;
  options.now_unix_s = now_s;
  options.leeway_s = options_.leeway_s;
  JwtFailure failure;
  if (!VerifyJwt(assertion, lookup, options, &failure).ok()) {
    return FromJwtFailure(failure, parsed, now_s, true);
  }
  if (source->VouchesForAttempts()) {
    *attempt = ReadAttemptClaim(json::parse(parsed.claims_json, nullptr, false));
  }
  return Outcome{};
}

Result<std::string> TokenService::IssueAccessToken(const Application& app,
                                                   const std::string& resource, int64_t now_s,
                                                   int64_t lifetime_s,
                                                   const std::optional<AttemptRef>& attempt,
                                                   std::string* jti) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const SigningKey> key,
                   keys_->ActiveSigner(options_.signing_alg));
  std::set<std::string> role_names;
  json grants = json::array();
  for (const RoleGrant& grant : directory_->GrantsFor(app)) {
    role_names.insert(std::string(RoleName(grant.role)));
    grants.push_back({{"role", std::string(RoleName(grant.role))}, {"scope", grant.scope}});
  }
  *jti = NewGuid();
  json claims = {{"iss", access_issuer_},
                 {"aud", resource},
                 {"sub", app.subject()},
                 {"oid", app.app_id},
                 {"tid", options_.tenant_id},
                 {"azp", app.app_id},
                 {"appid", app.app_id},
                 {"idtyp", app.kind == PrincipalKind::kUser ? "user" : "app"},
                 {"roles", role_names},
                 {"meridian_grants", grants},
                 {"meridian_token_use", "access"},
                 {"iat", now_s},
                 {"nbf", now_s},
                 {"exp", now_s + lifetime_s},
                 {"jti", *jti},
                 {"ver", "2.0"}};
  if (attempt.has_value()) claims[kAttemptClaim] = AttemptClaimValue(*attempt);
  return SignJwt(*key, claims.dump(), kAccessTokenType);
}

Result<AccessPrincipal> TokenService::ValidateAccessToken(std::string_view token,
                                                          std::string_view audience,
                                                          int64_t now_unix_s) const {
  if (options_.validation_cache_entries == 0 || token.size() > kMaxTokenBytes) {
    return ValidateUncached(token, audience, now_unix_s);
  }
  std::string cache_key = fmt::format("{}\n{}", audience, token);
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(cache_key);
    if (it != cache_.end()) {
      // Same expiry rule as VerifyJwt: valid while now < exp + leeway.
      if (now_unix_s < it->second.expires_at_unix_s + options_.leeway_s) return it->second;
      cache_.erase(it);
      return absl::UnauthenticatedError("token refused (expired): the access token has expired");
    }
  }
  ASSIGN_OR_RETURN(AccessPrincipal principal, ValidateUncached(token, audience, now_unix_s));
  std::lock_guard lock(cache_mu_);
  if (cache_.size() >= options_.validation_cache_entries) cache_.clear();
  cache_.emplace(std::move(cache_key), principal);
  return principal;
}

Result<AccessPrincipal> TokenService::ValidateUncached(std::string_view token,
                                                       std::string_view audience,
                                                       int64_t now_unix_s) const {
  KeyLookup lookup = [this](std::string_view iss,
                            std::string_view kid) -> Result<std::shared_ptr<const PublicKey>> {
    if (iss != access_issuer_) return std::shared_ptr<const PublicKey>();
    return keys_->Lookup(kid);
  };
  VerifyOptions options;
  options.issuer = access_issuer_;
  options.audiences = {std::string(audience)};
  options.now_unix_s = now_unix_s;
  options.leeway_s = options_.leeway_s;
  ASSIGN_OR_RETURN(ParsedJwt parsed, VerifyJwt(token, lookup, options));
  // The claims were signed by this service, but a key that leaked must not crash the server:
  // read them defensively (value() throws on a type mismatch).
  try {
    json claims = json::parse(parsed.claims_json);
    if (parsed.typ != kAccessTokenType || claims.value("meridian_token_use", "") != "access") {
      return absl::UnauthenticatedError("token refused: not an access token of this service");
    }
    AccessPrincipal principal;
    principal.subject = parsed.sub;
    principal.app_id = claims.value("azp", "");
    principal.jti = parsed.jti;
    principal.expires_at_unix_s = parsed.exp.value_or(0);
    principal.person = claims.value("idtyp", "") == "user";
    principal.attempt = ReadAttemptClaim(claims);
    principal.roles = claims.value("roles", std::vector<std::string>());
    for (const json& grant : claims.value("meridian_grants", json::array())) {
      std::optional<Role> role = ParseRole(grant.at("role").get<std::string>());
      if (!role.has_value()) {
        return absl::UnauthenticatedError("token refused: unknown role in meridian_grants");
      }
      principal.grants.push_back(RoleGrant{*role, grant.at("scope").get<std::string>()});
    }
    return principal;
  } catch (const json::exception&) {
    return absl::UnauthenticatedError("token refused: unreadable claims");
  }
}

Status TokenService::Audit(const TokenRequest& request, const TokenResponse& response) const {
  if (audit_ == nullptr) return OkStatus();
  AuditEntry entry;
  entry.time_ms = request.now_unix_ms;
  entry.actor = response.client_id;
  entry.action = response.error_code == 0 ? "token.issue" : "token.refuse";
  auto scope = request.form.find("scope");
  entry.target = scope == request.form.end() ? "" : scope->second;
  entry.result = response.error_code == 0 ? "ok" : fmt::format("AADSTS{}", response.error_code);
  entry.correlation_id = response.correlation_id;
  entry.source_address = request.source_address;
  entry.detail =
      fmt::format("tenant={} subject={} jti={}", request.tenant, response.subject, response.jti);
  Result<AuditEntry> stored = audit_->Append(std::move(entry));
  if (!stored.ok()) spdlog::error("audit log append failed: {}", stored.status().ToString());
  return stored.status();
}

}  // namespace meridian::identity
