// Small file helpers with clear errors (the path is always named in the message).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace meridian::base {

// Reads a whole file. NotFound when it does not exist; ResourceExhausted above max_bytes.
Result<std::string> ReadFile(const std::string& path, int64_t max_bytes = int64_t{1} << 30);

// Writes `contents` to `path` atomically: a temporary file in the same directory is written,
// fsynced and renamed over `path`, then the directory is fsynced. A reader sees the old or
// the new contents, never a mix. `mode` applies to the new file (e.g. 0600 for keys).
Status WriteFileAtomic(const std::string& path, std::string_view contents, mode_t mode = 0644);

// mkdir -p with `mode` for the directories it creates.
Status MakeDirs(const std::string& path, mode_t mode = 0755);

// Removes a file or a directory tree; OK when it does not exist.
Status RemoveAll(const std::string& path);

bool PathExists(const std::string& path);

}  // namespace meridian::base
