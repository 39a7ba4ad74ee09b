// Tests of the net component over real TLS on 127.0.0.1: local CA material, the HTTPS
// server and the curl client against each other.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/files.h"
#include "base/testing/eventually.h"
#include "fmt/format.h"
#include "gtest/gtest.h"
#include "net/http_client.h"
#include "net/http_types.h"
#include "net/https_server.h"
#include "net/tls.h"

namespace meridian::net {
namespace {

using std::chrono::milliseconds;

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "net_test_XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
  }
  ~TempDir() { (void)base::RemoveAll(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadOrDie(const std::string& path) {
  Result<std::string> contents = base::ReadFile(path);
  EXPECT_TRUE(contents.ok()) << contents.status();
  return contents.ok() ? *contents : std::string();
}

mode_t ModeOf(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 0777;
}

// A port on 127.0.0.1 that nothing listens on (bound, then released).
uint16_t UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

class NetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    Result<TlsFiles> files = EnsureLocalTls(dir_.path() + "/tls", {});
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = *files;
    StartServer();
  }

  void TearDown() override {
    if (server_) server_->Shutdown(1000);
    for (std::thread& thread : threads_) thread.join();
  }

  void StartServer() {
    HttpsServerOptions options;
    options.cert_pem_path = files_.server_cert;
    options.key_pem_path = files_.server_key;
    options.body_limit = [](std::string_view method, std::string_view path) -> int64_t {
      return path == "/small" ? 1024 : int64_t{1} << 20;
    };
    Result<std::unique_ptr<HttpsServer>> server =
        HttpsServer::Start(options, [this](HttpRequest request, Responder respond) {
          Handle(std::move(request), std::move(respond));
        });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // Routes: /late answers 200 ms later from another thread, /drop drops the Responder,
  // /hold keeps it until the test ends; anything else echoes the request.
  void Handle(HttpRequest request, Responder respond) {
    if (request.path == "/late") {
      std::lock_guard lock(mu_);
      threads_.emplace_back([respond = std::move(respond)] {
        std::this_thread::sleep_for(milliseconds(200));
        respond(HttpResponse{.status = 200, .content_type = "text/plain", .body = "late"});
      });
      return;
    }
    if (request.path == "/drop") return;
    if (request.path == "/hold") {
      std::lock_guard lock(mu_);
      held_.push_back(std::move(respond));
      return;
    }
    HttpResponse response;
    const auto status = request.query.find("status");
    response.status = status == request.query.end() ? 200 : std::stoi(status->second);
    response.content_type = "text/plain";
    response.headers = {{"x-method", request.method},
                        {"x-path", request.path},
                        {"x-query-a", request.query.count("a") ? request.query.at("a") : ""},
                        {"x-test", request.Header("X-Test")},
                        {"x-remote", request.remote_address}};
    response.body = request.body;
    respond(std::move(response));
  }

  size_t HeldCount() {
    std::lock_guard lock(mu_);
    return held_.size();
  }

  std::string Url(std::string_view path_and_query) const {
    return fmt::format("https://127.0.0.1:{}{}", server_->port(), path_and_query);
  }

  HttpClientOptions ClientOptions() const { return HttpClientOptions{.ca_file = files_.ca_cert}; }

  TempDir dir_;
  TlsFiles files_;
  std::unique_ptr<HttpsServer> server_;
  std::mutex mu_;
  std::vector<std::thread> threads_;  // guarded by mu_
  std::vector<Responder> held_;       // guarded by mu_
};

TEST_F(NetTest, GetAndPostRoundTrip) {
  HttpClient client(ClientOptions());
  Result<HttpResponse> got = client.Send({.method = "GET",
                                          .url = Url("/a%20b/c?a=x%20y%26z&status=203"),
                                          .headers = {{"X-Test", "hello"}}});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 203);
  EXPECT_EQ(got->Header("x-method"), "GET");
  EXPECT_EQ(got->Header("X-Path"), "/a b/c");
  EXPECT_EQ(got->Header("x-query-a"), "x y&z");
  EXPECT_EQ(got->Header("x-test"), "hello");
  EXPECT_EQ(got->content_type, "text/plain");
  EXPECT_EQ(got->Header("x-remote").rfind("127.0.0.1:", 0), 0u);

  Result<HttpResponse> posted = client.Send(
      {.method = "POST", .url = Url("/submit?status=201"), .body = R"({"name":"job"})"});
  ASSERT_TRUE(posted.ok()) << posted.status();
  EXPECT_EQ(posted->status, 201);
  EXPECT_EQ(posted->Header("x-method"), "POST");
  EXPECT_EQ(posted->body, R"({"name":"job"})");

  Result<HttpResponse> put = client.Send({.method = "PUT", .url = Url("/x"), .body = "abc"});
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->Header("x-method"), "PUT");
  EXPECT_EQ(put->body, "abc");

  Result<HttpResponse> missing = client.Send({.url = Url("/nothing?status=404")});
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->status, 404);
}

TEST_F(NetTest, KeepAliveReusesOneConnection) {
  HttpClient client(ClientOptions());
  std::string first_remote;
  for (int i = 0; i < 100; ++i) {
    Result<HttpResponse> response =
        client.Send({.method = "POST", .url = Url("/echo"), .body = fmt::format("n{}", i)});
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->body, fmt::format("n{}", i));
    if (i == 0) first_remote = response->Header("x-remote");
    // The same client port every time: the connection was kept and reused.
    EXPECT_EQ(response->Header("x-remote"), first_remote);
  }
}

TEST_F(NetTest, OversizedBodyIsRefusedWith413AndServerKeepsServing) {
  HttpClient client(ClientOptions());
  Result<HttpResponse> refused =
      client.Send({.method = "POST", .url = Url("/small"), .body = std::string(10240, 'x')});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->status, 413);
  EXPECT_EQ(refused->body,
            R"({"code":"RESOURCE_EXHAUSTED","message":"request body of 10240 bytes is larger )"
            R"(than the limit of 1024 bytes","details":{}})");

  // Over the default 1 MiB limit: the client asks before sending, the server says no.
  const std::string large((int64_t{1} << 20) + 1, 'y');
  Result<HttpResponse> refused_large =
      client.Send({.method = "POST", .url = Url("/echo"), .body = large});
  ASSERT_TRUE(refused_large.ok()) << refused_large.status();
  EXPECT_EQ(refused_large->status, 413);

  Result<HttpResponse> accepted =
      client.Send({.method = "POST", .url = Url("/small"), .body = std::string(1024, 'z')});
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->status, 200);
  EXPECT_EQ(accepted->body, std::string(1024, 'z'));
}

TEST_F(NetTest, BodyAtTheLimitIsAccepted) {
  HttpClient client(ClientOptions());
  const std::string body(int64_t{1} << 20, 'b');
  Result<HttpResponse> response = client.Send({.method = "POST", .url = Url("/echo"), .body = body});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body.size(), body.size());
}

TEST_F(NetTest, ResponderCalledLaterFromAnotherThread) {
  HttpClient client(ClientOptions());
  Result<HttpResponse> response = client.Send({.url = Url("/late")});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "late");
}

TEST_F(NetTest, DroppedResponderAnswers500) {
  HttpClient client(ClientOptions());
  Result<HttpResponse> response = client.Send({.url = Url("/drop")});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 500);
  EXPECT_NE(response->body.find("\"code\":\"INTERNAL\""), std::string::npos) << response->body;
  // The connection still serves the next request.
  Result<HttpResponse> next = client.Send({.url = Url("/echo")});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->status, 200);
}

TEST_F(NetTest, InvalidStatusFromHandlerBecomes500) {
  HttpClient client(ClientOptions());
  Result<HttpResponse> response = client.Send({.url = Url("/echo?status=1000")});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 500);
}

TEST_F(NetTest, MalformedRequestGets400) {
  HttpClient client(ClientOptions());
  Result<HttpResponse> response = client.Send({.method = "BAD(METHOD)", .url = Url("/echo")});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 400);
  Result<HttpResponse> bad_escape = client.Send({.url = Url("/echo?a=%zz")});
  ASSERT_TRUE(bad_escape.ok()) << bad_escape.status();
  EXPECT_EQ(bad_escape->status, 400);
}

TEST_F(NetTest, ClientTrustingAnotherCaGetsFailedPrecondition) {
  TempDir other;
  Result<TlsFiles> other_files = EnsureLocalTls(other.path() + "/tls", {});
  ASSERT_TRUE(other_files.ok()) << other_files.status();
  HttpClient client(HttpClientOptions{.ca_file = other_files->ca_cert});
  Result<HttpResponse> response = client.Send({.url = Url("/echo")});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition) << response.status();
  EXPECT_NE(response.status().message().find(other_files->ca_cert), std::string::npos);
  EXPECT_NE(response.status().message().find("not trusted"), std::string::npos);
}

TEST_F(NetTest, ClosedPortIsUnavailable) {
  HttpClient client(ClientOptions());
  Result<HttpResponse> response =
      client.Send({.url = fmt::format("https://127.0.0.1:{}/", UnusedPort())});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
}

TEST_F(NetTest, ClientTimeoutIsDeadlineExceeded) {
  HttpClient client(ClientOptions());
  Result<HttpResponse> response = client.Send({.url = Url("/hold"), .timeout_ms = 300});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
}

TEST_F(NetTest, ResponseOverClientLimitIsResourceExhausted) {
  HttpClient client(HttpClientOptions{.ca_file = files_.ca_cert, .max_response_bytes = 100});
  Result<HttpResponse> response =
      client.Send({.method = "POST", .url = Url("/echo"), .body = std::string(1000, 'r')});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted) << response.status();
}

TEST_F(NetTest, ConcurrentClientsAllSucceed) {
  constexpr int kThreads = 8;
  constexpr int kRequestsPerThread = 200;
  std::atomic<int> succeeded{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      HttpClient client(ClientOptions());
      for (int i = 0; i < kRequestsPerThread; ++i) {
        const std::string body = fmt::format("{}-{}", t, i);
        Result<HttpResponse> response =
            client.Send({.method = "POST", .url = Url("/echo"), .body = body});
        if (response.ok() && response->status == 200 && response->body == body) ++succeeded;
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(succeeded.load(), kThreads * kRequestsPerThread);
}

TEST_F(NetTest, OversizedHeaderIsRefused) {
  HttpClient client(ClientOptions());
  Result<HttpResponse> response =
      client.Send({.url = Url("/echo"), .headers = {{"x-big", std::string(20 * 1024, 'h')}}});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 431);
  Result<HttpResponse> next = client.Send({.url = Url("/echo")});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->status, 200);
}

TEST_F(NetTest, ConnectionsOverTheCapAreClosed) {
  server_->Shutdown(0);
  HttpsServerOptions options;
  options.cert_pem_path = files_.server_cert;
  options.key_pem_path = files_.server_key;
  options.max_connections = 1;
  auto server = HttpsServer::Start(options, [](HttpRequest request, Responder respond) {
    respond(HttpResponse{.body = request.remote_address});
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string url = fmt::format("https://127.0.0.1:{}/", (*server)->port());
  HttpClient first(ClientOptions());
  ASSERT_TRUE(first.Send({.url = url}).ok());  // its connection stays open (keep-alive)
  HttpClient second(ClientOptions());
  Result<HttpResponse> refused = second.Send({.url = url});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  Result<HttpResponse> still_served = first.Send({.url = url});
  ASSERT_TRUE(still_served.ok()) << still_served.status();
}

TEST_F(NetTest, IdleConnectionsAreClosedAndClientsReconnect) {
  server_->Shutdown(0);
  HttpsServerOptions options;
  options.cert_pem_path = files_.server_cert;
  options.key_pem_path = files_.server_key;
  options.idle_timeout_ms = 50;
  auto server = HttpsServer::Start(options, [](HttpRequest request, Responder respond) {
    respond(HttpResponse{.body = request.remote_address});
  });
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string url = fmt::format("https://127.0.0.1:{}/", (*server)->port());
  HttpClient client(ClientOptions());
  Result<HttpResponse> first = client.Send({.url = url});
  ASSERT_TRUE(first.ok()) << first.status();
  // Once the server has dropped the idle connection, the client transparently uses a new one.
  EXPECT_TRUE(Eventually([&] {
    std::this_thread::sleep_for(milliseconds(100));
    Result<HttpResponse> again = client.Send({.url = url});
    return again.ok() && again->status == 200 && again->body != first->body;
  }));
}

TEST_F(NetTest, ShutdownWithPendingRequestReturns) {
  std::atomic<bool> finished{false};
  std::thread client_thread([&] {
    HttpClient client(ClientOptions());
    Result<HttpResponse> response = client.Send({.url = Url("/hold")});
    // Either the connection was closed or an answer arrived; the client must not hang.
    if (response.ok()) {
      EXPECT_GE(response->status, 500);
    }
    finished = true;
  });
  ASSERT_TRUE(Eventually([&] { return HeldCount() == 1; }));
  server_->Shutdown(200);
  client_thread.join();
  EXPECT_TRUE(finished);
  server_->Shutdown(200);  // a second call is harmless
  // A Responder called after Shutdown does nothing harmful.
  std::lock_guard lock(mu_);
  held_.front()(HttpResponse{.status = 200});
}

TEST_F(NetTest, ShutdownWaitsForRequestsAnsweredWithinGrace) {
  Result<HttpResponse> response;
  std::thread client_thread([&] {
    HttpClient client(ClientOptions());
    response = client.Send({.url = Url("/late")});
  });
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu_);
    return !threads_.empty();
  }));
  server_->Shutdown(30'000);
  client_thread.join();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "late");
}

TEST_F(NetTest, StartFailsClearly) {
  HttpsServerOptions taken;
  taken.port = server_->port();
  taken.cert_pem_path = files_.server_cert;
  taken.key_pem_path = files_.server_key;
  auto handler = [](HttpRequest, Responder respond) { respond(HttpResponse{}); };
  Result<std::unique_ptr<HttpsServer>> second = HttpsServer::Start(taken, handler);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(),
            fmt::format("cannot listen on 127.0.0.1:{}: Address already in use", server_->port()));

  HttpsServerOptions no_cert = taken;
  no_cert.port = 0;
  no_cert.cert_pem_path = dir_.path() + "/missing.pem";
  Result<std::unique_ptr<HttpsServer>> third = HttpsServer::Start(no_cert, handler);
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.status().message().find(no_cert.cert_pem_path), std::string::npos)
      << third.status();

  HttpsServerOptions bad_key = taken;
  bad_key.port = 0;
  bad_key.key_pem_path = files_.ca_cert;
  Result<std::unique_ptr<HttpsServer>> fourth = HttpsServer::Start(bad_key, handler);
  ASSERT_FALSE(fourth.ok());
  EXPECT_NE(fourth.status().message().find(files_.ca_cert), std::string::npos) << fourth.status();
}

TEST(EnsureLocalTlsTest, ReusesFilesAndRemakesOnlyTheServerCertForANewHost) {
  TempDir temp;
  const std::string dir = temp.path() + "/tls";
  Result<TlsFiles> first = EnsureLocalTls(dir, {"localhost"});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(ModeOf(dir), 0700u);
  EXPECT_EQ(ModeOf(first->ca_key), 0600u);
  EXPECT_EQ(ModeOf(first->server_key), 0600u);
  const std::string ca_cert = ReadOrDie(first->ca_cert);
  const std::string ca_key = ReadOrDie(first->ca_key);
  const std::string server_cert = ReadOrDie(first->server_cert);
  const std::string server_key = ReadOrDie(first->server_key);
  EXPECT_NE(ca_cert.find("BEGIN CERTIFICATE"), std::string::npos);
  // The server file holds the leaf, then the CA.
  EXPECT_NE(server_cert.find(ca_cert), std::string::npos);
  EXPECT_NE(server_cert.find(ca_cert), 0u);

  Result<TlsFiles> second = EnsureLocalTls(dir, {"localhost"});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(ReadOrDie(second->ca_cert), ca_cert);
  EXPECT_EQ(ReadOrDie(second->ca_key), ca_key);
  EXPECT_EQ(ReadOrDie(second->server_cert), server_cert);
  EXPECT_EQ(ReadOrDie(second->server_key), server_key);

  Result<TlsFiles> third = EnsureLocalTls(dir, {"meridian.internal", "10.1.2.3"});
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(ReadOrDie(third->ca_cert), ca_cert);
  EXPECT_EQ(ReadOrDie(third->ca_key), ca_key);
  const std::string remade = ReadOrDie(third->server_cert);
  EXPECT_NE(remade, server_cert);

  Result<TlsFiles> fourth = EnsureLocalTls(dir, {"10.1.2.3"});
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_EQ(ReadOrDie(fourth->server_cert), remade);
  EXPECT_EQ(ModeOf(fourth->ca_key), 0600u);
  EXPECT_EQ(ModeOf(fourth->server_key), 0600u);
}

// Whether this machine can listen on the IPv6 loopback at all (a capability of the machine,
// not of meridian's server).
bool MachineHasIpv6Loopback() {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return bound;
}

TEST(EnsureLocalTlsTest, ServerCertificateServesEveryRequestedName) {
  if (!MachineHasIpv6Loopback()) {
    GTEST_SKIP() << "this machine cannot listen on the IPv6 loopback ::1 (no IPv6 here)";
  }
  TempDir temp;
  Result<TlsFiles> files = EnsureLocalTls(temp.path() + "/tls", {"::1"});
  ASSERT_TRUE(files.ok()) << files.status();
  HttpsServerOptions options;
  options.bind_address = "::1";
  options.cert_pem_path = files->server_cert;
  options.key_pem_path = files->server_key;
  auto server = HttpsServer::Start(options, [](HttpRequest request, Responder respond) {
    respond(HttpResponse{.body = request.remote_address});
  });
  ASSERT_TRUE(server.ok()) << "the machine has ::1, the server did not listen on it: "
                           << server.status();
  HttpClient client(HttpClientOptions{.ca_file = files->ca_cert});
  Result<HttpResponse> response =
      client.Send({.url = fmt::format("https://[::1]:{}/", (*server)->port())});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body.rfind("[::1]:", 0), 0u) << response->body;
}

TEST(EnsureLocalTlsTest, RejectsBadHostNames) {
  TempDir temp;
  Result<TlsFiles> files = EnsureLocalTls(temp.path() + "/tls", {"bad,host"});
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PercentCodingTest, DecodesAndEncodes) {
  std::string decoded;
  ASSERT_TRUE(PercentDecode("a%20b%2Fc+d%7e", &decoded));
  EXPECT_EQ(decoded, "a b/c+d~");
  EXPECT_FALSE(PercentDecode("bad%2", &decoded));
  EXPECT_FALSE(PercentDecode("bad%g1", &decoded));
  EXPECT_EQ(PercentEncode("a b/c~d-e_f.g\xff"), "a%20b%2Fc~d-e_f.g%FF");
  ASSERT_TRUE(PercentDecode(PercentEncode("x&y=z%"), &decoded));
  EXPECT_EQ(decoded, "x&y=z%");
}

TEST(HttpTypesTest, HeaderLookupIgnoresCase) {
  HttpRequest request;
  request.headers = {{"x-one", "1"}, {"x-two", "2"}, {"x-one", "again"}};
  EXPECT_EQ(request.Header("X-One"), "1");
  EXPECT_EQ(request.Header("x-three"), "");
  HttpResponse response;
  response.content_type = "text/html";
  EXPECT_EQ(response.Header("Content-Type"), "text/html");
}

}  // namespace
}  // namespace meridian::net
