// DefaultCredentialFromEnvironment: the credential the operator, the CLI and the storage
// client use, chosen from the environment the way Azure's DefaultAzureCredential chooses:
//
//   1. workload identity when AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE
//      are all set (AZURE_AUTHORITY_HOST optional), exactly as the Azure workload-identity
//      webhook (or meridian's LOCAL stack) injects them;
//   2. else private_key_jwt when a key file is given (options.private_key_file, else
//      MERIDIAN_PRIVATE_KEY_FILE, else AZURE_CLIENT_CERTIFICATE_PATH: a PEM holding the key
//      and its certificate, as Azure's EnvironmentCredential reads it), with the client id
//      and tenant from the options or AZURE_CLIENT_ID / AZURE_TENANT_ID;
//   3. else kFailedPrecondition listing everything that was looked for.
//
// The result caches tokens (caching_credential.h).
#pragma once

#include <memory>
#include <string>

#include "identity/credentials/caching_credential.h"
#include "identity/credentials/credential.h"
#include "identity/credentials/token_endpoint.h"

namespace meridian::identity::credentials {

inline constexpr char kEnvPrivateKeyFile[] = "MERIDIAN_PRIVATE_KEY_FILE";
inline constexpr char kEnvClientCertificatePath[] = "AZURE_CLIENT_CERTIFICATE_PATH";

struct DefaultCredentialOptions {
  EnvLookup env;                  // nullptr: the process environment
  std::string private_key_file;   // e.g. from a --private-key-file flag
  std::string certificate_file;   // optional, for real Entra ID (x5t#S256)
  std::string client_id;          // "" : AZURE_CLIENT_ID
  std::string tenant_id;          // "" : AZURE_TENANT_ID
  std::string authority_host;     // "" : AZURE_AUTHORITY_HOST, else login.microsoftonline.com
  TokenEndpointOptions endpoint;  // CA file, retries, clock (authority and tenant filled in)
  CachingOptions caching;
};

Result<std::shared_ptr<TokenCredential>> DefaultCredentialFromEnvironment(
    DefaultCredentialOptions options);

}  // namespace meridian::identity::credentials
