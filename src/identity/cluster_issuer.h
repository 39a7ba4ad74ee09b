// ClusterIssuer: for LOCAL cloud resources meridian plays the part a Kubernetes cluster's
// OIDC issuer plays on AKS: it mints the projected service-account tokens that operators and
// job attempts exchange at the token service.
//
// Each cloud resource is its own issuer, "{authority}/clusters/<resource>", as each
// Kubernetes cluster is: a federated credential that names one cluster's issuer cannot be
// satisfied by a token minted for another. Tokens look like Kubernetes' own: typ "JWT",
// RS256, sub "system:serviceaccount:<namespace>:<name>", aud [audience], iat/nbf/exp, jti
// and a "kubernetes.io" claim. They are signed with the KeyManager's keys but cannot pass
// for access tokens: another issuer, another typ, no "meridian_token_use" claim.
//
// A job attempt's token also names the attempt it was minted for, in the claim
// "meridian_attempt": {"job_id", "attempt", "epoch"}. The token service carries that claim
// into the access token (so the API can let a workload read its own job and nothing else)
// only from issuers that vouch for it: this one, never an external issuer.
//
// It is also an IssuerKeySource, so the token service trusts the tokens it mints.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "identity/authz.h"
#include "identity/directory.h"
#include "identity/issuer_keys.h"
#include "identity/keys.h"

namespace meridian::identity {

inline constexpr int64_t kMaxServiceAccountTokenLifetimeS = 3600;
inline constexpr char kAttemptClaim[] = "meridian_attempt";

// The "meridian_attempt" value for `attempt`, and back. ReadAttemptClaim gives nullopt when
// `claims` (a JWT's claims object) has no such claim or a malformed one (no job id, wrong
// types, a negative attempt or epoch).
nlohmann::json AttemptClaimValue(const AttemptRef& attempt);
std::optional<AttemptRef> ReadAttemptClaim(const nlohmann::json& claims);

struct ClusterIssuerOptions {
  std::string authority;  // "https://host:port", no trailing slash
};

class ClusterIssuer final : public IssuerKeySource {
 public:
  // `keys` and `clock` must outlive the issuer.
  ClusterIssuer(KeyManager* keys, base::Clock* clock, ClusterIssuerOptions options);

  // "{authority}/clusters/<resource>".
  std::string IssuerFor(std::string_view resource) const;

  // A token for service account <namespace>/<name> of cloud resource `resource`, valid for
  // `lifetime_s` (1 .. min(1 h, the key manager's max_token_lifetime_s)), naming `attempt`
  // when given. kInvalidArgument naming the field for a bad name or lifetime.
  Result<std::string> MintServiceAccountToken(
      std::string_view resource, std::string_view namespace_name, std::string_view name,
      std::string_view audience = kDefaultFederatedAudience,
      int64_t lifetime_s = kMaxServiceAccountTokenLifetimeS,
      const std::optional<AttemptRef>& attempt = std::nullopt) const;

  // The discovery document of one resource's issuer (served at
  // "{issuer}/.well-known/openid-configuration"); its jwks_uri is "{issuer}/openid/v1/jwks"
  // and serves the KeyManager's JwksJson().
  std::string OpenIdConfigurationJson(std::string_view resource) const;

  // IssuerKeySource: trusts "{authority}/clusters/<valid resource name>" only.
  Result<std::shared_ptr<const PublicKey>> Find(std::string_view issuer,
                                                std::string_view kid) override;
  bool Trusts(std::string_view issuer) const override;
  bool VouchesForAttempts() const override { return true; }

 private:
  // Constant after construction.
  KeyManager* const keys_;
  base::Clock* const clock_;
  const ClusterIssuerOptions options_;
  const std::string prefix_;  // "{authority}/clusters/"
};

}  // namespace meridian::identity
