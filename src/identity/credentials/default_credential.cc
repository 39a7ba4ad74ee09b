#include "identity/credentials/default_credential.h"

#include "fmt/format.h"
#include "identity/credentials/private_key_jwt_credential.h"
#include "identity/credentials/workload_identity_credential.h"
#include "spdlog/spdlog.h"

namespace meridian::identity::credentials {
namespace {

std::string FirstSet(std::initializer_list<std::string> values) {
  for (const std::string& value : values) {
    if (!value.empty()) return value;
  }
  return "";
}

}  // namespace

Result<std::shared_ptr<TokenCredential>> DefaultCredentialFromEnvironment(
    DefaultCredentialOptions options) {
  const EnvLookup env = options.env ? options.env : ProcessEnvironment();
  TokenEndpointOptions endpoint = options.endpoint;
  endpoint.authority_host =
      FirstSet({options.authority_host, env(kEnvAuthorityHost), kDefaultAuthorityHost});
  if (options.caching.clock == nullptr) options.caching.clock = endpoint.clock;

  const bool has_workload_identity = !env(kEnvClientId).empty() && !env(kEnvTenantId).empty() &&
                                     !env(kEnvFederatedTokenFile).empty();
  if (has_workload_identity) {
    ASSIGN_OR_RETURN(std::shared_ptr<TokenCredential> credential,
                     WorkloadIdentityCredential::FromEnvironment(env, endpoint));
    spdlog::debug("credential: workload identity from {}", env(kEnvFederatedTokenFile));
    return std::make_shared<CachingCredential>(std::move(credential), options.caching);
  }

  PrivateKeyJwtOptions key_options;
  key_options.private_key_file = FirstSet({options.private_key_file, env(kEnvPrivateKeyFile)});
  key_options.certificate_file = options.certificate_file;
  if (key_options.private_key_file.empty()) {
    // Azure's EnvironmentCredential convention: one PEM with the key and its certificate.
    key_options.private_key_file = env(kEnvClientCertificatePath);
    if (key_options.certificate_file.empty()) {
      key_options.certificate_file = key_options.private_key_file;
    }
  }
  key_options.client_id = FirstSet({options.client_id, env(kEnvClientId)});
  endpoint.tenant_id = FirstSet({options.tenant_id, env(kEnvTenantId)});
  if (!key_options.private_key_file.empty()) {
    if (key_options.client_id.empty() || endpoint.tenant_id.empty()) {
      return absl::FailedPreconditionError(fmt::format(
          "private_key_jwt with key file {} also needs a client id and a tenant (options or "
          "{} and {})",
          key_options.private_key_file, kEnvClientId, kEnvTenantId));
    }
    spdlog::debug("credential: private_key_jwt with {}", key_options.private_key_file);
    key_options.endpoint = std::move(endpoint);
    ASSIGN_OR_RETURN(std::shared_ptr<TokenCredential> credential,
                     PrivateKeyJwtCredential::Create(std::move(key_options)));
    return std::make_shared<CachingCredential>(std::move(credential), options.caching);
  }

  return absl::FailedPreconditionError(fmt::format(
      "no credential found: looked for workload identity ({}, {} and {} all set) and for a "
      "private key file (a private key file option, {} or {})",
      kEnvClientId, kEnvTenantId, kEnvFederatedTokenFile, kEnvPrivateKeyFile,
      kEnvClientCertificatePath));
}

}  // namespace meridian::identity::credentials
