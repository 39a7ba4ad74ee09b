#include "cli/up.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/files.h"
#include "cli/commands.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

constexpr int64_t kStartTimeoutMs = 30'000;
constexpr int64_t kStopTimeoutMs = 10'000;

struct LocalResource {
  const char* name;
  const char* region;
  const char* instance_types;  // Helm values (Anyscale operator shape)
  std::vector<std::string> nodes;
};

const std::vector<LocalResource>& LocalResources() {
  static const std::vector<LocalResource> resources = {
      {"local-eastus",
       "eastus",
       "workloads:\n"
       "  instanceTypes:\n"
       "    additional:\n"
       "      2CPU-8GB:\n        resources: {CPU: 2, memory: 8Gi}\n"
       "      8CPU-32GB:\n        resources: {CPU: 8, memory: 32Gi}\n",
       {"2CPU-8GB=8", "8CPU-32GB=2"}},
      {"local-westus",
       "westus",
       "workloads:\n"
       "  instanceTypes:\n"
       "    additional:\n"
       "      2CPU-8GB:\n        resources: {CPU: 2, memory: 8Gi}\n"
       "      8CPU-32GB:\n        resources: {CPU: 8, memory: 32Gi}\n"
       "      1xT4:\n        resources: {CPU: 12, GPU: 1, memory: 92Gi, accelerators: [T4]}\n",
       {"2CPU-8GB=8", "8CPU-32GB=2", "1xT4=2"}},
  };
  return resources;
}

struct Child {
  std::string name;
  std::vector<std::string> argv;
  std::string log_file;
  pid_t pid = -1;
  int restarts = 0;
};

Status Spawn(Child& child) {
  int log_fd = ::open(child.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(fmt::format("cannot open {}", child.log_file));
  std::vector<char*> argv;
  for (std::string& arg : child.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    // Own process group: Ctrl-C reaches `up` alone, which stops children in order.
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  child.pid = pid;
  return OkStatus();
}

void Stop(Child& child) {
  if (child.pid <= 0) return;
  ::kill(child.pid, SIGTERM);
  int64_t deadline = base::SystemClock::Get()->MonotonicMs() + kStopTimeoutMs;
  while (base::SystemClock::Get()->MonotonicMs() < deadline) {
    if (::waitpid(child.pid, nullptr, WNOHANG) == child.pid) {
      child.pid = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  spdlog::warn("{} did not stop within {} s; killing it", child.name, kStopTimeoutMs / 1000);
  ::kill(child.pid, SIGKILL);
  ::waitpid(child.pid, nullptr, 0);
  child.pid = -1;
}

std::string Tail(const std::string& file) {
  Result<std::string> text = base::ReadFile(file);
  if (!text.ok()) return "";
  return text->size() > 2000 ? text->substr(text->size() - 2000) : *text;
}

// Waits for the server to write its URL; fails early if it exits.
Result<std::string> WaitForServer(Child& server, const std::string& ready_file) {
  int64_t deadline = base::SystemClock::Get()->MonotonicMs() + kStartTimeoutMs;
  while (base::SystemClock::Get()->MonotonicMs() < deadline) {
    Result<std::string> url = base::ReadFile(ready_file);
    if (url.ok() && !url->empty()) {
      while (!url->empty() && url->back() == '\n') url->pop_back();
      return *url;
    }
    int status = 0;
    if (::waitpid(server.pid, &status, WNOHANG) == server.pid) {
      server.pid = -1;
      return absl::FailedPreconditionError(
          fmt::format("the control plane exited during start-up; its log ({}) ends with:\n{}",
                      server.log_file, Tail(server.log_file)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(
      fmt::format("the control plane did not start within {} s; see {}", kStartTimeoutMs / 1000,
                  server.log_file));
}

// Both resources share one local object store, mounted by each operator, so that what a job
// writes in one region is read in the other.
Status EnsureResources(ApiClient& client, const std::string& home) {
  Result<json> cloud = client.Get("/api/v1/clouds/default");
  if (!cloud.ok()) {
    if (cloud.status().code() != absl::StatusCode::kNotFound) return cloud.status();
    RETURN_IF_ERROR(client.Post("/api/v1/clouds", {{"name", "default"}}).status());
  }
  // A file:// URL needs an absolute path; --home may be relative.
  std::string bucket_root = std::filesystem::absolute(home + "/object-storage").string();
  for (const LocalResource& resource : LocalResources()) {
    Result<json> existing = client.Get(std::string("/api/v1/resources/") + resource.name);
    if (existing.ok()) continue;
    if (existing.status().code() != absl::StatusCode::kNotFound) return existing.status();
    json spec = {{"name", resource.name},
                 {"provider", "LOCAL"},
                 {"compute_stack", "LOCAL"},
                 {"region", resource.region},
                 {"object_storage", {{"bucket_name", "file://" + bucket_root}}}};
    RETURN_IF_ERROR(client.Post("/api/v1/clouds/default/resources", spec).status());
  }
  return OkStatus();
}

Status WaitHealthy(ApiClient& client) {
  int64_t deadline = base::SystemClock::Get()->MonotonicMs() + kStartTimeoutMs;
  while (true) {
    ASSIGN_OR_RETURN(json list, client.Get("/api/v1/resources"));
    size_t healthy = 0;
    for (const json& item : list["items"]) {
      for (const LocalResource& resource : LocalResources()) {
        if (Str(item, "name") == resource.name && Str(item, "health") == "HEALTHY") ++healthy;
      }
    }
    if (healthy == LocalResources().size()) return OkStatus();
    if (base::SystemClock::Get()->MonotonicMs() > deadline) {
      return absl::DeadlineExceededError(
          "the LOCAL operators did not report healthy within 30 s; see the operator logs");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// A client for the control plane just started, signed in as whoever this home names (the
// first admin, whose key the server's first start wrote under credentials/). A server with a
// token service but no admin.json yet is still writing it: wait for it.
Result<ApiClient> ConnectAsAdmin(const std::string& home, const std::string& url) {
  ClientConfig config{home, url, home + "/tls/ca.pem"};
  RETURN_IF_ERROR(ResolveIdentity(config));
  ApiClient client(config);
  ASSIGN_OR_RETURN(Discovery discovery, client.Discover());
  if (!discovery.has_identity || !config.client_id.empty()) return client;
  std::string admin_file = home + "/credentials/admin.json";
  int64_t deadline = base::SystemClock::Get()->MonotonicMs() + kStartTimeoutMs;
  while (!base::PathExists(admin_file)) {
    if (base::SystemClock::Get()->MonotonicMs() > deadline) {
      return absl::DeadlineExceededError(fmt::format(
          "the control plane has a token service but wrote no first admin ({}) within {} s",
          admin_file, kStartTimeoutMs / 1000));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  RETURN_IF_ERROR(ResolveIdentity(config));
  return ApiClient(config);
}

std::string IdentitySummary(const ClientConfig& config) {
  if (config.client_id.empty()) return "none (the control plane admits every request)\n";
  return fmt::format("{}\n                  (client id {}, private key {})\n",
                     config.identity_source, config.client_id, config.key_file);
}

void PrintWhatNext(const UpOptions& options, const std::string& url, const std::string& binary,
                   const ClientConfig& client) {
  // Another terminal has neither this process's environment nor, maybe, the binary on PATH.
  std::string setup;
  const char* home_env = std::getenv("HOME");
  std::string default_home = std::string(home_env != nullptr ? home_env : "") + "/.meridian";
  if (options.home != default_home)
    setup += fmt::format("  export MERIDIAN_HOME={}\n", options.home);
  std::string bin_dir = binary.substr(0, binary.rfind('/'));
  const char* path = std::getenv("PATH");
  if (path == nullptr ||
      (":" + std::string(path) + ":").find(":" + bin_dir + ":") == std::string::npos) {
    setup += fmt::format("  export PATH={}:$PATH\n", bin_dir);
  }
  std::cout << fmt::format(
      "\nmeridian is up.\n"
      "  control plane   {}\n"
      "  home            {} (logs in {}/logs)\n"
      "  identity        {}"
      "  cloud resources local-eastus (eastus, CPU shapes), local-westus (westus, CPU + 1xT4)\n\n"
      "What next, in another terminal:\n{}"
      "  meridian cloud resource list\n"
      "  meridian job submit -f examples/jobs/train.yaml --wait\n"
      "  meridian job submit -f examples/jobs/evaluate.yaml --wait\n"
      "  meridian job submit -f examples/jobs/gpu.yaml\n"
      "  meridian job list\n"
      "  meridian job status <id>\n"
      "  meridian job logs <id> --follow\n"
      "  meridian job terminate <id>\n\n"
      "Press Ctrl-C to stop everything.\n",
      url, options.home, options.home, IdentitySummary(client), setup);
  std::cout.flush();
}

}  // namespace

int RunUp(const UpOptions& options) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  for (const char* dir : {"", "/logs", "/run", "/local", "/cluster-storage", "/object-storage"}) {
    if (Status made = base::MakeDirs(options.home + dir, 0755); !made.ok())
      return ReportError(made);
  }
  char self[4096];
  ssize_t length = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (length <= 0) return ReportError(absl::InternalError("cannot find the meridian binary"));
  std::string binary(self, static_cast<size_t>(length));

  std::string ready_file = options.home + "/run/server.url";
  ::unlink(ready_file.c_str());
  std::vector<Child> children;
  children.push_back({"control plane",
                      {binary, "server", "--home", options.home, "--listen",
                       fmt::format("127.0.0.1:{}", options.port), "--ready-file", ready_file},
                      options.home + "/logs/server.log"});
  std::cout << "Starting the control plane..." << std::endl;
  auto stop_all = [&children] {
    for (size_t i = children.size(); i-- > 0;) Stop(children[i]);  // operators, then server
  };
  if (Status spawned = Spawn(children[0]); !spawned.ok()) return ReportError(spawned);
  Result<std::string> url = WaitForServer(children[0], ready_file);
  if (!url.ok()) {
    stop_all();
    return ReportError(url.status());
  }
  // A restarted control plane must come back on the same address: the operators were given
  // this URL and keep it, so a new free port would leave them talking to nothing.
  size_t port_colon = url->rfind(':');
  if (port_colon != std::string::npos) {
    for (size_t i = 0; i + 1 < children[0].argv.size(); ++i) {
      if (children[0].argv[i] == "--listen") {
        children[0].argv[i + 1] = "127.0.0.1" + url->substr(port_colon);
      }
    }
  }
  Result<ApiClient> authenticated = ConnectAsAdmin(options.home, *url);
  if (!authenticated.ok()) {
    stop_all();
    return ReportError(authenticated.status());
  }
  ApiClient& client = *authenticated;
  if (Status ensured = EnsureResources(client, options.home); !ensured.ok()) {
    stop_all();
    return ReportError(ensured);
  }
  for (const LocalResource& resource : LocalResources()) {
    std::string types_file =
        fmt::format("{}/local/{}-instance-types.yaml", options.home, resource.name);
    if (Status written = base::WriteFileAtomic(types_file, resource.instance_types);
        !written.ok()) {
      stop_all();
      return ReportError(written);
    }
    Child child{fmt::format("operator {}", resource.name),
                {binary, "operator", "--home", options.home, "--server", *url, "--ca-file",
                 options.home + "/tls/ca.pem", "--cloud-resource", resource.name,
                 "--instance-types", types_file},
                fmt::format("{}/logs/operator-{}.log", options.home, resource.name)};
    for (const std::string& nodes : resource.nodes) {
      child.argv.push_back("--nodes");
      child.argv.push_back(nodes);
    }
    children.push_back(std::move(child));
    if (Status spawned = Spawn(children.back()); !spawned.ok()) {
      stop_all();
      return ReportError(spawned);
    }
  }
  std::cout << "Starting operators for local-eastus and local-westus..." << std::endl;
  if (Status healthy = WaitHealthy(client); !healthy.ok()) {
    // The control plane stopped answering while the operators started (it crashed or was
    // killed): the supervision below restarts it, so only a one-shot run gives up here.
    if (!absl::IsUnavailable(healthy) || options.exit_after_example ||
        !options.example_job.empty()) {
      stop_all();
      return ReportError(healthy);
    }
    spdlog::warn("{}; supervising anyway: a control plane that exited is restarted",
                 healthy.message());
  }

  int exit_code = 0;
  if (!options.example_job.empty()) {
    std::cout << fmt::format("Submitting {}...", options.example_job) << std::endl;
    Result<std::string> job_id = SubmitJobFile(client, options.example_job, "", false);
    Result<int> outcome =
        job_id.ok() ? FollowJob(client, *job_id, true) : Result<int>(job_id.status());
    if (!outcome.ok()) {
      exit_code = ReportError(outcome.status());
    } else {
      exit_code = *outcome;
    }
  }
  if (options.exit_after_example) {
    stop_all();
    return exit_code;
  }
  PrintWhatNext(options, *url, binary, client.config());

  // Supervise: restart a child that dies, until a signal asks us to stop.
  timespec tick{0, 200'000'000};
  while (sigtimedwait(&signals, nullptr, &tick) < 0) {
    for (Child& child : children) {
      int status = 0;
      if (child.pid > 0 && ::waitpid(child.pid, &status, WNOHANG) == child.pid) {
        child.pid = -1;
        if (child.restarts >= 5) {
          spdlog::error("{} keeps exiting; not restarting it again (see {})", child.name,
                        child.log_file);
          continue;
        }
        child.restarts += 1;
        spdlog::warn("{} exited (status {}); restarting it (see {})", child.name, status,
                     child.log_file);
        if (Status spawned = Spawn(child); !spawned.ok()) spdlog::error("{}", spawned.message());
      }
    }
  }
  std::cout << "\nStopping operators and the control plane..." << std::endl;
  stop_all();
  std::cout << "Stopped. State is kept in " << options.home << "; `meridian up` resumes it."
            << std::endl;
  return 0;
}

}  // namespace meridian::cli
