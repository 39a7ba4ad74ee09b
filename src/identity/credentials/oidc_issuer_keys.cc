#include "identity/credentials/oidc_issuer_keys.h"

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace meridian::identity::credentials {
namespace {

using nlohmann::json;

std::string StringMember(const json& object, const char* name) {
  const auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Whether a JWK is a signature key of a kind meridian verifies with.
bool IsSupportedSignatureKey(const json& jwk) {
  const std::string use = StringMember(jwk, "use");
  if (jwk.contains("use") && use != "sig") return false;
  const std::string kty = StringMember(jwk, "kty");
  const std::string alg = StringMember(jwk, "alg");
  if (kty == "RSA") return !jwk.contains("alg") || alg == "RS256";
  if (kty == "EC") {
    return StringMember(jwk, "crv") == "P-256" && (!jwk.contains("alg") || alg == "ES256");
  }
  return false;
}

}  // namespace

Result<IssuerKeyMap> ParseJwks(std::string_view jwks_json, int max_keys) {
  const json parsed = json::parse(jwks_json, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || !parsed.contains("keys") || !parsed["keys"].is_array()) {
    return absl::FailedPreconditionError("the JWKS is not a JSON object with a \"keys\" array");
  }
  IssuerKeyMap keys;
  for (const json& jwk : parsed["keys"]) {
    if (static_cast<int>(keys.size()) >= max_keys) {
      spdlog::warn("JWKS has more than {} keys; the rest are ignored", max_keys);
      break;
    }
    if (!jwk.is_object() || !IsSupportedSignatureKey(jwk)) continue;
    Result<std::shared_ptr<const PublicKey>> key = PublicKey::FromJwk(jwk.dump());
    if (!key.ok()) {
      spdlog::warn("skipping a JWKS key that does not load: {}", key.status().message());
      continue;
    }
    std::string kid = StringMember(jwk, "kid");
    if (kid.empty()) kid = (*key)->kid();
    keys.emplace(std::move(kid), std::move(*key));
  }
  return keys;
}

Result<std::unique_ptr<OidcIssuerKeys>> OidcIssuerKeys::Create(OidcIssuerKeysOptions options) {
  for (const std::string& issuer : options.trusted_issuers) {
    if (issuer.rfind("https://", 0) != 0 || issuer.size() <= 8) {
      return absl::InvalidArgumentError(fmt::format(
          "trusted issuer '{}' is not an https:// URL: keys are only fetched over HTTPS", issuer));
    }
  }
  if (options.clock == nullptr) options.clock = base::SystemClock::Get();
  options.http.max_response_bytes =
      std::min(options.http.max_response_bytes, options.max_document_bytes);
  return std::unique_ptr<OidcIssuerKeys>(new OidcIssuerKeys(std::move(options)));
}

OidcIssuerKeys::OidcIssuerKeys(OidcIssuerKeysOptions options) : options_(std::move(options)) {
  for (const std::string& issuer : options_.trusted_issuers) {
    issuers_.emplace(issuer, std::make_unique<IssuerState>());
  }
}

bool OidcIssuerKeys::Trusts(std::string_view issuer) const {
  return issuers_.find(issuer) != issuers_.end();
}

bool OidcIssuerKeys::FetchDueLocked(const IssuerState& state, bool known, int64_t now_ms) const {
  if (state.fetches == 0) return true;
  const bool stale = now_ms - state.last_success_unix_ms >= options_.max_key_age_s * 1000;
  if (known && !stale) return false;
  return now_ms - state.last_attempt_unix_ms >= options_.min_refetch_interval_s * 1000;
}

Result<std::shared_ptr<const PublicKey>> OidcIssuerKeys::AnswerLocked(const IssuerState& state,
                                                                      std::string_view kid) const {
  const auto found = state.keys.find(kid);
  if (found != state.keys.end()) return found->second;
  if (!state.have_keys && !state.last_error.ok()) return state.last_error;
  return std::shared_ptr<const PublicKey>();
}

Result<std::shared_ptr<const PublicKey>> OidcIssuerKeys::Find(std::string_view issuer,
                                                              std::string_view kid) {
  const auto it = issuers_.find(issuer);
  if (it == issuers_.end()) return std::shared_ptr<const PublicKey>();
  IssuerState& state = *it->second;
  uint64_t fetches_seen = 0;
  {
    std::lock_guard lock(mu_);
    const bool known = state.keys.find(kid) != state.keys.end();
    const bool due = FetchDueLocked(state, known, options_.clock->NowUnixMs());
    // An unknown kid waits for a fetch in flight: it may bring that key.
    if (!due && !(state.fetching && !known)) return AnswerLocked(state, kid);
    fetches_seen = state.fetching ? state.fetches - 1 : state.fetches;
  }
  std::lock_guard fetch_lock(state.fetch_mu);
  {
    std::lock_guard lock(mu_);
    // Another caller fetched while we waited for fetch_mu: its result is as fresh as ours.
    if (state.fetches != fetches_seen) return AnswerLocked(state, kid);
    ++state.fetches;
    state.fetching = true;
    state.last_attempt_unix_ms = options_.clock->NowUnixMs();
  }
  Result<IssuerKeyMap> fetched = FetchKeys(it->first);
  std::lock_guard lock(mu_);
  state.fetching = false;
  if (fetched.ok()) {
    state.keys = std::move(*fetched);
    state.have_keys = true;
    state.last_success_unix_ms = options_.clock->NowUnixMs();
    state.last_error = OkStatus();
  } else {
    state.last_error = fetched.status();
    spdlog::warn("keys of issuer {}: {}", it->first, fetched.status().message());
  }
  return AnswerLocked(state, kid);
}

Result<std::string> OidcIssuerKeys::Get(net::HttpClient& http, const std::string& url) const {
  Result<net::HttpResponse> response =
      http.Send({.method = "GET", .url = url, .headers = {{"accept", "application/json"}}});
  if (!response.ok()) {
    return absl::UnavailableError(
        fmt::format("fetching {} failed: {}", url, response.status().message()));
  }
  if (response->status != 200) {
    return absl::UnavailableError(
        fmt::format("fetching {} failed: HTTP {}", url, response->status));
  }
  return std::move(response->body);
}

Result<IssuerKeyMap> OidcIssuerKeys::FetchKeys(const std::string& issuer) const {
  net::HttpClient http(options_.http);
  std::string base = issuer;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string discovery_url = base + "/.well-known/openid-configuration";
  ASSIGN_OR_RETURN(std::string document, Get(http, discovery_url));
  const json discovery = json::parse(document, nullptr, /*allow_exceptions=*/false);
  if (!discovery.is_object()) {
    return absl::FailedPreconditionError(
        fmt::format("{} is not a JSON discovery document", discovery_url));
  }
  // OpenID Connect Discovery 1.0 section 4.3: the issuer must be exactly the one we asked.
  const std::string claimed = StringMember(discovery, "issuer");
  if (claimed != issuer) {
    return absl::FailedPreconditionError(fmt::format(
        "{} names issuer '{}', not the trusted issuer '{}'", discovery_url, claimed, issuer));
  }
  const std::string jwks_uri = StringMember(discovery, "jwks_uri");
  if (jwks_uri.rfind("https://", 0) != 0) {
    return absl::FailedPreconditionError(
        fmt::format("{} has no https jwks_uri (got '{}')", discovery_url, jwks_uri));
  }
  ASSIGN_OR_RETURN(std::string jwks, Get(http, jwks_uri));
  Result<IssuerKeyMap> keys = ParseJwks(jwks, options_.max_keys_per_issuer);
  if (!keys.ok()) {
    return absl::FailedPreconditionError(fmt::format("{}: {}", jwks_uri, keys.status().message()));
  }
  spdlog::info("fetched {} keys of issuer {} from {}", keys->size(), issuer, jwks_uri);
  return keys;
}

}  // namespace meridian::identity::credentials
