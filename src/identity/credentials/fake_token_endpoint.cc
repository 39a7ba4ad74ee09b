#include "identity/credentials/fake_token_endpoint.h"

#include <stdlib.h>

#include <chrono>
#include <thread>

#include "base/files.h"
#include "fmt/format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace meridian::identity::credentials::testing {

TempDir::TempDir() {
  std::string pattern = ::testing::TempDir() + "credentials_test_XXXXXX";
  path_ = mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
  EXPECT_FALSE(path_.empty()) << "mkdtemp failed";
}

TempDir::~TempDir() {
  if (!path_.empty()) (void)base::RemoveAll(path_);
}

FakeHttpsServer::FakeHttpsServer() {
  Result<net::TlsFiles> tls = net::EnsureLocalTls(dir_.path() + "/tls", {});
  if (!tls.ok()) {
    ADD_FAILURE() << tls.status();
    return;
  }
  tls_ = *tls;
  net::HttpsServerOptions options;
  options.cert_pem_path = tls_.server_cert;
  options.key_pem_path = tls_.server_key;
  options.threads = 4;
  Result<std::unique_ptr<net::HttpsServer>> server =
      net::HttpsServer::Start(options, [this](net::HttpRequest request, net::Responder respond) {
        Handle(std::move(request), std::move(respond));
      });
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return;
  }
  server_ = std::move(*server);
}

FakeHttpsServer::~FakeHttpsServer() {
  std::vector<std::thread> delayed;
  {
    std::lock_guard lock(mu_);
    delayed.swap(delayed_);
  }
  for (std::thread& thread : delayed) thread.join();
  if (server_) server_->Shutdown(2000);
}

std::string FakeHttpsServer::base_url() const {
  return fmt::format("https://127.0.0.1:{}", server_ ? server_->port() : 0);
}

const std::string& FakeHttpsServer::ca_file() const { return tls_.ca_cert; }

void FakeHttpsServer::Enqueue(const std::string& path, net::HttpResponse response) {
  std::lock_guard lock(mu_);
  scripted_[path].push_back(std::move(response));
}

void FakeHttpsServer::SetDefault(const std::string& path, net::HttpResponse response) {
  std::lock_guard lock(mu_);
  defaults_[path] = std::move(response);
}

void FakeHttpsServer::SetDelayMs(int delay_ms) {
  std::lock_guard lock(mu_);
  delay_ms_ = delay_ms;
}

std::vector<net::HttpRequest> FakeHttpsServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

int FakeHttpsServer::RequestCount(const std::string& path) const {
  std::lock_guard lock(mu_);
  int count = 0;
  for (const net::HttpRequest& request : requests_) count += request.path == path ? 1 : 0;
  return count;
}

void FakeHttpsServer::Handle(net::HttpRequest request, net::Responder respond) {
  net::HttpResponse response{.status = 404, .body = R"({"error":"not_found"})"};
  int delay_ms = 0;
  {
    std::lock_guard lock(mu_);
    requests_.push_back(request);
    delay_ms = delay_ms_;
    auto scripted = scripted_.find(request.path);
    if (scripted != scripted_.end() && !scripted->second.empty()) {
      response = std::move(scripted->second.front());
      scripted->second.pop_front();
    } else if (auto fallback = defaults_.find(request.path); fallback != defaults_.end()) {
      response = fallback->second;
    }
  }
  if (delay_ms == 0) {
    respond(std::move(response));
    return;
  }
  // Answer later from another thread so the I/O threads stay free.
  std::lock_guard lock(mu_);
  delayed_.emplace_back([respond = std::move(respond), response = std::move(response), delay_ms] {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    respond(response);
  });
}

net::HttpResponse TokenResponse(const std::string& access_token, int64_t expires_in_s,
                                int64_t refresh_in_s) {
  nlohmann::json body = {{"token_type", "Bearer"},
                         {"expires_in", expires_in_s},
                         {"ext_expires_in", expires_in_s},
                         {"access_token", access_token}};
  if (refresh_in_s > 0) body["refresh_in"] = refresh_in_s;
  return JsonResponse(200, body.dump());
}

net::HttpResponse EntraError(int status, const std::string& error, const std::string& description,
                             int code) {
  const nlohmann::json body = {
      {"error", error},        {"error_description", description + "\r\nTrace ID: 0000\r\n"},
      {"error_codes", {code}}, {"timestamp", "2024-01-01 00:00:00Z"},
      {"trace_id", "0000"},    {"correlation_id", "1111"}};
  return JsonResponse(status, body.dump());
}

net::HttpResponse JsonResponse(int status, const std::string& body) {
  return net::HttpResponse{.status = status, .content_type = "application/json", .body = body};
}

std::map<std::string, std::string> ParseForm(const std::string& body) {
  std::map<std::string, std::string> fields;
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('&', start);
    if (end == std::string::npos) end = body.size();
    const std::string pair = body.substr(start, end - start);
    const size_t equals = pair.find('=');
    std::string name, value;
    std::string raw_value = equals == std::string::npos ? "" : pair.substr(equals + 1);
    for (char& c : raw_value) c = c == '+' ? ' ' : c;
    if (net::PercentDecode(pair.substr(0, equals), &name) &&
        net::PercentDecode(raw_value, &value) && !name.empty()) {
      fields[name] = value;
    }
    start = end + 1;
  }
  return fields;
}

}  // namespace meridian::identity::credentials::testing
