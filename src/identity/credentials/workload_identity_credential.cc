#include "identity/credentials/workload_identity_credential.h"

#include <vector>

#include "base/files.h"
#include "fmt/format.h"
#include "identity/jwt.h"

namespace meridian::identity::credentials {
namespace {

std::string_view TrimWhitespace(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

}  // namespace

Result<std::unique_ptr<WorkloadIdentityCredential>> WorkloadIdentityCredential::Create(
    WorkloadIdentityOptions options) {
  if (options.client_id.empty()) {
    return absl::InvalidArgumentError("workload identity needs a client id");
  }
  if (options.federated_token_file.empty()) {
    return absl::InvalidArgumentError("workload identity needs a federated token file");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<TokenEndpointClient> client,
                   TokenEndpointClient::Create(std::move(options.endpoint)));
  return std::unique_ptr<WorkloadIdentityCredential>(new WorkloadIdentityCredential(
      std::move(options.client_id), std::move(options.federated_token_file), std::move(client)));
}

Result<std::unique_ptr<WorkloadIdentityCredential>> WorkloadIdentityCredential::FromEnvironment(
    const EnvLookup& env, TokenEndpointOptions endpoint) {
  WorkloadIdentityOptions options;
  options.client_id = env(kEnvClientId);
  options.federated_token_file = env(kEnvFederatedTokenFile);
  endpoint.tenant_id = env(kEnvTenantId);
  std::vector<std::string> missing;
  if (options.client_id.empty()) missing.push_back(kEnvClientId);
  if (endpoint.tenant_id.empty()) missing.push_back(kEnvTenantId);
  if (options.federated_token_file.empty()) missing.push_back(kEnvFederatedTokenFile);
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        fmt::format("workload identity is not configured: {} not set", fmt::join(missing, ", ")));
  }
  const std::string authority = env(kEnvAuthorityHost);
  endpoint.authority_host = authority.empty() ? kDefaultAuthorityHost : authority;
  options.endpoint = std::move(endpoint);
  return Create(std::move(options));
}

WorkloadIdentityCredential::WorkloadIdentityCredential(std::string client_id,
                                                       std::string token_file,
                                                       std::unique_ptr<TokenEndpointClient> client)
    : client_id_(std::move(client_id)),
      token_file_(std::move(token_file)),
      client_(std::move(client)) {}

Result<AccessToken> WorkloadIdentityCredential::GetToken(const std::string& scope) {
  // Read on every exchange: the file is rewritten while the workload runs.
  Result<std::string> contents = base::ReadFile(token_file_, kMaxTokenBytes + 64);
  if (!contents.ok()) {
    return absl::FailedPreconditionError(fmt::format("cannot read the federated token file {}: {}",
                                                     token_file_, contents.status().message()));
  }
  const std::string_view token = TrimWhitespace(*contents);
  if (token.empty()) {
    return absl::FailedPreconditionError(
        fmt::format("the federated token file {} is empty", token_file_));
  }
  return client_->Exchange(client_id_, scope, std::string(token));
}

}  // namespace meridian::identity::credentials
