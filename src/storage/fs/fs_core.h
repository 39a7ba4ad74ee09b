// FsCore: a POSIX-like filesystem over an ObjectStore, with no FUSE dependency. The FUSE
// adapter (fuse_adapter.h) turns each kernel request into one call here and one reply;
// tests call it directly.
//
// On-store format (BlobFuse2's, so either tool reads the other's data):
//   a file "a/b"       the object "a/b";
//   a directory "a"    the prefix "a/", plus a marker object "a" with metadata
//                      hdi_isfolder=true (made by mkdir; a prefix without one is a directory
//                      too, as written by other tools);
//   a symlink "a/l"    the object "a/l" with metadata is_symlink=true and the target as data.
//   chmod and utimens are kept in metadata meridian_mode (octal) and meridian_mtime_ms.
//
// Inodes live while the kernel holds lookups on them (nlookup, dropped by Forget) or a
// handle is open. Files are served from whole-file copies in a FileCache (file_cache.h), or
// in streaming mode from blocks in a bounded memory pool (stream_file.h): every file with
// block_cache, else a file larger than the cache, or one the cache cannot take without
// going under its free-disk floor. A file open in one mode is opened again in that mode.
//
// Write path (both modes): blocks a sequential writer has finished are staged in the store
// while it writes (staged_blocks.h), at most max_uploads_in_flight at once; flush, fsync and
// close stage the rest and commit the new version with one CommitBlocks.
//
// Consistency (docs/storage.md states it for users):
//   - close-to-open: Open always asks the store for the object's ETag and downloads the
//     object again when the cached copy is of another version, so a file rewritten and
//     closed elsewhere is read new after it is opened again (OpenResult::changed tells the
//     adapter to drop the kernel's cached attributes and pages).
//   - Flush/Fsync/Release upload a dirty file as one atomic commit, conditional on the ETag
//     the copy came from; if someone else wrote the object meanwhile the upload fails (EIO)
//     and nothing is overwritten.
//   - What this mount changes (a write, truncate, chmod, utimens, an upload, a metadata
//     update) is what it answers at once, the reply to the change included: an open file
//     with changes not in the store yet shows them (its inode's attributes are this mount's),
//     and each upload or metadata update records the version it made in the attribute
//     cache, so no request is needed to show it. Times follow POSIX: writes and truncates
//     move mtime and ctime, chmod moves ctime only (the old mtime is kept in
//     meridian_mtime_ms, since the store moves the blob's time on any change), utimens sets
//     mtime. A directory's mtime and ctime move when this mount adds, removes or renames an
//     entry in it; they are kept in the mount (no request per create), and a listing raises
//     them to its newest entry's time, so other nodes' changes show once it is listed.
//   - chmod and utimens of a file are one SetMetadata (Set Blob Metadata) conditional on the
//     ETag, carrying the object's other metadata along; the cached copy takes the new ETag,
//     so it is not downloaded again. On a file open here with unsaved bytes they go with the
//     pending upload instead.
//   - A file unlinked (or replaced by a rename) while open stays usable through its open
//     handles: its copy (or a streaming file's blocks in memory) is kept and read, written,
//     fstat'ed and fsync'ed as before but never uploaded again, and goes at the last close.
//     Fsync of such a file succeeds only while what was written can be read back.
//   - Metadata (lookup, getattr) is cached for attr_cache_timeout_ms when use_attr_cache.
//     So is the set of names in a directory this mount listed to the end (ReadDir) or made
//     (MakeDirectory) at time T: until T + attr_cache_timeout_s a lookup of any other name
//     there is ENOENT with no request, as the negative side of the same cache. This mount's
//     own creates, removes and renames keep that set true; another node's new name shows
//     once it expires (or after the next listing of the directory).
// Directories: a non-empty directory of up to max_dir_rename_objects objects is renamed in
// the store with server-side copies, then deletes, under a journal that the next mount of
// the container finishes after a crash (directory_rename.h); a larger one is EXDEV (so `mv`
// falls back to copy and delete). A directory that is only a prefix gets its marker when
// this mount removes its last child, so it stays until it is removed itself.
// What cannot be kept fails early: RENAME_EXCHANGE is ENOTSUP and hard links are EPERM
// (link(2)'s "no hard links here").
//
// Errors: every method returns a Status; ErrnoFor (fs_errors.h) gives its errno.
// Thread safety: all methods may be called from many threads at once. Lock order:
// directory_rename_mu_, then CachedFile::mu (several: in name order), then the FileCache's
// lock, then mu_; a StreamFile's lock is never taken with mu_ held; the store is never
// called with mu_ held. The inode table and the known directories have no lock of their
// own: they are mu_'s.
//
// Layout: this class is the facade the FUSE adapter calls. Its parts: InodeTable
// (inode_table.h: inodes, nlookup/forget, path <-> inode), KnownDirectories
// (known_directories.h: negative lookups), FileCache and StreamFile (the two modes of an
// open file). Its methods live in fs_core.cc (paths, attributes, the attribute cache),
// fs_namespace.cc (lookup, readdir, create, mkdir, symlink, unlink, rmdir, rename),
// fs_files.cc (open files, setattr) and fs_rename_directory.cc (non-empty directories).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/clock.h"
#include "storage/fs/bounded_executor.h"
#include "storage/fs/file_cache.h"
#include "storage/fs/fs_types.h"
#include "storage/fs/inode_table.h"
#include "storage/fs/known_directories.h"
#include "storage/fs/stream_file.h"
#include "storage/object_store.h"

namespace meridian::storage::fs {

struct DirEntry {
  std::string name;
  FileKind kind = FileKind::kFile;
  InodeId inode = 0;  // the live inode's number, else a stable number derived from the name
  // The object as the listing returned it (size, ETag, metadata), for LookupListed;
  // nullptr for a directory that is only a prefix.
  std::shared_ptr<const ObjectInfo> object;
};

struct OpenResult {
  uint64_t handle = 0;
  bool changed = false;  // the file's bytes or size differ from what the kernel may cache
};

struct CreateResult {
  Attr attr;
  uint64_t handle = 0;
};

struct SetAttrRequest {
  std::optional<uint32_t> mode;  // permission bits
  std::optional<int64_t> size;   // truncate or extend
  std::optional<int64_t> mtime_ms;
};

struct FsStat {
  uint64_t block_size = 4096;
  uint64_t blocks = 0;
  uint64_t blocks_free = 0;
  uint64_t files = 0;
  uint64_t files_free = 0;
  uint32_t name_max = kMaxNameComponentBytes;
};

struct FsOptions {
  std::string cache_dir;               // required
  int64_t cache_size_mb = 1000;        // --cache-size-mb
  int64_t file_cache_timeout_s = 120;  // --file-cache-timeout-in-seconds
  bool use_attr_cache = false;         // --use-attr-cache
  int64_t attr_cache_timeout_s = 120;
  bool read_only = false;  // --read-only: writes are EROFS
  uid_t uid = 0;           // owner shown for every file
  gid_t gid = 0;
  uint32_t file_mode = 0644;  // when no meridian_mode is stored
  uint32_t directory_mode = 0755;
  int list_page_size = kMaxListResults;
  // With use_attr_cache: the most child names (plus one per directory) kept for directories
  // known completely (see Consistency above), about 100 bytes each; the oldest knowledge
  // goes first, and a directory with more names is not kept at all (its lookups ask the
  // store, as without the cache).
  int64_t max_known_names = 200'000;
  // Streaming mode and the write path.
  bool block_cache = false;                          // --block-cache: every file streams
  int64_t block_size_bytes = int64_t{16} << 20;      // --block-cache-block-size (MB)
  int64_t block_pool_bytes = int64_t{1024} << 20;    // --block-cache-pool-size (MB)
  int prefetch_blocks = 8;                           // --block-cache-prefetch
  int max_uploads_in_flight = 8;                     // blocks being staged at once
  int64_t free_disk_floor_bytes = int64_t{1} << 30;  // --cache-free-disk-floor-mb
  int64_t wait_for_memory_ms = 30'000;  // a full pool fails the call (ENOSPC) after this
  // Renaming a non-empty directory (directory_rename.h): at most this many objects
  // (--max-dir-rename-objects; more is EXDEV), copied this many at once.
  int64_t max_dir_rename_objects = 10'000;
  int dir_rename_copies_in_flight = 16;
  // Only single_put_max_bytes is used from here (block size and parallelism are above).
  UploadOptions upload;
  const base::Clock* clock = nullptr;  // not owned; nullptr: system clock
};

class FsCore {
 public:
  // `store` is not owned and must outlive the core.
  static Result<std::unique_ptr<FsCore>> Create(ObjectStore* store, FsOptions options);
  ~FsCore();

  // Each successful Lookup/Mkdir/Create/Symlink adds one to the inode's lookup count;
  // Forget takes `count` away and frees the inode when nothing else holds it.
  Result<Attr> Lookup(InodeId parent, const std::string& name);
  void Forget(InodeId inode, uint64_t count);
  Result<Attr> GetAttr(InodeId inode);
  // `handle` is 0 or an open handle of the inode (ftruncate, futimens).
  Result<Attr> SetAttr(InodeId inode, const SetAttrRequest& request, uint64_t handle);

  // Every entry of the directory except "." and "..", in name order, read page by page.
  Result<std::vector<DirEntry>> ReadDir(InodeId inode);
  // What Lookup(parent, entry.name) would answer, made from the attributes in `entry` (an
  // entry ReadDir(parent) returned) with no request: for READDIRPLUS, where the kernel
  // counts every entry it is given as one lookup. Adds one to the inode's lookup count like
  // Lookup; a file open here with unsaved bytes shows its open size.
  Result<Attr> LookupListed(InodeId parent, const DirEntry& entry);
  Result<Attr> MakeDirectory(InodeId parent, const std::string& name, uint32_t mode);
  Status RemoveDirectory(InodeId parent, const std::string& name);
  Status Unlink(InodeId parent, const std::string& name);
  // `flags`: 0 or RENAME_NOREPLACE (RENAME_EXCHANGE is ENOTSUP).
  Status Rename(InodeId parent, const std::string& name, InodeId new_parent,
                const std::string& new_name, unsigned flags);
  Result<Attr> Symlink(const std::string& target, InodeId parent, const std::string& name);
  Result<std::string> ReadLink(InodeId inode);

  // `flags` as open(2) passes them (O_ACCMODE, O_TRUNC, O_APPEND, O_EXCL).
  Result<CreateResult> CreateFile(InodeId parent, const std::string& name, uint32_t mode,
                                  int flags);
  Result<OpenResult> Open(InodeId inode, int flags);
  Result<std::string> Read(uint64_t handle, int64_t offset, int64_t length);
  // The same read answered from the local copy's descriptor without copying the bytes
  // here: once they are in the copy, calls `reply(fd, offset, length)` (length clamped to
  // the file, 0 at or past its end) with the copy locked so it cannot be replaced
  // meanwhile, and returns true. Returns false, calling nothing, when the handle is in
  // streaming mode (use Read).
  using FdReply = std::function<void(int fd, int64_t offset, int64_t length)>;
  Result<bool> ReadFromCopy(uint64_t handle, int64_t offset, int64_t length,
                            const FdReply& reply);
  Result<int64_t> Write(uint64_t handle, int64_t offset, std::string_view data);
  // Upload when dirty; returns once the store has committed the data.
  Status Flush(uint64_t handle) { return FlushChanges(handle).status(); }
  // Flush, saying whether it committed a new version (which gave the file new attributes).
  Result<bool> FlushChanges(uint64_t handle);
  Status Fsync(uint64_t handle) { return Flush(handle); }
  // Flushes (a failure is logged and the unsaved bytes are dropped), then closes.
  Status Release(uint64_t handle);

  Result<FsStat> StatFs();

  // Uploads every dirty open file (at unmount). Returns the first error.
  Status FlushAll();

  FileCache& file_cache() { return *cache_; }
  BlockPool& block_pool() { return *pool_; }
  // Whether `handle` serves its file in streaming mode (tests and logs).
  Result<bool> IsStreaming(uint64_t handle);

 private:
  struct Handle;
  struct Found;  // what a store lookup found at a path
  FsCore(ObjectStore* store, FsOptions options, std::unique_ptr<BlockPool> pool,
         std::unique_ptr<BoundedExecutor> uploads, std::unique_ptr<BoundedExecutor> downloads,
         std::unique_ptr<FileCache> cache);

  int64_t NowMs() const;
  Result<std::string> ChildPath(InodeId parent, const std::string& name);
  Result<std::string> PathOf(InodeId inode);
  Result<Found> FindPath(const std::string& path);
  Result<bool> DirectoryIsEmpty(const std::string& path);
  Attr AttrFor(InodeId inode, const Found& found) const;
  Attr RememberLocked(const std::string& path, const Found& found, bool add_lookup);
  void ForgetPathLocked(const std::string& path);
  void CacheAttr(const std::string& path, const Found& found);
  void DropCachedAttr(const std::string& path);
  // Known directories (the Consistency section above). NoteChildAdded/NoteChildRemoved:
  // this mount has just made or removed `path` in the store. All no-ops without
  // use_attr_cache.
  void NoteChildAdded(const std::string& path);
  void NoteChildRemoved(const std::string& path);
  void NoteChildAddedLocked(const std::string& path);
  void NoteChildRemovedLocked(const std::string& path);
  void BeginListing(const std::string& path);
  // `entries`: the complete listing, or nullptr when it failed.
  void EndListing(const std::string& path, const std::map<std::string, DirEntry>* entries,
                  int64_t started_ms);
  Result<std::map<std::string, DirEntry>> ListChildren(const std::string& path);
  Result<Handle> HandleFor(uint64_t handle);
  Result<std::shared_ptr<CachedFile>> HandleFile(uint64_t handle);
  uint64_t AddHandle(InodeId inode, std::shared_ptr<CachedFile> file,
                     std::shared_ptr<StreamFile> stream, int flags);
  // Streaming mode for a file of `size` bytes not open yet (see the class comment).
  bool ShouldStream(const std::string& path, int64_t size);
  std::shared_ptr<StreamFile> FindStream(const std::string& path);
  // The open stream of `remote`'s version, or a new one registered for it.
  std::shared_ptr<StreamFile> StreamFor(const ObjectInfo& remote);
  // The size of an open file at `path` as its handles see it, if one is open.
  std::optional<int64_t> OpenSize(const std::string& path);
  Status RenameFile(const std::string& from, const std::string& to);
  Status SetDirectoryAttr(const std::string& path, const SetAttrRequest& request);
  // chmod/utimens of a file by metadata alone (see Consistency above).
  Status SetFileMetadata(InodeId inode, const std::string& path, const SetAttrRequest& request);
  // SetAttr of a file unlinked while open: applied to its open copy, never uploaded.
  Result<Attr> SetUnlinkedAttr(InodeId inode, const SetAttrRequest& request, uint64_t handle);
  // Any handle open on `inode`, for an inode no path leads to any more.
  std::optional<Handle> AnyHandleLocked(InodeId inode);
  // The size of an open file as the handle sees it.
  int64_t HandleSize(const Handle& handle);
  // This mount changed the open file `inode` in ways not in the store yet (a write, a
  // truncate, a setattr kept for the pending upload): its attributes show the change at once
  // until an upload makes it the store's. `data_changed`: the bytes changed (mtime moves).
  void NoteOpenChange(InodeId inode, const SetAttrRequest& change, bool data_changed);
  // This mount has just made `info` the object behind `inode` (an upload or a metadata
  // update): the inode and the attribute cache show it from now on with no request. Not
  // for an inode unlinked meanwhile.
  void RememberOwnVersion(InodeId inode, const ObjectInfo& info);
  // This mount added, removed or renamed an entry at `child_path`: the mtime and ctime of
  // the directory holding it move to now (kept in the mount, see Consistency above).
  void TouchParentLocked(const std::string& child_path);
  // A directory inode's attributes keep the times this mount's changes gave it.
  static void KeepDirectoryTimes(Inode& inode);
  Status ApplyFileAttr(CachedFile& file, const SetAttrRequest& request);
  Status ApplyStreamAttr(StreamFile& stream, const SetAttrRequest& request);
  Status RenameDirectory(const std::string& from, const std::string& to);
  // fs_rename_directory.cc: the non-empty case, its bookkeeping, and markers kept.
  Status MoveNonEmptyDirectory(const std::string& from, const std::string& to);
  void RepathDescendantsLocked(const std::string& from, const std::string& to);
  // `removed` has just been removed or renamed away by this mount: when its parent is a
  // directory that is only a prefix and is now empty in the store, writes its marker.
  void KeepParentDirectory(const std::string& removed);
  Status RequireWritable() const;

  // Constant after construction. The pool outlives the executors (their tasks hold its
  // blocks), which outlive the cache and the streams.
  ObjectStore* const store_;
  const FsOptions options_;
  const std::unique_ptr<BlockPool> pool_;
  const std::unique_ptr<BoundedExecutor> uploads_;
  const std::unique_ptr<BoundedExecutor> downloads_;
  const std::unique_ptr<FileCache> cache_;
  const StreamServices stream_services_;

  // Held through a non-empty directory rename, so two of them never lock one open file's
  // mu in different orders.
  std::mutex directory_rename_mu_;
  std::mutex mu_;
  // Guarded by mu_.
  InodeTable inodes_;
  std::unordered_map<uint64_t, std::unique_ptr<Handle>> handles_;
  std::map<std::string, std::pair<int64_t, std::shared_ptr<Found>>> attr_cache_;  // expiry
  std::map<std::string, std::shared_ptr<StreamFile>> streams_;         // open in streaming mode
  KnownDirectories known_;  // used only with use_attr_cache
  uint64_t next_handle_ = 1;
};

}  // namespace meridian::storage::fs
