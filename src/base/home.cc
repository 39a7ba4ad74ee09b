#include "base/home.h"

#include <cstdlib>

namespace meridian::base {

std::string ResolveHome(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("MERIDIAN_HOME"); env != nullptr && *env != '\0') {
    return env;
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr && *home != '\0' ? home : "/root") + "/.meridian";
}

}  // namespace meridian::base
