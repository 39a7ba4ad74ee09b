#include "storage/azure_blob_store.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <functional>
#include <optional>
#include <string_view>
#include <thread>

#include "absl/strings/ascii.h"
#include "fmt/format.h"
#include "net/http_types.h"
#include "spdlog/spdlog.h"
#include "storage/azure_shared_key.h"
#include "storage/azure_xml.h"

namespace meridian::storage {
namespace {

bool IsRetryableStatus(int status) { return status == 408 || status == 429 || status >= 500; }

bool IsLoopbackEndpoint(std::string_view endpoint) {
  for (std::string_view host : {"http://127.0.0.1", "http://localhost", "http://[::1]"}) {
    if (endpoint.starts_with(host) &&
        (endpoint.size() == host.size() || endpoint[host.size()] == ':' ||
         endpoint[host.size()] == '/')) {
      return true;
    }
  }
  return false;
}

// Percent-encodes each '/'-separated segment of a blob name.
std::string EncodeBlobPath(std::string_view name) {
  std::string out;
  while (true) {
    const size_t slash = name.find('/');
    out += net::PercentEncode(name.substr(0, slash));
    if (slash == std::string_view::npos) return out;
    out += '/';
    name.remove_prefix(slash + 1);
  }
}

void AddConditionHeaders(const Condition& condition, net::HeaderList* headers) {
  if (!condition.if_match.empty()) headers->emplace_back("if-match", condition.if_match);
  if (condition.if_none_match_any) headers->emplace_back("if-none-match", "*");
}

void AddMetadataHeaders(const Metadata& metadata, net::HeaderList* headers) {
  // Keys are case-insensitive; lowercase keeps the signed header names canonical.
  for (const auto& [key, value] : metadata) {
    headers->emplace_back("x-ms-meta-" + absl::AsciiStrToLower(std::string(key)), value);
  }
}

Result<int64_t> ParseSizeHeader(const net::HttpResponse& response, std::string_view header,
                                std::string_view what) {
  const std::string text = response.Header(header);
  if (text.empty() || text.size() > 18 || !std::all_of(text.begin(), text.end(), ::isdigit)) {
    return absl::InternalError(
        fmt::format("{} response: header {} is '{}', not a size", what, header, text));
  }
  return std::stoll(text);
}

Result<std::string> RequireEtag(const net::HttpResponse& response, std::string_view what) {
  const std::string etag = response.Header("etag");
  if (etag.empty()) {
    return absl::InternalError(fmt::format("{} response: header etag is missing", what));
  }
  return QuoteEtag(etag);
}

Result<ObjectInfo> InfoFromHeaders(const std::string& name, const net::HttpResponse& response) {
  constexpr std::string_view kWhat = "Azure Get Blob Properties";
  ObjectInfo info;
  info.name = name;
  ASSIGN_OR_RETURN(info.size, ParseSizeHeader(response, "content-length", kWhat));
  ASSIGN_OR_RETURN(info.etag, RequireEtag(response, kWhat));
  const std::string modified = response.Header("last-modified");
  Result<int64_t> modified_ms = ParseHttpDate(modified);
  if (!modified_ms.ok()) {
    return absl::InternalError(fmt::format(
        "{} response: header last-modified '{}' is not an RFC 1123 date", kWhat, modified));
  }
  info.last_modified_unix_ms = *modified_ms;
  const std::string md5 = response.Header("content-md5");
  if (!md5.empty()) info.content_md5 = md5;
  for (const auto& [header, value] : response.headers) {
    if (header.starts_with("x-ms-meta-")) {
      info.metadata[absl::AsciiStrToLower(std::string(header.substr(10)))] = value;
    }
  }
  return info;
}

}  // namespace

struct AzureBlobStore::Request {
  std::string what;  // the service operation, for messages: "Put Blob"
  std::string method;
  std::string name;  // the object (relative to the root prefix); "" for container operations
  QueryParams query;
  net::HeaderList headers;  // lowercase names; date, version and authorization are added
  std::string body;
  std::optional<std::string_view> body_view;  // sent instead of `body`, not copied
  // When set, a 2xx body streams to it with each piece's offset in the object: a 206's
  // first byte is at `sink_offset`, a 200's (the whole object) at 0. Every attempt starts
  // over, so a retried request delivers its bytes again at the same offsets.
  std::function<bool(int64_t offset, std::string_view bytes)> sink;
  int64_t sink_offset = 0;
};

namespace {

// The one place where a final HTTP response becomes a Status (see object_store.h).
Status ErrorFromResponse(const net::HttpResponse& response, std::string_view what,
                         std::string_view name, std::string_view container,
                         const Condition& condition) {
  AzureError error = ParseErrorXml(response.body);
  const std::string code_header = response.Header("x-ms-error-code");
  if (!code_header.empty()) error.code = code_header;
  const std::string subject =
      name.empty() ? fmt::format("container '{}'", container) : fmt::format("'{}'", name);
  const std::string detail =
      fmt::format("{} {}: HTTP {} {}{}{}", what, subject, response.status, error.code,
                  error.message.empty() ? "" : ": ", error.message);
  switch (response.status) {
    case 404:
      if (error.code == "ContainerNotFound" || name.empty()) {
        return absl::NotFoundError(fmt::format("container '{}' not found ({})", container, detail));
      }
      return absl::NotFoundError(fmt::format("object '{}' not found", name));
    case 412:
      return ConditionFailedError(name, condition, "");
    case 409:
      if (condition.if_none_match_any && error.code == "BlobAlreadyExists") {
        return ConditionFailedError(name, condition, "");
      }
      if (error.code == "ContainerAlreadyExists") return absl::AlreadyExistsError(detail);
      return absl::AbortedError(detail);
    case 416:
      return absl::OutOfRangeError(detail);
    case 400:
      return absl::InvalidArgumentError(detail);
    case 401:
      return absl::UnauthenticatedError(detail);
    case 403:
      if (error.code == "AuthenticationFailed") return absl::UnauthenticatedError(detail);
      return absl::PermissionDeniedError(detail);
    default:
      if (IsRetryableStatus(response.status)) return absl::UnavailableError(detail);
      return absl::InternalError(fmt::format("unexpected response: {}", detail));
  }
}

}  // namespace

AzureBlobStore::AzureBlobStore(AzureBlobConfig config, AzureBlobOptions options)
    : config_(std::move(config)),
      options_(std::move(options)),
      endpoint_path_([this] {
        const size_t authority = config_.endpoint.find("://");
        const size_t slash = config_.endpoint.find('/', authority + 3);
        return slash == std::string::npos ? std::string() : config_.endpoint.substr(slash);
      }()),
      jitter_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}()) {}

Result<std::unique_ptr<AzureBlobStore>> AzureBlobStore::Create(AzureBlobConfig config,
                                                               AzureBlobOptions options) {
  if (config.endpoint.empty() || config.account.empty() || config.container.empty()) {
    return absl::InvalidArgumentError("Azure Blob config needs an endpoint, account and container");
  }
  if (!config.prefix.empty() && config.prefix.back() != '/') config.prefix += '/';
  const bool bearer = config.account_key.empty() && config.sas_token.empty();
  if (bearer && !options.token_source) {
    return absl::UnauthenticatedError(fmt::format(
        "no credentials for storage account '{}': set AZURE_STORAGE_ACCESS_KEY, "
        "AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING, or run with a workload "
        "identity",
        config.account));
  }
  if (bearer && !config.endpoint.starts_with("https://") && !IsLoopbackEndpoint(config.endpoint)) {
    return absl::FailedPreconditionError(
        fmt::format("refusing to send bearer tokens over plain http to {}", config.endpoint));
  }
  if (options.retry.max_attempts < 1) options.retry.max_attempts = 1;
  if (!options.transport) options.transport = NewHttpBlobTransport(options.http);
  if (!options.sleep) {
    options.sleep = [](int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
  }
  if (options.clock == nullptr) options.clock = base::SystemClock::Get();
  return std::unique_ptr<AzureBlobStore>(new AzureBlobStore(std::move(config), std::move(options)));
}

Result<std::unique_ptr<AzureBlobStore>> AzureBlobStore::Open(std::string_view url,
                                                             const EnvLookup& env,
                                                             AzureBlobOptions options) {
  ASSIGN_OR_RETURN(AzureBlobConfig config, ResolveAzureBlobConfig(url, env));
  return Create(std::move(config), std::move(options));
}

std::string AzureBlobStore::BlobPath(const std::string& name) const {
  if (name.empty()) return fmt::format("/{}", config_.container);
  return fmt::format("/{}/{}", config_.container, EncodeBlobPath(config_.prefix + name));
}

std::string AzureBlobStore::BlobUrl(const std::string& name) const {
  return config_.endpoint + BlobPath(name);
}

Result<net::HttpClientRequest> AzureBlobStore::BuildHttpRequest(const Request& request) {
  net::HttpClientRequest http;
  http.method = request.method;
  http.headers = request.headers;
  http.headers.emplace_back("x-ms-date", FormatHttpDate(options_.clock->NowUnixMs()));
  http.headers.emplace_back("x-ms-version", kAzureBlobApiVersion);
  const std::string_view body = request.body_view ? *request.body_view : request.body;
  if (request.method == "PUT") {
    // curl sends no Content-Length for an empty PUT, and the service requires one.
    http.headers.emplace_back("content-length", std::to_string(body.size()));
  }
  std::string query;
  for (const auto& [key, value] : request.query) {
    query += fmt::format("{}{}={}", query.empty() ? "" : "&", key, net::PercentEncode(value));
  }
  const std::string path = BlobPath(request.name);
  if (!config_.account_key.empty()) {
    const std::string to_sign = SharedKeyStringToSign(
        request.method, config_.account, endpoint_path_ + path, request.query, http.headers);
    ASSIGN_OR_RETURN(std::string authorization,
                     SharedKeyAuthorization(config_.account, config_.account_key, to_sign));
    http.headers.emplace_back("authorization", std::move(authorization));
  } else if (!config_.sas_token.empty()) {
    query += (query.empty() ? "" : "&") + config_.sas_token;
  } else {
    ASSIGN_OR_RETURN(std::string token, options_.token_source(kAzureStorageScope));
    http.headers.emplace_back("authorization", "Bearer " + token);
  }
  http.url = config_.endpoint + path + (query.empty() ? "" : "?" + query);
  http.body_view = body;  // `request` outlives the send
  if (request.sink) {
    http.body_sink = [&request, position = int64_t{-1}](int status,
                                                        std::string_view bytes) mutable {
      if (position < 0) position = status == 206 ? request.sink_offset : 0;
      const bool more = request.sink(position, bytes);
      position += static_cast<int64_t>(bytes.size());
      return more;
    };
  }
  return http;
}

int64_t AzureBlobStore::BackoffMs(int attempt) {
  const int doublings = std::min(attempt - 1, 30);
  const int64_t base =
      std::min(options_.retry.max_backoff_ms, options_.retry.initial_backoff_ms << doublings);
  std::lock_guard<std::mutex> lock(jitter_mu_);
  // Half fixed, half random: spreads out clients that failed together.
  return base / 2 + static_cast<int64_t>(jitter_() % static_cast<uint64_t>(base / 2 + 1));
}

Result<net::HttpResponse> AzureBlobStore::Execute(const Request& request) {
  const RetryPolicy& policy = options_.retry;
  Status last_error;
  for (int attempt = 1;; ++attempt) {
    ASSIGN_OR_RETURN(net::HttpClientRequest http, BuildHttpRequest(request));
    Result<net::HttpResponse> response = options_.transport->Send(http);
    int64_t delay_ms = -1;
    if (response.ok()) {
      if (!IsRetryableStatus(response->status)) return response;
      last_error = ErrorFromResponse(*response, request.what, request.name, config_.container, {});
      const std::string retry_after = response->Header("retry-after");
      if (!retry_after.empty() && std::all_of(retry_after.begin(), retry_after.end(), ::isdigit) &&
          retry_after.size() < 9) {
        delay_ms = std::stoll(retry_after) * 1000;
      } else if (Result<int64_t> when = ParseHttpDate(retry_after); when.ok()) {
        delay_ms = std::max<int64_t>(0, *when - options_.clock->NowUnixMs());
      }
      if (delay_ms >= 0) delay_ms = std::min(delay_ms, policy.max_retry_after_ms);
    } else if (absl::IsUnavailable(response.status()) ||
               absl::IsDeadlineExceeded(response.status())) {
      last_error = response.status();
    } else {
      return response.status();
    }
    if (attempt >= policy.max_attempts) break;
    if (delay_ms < 0) delay_ms = BackoffMs(attempt);
    spdlog::debug("{} {}: attempt {} failed ({}); retrying in {} ms", request.what, request.name,
                  attempt, std::string(last_error.message()), delay_ms);
    options_.sleep(delay_ms);
  }
  const std::string message = fmt::format("{} (gave up after {} attempts)",
                                          std::string(last_error.message()), policy.max_attempts);
  if (absl::IsDeadlineExceeded(last_error)) return absl::DeadlineExceededError(message);
  return absl::UnavailableError(message);
}

Status AzureBlobStore::CreateContainer() {
  Request request{"Create Container", "PUT", "", {{"restype", "container"}}, {}, ""};
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status == 201) return OkStatus();
  Status status = ErrorFromResponse(response, request.what, "", config_.container, {});
  return absl::IsAlreadyExists(status) ? OkStatus() : status;
}

Status AzureBlobStore::DeleteContainer() {
  Request request{"Delete Container", "DELETE", "", {{"restype", "container"}}, {}, ""};
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status == 202) return OkStatus();
  return ErrorFromResponse(response, request.what, "", config_.container, {});
}

Result<ObjectInfo> AzureBlobStore::Head(const std::string& name) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  Request request{"Get Blob Properties", "HEAD", name, {}, {}, ""};
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status != 200) {
    return ErrorFromResponse(response, request.what, name, config_.container, {});
  }
  return InfoFromHeaders(name, response);
}

namespace {

// A read of `info` at `offset` that the service answered with no bytes (416, or a zero-length
// read): fine at the object's end (and, when `inside_is_ok`, anywhere inside it); the
// condition's error when the version is another; else kOutOfRange.
Status EmptyRangeStatus(const ObjectInfo& info, int64_t offset, const Condition& condition,
                        bool inside_is_ok) {
  if (!condition.if_match.empty() && info.etag != condition.if_match) {
    return ConditionFailedError(info.name, condition, info.etag);
  }
  if (offset == info.size || (inside_is_ok && offset < info.size)) return OkStatus();
  return absl::OutOfRangeError(fmt::format("offset {} is past the end of '{}' ({} bytes)",
                                           offset, info.name, info.size));
}

}  // namespace

Result<std::string> AzureBlobStore::GetRange(const std::string& name, int64_t offset,
                                             int64_t length, const Condition& condition) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  if (condition.if_none_match_any) {
    return absl::InvalidArgumentError("reads take if_match conditions only");
  }
  if (offset < 0 || length < -1) {
    return absl::InvalidArgumentError(
        fmt::format("bad range offset {} length {} for '{}'", offset, length, name));
  }
  Request request{"Get Blob", length == 0 ? "HEAD" : "GET", name, {}, {}, ""};
  AddConditionHeaders(condition, &request.headers);
  if (length > 0) {
    request.headers.emplace_back("x-ms-range",
                                 fmt::format("bytes={}-{}", offset, offset + length - 1));
  } else if (length < 0) {
    request.headers.emplace_back("x-ms-range", fmt::format("bytes={}-", offset));
  }
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status == 416 || (length == 0 && response.status == 200)) {
    // A range starting at the end: "" when the object is exactly that long.
    ASSIGN_OR_RETURN(ObjectInfo info, length == 0 ? InfoFromHeaders(name, response) : Head(name));
    RETURN_IF_ERROR(EmptyRangeStatus(info, offset, condition, /*inside_is_ok=*/length == 0));
    return std::string();
  }
  if (response.status == 200) {  // the whole object: the service ignored the range
    if (offset > static_cast<int64_t>(response.body.size())) {
      return absl::OutOfRangeError(fmt::format("offset {} is past the end of '{}'", offset, name));
    }
    return response.body.substr(offset, length < 0 ? std::string::npos : length);
  }
  if (response.status != 206) {
    return ErrorFromResponse(response, request.what, name, config_.container, condition);
  }
  if (length > 0 && static_cast<int64_t>(response.body.size()) > length) {
    return absl::InternalError(fmt::format("Get Blob '{}': asked for {} bytes, got {}", name,
                                           length, response.body.size()));
  }
  return std::move(response.body);
}

Result<int64_t> AzureBlobStore::ReadRange(const std::string& name, int64_t offset,
                                          int64_t length, const Condition& condition,
                                          const RangeSink& sink) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  if (condition.if_none_match_any) {
    return absl::InvalidArgumentError("reads take if_match conditions only");
  }
  if (offset < 0 || length <= 0) {
    return absl::InvalidArgumentError(
        fmt::format("bad range offset {} length {} for '{}'", offset, length, name));
  }
  Request request{"Get Blob", "GET", name, {}, {}, ""};
  AddConditionHeaders(condition, &request.headers);
  request.headers.emplace_back("x-ms-range",
                               fmt::format("bytes={}-{}", offset, offset + length - 1));
  const int64_t end = offset + length;
  int64_t delivered_end = offset;  // of the latest attempt
  Status sink_error;
  bool past_end = false;  // a whole-object 200 went past the range: stopped on purpose
  request.sink_offset = offset;
  request.sink = [&](int64_t at, std::string_view bytes) {
    // A 200 (a service that ignored the range) starts at 0: keep only the range's part.
    const int64_t from = std::max(at, offset);
    const int64_t to = std::min(at + static_cast<int64_t>(bytes.size()), end);
    if (from >= to) {
      past_end = at >= end;
      return !past_end;
    }
    sink_error = sink(from, bytes.substr(from - at, to - from));
    if (from == offset) delivered_end = offset;  // a retry starts over
    delivered_end = std::max(delivered_end, to);
    return sink_error.ok();
  };
  Result<net::HttpResponse> response = Execute(request);
  if (!sink_error.ok()) return sink_error;
  if (past_end) return delivered_end - offset;
  RETURN_IF_ERROR(response.status());
  if (response->status == 416) {
    // A range starting at the end: nothing, when the object is exactly that long.
    ASSIGN_OR_RETURN(ObjectInfo info, Head(name));
    RETURN_IF_ERROR(EmptyRangeStatus(info, offset, condition, /*inside_is_ok=*/false));
    return 0;
  }
  if (response->status != 206 && response->status != 200) {
    return ErrorFromResponse(*response, request.what, name, config_.container, condition);
  }
  return delivered_end - offset;
}

Result<std::string> AzureBlobStore::Put(const std::string& name, std::string_view data,
                                        const Metadata& metadata, const Condition& condition) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  RETURN_IF_ERROR(ValidateMetadata(metadata));
  RETURN_IF_ERROR(ValidateCondition(condition));
  Request request{"Put Blob", "PUT", name, {}, {}, ""};
  request.body_view = data;
  request.headers = {{"x-ms-blob-type", "BlockBlob"},
                     {"content-type", "application/octet-stream"},
                     {"content-md5", ContentMd5(data)}};
  AddMetadataHeaders(metadata, &request.headers);
  AddConditionHeaders(condition, &request.headers);
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status != 201) {
    return ErrorFromResponse(response, request.what, name, config_.container, condition);
  }
  return RequireEtag(response, request.what);
}

Status AzureBlobStore::StageBlock(const std::string& name, const std::string& block_id,
                                  std::string_view data) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  RETURN_IF_ERROR(ValidateBlockId(block_id));
  Request request{"Put Block", "PUT", name, {{"comp", "block"}, {"blockid", block_id}}, {}, ""};
  request.body_view = data;
  request.headers = {{"content-type", "application/octet-stream"},
                     {"content-md5", ContentMd5(data)}};
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status != 201) {
    return ErrorFromResponse(response, request.what, name, config_.container, {});
  }
  return OkStatus();
}

Result<std::string> AzureBlobStore::CommitBlocks(const std::string& name,
                                                 const std::vector<std::string>& block_ids,
                                                 const Metadata& metadata,
                                                 const Condition& condition) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  RETURN_IF_ERROR(ValidateMetadata(metadata));
  RETURN_IF_ERROR(ValidateCondition(condition));
  RETURN_IF_ERROR(ValidateBlockList(name, block_ids));
  Request request{"Put Block List",        "PUT", name,
                  {{"comp", "blocklist"}}, {},    BuildBlockListXml(block_ids)};
  request.headers = {{"content-type", "application/xml"}};
  AddMetadataHeaders(metadata, &request.headers);
  AddConditionHeaders(condition, &request.headers);
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status != 201) {
    return ErrorFromResponse(response, request.what, name, config_.container, condition);
  }
  return RequireEtag(response, request.what);
}

Result<ListPage> AzureBlobStore::List(const ListOptions& options) {
  if (options.max_results <= 0) {
    return absl::InvalidArgumentError(
        fmt::format("max_results must be positive, not {}", options.max_results));
  }
  Request request{"List Blobs", "GET", "", {}, {}, ""};
  request.query = {{"restype", "container"},
                   {"comp", "list"},
                   {"include", "metadata"},
                   {"maxresults", std::to_string(std::min(options.max_results, kMaxListResults))}};
  const std::string prefix = config_.prefix + options.prefix;
  if (!prefix.empty()) request.query.emplace_back("prefix", prefix);
  if (!options.delimiter.empty()) request.query.emplace_back("delimiter", options.delimiter);
  if (!options.marker.empty()) request.query.emplace_back("marker", options.marker);
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status != 200) {
    return ErrorFromResponse(response, request.what, "", config_.container, {});
  }
  return ParseListBlobsXml(response.body, config_.prefix);
}

Result<std::string> AzureBlobStore::SetMetadata(const std::string& name, const Metadata& metadata,
                                                const Condition& condition) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  RETURN_IF_ERROR(ValidateMetadata(metadata));
  if (condition.if_none_match_any) {
    return absl::InvalidArgumentError("SetMetadata takes if_match conditions only");
  }
  Request request{"Set Blob Metadata", "PUT", name, {{"comp", "metadata"}}, {}, ""};
  AddMetadataHeaders(metadata, &request.headers);
  AddConditionHeaders(condition, &request.headers);
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status != 200) {
    return ErrorFromResponse(response, request.what, name, config_.container, condition);
  }
  return RequireEtag(response, request.what);
}

Status AzureBlobStore::Delete(const std::string& name, const Condition& condition) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  if (condition.if_none_match_any) {
    return absl::InvalidArgumentError("Delete takes if_match conditions only");
  }
  Request request{"Delete Blob", "DELETE", name, {}, {}, ""};
  AddConditionHeaders(condition, &request.headers);
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status != 202) {
    return ErrorFromResponse(response, request.what, name, config_.container, condition);
  }
  return OkStatus();
}

Result<std::string> AzureBlobStore::Copy(const std::string& source,
                                         const std::string& destination) {
  RETURN_IF_ERROR(ValidateObjectName(source));
  RETURN_IF_ERROR(ValidateObjectName(destination));
  std::string source_url = BlobUrl(source);
  // With Shared Key or a bearer token the service authorizes a same-account source itself;
  // with SAS the source URL must carry the token.
  if (config_.account_key.empty() && !config_.sas_token.empty()) {
    source_url += "?" + config_.sas_token;
  }
  Request request{"Copy Blob", "PUT", destination, {}, {{"x-ms-copy-source", source_url}}, ""};
  ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
  if (response.status == 404) {
    Status status = ErrorFromResponse(response, request.what, source, config_.container, {});
    return status;
  }
  if (response.status != 202 && response.status != 201) {
    return ErrorFromResponse(response, request.what, destination, config_.container, {});
  }
  if (response.Header("x-ms-copy-status") == "success") return RequireEtag(response, request.what);
  return WaitForCopy(destination);
}

Result<std::string> AzureBlobStore::WaitForCopy(const std::string& destination) {
  const int64_t deadline_ms = options_.clock->MonotonicMs() + options_.copy_timeout_ms;
  int64_t delay_ms = 100;
  while (true) {
    Request request{"Get Blob Properties", "HEAD", destination, {}, {}, ""};
    ASSIGN_OR_RETURN(net::HttpResponse response, Execute(request));
    if (response.status != 200) {
      return ErrorFromResponse(response, request.what, destination, config_.container, {});
    }
    const std::string state = response.Header("x-ms-copy-status");
    if (state == "success" || state.empty()) return RequireEtag(response, request.what);
    if (state != "pending") {
      return absl::AbortedError(fmt::format("copy to '{}' ended {}: {}", destination, state,
                                            response.Header("x-ms-copy-status-description")));
    }
    if (options_.clock->MonotonicMs() >= deadline_ms) {
      return absl::DeadlineExceededError(fmt::format("copy to '{}' still pending after {} ms",
                                                     destination, options_.copy_timeout_ms));
    }
    options_.sleep(delay_ms);
    delay_ms = std::min<int64_t>(delay_ms * 2, 5'000);
  }
}

}  // namespace meridian::storage
