#include "tests/integration/harness.h"
#include "tests/netlab/netlab.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "fmt/format.h"
#include "gtest/gtest.h"

extern char** environ;

namespace meridian::itest {

using nlohmann::json;

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The environment for a child: ours without MERIDIAN_* (so a developer's own settings cannot
// leak into a test), plus `extra`.
std::vector<std::string> ChildEnvironment(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> values;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string item(*entry);
    size_t equals = item.find('=');
    if (equals == std::string::npos) continue;
    std::string name = item.substr(0, equals);
    if (name.rfind("MERIDIAN_", 0) == 0) continue;
    values[name] = item.substr(equals + 1);
  }
  for (const auto& [name, value] : extra) {
    if (value == kUnsetEnv) {
      values.erase(name);
    } else {
      values[name] = value;
    }
  }
  std::vector<std::string> out;
  for (const auto& [name, value] : values) out.push_back(name + "=" + value);
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& item : strings) out.push_back(item.data());
  out.push_back(nullptr);
  return out;
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void DrainNonBlocking(int fd, std::string& out) {
  char buffer[8192];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      out.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return;
  }
}

// A process that has exited but was not reaped (for example reparented to an init that does
// not reap) is no longer running anything.
bool IsZombie(pid_t pid) {
  std::string stat = ReadWhole(fmt::format("/proc/{}/stat", pid));
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

}  // namespace

std::string CommandResult::Describe() const {
  return fmt::format("exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}", exit_code, out, err);
}

CommandResult RunProcess(const std::vector<std::string>& argv_in,
                         const std::map<std::string, std::string>& env, int64_t deadline_ms) {
  CommandResult result;
  std::vector<std::string> argv_strings = argv_in;
  std::vector<std::string> env_strings = ChildEnvironment(env);
  std::vector<char*> argv = Pointers(argv_strings);
  std::vector<char*> envp = Pointers(env_strings);
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec. If the test dies, so does this.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::setpgid(0, 0);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return result;
  }
  for (int fd : {out_pipe[0], err_pipe[0]}) ::fcntl(fd, F_SETFL, O_NONBLOCK);
  int64_t deadline = NowMs() + deadline_ms;
  int status = 0;
  bool exited = false;
  while (!exited) {
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    ::poll(fds, 2, 100);
    DrainNonBlocking(out_pipe[0], result.out);
    DrainNonBlocking(err_pipe[0], result.err);
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
    } else if (NowMs() > deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      result.err += fmt::format("\n[harness: killed after {} ms]\n", deadline_ms);
      status = -1;
      exited = true;
    }
  }
  // Whatever the process wrote before it exited is in the pipes now.
  DrainNonBlocking(out_pipe[0], result.out);
  DrainNonBlocking(err_pipe[0], result.err);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  result.exit_code = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string SubmittedJobId(const std::string& out) {
  const std::string marker = "Submitted job ";
  size_t at = out.find(marker);
  if (at == std::string::npos) return "";
  size_t begin = at + marker.size();
  size_t end = out.find_first_of(" \n", begin);
  return out.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

std::string MeridianBinary() { return MERIDIAN_BINARY; }
std::string SourceDir() { return MERIDIAN_SOURCE_DIR; }

// ---------------------------------------------------------------------------------------
// Platform

Platform::Platform() {
  std::string pattern = (std::filesystem::temp_directory_path() / "meridian-it-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed: " << std::strerror(errno);
  }
  home_ = pattern;
  // Searchable, not listable, as a user's home directory often is: attempts that a root
  // operator runs as other users reach their sandbox (<home>/sandbox) and the cluster
  // storage through it; what is private in it has modes of its own.
  ::chmod(home_.c_str(), 0711);
  std::filesystem::create_directories(home_ + "/logs");
  std::filesystem::create_directories(home_ + "/run");
}

Platform::~Platform() {
  bool failed = ::testing::Test::HasFailure();
  if (failed) {
    std::cerr << "---- server log (tail) ----\n" << LogTail("server") << "\n";
    for (const auto& [name, process] : operators_) {
      std::cerr << "---- operator " << name << " log (tail) ----\n" << LogTail(name) << "\n";
    }
  }
  KillEverything();
  if (failed && std::getenv("MERIDIAN_ITEST_KEEP_HOME") != nullptr) {
    std::cerr << "kept " << home_ << "\n";
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(home_, ignored);
}

Status Platform::Spawn(BackgroundProcess& process) {
  std::vector<std::string> argv_strings = process.argv;
  std::vector<std::string> env_strings = ChildEnvironment({});
  std::vector<char*> argv = Pointers(argv_strings);
  std::vector<char*> envp = Pointers(env_strings);
  int log_fd = ::open(process.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError("cannot open " + process.log_file);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a test that crashes takes it along
    ::setpgid(0, 0);  // its own group, so that killing it reaches nothing of the test's
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  if (pid < 0) return absl::InternalError("fork failed");
  process.pid = pid;
  return OkStatus();
}

void Platform::Kill(BackgroundProcess& process, int signal) {
  if (process.pid <= 0) return;
  ::kill(-process.pid, signal);
  ::kill(process.pid, signal);
  ::waitpid(process.pid, nullptr, 0);
  process.pid = -1;
}

Status Platform::StartServer(int64_t heartbeat_timeout_ms, int port,
                             const std::string& listen_host,
                             const std::vector<std::string>& tls_hosts) {
  server_starts_ += 1;
  std::string ready_file = fmt::format("{}/run/server-ready-{}", home_, server_starts_);
  server_ = BackgroundProcess{
      "server",
      {MeridianBinary(), "--home", home_, "server", "--listen",
       fmt::format("{}:{}", listen_host, port), "--ready-file", ready_file,
       "--heartbeat-timeout-ms", std::to_string(heartbeat_timeout_ms)},
      home_ + "/logs/server.log"};
  for (const std::string& host : tls_hosts) {
    server_.argv.push_back("--tls-host");
    server_.argv.push_back(host);
  }
  RETURN_IF_ERROR(Spawn(server_));
  std::string url;
  bool ready = Eventually(
      [&] {
        url = ReadWhole(ready_file);
        while (!url.empty() && url.back() == '\n') url.pop_back();
        return !url.empty() || !ServerAlive();
      },
      std::chrono::milliseconds(kStartDeadlineMs));
  if (!ready || url.empty()) {
    return absl::UnavailableError(
        fmt::format("the server did not start; its log ends with:\n{}", LogTail("server")));
  }
  url_ = url;
  return OkStatus();
}

int Platform::port() const {
  size_t colon = url_.rfind(':');
  return colon == std::string::npos ? 0 : std::atoi(url_.c_str() + colon + 1);
}

Status Platform::AdoptServerFromConfig() {
  std::string config = ReadWhole(home_ + "/config.yaml");
  const std::string key = "server: ";
  size_t at = config.find(key);
  if (at == std::string::npos) return absl::NotFoundError("no server in config.yaml");
  size_t end = config.find('\n', at);
  url_ = config.substr(at + key.size(),
                       end == std::string::npos ? std::string::npos : end - at - key.size());
  return OkStatus();
}

Status Platform::StartBackground(const std::string& name, const std::vector<std::string>& args) {
  BackgroundProcess process{name, {MeridianBinary()}, fmt::format("{}/logs/{}.log", home_, name)};
  process.argv.insert(process.argv.end(), args.begin(), args.end());
  background_[name] = process;
  return Spawn(background_[name]);
}

void Platform::KillServer() { Kill(server_, SIGKILL); }

bool Platform::ServerAlive() {
  if (server_.pid <= 0) return false;
  if (::waitpid(server_.pid, nullptr, WNOHANG) == server_.pid) {
    server_.pid = -1;
    return false;
  }
  return true;
}

Status Platform::StartOperator(const OperatorSpec& spec) {
  std::string types = spec.instance_types_file;
  if (types.empty()) {
    types = WriteFile("local/default-instance-types.yaml",
                      "workloads:\n"
                      "  instanceTypes:\n"
                      "    additional:\n"
                      "      2CPU-8GB:\n        resources: {CPU: 2, memory: 8Gi}\n"
                      "      1xT4:\n"
                      "        resources: {CPU: 12, GPU: 1, memory: 92Gi, accelerators: [T4]}\n");
  }
  BackgroundProcess process{spec.cloud_resource, {},
                            fmt::format("{}/logs/operator-{}.log", home_, spec.cloud_resource)};
  if (!spec.netns.empty()) process.argv = {netlab::IpCommand(), "netns", "exec", spec.netns};
  std::vector<std::string> args = {MeridianBinary(),
                                   "operator",
                                   "--home",
                                   home_,
                                   "--server",
                                   spec.server_url.empty() ? url_ : spec.server_url,
                                   "--ca-file",
                                   ca_file(),
                                   "--cloud-resource",
                                   spec.cloud_resource,
                                   "--instance-types",
                                   types};
  process.argv.insert(process.argv.end(), args.begin(), args.end());
  for (const std::string& nodes : spec.nodes) {
    process.argv.push_back("--nodes");
    process.argv.push_back(nodes);
  }
  process.argv.insert(process.argv.end(), spec.extra_args.begin(), spec.extra_args.end());
  auto existing = operators_.find(spec.cloud_resource);
  if (existing != operators_.end() && existing->second.pid > 0) {
    return absl::FailedPreconditionError("operator already running for " + spec.cloud_resource);
  }
  operators_[spec.cloud_resource] = process;
  return Spawn(operators_[spec.cloud_resource]);
}

void Platform::KillOperator(const std::string& cloud_resource) {
  auto it = operators_.find(cloud_resource);
  if (it != operators_.end()) Kill(it->second, SIGKILL);
}

Status Platform::CreateLocalResource(const std::string& name, const std::string& region,
                                     const std::string& cloud) {
  if (cloud != "default" || !default_cloud_created_) {
    ASSIGN_OR_RETURN(net::HttpResponse created,
                     Request("POST", "/api/v1/clouds", json{{"name", cloud}}.dump()));
    if (created.status != 201 && created.status != 409) {
      return absl::InternalError(
          fmt::format("creating cloud {}: HTTP {}: {}", cloud, created.status, created.body));
    }
    if (cloud == "default") default_cloud_created_ = true;
  }
  json spec = {
      {"name", name}, {"provider", "LOCAL"}, {"compute_stack", "LOCAL"}, {"region", region}};
  ASSIGN_OR_RETURN(net::HttpResponse response,
                   Request("POST", fmt::format("/api/v1/clouds/{}/resources", cloud), spec.dump()));
  if (response.status != 201) {
    return absl::InternalError(fmt::format("creating cloud resource {}: HTTP {}: {}", name,
                                           response.status, response.body));
  }
  return OkStatus();
}

CommandResult Platform::Cli(const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env,
                            bool prepend_home) const {
  std::vector<std::string> argv = {MeridianBinary()};
  if (prepend_home) {
    argv.push_back("--home");
    argv.push_back(home_);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, env);
}

std::string Platform::WriteFile(const std::string& relative, const std::string& contents) const {
  std::filesystem::path path = std::filesystem::path(home_) / relative;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  EXPECT_TRUE(out.good()) << "cannot write " << path;
  return path.string();
}

net::HttpClient Platform::Client(int timeout_ms) const {
  net::HttpClientOptions options;
  options.ca_file = ca_file();
  options.timeout_ms = timeout_ms;
  return net::HttpClient(options);
}

std::string Platform::AccessToken(bool refresh) const {
  std::lock_guard<std::mutex> lock(token_mu_);
  if (token_fetched_ && !refresh) return token_;
  token_fetched_ = true;
  token_.clear();
  CommandResult result = RunProcess({MeridianBinary(), "--home", home_, "--server", url_,
                                     "--ca-file", ca_file(), "identity", "token", "-o", "json"},
                                    {}, kStartDeadlineMs);
  if (result.exit_code != 0) return token_;  // no identity in this home
  json answer = json::parse(result.out, nullptr, false);
  if (answer.is_object() && answer.value("accessToken", json()).is_string()) {
    token_ = answer["accessToken"].get<std::string>();
  }
  return token_;
}

Result<net::HttpResponse> Platform::Request(const std::string& method, const std::string& path,
                                            const std::string& body,
                                            const std::string& content_type) const {
  net::HttpClient client = Client();
  net::HttpClientRequest request;
  request.method = method;
  request.url = url_ + path;
  request.body = body;
  if (!body.empty()) request.headers.push_back({"content-type", content_type});
  std::string token = AccessToken();
  for (int attempt = 0; attempt < 2; ++attempt) {
    net::HttpClientRequest authorized = request;
    if (!token.empty()) authorized.headers.push_back({"authorization", "Bearer " + token});
    Result<net::HttpResponse> response = client.Send(authorized);
    if (attempt == 1 || !response.ok() || response->status != 401) return response;
    token = AccessToken(/*refresh=*/true);  // expired, or the server started anew
    if (token.empty()) return response;
  }
  return absl::InternalError("unreachable");
}

json Platform::GetJson(const std::string& path) const {
  Result<net::HttpResponse> response = Request("GET", path);
  if (!response.ok()) {
    ADD_FAILURE() << "GET " << path << ": " << response.status();
    return json::object();
  }
  json body = json::parse(response->body, nullptr, false);
  if (body.is_discarded()) {
    ADD_FAILURE() << "GET " << path << ": not JSON: " << response->body;
    return json::object();
  }
  return body;
}

json Platform::Job(const std::string& job_id) const { return GetJson("/api/v1/jobs/" + job_id); }

json Platform::Resource(const std::string& name) const {
  return GetJson("/api/v1/resources/" + name);
}

json Platform::WaitJobFinal(const std::string& job_id, int64_t deadline_ms) {
  json job;
  bool done = Eventually(
      [&] {
        job = Job(job_id);
        std::string state = job.value("state", "");
        return state == "SUCCEEDED" || state == "FAILED" || state == "TERMINATED";
      },
      std::chrono::milliseconds(deadline_ms));
  EXPECT_TRUE(done) << "job " << job_id << " did not end: " << job.dump(2);
  return job;
}

bool Platform::WaitHealth(const std::string& name, const std::string& health) {
  return Eventually([&] { return Resource(name).value("health", "") == health; });
}

std::vector<pid_t> Platform::ProcessesOfHome(const std::string& argument) const {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  pid_t self = ::getpid();
  while (dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid == self) continue;
    std::string base = fmt::format("/proc/{}", pid);
    std::string cmdline = ReadWhole(base + "/cmdline");
    std::string environment = ReadWhole(base + "/environ");
    char cwd[4096];
    ssize_t length = ::readlink((base + "/cwd").c_str(), cwd, sizeof(cwd) - 1);
    std::string cwd_text = length > 0 ? std::string(cwd, static_cast<size_t>(length)) : "";
    bool mine = cmdline.find(home_) != std::string::npos ||
                environment.find(home_) != std::string::npos || cwd_text.rfind(home_, 0) == 0;
    if (mine && !argument.empty()) {
      const std::string nul(1, '\0');  // argv elements are NUL-separated in cmdline
      mine = (nul + cmdline).find(nul + argument + nul) != std::string::npos;
    }
    if (mine && !IsZombie(static_cast<pid_t>(pid))) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return out;
}

std::string Platform::LogTail(const std::string& name) const {
  std::string file = name == "server" ? home_ + "/logs/server.log"
                     : background_.count(name)
                         ? fmt::format("{}/logs/{}.log", home_, name)
                         : fmt::format("{}/logs/operator-{}.log", home_, name);
  std::string text = ReadWhole(file);
  return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

void Platform::KillEverything() {
  for (auto& [name, process] : background_) Kill(process, SIGKILL);
  for (auto& [name, process] : operators_) Kill(process, SIGKILL);
  Kill(server_, SIGKILL);
  // Attempt shims run detached in their own sessions: find them (and what they started) by
  // the home directory they carry, until none is left.
  Eventually(
      [&] {
        std::vector<pid_t> left = ProcessesOfHome();
        for (pid_t pid : left) ::kill(pid, SIGKILL);
        return left.empty();
      },
      std::chrono::seconds(10));
  std::vector<pid_t> left = ProcessesOfHome();
  EXPECT_TRUE(left.empty()) << left.size() << " processes of " << home_ << " survived SIGKILL";
  // Storage mount processes killed above could not unmount: detach their mounts, or they
  // stay behind on the machine ("transport endpoint is not connected") and the home with them.
  std::ifstream mounts("/proc/self/mounts");
  std::string device, point, rest;
  while (mounts >> device >> point && std::getline(mounts, rest)) {
    if (point.rfind(home_ + "/", 0) == 0) ::umount2(point.c_str(), MNT_DETACH);
  }
}

}  // namespace meridian::itest
