// Workload identity in process, next to the floor measured in the same run:
//  - access-token validation latency (p50/p99, RS256 and ES256), the check every API request
//    pays; peer: the bare signature verification of the same token (OpenSSL alone);
//  - token exchanges per second (federated cluster token -> access token, audited, from
//    concurrent callers); peer: signing the same access-token claims alone, same callers.
//  - token exchanges per second through the HTTPS token endpoint (the server's own handler
//    in an in-process HTTPS server, concurrent keep-alive clients); peer: GET /healthz
//    through the same server and clients (identity_https.cc).
// Goals (issue "Workload identity"): validation p99 <= 100 us, >= 2,000 exchanges/s.
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/clock.h"
#include "base/files.h"
#include "bench_util.h"
#include "fmt/format.h"
#include "identity/audit.h"
#include "identity/cluster_issuer.h"
#include "identity/token_service.h"
#include "identity_https.h"

namespace meridian::bench {
namespace {

using namespace meridian::identity;

constexpr char kAuthority[] = "https://meridian.bench:8443";
constexpr char kTenant[] = "00000000-0000-4000-8000-000000000001";
constexpr char kResource[] = "api://meridian";

struct Options {
  int iterations = 20'000;
  int threads = 32;  // concurrent callers, as HTTPS clients would be
  int seconds = 3;
  int clients = 32;  // HTTPS clients, one keep-alive connection each
  std::string out = "build/bench/identity.json";
};

double ElapsedUs(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
      .count();
}

struct Identity {
  std::string dir;
  base::SystemClock* clock = base::SystemClock::Get();
  std::unique_ptr<state::StateStore> store;
  std::unique_ptr<KeyManager> keys;
  std::unique_ptr<Directory> directory;
  std::unique_ptr<ClusterIssuer> cluster;
  std::unique_ptr<AuditLog> audit;
  std::unique_ptr<TokenService> rs256;   // no validation cache: every call verifies
  std::unique_ptr<TokenService> es256;   // no validation cache
  std::unique_ptr<TokenService> server;  // as `meridian server` runs it: defaults
  std::string app_id;

  Status Open() {
    char pattern[] = "/tmp/identity_bench_XXXXXX";
    if (mkdtemp(pattern) == nullptr) return absl::InternalError("mkdtemp");
    dir = pattern;
    ASSIGN_OR_RETURN(store, state::OpenSqliteStore(dir + "/state.db"));
    ASSIGN_OR_RETURN(keys, KeyManager::Open(store.get(), clock));
    ASSIGN_OR_RETURN(directory, Directory::Open(store.get(), clock));
    ASSIGN_OR_RETURN(audit, AuditLog::Open(store.get(), clock));
    cluster = std::make_unique<ClusterIssuer>(keys.get(), clock, ClusterIssuerOptions{kAuthority});
    TokenServiceOptions options{kAuthority, kTenant};
    options.resources = {kResource};
    server =
        std::make_unique<TokenService>(options, keys.get(), directory.get(),
                                       std::vector<IssuerKeySource*>{cluster.get()}, audit.get());
    options.validation_cache_entries = 0;
    options.signing_alg = JwtAlg::kRS256;
    rs256 =
        std::make_unique<TokenService>(options, keys.get(), directory.get(),
                                       std::vector<IssuerKeySource*>{cluster.get()}, audit.get());
    options.signing_alg = JwtAlg::kES256;
    es256 =
        std::make_unique<TokenService>(options, keys.get(), directory.get(),
                                       std::vector<IssuerKeySource*>{cluster.get()}, audit.get());
    ASSIGN_OR_RETURN(Application app, directory->CreateApplication({"bench-operator"}));
    app_id = app.app_id;
    RETURN_IF_ERROR(
        directory
            ->AddFederatedCredential(
                app_id,
                {"bench", cluster->IssuerFor("east"), "system:serviceaccount:meridian:op", {}, ""})
            .status());
    return directory->AssignRole(Role::kOperator, app_id, "/clouds/prod/resources/east").status();
  }
  ~Identity() {
    server.reset();
    rs256.reset();
    es256.reset();
    audit.reset();
    directory.reset();
    keys.reset();
    store.reset();
    if (!dir.empty()) (void)base::RemoveAll(dir);
  }

  TokenRequest Request() {
    TokenRequest request;
    request.tenant = kTenant;
    request.source_address = "127.0.0.1";
    request.now_unix_ms = clock->NowUnixMs();
    request.form = {
        {"grant_type", "client_credentials"},
        {"client_id", app_id},
        {"scope", std::string(kResource) + "/.default"},
        {"client_assertion_type", kJwtBearerAssertionType},
        {"client_assertion", *cluster->MintServiceAccountToken("east", "meridian", "op")}};
    return request;
  }
};

struct Latency {
  double p50_us = 0;
  double p99_us = 0;
};

template <typename Fn>
Latency Measure(int iterations, Fn fn) {
  std::vector<double> samples;
  samples.reserve(iterations);
  for (int i = 0; i < iterations / 10; ++i) fn();  // warm caches
  for (int i = 0; i < iterations; ++i) {
    auto start = std::chrono::steady_clock::now();
    fn();
    samples.push_back(ElapsedUs(start));
  }
  return {Percentile(samples, 0.50), Percentile(samples, 0.99)};
}

// Calls per second of `fn` from `threads` threads for `seconds`.
template <typename Fn>
double Throughput(int threads, int seconds, Fn fn) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> done{0};
  std::vector<std::thread> workers;
  auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      while (!stop.load()) {
        if (fn()) done.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (std::thread& worker : workers) worker.join();
  return done.load() / (ElapsedUs(start) / 1e6);
}

int Run(const Options& options) {
  Identity identity;
  if (Status status = identity.Open(); !status.ok()) {
    std::fprintf(stderr, "setup failed: %s\n", status.ToString().c_str());
    return 1;
  }
  std::vector<Figure> figures;
  for (TokenService* service :
       {identity.rs256.get(), identity.es256.get(), identity.server.get()}) {
    const bool cached = service == identity.server.get();
    TokenResponse response = service->HandleTokenRequest(identity.Request());
    if (response.http_status != 200) {
      std::fprintf(stderr, "exchange failed: %s\n", response.body.c_str());
      return 1;
    }
    std::string token = nlohmann::json::parse(response.body)["access_token"];
    ParsedJwt parsed = *ParseJwt(token);
    std::shared_ptr<const PublicKey> key = identity.keys->Lookup(parsed.kid);
    const int64_t now_s = identity.clock->NowUnixMs() / 1000;
    Latency validate = Measure(options.iterations, [&] {
      if (!service->ValidateAccessToken(token, kResource, now_s).ok()) std::abort();
    });
    Latency verify = Measure(options.iterations, [&] {
      if (!key->Verify(parsed.signing_input, parsed.signature)) std::abort();
    });
    std::string what = fmt::format("{} {}", parsed.alg, cached ? "cached" : "new token");
    figures.push_back({fmt::format("validation p50 {}", what), validate.p50_us, "us",
                       "signature verify alone (OpenSSL)", verify.p50_us, true});
    figures.push_back({fmt::format("validation p99 {}, goal <= 100", what), validate.p99_us, "us",
                       "signature verify alone (OpenSSL)", verify.p99_us, true});
  }

  TokenRequest request = identity.Request();
  double exchanges = Throughput(options.threads, options.seconds, [&] {
    TokenRequest copy = request;
    copy.now_unix_ms = identity.clock->NowUnixMs();
    return identity.server->HandleTokenRequest(copy).http_status == 200;
  });
  std::shared_ptr<const SigningKey> signer = *identity.keys->ActiveSigner(JwtAlg::kES256);
  TokenResponse sample = identity.server->HandleTokenRequest(identity.Request());
  std::string sample_token = nlohmann::json::parse(sample.body)["access_token"];
  std::string claims = ParseJwt(sample_token)->claims_json;
  double signs = Throughput(options.threads, options.seconds,
                            [&] { return SignJwt(*signer, claims, kAccessTokenType).ok(); });
  figures.push_back({fmt::format("exchanges in process, {} callers, goal 2000", options.threads),
                     exchanges, "1/s", "ES256 signing of the same claims alone", signs});
  Result<HttpsExchangeResult> https = MeasureHttpsExchanges(options.clients, options.seconds);
  if (!https.ok()) {
    std::fprintf(stderr, "HTTPS exchanges: %s\n", https.status().ToString().c_str());
    return 1;
  }
  figures.push_back({fmt::format("exchanges over HTTPS, {} clients, goal 2000", options.clients),
                     https->exchanges_per_s, "1/s", "GET /healthz, same server and clients",
                     https->healthz_per_s});

  Report("identity", figures, options.out,
         {"Validation: ValidateAccessToken per call. New token: parse, key lookup, verify, "
          "claims (cache off). Cached: the server's default, a token presented before.",
          "Exchanges: federated cluster token (RS256) -> ES256 access token, each audited "
          "(SQLite, group commit). Over HTTPS: form-encoded POST to the token endpoint, the "
          "server's handler (2 I/O threads, exchanges on its 32 blocking workers).",
          fmt::format("Goals: validation p99 <= 100 us; >= 2,000 exchanges/s. {} cores here.",
                      std::thread::hardware_concurrency())});
  return 0;
}

}  // namespace
}  // namespace meridian::bench

int main(int argc, char** argv) {
  meridian::bench::Options options;
  meridian::bench::Flags flags("identity_bench",
                               "token exchanges and token validation (docs/identity.md)");
  flags.Add("iterations", &options.iterations, 1, 100'000'000, "validations per figure");
  flags.Add("threads", &options.threads, 1, 4096, "concurrent in-process callers");
  flags.Add("clients", &options.clients, 1, 4096, "HTTPS clients, one connection each");
  flags.Add("seconds", &options.seconds, 1, 3600, "seconds per throughput figure");
  flags.Add("out", &options.out, "JSON file for the figures");
  if (int exit_code = flags.Parse(argc, argv); exit_code >= 0) return exit_code;
  return meridian::bench::Run(options);
}
