// ApiClient: how CLI commands reach the control plane.
//
// The server URL comes from --server, else $MERIDIAN_SERVER, else `server:` in
// <home>/config.yaml (written by `meridian server`); the CA to trust from --ca-file, else
// $MERIDIAN_CA_FILE, else `ca_file:` in the same config. Answers are JSON; an HTTP error
// becomes a Status with the server's message and the code matching its HTTP status.
// Not thread-safe (one HTTP connection, reused).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/status.h"
#include "net/http_client.h"

namespace meridian::cli {

struct ClientConfig {
  std::string home;
  std::string server_url;
  std::string ca_file;
};

// Resolves where the control plane is. kFailedPrecondition with advice when nothing says.
Result<ClientConfig> ResolveClientConfig(const std::string& home_flag,
                                         const std::string& server_flag,
                                         const std::string& ca_flag);

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

  const ClientConfig& config() const { return config_; }

 private:
  ClientConfig config_;
  net::HttpClient http_;
};

// Status for a non-2xx answer, from its JSON error body {code, message}.
Status StatusFromResponse(const net::HttpResponse& response);

}  // namespace meridian::cli
