#include "identity/credentials/token_endpoint.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <thread>

#include "fmt/format.h"
#include "net/http_types.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace meridian::identity::credentials {
namespace {

using nlohmann::json;

constexpr size_t kMaxQuotedErrorChars = 1000;

bool IsTenantChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool IsRetryableHttpStatus(int status) { return status == 429 || status == 408 || status >= 500; }

// expires_in and refresh_in are numbers in v2 responses, strings in older ones.
std::optional<int64_t> SecondsMember(const json& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& text = it->get_ref<const std::string&>();
    if (!text.empty() && text.size() < 12 && std::all_of(text.begin(), text.end(), ::isdigit)) {
      return std::stoll(text);
    }
  }
  return std::nullopt;
}

// One line, bounded: error_description carries "\r\n" and a trace id.
std::string Quote(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxQuotedErrorChars)) out += (c == '\r' || c == '\n') ? ' ' : c;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    out += net::PercentEncode(name) + "=" + net::PercentEncode(value);
  }
  return out;
}

// RFC 7231 IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT".
std::optional<int64_t> ParseHttpDateUnixS(const std::string& text) {
  struct tm parts {};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &parts);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(timegm(&parts));
}

}  // namespace

Result<std::string> NormalizeAuthorityHost(std::string_view authority_host) {
  std::string authority(authority_host);
  while (!authority.empty() && authority.back() == '/') authority.pop_back();
  if (authority.rfind("https://", 0) != 0) {
    return absl::InvalidArgumentError(fmt::format(
        "authority host '{}' is not an https:// URL: tokens are only requested over HTTPS",
        authority_host));
  }
  const std::string_view rest = std::string_view(authority).substr(8);
  if (rest.empty() || rest.front() == '/' || rest.find_first_of("?#@ ") != std::string::npos) {
    return absl::InvalidArgumentError(fmt::format(
        "authority host '{}' is not a plain https://host[:port][/path] URL", authority_host));
  }
  return authority;
}

int64_t RefreshOnUnixS(int64_t now_unix_s, int64_t expires_in_s,
                       std::optional<int64_t> refresh_in_s) {
  if (refresh_in_s.has_value() && *refresh_in_s > 0 && *refresh_in_s < expires_in_s) {
    return now_unix_s + *refresh_in_s;
  }
  if (expires_in_s >= 2 * kRefreshBeforeExpiryS) {
    return now_unix_s + expires_in_s - kRefreshBeforeExpiryS;
  }
  return now_unix_s + expires_in_s / 2;
}

Result<AccessToken> ParseTokenResponse(std::string_view body, int64_t now_unix_s) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) {
    return absl::InternalError("the token endpoint answered 200 with a body that is not JSON");
  }
  const auto access_token = parsed.find("access_token");
  if (access_token == parsed.end() || !access_token->is_string() ||
      access_token->get_ref<const std::string&>().empty()) {
    return absl::InternalError("the token endpoint's response has no access_token");
  }
  const auto token_type = parsed.find("token_type");
  if (token_type != parsed.end() &&
      (!token_type->is_string() || !EqualsIgnoreCase(token_type->get<std::string>(), "Bearer"))) {
    return absl::InternalError("the token endpoint's response has a token_type other than Bearer");
  }
  const std::optional<int64_t> expires_in = SecondsMember(parsed, "expires_in");
  if (!expires_in.has_value() || *expires_in <= 0) {
    return absl::InternalError("the token endpoint's response has no positive expires_in");
  }
  AccessToken token;
  token.token = access_token->get<std::string>();
  token.expires_on_unix_s = now_unix_s + *expires_in;
  token.refresh_on_unix_s =
      RefreshOnUnixS(now_unix_s, *expires_in, SecondsMember(parsed, "refresh_in"));
  return token;
}

Status TokenErrorStatus(int http_status, std::string_view body, std::string_view url) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string detail;
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_string()) {
    detail = parsed["error"].get<std::string>();
    if (parsed.contains("error_description") && parsed["error_description"].is_string()) {
      detail += ": " + Quote(parsed["error_description"].get<std::string>());
    }
  } else {
    detail = body.empty() ? "(empty body)" : Quote(body.substr(0, 200));
  }
  const bool server_side = http_status >= 500 || IsRetryableHttpStatus(http_status);
  const std::string message = fmt::format("token request to {} {} (HTTP {}): {}", url,
                                          server_side ? "failed" : "refused", http_status, detail);
  if (http_status == 400 || http_status == 401) return absl::UnauthenticatedError(message);
  if (http_status == 403) return absl::PermissionDeniedError(message);
  if (http_status >= 400 && http_status < 500 && !IsRetryableHttpStatus(http_status)) {
    return absl::InvalidArgumentError(message);
  }
  return absl::UnavailableError(message);
}

Result<std::unique_ptr<TokenEndpointClient>> TokenEndpointClient::Create(
    TokenEndpointOptions options) {
  ASSIGN_OR_RETURN(std::string authority, NormalizeAuthorityHost(options.authority_host));
  if (options.tenant_id.empty() || options.tenant_id.size() > 256 ||
      !std::all_of(options.tenant_id.begin(), options.tenant_id.end(), IsTenantChar)) {
    return absl::InvalidArgumentError(
        fmt::format("tenant '{}' is not a tenant id (a GUID) or a domain name", options.tenant_id));
  }
  if (options.retry.max_attempts < 1) options.retry.max_attempts = 1;
  options.http.max_response_bytes =
      std::min<int64_t>(options.http.max_response_bytes, kMaxTokenResponseBytes);
  if (options.clock == nullptr) options.clock = base::SystemClock::Get();
  if (!options.sleep) {
    options.sleep = [](int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
  }
  std::string token_url = fmt::format("{}/{}/oauth2/v2.0/token", authority, options.tenant_id);
  return std::unique_ptr<TokenEndpointClient>(
      new TokenEndpointClient(std::move(options), std::move(token_url)));
}

TokenEndpointClient::TokenEndpointClient(TokenEndpointOptions options, std::string token_url)
    : options_(std::move(options)), token_url_(std::move(token_url)) {
  jitter_.seed(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}());
}

int64_t TokenEndpointClient::BackoffMs(int attempt) {
  const int doublings = std::min(attempt - 1, 30);
  const int64_t base =
      std::min(options_.retry.max_backoff_ms, options_.retry.initial_backoff_ms << doublings);
  std::lock_guard<std::mutex> lock(jitter_mu_);
  // Half fixed, half random: clients that failed together do not come back together.
  return base / 2 + static_cast<int64_t>(jitter_() % static_cast<uint64_t>(base / 2 + 1));
}

int64_t TokenEndpointClient::RetryAfterMs(const net::HttpResponse& response) const {
  const std::string retry_after = response.Header("retry-after");
  int64_t delay_ms = -1;
  if (!retry_after.empty() && retry_after.size() < 9 &&
      std::all_of(retry_after.begin(), retry_after.end(), ::isdigit)) {
    delay_ms = std::stoll(retry_after) * 1000;
  } else if (std::optional<int64_t> when = ParseHttpDateUnixS(retry_after)) {
    delay_ms = std::max<int64_t>(0, *when * 1000 - options_.clock->NowUnixMs());
  }
  return delay_ms < 0 ? -1 : std::min(delay_ms, options_.retry.max_retry_after_ms);
}

Result<AccessToken> TokenEndpointClient::Exchange(const std::string& client_id,
                                                  const std::string& scope,
                                                  const std::string& client_assertion) {
  if (client_id.empty()) return absl::InvalidArgumentError("a token request needs a client id");
  if (scope.empty()) return absl::InvalidArgumentError("a token request needs a scope");
  net::HttpClientRequest request{
      .method = "POST",
      .url = token_url_,
      .headers = {{"content-type", "application/x-www-form-urlencoded"},
                  {"accept", "application/json"}},
      .body = FormEncode({{"grant_type", "client_credentials"},
                          {"client_id", client_id},
                          {"scope", scope},
                          {"client_assertion_type", kJwtBearerAssertionType},
                          {"client_assertion", client_assertion}})};
  net::HttpClient http(options_.http);
  Status last_error;
  for (int attempt = 1;; ++attempt) {
    Result<net::HttpResponse> response = http.Send(request);
    int64_t delay_ms = -1;
    if (response.ok()) {
      if (response->status >= 200 && response->status < 300) {
        return ParseTokenResponse(response->body, options_.clock->NowUnixMs() / 1000);
      }
      last_error = TokenErrorStatus(response->status, response->body, token_url_);
      if (!IsRetryableHttpStatus(response->status)) return last_error;
      delay_ms = RetryAfterMs(*response);
    } else if (absl::IsUnavailable(response.status()) ||
               absl::IsDeadlineExceeded(response.status())) {
      last_error = response.status();
    } else {
      return response.status();
    }
    if (attempt >= options_.retry.max_attempts) break;
    if (delay_ms < 0) delay_ms = BackoffMs(attempt);
    spdlog::info("token request to {}: attempt {} failed ({}); retrying in {} ms", token_url_,
                 attempt, last_error.message(), delay_ms);
    options_.sleep(delay_ms);
  }
  const std::string message = fmt::format("{} (gave up after {} attempts)", last_error.message(),
                                          options_.retry.max_attempts);
  if (absl::IsDeadlineExceeded(last_error)) return absl::DeadlineExceededError(message);
  return absl::UnavailableError(message);
}

}  // namespace meridian::identity::credentials
