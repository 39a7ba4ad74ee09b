// FaultInjectingTransport: a BlobTransport for tests that answers chosen requests with
// scripted HTTP responses or transport errors (503, Retry-After, timeouts, malformed XML)
// and passes the rest to a real transport, so the Azure client's retry and parsing paths
// can be driven deterministically. Test support; not linked into the product.
//
// Thread-safe. Faults are consumed in the order they were injected, each by the first
// request whose "METHOD url" contains its `match` text.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/blob_transport.h"

namespace meridian::storage {

class FaultInjectingTransport final : public BlobTransport {
 public:
  // `inner` receives every request no fault claims; nullptr answers those with
  // kFailedPrecondition ("unexpected request"), for fully scripted tests.
  explicit FaultInjectingTransport(std::shared_ptr<BlobTransport> inner = nullptr);

  // The next `count` matching requests get this response instead of reaching `inner`.
  void InjectResponse(int status, net::HeaderList headers = {}, std::string body = "",
                      int count = 1, std::string match = "");
  // The next `count` matching requests fail with `error` (e.g. kDeadlineExceeded).
  void InjectError(Status error, int count = 1, std::string match = "");
  // The next `count` matching requests reach `inner`, but the response body stops after
  // `bytes` bytes and the request fails with kUnavailable, as when a connection drops in the
  // middle of a download (a streaming receiver has seen those bytes already).
  void InjectCutBody(int64_t bytes, int count = 1, std::string match = "");

  Result<net::HttpResponse> Send(const net::HttpClientRequest& request) override;

  // Every request seen, injected or passed on, in order (bodies copied, sinks dropped).
  std::vector<net::HttpClientRequest> requests() const;
  int request_count() const;
  int pending_faults() const;

 private:
  struct Fault {
    std::string match;
    int remaining = 1;
    Status error;  // not OK: fail with it; OK: answer `response`
    net::HttpResponse response;
    int64_t cut_after_bytes = -1;  // >= 0: pass on, cut the body there, fail
  };

  Result<net::HttpResponse> SendCut(const net::HttpClientRequest& request, int64_t bytes);

  const std::shared_ptr<BlobTransport> inner_;
  mutable std::mutex mu_;
  std::deque<Fault> faults_;                      // guarded by mu_
  std::vector<net::HttpClientRequest> requests_;  // guarded by mu_
};

}  // namespace meridian::storage
