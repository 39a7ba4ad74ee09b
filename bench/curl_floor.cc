#include "curl_floor.h"

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "bench_util.h"
#include "fmt/format.h"
#include "storage/azure_blob_store.h"
#include "storage/azure_shared_key.h"

namespace meridian::bench {
namespace {

// The path of the endpoint URL ("/devstoreaccount1" for Azurite's path style), which the
// service signs with the rest of the path.
std::string EndpointPath(const std::string& endpoint) {
  const size_t scheme = endpoint.find("://");
  const size_t slash = endpoint.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? "" : endpoint.substr(slash);
}

// One ranged Get Blob with curl; false (and a line on stderr) when it failed.
bool CurlRange(const CurlRead& read, int64_t offset, int64_t length) {
  const std::string path = fmt::format("/{}/{}", read.container, read.blob);
  const net::HeaderList headers = {
      {"x-ms-date", storage::FormatHttpDate(base::SystemClock::Get()->NowUnixMs())},
      {"x-ms-range", fmt::format("bytes={}-{}", offset, offset + length - 1)},
      {"x-ms-version", storage::kAzureBlobApiVersion},
  };
  const std::string to_sign = storage::SharedKeyStringToSign(
      "GET", read.account, EndpointPath(read.endpoint) + path, {}, headers);
  Result<std::string> authorization =
      storage::SharedKeyAuthorization(read.account, read.account_key, to_sign);
  if (!authorization.ok()) {
    std::fprintf(stderr, "curl floor: %s\n", authorization.status().ToString().c_str());
    return false;
  }
  std::string command = "curl -sSf -o /dev/null";
  for (const auto& [name, value] : headers) command += fmt::format(" -H '{}: {}'", name, value);
  command += fmt::format(" -H 'Authorization: {}' '{}{}'", *authorization, read.endpoint, path);
  if (Shell(command) != 0) {
    std::fprintf(stderr, "curl floor: %s failed\n", command.c_str());
    return false;
  }
  return true;
}

}  // namespace

std::optional<double> CurlReadMibPerSecond(const CurlRead& read) {
  const int64_t ranges = (read.size_bytes + read.range_bytes - 1) / read.range_bytes;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  const int64_t start_us = NowUs();
  std::vector<std::thread> workers;
  for (int i = 0; i < read.parallel; ++i) {
    workers.emplace_back([&] {
      for (int64_t range = next++; range < ranges && !failed; range = next++) {
        const int64_t offset = range * read.range_bytes;
        if (!CurlRange(read, offset, std::min(read.range_bytes, read.size_bytes - offset))) {
          failed = true;
        }
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  if (failed) return std::nullopt;
  const double seconds = static_cast<double>(NowUs() - start_us) / 1e6;
  return static_cast<double>(read.size_bytes) / static_cast<double>(int64_t{1} << 20) / seconds;
}

}  // namespace meridian::bench
