// AzureBlobStore: the ObjectStore contract (object_store.h) over the Azure Blob REST API,
// for one container, optionally rooted under a name prefix.
//
// Protocol: x-ms-version kAzureBlobApiVersion ("2021-08-06", which Azure and Azurite 3.35
// both accept). Small objects go up with Put Blob, large ones with Put Block + Put Block
// List (UploadObject in object_store.h runs the blocks in parallel); List Blobs pages with
// the service's markers, up to 5,000 entries a page; responses are parsed with pugixml and
// every field is checked (azure_xml.h).
//
// Authorization, per request, from the config (azure_config.h): Shared Key when an account
// key is set; else the SAS token appended to every URL; else a bearer token for scope
// kAzureStorageScope from `options.token_source` (workload identity). Bearer tokens are
// never sent over plain http except to a loopback address.
//
// Retries: transport failures (connection refused/reset: kUnavailable; timeouts:
// kDeadlineExceeded) and HTTP 408, 429 and 5xx are retried up to retry.max_attempts in all,
// waiting exponential backoff with jitter, or what Retry-After says when the service sends
// it (capped at retry.max_retry_after_ms). Other 4xx are final at once. Retried writes are
// safe: each is idempotent, except that a retried if_none_match write whose first attempt
// did land reports kFailedPrecondition. When the attempts run out the result is
// kUnavailable (kDeadlineExceeded if the last attempt timed out), naming the attempts.
//
// Thread safety: every method may be called from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "base/clock.h"
#include "net/http_client.h"
#include "storage/azure_config.h"
#include "storage/blob_transport.h"
#include "storage/object_store.h"

namespace meridian::storage {

inline constexpr char kAzureBlobApiVersion[] = "2021-08-06";
inline constexpr char kAzureStorageScope[] = "https://storage.azure.com/.default";

// Returns a bearer access token for `scope`. Must be thread-safe; it is asked before every
// request, so it should cache and refresh tokens itself.
using TokenSource = std::function<Result<std::string>(const std::string& scope)>;

struct RetryPolicy {
  int max_attempts = 6;  // in all, the first included; 1 disables retries
  int64_t initial_backoff_ms = 400;
  int64_t max_backoff_ms = 30'000;
  int64_t max_retry_after_ms = 120'000;
};

struct AzureBlobOptions {
  std::shared_ptr<BlobTransport> transport;  // nullptr: NewHttpBlobTransport(http)
  net::HttpClientOptions http;
  RetryPolicy retry;
  std::function<void(int64_t ms)> sleep;  // nullptr: sleep for real
  const base::Clock* clock = nullptr;     // not owned; nullptr: the system clock
  uint64_t jitter_seed = 0;               // 0: seeded from the OS
  TokenSource token_source;               // used when the config has no key and no SAS
  int64_t copy_timeout_ms = 600'000;      // how long Copy waits for a pending server copy
};

class AzureBlobStore final : public ObjectStore {
 public:
  // kInvalidArgument for an incomplete config; kUnauthenticated when there is neither a
  // key, a SAS token nor a token source.
  static Result<std::unique_ptr<AzureBlobStore>> Create(AzureBlobConfig config,
                                                        AzureBlobOptions options);
  // ResolveAzureBlobConfig(url, env), then Create.
  static Result<std::unique_ptr<AzureBlobStore>> Open(std::string_view url, const EnvLookup& env,
                                                      AzureBlobOptions options);

  // Creates the container; OK when it already exists.
  Status CreateContainer();
  // Deletes the container and everything in it.
  Status DeleteContainer();

  const AzureBlobConfig& config() const { return config_; }

  Result<ObjectInfo> Head(const std::string& name) override;
  Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                               const Condition& condition) override;
  Result<int64_t> ReadRange(const std::string& name, int64_t offset, int64_t length,
                            const Condition& condition, const RangeSink& sink) override;
  Result<std::string> Put(const std::string& name, std::string_view data, const Metadata& metadata,
                          const Condition& condition) override;
  Status StageBlock(const std::string& name, const std::string& block_id,
                    std::string_view data) override;
  Result<std::string> CommitBlocks(const std::string& name,
                                   const std::vector<std::string>& block_ids,
                                   const Metadata& metadata, const Condition& condition) override;
  Result<ListPage> List(const ListOptions& options) override;
  Result<std::string> SetMetadata(const std::string& name, const Metadata& metadata,
                                  const Condition& condition) override;
  Status Delete(const std::string& name, const Condition& condition) override;
  Result<std::string> Copy(const std::string& source, const std::string& destination) override;

 private:
  struct Request;

  AzureBlobStore(AzureBlobConfig config, AzureBlobOptions options);

  // Signs and sends `request`, retrying as described above. Returns the final response,
  // whatever its status; an error only when no response came.
  Result<net::HttpResponse> Execute(const Request& request);
  Result<net::HttpClientRequest> BuildHttpRequest(const Request& request);
  int64_t BackoffMs(int attempt);
  std::string BlobPath(const std::string& name) const;
  std::string BlobUrl(const std::string& name) const;
  Result<std::string> WaitForCopy(const std::string& destination);

  // Constant after construction.
  const AzureBlobConfig config_;
  const AzureBlobOptions options_;
  const std::string endpoint_path_;  // the URL path of the endpoint ("" or "/account")

  std::mutex jitter_mu_;
  std::mt19937_64 jitter_;  // guarded by jitter_mu_
};

}  // namespace meridian::storage
