#include "storage/fs/stream_file.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::storage::fs {

// ---- BlockPool ----------------------------------------------------------------------------

BlockPool::BlockPool(int64_t capacity_bytes, int64_t block_size_bytes)
    : block_size_(std::max<int64_t>(block_size_bytes, 1)),
      capacity_blocks_(std::max<int64_t>(capacity_bytes / block_size_, 2)) {}

BlockPool::~BlockPool() {
  std::list<std::shared_ptr<const std::string>> dropped;
  {
    std::lock_guard lock(mu_);
    dropped.swap(clean_);
  }
  // `dropped` is freed here, outside mu_: each buffer's deleter takes mu_.
}

Result<std::shared_ptr<std::string>> BlockPool::Allocate(int64_t wait_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  std::unique_lock lock(mu_);
  while (used_blocks_ >= capacity_blocks_) {
    if (!clean_.empty()) {
      std::shared_ptr<const std::string> victim = std::move(clean_.front());
      clean_.pop_front();
      lock.unlock();
      victim.reset();  // frees it unless a reader or an upload still holds it
      lock.lock();
      continue;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::ResourceExhaustedError(fmt::format(
          "the block cache's memory pool ({} blocks of {} bytes) is full of blocks still in use",
          capacity_blocks_, block_size_));
    }
    released_.wait_until(lock, deadline);
  }
  ++used_blocks_;
  lock.unlock();
  return std::shared_ptr<std::string>(new std::string, [this](std::string* buffer) {
    delete buffer;
    Released();
  });
}

void BlockPool::Released() {
  {
    std::lock_guard lock(mu_);
    --used_blocks_;
  }
  released_.notify_all();
}

void BlockPool::KeepClean(std::shared_ptr<const std::string> block) {
  std::lock_guard lock(mu_);
  clean_.push_back(std::move(block));
}

int64_t BlockPool::used_blocks() {
  std::lock_guard lock(mu_);
  return used_blocks_;
}

// ---- StreamFile ---------------------------------------------------------------------------

std::shared_ptr<StreamFile> StreamFile::Open(const StreamServices& services,
                                             const ObjectInfo& base) {
  return std::shared_ptr<StreamFile>(new StreamFile(services, base));
}

StreamFile::StreamFile(const StreamServices& services, const ObjectInfo& base)
    : services_(services),
      block_size_(services.pool->block_size()),
      staged_(StagedBlocks::Create(services.store, services.uploads, base.name,
                                   services.pool->block_size())),
      name_(base.name),
      base_etag_(base.etag),
      base_valid_(base.size),
      size_(base.size),
      metadata_(base.metadata) {}

int64_t StreamFile::BlockLength(int64_t index) const {
  return std::clamp<int64_t>(size_ - index * block_size_, 0, block_size_);
}

Result<std::shared_ptr<std::string>> StreamFile::AllocateLocked(int64_t keep_index) {
  Result<std::shared_ptr<std::string>> buffer = services_.pool->Allocate(0);
  if (buffer.ok()) return buffer;
  // The pool is full of blocks nobody may drop: stage this file's written blocks, after
  // which they are clean and droppable (a later read of one commits first).
  for (auto& [index, block] : blocks_) {
    if (block.dirty != nullptr && index != keep_index) SealLocked(index);
  }
  return services_.pool->Allocate(services_.wait_for_memory_ms);
}

Result<std::shared_ptr<std::string>> StreamFile::DownloadBlock(int64_t index, int64_t length) {
  ASSIGN_OR_RETURN(std::shared_ptr<std::string> buffer, AllocateLocked(index));
  ASSIGN_OR_RETURN(*buffer, services_.store->GetRange(name_, index * block_size_, length,
                                                      Condition::IfMatch(base_etag_)));
  if (static_cast<int64_t>(buffer->size()) != length) {
    return absl::FailedPreconditionError(
        fmt::format("object '{}' was changed by someone else while it was being read", name_));
  }
  return buffer;
}

// The current bytes of block `index`, exactly `length` of them (zeros past what is stored).
Result<std::shared_ptr<const std::string>> StreamFile::BlockBytesLocked(
    std::unique_lock<std::mutex>& lock, int64_t index, int64_t length) {
  auto extend =
      [&](std::shared_ptr<const std::string> bytes) -> Result<std::shared_ptr<const std::string>> {
    if (static_cast<int64_t>(bytes->size()) == length) return bytes;
    ASSIGN_OR_RETURN(std::shared_ptr<std::string> copy, AllocateLocked(index));
    *copy = bytes->substr(0, length);
    copy->resize(length);
    return copy;
  };
  prefetch_done_.wait(lock, [&] { return !prefetching_.contains(index); });
  if (auto it = blocks_.find(index); it != blocks_.end()) {
    if (it->second.dirty != nullptr) return extend(it->second.dirty);
    if (std::shared_ptr<const std::string> resident = it->second.resident.lock()) {
      return extend(std::move(resident));
    }
  }
  if (modified_.contains(index)) {
    if (unlinked_) {
      return absl::DataLossError(fmt::format(
          "block {} of the removed file '{}' was staged before the removal and cannot be read",
          index, name_));
    }
    // Written, staged and dropped from memory: staged blocks cannot be read, so make them
    // the object's version now (what an fsync would do), then read it from there.
    RETURN_IF_ERROR(CommitLocked(lock));
  }
  const int64_t offset = index * block_size_;
  if (offset >= base_valid_) {
    ASSIGN_OR_RETURN(std::shared_ptr<std::string> zeros, AllocateLocked(index));
    zeros->assign(length, '\0');
    return zeros;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<std::string> bytes,
                   DownloadBlock(index, std::min(length, base_valid_ - offset)));
  bytes->resize(length);
  blocks_[index].resident = bytes;
  services_.pool->KeepClean(bytes);
  return bytes;
}

Result<std::string*> StreamFile::WritableBlockLocked(std::unique_lock<std::mutex>& lock,
                                                     int64_t index, bool overwrites_all) {
  if (blocks_[index].dirty != nullptr) return blocks_[index].dirty.get();
  // The old bytes first, then the buffer: each allocation may seal this file's other
  // written blocks to make room, which holding a buffer across the other would defeat.
  std::shared_ptr<const std::string> bytes;
  if (!overwrites_all && BlockLength(index) > 0) {
    ASSIGN_OR_RETURN(bytes, BlockBytesLocked(lock, index, BlockLength(index)));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<std::string> buffer, AllocateLocked(index));
  if (bytes != nullptr) *buffer = *bytes;
  Block& block = blocks_[index];
  if (block.dirty == nullptr) block.dirty = std::move(buffer);  // unless a writer came first
  modified_.insert(index);
  return block.dirty.get();
}

void StreamFile::SealLocked(int64_t index) {
  Block& block = blocks_[index];
  if (block.dirty == nullptr) return;
  if (unlinked_) return;  // staged blocks cannot be read back, and are never committed now
  std::shared_ptr<const std::string> bytes = std::move(block.dirty);
  block.dirty = nullptr;
  block.resident = bytes;
  services_.pool->KeepClean(bytes);
  staged_->StageInBackground(index, std::move(bytes));
}

// Before the file grows: a written last block that is partial gets its new zero tail now
// (in memory), so it is staged again at its new length.
Status StreamFile::PrepareGrowLocked(std::unique_lock<std::mutex>& lock, int64_t new_size) {
  if (size_ % block_size_ == 0) return OkStatus();
  const int64_t last = size_ / block_size_;
  if (!modified_.contains(last)) return OkStatus();  // base bytes past size_ read as zeros
  ASSIGN_OR_RETURN(std::string * buffer, WritableBlockLocked(lock, last, false));
  const int64_t old_length = static_cast<int64_t>(buffer->size());
  buffer->resize(std::min(block_size_, new_size - last * block_size_));
  staged_->Changed(last * block_size_ + old_length,
                   static_cast<int64_t>(buffer->size()) - old_length);
  return OkStatus();
}

Result<std::string> StreamFile::Read(int64_t offset, int64_t length) {
  std::unique_lock lock(mu_);
  if (offset >= size_ || length <= 0) return std::string();
  length = std::min(length, size_ - offset);
  const bool sequential = offset == 0 || offset == last_read_end_;
  last_read_end_ = offset + length;
  if (sequential) PrefetchLocked(offset / block_size_ + 1);
  std::string out;
  out.reserve(length);
  for (int64_t index = offset / block_size_; index <= (offset + length - 1) / block_size_;
       ++index) {
    const int64_t start = index * block_size_;
    ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes,
                     BlockBytesLocked(lock, index, BlockLength(index)));
    const int64_t from = std::max(offset, start) - start;
    const int64_t to = std::min(offset + length, start + block_size_) - start;
    out.append(*bytes, from, to - from);
  }
  // Forget entries whose bytes the pool dropped, so the map stays small for huge files.
  if (static_cast<int64_t>(blocks_.size()) > 4 * services_.pool->capacity_blocks()) {
    std::erase_if(blocks_, [](const auto& item) {
      return item.second.dirty == nullptr && item.second.resident.expired();
    });
  }
  return out;
}

void StreamFile::PrefetchLocked(int64_t from_index) {
  const int64_t window =
      std::min<int64_t>(services_.prefetch_blocks, services_.pool->capacity_blocks() - 2);
  const int64_t readable = std::min(base_valid_, size_);
  for (int64_t index = from_index; index < from_index + window; ++index) {
    const int64_t offset = index * block_size_;
    if (offset >= readable) break;
    if (modified_.contains(index) || prefetching_.contains(index)) continue;
    if (auto it = blocks_.find(index);
        it != blocks_.end() && (it->second.dirty != nullptr || !it->second.resident.expired())) {
      continue;
    }
    Result<std::shared_ptr<std::string>> buffer = services_.pool->Allocate(0);
    if (!buffer.ok()) break;  // read-ahead never waits for memory
    const int64_t length = std::min(block_size_, base_valid_ - offset);
    prefetching_.insert(index);
    std::shared_ptr<StreamFile> self = shared_from_this();
    bool queued = services_.downloads->TrySubmit(
        [self, index, offset, length, name = name_, etag = base_etag_, buffer = *buffer] {
          Result<std::string> bytes =
              self->services_.store->GetRange(name, offset, length, Condition::IfMatch(etag));
          if (bytes.ok() && static_cast<int64_t>(bytes->size()) == length) {
            *buffer = std::move(*bytes);
            self->Prefetched(index, etag, buffer);
          } else {
            self->Prefetched(index, etag,
                             bytes.ok() ? absl::UnavailableError("short read") : bytes.status());
          }
        });
    if (!queued) {
      prefetching_.erase(index);
      break;
    }
  }
}

void StreamFile::Prefetched(int64_t index, const std::string& etag,
                            Result<std::shared_ptr<std::string>> bytes) {
  {
    std::lock_guard lock(mu_);
    prefetching_.erase(index);
    const int64_t offset = index * block_size_;
    if (bytes.ok() && etag == base_etag_ && !modified_.contains(index) && offset < base_valid_ &&
        static_cast<int64_t>((*bytes)->size()) == std::min(block_size_, base_valid_ - offset)) {
      Block& block = blocks_[index];
      if (block.dirty == nullptr && block.resident.expired()) {
        std::shared_ptr<const std::string> kept = std::move(*bytes);
        block.resident = kept;
        services_.pool->KeepClean(std::move(kept));
      }
    }
  }
  prefetch_done_.notify_all();
}

Result<int64_t> StreamFile::Write(int64_t offset, std::string_view data, bool append) {
  std::unique_lock lock(mu_);
  if (append) offset = size_;
  const int64_t length = static_cast<int64_t>(data.size());
  if (length == 0) return 0;
  const int64_t end = offset + length;
  if (end > size_) RETURN_IF_ERROR(PrepareGrowLocked(lock, end));
  for (int64_t index = offset / block_size_; index <= (end - 1) / block_size_; ++index) {
    const int64_t start = index * block_size_;
    const int64_t from = std::max(offset, start) - start;
    const int64_t to = std::min(end, start + block_size_) - start;
    const bool overwrites_all = from == 0 && to >= BlockLength(index);
    ASSIGN_OR_RETURN(std::string * buffer, WritableBlockLocked(lock, index, overwrites_all));
    if (static_cast<int64_t>(buffer->size()) < to) buffer->resize(to);
    std::memcpy(buffer->data() + from, data.data() + (start + from - offset), to - from);
    // Now, not after the loop: a block sealed under memory pressure further on must be
    // staged in this generation.
    staged_->Changed(start + from, to - from);
  }
  size_ = std::max(size_, end);
  dirty_ = true;
  // A sequential writer has finished every full block it wrote past: stage them now.
  if (offset == 0 || offset == last_write_end_) {
    for (int64_t index = offset / block_size_; index < end / block_size_; ++index) {
      auto it = blocks_.find(index);
      if (it != blocks_.end() && it->second.dirty != nullptr &&
          static_cast<int64_t>(it->second.dirty->size()) == block_size_) {
        SealLocked(index);
      }
    }
  }
  last_write_end_ = end;
  return length;
}

Status StreamFile::Truncate(int64_t size) {
  std::unique_lock lock(mu_);
  if (size < 0) return absl::InvalidArgumentError("negative size");
  if (size == size_) return OkStatus();
  if (size > size_) {
    RETURN_IF_ERROR(PrepareGrowLocked(lock, size));
  } else {
    const int64_t count = (size + block_size_ - 1) / block_size_;
    if (size % block_size_ != 0) {
      ASSIGN_OR_RETURN(std::string * last, WritableBlockLocked(lock, size / block_size_, false));
      last->resize(size % block_size_);
    }
    blocks_.erase(blocks_.lower_bound(count), blocks_.end());
    modified_.erase(modified_.lower_bound(count), modified_.end());
    base_valid_ = std::min(base_valid_, size);
  }
  size_ = size;
  dirty_ = true;
  staged_->Resized(size);
  return OkStatus();
}

void StreamFile::EditMetadata(const std::function<void(Metadata&)>& edit) {
  std::lock_guard lock(mu_);
  edit(metadata_);
  dirty_ = true;
}

Status StreamFile::Commit() {
  std::unique_lock lock(mu_);
  return CommitLocked(lock);
}

Status StreamFile::CommitLocked(std::unique_lock<std::mutex>& /*lock*/) {
  if (!dirty_) return OkStatus();
  if (unlinked_) {
    // Nothing goes to the store any more: the written bytes live only in memory, so an
    // fsync may report success only while all of them can still be read back.
    for (int64_t index : modified_) {
      auto it = blocks_.find(index);
      if (it == blocks_.end() || (it->second.dirty == nullptr && it->second.resident.expired())) {
        return absl::DataLossError(
            fmt::format("block {} of the removed file '{}' is no longer held and cannot be kept",
                        index, name_));
      }
    }
    return OkStatus();
  }
  const Condition condition =
      base_etag_.empty() ? Condition::IfNotExists() : Condition::IfMatch(base_etag_);
  auto read = [&](int64_t index, int64_t offset,
                  int64_t length) -> Result<std::shared_ptr<const std::string>> {
    if (auto it = blocks_.find(index); it != blocks_.end()) {
      std::shared_ptr<const std::string> bytes = it->second.dirty;
      if (bytes == nullptr) bytes = it->second.resident.lock();
      if (bytes != nullptr && static_cast<int64_t>(bytes->size()) == length) return bytes;
    }
    if (modified_.contains(index)) {
      return absl::DataLossError(
          fmt::format("block {} of '{}' left memory before it was staged", index, name_));
    }
    if (offset >= base_valid_) {
      ASSIGN_OR_RETURN(std::shared_ptr<std::string> zeros, AllocateLocked(index));
      zeros->assign(length, '\0');
      return zeros;
    }
    // Unchanged from the base: copied through memory (the store cannot reuse its blocks).
    ASSIGN_OR_RETURN(std::shared_ptr<std::string> bytes,
                     DownloadBlock(index, std::min(length, base_valid_ - offset)));
    bytes->resize(length);
    return bytes;
  };
  Result<std::string> etag;
  if (size_ <= block_size_ && !staged_->IsStaged(0, size_)) {
    // One block at most: a single Put is one request instead of two.
    std::string data;
    if (size_ > 0) {
      ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes, read(0, 0, size_));
      data = *bytes;
    }
    etag = services_.store->Put(name_, data, metadata_, condition);
  } else {
    for (auto& [index, block] : blocks_) {
      if (block.dirty != nullptr) SealLocked(index);
    }
    Result<std::vector<std::string>> ids = staged_->StageAll(size_, read);
    etag = ids.ok() ? services_.store->CommitBlocks(name_, *ids, metadata_, condition)
                    : Result<std::string>(ids.status());
  }
  if (!etag.ok()) {
    spdlog::error("uploading '{}' failed{}: {}", name_,
                  etag.status().code() == absl::StatusCode::kFailedPrecondition
                      ? " (it was changed or created elsewhere since it was opened)"
                      : "",
                  etag.status().message());
    return etag.status();
  }
  base_etag_ = *etag;
  base_valid_ = size_;
  modified_.clear();
  staged_->Clear();
  dirty_ = false;
  return OkStatus();
}

Result<std::string> StreamFile::ChangeMetadata(const std::function<void(Metadata&)>& edit) {
  std::lock_guard lock(mu_);
  if (dirty_ || unlinked_ || base_etag_.empty()) {
    edit(metadata_);
    dirty_ = dirty_ || !unlinked_;
    return std::string();
  }
  Metadata changed = metadata_;
  edit(changed);
  ASSIGN_OR_RETURN(std::string etag,
                   services_.store->SetMetadata(name_, changed, Condition::IfMatch(base_etag_)));
  // Same bytes, new version: blocks read from the old one are still the file's.
  base_etag_ = etag;
  metadata_ = std::move(changed);
  return etag;
}

void StreamFile::Renamed(const std::string& to, const std::string& etag) {
  std::lock_guard lock(mu_);
  name_ = to;
  base_etag_ = etag;
  staged_->Rename(to);
}

void StreamFile::MarkUnlinked() {
  std::lock_guard lock(mu_);
  unlinked_ = true;
}

int64_t StreamFile::size() {
  std::lock_guard lock(mu_);
  return size_;
}

std::string StreamFile::etag() {
  std::lock_guard lock(mu_);
  return base_etag_;
}

Metadata StreamFile::metadata() {
  std::lock_guard lock(mu_);
  return metadata_;
}

bool StreamFile::dirty() {
  std::lock_guard lock(mu_);
  return dirty_;
}

}  // namespace meridian::storage::fs
