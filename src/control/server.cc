#include "control/server.h"

#include <signal.h>

#include <memory>

#include "base/files.h"
#include "control/api.h"
#include "control/control_plane.h"
#include "fmt/format.h"
#include "net/https_server.h"
#include "net/tls.h"
#include "spdlog/spdlog.h"
#include "state/state_store.h"

namespace meridian::control {
namespace {

bool IsLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Status WriteClientConfig(const std::string& home, const std::string& url,
                         const std::string& ca_file) {
  std::string config = fmt::format(
      "# Written by `meridian server`: where clients find this control plane.\n"
      "server: {}\nca_file: {}\n",
      url, ca_file);
  return base::WriteFileAtomic(home + "/config.yaml", config, 0644);
}

int Fail(const Status& status) {
  spdlog::error("{}", status.message());
  return 1;
}

}  // namespace

int RunServer(const ServerOptions& options) {
  // Signals are taken synchronously below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) {
    return Fail(absl::InvalidArgumentError(
        fmt::format("--listen '{}': expected host:port", options.listen)));
  }
  std::string host = options.listen.substr(0, colon);
  int port = std::atoi(options.listen.c_str() + colon + 1);
  if (port < 0 || port > 65535) {
    return Fail(absl::InvalidArgumentError(fmt::format("--listen '{}': bad port", options.listen)));
  }
  if (Status made = base::MakeDirs(options.home + "/server/packages", 0700); !made.ok()) {
    return Fail(made);
  }

  std::string cert = options.cert_file;
  std::string key = options.key_file;
  std::string ca_file;
  if (cert.empty()) {
    std::vector<std::string> hosts = options.tls_hosts;
    if (!host.empty() && host != "0.0.0.0" && host != "::") hosts.push_back(host);
    Result<net::TlsFiles> tls = net::EnsureLocalTls(options.home + "/tls", hosts);
    if (!tls.ok()) return Fail(tls.status());
    cert = tls->server_cert;
    key = tls->server_key;
    ca_file = tls->ca_cert;
  }

  Result<std::unique_ptr<state::StateStore>> store =
      state::OpenSqliteStore(options.home + "/server/state.db");
  if (!store.ok()) return Fail(store.status());

  ControlPlaneOptions plane_options;
  plane_options.heartbeat_timeout_ms = options.heartbeat_timeout_ms;
  // At least five heartbeats fit in the timeout, so one late heartbeat never looks like a loss.
  plane_options.heartbeat_interval_ms = std::min(
      options.heartbeat_interval_ms, std::max<int64_t>(100, options.heartbeat_timeout_ms / 5));
  Result<std::unique_ptr<ControlPlane>> plane = ControlPlane::Open(store->get(), plane_options);
  if (!plane.ok()) return Fail(plane.status());

  LocalTrustAuthenticator auth;
  ApiOptions api_options;
  api_options.package_dir = options.home + "/server/packages";
  ApiHandler api(plane->get(), &auth, api_options);

  net::HttpsServerOptions server_options;
  server_options.bind_address = host;
  server_options.port = static_cast<uint16_t>(port);
  server_options.cert_pem_path = cert;
  server_options.key_pem_path = key;
  server_options.threads = options.threads;
  server_options.body_limit = [&api](std::string_view method, std::string_view path) {
    return api.BodyLimit(method, path);
  };
  Result<std::unique_ptr<net::HttpsServer>> server = net::HttpsServer::Start(
      server_options, [&api](net::HttpRequest request, net::Responder respond) {
        api.Handle(std::move(request), std::move(respond));
      });
  if (!server.ok()) return Fail(server.status());

  std::string url_host = (host.empty() || host == "0.0.0.0" || host == "::") ? "127.0.0.1" : host;
  std::string url = fmt::format("https://{}:{}", url_host, (*server)->port());
  if (Status written = WriteClientConfig(options.home, url, ca_file); !written.ok()) {
    return Fail(written);
  }
  if (!options.ready_file.empty()) {
    if (Status written = base::WriteFileAtomic(options.ready_file, url + "\n"); !written.ok()) {
      return Fail(written);
    }
  }
  if (!IsLoopback(url_host)) {
    spdlog::warn(
        "listening on {} without authentication: every caller is treated as the "
        "administrator until workload identity is configured; keep this address "
        "private",
        options.listen);
  }
  spdlog::info("meridian server listening on {} (home {})", url, options.home);

  // The main thread keeps time: housekeeping every 100 ms until a signal arrives.
  timespec tick{0, 100'000'000};
  int signal_number = -1;
  while (signal_number < 0) {
    signal_number = sigtimedwait(&signals, nullptr, &tick);
    (*plane)->Tick();
  }
  spdlog::info("received {}, shutting down", strsignal(signal_number));
  (*plane)->AnswerAllWaiters();
  (*server)->Shutdown(5'000);
  server->reset();
  plane->reset();
  store->reset();
  spdlog::info("meridian server stopped");
  return 0;
}

}  // namespace meridian::control
