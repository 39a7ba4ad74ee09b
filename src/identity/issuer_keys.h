// IssuerKeySource: where the token service finds the public keys of a trusted external
// issuer (a Kubernetes cluster's OIDC issuer, GitHub Actions, meridian's own cluster issuer).
//
// Implementations: StaticIssuerKeys (below: keys given in code, for tests and fixed
// configurations), ClusterIssuer (cluster_issuer.h), and the OIDC-discovery-backed source of
// the credentials library.
//
// Thread safety: implementations must allow concurrent calls from many threads.
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "base/status.h"
#include "identity/jwt.h"

namespace meridian::identity {

class IssuerKeySource {
 public:
  virtual ~IssuerKeySource() = default;
  // The key `kid` of `issuer`. nullptr when the issuer has no such key; an error when the
  // keys could not be obtained (kUnavailable: retry later). Only called for trusted issuers.
  virtual Result<std::shared_ptr<const PublicKey>> Find(std::string_view issuer,
                                                        std::string_view kid) = 0;
  // Whether tokens from `issuer` (compared exactly) may be checked against this source.
  virtual bool Trusts(std::string_view issuer) const = 0;
  // Whether this source's tokens may name a meridian job attempt (cluster_issuer.h): only
  // meridian's own cluster issuer, which mints them for the operator that runs the attempt.
  virtual bool VouchesForAttempts() const { return false; }
};

// Keys held in memory, per issuer.
class StaticIssuerKeys final : public IssuerKeySource {
 public:
  // Trusts `issuer` from now on and adds `key` to its keys (replacing one with the same kid).
  void Add(std::string issuer, std::shared_ptr<const PublicKey> key);
  // Trusts `issuer` with no key yet.
  void Trust(std::string issuer);
  void Remove(std::string_view issuer);

  Result<std::shared_ptr<const PublicKey>> Find(std::string_view issuer,
                                                std::string_view kid) override;
  bool Trusts(std::string_view issuer) const override;

 private:
  using Keys = std::map<std::string, std::shared_ptr<const PublicKey>, std::less<>>;
  mutable std::shared_mutex mu_;
  std::map<std::string, Keys, std::less<>> issuers_;  // protected by mu_
};

}  // namespace meridian::identity
