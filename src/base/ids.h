// Identifiers and timestamps shown to users.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace meridian::base {

// A new random identifier: `prefix` + "_" + 20 lowercase base32 characters (100 bits from
// the OS random source), e.g. "job_3kq7x...". Thread-safe.
std::string NewId(std::string_view prefix);

// True when `id` has the shape NewId makes for `prefix`.
bool IsWellFormedId(std::string_view id, std::string_view prefix);

// RFC 3339 UTC with milliseconds, e.g. "2026-11-27T05:03:22.123Z". 0 gives "".
std::string FormatTimeMs(int64_t unix_ms);

}  // namespace meridian::base
