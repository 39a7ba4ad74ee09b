#include "storage/azurite_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "base/files.h"
#include "base/testing/eventually.h"
#include "fmt/format.h"

#ifndef MERIDIAN_SOURCE_DIR
#error "MERIDIAN_SOURCE_DIR must name the source tree (set by CMake)"
#endif

namespace meridian::storage {
namespace {

constexpr int kStartTimeoutMs = 60'000;
constexpr int kStopTimeoutMs = 10'000;
constexpr int kStartTries = 3;

Result<int> FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(fmt::format("socket: {}", std::strerror(errno)));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    return absl::InternalError(fmt::format("bind 127.0.0.1:0: {}", std::strerror(errno)));
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

bool Accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return ok;
}

std::string LogTail(const std::string& path) {
  Result<std::string> log = base::ReadFile(path);
  if (!log.ok()) return "(no log)";
  return log->size() > 2000 ? log->substr(log->size() - 2000) : *log;
}

// In the child: becomes Azurite. Only async-signal-safe calls until exec.
[[noreturn]] void ExecAzurite(const std::vector<std::string>& args, int log_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::dup2(log_fd, STDOUT_FILENO);
  ::dup2(log_fd, STDERR_FILENO);
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  ::_exit(127);
}

}  // namespace

Result<std::unique_ptr<AzuriteServer>> AzuriteServer::Start() {
  const std::string node_modules = fmt::format("{}/tests/node/node_modules", MERIDIAN_SOURCE_DIR);
  const std::string main_js = node_modules + "/azurite/dist/src/blob/main.js";
  if (!base::PathExists(main_js)) {
    return absl::FailedPreconditionError(fmt::format(
        "the Azurite test peer is not installed ({} is missing): run `make test`, which "
        "installs the npm test peers pinned in tests/node/package.json",
        main_js));
  }
  Status last;
  for (int i = 0; i < kStartTries; ++i) {  // another process may take the free port first
    Result<std::unique_ptr<AzuriteServer>> server = StartOnce(main_js);
    if (server.ok()) return server;
    last = server.status();
  }
  return last;
}

Result<std::unique_ptr<AzuriteServer>> AzuriteServer::StartOnce(const std::string& main_js) {
  ASSIGN_OR_RETURN(int port, FreeLoopbackPort());
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = fmt::format("{}/azurite-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp");
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(fmt::format("mkdtemp {}: {}", pattern, std::strerror(errno)));
  }
  const std::string data_dir = pattern;
  const std::string log_path = data_dir + "/azurite.log";
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(fmt::format("cannot create {}", log_path));
  const std::vector<std::string> args = {"node",
                                         main_js,
                                         "--blobHost",
                                         "127.0.0.1",
                                         "--blobPort",
                                         std::to_string(port),
                                         "--location",
                                         data_dir,
                                         "--disableTelemetry",
                                         "--loose",
                                         "--skipApiVersionCheck",
                                         "--silent"};
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return absl::InternalError(fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) ExecAzurite(args, log_fd);
  ::close(log_fd);
  std::unique_ptr<AzuriteServer> server(new AzuriteServer(pid, port, data_dir));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  while (!Accepts(port)) {
    int wait_status = 0;
    if (::waitpid(pid, &wait_status, WNOHANG) == pid) {
      server->pid_ = -1;
      return absl::UnavailableError(
          fmt::format("Azurite exited before listening on port {} (is `node` on PATH?): {}", port,
                      LogTail(log_path)));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(
          fmt::format("Azurite did not listen on port {} within {} ms: {}", port, kStartTimeoutMs,
                      LogTail(log_path)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return server;
}

AzuriteServer::~AzuriteServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int wait_status = 0;
    if (!Eventually([&] { return ::waitpid(pid_, &wait_status, WNOHANG) == pid_; },
                    std::chrono::milliseconds(kStopTimeoutMs))) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &wait_status, 0);
    }
  }
  (void)base::RemoveAll(data_dir_);
}

std::string AzuriteServer::endpoint() const {
  return fmt::format("http://127.0.0.1:{}/{}", port_, kDevelopmentAccount);
}

AzureBlobConfig AzuriteServer::ConfigFor(const std::string& container,
                                         const std::string& prefix) const {
  AzureBlobConfig config;
  config.endpoint = endpoint();
  config.account = kDevelopmentAccount;
  config.container = container;
  config.prefix = prefix;
  config.path_style = true;
  config.account_key = kDevelopmentAccountKey;
  return config;
}

}  // namespace meridian::storage
