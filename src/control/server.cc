#include "control/server.h"

#include <signal.h>

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "control/api.h"
#include "control/control_plane.h"
#include "control/identity_plane.h"
#include "fmt/format.h"
#include "net/https_server.h"
#include "net/tls.h"
#include "spdlog/spdlog.h"
#include "state/state_store.h"

namespace meridian::control {
namespace {

// Sets `server:` and `ca_file:` in <home>/config.yaml, keeping every other line (what
// `meridian login` wrote: client_id, key_file).
Status WriteClientConfig(const std::string& home, const std::string& url,
                         const std::string& ca_file) {
  const std::string path = home + "/config.yaml";
  std::string kept;
  if (Result<std::string> existing = base::ReadFile(path, 1 << 20); existing.ok()) {
    size_t start = 0;
    while (start < existing->size()) {
      size_t end = existing->find('\n', start);
      if (end == std::string::npos) end = existing->size();
      std::string line = existing->substr(start, end - start);
      start = end + 1;
      if (line.rfind("server:", 0) == 0 || line.rfind("ca_file:", 0) == 0 ||
          line.rfind("# Written by `meridian server`", 0) == 0) {
        continue;
      }
      if (!line.empty()) kept += line + "\n";
    }
  }
  std::string config = fmt::format(
      "# Written by `meridian server`: where clients find this control plane.\n"
      "server: {}\nca_file: {}\n{}",
      url, ca_file, kept);
  return base::WriteFileAtomic(path, config, 0644);
}

int Fail(const Status& status) {
  spdlog::error("{}", status.message());
  return 1;
}

// Every LOCAL resource gets its identities (again: the authority may have moved).
Status RegisterLocalResources(ControlPlane& plane, IdentityPlane& identity) {
  ASSIGN_OR_RETURN(nlohmann::json resources, plane.ListResources(""));
  for (const nlohmann::json& resource : resources["items"]) {
    if (resource.value("compute_stack", "") != "LOCAL") continue;
    RETURN_IF_ERROR(identity.RegisterLocalResource(resource.value("cloud", ""),
                                                   resource.value("name", "")));
  }
  return OkStatus();
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
  // The state database and packages are the server's alone (MakeDirs sets the mode of the
  // last directory only, so each is made on its own).
  for (const char* dir : {"/server", "/server/packages"}) {
    if (Status made = base::MakeDirs(options.home + dir, 0700); !made.ok()) return Fail(made);
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

  // The handler exists only once the identity plane knows the authority, which needs the
  // port: until then (before the ready file is written) requests are answered 503.
  // Declared before the server so that they outlive it on every return path.
  std::unique_ptr<IdentityPlane> identity;
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<ApiHandler> api;
  std::atomic<ApiHandler*> api_ptr{nullptr};
  net::HttpsServerOptions server_options;
  server_options.bind_address = host;
  server_options.port = static_cast<uint16_t>(port);
  server_options.cert_pem_path = cert;
  server_options.key_pem_path = key;
  server_options.threads = options.threads;
  server_options.body_limit = [&api_ptr](std::string_view method, std::string_view path) {
    ApiHandler* api = api_ptr.load();
    return api != nullptr ? api->BodyLimit(method, path) : int64_t{1} << 20;
  };
  Result<std::unique_ptr<net::HttpsServer>> server = net::HttpsServer::Start(
      server_options, [&api_ptr](net::HttpRequest request, net::Responder respond) {
        ApiHandler* api = api_ptr.load();
        if (api == nullptr) {
          return respond(ErrorResponse(absl::UnavailableError("the server is starting")));
        }
        api->Handle(std::move(request), std::move(respond));
      });
  if (!server.ok()) return Fail(server.status());

  std::string url_host = (host.empty() || host == "0.0.0.0" || host == "::") ? "127.0.0.1" : host;
  std::string url = fmt::format("https://{}:{}", url_host, (*server)->port());

  IdentityPlaneOptions identity_options;
  identity_options.home = options.home;
  identity_options.authority = url;
  identity_options.access_token_lifetime_s = options.access_token_lifetime_s;
  identity_options.cluster_token_lifetime_s = options.cluster_token_lifetime_s;
  identity_options.key_publish_ahead_s = options.key_publish_ahead_s;
  identity_options.trusted_issuers = options.trusted_issuers;
  identity_options.trusted_issuers_ca_file = options.trusted_issuers_ca_file;
  Result<std::unique_ptr<IdentityPlane>> opened =
      IdentityPlane::Open(store->get(), identity_options);
  if (!opened.ok()) return Fail(opened.status());
  identity = *std::move(opened);
  if (Status registered = RegisterLocalResources(**plane, *identity); !registered.ok()) {
    return Fail(registered);
  }
  // Every API call carries an access token of this server's token service: there is no
  // other way in (no shared secret, no switch to turn it off).
  auth = std::make_unique<TokenAuthenticator>(&identity->tokens(), base::SystemClock::Get());
  ApiOptions api_options;
  api_options.package_dir = options.home + "/server/packages";
  api = std::make_unique<ApiHandler>(plane->get(), auth.get(), api_options, identity.get());
  api_ptr = api.get();
  if (Status written = WriteClientConfig(options.home, url, ca_file); !written.ok()) {
    return Fail(written);
  }
  if (!options.ready_file.empty()) {
    if (Status written = base::WriteFileAtomic(options.ready_file, url + "\n"); !written.ok()) {
      return Fail(written);
    }
  }
  spdlog::info("meridian server listening on {} (home {})", url, options.home);

  // The main thread keeps time: housekeeping every 100 ms until a signal arrives.
  timespec tick{0, 100'000'000};
  int signal_number = -1;
  int64_t ticks = 0;
  while (signal_number < 0) {
    signal_number = sigtimedwait(&signals, nullptr, &tick);
    (*plane)->Tick();
    if (++ticks % 600 == 0) identity->Tick();  // about once a minute
  }
  spdlog::info("received {}, shutting down", strsignal(signal_number));
  (*plane)->AnswerAllWaiters();
  (*server)->Shutdown(5'000);
  server->reset();
  api_ptr = nullptr;
  api.reset();
  identity.reset();
  plane->reset();
  store->reset();
  spdlog::info("meridian server stopped");
  return 0;
}

}  // namespace meridian::control
