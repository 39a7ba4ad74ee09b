#include "bench_api.h"

#include <cstdio>

#include "bench_util.h"
#include "fmt/format.h"

namespace meridian::bench {

using nlohmann::json;

json Api::Call(net::HttpClient& client, const std::string& method, const std::string& path,
               const json& body) const {
  net::HttpClientRequest request;
  request.method = method;
  request.url = url + path;
  if (!body.is_null()) {
    request.body = body.dump();
    request.headers.push_back({"content-type", "application/json"});
  }
  if (!token.empty()) request.headers.push_back({"authorization", "Bearer " + token});
  auto response = client.Send(request);
  if (!response.ok() || response->status >= 300) {
    std::fprintf(stderr, "%s %s failed: %s\n", method.c_str(), path.c_str(),
                 response.ok() ? response->body.c_str()
                               : std::string(response.status().message()).c_str());
    return nullptr;
  }
  return json::parse(response->body, nullptr, false);
}

net::HttpClient Api::Client() const {
  net::HttpClientOptions options;
  options.ca_file = ca;
  options.timeout_ms = 60'000;
  return net::HttpClient(options);
}

std::string AdminToken(const std::string& meridian, const std::string& home) {
  std::string command = fmt::format("'{}' --home '{}' identity token -o json 2>/dev/null",
                                    meridian, home);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, got);
  if (::pclose(pipe) != 0) return "";
  json parsed = json::parse(out, nullptr, false);
  if (!parsed.is_object()) return "";
  for (const char* key : {"access_token", "token", "accessToken"}) {
    if (parsed.contains(key) && parsed[key].is_string()) return parsed[key].get<std::string>();
  }
  return "";
}

ServerProcess StartServer(const std::string& meridian, const std::string& home,
                          const std::string& listen, const std::string& log_file,
                          const std::vector<std::string>& extra_args) {
  std::string ready = log_file + ".url";
  std::vector<std::string> argv = {meridian, "--log-level", "warn", "server", "--home",
                                   home,     "--listen",    listen, "--ready-file", ready};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  ServerProcess server;
  server.pid = Spawn(argv, log_file);
  server.api.url = WaitForFile(ready, 30'000);
  server.api.ca = home + "/tls/ca.pem";
  if (!server.api.url.empty()) server.api.token = AdminToken(meridian, home);
  return server;
}

}  // namespace meridian::bench
