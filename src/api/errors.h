// The error body and the one mapping between Status and HTTP.
//
// Every error the control plane answers is {"code": "NOT_FOUND", "message": "...",
// "details": {}} with the HTTP status HttpStatusFor gives; StatusFromError reverses it on the
// client side, from the body's `code` when there is one (so that 409 ALREADY_EXISTS and 409
// FAILED_PRECONDITION stay apart) and from the HTTP status alone when there is none (a proxy,
// a load balancer or a server too old to write a body).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace meridian::api {

struct ErrorBody {
  std::string code;  // CodeName(status.code()), e.g. "NOT_FOUND"
  std::string message;
  std::map<std::string, std::string> details;

  friend bool operator==(const ErrorBody&, const ErrorBody&) = default;
};

// "NOT_FOUND" for kNotFound, ...; codes without a name of their own are "INTERNAL".
std::string_view CodeName(absl::StatusCode code);
std::optional<absl::StatusCode> CodeFromName(std::string_view name);

// The HTTP status the server answers a Status with (200 for OK).
int HttpStatusFor(const Status& status);

std::string ToJson(const ErrorBody& body);
// The body of an error answer: {code, message, details: {}}.
std::string ErrorJson(const Status& status);
Result<ErrorBody> ErrorBodyFromJson(std::string_view text);

// The Status an error answer stands for (never OK: a 2xx is an error the caller did not
// expect). 429 and 502/503 give kUnavailable, which callers retry.
Status StatusFromError(int http_status, std::string_view body);

// True when a token endpoint's error says the credential itself is refused (AADSTS70021: no
// matching federated identity record, AADSTS700016: no such application, AADSTS700027: the
// client assertion's signature is not valid): retrying cannot help, so a caller stops and
// says so. Any other token failure (a 503, a timeout) is transient.
bool IsRefusedCredential(std::string_view message);
bool IsRefusedCredential(const Status& status);

}  // namespace meridian::api
