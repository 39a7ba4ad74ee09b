// HttpsServer: an HTTPS/1.1 server (Boost.Beast over OpenSSL) that hands each complete
// request to one handler. Boost stays inside https_server.cc.
//
// Threading: `threads` I/O threads run the connections. The handler is called on an I/O
// thread and must not block for long; slow work (a database commit, a long-poll wait)
// keeps the Responder and answers later from any thread.
//
// Limits: request headers are capped at 16 KiB; a body larger than the limit the
// `body_limit` callback returns for its method and path is refused with 413 before it is
// read; at most `max_connections` connections are open at once (more are closed at
// accept); a connection idle for `idle_timeout_ms` is closed. A header over the cap gets 431,
// malformed HTTP gets 400; both close the connection. Errors the server itself sends have the
// JSON body {"code": ..., "message": ..., "details": {}}.
//
// Shutdown: Shutdown() stops accepting, waits up to `grace_ms` for requests in flight to
// be answered, then closes every connection and joins the threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "net/http_types.h"

namespace meridian::net {

struct HttpsServerOptions {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 0;  // 0: the OS picks a free port; see HttpsServer::port()
  std::string cert_pem_path;
  std::string key_pem_path;
  int threads = 2;
  int max_connections = 4096;
  int idle_timeout_ms = 120'000;
  // Maximum body size for a request, chosen from its method and path.
  // Default: 1 MiB for every request.
  std::function<int64_t(std::string_view method, std::string_view path)> body_limit;
};

using HttpHandler = std::function<void(HttpRequest request, Responder respond)>;

class HttpsServer {
 public:
  virtual ~HttpsServer() = default;

  // Binds, listens and starts the I/O threads. Fails with a clear message when the address
  // is taken or the certificate/key cannot be loaded.
  static Result<std::unique_ptr<HttpsServer>> Start(HttpsServerOptions options,
                                                    HttpHandler handler);

  virtual uint16_t port() const = 0;
  virtual void Shutdown(int grace_ms) = 0;
};

}  // namespace meridian::net
