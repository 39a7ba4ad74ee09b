// Streaming (block) mode: files served from fixed-size blocks in a bounded memory pool
// instead of whole-file copies on disk. Used for every file with --block-cache, and in file
// cache mode for a file larger than the cache or one the cache cannot take without going
// under its free-disk floor.
//
// BlockPool: the memory budget shared by every streaming file of a mount. Every block
// buffer (read, written, being uploaded or prefetched) is counted in it until its last
// reference goes. When it is full, the least recently loaded clean blocks are dropped; a
// caller that still finds no room waits for one to be released (bounded), so the mount's
// memory stays under the pool size whatever the file sizes are.
//
// StreamFile: one open file in streaming mode, shared by all its handles. It is the version
// `base` (ETag) of the object plus the blocks written since:
//   - reads take a block from memory, else download it with one ranged GET pinned to the
//     base ETag; sequential reads start read-ahead of the next `prefetch_blocks` blocks, in
//     parallel, on the download executor;
//   - writes go into in-memory blocks; a random write into a block not in memory downloads
//     that block first; a block a sequential writer has finished is staged in the store
//     (StagedBlocks) and then kept only as a clean, evictable block;
//   - Commit (flush, fsync, close) stages what is still missing (written blocks, and blocks
//     unchanged from the base, copied through memory since the store cannot reuse another
//     object's blocks) and makes the new version visible with one CommitBlocks conditional on
//     the base ETag. Reading back a written block that has already been staged and dropped
//     from memory commits first (as an fsync would), since staged blocks cannot be read.
// Limits: kMaxBlocksPerObject blocks (800 GB at 16 MiB) per file.
//
// Thread safety: every method locks the file's mutex (held across its store calls; read-ahead
// and uploads run without it). Lock order: StreamFile::mu_, then StagedBlocks' and the pool's.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "base/status.h"
#include "storage/fs/bounded_executor.h"
#include "storage/fs/staged_blocks.h"
#include "storage/object_store.h"

namespace meridian::storage::fs {

class BlockPool {
 public:
  BlockPool(int64_t capacity_bytes, int64_t block_size_bytes);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // An empty buffer counted as one block until its last reference goes. When the pool is
  // full, clean blocks are dropped (least recently kept first); then it waits up to
  // `wait_ms` for a block to be released. kResourceExhausted when none was.
  Result<std::shared_ptr<std::string>> Allocate(int64_t wait_ms);
  // Keeps `block` (a buffer from Allocate) in memory until its room is needed.
  void KeepClean(std::shared_ptr<const std::string> block);

  int64_t block_size() const { return block_size_; }
  int64_t capacity_blocks() const { return capacity_blocks_; }
  int64_t used_blocks();

 private:
  void Released();

  // Constant after construction.
  const int64_t block_size_;
  const int64_t capacity_blocks_;

  std::mutex mu_;
  std::condition_variable released_;
  // Guarded by mu_.
  int64_t used_blocks_ = 0;
  std::list<std::shared_ptr<const std::string>> clean_;  // oldest first
};

struct StreamServices {
  ObjectStore* store = nullptr;          // not owned
  BlockPool* pool = nullptr;             // not owned
  BoundedExecutor* downloads = nullptr;  // read-ahead; not owned
  BoundedExecutor* uploads = nullptr;    // block staging; not owned
  int prefetch_blocks = 8;               // --block-cache-prefetch
  int64_t wait_for_memory_ms = 30'000;   // then the operation fails (ENOSPC)
};

class StreamFile : public std::enable_shared_from_this<StreamFile> {
 public:
  // The file as the object `base` is now (a Head just now, or the empty object create made).
  static std::shared_ptr<StreamFile> Open(const StreamServices& services, const ObjectInfo& base);

  Result<std::string> Read(int64_t offset, int64_t length);
  // `append`: write at the end, whatever `offset` says. Returns the bytes written.
  Result<int64_t> Write(int64_t offset, std::string_view data, bool append);
  Status Truncate(int64_t size);
  // Changes the metadata written with the next commit.
  void EditMetadata(const std::function<void(Metadata&)>& edit);
  // Changes the object's metadata (chmod, utimens): kept with the pending commit when the
  // file is dirty (returns ""); else set in the store now with one SetMetadata conditional
  // on the base ETag, no data sent, and the new ETag (returned) becomes the base.
  Result<std::string> ChangeMetadata(const std::function<void(Metadata&)>& edit);
  // Makes the written data the object's new version (one commit); no-op when clean.
  Status Commit();

  // The object was renamed (after a Commit) and now has `etag`.
  void Renamed(const std::string& to, const std::string& etag);
  // The object was removed while open: nothing is staged or committed any more. Written
  // blocks stay in memory (a full pool fails the write instead of staging them), and
  // Commit succeeds only while everything written can still be read back.
  void MarkUnlinked();

  int64_t size();
  std::string etag();
  Metadata metadata();
  bool dirty();
  int64_t staged_blocks() { return staged_->staged_count(); }

  // Handles open on this file; guarded by the owner's (FsCore's) lock, not by mu_.
  int open_count = 0;

 private:
  struct Block {
    std::shared_ptr<std::string> dirty;         // being written; only this file holds it
    std::weak_ptr<const std::string> resident;  // current bytes, while still in memory
  };

  StreamFile(const StreamServices& services, const ObjectInfo& base);
  int64_t BlockLength(int64_t index) const;
  Result<std::shared_ptr<std::string>> AllocateLocked(int64_t keep_index);
  Result<std::shared_ptr<const std::string>> BlockBytesLocked(std::unique_lock<std::mutex>& lock,
                                                              int64_t index, int64_t length);
  Result<std::shared_ptr<std::string>> DownloadBlock(int64_t index, int64_t length);
  Result<std::string*> WritableBlockLocked(std::unique_lock<std::mutex>& lock, int64_t index,
                                           bool overwrites_all);
  void SealLocked(int64_t index);
  Status PrepareGrowLocked(std::unique_lock<std::mutex>& lock, int64_t new_size);
  void PrefetchLocked(int64_t from_index);
  void Prefetched(int64_t index, const std::string& etag,
                  Result<std::shared_ptr<std::string>> bytes);
  Status CommitLocked(std::unique_lock<std::mutex>& lock);

  // Constant after construction.
  const StreamServices services_;
  const int64_t block_size_;
  const std::shared_ptr<StagedBlocks> staged_;

  std::mutex mu_;
  std::condition_variable prefetch_done_;
  // Guarded by mu_.
  std::string name_;
  std::string base_etag_;   // "" for a file never committed
  int64_t base_valid_ = 0;  // bytes of the base that are still the file's; beyond: zeros
  int64_t size_ = 0;
  Metadata metadata_;
  bool dirty_ = false;
  bool unlinked_ = false;
  std::map<int64_t, Block> blocks_;
  std::set<int64_t> modified_;     // blocks that differ from the base
  std::set<int64_t> prefetching_;  // read-ahead downloads in flight
  int64_t last_read_end_ = -1;
  int64_t last_write_end_ = -1;
};

}  // namespace meridian::storage::fs
