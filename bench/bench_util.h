// Helpers shared by the benchmark programs: child processes, percentiles, and the table and
// JSON every benchmark prints (build/bench/<name>.json, see DESIGN.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace meridian::bench {

struct Figure {
  std::string name;
  double value = 0;
  std::string unit;
  std::string peer;       // what the peer is, measured in the same run
  double peer_value = 0;  // 0 when the peer could not be measured
  bool lower_is_better = false;
};

// Prints the table (figure, meridian, peer, peer value, ratio) and writes the JSON file.
void Report(const std::string& bench_name, const std::vector<Figure>& figures,
            const std::string& json_path, const std::vector<std::string>& notes);

double Percentile(std::vector<double> values, double fraction);

// Starts argv with stdout/stderr appended to `log_file`, in its own process group.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_file);
// SIGTERM, then SIGKILL after `grace_ms`, and reap.
void StopProcess(pid_t pid, int grace_ms = 5'000);
// Runs a shell command and returns its exit status (or -1).
int Shell(const std::string& command);
// Waits until `path` exists and is non-empty; returns its contents without the newline.
std::string WaitForFile(const std::string& path, int timeout_ms);

int64_t NowUs();

}  // namespace meridian::bench
