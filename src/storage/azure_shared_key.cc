#include "storage/azure_shared_key.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <map>

#include "absl/strings/ascii.h"
#include "fmt/format.h"
#include "storage/object_store.h"

namespace meridian::storage {
namespace {

// The standard headers in the order they appear in the string to sign.
constexpr std::array<std::string_view, 11> kSignedHeaders = {"content-encoding",
                                                             "content-language",
                                                             "content-length",
                                                             "content-md5",
                                                             "content-type",
                                                             "date",
                                                             "if-modified-since",
                                                             "if-match",
                                                             "if-none-match",
                                                             "if-unmodified-since",
                                                             "range"};

// Trims the value. "Linear whitespace" in the service's rules means obsolete header line
// folding, which we never send; runs of spaces inside a value are signed as they are (as
// the service and the Azure SDKs do).
std::string CanonicalValue(std::string_view value) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
  return std::string(value);
}

std::string HeaderValue(const net::HeaderList& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return "";
}

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kWeekdays = {"Sun", "Mon", "Tue", "Wed",
                                                       "Thu", "Fri", "Sat"};

}  // namespace

std::string SharedKeyStringToSign(std::string_view method, std::string_view account,
                                  std::string_view encoded_path, const QueryParams& query,
                                  const net::HeaderList& headers) {
  std::string out = fmt::format("{}\n", method);
  for (std::string_view name : kSignedHeaders) {
    std::string value = HeaderValue(headers, name);
    if (name == "content-length" && value == "0") value.clear();
    out += value + "\n";
  }
  std::map<std::string, std::string> ms_headers;
  for (const auto& [name, value] : headers) {
    std::string lower = absl::AsciiStrToLower(std::string(name));
    if (lower.starts_with("x-ms-")) ms_headers[std::move(lower)] = CanonicalValue(value);
  }
  for (const auto& [name, value] : ms_headers) out += fmt::format("{}:{}\n", name, value);
  out += fmt::format("/{}{}", account, encoded_path.empty() ? "/" : encoded_path);
  std::map<std::string, std::vector<std::string>> params;
  for (const auto& [name, value] : query) {
    params[absl::AsciiStrToLower(std::string(name))].push_back(value);
  }
  for (auto& [name, values] : params) {
    std::sort(values.begin(), values.end());
    std::string joined;
    for (const std::string& value : values) joined += (joined.empty() ? "" : ",") + value;
    out += fmt::format("\n{}:{}", name, joined);
  }
  return out;
}

Result<std::string> SharedKeyAuthorization(std::string_view account, std::string_view key_base64,
                                           std::string_view string_to_sign) {
  std::string key;
  if (!Base64Decode(key_base64, &key) || key.empty()) {
    return absl::InvalidArgumentError("the storage account key is not base64");
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(string_to_sign.data()), string_to_sign.size(),
           mac, &mac_length) == nullptr) {
    return absl::InternalError("HMAC-SHA256 failed");
  }
  return fmt::format("SharedKey {}:{}", account,
                     Base64Encode(std::string_view(reinterpret_cast<char*>(mac), mac_length)));
}

std::string FormatHttpDate(int64_t unix_ms) {
  const time_t seconds = static_cast<time_t>(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&seconds, &tm);
  return fmt::format("{}, {:02d} {} {:04d} {:02d}:{:02d}:{:02d} GMT", kWeekdays[tm.tm_wday],
                     tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
}

Result<int64_t> ParseHttpDate(std::string_view text) {
  // "Tue, 14 Nov 2023 22:13:20 GMT": fixed layout.
  const auto bad = [&] {
    return absl::InvalidArgumentError(fmt::format("'{}' is not an RFC 1123 date", text));
  };
  if (text.size() != 29 || text.substr(3, 2) != ", " || text.substr(25) != " GMT") return bad();
  const auto number = [&](size_t at, size_t width, int* out) {
    *out = 0;
    for (size_t i = at; i < at + width; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
      *out = *out * 10 + (text[i] - '0');
    }
    return true;
  };
  struct tm tm = {};
  int day, year, hour, minute, second;
  if (!number(5, 2, &day) || !number(12, 4, &year) || !number(17, 2, &hour) ||
      !number(20, 2, &minute) || !number(23, 2, &second) || text[19] != ':' || text[22] != ':') {
    return bad();
  }
  const auto month = std::find(kMonths.begin(), kMonths.end(), text.substr(8, 3));
  if (month == kMonths.end() || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return bad();
  }
  tm.tm_mday = day;
  tm.tm_mon = static_cast<int>(month - kMonths.begin());
  tm.tm_year = year - 1900;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

}  // namespace meridian::storage
