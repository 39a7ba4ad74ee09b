// InodeTable: the inodes the kernel knows, their lifetime, and the path <-> inode maps.
//
// An inode lives while the kernel holds lookups on it (nlookup, taken away by Forget) or a
// handle is open on it (open_handles); when both are 0 it is freed. A path leads to at most
// one inode; an inode no path leads to any more (unlinked, replaced, or replaced by another
// kind of entry) is detached and lives on until it is unused. The root (kRootInode, path "")
// is made with the table and never freed. Inode numbers are never reused.
//
// What an inode shows (attr, etag, changed_here, ...) is the owner's to set; the table only
// keeps it. Thread safety: none; the owner (FsCore) calls it under its mu_. Pointers it
// returns are valid until the next call that may free or add an inode.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "storage/fs/fs_types.h"

namespace meridian::storage::fs {

struct Inode {
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

class InodeTable {
 public:
  // With the root: a directory with one lookup (the kernel's, never forgotten).
  InodeTable();

  // nullptr when the inode is unknown (freed, or never made).
  Inode* Find(InodeId id);
  // The inode `path` leads to, or nullptr.
  Inode* AtPath(const std::string& path);
  // The inode of `kind` at `path`: the one there, else a new one with no lookups (one of
  // another kind there is detached first, replaced elsewhere).
  Inode& Remember(const std::string& path, FileKind kind);
  // No path leads to `path`'s inode any more (not the root). Returns it, still in the table
  // so the caller can mark it; call FreeIfUnused(id) after. nullptr when none was there.
  Inode* Detach(const std::string& path);
  // Frees the inode when nothing holds it (no lookups, no handles); never the root.
  void FreeIfUnused(InodeId id);
  // Takes `count` lookups away (at most all of them), then FreeIfUnused.
  void Forget(InodeId id, uint64_t count);
  // A rename of `from` to `to` (`to` detached already): the inode at `from`, if any, is
  // at `to` now. Returns it, or nullptr.
  Inode* Move(const std::string& from, const std::string& to);
  // A rename of directory `from` to `to`: inodes below `from` keep their numbers under
  // `to`; those below `to` (the empty directory replaced) are detached, freed if unused.
  void MoveBelow(const std::string& from, const std::string& to);

  size_t size() const { return inodes_.size(); }

 private:
  std::unordered_map<InodeId, std::unique_ptr<Inode>> inodes_;
  std::unordered_map<std::string, InodeId> by_path_;
  InodeId next_inode_ = kRootInode + 1;
};

}  // namespace meridian::storage::fs
