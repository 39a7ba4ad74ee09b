#include "base/ids.h"

#include <openssl/rand.h>

#include <ctime>

#include "fmt/format.h"

namespace meridian::base {
namespace {
constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz234567";
constexpr size_t kIdChars = 20;
}  // namespace

std::string NewId(std::string_view prefix) {
  unsigned char bytes[kIdChars];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    // The OS random source failing is an environment that cannot run meridian safely.
    std::abort();
  }
  std::string out = fmt::format("{}_", prefix);
  for (unsigned char b : bytes) out.push_back(kAlphabet[b % 32]);
  return out;
}

bool IsWellFormedId(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + 1 + kIdChars) return false;
  if (id.substr(0, prefix.size()) != prefix || id[prefix.size()] != '_') return false;
  for (char c : id.substr(prefix.size() + 1)) {
    if (kAlphabet.find(c) == std::string_view::npos) return false;
  }
  return true;
}

std::string FormatTimeMs(int64_t unix_ms) {
  if (unix_ms <= 0) return "";
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm parts;
  gmtime_r(&seconds, &parts);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", parts.tm_year + 1900,
                     parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
                     static_cast<int>(unix_ms % 1000));
}

}  // namespace meridian::base
