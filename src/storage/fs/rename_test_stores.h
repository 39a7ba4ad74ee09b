// Test support for directory renames: a store that records what the filesystem asked of it,
// and one that stops answering after a number of changes, as a mount process that died
// there would. Test only.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "storage/forwarding_store.h"

namespace meridian::storage::fs {

// Counts reads of data, copies and writes, and records the names written.
class RequestLogStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                               const Condition& condition) override {
    ++data_reads;
    return inner()->GetRange(name, offset, length, condition);
  }
  Result<std::string> Put(const std::string& name, std::string_view data, const Metadata& metadata,
                          const Condition& condition) override {
    {
      std::lock_guard lock(mu_);
      put_names_.push_back(name);
    }
    return inner()->Put(name, data, metadata, condition);
  }
  Status StageBlock(const std::string& name, const std::string& block_id,
                    std::string_view data) override {
    ++staged_blocks;
    return inner()->StageBlock(name, block_id, data);
  }
  Result<std::string> Copy(const std::string& source, const std::string& destination) override {
    ++copies;
    return inner()->Copy(source, destination);
  }

  std::vector<std::string> put_names() {
    std::lock_guard lock(mu_);
    return put_names_;
  }
  void Reset() {
    std::lock_guard lock(mu_);
    put_names_.clear();
    data_reads = staged_blocks = copies = 0;
  }

  std::atomic<int> data_reads{0}, staged_blocks{0}, copies{0};

 private:
  std::mutex mu_;
  std::vector<std::string> put_names_;  // guarded by mu_
};

// Forwards until `changes_allowed` Copy and Delete calls have been made, then fails every
// call (kUnavailable): the process stopped there.
class StopAfterChangesStore final : public ForwardingStore {
 public:
  StopAfterChangesStore(ObjectStore* inner, int changes_allowed)
      : ForwardingStore(inner), left_(changes_allowed) {}

  Result<ObjectInfo> Head(const std::string& name) override {
    RETURN_IF_ERROR(Alive());
    return inner()->Head(name);
  }
  Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                               const Condition& condition) override {
    RETURN_IF_ERROR(Alive());
    return inner()->GetRange(name, offset, length, condition);
  }
  Result<std::string> Put(const std::string& name, std::string_view data, const Metadata& metadata,
                          const Condition& condition) override {
    RETURN_IF_ERROR(Alive());
    return inner()->Put(name, data, metadata, condition);
  }
  Result<ListPage> List(const ListOptions& options) override {
    RETURN_IF_ERROR(Alive());
    return inner()->List(options);
  }
  Status Delete(const std::string& name, const Condition& condition) override {
    RETURN_IF_ERROR(Change());
    return inner()->Delete(name, condition);
  }
  Result<std::string> Copy(const std::string& source, const std::string& destination) override {
    RETURN_IF_ERROR(Change());
    return inner()->Copy(source, destination);
  }

  bool stopped() const { return left_.load() < 0; }

 private:
  Status Alive() {
    if (left_.load() < 0) return absl::UnavailableError("the process has stopped");
    return OkStatus();
  }
  Status Change() {
    if (left_.fetch_sub(1) <= 0) {
      left_ = -1;
      return absl::UnavailableError("the process has stopped");
    }
    return OkStatus();
  }

  std::atomic<int> left_;
};

}  // namespace meridian::storage::fs
