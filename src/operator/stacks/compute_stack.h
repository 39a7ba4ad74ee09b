// ComputeStack: where an operator runs job attempts. LOCAL (processes on this machine) is
// the first implementation; K8S (pods on a Kubernetes cluster) comes later behind the same
// interface.
//
// The stack owns the attempts it started, including across a restart of the operator
// process: a new stack over the same root directory finds attempts that are still running
// (or finished while no operator was watching) and reports them.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meridian::op {

enum class AttemptPhase {
  kStarting,  // accepted, process not yet running
  kRunning,
  kSucceeded,   // exit code 0
  kFailed,      // non-zero exit, killed by a signal it did not ask for, or timed out
  kTerminated,  // stopped because Terminate was called
};

std::string_view AttemptPhaseName(AttemptPhase phase);  // "RUNNING", ...
bool IsFinal(AttemptPhase phase);

struct AttemptLaunch {
  std::string key;         // unique per attempt, e.g. "job_xxx.2"; safe as a file name
  std::string entrypoint;  // run with /bin/sh -c in the attempt's working directory
  std::map<std::string, std::string> env;  // added to a minimal base environment
  std::string working_dir_archive;  // path of a .tar.gz to unpack into the working dir, or ""
  int64_t timeout_s = 0;            // 0: none; past it the attempt is terminated and FAILED
  std::vector<int> gpu_indices;     // exported as CUDA_VISIBLE_DEVICES when non-empty
  // A file the caller keeps fresh (the attempt's federated token), exported as
  // AZURE_FEDERATED_TOKEN_FILE: this path, or a copy that only the attempt's user can read
  // when the stack runs attempts as other users. "" for none.
  std::string federated_token_file;
  // The control plane's CA certificate, exported as MERIDIAN_CA_FILE (this path, or a copy
  // the attempt can read). "" for none.
  std::string ca_file;
};

struct AttemptStatus {
  std::string key;
  AttemptPhase phase = AttemptPhase::kStarting;
  int exit_code = -1;   // when final; 128+N after signal N
  std::string message;  // e.g. "timed out after 30 s", "exited with code 3"
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;
  int64_t log_bytes = 0;  // bytes of output captured so far
};

struct LogChunk {
  std::string data;
  int64_t next_offset = 0;
};

class ComputeStack {
 public:
  virtual ~ComputeStack() = default;

  // Starts an attempt. kAlreadyExists when `key` is already known (started before, maybe by
  // a previous operator process): callers treat that as success.
  virtual Status Start(const AttemptLaunch& launch) = 0;

  // Asks an attempt to stop: SIGTERM to its process group, SIGKILL after `grace_ms`.
  // Returns at once; the attempt becomes kTerminated when it has exited.
  virtual Status Terminate(const std::string& key, int64_t grace_ms) = 0;

  // Every attempt this stack knows, running or finished and not yet forgotten.
  virtual std::vector<AttemptStatus> List() = 0;

  // Output (stdout and stderr, interleaved) of an attempt from `offset`.
  virtual Result<LogChunk> ReadLog(const std::string& key, int64_t offset, int64_t max_bytes) = 0;

  // Drops a finished attempt's files. kFailedPrecondition while it runs.
  virtual Status Forget(const std::string& key) = 0;
};

}  // namespace meridian::op
