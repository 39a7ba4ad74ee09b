// `meridian server`: the control plane process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace meridian::control {

struct ServerOptions {
  std::string home;                       // state, TLS material, client config
  std::string listen = "127.0.0.1:8443";  // host:port; port 0 picks a free one
  std::string cert_file;                  // optional: use this certificate ...
  std::string key_file;                   // ... and key instead of the local CA's
  std::vector<std::string> tls_hosts;     // extra names/addresses for the local certificate
  int64_t heartbeat_timeout_ms = 10'000;
  int64_t heartbeat_interval_ms = 2'000;
  int threads = 2;
  // Workload identity (short values are for tests that outlive a token).
  int64_t access_token_lifetime_s = 3600;
  int64_t cluster_token_lifetime_s = 3600;  // operator and job-attempt federated tokens
  std::vector<std::string> trusted_issuers;  // external OIDC issuers (--trusted-issuer)
  std::string trusted_issuers_ca_file;
  int64_t key_publish_ahead_s = 24 * 3600;  // a rotated signing key is published this early
  // Written once listening: "https://127.0.0.1:PORT\n" (lets a parent learn a free port).
  std::string ready_file;
};

// Runs until SIGINT or SIGTERM, then shuts down gracefully. Returns the exit code.
int RunServer(const ServerOptions& options);

}  // namespace meridian::control
