// Unpacking working-directory packages (tar_writer.h makes them) on the operator, safely:
// entries that would land outside the destination are refused, and sizes are bounded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace meridian::package {

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

}  // namespace meridian::package
