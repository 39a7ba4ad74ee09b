#include "identity/issuer_keys.h"

#include <mutex>

namespace meridian::identity {

void StaticIssuerKeys::Add(std::string issuer, std::shared_ptr<const PublicKey> key) {
  std::unique_lock lock(mu_);
  std::string kid = key->kid();
  issuers_[std::move(issuer)][std::move(kid)] = std::move(key);
}

void StaticIssuerKeys::Trust(std::string issuer) {
  std::unique_lock lock(mu_);
  issuers_[std::move(issuer)];
}

void StaticIssuerKeys::Remove(std::string_view issuer) {
  std::unique_lock lock(mu_);
  if (auto it = issuers_.find(issuer); it != issuers_.end()) issuers_.erase(it);
}

Result<std::shared_ptr<const PublicKey>> StaticIssuerKeys::Find(std::string_view issuer,
                                                                std::string_view kid) {
  std::shared_lock lock(mu_);
  auto keys = issuers_.find(issuer);
  if (keys == issuers_.end()) return std::shared_ptr<const PublicKey>();
  auto key = keys->second.find(kid);
  return key == keys->second.end() ? nullptr : key->second;
}

bool StaticIssuerKeys::Trusts(std::string_view issuer) const {
  std::shared_lock lock(mu_);
  return issuers_.count(issuer) > 0;
}

}  // namespace meridian::identity
