#include "operator/stacks/local/attempt_dir.h"

#include <string>

#include "base/files.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace meridian::op::local {
namespace {

using nlohmann::json;

struct ProcStat {
  char state = '?';
  uint64_t start_ticks = 0;
};

// Field 3 (state) and field 22 (starttime) of /proc/<pid>/stat. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after the last ')'.
Result<ProcStat> ReadProcStat(pid_t pid) {
  ASSIGN_OR_RETURN(std::string stat,
                   base::ReadFile(fmt::format("/proc/{}/stat", pid), int64_t{64} << 10));
  size_t close = stat.rfind(')');
  if (close == std::string::npos) {
    return absl::DataLossError(fmt::format("cannot parse /proc/{}/stat", pid));
  }
  ProcStat result;
  int field = 2;
  size_t pos = close + 1;
  while (pos < stat.size() && field < 22) {
    while (pos < stat.size() && stat[pos] == ' ') ++pos;
    size_t end = stat.find(' ', pos);
    if (end == std::string::npos) end = stat.size();
    ++field;
    if (field == 3 && end > pos) result.state = stat[pos];
    if (field == 22) {
      result.start_ticks = std::strtoull(stat.substr(pos, end - pos).c_str(), nullptr, 10);
      return result;
    }
    pos = end;
  }
  return absl::DataLossError(fmt::format("/proc/{}/stat has too few fields", pid));
}

const std::string& BootId() {
  static const std::string boot_id = [] {
    Result<std::string> contents = base::ReadFile("/proc/sys/kernel/random/boot_id", 4096);
    if (!contents.ok()) return std::string();
    std::string id = *contents;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    return id;
  }();
  return boot_id;
}

// Parses a JSON object from a file; nlohmann's exceptions stop here.
template <typename T, typename Fill>
Result<T> ReadJsonFile(const std::string& path, Fill fill) {
  ASSIGN_OR_RETURN(std::string text, base::ReadFile(path, int64_t{1} << 20));
  json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!document.is_object()) {
    return absl::DataLossError(fmt::format("{} is not a JSON object", path));
  }
  try {
    T value;
    fill(document, value);
    return value;
  } catch (const json::exception& error) {
    return absl::DataLossError(fmt::format("{}: {}", path, error.what()));
  }
}

}  // namespace

std::string JoinPath(std::string_view dir, std::string_view name) {
  return fmt::format("{}/{}", dir, name);
}

Result<ProcessIdentity> IdentifyProcess(pid_t pid) {
  ASSIGN_OR_RETURN(ProcStat stat, ReadProcStat(pid));
  ProcessIdentity identity;
  identity.pid = pid;
  identity.start_ticks = stat.start_ticks;
  identity.boot_id = BootId();
  return identity;
}

Liveness CheckLiveness(const ProcessIdentity& identity) {
  if (identity.pid <= 0 || identity.boot_id != BootId()) return Liveness::kGone;
  Result<ProcStat> stat = ReadProcStat(identity.pid);
  if (!stat.ok() || stat->start_ticks != identity.start_ticks) return Liveness::kGone;
  if (stat->state == 'Z' || stat->state == 'X' || stat->state == 'x') return Liveness::kZombie;
  return Liveness::kAlive;
}

Status WriteIdentity(const std::string& path, const ProcessIdentity& identity) {
  json document = {{"pid", identity.pid},
                   {"start_ticks", identity.start_ticks},
                   {"boot_id", identity.boot_id},
                   {"started_unix_ms", identity.started_unix_ms}};
  return base::WriteFileAtomic(path, document.dump() + "\n", 0644,
                               base::FileSync::kProcessCrashSafe);
}

Result<ProcessIdentity> ReadIdentity(const std::string& path) {
  return ReadJsonFile<ProcessIdentity>(path, [](const json& document, ProcessIdentity& out) {
    out.pid = document.at("pid").get<pid_t>();
    out.start_ticks = document.at("start_ticks").get<uint64_t>();
    out.boot_id = document.at("boot_id").get<std::string>();
    out.started_unix_ms = document.value("started_unix_ms", int64_t{0});
  });
}

Status WriteExitRecord(const std::string& path, const ExitRecord& record) {
  json document = {{"exit_code", record.exit_code},
                   {"signal", record.signal},
                   {"ended_unix_ms", record.ended_unix_ms}};
  if (!record.error.empty()) document["error"] = record.error;
  return base::WriteFileAtomic(path, document.dump() + "\n", 0644,
                               base::FileSync::kDurable);
}

Result<ExitRecord> ReadExitRecord(const std::string& path) {
  return ReadJsonFile<ExitRecord>(path, [](const json& document, ExitRecord& out) {
    out.exit_code = document.at("exit_code").get<int>();
    out.signal = document.value("signal", 0);
    out.ended_unix_ms = document.value("ended_unix_ms", int64_t{0});
    out.error = document.value("error", std::string());
  });
}

Status WriteKillRequest(const std::string& path, const KillRequest& request) {
  json document = {{"requested_unix_ms", request.requested_unix_ms},
                   {"grace_ms", request.grace_ms}};
  if (request.timeout_s > 0) document["timeout_s"] = request.timeout_s;
  return base::WriteFileAtomic(path, document.dump() + "\n", 0644,
                               base::FileSync::kProcessCrashSafe);
}

Result<KillRequest> ReadKillRequest(const std::string& path) {
  return ReadJsonFile<KillRequest>(path, [](const json& document, KillRequest& out) {
    out.requested_unix_ms = document.value("requested_unix_ms", int64_t{0});
    out.grace_ms = document.value("grace_ms", int64_t{0});
    out.timeout_s = document.value("timeout_s", int64_t{0});
  });
}

}  // namespace meridian::op::local
