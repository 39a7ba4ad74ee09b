// The shim: `meridian operator shim <attempt-dir>`. It is the parent of one attempt's
// entrypoint, so the attempt outlives the operator and its exit status is still recorded.
//
// It runs single-threaded. Between fork and exec the child calls only async-signal-safe
// functions; everything it needs (argv, envp, paths) is prepared before the fork.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/files.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "operator/stacks/local/attempt_dir.h"
#include "operator/stacks/local/local_stack.h"

namespace meridian::op {
namespace {

using local::JoinPath;

// How long output still in the pipe is copied after the entrypoint has exited and the rest
// of its process group was killed (a process that left the group may hold the pipe open).
constexpr int64_t kDrainAfterExitMs = 2000;
constexpr size_t kCopyBufferBytes = size_t{64} << 10;
constexpr int kCannotStartExitCode = 127;
constexpr int kMaxLeftoverRounds = 50;
constexpr int kLeftoverPollUs = 20'000;
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Variables of the shim's own environment that the entrypoint inherits; nothing else does.
constexpr const char* kInheritedVariables[] = {"PATH", "HOME", "LANG", "USER", "SHELL", "TMPDIR"};

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Diagnostics of the shim go to its stderr, which the stack points at shim.log.
void Complain(const std::string& message) {
  std::string line = fmt::format("meridian shim: {}\n", message);
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void WriteAllFd(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<size_t>(n);
  }
}

struct ShimLaunch {
  std::string entrypoint;
  std::map<std::string, std::string> env;
  std::vector<int> gpu_indices;
  int64_t max_log_bytes = 0;
  std::string work_dir;
  // Set for an attempt that runs as another user (local_stack.h).
  std::optional<std::pair<uid_t, gid_t>> run_as;
  std::string sandbox_dir;
  std::string token_source;  // the operator's token file, mirrored into token_file
  std::string token_file;
};

constexpr int64_t kMaxTokenBytes = int64_t{64} << 10;

Result<ShimLaunch> ReadLaunch(const std::string& attempt_dir) {
  std::string path = JoinPath(attempt_dir, local::kLaunchFile);
  ASSIGN_OR_RETURN(std::string text, base::ReadFile(path, int64_t{16} << 20));
  nlohmann::json document = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  try {
    ShimLaunch launch;
    launch.entrypoint = document.at("entrypoint").get<std::string>();
    launch.env = document.value("env", std::map<std::string, std::string>());
    launch.gpu_indices = document.value("gpu_indices", std::vector<int>());
    launch.max_log_bytes = document.at("max_log_bytes").get<int64_t>();
    launch.work_dir = document.value("work_dir", JoinPath(attempt_dir, local::kWorkDir));
    if (document.contains("run_as") && document["run_as"].is_object()) {
      launch.run_as = std::make_pair(document["run_as"].at("uid").get<uid_t>(),
                                     document["run_as"].at("gid").get<gid_t>());
      if (launch.run_as->first == 0) {
        return absl::DataLossError(fmt::format("{}: run_as names root", path));
      }
    }
    launch.sandbox_dir = document.value("sandbox_dir", "");
    launch.token_source = document.value("token_source", "");
    launch.token_file = document.value("token_file", "");
    return launch;
  } catch (const nlohmann::json::exception& error) {
    return absl::DataLossError(fmt::format("{}: {}", path, error.what()));
  }
}

std::vector<std::string> BuildEnvironment(const ShimLaunch& launch) {
  std::map<std::string, std::string> env;
  for (const char* name : kInheritedVariables) {
    if (const char* value = std::getenv(name)) env[name] = value;
  }
  if (env.find("PATH") == env.end()) env["PATH"] = kDefaultPath;
  for (const auto& [name, value] : launch.env) env[name] = value;
  if (!launch.gpu_indices.empty()) {
    // Indices are in PCI bus order (DetectGpus); CUDA's default order is "fastest first".
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
    env["CUDA_VISIBLE_DEVICES"] = fmt::format("{}", fmt::join(launch.gpu_indices, ","));
  }
  std::vector<std::string> entries;
  for (const auto& [name, value] : env) entries.push_back(name + "=" + value);
  return entries;
}

// Copies the entrypoint's output into output.log, dropping what exceeds max_log_bytes and
// saying so once, on a line of its own.
class LogWriter {
 public:
  LogWriter(int fd, int64_t max_bytes, int64_t written)
      : fd_(fd), max_bytes_(max_bytes), written_(written) {}

  void Append(const char* data, size_t size) {
    if (truncated_ || size == 0) return;
    int64_t room = max_bytes_ - written_;
    size_t take = static_cast<int64_t>(size) <= room ? size : static_cast<size_t>(room);
    if (take > 0) {
      WriteAllFd(fd_, data, take);
      written_ += static_cast<int64_t>(take);
      ends_with_newline_ = data[take - 1] == '\n';
    }
    if (take == size) return;
    truncated_ = true;
    std::string marker = fmt::format("{}[meridian: output truncated at {} bytes]\n",
                                     ends_with_newline_ ? "" : "\n", max_bytes_);
    WriteAllFd(fd_, marker.data(), marker.size());
  }

 private:
  int fd_;
  int64_t max_bytes_;
  int64_t written_;
  bool truncated_ = false;
  bool ends_with_newline_ = true;
};

// Everything the child needs, built before fork.
struct ChildPlan {
  std::string work_dir;
  std::optional<std::pair<uid_t, gid_t>> run_as;
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
  int output_fd = -1;
};

[[noreturn]] void ExecEntrypoint(const ChildPlan& plan) {
  ::setpgid(0, 0);
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd >= 0 && null_fd != STDIN_FILENO) ::dup2(null_fd, STDIN_FILENO);
  ::dup2(plan.output_fd, STDOUT_FILENO);
  ::dup2(plan.output_fd, STDERR_FILENO);
  if (::chdir(plan.work_dir.c_str()) != 0) {
    static const char kMessage[] = "meridian: cannot enter the working directory\n";
    WriteAllFd(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    ::_exit(kCannotStartExitCode);
  }
  if (plan.run_as.has_value()) {
    // Groups first: once the uid is dropped, they could not be changed any more. Every step
    // is checked, so the entrypoint never runs with more than it was meant to.
    const gid_t gid = plan.run_as->second;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(plan.run_as->first, plan.run_as->first, plan.run_as->first) != 0 ||
        ::setuid(0) == 0) {
      static const char kMessage[] = "meridian: cannot drop privileges to the attempt's user\n";
      WriteAllFd(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
      ::_exit(kCannotStartExitCode);
    }
    ::umask(002);  // its group shares the cluster storage (run_as.h)
  }
  ::execve("/bin/sh", plan.argv.data(), plan.envp.data());
  static const char kMessage[] = "meridian: cannot run /bin/sh\n";
  WriteAllFd(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  ::_exit(kCannotStartExitCode);
}

class Shim {
 public:
  explicit Shim(std::string attempt_dir) : dir_(std::move(attempt_dir)) {}
  ~Shim() {
    for (int fd : {log_fd_, pipe_read_, signal_fd_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  int Run() {
    Result<ShimLaunch> launch = ReadLaunch(dir_);
    if (!launch.ok()) return FinishWithoutChild(std::string(launch.status().message()));
    launch_ = std::move(*launch);
    Status started = StartChild();
    if (!started.ok()) return FinishWithoutChild(std::string(started.message()));
    Supervise();
    return Finish();
  }

 private:
  // Opens output.log, the output pipe and the signalfd; returns the pipe's write end.
  Result<int> OpenChannels();
  Status StartChild();
  void Supervise();
  int Finish();
  int FinishWithoutChild(const std::string& error);
  bool CopyOutput();  // false at end of file
  void HandleSignals();
  bool ChildExited();  // also reaps orphaned descendants
  void KillLeftovers();
  void SignalGroup(int signal) { ::kill(-child_pid_, signal); }
  // Copies a new token_source into token_file, owned by the attempt's user (mode 0600).
  void MirrorToken();
  // Closes the sandbox to the attempt's uid, which a later attempt may be given.
  void CloseSandbox();

  const std::string dir_;
  ShimLaunch launch_;
  int log_fd_ = -1;
  int pipe_read_ = -1;
  int signal_fd_ = -1;
  pid_t child_pid_ = 0;
  std::unique_ptr<LogWriter> log_;
  struct timespec mirrored_mtime_ = {0, 0};
  ino_t mirrored_inode_ = 0;
};

void Shim::MirrorToken() {
  if (launch_.token_source.empty() || launch_.token_file.empty() || !launch_.run_as) return;
  struct stat info;
  if (::stat(launch_.token_source.c_str(), &info) != 0) return;
  if (info.st_ino == mirrored_inode_ && info.st_mtim.tv_sec == mirrored_mtime_.tv_sec &&
      info.st_mtim.tv_nsec == mirrored_mtime_.tv_nsec) {
    return;
  }
  Result<std::string> token = base::ReadFile(launch_.token_source, kMaxTokenBytes);
  if (!token.ok()) {
    Complain(std::string(token.status().message()));
    return;
  }
  // The sandbox directory is root's (0711), so nothing the attempt does can redirect this
  // write; O_EXCL and O_NOFOLLOW refuse whatever is there regardless.
  const std::string temporary = launch_.token_file + ".new";
  ::unlink(temporary.c_str());
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    Complain(fmt::format("cannot write {}: {}", temporary, std::strerror(errno)));
    return;
  }
  bool ok = ::fchown(fd, launch_.run_as->first, launch_.run_as->second) == 0;
  WriteAllFd(fd, token->data(), token->size());
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(temporary.c_str(), launch_.token_file.c_str()) != 0) {
    Complain(fmt::format("cannot publish {}: {}", launch_.token_file, std::strerror(errno)));
    ::unlink(temporary.c_str());
    return;
  }
  mirrored_inode_ = info.st_ino;
  mirrored_mtime_ = info.st_mtim;
}

void Shim::CloseSandbox() {
  if (launch_.sandbox_dir.empty()) return;
  if (::chmod(launch_.sandbox_dir.c_str(), 0700) != 0) {
    Complain(fmt::format("cannot close {}: {}", launch_.sandbox_dir, std::strerror(errno)));
  }
}

Result<int> Shim::OpenChannels() {
  std::string log_path = JoinPath(dir_, local::kOutputLog);
  log_fd_ = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd_ < 0) {
    return absl::InternalError(fmt::format("cannot open {}: {}", log_path, std::strerror(errno)));
  }
  off_t existing = ::lseek(log_fd_, 0, SEEK_END);
  log_ = std::make_unique<LogWriter>(log_fd_, launch_.max_log_bytes, existing > 0 ? existing : 0);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  }
  pipe_read_ = pipe_fds[0];

  // Signals are read from a signalfd, so no handler runs in the child before it execs.
  sigset_t handled;
  sigemptyset(&handled);
  for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&handled, signal);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  signal_fd_ = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) {
    ::close(pipe_fds[1]);
    return absl::InternalError(fmt::format("cannot create a signalfd: {}", std::strerror(errno)));
  }
  return pipe_fds[1];
}

Status Shim::StartChild() {
  ASSIGN_OR_RETURN(int output_write_fd, OpenChannels());
  ChildPlan plan;
  plan.work_dir = launch_.work_dir;
  plan.run_as = launch_.run_as;
  MirrorToken();  // the token is there before the entrypoint looks
  plan.argv_storage = {"sh", "-c", launch_.entrypoint};
  plan.env_storage = BuildEnvironment(launch_);
  for (std::string& arg : plan.argv_storage) plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  for (std::string& entry : plan.env_storage) plan.envp.push_back(entry.data());
  plan.envp.push_back(nullptr);
  plan.output_fd = output_write_fd;

  int64_t started_unix_ms = NowUnixMs();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(output_write_fd);
    return absl::InternalError(fmt::format("cannot fork: {}", std::strerror(errno)));
  }
  if (pid == 0) ExecEntrypoint(plan);
  // Also set here: whichever of parent and child runs first, the group exists before the
  // parent publishes the pid or signals it.
  ::setpgid(pid, pid);
  ::close(output_write_fd);
  child_pid_ = pid;

  Result<local::ProcessIdentity> identity = local::IdentifyProcess(pid);
  if (identity.ok()) {
    identity->started_unix_ms = started_unix_ms;
    Status written = local::WriteIdentity(JoinPath(dir_, local::kChildPidFile), *identity);
    if (!written.ok()) Complain(std::string(written.message()));
  }
  // The stack writes its marker before it reads child.pid; checking the marker after
  // writing child.pid means one of the two always sees the other.
  if (base::PathExists(JoinPath(dir_, local::kTerminateFile)) ||
      base::PathExists(JoinPath(dir_, local::kTimedOutFile))) {
    SignalGroup(SIGTERM);
  }
  return OkStatus();
}

bool Shim::CopyOutput() {
  char buffer[kCopyBufferBytes];
  ssize_t n = ::read(pipe_read_, buffer, sizeof(buffer));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) {
    ::close(pipe_read_);
    pipe_read_ = -1;
    return false;
  }
  log_->Append(buffer, static_cast<size_t>(n));
  return true;
}

void Shim::HandleSignals() {
  signalfd_siginfo info;
  while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
    // Whoever stops the shim means to stop the attempt: pass it on to the whole group.
    if (info.ssi_signo != SIGCHLD) SignalGroup(SIGTERM);
  }
}

bool Shim::ChildExited() {
  while (true) {
    siginfo_t info;
    info.si_pid = 0;
    // WNOWAIT leaves the entrypoint a zombie, so its pid (and group id) cannot be reused
    // until the rest of the group has been killed in Finish.
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      return true;  // ECHILD: nothing left to wait for
    }
    if (info.si_pid == 0) return false;
    if (info.si_pid == child_pid_) return true;
    // An orphaned descendant handed to this subreaper: collect it.
    ::waitpid(info.si_pid, nullptr, 0);
  }
}

// Kills descendants that left the entrypoint's process group (setsid, daemons): as a child
// subreaper the shim inherits every orphan, so its children are exactly what is left.
void Shim::KillLeftovers() {
  const std::string children_path = fmt::format("/proc/self/task/{}/children", ::getpid());
  for (int round = 0; round < kMaxLeftoverRounds; ++round) {
    Result<std::string> children = base::ReadFile(children_path, int64_t{1} << 20);
    if (!children.ok()) return;
    bool any = false;
    std::istringstream pids(*children);
    for (pid_t pid; pids >> pid;) {
      if (pid == child_pid_) continue;  // stays a zombie until Finish reaps it
      any = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, WNOHANG);
    }
    if (!any) return;
    ::usleep(kLeftoverPollUs);
  }
}

void Shim::Supervise() {
  while (!ChildExited()) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {pipe_read_, POLLIN, 0}};
    int count = pipe_read_ >= 0 ? 2 : 1;
    // The timeout is only a safety net: SIGCHLD arrives on the signalfd.
    int ready = ::poll(fds, count, 1000);
    if (ready < 0) continue;
    if (count == 2 && fds[1].revents != 0) CopyOutput();
    if (fds[0].revents != 0) HandleSignals();
    MirrorToken();
  }
}

int Shim::Finish() {
  // The attempt ends with its entrypoint: anything it left behind goes too.
  SignalGroup(SIGKILL);
  KillLeftovers();
  CloseSandbox();
  int64_t deadline_ms = MonotonicMs() + kDrainAfterExitMs;
  while (pipe_read_ >= 0) {
    int64_t left_ms = deadline_ms - MonotonicMs();
    if (left_ms <= 0) break;
    pollfd fd = {pipe_read_, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left_ms)) > 0) CopyOutput();
  }
  int status = 0;
  pid_t reaped;
  do {
    reaped = ::waitpid(child_pid_, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  if (reaped != child_pid_) return FinishWithoutChild("lost the exit status of the entrypoint");
  local::ExitRecord record;
  record.ended_unix_ms = NowUnixMs();
  if (WIFSIGNALED(status)) {
    record.signal = WTERMSIG(status);
    record.exit_code = 128 + record.signal;
  } else {
    record.exit_code = WEXITSTATUS(status);
  }
  Status written = local::WriteExitRecord(JoinPath(dir_, local::kExitCodeFile), record);
  if (!written.ok()) {
    Complain(std::string(written.message()));
    return 1;
  }
  return 0;
}

int Shim::FinishWithoutChild(const std::string& error) {
  Complain(error);
  CloseSandbox();
  local::ExitRecord record;
  record.exit_code = kCannotStartExitCode;
  record.ended_unix_ms = NowUnixMs();
  record.error = error;
  Status written = local::WriteExitRecord(JoinPath(dir_, local::kExitCodeFile), record);
  if (!written.ok()) Complain(std::string(written.message()));
  return 1;
}

// The stack starts the shim with 0, 1 and 2 open; when run by hand they may not be, and the
// pipe must not land on them.
void EnsureStandardFds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0) continue;
    int opened = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (opened >= 0 && opened != fd) {
      ::dup2(opened, fd);
      ::close(opened);
    }
  }
}

}  // namespace

int RunShim(const std::string& attempt_dir) {
  EnsureStandardFds();
  // The attempt's uid claim (run_as.h), when the stack passed one: held until this process
  // exits, never inherited by the entrypoint.
  if (::fcntl(local::kUidClaimFd, F_GETFD) >= 0) ::fcntl(local::kUidClaimFd, F_SETFD, FD_CLOEXEC);
  // A session of its own: the operator's terminal, session and process group no longer
  // reach the attempt, and the shim outlives the operator.
  ::setsid();
  // Orphaned descendants of the entrypoint come to the shim, which reaps and stops them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // Inherited SIG_IGN for SIGCHLD would make the kernel reap the entrypoint unseen.
  ::signal(SIGCHLD, SIG_DFL);
  Result<local::ProcessIdentity> self = local::IdentifyProcess(::getpid());
  if (self.ok()) {
    Status written = local::WriteIdentity(JoinPath(attempt_dir, local::kShimPidFile), *self);
    if (!written.ok()) Complain(std::string(written.message()));
  }
  try {
    return Shim(attempt_dir).Run();
  } catch (const std::exception& error) {
    Complain(fmt::format("stopped by an unexpected error: {}", error.what()));
    return 1;
  }
}

}  // namespace meridian::op
