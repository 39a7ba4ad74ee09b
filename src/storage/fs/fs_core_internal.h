// What fs_core.cc (names, directories, rename) and fs_files.cc (open files) share. Not for
// use outside FsCore.
#pragma once

#include <cstring>
#include <memory>
#include <string>

#include "fmt/format.h"
#include "storage/fs/fs_core.h"
#include "storage/fs/fs_errors.h"

namespace meridian::storage::fs {

// Metadata keys of the on-store format (fs_core.h).
inline constexpr char kFolderKey[] = "hdi_isfolder";
inline constexpr char kSymlinkKey[] = "is_symlink";
inline constexpr char kModeKey[] = "meridian_mode";
inline constexpr char kMtimeKey[] = "meridian_mtime_ms";

struct FsCore::Found {
  FileKind kind = FileKind::kFile;
  ObjectInfo info;  // empty for a directory that is only a prefix
  bool implicit_directory = false;
};

// An open file: exactly one of `file` (file cache mode) and `stream` (streaming mode).
struct FsCore::Handle {
  InodeId inode = 0;
  std::shared_ptr<CachedFile> file;
  std::shared_ptr<StreamFile> stream;
  int flags = 0;
};

}  // namespace meridian::storage::fs
