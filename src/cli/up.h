// `meridian up`: a control plane, two LOCAL cloud resources and their operators on this
// machine, supervised as child processes, and an example job.
#pragma once

#include <string>

namespace meridian::cli {

struct UpOptions {
  std::string home;
  std::string example_job;  // submitted and followed once everything is healthy
  int port = 0;             // control plane port; 0 picks a free one
  bool exit_after_example = false;
};

// Runs until SIGINT/SIGTERM (or after the example when asked). Returns the exit code.
int RunUp(const UpOptions& options);

}  // namespace meridian::cli
