// OidcIssuerKeys: the public keys of trusted external issuers (a Kubernetes cluster's OIDC
// issuer, another meridian, GitHub Actions), found by OpenID Connect discovery:
//
//   GET {issuer}/.well-known/openid-configuration  -> its `issuer` must equal the configured
//                                                      issuer exactly, `jwks_uri` must be https
//   GET {jwks_uri}                                  -> {"keys": [JWK, ...]}
//
// Only signature keys meridian verifies are kept: RSA (RS256) and EC P-256 (ES256), `use`
// absent or "sig", `alg` absent or RS256/ES256; others are skipped. Keys are found by the
// JWK's `kid` (its SHA-256 kid when it has none).
//
// Caching: keys are cached per issuer. An unknown kid fetches the keys again at most once per
// min_refetch_interval_s per issuer, so a flood of tokens with made-up kids costs one fetch a
// minute; keys older than max_key_age_s are fetched again on the next Find (same rate
// limit), and kept when that fetch fails. One fetch per issuer at a time.
//
// Errors: an issuer that is not https:// is kInvalidArgument at Create. A fetch that fails
// (connection, HTTP status, body too large) is kUnavailable naming the URL; a discovery
// document whose `issuer` differs, or that is not valid, is kFailedPrecondition. Until the
// next allowed fetch, Find for an issuer whose keys were never obtained repeats that error.
// Find for an issuer not in the list, or a kid the issuer does not have, is nullptr.
//
// Thread safety: every method may be called from many threads at once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "identity/issuer_keys.h"
#include "identity/jwt.h"
#include "net/http_client.h"

namespace meridian::identity::credentials {

struct OidcIssuerKeysOptions {
  std::vector<std::string> trusted_issuers;  // https URLs, compared exactly
  net::HttpClientOptions http;               // ca_file, timeouts
  const base::Clock* clock = nullptr;        // not owned; nullptr: the system clock
  int64_t min_refetch_interval_s = 60;
  int64_t max_key_age_s = 3600;
  int max_keys_per_issuer = 100;
  int64_t max_document_bytes = 1 << 20;
};

// The keys an issuer publishes, by kid.
using IssuerKeyMap = std::map<std::string, std::shared_ptr<const PublicKey>, std::less<>>;

// Parses a JWKS document, skipping keys meridian does not verify with (see above).
// kFailedPrecondition when it is not {"keys": [...]}.
Result<IssuerKeyMap> ParseJwks(std::string_view jwks_json, int max_keys);

class OidcIssuerKeys final : public IssuerKeySource {
 public:
  static Result<std::unique_ptr<OidcIssuerKeys>> Create(OidcIssuerKeysOptions options);

  Result<std::shared_ptr<const PublicKey>> Find(std::string_view issuer,
                                                std::string_view kid) override;
  bool Trusts(std::string_view issuer) const override;

 private:
  struct IssuerState {
    std::mutex fetch_mu;  // held while fetching: one fetch per issuer at a time
    // Protected by OidcIssuerKeys::mu_.
    IssuerKeyMap keys;
    bool have_keys = false;
    bool fetching = false;
    uint64_t fetches = 0;              // attempts started
    int64_t last_attempt_unix_ms = 0;  // of the latest attempt
    int64_t last_success_unix_ms = 0;
    Status last_error;
  };

  explicit OidcIssuerKeys(OidcIssuerKeysOptions options);
  // Whether a fetch is due now for `state` given whether `kid` is known. Needs mu_.
  bool FetchDueLocked(const IssuerState& state, bool known, int64_t now_ms) const;
  // The answer from the cache alone. Needs mu_.
  Result<std::shared_ptr<const PublicKey>> AnswerLocked(const IssuerState& state,
                                                        std::string_view kid) const;
  Result<IssuerKeyMap> FetchKeys(const std::string& issuer) const;
  Result<std::string> Get(net::HttpClient& http, const std::string& url) const;

  // Constant after construction.
  const OidcIssuerKeysOptions options_;

  std::mutex mu_;
  // One entry per trusted issuer, made at construction; the map itself never changes.
  std::map<std::string, std::unique_ptr<IssuerState>, std::less<>> issuers_;
};

}  // namespace meridian::identity::credentials
