// Working-directory packages: a directory packed into a gzip-compressed ustar archive, and
// unpacked again on the operator. Only regular files, directories and symlinks are kept
// (with their permission bits); anything else is skipped.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meridian::base {

struct PackOptions {
  // .gitignore-style patterns: "*.pyc", "data/", "/build", "**/cache", "docs/**/*.md". A
  // pattern without a slash matches a name at any depth; one with a slash (leading, or
  // inside) is relative to `dir`; a trailing slash matches directories only; "**" matches
  // any number of directories; * ? [a-z] match within one name (fnmatch). An excluded
  // directory is skipped whole. Negation ("!pattern") is not supported: kInvalidArgument.
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

// Largest total size of the files an archive may unpack to (a gzip bomb stops here).
inline constexpr int64_t kDefaultMaxUnpackedBytes = int64_t{16} << 30;

// Unpacks the .tar.gz file at `archive_path` into `dest` (created when missing). Refuses
// entries that would land outside `dest` (absolute paths, "..", writing through a symlink)
// with kInvalidArgument naming the entry; truncated or corrupt archives are kInvalidArgument
// too; kResourceExhausted above max_unpacked_bytes. On error `dest` may hold part of the
// archive: unpack into a fresh directory and remove it on failure. Directory modes are
// applied last, so read-only directories unpack.
Status UnpackArchive(const std::string& archive_path, const std::string& dest,
                     int64_t max_unpacked_bytes = kDefaultMaxUnpackedBytes);
// The same, from archive bytes in memory (what PackDirectory returns).
Status UnpackArchiveData(std::string_view archive, const std::string& dest,
                         int64_t max_unpacked_bytes = kDefaultMaxUnpackedBytes);

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

}  // namespace meridian::base
