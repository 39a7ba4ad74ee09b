// TokenService: Microsoft Entra ID's token endpoint, discovery documents and access-token
// validation, as pure logic over data (the HTTPS layer maps requests in and responses out).
//
// Token request (POST {authority}/{tenant}/oauth2/v2.0/token, form fields already decoded):
//   grant_type=client_credentials, client_id, scope=<resource>/.default (one resource),
//   client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer,
//   client_assertion = either
//     a federated token from a trusted issuer, matched against the app's federated
//       credentials (iss and sub exact; aud must contain the credential's audience), or
//     private_key_jwt: iss = sub = client_id, signed by a key registered for the app, aud =
//       the token endpoint URL or the issuer (Entra accepts both).
//   Unknown extra fields are ignored (MSAL sends many). A token this service issued is never
//   accepted as an assertion (its issuer, its typ "at+jwt" and its "meridian_token_use" claim
//   each give it away).
//
// Errors, in Entra's JSON shape {error, error_description "AADSTSnnnn: ...", error_codes,
// timestamp, trace_id, correlation_id, error_uri}:
//   400 invalid_request         90002 unknown tenant; 900144 missing parameter (named);
//                               50027 malformed assertion or wrong client_assertion_type;
//                               900561 method other than POST (HTTP 405 here)
//   400 unsupported_grant_type  70003
//   400 invalid_scope           700022 several resources; 1002012 scope without /.default
//   400 invalid_resource        500011 a resource not served here
//   400 unauthorized_client     700016 unknown application
//   401 invalid_client          7000218 no assertion; 700027 bad signature or unknown key
//                               (also a private_key_jwt for another audience); 700024
//                               assertion outside its valid time; 70021 no matching federated
//                               credential (issuer, subject or audience; an untrusted issuer;
//                               one of this service's own tokens)
//
// Access tokens (JWT, typ "at+jwt", ES256 by default): iss "{authority}/{tenant}/v2.0", aud
// the resource, sub (app id, or the user subject), oid, tid, azp, appid, idtyp ("app" or
// "user"), roles (distinct role names, Entra style), "meridian_grants" ([{"role", "scope"}]:
// which role at which scope, see roles.h), "meridian_token_use": "access", iat, nbf, exp,
// jti, ver "2.0"; and "meridian_attempt" when the assertion was a job attempt's token from an
// issuer that vouches for attempts (cluster_issuer.h), copied from it.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "identity/authz.h"
#include "identity/directory.h"
#include "identity/issuer_keys.h"
#include "identity/keys.h"
#include "identity/roles.h"

namespace meridian::identity {

class AuditLog;

inline constexpr char kJwtBearerAssertionType[] =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
inline constexpr char kAccessTokenType[] = "at+jwt";

struct TokenServiceOptions {
  std::string authority;                   // "https://host:port", no trailing slash
  std::string tenant_id;                   // a GUID; the one tenant this service serves
  int64_t access_token_lifetime_s = 3600;  // capped at the key manager's max_token_lifetime_s
  // ES256 by default: signing is ~30x cheaper than RSA-2048, and signing bounds how many
  // exchanges a core serves. Clients treat access tokens as opaque; only verifiers reading
  // the JWKS see the algorithm, and ES256 is in every JOSE library.
  JwtAlg signing_alg = JwtAlg::kES256;
  // Resources a scope may name (e.g. "api://meridian"); empty: any.
  std::vector<std::string> resources;
  int64_t leeway_s = kDefaultLeewaySeconds;
  // Access tokens already validated, kept (by their exact text and audience) until they
  // expire, so that a client presenting the same token again skips the signature check.
  // 0 disables the cache. When full, it is emptied and refilled.
  size_t validation_cache_entries = 10'000;
};

struct TokenRequest {
  std::map<std::string, std::string> form;  // URL-decoded fields
  std::string tenant;                       // the {tenant} path segment
  std::string source_address;               // for the audit log
  std::string correlation_id;               // the client-request-id header; "" to generate
  int64_t now_unix_ms = 0;
};

struct TokenResponse {
  int http_status = 200;
  std::string body;  // JSON
  // For logs and the audit trail (never the token itself):
  std::string client_id;       // as sent
  std::string subject;         // the assertion's sub when it was read, else ""
  int error_code = 0;          // the AADSTS number; 0 on success
  std::string jti;             // the issued token's jti on success
  std::string correlation_id;  // as answered
};

// Who an access token speaks for, once validated.
struct AccessPrincipal {
  std::string subject;  // sub: the app id, or the user subject
  std::string app_id;   // azp
  bool person = false;  // idtyp "user"
  std::vector<std::string> roles;
  std::vector<RoleGrant> grants;
  std::optional<AttemptRef> attempt;  // meridian_attempt
  std::string jti;
  int64_t expires_at_unix_s = 0;
};

// The Entra-shaped OpenID configuration of `tenant` at `authority`.
std::string OpenIdConfigurationJson(std::string_view authority, std::string_view tenant);

class TokenService {
 public:
  // Everything pointed to must outlive the service. `audit` may be null; when given, every
  // request is recorded there, and a token whose issue cannot be recorded is not handed out
  // (503).
  TokenService(TokenServiceOptions options, KeyManager* keys, Directory* directory,
               std::vector<IssuerKeySource*> trusted_issuers, AuditLog* audit = nullptr);

  TokenResponse HandleTokenRequest(const TokenRequest& request) const;
  // The answer to any method other than POST on the token endpoint (HTTP 405, AADSTS900561).
  TokenResponse MethodNotAllowed(std::string_view method, int64_t now_unix_ms,
                                 std::string_view correlation_id = "") const;

  // The discovery document for `tenant` ("" for the tenant-less
  // /.well-known/openid-configuration, which describes this service's one tenant).
  // kNotFound for an unknown tenant.
  Result<std::string> OpenIdConfiguration(std::string_view tenant = "") const;
  std::string JwksJson() const;  // served at {authority}/{tenant}/discovery/v2.0/keys
  bool KnowsTenant(std::string_view tenant) const;
  std::string AccessTokenIssuer() const;  // "{authority}/{tenant_id}/v2.0"
  std::string TokenEndpoint() const;      // "{authority}/{tenant_id}/oauth2/v2.0/token"

  // The per-request check of the API: signature by a published key, iss, aud == `audience`,
  // time with leeway, and that it is one of this service's access tokens. kUnauthenticated
  // saying why. A token seen before (same text, same audience) is answered from the cache
  // with its expiry checked again; a published key is never withdrawn before the tokens it
  // signed have expired, so a cached answer cannot outlive its key.
  Result<AccessPrincipal> ValidateAccessToken(std::string_view token, std::string_view audience,
                                              int64_t now_unix_s) const;

  // An answer being built (an Entra error, or success); defined in token_service.cc.
  struct Outcome;

 private:
  Outcome Exchange(const TokenRequest& request, TokenResponse* response) const;
  Outcome VerifyPrivateKeyJwt(const Application& app, std::string_view assertion,
                              std::string_view tenant, int64_t now_s) const;
  // On success sets `attempt` to the assertion's job attempt when its issuer vouches for one.
  Outcome VerifyFederated(const Application& app, const ParsedJwt& parsed,
                          std::string_view assertion, int64_t now_s,
                          std::optional<AttemptRef>* attempt) const;
  Result<std::string> IssueAccessToken(const Application& app, const std::string& resource,
                                       int64_t now_s, int64_t lifetime_s,
                                       const std::optional<AttemptRef>& attempt,
                                       std::string* jti) const;
  std::string ErrorBody(const Outcome& outcome, int64_t now_unix_ms,
                        const std::string& correlation_id) const;
  // Records the request's outcome: action "token.issue" or "token.refuse", actor the
  // client_id, target the scope, result "ok" or "AADSTSnnnn"; never the token.
  Status Audit(const TokenRequest& request, const TokenResponse& response) const;
  Result<AccessPrincipal> ValidateUncached(std::string_view token, std::string_view audience,
                                           int64_t now_unix_s) const;

  // Constant after construction.
  const TokenServiceOptions options_;
  KeyManager* const keys_;
  Directory* const directory_;
  const std::vector<IssuerKeySource*> trusted_issuers_;
  AuditLog* const audit_;
  const std::string access_issuer_;

  mutable std::mutex cache_mu_;
  // Key: audience + '\n' + token. Protected by cache_mu_.
  mutable std::unordered_map<std::string, AccessPrincipal> cache_;
};

}  // namespace meridian::identity
