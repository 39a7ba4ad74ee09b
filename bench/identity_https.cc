#include "identity_https.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "base/files.h"
#include "control/api.h"
#include "control/control_plane.h"
#include "control/identity_plane.h"
#include "fmt/format.h"
#include "net/http_client.h"
#include "net/https_server.h"
#include "net/tls.h"
#include "state/state_store.h"

namespace meridian::bench {
namespace {

// Requests per second answered 200 by `send`, from `clients` threads each with its own
// keep-alive connection, for `seconds`.
double RequestsPerSecond(int clients, int seconds, const std::string& ca_file,
                         const net::HttpClientRequest& request) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> done{0};
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      net::HttpClient client(net::HttpClientOptions{ca_file, 5'000, 30'000, 1 << 20});
      while (!stop.load()) {
        Result<net::HttpResponse> response = client.Send(request);
        if (response.ok() && response->status == 200) done.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (std::thread& thread : threads) thread.join();
  double elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return done.load() / elapsed_s;
}

struct Server {
  std::string dir;
  std::unique_ptr<state::StateStore> store;
  std::unique_ptr<control::ControlPlane> plane;
  std::unique_ptr<control::IdentityPlane> identity;
  std::unique_ptr<control::Authenticator> auth;
  std::unique_ptr<control::ApiHandler> api;
  std::atomic<control::ApiHandler*> api_ptr{nullptr};
  std::unique_ptr<net::HttpsServer> https;
  std::string url;
  std::string ca_file;

  ~Server() {
    if (https != nullptr) https->Shutdown(1'000);
    https.reset();
    api.reset();
    identity.reset();
    plane.reset();
    store.reset();
    if (!dir.empty()) (void)base::RemoveAll(dir);
  }

  Status Start() {
    char pattern[] = "/tmp/identity_https_bench_XXXXXX";
    if (mkdtemp(pattern) == nullptr) return absl::InternalError("mkdtemp");
    dir = pattern;
    ASSIGN_OR_RETURN(net::TlsFiles tls, net::EnsureLocalTls(dir + "/tls", {"127.0.0.1"}));
    ca_file = tls.ca_cert;
    ASSIGN_OR_RETURN(store, state::OpenSqliteStore(dir + "/state.db"));
    ASSIGN_OR_RETURN(plane, control::ControlPlane::Open(store.get(), {}));
    net::HttpsServerOptions options;
    options.cert_pem_path = tls.server_cert;
    options.key_pem_path = tls.server_key;
    ASSIGN_OR_RETURN(https, net::HttpsServer::Start(
                                options, [this](net::HttpRequest request, net::Responder respond) {
                                  control::ApiHandler* handler = api_ptr.load();
                                  if (handler == nullptr)
                                    return respond(net::HttpResponse{503, {}, "", ""});
                                  handler->Handle(std::move(request), std::move(respond));
                                }));
    url = fmt::format("https://127.0.0.1:{}", https->port());
    control::IdentityPlaneOptions identity_options;
    identity_options.home = dir;
    identity_options.authority = url;
    ASSIGN_OR_RETURN(identity, control::IdentityPlane::Open(store.get(), identity_options));
    RETURN_IF_ERROR(identity->RegisterLocalResource("prod", "east"));
    auth = std::make_unique<control::TokenAuthenticator>(&identity->tokens(),
                                                         base::SystemClock::Get());
    control::ApiOptions api_options;
    api_options.package_dir = dir;
    api =
        std::make_unique<control::ApiHandler>(plane.get(), auth.get(), api_options, identity.get());
    api_ptr = api.get();
    return OkStatus();
  }
};

}  // namespace

Result<HttpsExchangeResult> MeasureHttpsExchanges(int clients, int seconds) {
  Server server;
  RETURN_IF_ERROR(server.Start());
  ASSIGN_OR_RETURN(std::string assertion,
                   server.identity->MintServiceAccountToken("east", "workload", 3600));
  std::optional<control::WorkloadIdentity> workload = server.identity->WorkloadIdentityFor("east");
  if (!workload.has_value()) return absl::InternalError("no workloads app for east");
  net::HttpClientRequest exchange;
  exchange.method = "POST";
  exchange.url = server.identity->tokens().TokenEndpoint();
  exchange.headers = {{"content-type", "application/x-www-form-urlencoded"}};
  exchange.body = fmt::format(
      "grant_type=client_credentials&client_id={}&scope={}&client_assertion_type={}"
      "&client_assertion={}",
      workload->client_id, net::PercentEncode("api://meridian/.default"),
      net::PercentEncode(identity::kJwtBearerAssertionType), assertion);
  net::HttpClient probe(net::HttpClientOptions{server.ca_file, 5'000, 30'000, 1 << 20});
  ASSIGN_OR_RETURN(net::HttpResponse first, probe.Send(exchange));
  if (first.status != 200) {
    return absl::InternalError(fmt::format("exchange refused: {} {}", first.status, first.body));
  }
  HttpsExchangeResult result;
  result.exchanges_per_s = RequestsPerSecond(clients, seconds, server.ca_file, exchange);
  net::HttpClientRequest healthz;
  healthz.url = server.url + "/healthz";
  result.healthz_per_s = RequestsPerSecond(clients, seconds, server.ca_file, healthz);
  return result;
}

}  // namespace meridian::bench
