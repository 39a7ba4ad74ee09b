// Paths inside a mount: "" is the root, "a/b" a child of "a"; no leading or trailing '/'.
#pragma once

#include <string>
#include <utility>

namespace meridian::storage::fs {

// "a/b/c" -> {"a/b", "c"}, "c" -> {"", "c"}.
inline std::pair<std::string, std::string> SplitPath(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

// "a/b" -> "a/b/", "" -> "": the List prefix of a directory's children.
inline std::string ChildPrefix(const std::string& path) {
  std::string prefix = path;
  if (!prefix.empty()) prefix.push_back('/');
  return prefix;
}

}  // namespace meridian::storage::fs
