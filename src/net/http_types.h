// Plain HTTP request/response values shared by the HTTPS server and the HTTP client.
// No Boost or curl types appear here, so this header is cheap to include.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian::net {

// Header names are stored lowercased.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as received: path plus query string
  std::string path;    // percent-decoded path without the query string
  std::map<std::string, std::string> query;  // percent-decoded query parameters
  HeaderList headers;
  std::string body;
  std::string remote_address;  // "127.0.0.1:54321"

  // The first header with this (case-insensitive) name, or "" when absent.
  std::string Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  HeaderList headers;  // extra headers; content-type is set from `content_type`
  std::string content_type = "application/json";
  std::string body;

  std::string Header(std::string_view name) const;
};

// Sends the response for one request. Call exactly once, from any thread; the server
// posts the write to the connection's own executor. If it is destroyed without being
// called, the server answers 500 so that a client never hangs.
using Responder = std::function<void(HttpResponse)>;

// Percent-decoding of a URL component ('+' stays '+'). Returns false on a bad escape.
bool PercentDecode(std::string_view in, std::string* out);
// Percent-encoding of a URL component (unreserved characters kept).
std::string PercentEncode(std::string_view in);

}  // namespace meridian::net
