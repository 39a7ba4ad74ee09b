// The control plane's HTTPS API as the benchmarks use it: JSON calls with a bearer token
// when the server requires one, and starting a server process.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <sys/types.h>
#include <vector>

#include "net/http_client.h"

namespace meridian::bench {

struct Api {
  std::string url;
  std::string ca;
  std::string token;  // bearer access token; "" when the server needs none

  // The parsed JSON answer, or null (with the failure on stderr) for an error or status >= 300.
  nlohmann::json Call(net::HttpClient& client, const std::string& method, const std::string& path,
                      const nlohmann::json& body = nullptr) const;
  net::HttpClient Client() const;
};

struct ServerProcess {
  pid_t pid = -1;
  Api api;
};

// Starts `meridian server` on `listen` with `home` and its log in `log_file`, waits for it,
// and fetches an access token for the home's administrator (`meridian identity token`) when
// identity is configured. `extra_args` go after `server`. api.url is "" when it did not start.
ServerProcess StartServer(const std::string& meridian, const std::string& home,
                          const std::string& listen, const std::string& log_file,
                          const std::vector<std::string>& extra_args = {});

// An access token from `meridian --home home identity token -o json`, or "".
std::string AdminToken(const std::string& meridian, const std::string& home);

}  // namespace meridian::bench
