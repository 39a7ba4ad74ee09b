// HttpClient: a blocking HTTP(S) client over libcurl. curl stays inside http_client.cc.
//
// One HttpClient keeps its connections open and reuses them; it is NOT thread-safe: use
// one per thread (they are cheap). TLS peers are verified against `ca_file` when given,
// else against the system trust store.
//
// Errors: a connection that cannot be made (refused, DNS, reset) is kUnavailable; a
// timeout is kDeadlineExceeded; a certificate the CA does not vouch for is
// kFailedPrecondition naming the CA file. Any HTTP status, 4xx and 5xx included, is a
// successful Result carrying that status: interpreting it is the caller's job. A response
// body over `max_response_bytes` is kResourceExhausted (a body given to a `body_sink` has no
// limit: it is not kept). The client never retries.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "net/http_types.h"

namespace meridian::net {

struct HttpClientOptions {
  std::string ca_file;  // PEM CA bundle to trust; empty: system store
  int connect_timeout_ms = 5'000;
  int timeout_ms = 60'000;  // whole request; a request may override it
  int64_t max_response_bytes = int64_t{512} << 20;
};

struct HttpClientRequest {
  std::string method = "GET";
  std::string url;
  HeaderList headers;
  std::string body;
  int timeout_ms = 0;  // 0: the client's default
  // Sent instead of `body` when set, without a copy: it must stay valid until Send returns.
  std::optional<std::string_view> body_view;
  // When set, the body of a 2xx response is handed to it piece by piece as it arrives, with
  // the response's status, instead of being kept in HttpResponse::body (which stays empty),
  // so a large download needs no buffer of its size. Returning false stops the transfer:
  // Send then fails with kAborted. Bodies of other statuses are kept in `body` as usual, for
  // error messages.
  std::function<bool(int status, std::string_view bytes)> body_sink;
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options);
  ~HttpClient();
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&& other) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  Result<HttpResponse> Send(const HttpClientRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::net
