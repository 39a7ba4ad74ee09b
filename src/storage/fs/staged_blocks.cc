#include "storage/fs/staged_blocks.h"

#include <algorithm>

#include "base/ids.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::storage::fs {

std::shared_ptr<StagedBlocks> StagedBlocks::Create(ObjectStore* store, BoundedExecutor* uploads,
                                                   std::string name, int64_t block_size_bytes) {
  return std::shared_ptr<StagedBlocks>(
      new StagedBlocks(store, uploads, std::move(name), block_size_bytes));
}

StagedBlocks::StagedBlocks(ObjectStore* store, BoundedExecutor* uploads, std::string name,
                           int64_t block_size_bytes)
    : store_(store),
      uploads_(uploads),
      block_size_(std::max<int64_t>(block_size_bytes, 1)),
      name_(std::move(name)) {}

StagedBlocks::Block& StagedBlocks::BlockLocked(int64_t index) { return blocks_[index]; }

bool StagedBlocks::CurrentLocked(int64_t index, int64_t length) {
  auto it = blocks_.find(index);
  if (it == blocks_.end()) return false;
  const Block& block = it->second;
  return !block.id.empty() && block.staged_generation == block.generation &&
         block.staged_length == length;
}

void StagedBlocks::Rename(std::string name) {
  std::lock_guard lock(mu_);
  name_ = std::move(name);
  for (auto& [index, block] : blocks_) {
    ++block.generation;  // uploads in flight went to the old name: never reuse them
    block.id.clear();
    block.in_flight = false;
    block.failed_data = nullptr;
  }
}

void StagedBlocks::Changed(int64_t offset, int64_t length) {
  if (length <= 0) return;
  std::lock_guard lock(mu_);
  for (int64_t index = offset / block_size_; index <= (offset + length - 1) / block_size_;
       ++index) {
    Block& block = BlockLocked(index);
    ++block.generation;
    block.in_flight = false;
    block.failed_data = nullptr;
  }
}

void StagedBlocks::Resized(int64_t size) {
  std::lock_guard lock(mu_);
  const int64_t count = (size + block_size_ - 1) / block_size_;
  blocks_.erase(blocks_.lower_bound(count), blocks_.end());
  if (size % block_size_ != 0) {
    Block& last = BlockLocked(size / block_size_);
    ++last.generation;
    last.in_flight = false;
    last.failed_data = nullptr;
  }
}

void StagedBlocks::StageInBackground(int64_t index, std::shared_ptr<const std::string> data) {
  std::unique_lock lock(mu_);
  const int64_t length = static_cast<int64_t>(data->size());
  Block& block = BlockLocked(index);
  if (block.in_flight || CurrentLocked(index, length)) return;
  SubmitLocked(lock, index, std::move(data));
}

void StagedBlocks::SubmitLocked(std::unique_lock<std::mutex>& lock, int64_t index,
                                std::shared_ptr<const std::string> data) {
  Block& block = BlockLocked(index);
  block.in_flight = true;
  block.failed_data = nullptr;
  const uint64_t generation = block.generation;
  const std::string name = name_;
  ++in_flight_;
  lock.unlock();
  // Each staging gets a fresh id: an older upload finishing late cannot replace it.
  std::string id = BlockIdFor(base::NewId("up"), index);
  std::shared_ptr<StagedBlocks> self = shared_from_this();
  uploads_->Submit([self, index, generation, name, id = std::move(id), data = std::move(data)] {
    Status status = self->store_->StageBlock(name, id, *data);
    self->Finished(index, generation, id, static_cast<int64_t>(data->size()), status, data);
  });
  lock.lock();
}

void StagedBlocks::Finished(int64_t index, uint64_t generation, const std::string& id,
                            int64_t length, const Status& status,
                            std::shared_ptr<const std::string> data) {
  std::lock_guard lock(mu_);
  --in_flight_;
  auto it = blocks_.find(index);
  if (it != blocks_.end() && it->second.generation == generation) {
    Block& block = it->second;
    block.in_flight = false;
    if (status.ok()) {
      block.id = id;
      block.staged_generation = generation;
      block.staged_length = length;
    } else {
      block.failed_data = std::move(data);  // the commit retries with these bytes
    }
  }
  if (!status.ok()) {
    spdlog::warn("staging block {} of '{}' failed (the commit retries it): {}", index, name_,
                 status.message());
    last_error_ = status;
  }
  idle_.notify_all();
}

void StagedBlocks::WaitIdle() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return in_flight_ == 0; });
}

Result<std::vector<std::string>> StagedBlocks::StageAll(int64_t size, const BlockReader& read) {
  const int64_t count = (size + block_size_ - 1) / block_size_;
  if (count > kMaxBlocksPerObject) {
    return absl::ResourceExhaustedError(
        fmt::format("'{}' would need {} blocks of {} bytes; a blob may have {}", name_, count,
                    block_size_, kMaxBlocksPerObject));
  }
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return in_flight_ == 0; });
  last_error_ = OkStatus();
  for (int64_t index = 0; index < count; ++index) {
    const int64_t offset = index * block_size_;
    const int64_t length = std::min(block_size_, size - offset);
    if (CurrentLocked(index, length)) continue;
    std::shared_ptr<const std::string> data = BlockLocked(index).failed_data;
    if (data == nullptr || static_cast<int64_t>(data->size()) != length) {
      lock.unlock();
      Result<std::shared_ptr<const std::string>> bytes = read(index, offset, length);
      lock.lock();
      if (!bytes.ok()) {
        idle_.wait(lock, [&] { return in_flight_ == 0; });
        return bytes.status();
      }
      data = std::move(*bytes);
      if (static_cast<int64_t>(data->size()) != length) {
        idle_.wait(lock, [&] { return in_flight_ == 0; });
        return absl::DataLossError(fmt::format("block {} of '{}' has {} bytes; expected {}", index,
                                               name_, data->size(), length));
      }
    }
    SubmitLocked(lock, index, std::move(data));
  }
  idle_.wait(lock, [&] { return in_flight_ == 0; });
  std::vector<std::string> ids;
  ids.reserve(count);
  for (int64_t index = 0; index < count; ++index) {
    const int64_t length = std::min(block_size_, size - index * block_size_);
    if (!CurrentLocked(index, length)) {
      if (!last_error_.ok()) return last_error_;
      return absl::UnavailableError(
          fmt::format("block {} of '{}' changed while it was being committed", index, name_));
    }
    ids.push_back(blocks_.at(index).id);
  }
  return ids;
}

void StagedBlocks::Clear() {
  std::lock_guard lock(mu_);
  for (auto& [index, block] : blocks_) {
    ++block.generation;
    block.id.clear();
    block.in_flight = false;
    block.failed_data = nullptr;
  }
}

bool StagedBlocks::IsStaged(int64_t index, int64_t length) {
  std::lock_guard lock(mu_);
  return CurrentLocked(index, length);
}

int64_t StagedBlocks::staged_count() {
  std::lock_guard lock(mu_);
  int64_t count = 0;
  for (const auto& [index, block] : blocks_) {
    if (!block.id.empty() && block.staged_generation == block.generation) ++count;
  }
  return count;
}

}  // namespace meridian::storage::fs
