#include "cli/output.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "fmt/format.h"
#include "yaml-cpp/yaml.h"

namespace meridian::cli {

using nlohmann::json;

Result<OutputFormat> ParseOutputFormat(const std::string& name) {
  if (name == "table" || name.empty()) return OutputFormat::kTable;
  if (name == "json") return OutputFormat::kJson;
  if (name == "yaml") return OutputFormat::kYaml;
  return absl::InvalidArgumentError(
      fmt::format("-o {}: unknown output format (use table, json or yaml)", name));
}

std::string Table::Render() const {
  std::vector<size_t> widths(headers.size(), 0);
  for (size_t i = 0; i < headers.size(); ++i) widths[i] = headers[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < widths.size(); ++i) {
      std::string cell = i < cells.size() ? cells[i] : "";
      if (i + 1 < widths.size()) {
        out += fmt::format("{:<{}}  ", cell, widths[i]);
      } else {
        out += cell;
      }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(headers);
  for (const auto& row : rows) out += line(row);
  return out;
}

namespace {

void Emit(YAML::Emitter& out, const json& value) {
  switch (value.type()) {
    case json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key << key << YAML::Value;
        Emit(out, item);
      }
      out << YAML::EndMap;
      return;
    case json::value_t::array:
      out << YAML::BeginSeq;
      for (const json& item : value) Emit(out, item);
      out << YAML::EndSeq;
      return;
    case json::value_t::string:
      out << YAML::DoubleQuoted << value.get<std::string>();
      return;
    case json::value_t::boolean:
      out << (value.get<bool>() ? "true" : "false");
      return;
    case json::value_t::null:
      out << YAML::Null;
      return;
    default:
      out << value.dump();
      return;
  }
}

}  // namespace

std::string ToYaml(const json& value) {
  YAML::Emitter out;
  Emit(out, value);
  return std::string(out.c_str()) + "\n";
}

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kResourceExhausted:
      return 2;
    case absl::StatusCode::kNotFound:
      return 3;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 4;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 5;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return 6;
    default:
      return 1;
  }
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  return ExitCodeFor(status);
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (1 << 20)) return fmt::format("{:.1f} KiB", bytes / 1024.0);
  if (bytes < (int64_t{1} << 30)) return fmt::format("{:.1f} MiB", bytes / 1048576.0);
  return fmt::format("{:.2f} GiB", bytes / 1073741824.0);
}

Progress::Progress(std::string label) : label_(std::move(label)), tty_(isatty(2) == 1) {}

void Progress::Update(int64_t done, int64_t total) {
  int percent = total > 0 ? static_cast<int>(done * 100 / total) : 100;
  if (percent == last_percent_) return;
  if (!tty_ && percent != 0 && percent != 100) return;
  last_percent_ = percent;
  int filled = percent / 5;
  std::string bar = std::string(filled, '#') + std::string(20 - filled, '.');
  std::fprintf(stderr, "%s%s [%s] %3d%% %s / %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               percent, FormatBytes(done).c_str(), FormatBytes(total).c_str(), tty_ ? "" : "\n");
  std::fflush(stderr);
}

void Progress::Finish(const std::string& summary) {
  std::fprintf(stderr, "%s%s %s\n", tty_ ? "\r\033[K" : "", label_.c_str(), summary.c_str());
}

}  // namespace meridian::cli
