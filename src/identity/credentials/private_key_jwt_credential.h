// PrivateKeyJwtCredential: private_key_jwt client authentication (RFC 7523) for people and
// scripts: a JWT signed with a private key kept in a 0600 file proves who the client is.
//
// Each exchange signs a fresh assertion {iss = sub = client id, aud = the token endpoint
// URL, jti random, iat = nbf = now, exp = now + assertion_lifetime_s} with the key (RS256 or
// ES256 by key type). With a certificate file the header also carries `x5t#S256` (base64url
// SHA-256 of the DER certificate), which real Entra ID needs to find a certificate
// credential; meridian's token service finds the key by `kid`.
//
// The key file is refused when group or others may read it (like ssh does with its keys):
// kFailedPrecondition saying to chmod 600. It is read once, at Create.
//
// No caching here: wrap it in a CachingCredential.
//
// Thread safety: GetToken may be called from many threads at once.
#pragma once

#include <memory>
#include <string>

#include "identity/credentials/credential.h"
#include "identity/credentials/token_endpoint.h"
#include "identity/jwt.h"

namespace meridian::identity::credentials {

inline constexpr int64_t kDefaultAssertionLifetimeS = 10 * 60;

struct PrivateKeyJwtOptions {
  std::string client_id;
  std::string private_key_file;  // PEM (PKCS#8 or traditional), mode 0600 or stricter
  std::string certificate_file;  // optional PEM certificate: adds x5t#S256
  int64_t assertion_lifetime_s = kDefaultAssertionLifetimeS;
  TokenEndpointOptions endpoint;  // authority_host, tenant_id, CA file, retries
};

// The ssh-style check: kFailedPrecondition when `path` is readable or writable by group or
// others, kNotFound when it does not exist.
Status CheckPrivateFileMode(const std::string& path);

class PrivateKeyJwtCredential final : public TokenCredential {
 public:
  static Result<std::unique_ptr<PrivateKeyJwtCredential>> Create(PrivateKeyJwtOptions options);

  Result<AccessToken> GetToken(const std::string& scope) override;
  std::string tenant_id() const override { return client_->tenant_id(); }

  // The client assertion the next exchange would send (exposed for tests and tools).
  Result<std::string> MakeAssertion() const;

 private:
  PrivateKeyJwtCredential(PrivateKeyJwtOptions options, std::shared_ptr<const SigningKey> key,
                          std::string extra_header_json,
                          std::unique_ptr<TokenEndpointClient> client);

  // Constant after construction.
  const PrivateKeyJwtOptions options_;
  const std::shared_ptr<const SigningKey> key_;
  const std::string extra_header_json_;  // {"x5t#S256": ...} or ""
  const std::unique_ptr<TokenEndpointClient> client_;
};

}  // namespace meridian::identity::credentials
