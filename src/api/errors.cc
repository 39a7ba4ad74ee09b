#include "api/errors.h"

#include <array>
#include <utility>

#include "api/json_fields.h"
#include "fmt/format.h"

namespace meridian::api {

using nlohmann::json;

namespace {

constexpr std::array<std::pair<absl::StatusCode, std::string_view>, 14> kCodeNames = {{
    {absl::StatusCode::kOk, "OK"},
    {absl::StatusCode::kInvalidArgument, "INVALID_ARGUMENT"},
    {absl::StatusCode::kNotFound, "NOT_FOUND"},
    {absl::StatusCode::kAlreadyExists, "ALREADY_EXISTS"},
    {absl::StatusCode::kFailedPrecondition, "FAILED_PRECONDITION"},
    {absl::StatusCode::kUnavailable, "UNAVAILABLE"},
    {absl::StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED"},
    {absl::StatusCode::kAborted, "ABORTED"},
    {absl::StatusCode::kResourceExhausted, "RESOURCE_EXHAUSTED"},
    {absl::StatusCode::kUnauthenticated, "UNAUTHENTICATED"},
    {absl::StatusCode::kPermissionDenied, "PERMISSION_DENIED"},
    {absl::StatusCode::kUnimplemented, "UNIMPLEMENTED"},
    {absl::StatusCode::kOutOfRange, "OUT_OF_RANGE"},
    {absl::StatusCode::kInternal, "INTERNAL"},
}};

// The code an HTTP status stands for when the body names none.
absl::StatusCode CodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
    case 405:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kFailedPrecondition;
    case 413:
      return absl::StatusCode::kResourceExhausted;
    case 429:  // too many requests: come back later
    case 502:
    case 503:
      return absl::StatusCode::kUnavailable;
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

std::string_view CodeName(absl::StatusCode code) {
  for (const auto& [known, name] : kCodeNames) {
    if (known == code) return name;
  }
  return "INTERNAL";
}

std::optional<absl::StatusCode> CodeFromName(std::string_view name) {
  for (const auto& [code, known] : kCodeNames) {
    if (known == name) return code;
  }
  return std::nullopt;
}

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 413;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ToJson(const ErrorBody& body) {
  json details = json::object();
  for (const auto& [key, value] : body.details) details[key] = value;
  return internal::Dump({{"code", body.code}, {"message", body.message}, {"details", details}});
}

std::string ErrorJson(const Status& status) {
  return ToJson(ErrorBody{std::string(CodeName(status.code())), std::string(status.message()), {}});
}

Result<ErrorBody> ErrorBodyFromJson(std::string_view text) {
  ASSIGN_OR_RETURN(json value, internal::ParseObject(text, "error"));
  ErrorBody body;
  internal::FieldReader reader(value, "", "error");
  reader.String("code", &body.code, /*required=*/true);
  reader.String("message", &body.message);
  reader.StringMap("details", &body.details);
  RETURN_IF_ERROR(reader.Finish());
  return body;
}

Status StatusFromError(int http_status, std::string_view body) {
  Result<ErrorBody> error = ErrorBodyFromJson(body);
  absl::StatusCode code = CodeForHttpStatus(http_status);
  std::string message;
  if (error.ok()) {
    std::optional<absl::StatusCode> named = CodeFromName(error->code);
    if (named.has_value() && *named != absl::StatusCode::kOk) code = *named;
    message = error->message;
  }
  if (message.empty()) {
    constexpr size_t kMaxQuotedBytes = 200;
    message = fmt::format("HTTP {}: {}", http_status, body.substr(0, kMaxQuotedBytes));
  }
  return Status(code, message);
}

bool IsRefusedCredential(std::string_view message) {
  for (std::string_view code : {"AADSTS70021", "AADSTS700016", "AADSTS700027"}) {
    for (size_t at = message.find(code); at != std::string_view::npos;
         at = message.find(code, at + 1)) {
      size_t end = at + code.size();
      // AADSTS70021 must not match AADSTS700211.
      if (end == message.size() || message[end] < '0' || message[end] > '9') return true;
    }
  }
  return false;
}

bool IsRefusedCredential(const Status& status) {
  return !status.ok() && IsRefusedCredential(std::string(status.message()));
}

}  // namespace meridian::api
