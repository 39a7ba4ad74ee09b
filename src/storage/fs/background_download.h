// BackgroundDownload: fills a local file with one version of an object, several ranged
// reads at a time, while readers wait only for the bytes they ask for. This is what lets
// `open` of a large file return at once and the first `read` be answered as soon as its
// bytes arrive, instead of after the whole object is down.
//
// The object is cut into chunks of `chunk_bytes`. Each worker takes the next chunk nobody has
// started (a waiting reader's chunk first, so a reader that seeks is not stuck behind the
// sequential order), streams it into the file with ObjectStore::ReadRange (no buffer of the
// chunk's size) and publishes how far each chunk is filled, piece by piece. Every read is
// conditional on the version's ETag, so the file never mixes two versions: a version
// replaced in the store meanwhile makes the download fail with kFailedPrecondition.
//
// Threads: Start runs `parallelism` worker threads (fewer for a small object); RunInline does
// the work on the calling thread, for objects of one chunk. Workers never take any lock but
// their own, so a caller may wait while holding its file's lock.
//
// Lifetime: hold it in a shared_ptr and take a copy before waiting without the owner's lock.
// The destructor (run by whoever drops the last copy) cancels the download and joins the
// workers. The descriptor is
// duplicated, so the owner may close its own at any time; `store` must outlive this object.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "base/status.h"
#include "storage/object_store.h"

namespace meridian::storage::fs {

// Worker threads that every download of one owner (a mount) shares: a download takes up to
// its `parallelism` of them, but always at least one, so many files downloading at once
// get one thread each instead of `parallelism` each.
class DownloadThreadBudget {
 public:
  explicit DownloadThreadBudget(int threads) : available_(threads) {}
  // Up to `wanted` threads (at least 1, which may go past the budget).
  int Take(int wanted);
  void Give(int threads);
  int available();

 private:
  std::mutex mu_;
  int available_;  // guarded by mu_; below 0 while downloads hold their one extra thread
};

struct BackgroundDownloadOptions {
  int64_t chunk_bytes = int64_t{16} << 20;
  int parallelism = 4;  // ranged reads in flight for one object
  // Shared by the owner's downloads; nullptr: no limit beyond `parallelism`.
  std::shared_ptr<DownloadThreadBudget> threads;
};

class BackgroundDownload {
 public:
  // Starts filling `fd` (already sized or extended as the caller likes) with bytes
  // [0, remote.size) of `remote`'s version. kInternal when the descriptor cannot be
  // duplicated or a thread cannot start.
  static Result<std::shared_ptr<BackgroundDownload>> Start(ObjectStore* store,
                                                           const ObjectInfo& remote, int fd,
                                                           BackgroundDownloadOptions options);
  // The same work on the calling thread; returns when it is done.
  static Status RunInline(ObjectStore* store, const ObjectInfo& remote, int fd,
                          BackgroundDownloadOptions options);
  ~BackgroundDownload();
  BackgroundDownload(const BackgroundDownload&) = delete;
  BackgroundDownload& operator=(const BackgroundDownload&) = delete;

  // Waits until bytes [offset, offset + length) (clamped to the object) are in the file.
  // Returns the download's error if it failed first, kCancelled if it was cancelled.
  Status WaitFor(int64_t offset, int64_t length);
  // Waits until the download is finished (every chunk's read has returned, or it failed or
  // was cancelled), so Finished() has a value once this returns; returns what it holds.
  // Not WaitFor(0, size): a chunk's bytes are all in before its worker counts it done.
  Status WaitAll();
  // Whether [offset, offset + length) is in the file now (no waiting).
  bool Has(int64_t offset, int64_t length);
  // Finished: every byte is in (OK) or it failed (its error). Unfinished: nullopt.
  std::optional<Status> Finished();
  // Stops the workers soon; waiting readers get kCancelled.
  void Cancel();

  int64_t size() const { return size_; }
  // Readers blocked in WaitFor now (tests and logs).
  int waiting_readers();

 private:
  BackgroundDownload(ObjectStore* store, ObjectInfo remote, int fd,
                     BackgroundDownloadOptions options);
  void WorkerLoop();
  // Requires mu_. The next chunk to fetch, -1 when none is left or the download is over.
  int64_t PickLocked();
  int64_t ChunkLength(int64_t index) const;
  // Requires mu_. The first offset of [offset, offset + length) not in the file yet, or -1.
  int64_t FirstMissingLocked(int64_t offset, int64_t length) const;
  // Requires mu_. What Finished() returns.
  std::optional<Status> FinishedLocked() const;
  void Fail(const Status& status);

  // Constant after construction.
  ObjectStore* const store_;
  const ObjectInfo remote_;
  const int fd_;  // our own duplicate, closed by the destructor
  const int64_t size_;
  const int64_t chunk_bytes_;
  const int64_t chunk_count_;

  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable progress_;
  // Guarded by mu_.
  std::vector<int64_t> filled_;  // bytes in, from each chunk's start
  std::vector<bool> started_;
  int64_t next_chunk_ = 0;  // the lowest chunk not started
  int64_t wanted_ = -1;     // a chunk some reader waits for, -1 when none
  int64_t chunks_done_ = 0;
  int waiters_ = 0;
  Status error_;

  std::vector<std::thread> workers_;
  std::shared_ptr<DownloadThreadBudget> budget_;  // given back what workers_ took
};

}  // namespace meridian::storage::fs
