// Durable job submissions per second through the HTTPS API, and submit -> RUNNING latency on
// an idle LOCAL cloud resource, each next to a peer measured in the same run:
//  - throughput: PostgreSQL 15 with synchronous_commit=on taking the same number of
//    concurrent clients, each inserting one JSON job document per transaction (pgbench);
//  - latency: starting the same entrypoint directly with posix_spawn (the floor: no control
//    plane, no operator).
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/files.h"
#include "bench_api.h"
#include "bench_util.h"
#include "fmt/format.h"
#include "net/http_client.h"

extern char** environ;

namespace meridian::bench {
namespace {

using nlohmann::json;

struct Options {
  std::string meridian = MERIDIAN_BINARY;
  int clients = 32;
  int seconds = 5;
  int latency_jobs = 60;
  std::string out = "build/bench/submit.json";
};

json JobBody(const std::string& entrypoint) {
  return {{"config",
           {{"name", "bench"},
            {"entrypoint", entrypoint},
            {"max_retries", 0},
            {"compute_config",
             {{"cloud_resource", "bench-east"}, {"head_node", {{"instance_type", "2CPU-8GB"}}}}},
            {"env_vars", {{"PURPOSE", "benchmark"}}},
            {"tags", {{"team", "bench"}}}}}};
}

// Concurrent clients submitting for `seconds`; returns acknowledged submissions per second.
double SubmitThroughput(Api& api, const Options& options) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> acknowledged{0};
  std::vector<std::thread> threads;
  json body = JobBody("true");
  int64_t start = NowUs();
  for (int i = 0; i < options.clients; ++i) {
    threads.emplace_back([&] {
      net::HttpClient client = api.Client();
      while (!stop) {
        json job = api.Call(client, "POST", "/api/v1/jobs", body);
        if (job.is_null()) break;
        acknowledged += 1;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(options.seconds));
  stop = true;
  for (auto& thread : threads) thread.join();
  double elapsed_s = static_cast<double>(NowUs() - start) / 1e6;
  return static_cast<double>(acknowledged.load()) / elapsed_s;
}

// Long-polls a job until its state is one of `states`; returns it ("" on an error).
std::string WaitForStateChange(Api& api, net::HttpClient& client, const std::string& id,
                               int64_t& version, const std::vector<std::string>& states) {
  while (true) {
    json job = api.Call(client, "GET",
                        fmt::format("/api/v1/jobs/{}?wait_version={}&wait_ms=10000", id, version));
    if (job.is_null()) return "";
    version = job["version"];
    std::string state = job["state"];
    if (std::find(states.begin(), states.end(), state) != states.end()) return state;
  }
}

// Sequential jobs on an idle resource: client-observed time from the submit request to the
// job being RUNNING (long-poll on the job, so the answer comes when the state changes).
std::vector<double> SubmitToRunningMs(Api& api, const Options& options) {
  net::HttpClient client = api.Client();
  std::vector<double> latencies;
  json body = JobBody("sleep 0.2");
  for (int i = 0; i < options.latency_jobs; ++i) {
    int64_t start = NowUs();
    json job = api.Call(client, "POST", "/api/v1/jobs", body);
    if (job.is_null()) break;
    std::string id = job["id"];
    int64_t version = job["version"];
    std::string state = WaitForStateChange(api, client, id, version,
                                           {"RUNNING", "SUCCEEDED", "FAILED", "TERMINATED"});
    if (state != "RUNNING" && state != "SUCCEEDED") break;
    latencies.push_back(static_cast<double>(NowUs() - start) / 1000.0);
    // Wait for it to end so the next job finds the resource idle.
    if (WaitForStateChange(api, client, id, version, {"SUCCEEDED", "FAILED", "TERMINATED"}).empty())
      break;
  }
  return latencies;
}

std::vector<double> SpawnToRunningMs(int count) {
  std::vector<double> latencies;
  for (int i = 0; i < count; ++i) {
    const char* argv[] = {"/bin/sh", "-c", "sleep 0.2", nullptr};
    pid_t pid;
    int64_t start = NowUs();
    if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
      break;
    latencies.push_back(static_cast<double>(NowUs() - start) / 1000.0);
    ::waitpid(pid, nullptr, 0);
  }
  return latencies;
}

// PostgreSQL with the same number of clients, one durable INSERT of a job document each.
double PostgresInsertsPerSecond(const Options& options, const std::string& dir, std::string* why) {
  std::string bin = "/usr/lib/postgresql/15/bin";
  if (!base::PathExists(bin + "/initdb") || !base::PathExists("/usr/bin/pgbench")) {
    *why = "PostgreSQL 15 / pgbench not installed";
    return 0;
  }
  std::string data = dir + "/pg";
  int port = 20000 + static_cast<int>(::getpid() % 20000);
  std::string as_user = ::getuid() == 0 ? "runuser -u postgres -- " : "";
  std::string setup = fmt::format(
      "mkdir -p {0} && chown -R {1} {0} && {2}{3}/initdb -D {0}/data -A trust -U bench "
      ">{0}/initdb.log 2>&1 && "
      "{2}{3}/pg_ctl -D {0}/data -l {0}/pg.log -w -o \"-p {4} -k {0} -c listen_addresses=127.0.0.1 "
      "-c synchronous_commit=on -c fsync=on -c max_connections=200\" start >/dev/null",
      data, ::getuid() == 0 ? "postgres" : std::to_string(::getuid()), as_user, bin, port);
  if (Shell(setup) != 0) {
    *why = "could not start PostgreSQL (see " + data + ")";
    return 0;
  }
  std::string doc = JobBody("true").dump();
  std::string escaped;
  for (char c : doc) escaped += (c == '\'') ? std::string("''") : std::string(1, c);
  (void)base::WriteFileAtomic(data + "/insert.sql",
                              fmt::format("INSERT INTO jobs(body) VALUES ('{}');\n", escaped));
  std::string psql = fmt::format("psql -h 127.0.0.1 -p {} -U bench -d postgres -q", port);
  Shell(psql + " -c 'CREATE TABLE jobs(id bigserial primary key, body jsonb not null)' >/dev/null");
  std::string out_file = data + "/pgbench.out";
  int rc = Shell(fmt::format(
      "pgbench -h 127.0.0.1 -p {} -U bench -n -c {} -j 2 -T {} -f {}/insert.sql postgres > {} 2>&1",
      port, options.clients, options.seconds, data, out_file));
  double tps = 0;
  auto text = base::ReadFile(out_file);
  if (rc == 0 && text.ok()) {
    size_t at = text->find("tps = ");
    if (at != std::string::npos) tps = std::atof(text->c_str() + at + 6);
  }
  Shell(fmt::format("{}{}/pg_ctl -D {}/data -m fast stop >/dev/null 2>&1", as_user, bin, data));
  if (tps <= 0) *why = "pgbench failed (see " + out_file + ")";
  return tps;
}

int Run(const Options& options) {
  char templ[] = "/tmp/meridian-bench-XXXXXX";
  std::string dir = ::mkdtemp(templ);
  ::chmod(dir.c_str(), 0755);  // the PostgreSQL peer runs as the postgres user
  std::string home = dir + "/home";
  ServerProcess started = StartServer(options.meridian, home, "127.0.0.1:0", dir + "/server.log");
  pid_t server = started.pid;
  Api api = started.api;
  if (api.url.empty()) {
    std::fprintf(stderr, "the server did not start; see %s/server.log\n", dir.c_str());
    StopProcess(server);
    return 1;
  }
  net::HttpClient client = api.Client();
  api.Call(client, "POST", "/api/v1/clouds", {{"name", "bench"}});
  api.Call(client, "POST", "/api/v1/clouds/bench/resources",
           {{"name", "bench-east"},
            {"provider", "LOCAL"},
            {"compute_stack", "LOCAL"},
            {"region", "eastus"}});
  std::string types = dir + "/types.yaml";
  (void)base::WriteFileAtomic(types,
                              "workloads:\n  instanceTypes:\n    additional:\n"
                              "      2CPU-8GB:\n        resources: {CPU: 2, memory: 8Gi}\n");
  pid_t op = Spawn({options.meridian, "--log-level", "warn", "operator", "--home", home, "--server",
                    api.url, "--ca-file", api.ca, "--cloud-resource", "bench-east",
                    "--instance-types", types, "--nodes", "2CPU-8GB=2"},
                   dir + "/operator.log");
  for (int i = 0; i < 300; ++i) {
    json resource = api.Call(client, "GET", "/api/v1/resources/bench-east");
    if (!resource.is_null() && resource["health"] == "HEALTHY") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  std::vector<double> latency = SubmitToRunningMs(api, options);
  std::vector<double> spawn = SpawnToRunningMs(options.latency_jobs);
  double submits = SubmitThroughput(api, options);
  StopProcess(op);
  StopProcess(server);
  std::string why;
  double pg = PostgresInsertsPerSecond(options, dir, &why);

  std::string pg_name =
      fmt::format("PostgreSQL 15 INSERT, synchronous_commit=on, {} clients", options.clients);
  std::vector<Figure> figures = {
      {fmt::format("durable submissions/s, {} HTTPS clients", options.clients), submits, "jobs/s",
       pg > 0 ? pg_name : "PostgreSQL: " + why, pg, false},
      {"submit -> RUNNING p50, idle LOCAL resource", Percentile(latency, 0.5), "ms",
       "posix_spawn of the same entrypoint", Percentile(spawn, 0.5), true},
      {"submit -> RUNNING p99, idle LOCAL resource", Percentile(latency, 0.99), "ms",
       "posix_spawn of the same entrypoint", Percentile(spawn, 0.99), true},
  };
  Report(
      "submit: durable job submissions and submit -> RUNNING latency", figures, options.out,
      {fmt::format("goals (issue): >= 1,000 durable submissions/s; p50 submit -> RUNNING < 100 ms. "
                   "Published reference, not measured here: Armada about 1,000 pods/s."),
       fmt::format("{} latency samples; throughput over {} s; files in {}", latency.size(),
                   options.seconds, dir)});
  return 0;
}

}  // namespace
}  // namespace meridian::bench

int main(int argc, char** argv) {
  meridian::bench::Options options;
  meridian::bench::Flags flags("submit_bench", "durable job submissions and submit -> RUNNING");
  flags.Add("clients", &options.clients, 1, 4096, "HTTPS clients submitting at once");
  flags.Add("seconds", &options.seconds, 1, 3600, "seconds of submitting");
  flags.Add("latency-jobs", &options.latency_jobs, 1, 100'000,
            "jobs timed from submit to RUNNING");
  flags.Add("out", &options.out, "JSON file for the figures");
  flags.Add("meridian", &options.meridian, "the meridian binary");
  if (int exit_code = flags.Parse(argc, argv); exit_code >= 0) return exit_code;
  return meridian::bench::Run(options);
}
