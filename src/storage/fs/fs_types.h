// The filesystem's value types that more than one part of it uses (inode numbers, kinds,
// attributes). See fs_core.h for what they mean to a caller.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace meridian::storage::fs {

using InodeId = uint64_t;
inline constexpr InodeId kRootInode = 1;
inline constexpr int kMaxNameComponentBytes = 255;
inline constexpr int64_t kMaxSymlinkBytes = 4096;

enum class FileKind { kFile, kDirectory, kSymlink };

struct Attr {
  InodeId inode = 0;
  FileKind kind = FileKind::kFile;
  int64_t size = 0;
  uint32_t mode = 0;  // including the S_IFMT bits
  uint32_t nlink = 1;
  uid_t uid = 0;
  gid_t gid = 0;
  int64_t mtime_ms = 0;
  int64_t ctime_ms = 0;
};

}  // namespace meridian::storage::fs
