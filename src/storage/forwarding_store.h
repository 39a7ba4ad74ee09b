// ForwardingStore: an ObjectStore that passes every call to another one, so that a
// decorator (a test store that counts, records or holds calls) overrides only the calls it
// watches. ReadRange is left to ObjectStore's default, which reads through GetRange, so a
// decorator sees every read there. `inner` is not owned and must outlive this object.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "storage/object_store.h"

namespace meridian::storage {

class ForwardingStore : public ObjectStore {
 public:
  explicit ForwardingStore(ObjectStore* inner) : inner_(inner) {}

  Result<ObjectInfo> Head(const std::string& name) override { return inner_->Head(name); }
  Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                               const Condition& condition) override {
    return inner_->GetRange(name, offset, length, condition);
  }
  Result<std::string> Put(const std::string& name, std::string_view data, const Metadata& metadata,
                          const Condition& condition) override {
    return inner_->Put(name, data, metadata, condition);
  }
  Status StageBlock(const std::string& name, const std::string& block_id,
                    std::string_view data) override {
    return inner_->StageBlock(name, block_id, data);
  }
  Result<std::string> CommitBlocks(const std::string& name,
                                   const std::vector<std::string>& block_ids,
                                   const Metadata& metadata, const Condition& condition) override {
    return inner_->CommitBlocks(name, block_ids, metadata, condition);
  }
  Result<ListPage> List(const ListOptions& options) override { return inner_->List(options); }
  Result<std::string> SetMetadata(const std::string& name, const Metadata& metadata,
                                  const Condition& condition) override {
    return inner_->SetMetadata(name, metadata, condition);
  }
  Status Delete(const std::string& name, const Condition& condition) override {
    return inner_->Delete(name, condition);
  }
  Result<std::string> Copy(const std::string& source, const std::string& destination) override {
    return inner_->Copy(source, destination);
  }

 protected:
  ObjectStore* inner() const { return inner_; }

 private:
  ObjectStore* const inner_;
};

}  // namespace meridian::storage
