#include <utility>

#include "state/state_store.h"

namespace meridian::state {

void WriteBatch::Put(std::string kind, std::string id, std::string body, int64_t expected_version) {
  ops_.push_back(
      Op{Op::Type::kPut, std::move(kind), std::move(id), std::move(body), expected_version});
}

void WriteBatch::Delete(std::string kind, std::string id, int64_t expected_version) {
  ops_.push_back(
      Op{Op::Type::kDelete, std::move(kind), std::move(id), std::string(), expected_version});
}

void WriteBatch::AppendLog(std::string stream, int64_t offset, std::string data) {
  ops_.push_back(
      Op{Op::Type::kAppendLog, std::move(stream), std::string(), std::move(data), offset});
}

}  // namespace meridian::state
