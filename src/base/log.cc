#include "base/log.h"

#include <algorithm>
#include <string>

#include "fmt/format.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace meridian::base {

Status InitLogging(std::string_view level) {
  std::string name(level);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  spdlog::level::level_enum parsed;
  if (name == "trace") {
    parsed = spdlog::level::trace;
  } else if (name == "debug" || name == "log_debug") {
    parsed = spdlog::level::debug;
  } else if (name == "info" || name == "log_info") {
    parsed = spdlog::level::info;
  } else if (name == "warn" || name == "warning" || name == "log_warning") {
    parsed = spdlog::level::warn;
  } else if (name == "error" || name == "log_err") {
    parsed = spdlog::level::err;
  } else if (name == "critical" || name == "log_crit") {
    parsed = spdlog::level::critical;
  } else if (name == "off" || name == "log_off") {
    parsed = spdlog::level::off;
  } else {
    return absl::InvalidArgumentError(
        fmt::format("unknown log level '{}' (use trace, debug, info, warn, error or off)", level));
  }
  auto logger = spdlog::get("meridian");
  if (logger == nullptr) logger = spdlog::stderr_color_mt("meridian");
  spdlog::set_default_logger(logger);
  spdlog::set_level(parsed);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %v");
  return OkStatus();
}

}  // namespace meridian::base
