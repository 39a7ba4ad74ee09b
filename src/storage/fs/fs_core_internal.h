// What FsCore's files share: fs_core.cc (paths, attributes, the caches), fs_namespace.cc
// (lookup, create, remove, rename), fs_files.cc (open files) and fs_rename_directory.cc.
// Not for use outside FsCore.
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

inline bool IsTrue(const Metadata& metadata, const char* key) {
  auto it = metadata.find(key);
  return it != metadata.end() && (it->second == "true" || it->second == "True");
}

// The kind of entry an object is, by its metadata (hdi_isfolder, is_symlink).
inline FileKind KindOf(const Metadata& metadata) {
  if (IsTrue(metadata, kFolderKey)) return FileKind::kDirectory;
  if (IsTrue(metadata, kSymlinkKey)) return FileKind::kSymlink;
  return FileKind::kFile;
}

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
