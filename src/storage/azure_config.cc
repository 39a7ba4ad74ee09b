#include "storage/azure_config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "fmt/format.h"
#include "net/http_types.h"
#include "storage/object_store.h"

namespace meridian::storage {
namespace {

constexpr char kConnectionStringVar[] = "AZURE_STORAGE_CONNECTION_STRING";
constexpr char kDevelopmentEndpoint[] = "http://127.0.0.1:10000/devstoreaccount1";

std::string Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return std::string(text);
}

bool IsValidAccount(std::string_view account) {
  return account.size() >= 3 && account.size() <= 24 &&
         std::all_of(account.begin(), account.end(), [](char c) {
           return std::islower(static_cast<unsigned char>(c)) ||
                  std::isdigit(static_cast<unsigned char>(c));
         });
}

bool IsValidContainer(std::string_view container) {
  if (container.size() < 3 || container.size() > 63) return false;
  if (container.front() == '-' || container.back() == '-') return false;
  if (container.find("--") != std::string_view::npos) return false;
  return std::all_of(container.begin(), container.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '-';
  });
}

// An http(s) URL taken apart; path segments are percent-decoded.
struct SplitUrl {
  std::string scheme;                 // lowercased
  std::string authority;              // host[:port] or user@host[:port]
  std::string host;                   // lowercased, without user or port
  std::vector<std::string> segments;  // trailing empty segments dropped
  std::string query;
};

Result<SplitUrl> Split(std::string_view url, std::string_view what) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(fmt::format("{} '{}': {}", what, url, why));
  };
  SplitUrl out;
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return bad("expected scheme://host/...");
  out.scheme = absl::AsciiStrToLower(std::string(url.substr(0, scheme_end)));
  std::string_view rest = url.substr(scheme_end + 3);
  if (const size_t hash = rest.find('#'); hash != std::string_view::npos)
    rest = rest.substr(0, hash);
  if (const size_t question = rest.find('?'); question != std::string_view::npos) {
    out.query = std::string(rest.substr(question + 1));
    rest = rest.substr(0, question);
  }
  const size_t slash = rest.find('/');
  out.authority = std::string(rest.substr(0, slash));
  std::string_view host = out.authority;
  if (const size_t at = host.rfind('@'); at != std::string_view::npos) host = host.substr(at + 1);
  if (const size_t colon = host.rfind(':'); colon != std::string_view::npos && host.back() != ']') {
    host = host.substr(0, colon);
  }
  out.host = absl::AsciiStrToLower(std::string(host));
  if (out.host.empty()) return bad("no host");
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  while (!path.empty()) {
    const size_t next = path.find('/');
    std::string decoded;
    if (!net::PercentDecode(path.substr(0, next), &decoded)) return bad("bad %-escape in path");
    out.segments.push_back(std::move(decoded));
    if (next == std::string_view::npos) break;
    path = path.substr(next + 1);
    if (path.empty()) out.segments.emplace_back();
  }
  while (!out.segments.empty() && out.segments.back().empty()) out.segments.pop_back();
  return out;
}

std::string JoinPrefix(const std::vector<std::string>& segments, size_t first) {
  std::string prefix;
  for (size_t i = first; i < segments.size(); ++i) prefix += segments[i] + "/";
  return prefix;
}

// Fills endpoint, account and path_style from an http(s) URL; returns the index of the
// first path segment after the account.
Result<size_t> ApplyEndpoint(const SplitUrl& url, std::string_view text, std::string_view what,
                             AzureBlobConfig* config) {
  if (url.scheme != "http" && url.scheme != "https") {
    return absl::InvalidArgumentError(
        fmt::format("{} '{}': the scheme must be https, http, abfss or abfs", what, text));
  }
  const size_t dot = url.host.find('.');
  const bool virtual_host = dot != std::string::npos && url.host.compare(dot, 6, ".blob.") == 0;
  size_t first = 0;
  if (virtual_host) {
    config->account = url.host.substr(0, dot);
    config->endpoint = fmt::format("{}://{}", url.scheme, url.authority);
  } else {
    if (url.segments.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("{} '{}': a path-style endpoint needs the account as its first path segment",
                      what, text));
    }
    config->account = url.segments[0];
    config->endpoint = fmt::format("{}://{}/{}", url.scheme, url.authority, config->account);
    first = 1;
  }
  config->path_style = !virtual_host;
  if (!IsValidAccount(config->account)) {
    return absl::InvalidArgumentError(
        fmt::format("{} '{}': account '{}' must be 3-24 lowercase letters and digits", what, text,
                    config->account));
  }
  return first;
}

Result<std::map<std::string, std::string>> ParseConnectionString(std::string_view text) {
  std::map<std::string, std::string> fields;
  while (!text.empty()) {
    const size_t semicolon = text.find(';');
    const std::string_view part = text.substr(0, semicolon);
    text = semicolon == std::string_view::npos ? "" : text.substr(semicolon + 1);
    if (Trim(part).empty()) continue;
    const size_t equals = part.find('=');  // values (keys, SAS) contain '=' themselves
    if (equals == std::string_view::npos) {
      return absl::InvalidArgumentError(fmt::format(
          "{}: '{}' is not Name=Value", kConnectionStringVar, Trim(part).substr(0, 40)));
    }
    fields[absl::AsciiStrToLower(std::string(Trim(part.substr(0, equals))))] =
        Trim(part.substr(equals + 1));
  }
  return fields;
}

// Credentials and endpoint as found in the environment.
struct EnvCredentials {
  std::string source;  // for messages: which variable(s)
  std::string account;
  std::string key;
  std::string sas;
  std::string endpoint;
};

Result<EnvCredentials> FromConnectionString(const std::string& text) {
  ASSIGN_OR_RETURN(auto fields, ParseConnectionString(text));
  const auto get = [&fields](const char* key) {
    auto it = fields.find(key);
    return it == fields.end() ? std::string() : it->second;
  };
  EnvCredentials creds;
  creds.source = kConnectionStringVar;
  if (absl::AsciiStrToLower(std::string(get("usedevelopmentstorage"))) == "true") {
    creds.account = kDevelopmentAccount;
    creds.key = kDevelopmentAccountKey;
    creds.endpoint = kDevelopmentEndpoint;
    return creds;
  }
  creds.account = get("accountname");
  creds.key = get("accountkey");
  creds.sas = get("sharedaccesssignature");
  creds.endpoint = get("blobendpoint");
  if (creds.endpoint.empty() && !creds.account.empty()) {
    const std::string protocol = get("defaultendpointsprotocol");
    const std::string suffix = get("endpointsuffix");
    creds.endpoint = fmt::format("{}://{}.blob.{}", protocol.empty() ? "https" : protocol,
                                 creds.account, suffix.empty() ? "core.windows.net" : suffix);
  }
  return creds;
}

Result<EnvCredentials> ReadEnvCredentials(const EnvLookup& env) {
  const std::string connection_string = env(kConnectionStringVar);
  if (!connection_string.empty()) return FromConnectionString(connection_string);
  EnvCredentials creds;
  creds.source = "AZURE_STORAGE_* variables";
  creds.account = env("AZURE_STORAGE_ACCOUNT");
  creds.key = env("AZURE_STORAGE_ACCESS_KEY");
  creds.sas = env("AZURE_STORAGE_SAS_TOKEN");
  creds.endpoint = env("AZURE_STORAGE_BLOB_ENDPOINT");
  return creds;
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) {
    const char* value = std::getenv(name.c_str());
    return value == nullptr ? std::string() : std::string(value);
  };
}

bool LooksLikeAzureBlobUrl(std::string_view url) {
  const std::string lower = absl::AsciiStrToLower(std::string(url.substr(0, 8)));
  return lower.starts_with("abfss://") || lower.starts_with("abfs://") ||
         lower.starts_with("https://") || lower.starts_with("http://");
}

Result<AzureBlobConfig> ParseAzureBlobUrl(std::string_view url) {
  constexpr std::string_view kWhat = "storage URL";
  ASSIGN_OR_RETURN(SplitUrl split, Split(url, kWhat));
  AzureBlobConfig config;
  size_t container_index = 0;
  if (split.scheme == "abfss" || split.scheme == "abfs") {
    const size_t at = split.authority.find('@');
    const size_t dfs = split.host.find(".dfs.");
    if (at == std::string::npos || dfs == std::string::npos) {
      return absl::InvalidArgumentError(fmt::format(
          "{} '{}': expected abfss://container@account.dfs.core.windows.net[/prefix]", kWhat, url));
    }
    config.container = split.authority.substr(0, at);
    config.account = split.host.substr(0, dfs);
    std::string blob_authority = split.authority.substr(at + 1);
    const size_t authority_dfs = absl::AsciiStrToLower(std::string(blob_authority)).find(".dfs.");
    blob_authority.replace(authority_dfs, 5, ".blob.");
    config.endpoint = fmt::format("https://{}", absl::AsciiStrToLower(std::string(blob_authority)));
    if (!IsValidAccount(config.account)) {
      return absl::InvalidArgumentError(
          fmt::format("{} '{}': account '{}' must be 3-24 lowercase letters and digits", kWhat, url,
                      config.account));
    }
  } else {
    ASSIGN_OR_RETURN(container_index, ApplyEndpoint(split, url, kWhat, &config));
    if (container_index >= split.segments.size()) {
      return absl::InvalidArgumentError(fmt::format("{} '{}': no container", kWhat, url));
    }
    config.container = split.segments[container_index];
    ++container_index;
  }
  if (!IsValidContainer(config.container)) {
    return absl::InvalidArgumentError(fmt::format(
        "{} '{}': container '{}' must be 3-63 lowercase letters, digits and single hyphens", kWhat,
        url, config.container));
  }
  config.prefix = JoinPrefix(split.segments, container_index);
  config.sas_token = split.query;  // a SAS URL carries its token as the query string
  return config;
}

Result<AzureBlobConfig> ResolveAzureBlobConfig(std::string_view url, const EnvLookup& env) {
  ASSIGN_OR_RETURN(AzureBlobConfig config, ParseAzureBlobUrl(url));
  ASSIGN_OR_RETURN(EnvCredentials creds, ReadEnvCredentials(env));
  if (!creds.endpoint.empty()) {
    ASSIGN_OR_RETURN(SplitUrl split, Split(creds.endpoint, creds.source + " blob endpoint"));
    AzureBlobConfig endpoint;
    ASSIGN_OR_RETURN(size_t rest, ApplyEndpoint(split, creds.endpoint,
                                                creds.source + " blob endpoint", &endpoint));
    if (rest != split.segments.size()) {
      return absl::InvalidArgumentError(fmt::format(
          "{}: blob endpoint '{}' must not name a container", creds.source, creds.endpoint));
    }
    if (endpoint.account != config.account) {
      return absl::InvalidArgumentError(fmt::format(
          "{}: blob endpoint '{}' is for account '{}' but the storage URL '{}' names '{}'",
          creds.source, creds.endpoint, endpoint.account, url, config.account));
    }
    config.endpoint = endpoint.endpoint;
    config.path_style = endpoint.path_style;
  }
  if (!creds.account.empty() && creds.account != config.account) {
    return absl::InvalidArgumentError(
        fmt::format("{}: account '{}' does not match account '{}' of the storage URL '{}'",
                    creds.source, creds.account, config.account, url));
  }
  if (!creds.key.empty()) {
    std::string decoded;
    if (!Base64Decode(creds.key, &decoded) || decoded.empty()) {
      return absl::InvalidArgumentError(
          fmt::format("{}: the account key is not base64", creds.source));
    }
    config.account_key = creds.key;
  }
  if (!creds.sas.empty()) {
    config.sas_token = creds.sas.front() == '?' ? creds.sas.substr(1) : creds.sas;
  }
  return config;
}

}  // namespace meridian::storage
