// Helpers shared by the benchmark programs: their flags, child processes, percentiles, and
// the table and JSON every benchmark prints (build/bench/<name>.json, see DESIGN.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace meridian::bench {

// A benchmark's flags, `--name VALUE` each, parsed strictly: `--help` lists every flag with
// its meaning and default; an unknown flag, a missing value, or a number that is not a
// whole number within its range is an error that names the flag (never a silent 0).
class Flags {
 public:
  Flags(std::string program, std::string summary);
  void Add(const std::string& name, std::string* target, const std::string& help);
  void Add(const std::string& name, int* target, int64_t min, int64_t max,
           const std::string& help);
  void Add(const std::string& name, int64_t* target, int64_t min, int64_t max,
           const std::string& help);
  void Add(const std::string& name, bool* target, const std::string& help);  // 1/0, true/false
  // -1: parsed, go on; otherwise the exit code (0 after --help, 2 after an error, which is
  // printed on stderr with the usage).
  int Parse(int argc, char** argv);

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_value;
    std::function<std::string(const std::string&)> set;  // "" or what is wrong
  };
  void PrintUsage(FILE* out) const;

  std::string program_;
  std::string summary_;
  std::vector<Flag> flags_;
};

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
