#include "net/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>

#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::net {
namespace {

// Bodies up to this size are sent without "Expect: 100-continue": the extra round trip
// costs more than sending a small body the server might refuse. Larger bodies wait for
// the server's go-ahead, so a 413 arrives before megabytes are sent for nothing.
constexpr size_t kMaxBodyBytesWithoutExpect = size_t{1} << 20;
constexpr long kSinkBufferBytes = 512L << 10;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string Trim(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return std::string(text);
}

// What the curl callbacks fill in for one transfer.
struct Transfer {
  HttpResponse response;
  int64_t max_response_bytes = 0;
  bool too_large = false;
  int status = 0;  // from the latest status line, before the body arrives
  const std::function<bool(int, std::string_view)>* sink = nullptr;
  bool sink_refused = false;
};

// "HTTP/1.1 206 Partial Content" -> 206; 0 when the line has no status code.
int StatusFromLine(std::string_view line) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || line.size() < space + 4) return 0;
  int status = 0;
  for (size_t i = space + 1; i < space + 4; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) return 0;
    status = status * 10 + (line[i] - '0');
  }
  return status;
}

// libcurl calls these from C: nothing may throw out of them.
size_t OnBody(char* data, size_t size, size_t count, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  try {
    if (transfer->sink != nullptr && transfer->status / 100 == 2) {
      if ((*transfer->sink)(transfer->status, std::string_view(data, bytes))) return bytes;
      transfer->sink_refused = true;
      return 0;  // makes curl stop with CURLE_WRITE_ERROR
    }
    if (static_cast<int64_t>(transfer->response.body.size() + bytes) >
        transfer->max_response_bytes) {
      transfer->too_large = true;
      return 0;  // makes curl stop with CURLE_WRITE_ERROR
    }
    transfer->response.body.append(data, bytes);
    return bytes;
  } catch (...) {
    return 0;
  }
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  try {
    std::string_view line(data, bytes);
    if (line.substr(0, 5) == "HTTP/") {
      // A new status line (after 100 Continue): headers so far belonged to another response.
      transfer->response.headers.clear();
      transfer->status = StatusFromLine(line);
      return bytes;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return bytes;
    std::string name = Lowercase(std::string(line.substr(0, colon)));
    std::string value = Trim(line.substr(colon + 1));
    if (name == "content-length" && transfer->sink == nullptr) {
      // Sized once: appending piece by piece would copy a large body several times over.
      const int64_t length = std::strtoll(value.c_str(), nullptr, 10);
      if (length > 0 && length <= transfer->max_response_bytes) transfer->response.body.reserve(length);
    }
    transfer->response.headers.emplace_back(std::move(name), std::move(value));
    return bytes;
  } catch (...) {
    return 0;
  }
}

struct CurlListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlList = std::unique_ptr<curl_slist, CurlListDeleter>;

}  // namespace

struct HttpClient::Impl {
  HttpClientOptions options;
  CURL* easy = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};

  Status Configure(const HttpClientRequest& request, Transfer* transfer, CurlList* headers);
  Status MapError(CURLcode code, const HttpClientRequest& request, const Transfer& transfer);
};

HttpClient::HttpClient(HttpClientOptions options) : impl_(std::make_unique<Impl>()) {
  InitCurlOnce();
  impl_->options = std::move(options);
  impl_->easy = curl_easy_init();
}

HttpClient::~HttpClient() {
  if (impl_ != nullptr && impl_->easy != nullptr) curl_easy_cleanup(impl_->easy);
}

HttpClient::HttpClient(HttpClient&& other) noexcept = default;

HttpClient& HttpClient::operator=(HttpClient&& other) noexcept {
  if (this != &other) {
    if (impl_ != nullptr && impl_->easy != nullptr) curl_easy_cleanup(impl_->easy);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Status HttpClient::Impl::Configure(const HttpClientRequest& request, Transfer* transfer,
                                   CurlList* headers) {
  // reset keeps the open connections, the TLS session cache and the DNS cache.
  curl_easy_reset(easy);
  const int timeout_ms = request.timeout_ms > 0 ? request.timeout_ms : options.timeout_ms;
  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout_ms));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  // Refuses an announced oversized body before it is read. Not for HEAD: there the
  // Content-Length describes a body that never comes (a 1 GiB blob's properties are fine),
  // nor for a body that streams to a sink and is never held.
  if (request.method != "HEAD" && !request.body_sink) {
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(options.max_response_bytes));
  }
  if (!options.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer);
  if (request.body_sink) {
    transfer->sink = &request.body_sink;
    // Fewer, larger pieces for the sink (curl's default is 16 KiB).
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, kSinkBufferBytes);
  }

  const std::string_view body = request.body_view ? *request.body_view : request.body;
  const bool has_body = !body.empty() || request.method == "POST";
  if (request.method == "GET" && !has_body) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    if (has_body) {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
    }
    if (request.method != "POST") {
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  }

  bool has_content_type = false;
  curl_slist* list = nullptr;
  const auto append = [&list](const std::string& line) {
    curl_slist* grown = curl_slist_append(list, line.c_str());
    if (grown == nullptr) return false;
    list = grown;
    return true;
  };
  bool appended = true;
  for (const auto& [name, value] : request.headers) {
    if (Lowercase(name) == "content-type") has_content_type = true;
    appended = appended && append(fmt::format("{}: {}", name, value));
  }
  // curl would otherwise label every body as a form.
  if (has_body && !has_content_type) appended = appended && append("Content-Type:");
  if (body.size() <= kMaxBodyBytesWithoutExpect) appended = appended && append("Expect:");
  headers->reset(list);
  if (!appended) return absl::ResourceExhaustedError("out of memory building request headers");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
  return OkStatus();
}

Status HttpClient::Impl::MapError(CURLcode code, const HttpClientRequest& request,
                                  const Transfer& transfer) {
  const std::string detail = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
  const std::string where = fmt::format("{} {}", request.method, request.url);
  const std::string trust =
      options.ca_file.empty() ? "the system trust store" : fmt::format("CA file {}", options.ca_file);
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return absl::UnavailableError(fmt::format("{}: {}", where, detail));
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(fmt::format("{}: {}", where, detail));
    case CURLE_PEER_FAILED_VERIFICATION:
      return absl::FailedPreconditionError(fmt::format(
          "{}: the server certificate is not trusted by {}: {}", where, trust, detail));
    case CURLE_SSL_CACERT_BADFILE:
      return absl::FailedPreconditionError(
          fmt::format("{}: cannot load {}: {}", where, trust, detail));
    case CURLE_FILESIZE_EXCEEDED:
      return absl::ResourceExhaustedError(fmt::format(
          "{}: the response is larger than the limit of {} bytes", where,
          options.max_response_bytes));
    case CURLE_WRITE_ERROR:
      if (transfer.sink_refused) {
        return absl::AbortedError(fmt::format("{}: the receiver stopped the transfer", where));
      }
      if (transfer.too_large) {
        return absl::ResourceExhaustedError(fmt::format(
            "{}: the response is larger than the limit of {} bytes", where,
            options.max_response_bytes));
      }
      return absl::InternalError(fmt::format("{}: {}", where, detail));
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return absl::InvalidArgumentError(fmt::format("{}: {}", where, detail));
    default:
      return absl::UnavailableError(fmt::format("{}: {}", where, detail));
  }
}

Result<HttpResponse> HttpClient::Send(const HttpClientRequest& request) {
  if (impl_->easy == nullptr) return absl::InternalError("curl_easy_init failed");
  Transfer transfer;
  transfer.max_response_bytes = impl_->options.max_response_bytes;
  CurlList headers;
  impl_->error_buffer[0] = '\0';
  RETURN_IF_ERROR(impl_->Configure(request, &transfer, &headers));
  const CURLcode code = curl_easy_perform(impl_->easy);
  // The header list must stay alive until perform returns; drop curl's pointer to it now.
  curl_easy_setopt(impl_->easy, CURLOPT_HTTPHEADER, nullptr);
  if (code != CURLE_OK) return impl_->MapError(code, request, transfer);
  long status = 0;
  curl_easy_getinfo(impl_->easy, CURLINFO_RESPONSE_CODE, &status);
  transfer.response.status = static_cast<int>(status);
  transfer.response.content_type.clear();
  for (const auto& [name, value] : transfer.response.headers) {
    if (name == "content-type") {
      transfer.response.content_type = value;
      break;
    }
  }
  spdlog::debug("{} {} -> {}", request.method, request.url, status);
  return std::move(transfer.response);
}

}  // namespace meridian::net
