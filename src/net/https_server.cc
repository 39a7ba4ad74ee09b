// The only file of meridian that includes Boost: Beast/Asio types stay here (see https_server.h).
//
// Structure: one ServerImpl owns an io_context run by `threads` threads, an acceptor on its own
// strand, and a registry of Sessions. Each Session (one TLS connection) lives on its own strand
// and handles one request at a time: read header -> check limits -> read body -> call handler ->
// wait for the Responder -> write -> next request. The Responder reaches the session through a
// ResponseSlot that holds only a weak reference, so a Responder kept past the connection's or
// the server's life does nothing harmful.
#include "net/https_server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/files.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr uint32_t kMaxHeaderBytes = 16 * 1024;
constexpr int64_t kDefaultBodyLimitBytes = int64_t{1} << 20;
constexpr int64_t kMaxPemBytes = int64_t{1} << 20;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// After an error response on a connection whose request body was not read, the rest of the
// body is read and dropped for a while before closing: closing with unread data makes the
// kernel send a reset, and the client would lose the error response.
constexpr auto kLingerTimeout = std::chrono::seconds(5);
constexpr int64_t kMaxLingerBytes = int64_t{64} << 20;
constexpr size_t kLingerBufferBytes = 16 * 1024;
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
// How long Shutdown waits for closed connections to finish before stopping the threads.
constexpr auto kCloseWait = std::chrono::seconds(2);

class Session;

struct Config {
  HttpsServerOptions options;
  HttpHandler handler;
};

// State shared by the server, its sessions and every Responder. It outlives the server so that
// a Responder called after Shutdown finds `io_stopped` instead of a destroyed io_context.
struct SharedState {
  std::mutex mu;
  std::condition_variable cv;  // signalled when in_flight or sessions shrink
  bool io_stopped = false;     // guarded by mu: nothing may be posted to the io_context any more
  int64_t in_flight = 0;       // guarded by mu: requests handed to the handler, not yet answered
  std::unordered_map<Session*, std::shared_ptr<Session>> sessions;  // guarded by mu
  std::atomic<bool> draining{false};  // Shutdown began: answer with "Connection: close"
};

std::string JsonEscape(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '"': escaped += "\\\""; break;
      case '\\': escaped += "\\\\"; break;
      case '\n': escaped += "\\n"; break;
      case '\r': escaped += "\\r"; break;
      case '\t': escaped += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          escaped += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          escaped.push_back(c);
        }
    }
  }
  return escaped;
}

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = fmt::format(R"({{"code":"{}","message":"{}","details":{{}}}})", code,
                              JsonEscape(message));
  return response;
}

std::string Lowercase(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

std::string EndpointText(const tcp::endpoint& endpoint) {
  const asio::ip::address address = endpoint.address();
  if (address.is_v6()) return fmt::format("[{}]:{}", address.to_string(), endpoint.port());
  return fmt::format("{}:{}", address.to_string(), endpoint.port());
}

// Splits "a=1&b=x%20y" into decoded pairs; the first occurrence of a key wins.
bool ParseQuery(std::string_view query, std::map<std::string, std::string>* out) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t equals = pair.find('=');
    std::string key;
    std::string value;
    if (!PercentDecode(pair.substr(0, equals), &key)) return false;
    if (equals != std::string_view::npos && !PercentDecode(pair.substr(equals + 1), &value)) {
      return false;
    }
    out->emplace(std::move(key), std::move(value));
  }
  return true;
}

bool IsQuietNetworkError(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == beast::error::timeout ||
         ec == ssl::error::stream_truncated;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ssl::context& ssl_context, std::shared_ptr<const Config> config,
          std::shared_ptr<SharedState> shared, std::string remote_address)
      : stream_(std::move(socket), ssl_context),
        config_(std::move(config)),
        shared_(std::move(shared)),
        remote_address_(std::move(remote_address)) {}

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Handshake(); });
  }

  // Called from any thread (by a Responder).
  void PostResponse(HttpResponse response) {
    asio::post(stream_.get_executor(),
               [self = shared_from_this(), response = std::move(response)]() mutable {
                 self->WriteResponse(std::move(response), /*close_after=*/false);
               });
  }

  // Called by Shutdown: ends the connection whatever it is doing.
  void PostClose() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->Finish(); });
  }

 private:
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }
  std::chrono::milliseconds IdleTimeout() const {
    return std::chrono::milliseconds(config_->options.idle_timeout_ms);
  }

  void Handshake() {
    Tcp().expires_after(kHandshakeTimeout);
    stream_.async_handshake(ssl::stream_base::server,
                            beast::bind_front_handler(&Session::OnHandshake, shared_from_this()));
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      spdlog::debug("TLS handshake with {} failed: {}", remote_address_, ec.message());
      return Finish();
    }
    ReadHeader();
  }

  void ReadHeader() {
    if (shared_->draining) return Finish();
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    // The route's limit is known only once the header is read; it is applied then.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    Tcp().expires_after(IdleTimeout());
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t /*bytes*/) {
    if (ec) return OnReadError(ec);
    const auto& header = parser_->get();
    method_ = std::string(header.method_string());
    target_ = std::string(header.target());
    const std::string_view target = target_;
    const size_t question = target.find('?');
    query_.clear();
    if (!PercentDecode(target.substr(0, question), &path_) ||
        (question != std::string_view::npos && !ParseQuery(target.substr(question + 1), &query_))) {
      return WriteError(400, "INVALID_ARGUMENT", "bad percent-encoding in the request target");
    }
    body_limit_bytes_ = config_->options.body_limit ? config_->options.body_limit(method_, path_)
                                                    : kDefaultBodyLimitBytes;
    const auto content_length = parser_->content_length();
    if (content_length && *content_length > static_cast<uint64_t>(body_limit_bytes_)) {
      return WriteError(413, "RESOURCE_EXHAUSTED",
                        fmt::format("request body of {} bytes is larger than the limit of {} bytes",
                                    *content_length, body_limit_bytes_));
    }
    parser_->body_limit(static_cast<std::uint64_t>(std::max<int64_t>(body_limit_bytes_, 0)));
    if (parser_->is_done()) return Dispatch();
    if (beast::iequals(header[http::field::expect], "100-continue")) {
      continue_response_.emplace(http::status::continue_, header.version());
      Tcp().expires_after(IdleTimeout());
      return http::async_write(
          stream_, *continue_response_,
          beast::bind_front_handler(&Session::OnContinueWritten, shared_from_this()));
    }
    ReadBody();
  }

  void OnContinueWritten(beast::error_code ec, size_t /*bytes*/) {
    if (ec) return Finish();
    ReadBody();
  }

  void ReadBody() {
    Tcp().expires_after(IdleTimeout());
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, size_t /*bytes*/) {
    if (ec) return OnReadError(ec);
    Dispatch();
  }

  void OnReadError(const beast::error_code& ec) {
    if (ec == http::error::body_limit) {
      return WriteError(413, "RESOURCE_EXHAUSTED",
                        fmt::format("request body is larger than the limit of {} bytes",
                                    body_limit_bytes_));
    }
    if (ec == http::error::header_limit) {
      return WriteError(431, "RESOURCE_EXHAUSTED",
                        fmt::format("request header is larger than the limit of {} bytes",
                                    kMaxHeaderBytes));
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category() && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      return WriteError(400, "INVALID_ARGUMENT", fmt::format("malformed HTTP: {}", ec.message()));
    }
    if (!IsQuietNetworkError(ec)) {
      spdlog::debug("reading from {} failed: {}", remote_address_, ec.message());
    }
    Finish();
  }

  void Dispatch();
  void WriteResponse(HttpResponse response, bool close_after);
  void OnWrite(bool close, beast::error_code ec, size_t bytes);
  void WriteError(int status, std::string_view code, std::string_view message) {
    spdlog::debug("{} {} {}: {} {}", remote_address_, method_, target_, status, message);
    WriteResponse(ErrorResponse(status, code, message), /*close_after=*/true);
  }
  void Linger();
  void OnLingerRead(beast::error_code ec, size_t bytes);
  void FinishInFlight();

  void Finish() {
    if (finished_) return;
    finished_ = true;
    FinishInFlight();
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().close();
    std::shared_ptr<Session> registered;  // released after the lock
    std::lock_guard lock(shared_->mu);
    auto it = shared_->sessions.find(this);
    if (it != shared_->sessions.end()) {
      registered = std::move(it->second);
      shared_->sessions.erase(it);
      shared_->cv.notify_all();
    }
  }

  // Constant after construction.
  beast::ssl_stream<beast::tcp_stream> stream_;
  const std::shared_ptr<const Config> config_;
  const std::shared_ptr<SharedState> shared_;
  const std::string remote_address_;

  // Owned by the strand.
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_response_;
  http::response<http::string_body> response_;
  std::string method_;
  std::string target_;
  std::string path_;
  std::map<std::string, std::string> query_;
  int64_t body_limit_bytes_ = 0;
  bool keep_alive_ = false;
  bool awaiting_response_ = false;  // the handler has the request; no other response may go out
  bool counted_in_flight_ = false;  // this session holds one unit of shared_->in_flight
  bool finished_ = false;
  std::unique_ptr<char[]> linger_buffer_;
  int64_t linger_bytes_ = 0;
};

// Delivers one response to a session, exactly once; answers 500 if dropped unanswered.
class ResponseSlot {
 public:
  ResponseSlot(std::shared_ptr<SharedState> shared, std::weak_ptr<Session> session)
      : shared_(std::move(shared)), session_(std::move(session)) {}
  ResponseSlot(const ResponseSlot&) = delete;
  ResponseSlot& operator=(const ResponseSlot&) = delete;

  ~ResponseSlot() {
    if (answered_.exchange(true)) return;
    spdlog::error("a request handler dropped its Responder without answering; sending 500");
    Deliver(ErrorResponse(500, "INTERNAL", "the request was dropped without an answer"));
  }

  void Answer(HttpResponse response) {
    if (answered_.exchange(true)) {
      spdlog::error("a Responder was called more than once; the extra response is dropped");
      return;
    }
    Deliver(std::move(response));
  }

 private:
  void Deliver(HttpResponse response) {
    // The lock keeps Shutdown from stopping the io_context while the write is posted.
    std::lock_guard lock(shared_->mu);
    if (shared_->io_stopped) return;
    if (std::shared_ptr<Session> session = session_.lock()) {
      session->PostResponse(std::move(response));
    }
  }

  const std::shared_ptr<SharedState> shared_;
  const std::weak_ptr<Session> session_;
  std::atomic<bool> answered_{false};
};

void Session::Dispatch() {
  http::request<http::string_body> message = parser_->release();
  parser_.reset();
  HttpRequest request;
  request.method = method_;
  request.target = target_;
  request.path = path_;
  request.query = std::move(query_);
  request.headers.reserve(std::distance(message.begin(), message.end()));
  for (const auto& field : message) {
    request.headers.emplace_back(Lowercase(std::string_view(field.name_string().data(), field.name_string().size())), std::string(field.value()));
  }
  request.body = std::move(message.body());
  request.remote_address = remote_address_;
  keep_alive_ = message.keep_alive();

  // A long poll may keep the request for minutes: no timer runs while the handler has it.
  Tcp().expires_never();
  awaiting_response_ = true;
  {
    std::lock_guard lock(shared_->mu);
    ++shared_->in_flight;
    counted_in_flight_ = true;
  }
  auto slot = std::make_shared<ResponseSlot>(shared_, weak_from_this());
  Responder respond = [slot = std::move(slot)](HttpResponse response) {
    slot->Answer(std::move(response));
  };
  try {
    config_->handler(std::move(request), std::move(respond));
  } catch (const std::exception& e) {
    spdlog::error("request handler threw for {} {}: {}", method_, target_, e.what());
  } catch (...) {
    spdlog::error("request handler threw for {} {}", method_, target_);
  }
}

void Session::WriteResponse(HttpResponse response, bool close_after) {
  if (finished_) return;
  if (!close_after) {
    if (!awaiting_response_) return;  // cannot happen: a slot answers once
    awaiting_response_ = false;
  }
  if (response.status < 100 || response.status > 999) {
    spdlog::error("{} {}: the handler answered with invalid status {}; sending 500", method_,
                  target_, response.status);
    response = ErrorResponse(500, "INTERNAL", "the server produced an invalid response");
  }
  const bool close = close_after || !keep_alive_ || shared_->draining;
  response_ = http::response<http::string_body>();
  response_.version(11);
  response_.result(static_cast<unsigned>(response.status));
  if (!response.content_type.empty()) response_.set(http::field::content_type, response.content_type);
  for (auto& [name, value] : response.headers) {
    const std::string lower = Lowercase(name);
    if (lower == "content-length" || lower == "transfer-encoding" || lower == "connection") continue;
    if (lower == "content-type") {
      response_.set(http::field::content_type, value);
      continue;
    }
    response_.insert(name, value);
  }
  response_.body() = std::move(response.body);
  response_.keep_alive(!close);
  response_.prepare_payload();
  spdlog::debug("{} {} {} -> {} ({} bytes)", remote_address_, method_, target_, response.status,
                response_.body().size());
  Tcp().expires_after(IdleTimeout());
  http::async_write(stream_, response_,
                    beast::bind_front_handler(&Session::OnWrite, shared_from_this(), close));
}

void Session::OnWrite(bool close, beast::error_code ec, size_t /*bytes*/) {
  FinishInFlight();
  if (ec) {
    if (!IsQuietNetworkError(ec)) {
      spdlog::debug("writing to {} failed: {}", remote_address_, ec.message());
    }
    return Finish();
  }
  if (close) return Linger();
  ReadHeader();
}

void Session::Linger() {
  beast::error_code ignored;
  Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
  linger_buffer_ = std::make_unique<char[]>(kLingerBufferBytes);
  Tcp().expires_after(kLingerTimeout);
  OnLingerRead({}, 0);
}

void Session::OnLingerRead(beast::error_code ec, size_t bytes) {
  linger_bytes_ += static_cast<int64_t>(bytes);
  if (ec || linger_bytes_ > kMaxLingerBytes) return Finish();
  // Raw TCP bytes are dropped without decrypting them: the connection is being closed.
  Tcp().async_read_some(asio::buffer(linger_buffer_.get(), kLingerBufferBytes),
                        beast::bind_front_handler(&Session::OnLingerRead, shared_from_this()));
}

void Session::FinishInFlight() {
  if (!counted_in_flight_) return;
  counted_in_flight_ = false;
  std::lock_guard lock(shared_->mu);
  --shared_->in_flight;
  shared_->cv.notify_all();
}

class ServerImpl final : public HttpsServer {
 public:
  ServerImpl(HttpsServerOptions options, HttpHandler handler)
      : config_(std::make_shared<Config>(Config{std::move(options), std::move(handler)})),
        shared_(std::make_shared<SharedState>()),
        ssl_context_(ssl::context::tls_server),
        io_context_(std::max(1, config_->options.threads)),
        work_guard_(io_context_.get_executor()),
        acceptor_(asio::make_strand(io_context_)),
        accept_retry_timer_(acceptor_.get_executor()) {}

  ~ServerImpl() override { Shutdown(0); }

  Status Init();
  uint16_t port() const override { return port_; }
  void Shutdown(int grace_ms) override;

 private:
  Status LoadTls();
  Status Listen();
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void RunIo();

  // Constant after construction. Declaration order matters: the io_context is destroyed
  // before the TLS context its streams use, and after the acceptor and timer that use it.
  const std::shared_ptr<const Config> config_;
  const std::shared_ptr<SharedState> shared_;
  ssl::context ssl_context_;
  asio::io_context io_context_;
  asio::executor_work_guard<asio::io_context::executor_type> work_guard_;
  tcp::acceptor acceptor_;           // used on its strand once the threads run
  asio::steady_timer accept_retry_timer_;  // same strand
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;

  std::mutex shutdown_mu_;  // serialises Shutdown calls
  bool shut_down_ = false;  // guarded by shutdown_mu_
};

Status ServerImpl::LoadTls() {
  const HttpsServerOptions& options = config_->options;
  beast::error_code ec;
  ssl_context_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                               ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                               ssl::context::no_tlsv1_1,
                           ec);
  Result<std::string> cert = base::ReadFile(options.cert_pem_path, kMaxPemBytes);
  if (!cert.ok()) {
    return absl::FailedPreconditionError(
        fmt::format("cannot load the TLS certificate: {}", std::string(cert.status().message())));
  }
  ssl_context_.use_certificate_chain(asio::buffer(*cert), ec);
  if (ec) {
    return absl::FailedPreconditionError(fmt::format(
        "cannot load the TLS certificate {}: {}", options.cert_pem_path, ec.message()));
  }
  Result<std::string> key = base::ReadFile(options.key_pem_path, kMaxPemBytes);
  if (!key.ok()) {
    return absl::FailedPreconditionError(
        fmt::format("cannot load the TLS key: {}", std::string(key.status().message())));
  }
  ssl_context_.use_private_key(asio::buffer(*key), ssl::context::pem, ec);
  if (ec) {
    return absl::FailedPreconditionError(fmt::format(
        "cannot load the TLS key {} (does it match {}?): {}", options.key_pem_path,
        options.cert_pem_path, ec.message()));
  }
  return OkStatus();
}

Status ServerImpl::Listen() {
  const HttpsServerOptions& options = config_->options;
  const std::string where = fmt::format("{}:{}", options.bind_address, options.port);
  beast::error_code ec;
  const asio::ip::address address = asio::ip::make_address(options.bind_address, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        fmt::format("cannot listen on {}: '{}' is not an IP address", where, options.bind_address));
  }
  const tcp::endpoint endpoint(address, options.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::FailedPreconditionError(fmt::format("cannot listen on {}: {}", where, ec.message()));
  port_ = acceptor_.local_endpoint(ec).port();
  return OkStatus();
}

Status ServerImpl::Init() {
  RETURN_IF_ERROR(LoadTls());
  RETURN_IF_ERROR(Listen());
  Accept();
  const int thread_count = std::max(1, config_->options.threads);
  threads_.reserve(thread_count);
  for (int i = 0; i < thread_count; ++i) threads_.emplace_back([this] { RunIo(); });
  beast::error_code ec;
  spdlog::info("HTTPS server listening on {} with {} threads",
               EndpointText(acceptor_.local_endpoint(ec)), thread_count);
  return OkStatus();
}

void ServerImpl::RunIo() {
  for (;;) {
    try {
      io_context_.run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("HTTPS server I/O thread caught: {}", e.what());
    } catch (...) {
      spdlog::error("HTTPS server I/O thread caught an unknown exception");
    }
  }
}

void ServerImpl::Accept() {
  acceptor_.async_accept(asio::make_strand(io_context_),
                         [this](beast::error_code ec, tcp::socket socket) {
                           OnAccept(ec, std::move(socket));
                         });
}

void ServerImpl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open() || shared_->draining) return;
  if (ec) {
    // Typically out of file descriptors: wait a little instead of spinning.
    spdlog::warn("accept failed: {}; retrying", ec.message());
    accept_retry_timer_.expires_after(kAcceptRetryDelay);
    accept_retry_timer_.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && acceptor_.is_open()) Accept();
    });
    return;
  }
  beast::error_code endpoint_ec;
  const std::string remote = EndpointText(socket.remote_endpoint(endpoint_ec));
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(shared_->mu);
    if (static_cast<int64_t>(shared_->sessions.size()) < config_->options.max_connections) {
      session = std::make_shared<Session>(std::move(socket), ssl_context_, config_, shared_, remote);
      shared_->sessions.emplace(session.get(), session);
    }
  }
  if (session) {
    session->Start();
  } else {
    spdlog::warn("refusing connection from {}: {} connections are open", remote,
                 config_->options.max_connections);
    beast::error_code ignored;
    socket.close(ignored);
  }
  Accept();
}

void ServerImpl::Shutdown(int grace_ms) {
  std::lock_guard shutdown_lock(shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  shared_->draining = true;
  if (threads_.empty()) {  // Init failed: nothing runs
    beast::error_code ignored;
    acceptor_.close(ignored);
    return;
  }
  std::promise<void> acceptor_closed;
  asio::post(acceptor_.get_executor(), [this, &acceptor_closed] {
    beast::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_timer_.cancel();
    acceptor_closed.set_value();
  });
  acceptor_closed.get_future().wait();

  std::vector<std::shared_ptr<Session>> open_sessions;
  {
    std::unique_lock lock(shared_->mu);
    const auto grace_end = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
    shared_->cv.wait_until(lock, grace_end, [this] { return shared_->in_flight == 0; });
    if (shared_->in_flight > 0) {
      spdlog::warn("closing {} requests still unanswered after {} ms", shared_->in_flight, grace_ms);
    }
    for (const auto& entry : shared_->sessions) open_sessions.push_back(entry.second);
  }
  for (const auto& session : open_sessions) session->PostClose();
  open_sessions.clear();
  {
    std::unique_lock lock(shared_->mu);
    shared_->cv.wait_for(lock, kCloseWait, [this] { return shared_->sessions.empty(); });
  }
  work_guard_.reset();
  io_context_.stop();
  for (std::thread& thread : threads_) thread.join();
  std::unordered_map<Session*, std::shared_ptr<Session>> leftover;
  {
    std::lock_guard lock(shared_->mu);
    shared_->io_stopped = true;
    leftover.swap(shared_->sessions);
  }
  leftover.clear();  // destroys their sockets while the io_context still exists
  spdlog::info("HTTPS server on port {} stopped", port_);
}

}  // namespace

Result<std::unique_ptr<HttpsServer>> HttpsServer::Start(HttpsServerOptions options,
                                                        HttpHandler handler) {
  if (!handler) return absl::InvalidArgumentError("HttpsServer needs a handler");
  try {
    auto server = std::make_unique<ServerImpl>(std::move(options), std::move(handler));
    RETURN_IF_ERROR(server->Init());
    return std::unique_ptr<HttpsServer>(std::move(server));
  } catch (const std::exception& e) {
    return absl::InternalError(fmt::format("cannot start the HTTPS server: {}", e.what()));
  }
}

}  // namespace meridian::net
