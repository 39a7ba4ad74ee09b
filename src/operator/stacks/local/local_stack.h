// LocalStack: runs each attempt as a process group on this machine.
//
// Each attempt lives in <root>/<key>/: `work/` (its working directory), `output.log`
// (stdout and stderr), `launch.json`, and the files its shim writes (`shim.pid`, `child.pid`,
// `exit_code`). The shim is this same binary re-executed as `meridian operator shim`: it
// detaches from the operator (setsid), starts the entrypoint in its own process group,
// waits for it and writes its exit status atomically. Because the shim, not the operator,
// is the parent, an attempt keeps running and its exit code is still recorded when the
// operator restarts.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "operator/stacks/compute_stack.h"

namespace meridian::op {

struct LocalStackOptions {
  std::string root;          // attempts directory, created when missing
  std::string shim_binary;   // path of the meridian binary; default /proc/self/exe resolved
  int64_t max_log_bytes = int64_t{64} << 20;  // per attempt; output past it is dropped
  base::Clock* clock = nullptr;  // default: SystemClock
};

Result<std::unique_ptr<ComputeStack>> OpenLocalStack(LocalStackOptions options);

// Entry point of `meridian operator shim <attempt-dir>`; returns the process exit code.
int RunShim(const std::string& attempt_dir);

// Indices of the NVIDIA GPUs on this machine (from /proc/driver/nvidia/gpus or
// `nvidia-smi -L`); empty when there are none.
std::vector<int> DetectGpus();

}  // namespace meridian::op
