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
// It is also an IssuerKeySource, so the token service trusts the tokens it mints.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "identity/directory.h"
#include "identity/issuer_keys.h"
#include "identity/keys.h"

namespace meridian::identity {

inline constexpr int64_t kMaxServiceAccountTokenLifetimeS = 3600;

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
  // `lifetime_s` (1 .. min(1 h, the key manager's max_token_lifetime_s)). kInvalidArgument
  // naming the field for a bad name or lifetime.
  Result<std::string> MintServiceAccountToken(
      std::string_view resource, std::string_view namespace_name, std::string_view name,
      std::string_view audience = kDefaultFederatedAudience,
      int64_t lifetime_s = kMaxServiceAccountTokenLifetimeS) const;

  // The discovery document of one resource's issuer (served at
  // "{issuer}/.well-known/openid-configuration"); its jwks_uri is "{issuer}/openid/v1/jwks"
  // and serves the KeyManager's JwksJson().
  std::string OpenIdConfigurationJson(std::string_view resource) const;

  // IssuerKeySource: trusts "{authority}/clusters/<valid resource name>" only.
  Result<std::shared_ptr<const PublicKey>> Find(std::string_view issuer,
                                                std::string_view kid) override;
  bool Trusts(std::string_view issuer) const override;

 private:
  // Constant after construction.
  KeyManager* const keys_;
  base::Clock* const clock_;
  const ClusterIssuerOptions options_;
  const std::string prefix_;  // "{authority}/clusters/"
};

}  // namespace meridian::identity
