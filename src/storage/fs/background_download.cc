#include "storage/fs/background_download.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fmt/format.h"

namespace meridian::storage::fs {

int DownloadThreadBudget::Take(int wanted) {
  std::lock_guard lock(mu_);
  const int taken = std::max(1, std::min(wanted, available_));
  available_ -= taken;
  return taken;
}

void DownloadThreadBudget::Give(int threads) {
  std::lock_guard lock(mu_);
  available_ += threads;
}

int DownloadThreadBudget::available() {
  std::lock_guard lock(mu_);
  return available_;
}

BackgroundDownload::BackgroundDownload(ObjectStore* store, ObjectInfo remote, int fd,
                                       BackgroundDownloadOptions options)
    : store_(store),
      remote_(std::move(remote)),
      fd_(fd),
      size_(remote_.size),
      chunk_bytes_(std::max<int64_t>(options.chunk_bytes, 1)),
      chunk_count_((size_ + chunk_bytes_ - 1) / chunk_bytes_),
      filled_(chunk_count_, 0),
      started_(chunk_count_, false) {}

BackgroundDownload::~BackgroundDownload() {
  Cancel();
  for (std::thread& worker : workers_) worker.join();
  ::close(fd_);
}

Result<std::shared_ptr<BackgroundDownload>> BackgroundDownload::Start(
    ObjectStore* store, const ObjectInfo& remote, int fd, BackgroundDownloadOptions options) {
  const int own_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own_fd < 0) {
    return absl::InternalError(fmt::format("download of '{}': {}", remote.name,
                                           std::strerror(errno)));
  }
  std::shared_ptr<BackgroundDownload> download(
      new BackgroundDownload(store, remote, own_fd, options));
  int64_t threads = std::clamp<int64_t>(download->chunk_count_, 0, options.parallelism);
  if (options.threads != nullptr && threads > 0) {
    threads = options.threads->Take(static_cast<int>(threads));
    download->budget_ = options.threads;
  }
  try {
    for (int64_t i = 0; i < threads; ++i) {
      download->workers_.emplace_back([raw = download.get()] {
        raw->WorkerLoop();
        if (raw->budget_ != nullptr) raw->budget_->Give(1);  // as soon as this one is done
      });
    }
  } catch (const std::system_error& error) {
    const int started = static_cast<int>(download->workers_.size());
    if (download->budget_ != nullptr) download->budget_->Give(static_cast<int>(threads) - started);
    download->Fail(absl::InternalError(
        fmt::format("download of '{}': cannot start a thread: {}", remote.name, error.what())));
    // The threads that did start see the failure and stop; the destructor joins them.
    if (started == 0) {
      return absl::InternalError(
          fmt::format("download of '{}': cannot start a thread: {}", remote.name, error.what()));
    }
  }
  return download;
}

Status BackgroundDownload::RunInline(ObjectStore* store, const ObjectInfo& remote, int fd,
                                     BackgroundDownloadOptions options) {
  const int own_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own_fd < 0) {
    return absl::InternalError(fmt::format("download of '{}': {}", remote.name,
                                           std::strerror(errno)));
  }
  BackgroundDownload download(store, remote, own_fd, options);
  download.WorkerLoop();
  return download.WaitAll();
}

int64_t BackgroundDownload::ChunkLength(int64_t index) const {
  return std::min(chunk_bytes_, size_ - index * chunk_bytes_);
}

int64_t BackgroundDownload::PickLocked() {
  if (cancelled_ || !error_.ok()) return -1;
  if (wanted_ >= 0 && !started_[wanted_]) return wanted_;
  while (next_chunk_ < chunk_count_ && started_[next_chunk_]) ++next_chunk_;
  return next_chunk_ < chunk_count_ ? next_chunk_ : -1;
}

void BackgroundDownload::Fail(const Status& status) {
  std::lock_guard lock(mu_);
  if (error_.ok()) error_ = status;
  progress_.notify_all();
}

void BackgroundDownload::WorkerLoop() {
  for (;;) {
    int64_t index;
    {
      std::lock_guard lock(mu_);
      index = PickLocked();
      if (index < 0) return;
      started_[index] = true;
    }
    const int64_t start = index * chunk_bytes_;
    const int64_t length = ChunkLength(index);
    const ObjectStore::RangeSink sink = [&](int64_t offset, std::string_view bytes) -> Status {
      if (cancelled_) return absl::CancelledError("the download was cancelled");
      for (size_t done = 0; done < bytes.size();) {
        const ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done,
                                   offset + static_cast<int64_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          return absl::ResourceExhaustedError(fmt::format(
              "writing the cached copy of '{}': {}", remote_.name, std::strerror(errno)));
        }
        done += static_cast<size_t>(n);
      }
      std::lock_guard lock(mu_);
      // A retried request delivers from the chunk's start again: only growth counts.
      const int64_t end = offset + static_cast<int64_t>(bytes.size()) - start;
      if (offset - start <= filled_[index]) filled_[index] = std::max(filled_[index], end);
      if (waiters_ > 0) progress_.notify_all();
      return OkStatus();
    };
    Result<int64_t> read =
        store_->ReadRange(remote_.name, start, length, Condition::IfMatch(remote_.etag), sink);
    if (read.ok() && *read < length) {
      read = absl::UnavailableError(fmt::format("'{}' ended {} bytes early (it was {} bytes)",
                                                remote_.name, length - *read, size_));
    }
    if (!read.ok()) {
      Fail(read.status());
      return;
    }
    std::lock_guard lock(mu_);
    filled_[index] = length;
    ++chunks_done_;
    if (wanted_ == index) wanted_ = -1;
    progress_.notify_all();
  }
}

int64_t BackgroundDownload::FirstMissingLocked(int64_t offset, int64_t length) const {
  const int64_t end = std::min(size_, offset + length);
  for (int64_t at = std::max<int64_t>(offset, 0); at < end;) {
    const int64_t index = at / chunk_bytes_;
    const int64_t chunk_start = index * chunk_bytes_;
    // This chunk must be filled from its start up to the range's end or its own.
    const int64_t needed = std::min(end, chunk_start + chunk_bytes_) - chunk_start;
    if (filled_[index] < needed) return std::max(at, chunk_start + filled_[index]);
    at = chunk_start + chunk_bytes_;
  }
  return -1;
}

bool BackgroundDownload::Has(int64_t offset, int64_t length) {
  std::lock_guard lock(mu_);
  return FirstMissingLocked(offset, length) < 0;
}

Status BackgroundDownload::WaitFor(int64_t offset, int64_t length) {
  std::unique_lock lock(mu_);
  ++waiters_;
  Status result;
  for (;;) {
    const int64_t missing = FirstMissingLocked(offset, length);
    if (missing < 0) break;
    if (!error_.ok()) {
      result = error_;
      break;
    }
    if (cancelled_) {
      result = absl::CancelledError("the download was cancelled");
      break;
    }
    // Ask for the first missing chunk next, unless a worker has it already.
    const int64_t index = missing / chunk_bytes_;
    if (!started_[index]) wanted_ = index;
    progress_.wait(lock);
  }
  --waiters_;
  return result;
}

Status BackgroundDownload::WaitAll() {
  std::unique_lock lock(mu_);
  ++waiters_;
  progress_.wait(lock, [&] { return FinishedLocked().has_value(); });
  --waiters_;
  return *FinishedLocked();
}

std::optional<Status> BackgroundDownload::Finished() {
  std::lock_guard lock(mu_);
  return FinishedLocked();
}

std::optional<Status> BackgroundDownload::FinishedLocked() const {
  if (!error_.ok()) return error_;
  if (chunks_done_ == chunk_count_) return OkStatus();
  if (cancelled_) return absl::CancelledError("the download was cancelled");
  return std::nullopt;
}

int BackgroundDownload::waiting_readers() {
  std::lock_guard lock(mu_);
  return waiters_;
}

void BackgroundDownload::Cancel() {
  cancelled_ = true;
  std::lock_guard lock(mu_);
  progress_.notify_all();
}

}  // namespace meridian::storage::fs
