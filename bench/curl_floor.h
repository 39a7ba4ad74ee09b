// The read floor a blob server allows: one blob read with `curl` in ranges, some in
// parallel, each request signed with Shared Key by the same code the Azure client uses.
// What a mount's cold read is compared with (docs/storage.md, Benchmark).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace meridian::bench {

struct CurlRead {
  std::string endpoint;  // http://127.0.0.1:PORT/devstoreaccount1 (path style)
  std::string account;
  std::string account_key;  // base64
  std::string container;
  std::string blob;  // plain name; percent-encoded here
  int64_t size_bytes = 0;
  int64_t range_bytes = int64_t{16} << 20;
  int parallel = 1;  // curl processes at once
};

// MiB/s of reading the whole blob so, or nullopt (and a line on stderr) when a curl failed.
std::optional<double> CurlReadMibPerSecond(const CurlRead& read);

}  // namespace meridian::bench
