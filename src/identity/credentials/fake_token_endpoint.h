// Test support: a scripted HTTPS server on 127.0.0.1 standing in for a token endpoint or an
// OIDC issuer, with its own local CA in a temporary directory. A fake is right for the unit
// tests of the client; the real token service and Microsoft's client are tested elsewhere.
//
// Responses are chosen per path: a queue of scripted responses is consumed first, then the
// path's default response, else 404. Every request is recorded.
//
// Thread safety: all methods may be called from any thread while the server runs.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/http_types.h"
#include "net/https_server.h"
#include "net/tls.h"

namespace meridian::identity::credentials::testing {

// mkdtemp under the test temp dir; removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class FakeHttpsServer {
 public:
  // Starts on a free port; aborts the test (ADD_FAILURE) when it cannot.
  FakeHttpsServer();
  ~FakeHttpsServer();

  std::string base_url() const;        // https://127.0.0.1:<port>
  const std::string& ca_file() const;  // what a client must trust

  void Enqueue(const std::string& path, net::HttpResponse response);
  void SetDefault(const std::string& path, net::HttpResponse response);
  // Delays every answer (to let concurrent callers pile up) by this many milliseconds.
  void SetDelayMs(int delay_ms);

  std::vector<net::HttpRequest> requests() const;
  int RequestCount(const std::string& path) const;

 private:
  void Handle(net::HttpRequest request, net::Responder respond);

  TempDir dir_;
  net::TlsFiles tls_;
  std::unique_ptr<net::HttpsServer> server_;

  mutable std::mutex mu_;
  std::map<std::string, std::deque<net::HttpResponse>> scripted_;  // guarded by mu_
  std::map<std::string, net::HttpResponse> defaults_;              // guarded by mu_
  std::vector<net::HttpRequest> requests_;                         // guarded by mu_
  int delay_ms_ = 0;                                               // guarded by mu_
  std::vector<std::thread> delayed_;  // guarded by mu_; answering delayed requests
};

// A token endpoint success body.
net::HttpResponse TokenResponse(const std::string& access_token, int64_t expires_in_s,
                                int64_t refresh_in_s = 0);
// An Entra error body.
net::HttpResponse EntraError(int status, const std::string& error, const std::string& description,
                             int code);
net::HttpResponse JsonResponse(int status, const std::string& body);

// Decodes an application/x-www-form-urlencoded body.
std::map<std::string, std::string> ParseForm(const std::string& body);

}  // namespace meridian::identity::credentials::testing
