// The on-disk layout of one LOCAL attempt, shared by the stack (operator side) and the shim.
//
// <root>/<key>/
//   launch.json          the AttemptLaunch plus max_log_bytes, work_dir and, for an attempt run
//                        as another user, run_as {uid, gid}, sandbox_dir, token_source and
//                        token_file; written by Start, read-only after
//   work/                the entrypoint's working directory (in the sandbox instead when the
//                        attempt runs as another user, local_stack.h)
//   output.log           stdout and stderr of the entrypoint, copied by the shim
//   shim.log             the shim's own diagnostics
//   shim.pid             ProcessIdentity of the shim
//   child.pid            ProcessIdentity of the entrypoint (its pid is also its process group)
//   exit_code            ExitRecord, written once, atomically, when the entrypoint has exited
//   terminate_requested  KillRequest: Terminate was called
//   timed_out            KillRequest: the stack stopped the attempt at its timeout_s
//
// Every file is written atomically (temporary file + rename), so a reader sees it whole or
// not at all. Internal to stacks/local.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace meridian::op::local {

inline constexpr std::string_view kLaunchFile = "launch.json";
inline constexpr std::string_view kWorkDir = "work";
inline constexpr std::string_view kOutputLog = "output.log";
inline constexpr std::string_view kShimLog = "shim.log";
inline constexpr std::string_view kShimPidFile = "shim.pid";
inline constexpr std::string_view kChildPidFile = "child.pid";
inline constexpr std::string_view kExitCodeFile = "exit_code";
inline constexpr std::string_view kTerminateFile = "terminate_requested";
inline constexpr std::string_view kTimedOutFile = "timed_out";

// In <sandbox_root>/<key>/, for an attempt that runs as another user (local_stack.h).
inline constexpr std::string_view kSandboxTmpDir = "tmp";
inline constexpr std::string_view kSandboxTokenFile = "federated-token";
inline constexpr std::string_view kSandboxCaFile = "ca.pem";
// The shim's descriptor that holds the attempt's uid claim (run_as.h).
inline constexpr int kUidClaimFd = 3;

// A process named so that a reused pid is not mistaken for it: the kernel's start time (in
// clock ticks since boot) and the boot id both have to match.
struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
  std::string boot_id;
  int64_t started_unix_ms = 0;  // wall clock when it was started (child.pid only)
};

// The identity of a live process, from /proc. kNotFound when it does not exist.
Result<ProcessIdentity> IdentifyProcess(pid_t pid);

enum class Liveness { kAlive, kZombie, kGone };

// kAlive only when `identity` names a process that runs now (not a zombie, not a reused pid).
Liveness CheckLiveness(const ProcessIdentity& identity);

Status WriteIdentity(const std::string& path, const ProcessIdentity& identity);
// kNotFound when the file does not exist; kDataLoss when it cannot be parsed.
Result<ProcessIdentity> ReadIdentity(const std::string& path);

struct ExitRecord {
  int exit_code = -1;  // 128+N after signal N
  int signal = 0;      // the signal that killed the entrypoint, 0 when it exited
  int64_t ended_unix_ms = 0;
  std::string error;  // set when the shim could not start the entrypoint at all
};

Status WriteExitRecord(const std::string& path, const ExitRecord& record);
Result<ExitRecord> ReadExitRecord(const std::string& path);

// Why and when an attempt is being stopped. The SIGKILL deadline is persisted so that an
// operator that restarts during the grace period still enforces it.
struct KillRequest {
  int64_t requested_unix_ms = 0;
  int64_t grace_ms = 0;
  int64_t timeout_s = 0;  // timed_out only
};

Status WriteKillRequest(const std::string& path, const KillRequest& request);
Result<KillRequest> ReadKillRequest(const std::string& path);

std::string JoinPath(std::string_view dir, std::string_view name);

}  // namespace meridian::op::local
