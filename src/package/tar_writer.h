// Working-directory packages: a directory packed into a gzip-compressed ustar archive (what
// `meridian job submit` uploads). Only regular files, directories and symlinks are kept, with
// their permission bits; anything else is skipped. tar_reader.h unpacks them on the operator.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace meridian::package {

struct PackOptions {
  // .gitignore-style patterns (exclude_matcher.h); an excluded directory is skipped whole.
  std::vector<std::string> excludes;
  int64_t max_bytes = int64_t{256} << 20;  // of the compressed archive; kResourceExhausted above
  // Called with (bytes of input read so far, total input bytes) while packing.
  std::function<void(int64_t done, int64_t total)> progress;
};

// Packs `dir` (its contents, not the directory itself). Deterministic: the same tree gives
// the same bytes (sorted entries, zero mtimes and owners), so packages are content-addressed.
// Symlinks are stored as links (never followed). Names longer than ustar's 100 bytes use pax
// extended headers. Errors: kNotFound / kInvalidArgument for a missing or non-directory
// `dir`, kPermissionDenied for an unreadable file, kAborted when a file shrinks while being
// read (retry), kResourceExhausted above options.max_bytes.
Result<std::string> PackDirectory(const std::string& dir, const PackOptions& options);

}  // namespace meridian::package
