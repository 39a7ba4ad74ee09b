#include "bench_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/files.h"
#include "fmt/format.h"

namespace meridian::bench {

Flags::Flags(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void Flags::Add(const std::string& name, std::string* target, const std::string& help) {
  flags_.push_back({name, help, *target, [target](const std::string& value) {
                      *target = value;
                      return std::string();
                    }});
}

void Flags::Add(const std::string& name, int64_t* target, int64_t min, int64_t max,
                const std::string& help) {
  flags_.push_back(
      {name, fmt::format("{} ({}..{})", help, min, max), std::to_string(*target),
       [target, min, max](const std::string& value) -> std::string {
         int64_t parsed = 0;
         const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
         if (error != std::errc() || end != value.data() + value.size()) {
           return fmt::format("'{}' is not a whole number", value);
         }
         if (parsed < min || parsed > max) {
           return fmt::format("{} is outside {}..{}", parsed, min, max);
         }
         *target = parsed;
         return std::string();
       }});
}

void Flags::Add(const std::string& name, int* target, int64_t min, int64_t max,
                const std::string& help) {
  auto wide = std::make_shared<int64_t>(*target);
  Add(name, wide.get(), min, max, help);
  auto set_wide = flags_.back().set;
  flags_.back().set = [set_wide, wide, target](const std::string& value) {
    std::string error = set_wide(value);
    if (error.empty()) *target = static_cast<int>(*wide);
    return error;
  };
}

void Flags::Add(const std::string& name, bool* target, const std::string& help) {
  flags_.push_back({name, help + " (1 or 0)", *target ? "1" : "0",
                    [target](const std::string& value) -> std::string {
                      if (value == "1" || value == "true") {
                        *target = true;
                      } else if (value == "0" || value == "false") {
                        *target = false;
                      } else {
                        return fmt::format("'{}' is not 1 or 0", value);
                      }
                      return std::string();
                    }});
}

void Flags::PrintUsage(FILE* out) const {
  std::fprintf(out, "usage: %s [FLAG VALUE]...\n%s\n\nflags:\n", program_.c_str(),
               summary_.c_str());
  for (const Flag& flag : flags_) {
    std::fprintf(out, "  --%-18s %s (default: %s)\n", flag.name.c_str(), flag.help.c_str(),
                 flag.default_value.empty() ? "none" : flag.default_value.c_str());
  }
}

int Flags::Parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      PrintUsage(stdout);
      return 0;
    }
    auto flag = std::find_if(flags_.begin(), flags_.end(),
                             [&](const Flag& f) { return arg == "--" + f.name; });
    std::string error;
    if (flag == flags_.end()) {
      error = fmt::format("unknown flag '{}'", arg);
    } else if (i + 1 >= argc) {
      error = fmt::format("{} needs a value", arg);
    } else if (std::string problem = flag->set(argv[++i]); !problem.empty()) {
      error = fmt::format("{}: {}", arg, problem);
    }
    if (!error.empty()) {
      std::fprintf(stderr, "%s: %s\n\n", program_.c_str(), error.c_str());
      PrintUsage(stderr);
      return 2;
    }
  }
  return -1;
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(fraction * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

void Report(const std::string& bench_name, const std::vector<Figure>& figures,
            const std::string& json_path, const std::vector<std::string>& notes) {
  std::printf("\n%s\n\n", bench_name.c_str());
  std::printf("| %-50s | %12s | %-58s | %12s | %7s |\n", "figure", "meridian", "peer (same run)",
              "peer", "ratio");
  std::printf("|%s|%s|%s|%s|%s|\n", std::string(52, '-').c_str(), std::string(14, '-').c_str(),
              std::string(60, '-').c_str(), std::string(14, '-').c_str(),
              std::string(9, '-').c_str());
  nlohmann::json out = {{"figures", nlohmann::json::array()}};
  for (const Figure& figure : figures) {
    std::string ratio = "n/a";
    if (figure.peer_value > 0 && figure.value > 0) {
      double r = figure.lower_is_better ? figure.peer_value / figure.value
                                        : figure.value / figure.peer_value;
      ratio = fmt::format("{:.2f}x", r);
    }
    std::string name = fmt::format("{} ({})", figure.name, figure.unit);
    std::printf("| %-50s | %12.2f | %-58s | %12s | %7s |\n", name.c_str(), figure.value,
                figure.peer.c_str(),
                figure.peer_value > 0 ? fmt::format("{:.2f}", figure.peer_value).c_str() : "n/a",
                ratio.c_str());
    out["figures"].push_back({{"name", figure.name},
                              {"value", figure.value},
                              {"unit", figure.unit},
                              {"peer", figure.peer},
                              {"peer_value", figure.peer_value}});
  }
  std::printf("\nratio > 1 means meridian is better (faster or higher throughput).\n");
  for (const std::string& note : notes) std::printf("%s\n", note.c_str());
  std::string dir = json_path.substr(0, json_path.rfind('/'));
  (void)base::MakeDirs(dir);
  (void)base::WriteFileAtomic(json_path, out.dump(2) + "\n");
  std::printf("\nwrote %s\n", json_path.c_str());
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_file) {
  std::vector<char*> args;
  std::vector<std::string> copy = argv;
  for (std::string& arg : copy) args.push_back(arg.data());
  args.push_back(nullptr);
  int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (fd >= 0) ::close(fd);
  return pid;
}

void StopProcess(pid_t pid, int grace_ms) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  for (int waited = 0; waited < grace_ms; waited += 20) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

int Shell(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string WaitForFile(const std::string& path, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    auto text = base::ReadFile(path);
    if (text.ok() && !text->empty()) {
      std::string value = *text;
      while (!value.empty() && value.back() == '\n') value.pop_back();
      return value;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

}  // namespace meridian::bench
