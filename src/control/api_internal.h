// Pieces the API's route files (api.cc, api_identity.cc) share. Internal to the control
// component: include it from those files only (it brings in nlohmann/json).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/api.h"
#include "control/auth.h"
#include "identity/audit.h"
#include "net/http_types.h"

namespace meridian::control {

net::HttpResponse JsonResponse(int status, const nlohmann::json& body);
// Answers with `ok_status` and the JSON value, or with the error.
ControlPlane::JsonDone Reply(net::Responder respond, int ok_status = 200);
// The body as a JSON object, or kInvalidArgument.
Result<nlohmann::json> ParseBody(const net::HttpRequest& request);
Result<int64_t> QueryInt(const net::HttpRequest& request, const std::string& name,
                         int64_t fallback);
std::string QueryString(const net::HttpRequest& request, const std::string& name);

// Whether the path `parts` match `pattern`, part by part; "*" matches any one part.
inline bool PathMatches(const std::vector<std::string>& parts,
                        std::initializer_list<std::string_view> pattern) {
  if (pattern.size() != parts.size()) return false;
  size_t i = 0;
  for (std::string_view want : pattern) {
    if (want != "*" && want != parts[i]) return false;
    ++i;
  }
  return true;
}

// Whether `principal` may do `action` on `target` (identity::Authorize over its grants).
bool Can(const Principal& principal, identity::Action action, const identity::Target& target);
// Whether one of its grants allows `action` at the grant's own scope (for listings and
// uploads, where no one target is named); a developer counts as owner.
bool CanSomewhere(const Principal& principal, identity::Action action);

// The job's newest attempt when it has neither ended nor been superseded (a job's JSON).
std::optional<identity::AttemptRef> LiveAttempt(const nlohmann::json& job);

// One request on its way through the routes: the path split on '/' after /api/v1/.
struct ApiHandler::Call {
  net::HttpRequest request;
  net::Responder respond;
  std::vector<std::string> parts;
  Principal principal;
  std::string correlation_id;  // x-request-id when the client sent one, else new
  // For a submission: its audit entry, which the control plane writes in the job's own
  // commit when it accepts the job (AuditMutation records a refusal itself).
  std::optional<identity::AuditEntry> submit_audit;

  const std::string& method() const { return request.method; }
  bool Is(std::initializer_list<std::string_view> pattern) const {
    return PathMatches(parts, pattern);
  }
  void Fail(const Status& status) { respond(ErrorResponse(status)); }
  void BadMethod(const std::string& allowed);
};

}  // namespace meridian::control
