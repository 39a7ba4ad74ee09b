#include "package/exclude_matcher.h"

#include <fnmatch.h>

#include "fmt/format.h"

namespace meridian::package {
namespace {

// Segment-wise match where "**" matches zero or more whole names.
bool MatchSegments(const std::vector<std::string>& pattern, size_t p,
                   const std::vector<std::string>& path, size_t s) {
  if (p == pattern.size()) return s == path.size();
  if (pattern[p] == "**") {
    for (size_t skip = s; skip <= path.size(); ++skip) {
      if (MatchSegments(pattern, p + 1, path, skip)) return true;
    }
    return false;
  }
  if (s == path.size()) return false;
  if (::fnmatch(pattern[p].c_str(), path[s].c_str(), 0) != 0) return false;
  return MatchSegments(pattern, p + 1, path, s + 1);
}

}  // namespace

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

Result<ExcludeMatcher> ExcludeMatcher::Create(const std::vector<std::string>& excludes) {
  ExcludeMatcher matcher;
  for (const std::string& raw : excludes) {
    std::string text = raw;
    if (text.empty()) continue;
    if (text[0] == '!') {
      return absl::InvalidArgumentError(fmt::format(
          "excludes: negated pattern '{}' is not supported; list only what to leave out", raw));
    }
    Pattern pattern;
    if (text.back() == '/') {
      pattern.dir_only = true;
      while (!text.empty() && text.back() == '/') text.pop_back();
    }
    // Without a slash a pattern matches a name at any depth, like "**/name".
    bool anchored = text.find('/') != std::string::npos;
    if (!anchored) pattern.segments.push_back("**");
    for (std::string& segment : SplitPath(text)) {
      if (segment != ".") pattern.segments.push_back(std::move(segment));
    }
    if (pattern.segments.empty() || (pattern.segments.size() == 1 && !anchored)) continue;
    matcher.patterns_.push_back(std::move(pattern));
  }
  return matcher;
}

bool ExcludeMatcher::Excluded(const std::string& relative_path, bool is_dir) const {
  std::vector<std::string> path = SplitPath(relative_path);
  for (const Pattern& pattern : patterns_) {
    if (pattern.dir_only && !is_dir) continue;
    if (MatchSegments(pattern.segments, 0, path, 0)) return true;
  }
  return false;
}

}  // namespace meridian::package
