// ApiClient: how CLI commands reach the control plane.
//
// The server URL comes from --server, else $MERIDIAN_SERVER, else `server:` in
// <home>/config.yaml (written by `meridian server`); the CA to trust from --ca-file, else
// $MERIDIAN_CA_FILE, else `ca_file:` in the same config. Answers are JSON; an HTTP error
// becomes a Status with the server's message and the code matching its HTTP status.
//
// Identity: every request carries `Authorization: Bearer <access token>` obtained with
// private_key_jwt (or workload identity) from the control plane's token service. Who the
// CLI is comes from, in order:
//   1. $MERIDIAN_CLIENT_ID with $MERIDIAN_PRIVATE_KEY_FILE;
//   2. `client_id:` and `key_file:` in <home>/config.yaml (written by `meridian login`);
//   3. AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE (a workload's own
//      identity, as the LOCAL stack or the Kubernetes webhook injects it);
//   4. <home>/credentials/admin.json (written by the server's first start on this home);
//   5. none: requests go without a token (for a control plane that admits everyone).
// The tenant and token endpoint are discovered from {server}/.well-known/openid-configuration
// on first use (404 there: the control plane has no token service, so no token is sent).
// A 401 answer says how to log in; a 403 names what was refused.
//
// Not thread-safe (one HTTP connection, reused).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "identity/credentials/credential.h"
#include "net/http_client.h"

namespace meridian::cli {

// The control plane's resource and the scope the CLI asks tokens for.
inline constexpr char kControlPlaneScope[] = "api://meridian/.default";

struct ClientConfig {
  std::string home;
  std::string server_url;
  std::string ca_file;
  // Who the CLI is (see above). Empty client_id: no identity configured.
  std::string client_id;
  std::string key_file;              // private_key_jwt; empty with a federated token file
  std::string federated_token_file;  // workload identity (AZURE_FEDERATED_TOKEN_FILE)
  std::string tenant_id;             // workload identity only; else discovered
  std::string authority;             // workload identity only; else discovered
  std::string identity_source;       // where the identity came from, for messages
};

// Resolves where the control plane is and who the CLI is. kFailedPrecondition with advice
// when nothing says where the control plane is.
Result<ClientConfig> ResolveClientConfig(const std::string& home_flag,
                                         const std::string& server_flag,
                                         const std::string& ca_flag);

// Fills the identity fields of `config` from the sources above (1-4), leaving them empty
// when none applies. kInvalidArgument for a config file that does not parse.
Status ResolveIdentity(ClientConfig& config);

// The tenant and token endpoint a control plane announces.
struct Discovery {
  bool has_identity = false;  // false: no token service (404 on the discovery document)
  std::string tenant_id;
  std::string authority;  // "https://host:port", what tokens and assertions name
  std::string token_endpoint;
};

class ApiClient {
 public:
  explicit ApiClient(ClientConfig config, int timeout_ms = 60'000);

  Result<nlohmann::json> Get(const std::string& path, int timeout_ms = 0);
  Result<nlohmann::json> Post(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> Delete(const std::string& path);
  // A raw request; HTTP errors become a Status as above.
  Result<net::HttpResponse> Send(const std::string& method, const std::string& path,
                                 std::string body, const std::string& content_type,
                                 int timeout_ms = 0);

  // GET {server}/.well-known/openid-configuration (no token), once per client.
  Result<Discovery> Discover();
  // An access token for `scope` from the configured identity. kFailedPrecondition saying
  // how to log in when no identity is configured or the server has no token service.
  Result<identity::credentials::AccessToken> GetToken(const std::string& scope);

  const ClientConfig& config() const { return config_; }

 private:
  // The bearer token for API calls; "" when no identity is configured or the server has no
  // token service.
  Result<std::string> BearerToken();
  Result<std::shared_ptr<identity::credentials::TokenCredential>> Credential();
  Status ExplainRefusal(const Status& status, bool sent_token) const;

  ClientConfig config_;
  net::HttpClient http_;
  std::optional<Discovery> discovery_;
  std::shared_ptr<identity::credentials::TokenCredential> credential_;
};

// Status for a non-2xx answer (api::StatusFromError, the one mapping).
Status StatusFromResponse(const net::HttpResponse& response);

// Writes <home>/config.yaml with `updates` applied and every other key kept (0644: it holds
// no secret, only where the key file is).
Status UpdateConfigFile(const std::string& home,
                        const std::vector<std::pair<std::string, std::string>>& updates);

}  // namespace meridian::cli
