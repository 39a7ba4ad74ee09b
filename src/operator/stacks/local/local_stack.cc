#include "operator/stacks/local/local_stack.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <variant>

#include "package/tar_reader.h"
#include "base/files.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "operator/stacks/local/attempt_dir.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace meridian::op {
namespace {

using local::JoinPath;
using local::KillRequest;
using local::Liveness;
using local::ProcessIdentity;

constexpr size_t kMaxKeyBytes = 128;
constexpr int64_t kTimeoutGraceMs = 10'000;  // SIGTERM to SIGKILL when timeout_s passes
constexpr int64_t kMaxGraceMs = int64_t{3600} * 1000;
constexpr int64_t kSupervisePeriodMs = 200;  // how often deadlines and shims are checked
constexpr int64_t kMaxReadLogBytes = int64_t{4} << 20;
constexpr std::string_view kLockFile = ".lock";
constexpr std::string_view kStagingPrefix = ".staging-";
constexpr std::string_view kForgottenPrefix = ".forgotten-";
constexpr std::string_view kLostMessage = "lost: the process disappeared without an exit status";

// Letters, digits, '.', '_' and '-', starting with a letter or digit: never a path, never a
// hidden name (those are the stack's own).
bool IsSafeKey(const std::string& key) {
  if (key.empty() || key.size() > kMaxKeyBytes ||
      !std::isalnum(static_cast<unsigned char>(key[0]))) {
    return false;
  }
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

Status ValidateLaunch(const AttemptLaunch& launch) {
  if (!IsSafeKey(launch.key)) {
    return absl::InvalidArgumentError(fmt::format(
        "attempt key '{}' is not 1 to {} letters, digits, '.', '_' or '-' starting with a "
        "letter or digit",
        launch.key, kMaxKeyBytes));
  }
  auto has_nul = [](const std::string& text) { return text.find('\0') != std::string::npos; };
  if (launch.entrypoint.empty() || has_nul(launch.entrypoint)) {
    return absl::InvalidArgumentError(
        fmt::format("attempt {}: the entrypoint is empty or holds a NUL byte", launch.key));
  }
  for (const auto& [name, value] : launch.env) {
    if (name.empty() || name.find('=') != std::string::npos || has_nul(name) || has_nul(value)) {
      return absl::InvalidArgumentError(fmt::format(
          "attempt {}: environment variable '{}' is not a valid name=value", launch.key, name));
    }
  }
  if (launch.timeout_s < 0) {
    return absl::InvalidArgumentError(fmt::format("attempt {}: timeout_s is negative", launch.key));
  }
  for (int index : launch.gpu_indices) {
    if (index < 0) {
      return absl::InvalidArgumentError(
          fmt::format("attempt {}: GPU index {} is negative", launch.key, index));
    }
  }
  return OkStatus();
}

int64_t FileSize(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 ? static_cast<int64_t>(info.st_size) : 0;
}

// Signals the process group of a verified live process; a leader that left its group is
// still signalled itself.
void SignalGroup(const ProcessIdentity& leader, int signal) {
  if (local::CheckLiveness(leader) != Liveness::kAlive) return;
  if (::kill(-leader.pid, signal) != 0 && errno == ESRCH) ::kill(leader.pid, signal);
}

// What the stack remembers about one attempt. The files are the truth; this caches what no
// longer changes and what only this process knows.
struct AttemptRecord {
  bool published = false;  // false while Start is still preparing the directory
  int64_t timeout_s = 0;
  std::optional<ProcessIdentity> shim;
  std::optional<ProcessIdentity> child;
  std::optional<AttemptStatus> final_status;
  std::optional<int64_t> kill_deadline_unix_ms;  // SIGKILL then, once stopping was asked
  bool sigterm_sent = false;
  bool sigkill_sent = false;
  bool timed_out = false;
};

class LocalStack final : public ComputeStack {
 public:
  LocalStack(LocalStackOptions options, int lock_fd)
      : options_(std::move(options)), clock_(options_.clock), lock_fd_(lock_fd) {}

  ~LocalStack() override {
    // Attempts keep running: they belong to their shims, not to this object.
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (supervisor_.joinable()) supervisor_.join();
    ::close(lock_fd_);
  }

  Status Load();
  void StartSupervisor() {
    supervisor_ = std::thread([this] { SuperviseLoop(); });
  }

  Status Start(const AttemptLaunch& launch) override;
  Status Terminate(const std::string& key, int64_t grace_ms) override;
  std::vector<AttemptStatus> List() override;
  Result<LogChunk> ReadLog(const std::string& key, int64_t offset, int64_t max_bytes) override;
  Status Forget(const std::string& key) override;

 private:
  std::string AttemptDir(const std::string& key) const { return JoinPath(options_.root, key); }
  bool Sandboxed() const { return !std::holds_alternative<RunAsOperator>(options_.run_as); }
  std::string SandboxDir(const std::string& key) const {
    return JoinPath(options_.sandbox_root, key);
  }
  Status PrepareAttempt(const AttemptLaunch& launch, const std::string& dir,
                        const AttemptUser& user) const;
  // <sandbox_root>/<key>/ for an attempt that runs as `user` (local_stack.h).
  Status PrepareSandbox(const AttemptLaunch& launch, const AttemptUser& user) const;
  // `claim_fd` (the attempt's uid claim, or -1) becomes the shim's descriptor 3.
  Result<pid_t> SpawnShim(const std::string& dir, int claim_fd) const;
  void Unreserve(const std::string& key);

  // Reads an attempt's files; caches what is final. Requires mu_.
  AttemptStatus Observe(const std::string& key, AttemptRecord& record);
  AttemptStatus Classify(const std::string& key, const AttemptRecord& record,
                         const local::ExitRecord& exit) const;
  void LoadKillRequests(const std::string& dir, AttemptRecord& record) const;
  // Sends due signals and starts the timeout of a running attempt. Requires mu_.
  void EnforceDeadlines(const std::string& key, AttemptRecord& record, const AttemptStatus& status);
  void ReapShims();  // Requires mu_.
  void SuperviseLoop();

  // Constant after construction.
  const LocalStackOptions options_;
  base::Clock* const clock_;
  const int lock_fd_;  // holds flock on <root>/.lock: one stack per root

  std::mutex mu_;
  // Protected by mu_.
  std::map<std::string, AttemptRecord> attempts_;
  std::vector<ProcessIdentity> unreaped_shims_;  // children of this process not yet waited for
  bool stopping_ = false;
  std::condition_variable wake_;  // with mu_: stop, or look at the attempts now

  std::thread supervisor_;
};

Status LocalStack::Load() {
  DIR* dir = ::opendir(options_.root.c_str());
  if (dir == nullptr) {
    return absl::InternalError(
        fmt::format("cannot list {}: {}", options_.root, std::strerror(errno)));
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) names.emplace_back(entry->d_name);
  ::closedir(dir);

  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& name : names) {
    std::string path = AttemptDir(name);
    if (name.starts_with(kStagingPrefix) || name.starts_with(kForgottenPrefix)) {
      // Left by a Start or Forget that did not finish: never a visible attempt.
      RETURN_IF_ERROR(base::RemoveAll(path));
      continue;
    }
    if (!IsSafeKey(name)) continue;
    Result<std::string> launch_text =
        base::ReadFile(JoinPath(path, local::kLaunchFile), int64_t{16} << 20);
    if (!launch_text.ok()) {
      spdlog::warn("ignoring {}: {}", path, std::string(launch_text.status().message()));
      continue;
    }
    AttemptRecord record;
    record.published = true;
    nlohmann::json launch = nlohmann::json::parse(*launch_text, nullptr, false);
    if (launch.is_object() && launch.contains("timeout_s") && launch["timeout_s"].is_number()) {
      record.timeout_s = launch["timeout_s"].get<int64_t>();
    }
    Result<ProcessIdentity> shim = local::ReadIdentity(JoinPath(path, local::kShimPidFile));
    if (shim.ok()) {
      record.shim = *shim;
      // A shim started by an earlier stack of this same process is still our child.
      if (local::CheckLiveness(*shim) != Liveness::kGone) unreaped_shims_.push_back(*shim);
    }
    LoadKillRequests(path, record);
    attempts_.emplace(name, std::move(record));
  }
  return OkStatus();
}

void LocalStack::LoadKillRequests(const std::string& dir, AttemptRecord& record) const {
  for (std::string_view file : {local::kTerminateFile, local::kTimedOutFile}) {
    Result<KillRequest> request = local::ReadKillRequest(JoinPath(dir, file));
    if (!request.ok()) continue;
    int64_t deadline = request->requested_unix_ms + request->grace_ms;
    record.kill_deadline_unix_ms =
        std::min(record.kill_deadline_unix_ms.value_or(deadline), deadline);
    if (file == local::kTimedOutFile) record.timed_out = true;
  }
}

Status LocalStack::Start(const AttemptLaunch& launch) {
  RETURN_IF_ERROR(ValidateLaunch(launch));
  const std::string dir = AttemptDir(launch.key);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (attempts_.count(launch.key) != 0 || base::PathExists(dir)) {
      return absl::AlreadyExistsError(fmt::format("attempt {} already exists", launch.key));
    }
    AttemptRecord reserved;
    reserved.timeout_s = launch.timeout_s;
    attempts_.emplace(launch.key, std::move(reserved));
  }
  Result<AttemptUser> user = ClaimAttemptUser(options_.run_as, launch.key, options_.uid_lock_dir);
  if (!user.ok()) {
    Unreserve(launch.key);
    return user.status();
  }
  // The claim passes to the shim; this process lets go of it once the shim has it.
  auto release_claim = [&user] {
    if (user->lock_fd >= 0) ::close(user->lock_fd);
    user->lock_fd = -1;
  };
  auto remove_sandbox = [&] {
    if (Sandboxed()) base::RemoveAll(SandboxDir(launch.key)).IgnoreError();
  };
  // The directory is prepared under a hidden name and renamed into place, so neither this
  // stack nor a later one ever sees half of it.
  const std::string staging =
      JoinPath(options_.root, fmt::format("{}{}", kStagingPrefix, launch.key));
  Status prepared = PrepareAttempt(launch, staging, *user);
  if (prepared.ok() && ::rename(staging.c_str(), dir.c_str()) != 0) {
    prepared = absl::InternalError(
        fmt::format("cannot rename {} to {}: {}", staging, dir, std::strerror(errno)));
  }
  if (!prepared.ok()) {
    base::RemoveAll(staging).IgnoreError();
    remove_sandbox();
    release_claim();
    Unreserve(launch.key);
    return prepared;
  }
  Result<pid_t> shim_pid = SpawnShim(dir, user->lock_fd);
  release_claim();
  Result<ProcessIdentity> shim = shim_pid.ok() ? local::IdentifyProcess(*shim_pid)
                                               : Result<ProcessIdentity>(shim_pid.status());
  if (!shim.ok()) {
    base::RemoveAll(dir).IgnoreError();
    remove_sandbox();
    Unreserve(launch.key);
    return shim.status();
  }
  // The shim writes it too; writing it here as well means a stack opened right after this
  // one already knows the shim.
  local::WriteIdentity(JoinPath(dir, local::kShimPidFile), *shim).IgnoreError();
  std::lock_guard<std::mutex> lock(mu_);
  AttemptRecord& record = attempts_[launch.key];
  record.published = true;
  record.shim = *shim;
  unreaped_shims_.push_back(*shim);
  spdlog::info("attempt {} started in {} (shim pid {})", launch.key, dir, shim->pid);
  return OkStatus();
}

void LocalStack::Unreserve(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  attempts_.erase(key);
}

// lchown of `dir` and everything under it, never following a symlink.
Status ChownTree(const std::string& dir, uid_t uid, gid_t gid) {
  std::error_code error;
  if (::lchown(dir.c_str(), uid, gid) != 0) {
    return absl::InternalError(fmt::format("cannot chown {}: {}", dir, std::strerror(errno)));
  }
  for (std::filesystem::recursive_directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    if (::lchown(it->path().c_str(), uid, gid) != 0) {
      return absl::InternalError(
          fmt::format("cannot chown {}: {}", it->path().string(), std::strerror(errno)));
    }
  }
  if (error) return absl::InternalError(fmt::format("cannot list {}: {}", dir, error.message()));
  return OkStatus();
}

Status MakePrivateDir(const std::string& dir, uid_t uid, gid_t gid) {
  RETURN_IF_ERROR(base::MakeDirs(dir, 0700));
  if (::chown(dir.c_str(), uid, gid) != 0 || ::chmod(dir.c_str(), 0700) != 0) {
    return absl::InternalError(
        fmt::format("cannot give {} to uid {}: {}", dir, uid, std::strerror(errno)));
  }
  return OkStatus();
}

Status LocalStack::PrepareSandbox(const AttemptLaunch& launch, const AttemptUser& user) const {
  const std::string sandbox = SandboxDir(launch.key);
  RETURN_IF_ERROR(base::RemoveAll(sandbox));
  RETURN_IF_ERROR(base::MakeDirs(sandbox, 0711));
  if (::chmod(sandbox.c_str(), 0711) != 0) {
    return absl::InternalError(fmt::format("cannot chmod {}: {}", sandbox, std::strerror(errno)));
  }
  const std::string work = JoinPath(sandbox, local::kWorkDir);
  RETURN_IF_ERROR(base::MakeDirs(work, 0700));
  if (!launch.working_dir_archive.empty()) {
    RETURN_IF_ERROR(package::UnpackArchive(launch.working_dir_archive, work));
  }
  RETURN_IF_ERROR(ChownTree(work, user.uid, user.gid));
  if (::chmod(work.c_str(), 0700) != 0) {
    return absl::InternalError(fmt::format("cannot chmod {}: {}", work, std::strerror(errno)));
  }
  RETURN_IF_ERROR(MakePrivateDir(JoinPath(sandbox, local::kSandboxTmpDir), user.uid, user.gid));
  if (!launch.ca_file.empty()) {
    ASSIGN_OR_RETURN(std::string ca, base::ReadFile(launch.ca_file, int64_t{1} << 20));
    RETURN_IF_ERROR(base::WriteFileAtomic(JoinPath(sandbox, local::kSandboxCaFile), ca, 0644));
  }
  return OkStatus();
}

Status LocalStack::PrepareAttempt(const AttemptLaunch& launch, const std::string& dir,
                                  const AttemptUser& user) const {
  RETURN_IF_ERROR(base::RemoveAll(dir));
  RETURN_IF_ERROR(base::MakeDirs(dir));
  std::map<std::string, std::string> env = launch.env;
  nlohmann::json document = {
      {"key", launch.key},
      {"entrypoint", launch.entrypoint},
      {"working_dir_archive", launch.working_dir_archive},
      {"timeout_s", launch.timeout_s},
      {"gpu_indices", launch.gpu_indices},
      {"max_log_bytes", options_.max_log_bytes},
  };
  if (Sandboxed()) {
    RETURN_IF_ERROR(PrepareSandbox(launch, user));
    const std::string sandbox = SandboxDir(launch.key);
    document["work_dir"] = JoinPath(sandbox, local::kWorkDir);
    document["sandbox_dir"] = sandbox;
    document["run_as"] = {{"uid", user.uid}, {"gid", user.gid}};
    env["HOME"] = JoinPath(sandbox, local::kWorkDir);
    env["TMPDIR"] = JoinPath(sandbox, local::kSandboxTmpDir);
    if (const auto* named = std::get_if<RunAsUser>(&options_.run_as)) {
      env["USER"] = env["LOGNAME"] = named->name;
    } else {
      env["USER"] = env["LOGNAME"] = fmt::format("meridian-{}", user.uid);
    }
    if (!launch.federated_token_file.empty()) {
      document["token_source"] = launch.federated_token_file;
      document["token_file"] = JoinPath(sandbox, local::kSandboxTokenFile);
      env["AZURE_FEDERATED_TOKEN_FILE"] = JoinPath(sandbox, local::kSandboxTokenFile);
    }
    if (!launch.ca_file.empty()) env["MERIDIAN_CA_FILE"] = JoinPath(sandbox, local::kSandboxCaFile);
  } else {
    const std::string work = JoinPath(dir, local::kWorkDir);
    RETURN_IF_ERROR(base::MakeDirs(work));
    if (!launch.working_dir_archive.empty()) {
      RETURN_IF_ERROR(package::UnpackArchive(launch.working_dir_archive, work));
    }
    // No work_dir: the shim uses <attempt dir>/work (`dir` is still the staging name here).
    if (!launch.federated_token_file.empty()) {
      env["AZURE_FEDERATED_TOKEN_FILE"] = launch.federated_token_file;
    }
    if (!launch.ca_file.empty()) env["MERIDIAN_CA_FILE"] = launch.ca_file;
  }
  document["env"] = env;
  // 0600: the environment may carry secrets of the job's owner.
  RETURN_IF_ERROR(base::WriteFileAtomic(JoinPath(dir, local::kLaunchFile), document.dump(2) + "\n",
                                        0600, base::FileSync::kProcessCrashSafe));
  // Present from the start, so ReadLog works before the first byte of output.
  return base::WriteFileAtomic(JoinPath(dir, local::kOutputLog), "", 0600,
                               base::FileSync::kProcessCrashSafe);
}

Result<pid_t> LocalStack::SpawnShim(const std::string& dir, int claim_fd) const {
  const std::string shim_log = JoinPath(dir, local::kShimLog);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, shim_log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  int first_closed = STDERR_FILENO + 1;
  if (claim_fd >= 0) {
    // dup2 clears close-on-exec: the shim holds the uid claim for the attempt's lifetime.
    posix_spawn_file_actions_adddup2(&actions, claim_fd, local::kUidClaimFd);
    first_closed = local::kUidClaimFd + 1;
  }
  // Nothing of the operator (sockets, files, the root lock) leaks into the attempt.
  posix_spawn_file_actions_addclosefrom_np(&actions, first_closed);

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigset_t default_signals;
  sigemptyset(&default_signals);
  for (int signal = 1; signal < 32; ++signal) {
    if (signal != SIGKILL && signal != SIGSTOP) sigaddset(&default_signals, signal);
  }
  posix_spawnattr_setsigmask(&attributes, &no_signals);
  posix_spawnattr_setsigdefault(&attributes, &default_signals);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::string binary = options_.shim_binary;
  std::string operator_word = "operator";
  std::string shim_word = "shim";
  std::string dir_arg = dir;
  char* argv[] = {binary.data(), operator_word.data(), shim_word.data(), dir_arg.data(), nullptr};
  pid_t pid = 0;
  int error = ::posix_spawn(&pid, binary.c_str(), &actions, &attributes, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    return absl::InternalError(
        fmt::format("cannot start the shim {}: {}", binary, std::strerror(error)));
  }
  return pid;
}

AttemptStatus LocalStack::Classify(const std::string& key, const AttemptRecord& record,
                                   const local::ExitRecord& exit) const {
  const std::string dir = AttemptDir(key);
  AttemptStatus status;
  status.key = key;
  status.exit_code = exit.exit_code;
  status.ended_unix_ms = exit.ended_unix_ms;
  status.log_bytes = FileSize(JoinPath(dir, local::kOutputLog));
  if (record.child) status.started_unix_ms = record.child->started_unix_ms;
  Result<KillRequest> timed_out = local::ReadKillRequest(JoinPath(dir, local::kTimedOutFile));
  status.phase = AttemptPhase::kFailed;
  if (!exit.error.empty()) {
    status.message = exit.error;
  } else if (timed_out.ok()) {
    int64_t timeout_s = timed_out->timeout_s > 0 ? timed_out->timeout_s : record.timeout_s;
    status.message = fmt::format("timed out after {} s", timeout_s);
  } else if (base::PathExists(JoinPath(dir, local::kTerminateFile))) {
    status.phase = AttemptPhase::kTerminated;
    status.message = "terminated on request";
  } else if (exit.exit_code == 0) {
    status.phase = AttemptPhase::kSucceeded;
  } else if (exit.signal != 0) {
    status.message = fmt::format("killed by signal {}", exit.signal);
  } else {
    status.message = fmt::format("exited with code {}", exit.exit_code);
  }
  return status;
}

AttemptStatus LocalStack::Observe(const std::string& key, AttemptRecord& record) {
  if (record.final_status) return *record.final_status;
  AttemptStatus status;
  status.key = key;
  if (!record.published) return status;  // kStarting
  const std::string dir = AttemptDir(key);
  const std::string exit_path = JoinPath(dir, local::kExitCodeFile);
  if (!record.child) {
    Result<ProcessIdentity> child = local::ReadIdentity(JoinPath(dir, local::kChildPidFile));
    if (child.ok()) record.child = *child;
  }
  Result<local::ExitRecord> exit = local::ReadExitRecord(exit_path);
  if (!exit.ok()) {
    status.log_bytes = FileSize(JoinPath(dir, local::kOutputLog));
    if (record.child) {
      status.started_unix_ms = record.child->started_unix_ms;
      // A child that has just exited still has its shim, which is about to record it.
      if (local::CheckLiveness(*record.child) == Liveness::kAlive ||
          (record.shim && local::CheckLiveness(*record.shim) == Liveness::kAlive)) {
        status.phase = AttemptPhase::kRunning;
        return status;
      }
    } else if (record.shim && local::CheckLiveness(*record.shim) == Liveness::kAlive) {
      return status;  // kStarting
    }
    // Both are gone; the shim may have recorded the exit between the two reads.
    exit = local::ReadExitRecord(exit_path);
  }
  if (exit.ok()) {
    record.final_status = Classify(key, record, *exit);
  } else {
    status.phase = AttemptPhase::kFailed;
    status.message = std::string(kLostMessage);
    status.ended_unix_ms = clock_->NowUnixMs();
    record.final_status = status;
  }
  return *record.final_status;
}

Status LocalStack::Terminate(const std::string& key, int64_t grace_ms) {
  if (grace_ms < 0 || grace_ms > kMaxGraceMs) {
    return absl::InvalidArgumentError(
        fmt::format("grace_ms {} is not between 0 and {}", grace_ms, kMaxGraceMs));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = attempts_.find(key);
  if (it == attempts_.end()) {
    return absl::NotFoundError(fmt::format("no attempt {}", key));
  }
  AttemptRecord& record = it->second;
  if (!record.published) {
    return absl::UnavailableError(fmt::format("attempt {} is still being started", key));
  }
  if (IsFinal(Observe(key, record).phase)) return OkStatus();
  int64_t now_ms = clock_->NowUnixMs();
  int64_t deadline_ms = now_ms + grace_ms;
  if (record.kill_deadline_unix_ms && *record.kill_deadline_unix_ms <= deadline_ms) {
    return OkStatus();  // an earlier request already stops it sooner
  }
  // The marker comes first: it is what makes the attempt TERMINATED rather than FAILED, and
  // the shim looks for it after publishing child.pid (see shim.cc).
  RETURN_IF_ERROR(local::WriteKillRequest(JoinPath(AttemptDir(key), local::kTerminateFile),
                                          KillRequest{now_ms, grace_ms, 0}));
  record.kill_deadline_unix_ms = deadline_ms;
  spdlog::info("attempt {}: terminating, SIGKILL after {} ms", key, grace_ms);
  if (!record.child) {
    Result<ProcessIdentity> child =
        local::ReadIdentity(JoinPath(AttemptDir(key), local::kChildPidFile));
    if (child.ok()) record.child = *child;
  }
  if (record.child) {
    SignalGroup(*record.child, SIGTERM);
    record.sigterm_sent = true;
  }
  wake_.notify_all();
  return OkStatus();
}

void LocalStack::EnforceDeadlines(const std::string& key, AttemptRecord& record,
                                  const AttemptStatus& status) {
  if (status.phase != AttemptPhase::kRunning || !record.child) return;
  int64_t now_ms = clock_->NowUnixMs();
  if (record.timeout_s > 0 && !record.timed_out && status.started_unix_ms > 0 &&
      now_ms >= status.started_unix_ms + record.timeout_s * 1000) {
    Status written =
        local::WriteKillRequest(JoinPath(AttemptDir(key), local::kTimedOutFile),
                                KillRequest{now_ms, kTimeoutGraceMs, record.timeout_s});
    if (!written.ok()) {
      spdlog::error("attempt {}: cannot record its timeout: {}", key,
                    std::string(written.message()));
      return;
    }
    spdlog::info("attempt {}: timed out after {} s, terminating", key, record.timeout_s);
    record.timed_out = true;
    record.sigterm_sent = false;
    int64_t deadline_ms = now_ms + kTimeoutGraceMs;
    record.kill_deadline_unix_ms =
        std::min(record.kill_deadline_unix_ms.value_or(deadline_ms), deadline_ms);
  }
  if (!record.kill_deadline_unix_ms) return;
  if (!record.sigterm_sent) {
    SignalGroup(*record.child, SIGTERM);
    record.sigterm_sent = true;
  }
  if (!record.sigkill_sent && now_ms >= *record.kill_deadline_unix_ms) {
    SignalGroup(*record.child, SIGKILL);
    record.sigkill_sent = true;
  }
}

void LocalStack::ReapShims() {
  // Only shims this process started are waited for, never other children. A pid is waited
  // for only while it still names that shim (alive or zombie), so a reused pid is left alone.
  std::erase_if(unreaped_shims_, [](const ProcessIdentity& shim) {
    if (local::CheckLiveness(shim) == Liveness::kGone) return true;
    int status = 0;
    pid_t reaped = ::waitpid(shim.pid, &status, WNOHANG);
    return reaped == shim.pid || (reaped < 0 && errno == ECHILD);
  });
}

void LocalStack::SuperviseLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    ReapShims();
    for (auto& [key, record] : attempts_) {
      if (record.final_status) continue;
      AttemptStatus status = Observe(key, record);
      EnforceDeadlines(key, record, status);
    }
    wake_.wait_for(lock, std::chrono::milliseconds(kSupervisePeriodMs));
  }
}

std::vector<AttemptStatus> LocalStack::List() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AttemptStatus> result;
  result.reserve(attempts_.size());
  for (auto& [key, record] : attempts_) result.push_back(Observe(key, record));
  return result;
}

Result<LogChunk> LocalStack::ReadLog(const std::string& key, int64_t offset, int64_t max_bytes) {
  if (offset < 0 || max_bytes < 0) {
    return absl::InvalidArgumentError("offset and max_bytes must not be negative");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = attempts_.find(key);
    if (it == attempts_.end() || !it->second.published) {
      return absl::NotFoundError(fmt::format("no attempt {}", key));
    }
  }
  const std::string path = JoinPath(AttemptDir(key), local::kOutputLog);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  }
  LogChunk chunk;
  chunk.data.resize(static_cast<size_t>(std::min(max_bytes, kMaxReadLogBytes)));
  size_t filled = 0;
  while (filled < chunk.data.size()) {
    ssize_t n = ::pread(fd, chunk.data.data() + filled, chunk.data.size() - filled,
                        static_cast<off_t>(offset + static_cast<int64_t>(filled)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    filled += static_cast<size_t>(n);
  }
  ::close(fd);
  chunk.data.resize(filled);
  chunk.next_offset = offset + static_cast<int64_t>(filled);
  return chunk;
}

Status LocalStack::Forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return absl::NotFoundError(fmt::format("no attempt {}", key));
  AttemptStatus status = Observe(key, it->second);
  if (!IsFinal(status.phase)) {
    return absl::FailedPreconditionError(
        fmt::format("attempt {} is {}: terminate it first", key, AttemptPhaseName(status.phase)));
  }
  // Renamed first so that a removal cut short never leaves half an attempt behind.
  const std::string doomed = JoinPath(options_.root, fmt::format("{}{}", kForgottenPrefix, key));
  RETURN_IF_ERROR(base::RemoveAll(doomed));
  if (::rename(AttemptDir(key).c_str(), doomed.c_str()) != 0) {
    return absl::InternalError(
        fmt::format("cannot rename {}: {}", AttemptDir(key), std::strerror(errno)));
  }
  attempts_.erase(it);
  if (Sandboxed()) RETURN_IF_ERROR(base::RemoveAll(SandboxDir(key)));
  return base::RemoveAll(doomed);
}

std::string ResolveSelf() {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string() : self.string();
}

}  // namespace

Result<std::unique_ptr<ComputeStack>> OpenLocalStack(LocalStackOptions options) {
  if (options.root.empty()) return absl::InvalidArgumentError("LocalStack needs a root directory");
  if (options.max_log_bytes <= 0) {
    return absl::InvalidArgumentError("LocalStack max_log_bytes must be positive");
  }
  if (options.shim_binary.empty()) options.shim_binary = ResolveSelf();
  if (options.shim_binary.empty()) {
    return absl::InternalError("cannot resolve /proc/self/exe for the shim binary");
  }
  if (options.clock == nullptr) options.clock = base::SystemClock::Get();
  RETURN_IF_ERROR(base::MakeDirs(options.root, 0700));
  if (!std::holds_alternative<RunAsOperator>(options.run_as)) {
    if (::geteuid() != 0) {
      return absl::FailedPreconditionError(fmt::format(
          "attempts cannot run as {}: the operator is not root", DescribeRunAs(options.run_as)));
    }
    if (options.sandbox_root.empty()) {
      return absl::InvalidArgumentError("LocalStack runs attempts as other users: no sandbox_root");
    }
    // The stack's own files (launch records, output) are the operator's alone.
    if (::chmod(options.root.c_str(), 0700) != 0) {
      return absl::InternalError(
          fmt::format("cannot chmod 0700 {}: {}", options.root, std::strerror(errno)));
    }
    RETURN_IF_ERROR(base::MakeDirs(options.sandbox_root, 0711));
    if (::chmod(options.sandbox_root.c_str(), 0711) != 0) {
      return absl::InternalError(
          fmt::format("cannot chmod 0711 {}: {}", options.sandbox_root, std::strerror(errno)));
    }
    Status reachable = SearchableByOthers(options.sandbox_root);
    if (!reachable.ok()) {
      return absl::FailedPreconditionError(fmt::format(
          "attempts run as {} could not reach their directories under {}: {}; give a sandbox "
          "directory they can reach (--sandbox-dir, e.g. /var/lib/meridian/sandbox)",
          DescribeRunAs(options.run_as), options.sandbox_root, reachable.message()));
    }
  }
  const std::string lock_path = JoinPath(options.root, kLockFile);
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::InternalError(fmt::format("cannot open {}: {}", lock_path, std::strerror(errno)));
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    return absl::FailedPreconditionError(
        fmt::format("{} is already used by another LocalStack", options.root));
  }
  auto stack = std::make_unique<LocalStack>(std::move(options), lock_fd);
  RETURN_IF_ERROR(stack->Load());
  stack->StartSupervisor();
  return std::unique_ptr<ComputeStack>(std::move(stack));
}

std::vector<int> DetectGpusIn(const std::string& nvidia_gpus_dir, const std::string& dev_dir) {
  // The driver lists every GPU of the host, also in a container that was given only some of
  // them; a GPU counts when its device node (/dev/nvidia<minor>) is there and the driver
  // has not excluded it. Sorted by PCI bus id, their positions are the indices CUDA uses
  // with CUDA_DEVICE_ORDER=PCI_BUS_ID (which the shim sets).
  std::vector<std::string> bus_ids;
  std::error_code error;
  for (std::filesystem::directory_iterator it(nvidia_gpus_dir, error), end; !error && it != end;
       it.increment(error)) {
    Result<std::string> information =
        base::ReadFile(JoinPath(it->path().string(), "information"), int64_t{64} << 10);
    if (information.ok()) {
      std::istringstream lines(*information);
      std::optional<int> minor;
      bool excluded = false;
      for (std::string line; std::getline(lines, line);) {
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string field = line.substr(0, colon);
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        if (field == "Device Minor") minor = std::atoi(value.c_str());
        if (field == "GPU Excluded") excluded = value.starts_with("Yes");
      }
      if (excluded) continue;
      if (minor && !base::PathExists(fmt::format("{}/nvidia{}", dev_dir, *minor))) continue;
    }
    bus_ids.push_back(it->path().filename().string());
  }
  std::sort(bus_ids.begin(), bus_ids.end());
  std::vector<int> indices;
  for (size_t i = 0; i < bus_ids.size(); ++i) indices.push_back(static_cast<int>(i));
  return indices;
}

std::vector<int> DetectGpus() { return DetectGpusIn("/proc/driver/nvidia/gpus", "/dev"); }

Status SearchableByOthers(const std::string& path) {
  std::filesystem::path at = std::filesystem::absolute(path).lexically_normal();
  while (true) {
    struct stat info;
    if (::stat(at.c_str(), &info) != 0) {
      return absl::NotFoundError(
          fmt::format("cannot stat {}: {}", at.string(), std::strerror(errno)));
    }
    if ((info.st_mode & S_IXOTH) == 0) {
      return absl::PermissionDeniedError(fmt::format("{} (mode {:o}) is not searchable by others",
                                                     at.string(), info.st_mode & 07777));
    }
    if (at == at.root_path() || !at.has_parent_path() || at.parent_path() == at) break;
    at = at.parent_path();
  }
  return OkStatus();
}

}  // namespace meridian::op
