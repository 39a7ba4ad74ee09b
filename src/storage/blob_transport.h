// BlobTransport: sends one HTTP request for the Azure Blob client. It is the seam where
// tests inject faults (see blob_fault_injector.h): the client signs, retries and
// interprets; the transport only moves bytes.
#pragma once

#include <memory>

#include "base/status.h"
#include "net/http_client.h"
#include "net/http_types.h"

namespace meridian::storage {

class BlobTransport {
 public:
  virtual ~BlobTransport() = default;

  // Sends `request` once. Any HTTP status is a successful Result; a connection failure is
  // kUnavailable and a timeout kDeadlineExceeded (net::HttpClient's contract).
  // Thread-safe: called from many threads at once.
  virtual Result<net::HttpResponse> Send(const net::HttpClientRequest& request) = 0;
};

// The real transport: a pool of net::HttpClient (one per request in flight, since a client
// is single-threaded), keeping at most `max_idle_clients` with their open connections.
std::unique_ptr<BlobTransport> NewHttpBlobTransport(net::HttpClientOptions options,
                                                    int max_idle_clients = 64);

}  // namespace meridian::storage
