// WorkloadIdentityCredential: exchanges a federated token read from a file (a Kubernetes
// projected service-account token, or the one meridian's LOCAL stack writes) for an access
// token, the way Azure's WorkloadIdentityCredential does.
//
// The file is read again for every exchange, because whoever provides it rewrites it while
// the workload runs (at 80 % of its lifetime). It must hold one token of at most
// kMaxTokenBytes; surrounding whitespace is ignored.
//
// No caching here: wrap it in a CachingCredential (DefaultCredentialFromEnvironment does).
//
// Errors: a missing or empty token file is kFailedPrecondition naming the file; exchange
// errors as in token_endpoint.h.
//
// Thread safety: GetToken may be called from many threads at once.
#pragma once

#include <memory>
#include <string>

#include "identity/credentials/credential.h"
#include "identity/credentials/token_endpoint.h"

namespace meridian::identity::credentials {

inline constexpr char kEnvClientId[] = "AZURE_CLIENT_ID";
inline constexpr char kEnvTenantId[] = "AZURE_TENANT_ID";
inline constexpr char kEnvFederatedTokenFile[] = "AZURE_FEDERATED_TOKEN_FILE";
inline constexpr char kEnvAuthorityHost[] = "AZURE_AUTHORITY_HOST";

struct WorkloadIdentityOptions {
  std::string client_id;
  std::string federated_token_file;
  TokenEndpointOptions endpoint;  // authority_host, tenant_id, CA file, retries
};

class WorkloadIdentityCredential final : public TokenCredential {
 public:
  // kInvalidArgument when the client id or file is missing or the endpoint is not valid
  // (e.g. an http:// authority). The file need not exist yet.
  static Result<std::unique_ptr<WorkloadIdentityCredential>> Create(
      WorkloadIdentityOptions options);

  // From AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and
  // AZURE_AUTHORITY_HOST (default https://login.microsoftonline.com/); `endpoint` supplies
  // everything else (CA file, retries). kFailedPrecondition naming the missing variables.
  static Result<std::unique_ptr<WorkloadIdentityCredential>> FromEnvironment(
      const EnvLookup& env, TokenEndpointOptions endpoint = {});

  Result<AccessToken> GetToken(const std::string& scope) override;
  std::string tenant_id() const override { return client_->tenant_id(); }

 private:
  WorkloadIdentityCredential(std::string client_id, std::string token_file,
                             std::unique_ptr<TokenEndpointClient> client);

  // Constant after construction.
  const std::string client_id_;
  const std::string token_file_;
  const std::unique_ptr<TokenEndpointClient> client_;
};

}  // namespace meridian::identity::credentials
