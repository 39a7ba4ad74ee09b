// Shared Key authorization for the Blob service ("Authorize with Shared Key"), and the
// RFC 1123 dates the service speaks. Pure functions: no I/O, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "net/http_types.h"

namespace meridian::storage {

// Query parameters as (name, decoded value), in the order they go on the URL.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// The string the Blob service signs (service version 2015-02-21 and later):
//   VERB, Content-Encoding, Content-Language, Content-Length (empty when 0), Content-MD5,
//   Content-Type, Date, If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since,
//   Range, one per line; then the x-ms-* headers lowercased and sorted as "name:value\n";
//   then "/<account><encoded path>" and "\n<name>:<value>" per query parameter, names
//   lowercased and sorted, values of a repeated name sorted and joined by ','.
// `headers` have lowercase names; `encoded_path` is the URL path exactly as sent.
std::string SharedKeyStringToSign(std::string_view method, std::string_view account,
                                  std::string_view encoded_path, const QueryParams& query,
                                  const net::HeaderList& headers);

// "SharedKey <account>:<base64 HMAC-SHA256 of the string to sign>". kInvalidArgument when
// the key is not base64.
Result<std::string> SharedKeyAuthorization(std::string_view account, std::string_view key_base64,
                                           std::string_view string_to_sign);

// "Tue, 14 Nov 2023 22:13:20 GMT".
std::string FormatHttpDate(int64_t unix_ms);
// Parses that form; kInvalidArgument otherwise.
Result<int64_t> ParseHttpDate(std::string_view text);

}  // namespace meridian::storage
