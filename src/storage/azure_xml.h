// The XML bodies of the Blob service: List Blobs responses, Put Block List requests and
// error responses. Parsed with pugixml; every field is checked, so a malformed or
// truncated response is a kInternal error naming the field, never a crash or a silently
// wrong listing. Pure functions: thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "storage/object_store.h"

namespace meridian::storage {

// Parses a List Blobs response. Names are returned with `root_prefix` (the store's own
// prefix, "" or ending in '/') removed; a name outside it is an error. ETags are returned
// quoted, the form the service uses in headers.
Result<ListPage> ParseListBlobsXml(std::string_view xml, std::string_view root_prefix);

// <?xml ...?><BlockList><Latest>id</Latest>...</BlockList>
std::string BuildBlockListXml(const std::vector<std::string>& block_ids);

struct AzureError {
  std::string code;     // e.g. "BlobNotFound"; "" when the body says nothing usable
  std::string message;  // first line of the service's message
};

// Best effort: an error body that is not the service's XML gives empty fields.
AzureError ParseErrorXml(std::string_view xml);

// The service's ETag in the quoted header form: 0x8D... -> "0x8D...".
std::string QuoteEtag(std::string_view etag);

}  // namespace meridian::storage
