// Fuzzes the bodies the control plane parses from an operator (api/operator_protocol.h): the
// same bytes are offered as a heartbeat and as a workload token request, and, split at '&'
// and '=', as a log chunk's query. Whatever one accepts must come back unchanged through
// ToJson (or ToQuery).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "api/operator_protocol.h"
#include "fuzz_check.h"

namespace {

template <typename T, typename FromJson>
void CheckOne(std::string_view text, FromJson from_json, const char* what) {
  meridian::Result<T> value = from_json(text);
  if (!value.ok()) {
    FUZZ_CHECK(value.status().code() == absl::StatusCode::kInvalidArgument, what);
    return;
  }
  meridian::Result<T> again = from_json(meridian::api::ToJson(*value));
  FUZZ_CHECK(again.ok(), what);
  FUZZ_CHECK(*again == *value, what);
}

void CheckQuery(std::string_view text) {
  std::map<std::string, std::string> query;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('&', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view pair = text.substr(start, end - start);
    size_t equals = pair.find('=');
    query[std::string(pair.substr(0, equals))] =
        equals == std::string_view::npos ? "" : std::string(pair.substr(equals + 1));
    start = end + 1;
  }
  meridian::Result<meridian::api::LogChunkRef> chunk = meridian::api::LogChunkRefFromQuery(query);
  if (!chunk.ok()) {
    FUZZ_CHECK(chunk.status().code() == absl::StatusCode::kInvalidArgument, "log chunk query");
    return;
  }
  meridian::Result<meridian::api::LogChunkRef> again =
      meridian::api::LogChunkRefFromQuery(meridian::api::ToQuery(*chunk));
  FUZZ_CHECK(again.ok() && *again == *chunk, "log chunk query");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meridian::api;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckOne<OperatorHeartbeat>(text, OperatorHeartbeatFromJson, "heartbeat");
  CheckOne<WorkloadTokenRequest>(text, WorkloadTokenRequestFromJson, "workload token request");
  CheckQuery(text);
  return 0;
}
