// The one authentication/authorisation step every API request passes through.
//
// Until workload identity lands (token service, roles), the only implementation is
// LocalTrustAuthenticator: it admits every caller as the local administrator, which is safe
// only because the server listens on loopback by default; `meridian server` warns loudly
// when bound elsewhere. There is deliberately no shared secret in between.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "net/http_types.h"

namespace meridian::control {

struct Principal {
  std::string subject;             // who, for logs and (later) the audit trail
  std::vector<std::string> roles;  // "Admin", "Developer", "Viewer", "Operator"
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // kUnauthenticated (401) for a missing or bad credential, kPermissionDenied (403) for a
  // good one without the role the request needs.
  virtual Result<Principal> Authenticate(const net::HttpRequest& request) = 0;
};

class LocalTrustAuthenticator final : public Authenticator {
 public:
  Result<Principal> Authenticate(const net::HttpRequest& request) override {
    return Principal{"local-admin", {"Admin"}};
  }
};

}  // namespace meridian::control
