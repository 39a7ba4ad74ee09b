// FileCache: whole-file local copies of objects under a cache directory, shared by every
// open handle of a file, with an LRU size cap and a timeout after close.
//
// Layout: <dir>/<key>.data holds the bytes, <key>.meta ("meridian-cache 1", the ETag, the
// size and the object name, one per line, the name last) says which version they are. A
// .meta file exists only while the copy is clean (equal to that ETag in the store): it is
// removed before the first write makes the copy dirty and written again after an upload,
// so after a crash or restart only clean copies are reused and dirty leftovers are deleted.
//
// Downloads: a copy of more than one chunk is filled in the background by a
// BackgroundDownload (parallel ranged reads), so Acquire returns at once and readers wait
// only for the bytes they read (WaitToRead). Anything that changes the copy (MarkDirty)
// waits for the whole download first. The .meta is written when the download finishes, so a
// half-downloaded copy is never adopted after a restart. A failed download (the object
// changed or went away meanwhile) fails the reads that wait for it, and the next Acquire
// downloads again.
//
// Eviction: after each release, copies that are neither open nor dirty are removed, least
// recently closed first, while the cache holds more than capacity_bytes or the cache's disk
// has less than free_disk_floor_bytes free, and any such copy closed longer than
// timeout_after_close_ms ago is removed too. Open or dirty copies are never evicted, so the
// cache may exceed its cap while files larger than it are open. MakeRoom evicts the same way
// before a copy is made and says whether the floor can be kept; when it cannot, the caller
// serves the file in streaming mode instead (stream_file.h).
//
// Uploads: while a copy is written, every block a sequential writer has finished is staged
// in the background (Written; StagedBlocks, staged_blocks.h). Upload stages the blocks still
// missing and commits them with one CommitBlocks (one Put for a small file nothing was
// staged for), conditional on the ETag the copy came from (If-Match), or on the object not
// existing (If-None-Match: *) for a file that has never been in the store; a version
// written elsewhere in between makes the upload fail with kFailedPrecondition and is never
// overwritten.
//
// Thread safety: all methods are safe from many threads. CachedFile fields are guarded by
// CachedFile::mu except where noted. Lock order: CachedFile::mu before the cache's own
// lock; the store is never called while the cache's lock is held.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "storage/fs/background_download.h"
#include "storage/fs/bounded_executor.h"
#include "storage/fs/staged_blocks.h"
#include "storage/object_store.h"

namespace meridian::storage::fs {

class BlockBuffers;  // reused block-sized buffers (file_cache.cc)

struct CachedFile {
  std::mutex mu;
  std::string name;  // object name; changes on rename
  std::string key;   // file names in the cache directory (constant)
  int fd = -1;       // read/write descriptor of <key>.data, -1 until downloaded
  std::string etag;  // version the copy came from or was last uploaded as; "" = none yet
  int64_t size = 0;
  bool dirty = false;                    // local bytes or metadata differ from `etag`'s version
  bool unlinked = false;                 // removed from the namespace: never uploaded again
  Metadata metadata;                     // written with the next upload
  std::shared_ptr<StagedBlocks> staged;  // blocks of the next version already staged
  int64_t last_write_end = -1;           // where the last write ended: sequential writers
  // Filling the copy, until it has finished and been settled. Set and reset with both mu and
  // the FileCache's lock held, so either lock suffices to read it.
  std::shared_ptr<BackgroundDownload> download;

  // Guarded by the FileCache's lock.
  int open_count = 0;
  int64_t last_close_ms = 0;
  // Set while the object is this mount's create not uploaded yet (what lookups and listings
  // here must still show): its name, mode metadata and creation time. If the name is found
  // taken at the first upload, that upload replaces what is there (O_TRUNC asked for it).
  std::optional<ObjectInfo> pending_create;
};

struct FileCacheOptions {
  std::string dir;
  int64_t capacity_bytes = int64_t{1000} << 20;
  int64_t timeout_after_close_ms = 120'000;
  int64_t free_disk_floor_bytes = 0;  // keep this much free on the cache's disk
  int64_t download_chunk_bytes = int64_t{16} << 20;  // measured best against Azurite
  int download_parallelism = 4;  // ranged reads in flight per file being downloaded
  // Download threads all files share (each file being downloaded still gets one).
  int max_download_threads = 16;
  UploadOptions upload;                // block size; condition and metadata set per upload
  BoundedExecutor* uploads = nullptr;  // stages blocks; not owned; required
  const base::Clock* clock = nullptr;  // not owned; nullptr: the system clock
};

class FileCache {
 public:
  // Creates `options.dir` when missing and adopts the clean copies left there.
  static Result<std::unique_ptr<FileCache>> Open(ObjectStore* store, FileCacheOptions options);
  ~FileCache();

  // Opens the local copy of `remote` (the object as a Head saw it just now), downloading it
  // unless the copy already has that ETag or is dirty (an open writer's bytes win locally).
  // Sets *replaced when the bytes now differ from what the copy held before. The caller
  // must Release the result. `truncating` (O_TRUNC): a copy that would be downloaded is made
  // empty and dirty instead, since its bytes are about to be discarded.
  Result<std::shared_ptr<CachedFile>> Acquire(const ObjectInfo& remote, bool* replaced,
                                              bool truncating = false);
  // Opens an empty copy of an object just created with `etag`.
  Result<std::shared_ptr<CachedFile>> AcquireNew(const std::string& name, const std::string& etag,
                                                 const Metadata& metadata);
  // Opens an empty, dirty copy for a file this mount creates with O_TRUNC that is not in
  // the store yet: its first upload (flush, fsync, close) makes the object, replacing one
  // another node made meanwhile, as O_TRUNC would have.
  Result<std::shared_ptr<CachedFile>> AcquireCreated(const std::string& name,
                                                     const Metadata& metadata);
  // Files this mount created that are not uploaded yet: the one named `name`, and those
  // directly under `prefix` ("a/b/" or "" for the root).
  std::optional<ObjectInfo> PendingCreate(const std::string& name);
  std::vector<ObjectInfo> PendingCreates(const std::string& prefix);
  // Drops one reference taken by Acquire/AcquireNew, then evicts what the limits require.
  void Release(const std::shared_ptr<CachedFile>& file);

  // The copy of `name` if some handle has it open, else nullptr.
  std::shared_ptr<CachedFile> FindOpen(const std::string& name);
  // The copy of `name`, open or not, else nullptr.
  std::shared_ptr<CachedFile> Find(const std::string& name);
  // Requires file.mu. The object's metadata was set to `metadata` in the store (no bytes
  // sent), which gave the version `old_etag` the new `etag`: a clean, fully downloaded copy
  // of that version takes the new ETag (and its .meta says so), so the next open does not
  // download the same bytes again. Any other copy is left as it is.
  void MetadataChanged(CachedFile& file, const std::string& old_etag, const std::string& etag,
                       const Metadata& metadata);
  // Every copy (open or not) of an object whose name starts with `prefix`, in name order:
  // what a directory rename must carry along.
  std::vector<std::shared_ptr<CachedFile>> CopiesUnder(const std::string& prefix);

  // Requires file.mu, before reading [offset, offset + length) of the copy: waits (with
  // `file_lock` released) until a download in progress has those bytes. Returns the
  // download's error if it failed. The copy may have been replaced meanwhile: the caller
  // reads what file.fd holds when this returns OK.
  Status WaitToRead(std::unique_lock<std::mutex>& file_lock, CachedFile& file, int64_t offset,
                    int64_t length);
  // Requires file.mu. Waits for a download in progress to finish (keeping the lock: the
  // download never takes it) and returns its error if it failed.
  Status FinishDownload(CachedFile& file);
  // Requires file.mu. Marks the copy dirty (removing its .meta first), after any download
  // in progress has finished: a write must not be overwritten by bytes still arriving.
  Status MarkDirty(CachedFile& file);
  // Requires file.mu, after bytes [offset, offset + length) of the copy were written: their
  // blocks must be staged again, and those a sequential writer finished are staged now
  // (none for an unlinked copy, which is never uploaded).
  void Written(CachedFile& file, int64_t offset, int64_t length);
  // Requires file.mu, after the copy was truncated or extended to `size`.
  void Resized(CachedFile& file, int64_t size);
  // Requires file.mu. Uploads a dirty copy (no-op when clean or unlinked): returns once the
  // store has committed it.
  Status Upload(CachedFile& file);

  // Evicts idle copies until `bytes` more fit under the cap and above the free-disk floor.
  // False when the floor cannot be kept (the cap may still be exceeded by open files).
  bool MakeRoom(int64_t bytes);
  // Free bytes on the cache directory's filesystem (statvfs), for users of the floor.
  int64_t FreeDiskBytes() const;
  const FileCacheOptions& options() const { return options_; }

  // The object was renamed from `from` to `to` with `to_etag`: the copy follows it, and any
  // copy of the old `to` is dropped. Requires the moved file's mu when it is open.
  void Rename(const std::string& from, const std::string& to, const std::string& to_etag);
  // The object was removed: its copy is dropped now, or at last release when open.
  void Remove(const std::string& name);

  int64_t used_bytes();

 private:
  FileCache(ObjectStore* store, FileCacheOptions options);
  Status AdoptExisting();
  Status Download(CachedFile& file, const ObjectInfo& remote, bool truncating);
  Result<std::string> UploadWith(CachedFile& file, const Condition& condition);
  // Requires file.mu. A download that finished well is dropped and its .meta written.
  void SettleDownload(CachedFile& file);
  void WriteMeta(const CachedFile& file);
  void DropFilesLocked(CachedFile& file);
  // Evicts idle copies until `incoming` more bytes fit (see the class comment); returns
  // whether the free-disk floor is kept.
  bool EvictLocked(int64_t incoming = 0);
  std::string PathFor(const std::string& key, const char* suffix) const;
  int64_t NowMs() const;

  // Constant after construction.
  ObjectStore* const store_;
  const FileCacheOptions options_;
  const std::shared_ptr<BlockBuffers> buffers_;
  const std::shared_ptr<DownloadThreadBudget> download_threads_;

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<CachedFile>> files_;  // by object name; guarded by mu_
  uint64_t next_key_ = 1;                                     // guarded by mu_
};

}  // namespace meridian::storage::fs
