#include "bench_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/files.h"
#include "fmt/format.h"

namespace meridian::bench {

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
