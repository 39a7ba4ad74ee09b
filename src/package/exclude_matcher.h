// Which paths of a working directory `excludes` leaves out: .gitignore-style patterns over
// '/'-separated paths relative to the directory. Immutable once made; thread-safe to share.
//
//   "*.pyc"         a pattern without a slash matches a name at any depth;
//   "/build", "a/b" one with a slash (leading, or inside) is relative to the directory;
//   "data/"         a trailing slash matches directories only;
//   "**/cache"      "**" matches any number of directories;
//   * ? [a-z]       match within one name (fnmatch).
// Negation ("!pattern") is not supported: Create answers kInvalidArgument naming it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meridian::package {

class ExcludeMatcher {
 public:
  static Result<ExcludeMatcher> Create(const std::vector<std::string>& excludes);

  // Whether `relative_path` ("a/b/c.txt", no leading or trailing slash) is left out.
  bool Excluded(const std::string& relative_path, bool is_dir) const;

 private:
  struct Pattern {
    std::vector<std::string> segments;  // "**" is a segment of its own
    bool dir_only = false;
  };
  std::vector<Pattern> patterns_;
};

// The non-empty names of a '/'-separated path.
std::vector<std::string> SplitPath(std::string_view path);

}  // namespace meridian::package
