// Output for humans (tables) and scripts (-o json, -o yaml), and the one mapping from a
// Status to a process exit code.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace meridian::cli {

enum class OutputFormat { kTable, kJson, kYaml };

Result<OutputFormat> ParseOutputFormat(const std::string& name);

// A table with a header row, columns padded to their widest cell.
struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
  std::string Render() const;
};

std::string ToYaml(const nlohmann::json& value);

// Prints `value` as JSON or YAML, or calls `table` for the table format.
template <typename TableFn>
void Print(OutputFormat format, const nlohmann::json& value, TableFn table);

// Exit codes (documented in docs/cli.md):
//   0 success; 1 internal error or a job that FAILED (--wait); 2 bad input or usage;
//   3 not found; 4 conflict / not allowed in the current state; 5 control plane unreachable
//   or timed out; 6 not authenticated or not allowed; 8 a job that was TERMINATED (--wait).
inline constexpr int kExitJobFailed = 1;
inline constexpr int kExitJobTerminated = 8;
int ExitCodeFor(const Status& status);

// Prints "error: <message>" to stderr and returns the exit code for `status`.
int ReportError(const Status& status);

// Human-friendly byte counts: "1.5 MiB".
std::string FormatBytes(int64_t bytes);

// A progress line on stderr, redrawn in place when stderr is a terminal (else printed at
// 0 % and 100 % only, so logs stay short).
class Progress {
 public:
  explicit Progress(std::string label);
  void Update(int64_t done, int64_t total);
  void Finish(const std::string& summary);

 private:
  std::string label_;
  bool tty_;
  int last_percent_ = -1;
};

}  // namespace meridian::cli

#include "cli/output_inl.h"
