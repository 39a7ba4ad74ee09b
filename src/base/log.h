// Process-wide logging setup. Code logs with spdlog directly (in .cc files only, so the
// fmt/spdlog headers stay out of widely included headers).
#pragma once

#include <string_view>

#include "base/status.h"

namespace meridian::base {

// Accepts "trace", "debug", "info", "warn", "error", "off" and the BlobFuse2 spellings
// LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT. Logs go to stderr.
Status InitLogging(std::string_view level);

}  // namespace meridian::base
