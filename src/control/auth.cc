#include "control/auth.h"

#include <strings.h>

#include "fmt/format.h"
#include "identity/token_service.h"

namespace meridian::control {

Result<Principal> LocalTrustAuthenticator::Authenticate(const net::HttpRequest&) {
  Principal principal;
  principal.subject = "local-admin";
  principal.person = true;
  principal.grants = {{identity::Role::kAdmin, "/"}};
  principal.roles = {"Admin"};
  return principal;
}

Result<Principal> TokenAuthenticator::Authenticate(const net::HttpRequest& request) {
  std::string header = request.Header("authorization");
  if (header.empty()) {
    return absl::UnauthenticatedError(
        "no access token: send 'Authorization: Bearer <token>' (run `meridian login`)");
  }
  if (header.size() > kMaxBearerTokenBytes) {
    return absl::UnauthenticatedError("the Authorization header is too large");
  }
  constexpr std::string_view kScheme = "Bearer ";
  if (header.size() <= kScheme.size() ||
      strncasecmp(header.c_str(), kScheme.data(), kScheme.size()) != 0) {
    return absl::UnauthenticatedError("the Authorization header is not 'Bearer <token>'");
  }
  std::string_view token = std::string_view(header).substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  Result<identity::AccessPrincipal> validated =
      tokens_->ValidateAccessToken(token, kControlPlaneAudience, clock_->NowUnixMs() / 1000);
  if (!validated.ok()) {
    return absl::UnauthenticatedError(
        fmt::format("access token refused: {}", validated.status().message()));
  }
  Principal principal;
  principal.subject = std::move(validated->subject);
  principal.person = validated->person;
  principal.grants = std::move(validated->grants);
  principal.attempt = std::move(validated->attempt);
  principal.app_id = std::move(validated->app_id);
  principal.roles = std::move(validated->roles);
  return principal;
}

}  // namespace meridian::control
