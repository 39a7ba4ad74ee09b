// LocalStack: runs each attempt as a process group on this machine.
//
// Each attempt lives in <root>/<key>/: `work/` (its working directory), `output.log`
// (stdout and stderr), `launch.json`, and the files its shim writes (`shim.pid`, `child.pid`,
// `exit_code`); attempt_dir.h has the whole layout. The shim is this same binary re-executed
// as `meridian operator shim <attempt-dir>`: it detaches from the operator (setsid), starts
// `/bin/sh -c <entrypoint>` in its own process group, copies its output into output.log,
// waits for it and writes its exit status atomically. Because the shim, not the operator,
// is the parent, an attempt keeps running and its exit code is still recorded when the
// operator restarts or is down.
//
// What an attempt sees: stdin /dev/null; stdout and stderr into output.log (a pipe through
// the shim, so the max_log_bytes limit holds while the attempt keeps running); a minimal
// environment (PATH, HOME, LANG, USER, SHELL, TMPDIR from the operator's, when set) plus
// AttemptLaunch::env, plus CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER=PCI_BUS_ID when it has
// GPUs, AZURE_FEDERATED_TOKEN_FILE and MERIDIAN_CA_FILE when given. When the entrypoint
// exits, whatever it left running is killed, also processes that left its process group
// (the shim is their subreaper): no process outlives its attempt.
//
// Who it runs as (LocalStackOptions::run_as, run_as.h): by default the operator's user. Run
// as other users (the operator must be root), an attempt lives in
// <sandbox_root>/<key>/ (root, 0711: reachable, not listable) with work/ and tmp/ (its own,
// 0700; HOME and TMPDIR point there), federated-token (its own, 0600: a copy of
// AttemptLaunch::federated_token_file the shim keeps current) and ca.pem (0644), and runs
// with no supplementary groups, its uid and gid, and umask 002. The shim stays root, so it
// still signals, reaps and records the attempt; the stack's own files under <root> stay
// private (0600, in the operator's 0700 directories). When the attempt ends, the shim closes
// <sandbox_root>/<key>/ (0700), so a later attempt given the same uid cannot reach it.
//
// Phases: STARTING until the entrypoint runs; RUNNING; then SUCCEEDED (exit 0), TERMINATED
// (Terminate was called), or FAILED with a message: "exited with code N", "killed by signal
// N", "timed out after N s", or "lost: ..." when the shim and the entrypoint vanished without
// an exit status (a reboot, a kill -9 of both).
//
// Start prepares the directory (unpacking the working-directory archive) before it returns,
// so the caller may delete the archive afterwards; a failed Start leaves nothing behind.
// Timeouts and the SIGKILL after a Terminate's grace are enforced by a background thread of
// the stack from deadlines kept on disk, so an operator that restarts still enforces them
// (late by as long as it was down). Destroying the stack stops that thread and nothing else.
//
// One stack per root: OpenLocalStack holds a lock on <root>/.lock and fails with
// kFailedPrecondition while another stack (in any process) has it.
// Thread safety: every method may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "operator/stacks/compute_stack.h"
#include "operator/stacks/local/run_as.h"

namespace meridian::op {

struct LocalStackOptions {
  std::string root;         // attempts directory, created when missing
  std::string shim_binary;  // path of the meridian binary; default /proc/self/exe resolved
  int64_t max_log_bytes = int64_t{64} << 20;  // per attempt; output past it is dropped
  // Deadlines (timeout_s, Terminate's grace) are compared with NowUnixMs, and an attempt's
  // start time is the shims' wall clock: a clock that is not the system's delays or hastens
  // them. Default: SystemClock.
  base::Clock* clock = nullptr;
  // Who attempts run as. Anything but RunAsOperator needs root and a sandbox_root whose
  // every ancestor others may search (OpenLocalStack checks, kFailedPrecondition).
  RunAs run_as = RunAsOperator{};
  std::string sandbox_root;  // created (0711) when missing
  std::string uid_lock_dir = kDefaultUidLockDir;
};

// Whether every directory from `path` up to "/" lets others search it (mode o+x): what a
// process of another user needs to reach `path`. The first that does not is named.
Status SearchableByOthers(const std::string& path);

// Opens (creating when missing) the attempts under options.root, including those started
// by an earlier operator process.
Result<std::unique_ptr<ComputeStack>> OpenLocalStack(LocalStackOptions options);

// Entry point of `meridian operator shim <attempt-dir>`; returns the process exit code.
// Call it before the process starts any thread: it forks.
int RunShim(const std::string& attempt_dir);

// Indices of the NVIDIA GPUs this process may use: the entries of /proc/driver/nvidia/gpus
// whose /dev/nvidia<minor> node exists and that the driver has not excluded, numbered in PCI
// bus order (the order CUDA uses with CUDA_DEVICE_ORDER=PCI_BUS_ID, which the shim sets next
// to CUDA_VISIBLE_DEVICES). Empty without the NVIDIA driver; runs no program.
std::vector<int> DetectGpus();
// DetectGpus over other directories, for tests.
std::vector<int> DetectGpusIn(const std::string& nvidia_gpus_dir, const std::string& dev_dir);

}  // namespace meridian::op
