// TokenCredential: something that yields bearer access tokens for a scope, and the simple
// credentials built from others (a static token for tests, a chain).
//
// The credentials that talk to a token endpoint (workload identity, private_key_jwt) live in
// their own headers; CachingCredential (caching_credential.h) adds caching, refresh ahead of
// expiry and single flight to any of them; DefaultCredentialFromEnvironment
// (default_credential.h) picks one the way Azure's client libraries do.
//
// Thread safety: every TokenCredential may be called from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace meridian::identity::credentials {

struct AccessToken {
  std::string token;
  int64_t expires_on_unix_s = 0;
  // When a cache should fetch a new token although this one is still valid (<= expires_on).
  int64_t refresh_on_unix_s = 0;
};

class TokenCredential {
 public:
  virtual ~TokenCredential() = default;

  // A token for `scope` (e.g. "api://meridian/.default"). Errors: kInvalidArgument for a bad
  // configuration or scope, kUnauthenticated/kPermissionDenied when the token service
  // refused, kUnavailable/kDeadlineExceeded when it could not be reached (after retries),
  // kFailedPrecondition when the credential is not set up (a missing file or variable).
  virtual Result<AccessToken> GetToken(const std::string& scope) = 0;

  // The tenant tokens come from ("" when it does not apply); part of the cache key.
  virtual std::string tenant_id() const { return ""; }
};

// Reads an environment variable; "" when unset. Tests pass their own.
using EnvLookup = std::function<std::string(const std::string& name)>;
EnvLookup ProcessEnvironment();

// The same token for every scope. For tests and for tokens obtained elsewhere.
class StaticTokenCredential final : public TokenCredential {
 public:
  explicit StaticTokenCredential(AccessToken token) : token_(std::move(token)) {}
  Result<AccessToken> GetToken(const std::string& scope) override;

 private:
  const AccessToken token_;
};

// Tries each credential in order and returns the first token. When all fail the error is
// kUnauthenticated listing every credential's own message, in order.
class ChainedTokenCredential final : public TokenCredential {
 public:
  // `names` label the credentials in the error message (same length as `credentials`,
  // or empty for "credential 1", "credential 2", ...).
  explicit ChainedTokenCredential(std::vector<std::shared_ptr<TokenCredential>> credentials,
                                  std::vector<std::string> names = {});
  Result<AccessToken> GetToken(const std::string& scope) override;

 private:
  const std::vector<std::shared_ptr<TokenCredential>> credentials_;
  const std::vector<std::string> names_;
};

// The shape storage and other clients take: a function from scope to bearer token.
// The function shares ownership of `credential`.
std::function<Result<std::string>(const std::string& scope)> AsTokenSource(
    std::shared_ptr<TokenCredential> credential);

}  // namespace meridian::identity::credentials
