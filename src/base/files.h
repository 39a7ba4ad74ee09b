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

// How far a write must get before WriteFileAtomic returns.
enum class FileSync {
  kDurable,          // fsync the file and its directory: survives a power loss
  kProcessCrashSafe  // rename only: survives a crash of any process, not of the machine
};

// Writes `contents` to `path` atomically: a temporary file in the same directory is written
// and renamed over `path` (with fsyncs of the file and the directory for kDurable). A reader
// sees the old or the new contents, never a mix. `mode` applies to the new file (e.g. 0600
// for keys).
Status WriteFileAtomic(const std::string& path, std::string_view contents, mode_t mode = 0644,
                       FileSync sync = FileSync::kDurable);

// mkdir -p with `mode` for the directories it creates.
Status MakeDirs(const std::string& path, mode_t mode = 0755);

// Removes a file or a directory tree; OK when it does not exist.
Status RemoveAll(const std::string& path);

// Whether something is mounted at `path` (as /proc/self/mountinfo lists it), including a
// FUSE mount whose process has died, which stat(2) can no longer look at.
bool IsMounted(const std::string& path);

bool PathExists(const std::string& path);

}  // namespace meridian::base
