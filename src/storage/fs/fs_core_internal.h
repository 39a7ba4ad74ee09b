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

struct FsCore::Inode {
  InodeId id = 0;
  std::string path;  // "" for the root
  FileKind kind = FileKind::kFile;
  std::string etag;  // of the version the kernel's attributes describe
  uint64_t nlookup = 0;
  int open_handles = 0;
  Attr attr;
  // Open here with changes not in the store yet: `attr` is this mount's, not the store's.
  bool changed_here = false;
  // Removed (unlink, or replaced by a rename) while open: no path leads here any more, and
  // `attr` (nlink 0) is all there is to show.
  bool unlinked = false;
  // A directory: when this mount last added, removed or renamed an entry in it, or the
  // newest entry a listing showed (Unix ms); its mtime and ctime are at least this.
  int64_t entries_changed_ms = 0;
};

// An open file: exactly one of `file` (file cache mode) and `stream` (streaming mode).
struct FsCore::Handle {
  InodeId inode = 0;
  std::shared_ptr<CachedFile> file;
  std::shared_ptr<StreamFile> stream;
  int flags = 0;
};

}  // namespace meridian::storage::fs
