// The one authentication step every API request passes through, and the principal it yields.
//
// TokenAuthenticator is the server's: the request must carry "Authorization: Bearer <access
// token>" issued by this control plane's token service for the audience "api://meridian".
// What the principal may then do is decided per route by identity::Authorize over its role
// grants (api.cc maps each route to an action and a target).
//
// LocalTrustAuthenticator admits every caller as an administrator. It exists for unit tests
// of the API that are not about identity; `meridian server` never uses it. There is
// deliberately no shared secret anywhere in between.
#pragma once

#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "identity/authz.h"
#include "identity/roles.h"
#include "net/http_types.h"

namespace meridian::identity {
class TokenService;
}

namespace meridian::control {

inline constexpr char kControlPlaneAudience[] = "api://meridian";
// Longer Authorization headers are refused before any parsing.
inline constexpr size_t kMaxBearerTokenBytes = 16 * 1024;

// What Authorize decides on (subject, whether a person, grants, a workload's attempt), and
// what the API shows besides.
struct Principal : identity::Caller {
  std::string app_id;              // azp
  std::vector<std::string> roles;  // distinct role names, for display
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // kUnauthenticated (401) for a missing or bad credential, saying why.
  virtual Result<Principal> Authenticate(const net::HttpRequest& request) = 0;
};

class LocalTrustAuthenticator final : public Authenticator {
 public:
  Result<Principal> Authenticate(const net::HttpRequest& request) override;
};

// Thread safety: Authenticate may be called from any thread (TokenService is thread-safe).
class TokenAuthenticator final : public Authenticator {
 public:
  // `tokens` and `clock` must outlive the authenticator.
  TokenAuthenticator(const identity::TokenService* tokens, const base::Clock* clock)
      : tokens_(tokens), clock_(clock) {}
  Result<Principal> Authenticate(const net::HttpRequest& request) override;

 private:
  const identity::TokenService* const tokens_;
  const base::Clock* const clock_;
};

}  // namespace meridian::control
