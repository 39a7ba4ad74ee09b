// StagedBlocks: the upload side of the write path. While a file is written, its next version
// is cut into fixed-size blocks; blocks the writer has finished are staged in the store in
// the background (StageBlock: invisible to every reader), and the commit (flush, fsync,
// close) stages only what is still missing and makes the new version visible with ONE
// CommitBlocks, conditional on the ETag the file came from. So a reader elsewhere sees the
// old version or the new one, a crash leaves the old one (staged blocks are never seen and
// the store discards them), and a sequential writer (a checkpoint) finds most of its blocks
// already uploaded when it closes.
//
// A block is reused at commit only when it was staged after its last change (a generation
// count per block) with the length it has now. Every staging gets a fresh random id
// (BlockIdFor, one length for every id meridian writes), so a slow upload of an older
// generation can never stand in for a newer one. Blocks whose background upload failed keep
// their bytes here until the commit retries them.
//
// Memory: the bytes of a block are held only while its upload is queued or running (or after
// a failure until the next commit); the BoundedExecutor bounds how many are.
//
// Thread safety: every method locks the object's own mutex, which is taken after any lock of
// the file that owns it (the upload tasks take only this mutex). Hold the instance in a
// shared_ptr: tasks keep it alive until they finish.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/fs/bounded_executor.h"
#include "storage/object_store.h"

namespace meridian::storage::fs {

class StagedBlocks : public std::enable_shared_from_this<StagedBlocks> {
 public:
  // `store` and `uploads` are not owned and must outlive every task submitted.
  static std::shared_ptr<StagedBlocks> Create(ObjectStore* store, BoundedExecutor* uploads,
                                              std::string name, int64_t block_size_bytes);

  int64_t block_size() const { return block_size_; }
  // Staged blocks belong to one object name: a rename forgets them.
  void Rename(std::string name);

  // Bytes [offset, offset + length) changed: their blocks must be staged again.
  void Changed(int64_t offset, int64_t length);
  // The file is now `size` bytes long: blocks past it are forgotten, the last one changed.
  void Resized(int64_t size);

  // Stages block `index` with `data` (its whole current content) on the upload executor,
  // waiting for a free slot. Nothing happens when it is already staged or in flight in its
  // current generation.
  void StageInBackground(int64_t index, std::shared_ptr<const std::string> data);

  // Stages every block of a `size`-byte version that is not staged in its current content,
  // getting the bytes from `read(index, offset, length)` on the calling thread, waits for
  // every upload, and returns the block list to commit. The first upload error, if any.
  using BlockReader = std::function<Result<std::shared_ptr<const std::string>>(
      int64_t index, int64_t offset, int64_t length)>;
  Result<std::vector<std::string>> StageAll(int64_t size, const BlockReader& read);

  // After a commit: the staged blocks are part of the object now (a later commit must stage
  // again; the store does not keep committed blocks for reuse).
  void Clear();

  // Whether block `index` is staged with its current content (so its bytes may be dropped
  // from memory): what a streaming file asks before reading back a block it no longer holds.
  bool IsStaged(int64_t index, int64_t length);
  // Blocks staged in their current content, for tests and logs.
  int64_t staged_count();
  // Waits until no upload of this file is queued or running.
  void WaitIdle();

 private:
  struct Block {
    uint64_t generation = 0;
    std::string id;  // staged id of `staged_generation`, "" when none
    uint64_t staged_generation = 0;
    int64_t staged_length = -1;
    bool in_flight = false;  // an upload of `generation` is queued or running
    std::shared_ptr<const std::string> failed_data;  // bytes of `generation` whose upload failed
  };

  StagedBlocks(ObjectStore* store, BoundedExecutor* uploads, std::string name,
               int64_t block_size_bytes);
  Block& BlockLocked(int64_t index);
  bool CurrentLocked(int64_t index, int64_t length);
  // Requires mu_ held by `lock`; releases it while waiting for a free upload slot.
  void SubmitLocked(std::unique_lock<std::mutex>& lock, int64_t index,
                    std::shared_ptr<const std::string> data);
  void Finished(int64_t index, uint64_t generation, const std::string& id, int64_t length,
                const Status& status, std::shared_ptr<const std::string> data);

  // Constant after construction.
  ObjectStore* const store_;
  BoundedExecutor* const uploads_;
  const int64_t block_size_;

  std::mutex mu_;
  std::condition_variable idle_;
  // Guarded by mu_.
  std::string name_;
  std::map<int64_t, Block> blocks_;
  int in_flight_ = 0;
  Status last_error_;
};

}  // namespace meridian::storage::fs
