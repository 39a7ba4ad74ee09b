// Working-directory packages: a directory packed into a gzip-compressed ustar archive, and
// unpacked again on the operator. Only regular files, directories and symlinks are kept
// (with their permission bits); anything else is skipped.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace meridian::base {

struct PackOptions {
  // .gitignore-style patterns: "*.pyc", "data/", "/build", "**/cache". A pattern without a
  // slash matches a name at any depth; a trailing slash matches directories only.
  std::vector<std::string> excludes;
  int64_t max_bytes = int64_t{256} << 20;  // of the compressed archive; kResourceExhausted above
  // Called with (bytes of input read so far, total input bytes) while packing.
  std::function<void(int64_t done, int64_t total)> progress;
};

// Packs `dir` (its contents, not the directory itself). Deterministic: the same tree gives
// the same bytes (sorted entries, zero mtimes and owners), so packages are content-addressed.
Result<std::string> PackDirectory(const std::string& dir, const PackOptions& options);

// Unpacks into `dest` (created when missing). Refuses entries that would land outside
// `dest` (absolute paths, "..", symlink escapes) with kInvalidArgument.
Status UnpackArchive(const std::string& archive, const std::string& dest);

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

}  // namespace meridian::base
