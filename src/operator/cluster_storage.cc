#include "operator/cluster_storage.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "base/files.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::op {
namespace {

constexpr int64_t kPollMs = 50;
constexpr int64_t kMaxLogTailBytes = 2'000;

std::string Parent(const std::string& dir) {
  size_t slash = dir.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : dir.substr(0, slash);
}

// Starts argv[0] with stdin from /dev/null and stdout/stderr appended to `log_file`
// ("": /dev/null). With `die_with_parent`, the child gets SIGTERM when the calling thread
// ends, so it never outlives an operator that was killed.
Result<pid_t> Spawn(const std::vector<std::string>& args, const std::string& log_file,
                    bool die_with_parent) {
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = log_file.empty()
                ? ::open("/dev/null", O_WRONLY | O_CLOEXEC)
                : ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (in < 0 || out < 0) {
    int error = errno;
    if (in >= 0) ::close(in);
    if (out >= 0) ::close(out);
    return absl::InternalError(fmt::format("cannot open {}: {}", log_file, strerror(error)));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: the operator has threads.
    // The operator blocks SIGTERM/SIGINT to sigwait for them; the mask survives exec, and
    // the mount process must see SIGTERM to flush and unmount.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
    }
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  int error = errno;
  ::close(in);
  ::close(out);
  if (pid < 0) return absl::InternalError(fmt::format("fork: {}", strerror(error)));
  return pid;
}

// Waits for `pid` to exit for up to `timeout_ms`; true when it did (and was reaped).
bool WaitExit(pid_t pid, int64_t timeout_ms, int* status) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    pid_t done = ::waitpid(pid, status, WNOHANG);
    if (done == pid || (done < 0 && errno == ECHILD)) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
}

// `fusermount3 -u -z DIR`: detaches a mount, even a dead one, without waiting for its users.
void LazyUnmount(const std::string& dir) {
  Result<pid_t> pid = Spawn({"fusermount3", "-u", "-z", dir}, "", /*die_with_parent=*/false);
  int status = 0;
  if (pid.ok() && !WaitExit(*pid, 10'000, &status)) {
    ::kill(*pid, SIGKILL);
    WaitExit(*pid, 10'000, &status);
  }
}

std::string LogTail(const std::string& log_file) {
  Result<std::string> text = base::ReadFile(log_file, 1 << 20);
  if (!text.ok() || text->empty()) return "no output";
  std::string tail = text->size() > kMaxLogTailBytes
                         ? text->substr(text->size() - kMaxLogTailBytes)
                         : *text;
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  return tail;
}

// Starts the mount process and waits until the mount is live; the pid on success.
Result<pid_t> StartMount(const ClusterStorageOptions& options) {
  if (!FuseDeviceUsable()) {
    return absl::FailedPreconditionError(
        fmt::format("/dev/fuse cannot be opened read-write: {}", strerror(errno)));
  }
  std::vector<std::string> args = {options.binary,   "storage",       "mount",
                                   options.bucket_url, options.mount_dir, "--cache-dir",
                                   options.cache_dir};
  if (options.shared_gid.has_value()) {
    for (std::string option :
         {std::string("allow_other"), fmt::format("gid={}", *options.shared_gid),
          std::string("umask=002")}) {
      args.push_back("-o");
      args.push_back(std::move(option));
    }
  }
  ASSIGN_OR_RETURN(pid_t pid, Spawn(args, options.log_file, /*die_with_parent=*/true));
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.mount_timeout_ms);
  while (!IsMountPoint(options.mount_dir)) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      return absl::FailedPreconditionError(
          fmt::format("`meridian storage mount` exited (status {}): {}", status,
                      LogTail(options.log_file)));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      WaitExit(pid, 10'000, &status);
      LazyUnmount(options.mount_dir);
      return absl::DeadlineExceededError(fmt::format(
          "the mount did not come up within {} ms: {}", options.mount_timeout_ms,
          LogTail(options.log_file)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
  return pid;
}

}  // namespace

Status ShareWithGroup(const std::string& dir, gid_t gid) {
  if (::chown(dir.c_str(), static_cast<uid_t>(-1), gid) != 0 || ::chmod(dir.c_str(), 02775) != 0) {
    return absl::InternalError(
        fmt::format("cannot give {} to group {}: {}", dir, gid, strerror(errno)));
  }
  return OkStatus();
}

bool FuseDeviceUsable() {
  int fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool IsMountPoint(const std::string& dir) {
  struct stat self {};
  struct stat parent {};
  if (::stat(dir.c_str(), &self) != 0 || ::stat(Parent(dir).c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev;
}

std::string LocalBackendRoot(const std::string& url) {
  constexpr std::string_view kScheme = "file://";
  if (url.compare(0, kScheme.size(), kScheme) != 0) return "";
  std::string root = url.substr(kScheme.size());
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return root.empty() || root[0] != '/' ? "" : root;
}

Result<std::unique_ptr<ClusterStorage>> ClusterStorage::Open(
    const ClusterStorageOptions& options) {
  if (options.bucket_url.empty()) return absl::InvalidArgumentError("no bucket to mount");
  auto storage = std::unique_ptr<ClusterStorage>(new ClusterStorage);
  storage->options_ = options;
  // A dead FUSE connection makes stat fail with ENOTCONN; a live one is a leftover mount.
  struct stat ignored {};
  if ((::stat(options.mount_dir.c_str(), &ignored) != 0 && errno == ENOTCONN) ||
      IsMountPoint(options.mount_dir)) {
    spdlog::warn("unmounting what an earlier operator left at {}", options.mount_dir);
    LazyUnmount(options.mount_dir);
  }
  RETURN_IF_ERROR(base::MakeDirs(options.mount_dir, 0755));
  RETURN_IF_ERROR(base::MakeDirs(options.cache_dir, 0700));
  Result<pid_t> pid = StartMount(options);
  if (pid.ok()) {
    storage->mount_pid_ = *pid;
    storage->path_ = options.mount_dir;
    spdlog::info("cluster storage {} mounted at {}", options.bucket_url, options.mount_dir);
    return storage;
  }
  std::string root = LocalBackendRoot(options.bucket_url);
  if (root.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "cannot mount cluster storage {}: {}", options.bucket_url, pid.status().message()));
  }
  storage->path_ = root + "/fallback";
  RETURN_IF_ERROR(base::MakeDirs(storage->path_, 0755));
  if (options.shared_gid.has_value())
    RETURN_IF_ERROR(ShareWithGroup(storage->path_, *options.shared_gid));
  spdlog::warn(
      "cannot mount cluster storage {} ({}); jobs get the plain directory {} instead, which "
      "operators on this machine share but a mount of {} does not show",
      options.bucket_url, pid.status().message(), storage->path_, options.bucket_url);
  return storage;
}

ClusterStorage::~ClusterStorage() { Unmount(); }

void ClusterStorage::Unmount() {
  if (mount_pid_ <= 0) return;
  ::kill(mount_pid_, SIGTERM);  // the clean path: upload what is dirty, then unmount
  int status = 0;
  if (!WaitExit(mount_pid_, options_.unmount_timeout_ms, &status)) {
    spdlog::warn("the cluster storage mount at {} did not stop within {} ms; killing it",
                 options_.mount_dir, options_.unmount_timeout_ms);
    ::kill(mount_pid_, SIGKILL);
    WaitExit(mount_pid_, 10'000, &status);
  }
  mount_pid_ = -1;
  if (IsMountPoint(options_.mount_dir)) LazyUnmount(options_.mount_dir);
  spdlog::info("cluster storage unmounted from {}", options_.mount_dir);
}

}  // namespace meridian::op
