#include "identity/cluster_issuer.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "identity/guid.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxNameChars = 253;  // a Kubernetes DNS subdomain name

// Resource, namespace and service-account names: 1..253 of [A-Za-z0-9_.-].
Status CheckName(std::string_view field, std::string_view value) {
  bool ok = !value.empty() && value.size() <= kMaxNameChars &&
            std::all_of(value.begin(), value.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '-' || c == '.';
            });
  if (!ok) {
    return absl::InvalidArgumentError(
        fmt::format("{}: must be 1 to {} characters of letters, digits, '_', '-' and '.'", field,
                    kMaxNameChars));
  }
  return OkStatus();
}

}  // namespace

json AttemptClaimValue(const AttemptRef& attempt) {
  return json{{"job_id", attempt.job_id}, {"attempt", attempt.attempt}, {"epoch", attempt.epoch}};
}

std::optional<AttemptRef> ReadAttemptClaim(const json& claims) {
  if (!claims.is_object() || !claims.contains(kAttemptClaim)) return std::nullopt;
  const json& value = claims[kAttemptClaim];
  if (!value.is_object() || !value.contains("job_id") || !value["job_id"].is_string() ||
      !value.contains("attempt") || !value["attempt"].is_number_integer() ||
      !value.contains("epoch") || !value["epoch"].is_number_integer()) {
    return std::nullopt;
  }
  AttemptRef attempt;
  attempt.job_id = value["job_id"].get<std::string>();
  const int64_t number = value["attempt"].get<int64_t>();
  attempt.epoch = value["epoch"].get<int64_t>();
  if (attempt.job_id.empty() || attempt.job_id.size() > kMaxNameChars || number < 0 ||
      number > std::numeric_limits<int>::max() || attempt.epoch < 0) {
    return std::nullopt;
  }
  attempt.attempt = static_cast<int>(number);
  return attempt;
}

ClusterIssuer::ClusterIssuer(KeyManager* keys, base::Clock* clock, ClusterIssuerOptions options)
    : keys_(keys),
      clock_(clock),
      options_(std::move(options)),
      prefix_(options_.authority + "/clusters/") {}

std::string ClusterIssuer::IssuerFor(std::string_view resource) const {
  return prefix_ + std::string(resource);
}

Result<std::string> ClusterIssuer::MintServiceAccountToken(
    std::string_view resource, std::string_view namespace_name, std::string_view name,
    std::string_view audience, int64_t lifetime_s, const std::optional<AttemptRef>& attempt) const {
  RETURN_IF_ERROR(CheckName("resource", resource));
  RETURN_IF_ERROR(CheckName("namespace", namespace_name));
  RETURN_IF_ERROR(CheckName("name", name));
  if (audience.empty() || audience.size() > kMaxAudienceChars) {
    return absl::InvalidArgumentError("audience: required, at most 600 characters");
  }
  const int64_t max_lifetime_s =
      std::min(kMaxServiceAccountTokenLifetimeS, keys_->options().max_token_lifetime_s);
  if (lifetime_s <= 0 || lifetime_s > max_lifetime_s) {
    return absl::InvalidArgumentError(
        fmt::format("lifetime_s: must be 1 to {} seconds (is {})", max_lifetime_s, lifetime_s));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const SigningKey> key, keys_->ActiveSigner(JwtAlg::kRS256));
  const int64_t now_s = clock_->NowUnixMs() / 1000;
  json claims = {{"iss", IssuerFor(resource)},
                 {"sub", fmt::format("system:serviceaccount:{}:{}", namespace_name, name)},
                 {"aud", json::array({std::string(audience)})},
                 {"iat", now_s},
                 {"nbf", now_s},
                 {"exp", now_s + lifetime_s},
                 {"jti", NewGuid()},
                 {"kubernetes.io",
                  {{"namespace", std::string(namespace_name)},
                   {"serviceaccount", {{"name", std::string(name)}}}}}};
  if (attempt.has_value()) {
    RETURN_IF_ERROR(CheckName("attempt job id", attempt->job_id));
    claims[kAttemptClaim] = AttemptClaimValue(*attempt);
  }
  return SignJwt(*key, claims.dump(), "JWT");
}

std::string ClusterIssuer::OpenIdConfigurationJson(std::string_view resource) const {
  std::string issuer = IssuerFor(resource);
  return json{{"issuer", issuer},
              {"jwks_uri", issuer + "/openid/v1/jwks"},
              {"response_types_supported", {"id_token"}},
              {"subject_types_supported", {"public"}},
              {"id_token_signing_alg_values_supported", {"RS256"}}}
      .dump();
}

Result<std::shared_ptr<const PublicKey>> ClusterIssuer::Find(std::string_view issuer,
                                                             std::string_view kid) {
  if (!Trusts(issuer)) return std::shared_ptr<const PublicKey>();
  return keys_->Lookup(kid);
}

bool ClusterIssuer::Trusts(std::string_view issuer) const {
  if (issuer.size() <= prefix_.size() || issuer.substr(0, prefix_.size()) != prefix_) {
    return false;
  }
  return CheckName("resource", issuer.substr(prefix_.size())).ok();
}

}  // namespace meridian::identity
