// TokenEndpointClient: the client half of Microsoft Entra's client-credentials exchange with
// a JWT client assertion, spoken to meridian's token service or to real Entra ID alike:
//
//   POST {authority}/{tenant}/oauth2/v2.0/token   (application/x-www-form-urlencoded)
//   grant_type=client_credentials & client_id & scope & client_assertion_type=
//   urn:ietf:params:oauth:client-assertion-type:jwt-bearer & client_assertion
//
// Success is {token_type, expires_in, ext_expires_in, refresh_in, access_token}; an error is
// Entra's {error, error_description: "AADSTSnnnn: ...", error_codes}, returned as a Status
// that quotes error_description.
//
// The authority must be https:// (Microsoft's libraries refuse plain http too): anything
// else is kInvalidArgument at Create. The tenant must be a GUID or a domain name.
//
// Retries: connection failures (kUnavailable), timeouts (kDeadlineExceeded), 429 and 5xx are
// retried up to retry.max_attempts in all, waiting exponential backoff with jitter or what
// Retry-After says (capped). Other 4xx are final at once. When the attempts run out the
// result is kUnavailable (kDeadlineExceeded if the last one timed out), naming the URL.
//
// Errors of a refused request: HTTP 400/401 kUnauthenticated, 403 kPermissionDenied, other
// 4xx kInvalidArgument; a 2xx body that is not a token response is kInternal. Tokens never
// appear in messages or logs.
//
// Thread safety: Exchange may be called from many threads at once (one HttpClient per call).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "identity/credentials/credential.h"
#include "net/http_client.h"

namespace meridian::identity::credentials {

inline constexpr char kDefaultAuthorityHost[] = "https://login.microsoftonline.com";
inline constexpr char kJwtBearerAssertionType[] =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
// Token responses are small; anything larger is not one.
inline constexpr int64_t kMaxTokenResponseBytes = 1 << 20;
// How far ahead of `exp` a token is refreshed when the service gives no refresh_in.
inline constexpr int64_t kRefreshBeforeExpiryS = 5 * 60;

struct RetryPolicy {
  int max_attempts = 4;  // in all, the first included; 1 disables retries
  int64_t initial_backoff_ms = 500;
  int64_t max_backoff_ms = 10'000;
  int64_t max_retry_after_ms = 60'000;  // a longer Retry-After is cut to this
};

struct TokenEndpointOptions {
  std::string authority_host = kDefaultAuthorityHost;  // https only; a path prefix is kept
  std::string tenant_id;                               // GUID or domain name
  // ca_file: meridian's local CA when talking to meridian; empty for the system store.
  net::HttpClientOptions http;
  RetryPolicy retry;
  std::function<void(int64_t ms)> sleep;  // nullptr: sleep for real (tests record instead)
  const base::Clock* clock = nullptr;     // not owned; nullptr: the system clock
  uint64_t jitter_seed = 0;               // 0: seeded from the OS
};

// "https://host[:port][/prefix]" without a trailing slash, or kInvalidArgument.
Result<std::string> NormalizeAuthorityHost(std::string_view authority_host);

// When to refresh a token issued at `now_unix_s` that lives `expires_in_s`: at refresh_in
// when the service sent one (and it is sooner than expiry); else kRefreshBeforeExpiryS before
// expiry; for tokens too short for that, at half their life.
int64_t RefreshOnUnixS(int64_t now_unix_s, int64_t expires_in_s,
                       std::optional<int64_t> refresh_in_s);

// Parses a successful token response body. kInternal naming what is wrong.
Result<AccessToken> ParseTokenResponse(std::string_view body, int64_t now_unix_s);

// Turns an error response into a Status quoting Entra's error and error_description.
Status TokenErrorStatus(int http_status, std::string_view body, std::string_view url);

class TokenEndpointClient {
 public:
  static Result<std::unique_ptr<TokenEndpointClient>> Create(TokenEndpointOptions options);

  // https://{authority}/{tenant}/oauth2/v2.0/token: also the `aud` of a private_key_jwt
  // assertion.
  const std::string& token_url() const { return token_url_; }
  const std::string& tenant_id() const { return options_.tenant_id; }
  const base::Clock& clock() const { return *options_.clock; }

  // Exchanges `client_assertion` (a federated token or a signed JWT) for an access token.
  Result<AccessToken> Exchange(const std::string& client_id, const std::string& scope,
                               const std::string& client_assertion);

 private:
  TokenEndpointClient(TokenEndpointOptions options, std::string token_url);
  int64_t BackoffMs(int attempt);
  // -1 when the response carries no usable Retry-After.
  int64_t RetryAfterMs(const net::HttpResponse& response) const;

  // Constant after construction.
  const TokenEndpointOptions options_;
  const std::string token_url_;

  std::mutex jitter_mu_;
  std::mt19937_64 jitter_;  // guarded by jitter_mu_
};

}  // namespace meridian::identity::credentials
