// Fuzzes the parsers of Azure Blob service bodies (a List Blobs response comes from the
// network, so it is untrusted): the listing parser with and without a root prefix, and the
// error body parser. A listing that is accepted must keep the documented form of its fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "storage/azure_xml.h"

namespace {

void CheckListing(std::string_view xml, std::string_view root_prefix) {
  using namespace meridian::storage;
  meridian::Result<ListPage> page = ParseListBlobsXml(xml, root_prefix);
  if (!page.ok()) {
    FUZZ_CHECK(page.status().code() == absl::StatusCode::kInternal,
               "a malformed listing is kInternal");
    return;
  }
  for (const ObjectInfo& object : page->objects) {
    FUZZ_CHECK(object.etag.size() >= 2 && object.etag.front() == '"' && object.etag.back() == '"',
               "ETags are returned quoted");
    FUZZ_CHECK(object.size >= 0, "sizes are not negative");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  CheckListing(xml, "");
  CheckListing(xml, "root/");
  meridian::storage::ParseErrorXml(xml);
  return 0;
}
