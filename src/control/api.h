// ApiHandler: the REST API under /api/v1 (docs/api.md), plus /healthz, /readyz and /metrics.
// Parses and validates requests, calls the ControlPlane, and maps Status to HTTP in one
// place. Errors are JSON {code, message, details} with the matching HTTP status.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "control/auth.h"
#include "control/control_plane.h"
#include "identity/authz.h"
#include "net/http_types.h"

namespace meridian::control {

struct ApiOptions {
  std::string package_dir;  // content-addressed working_dir packages
  int64_t max_package_bytes = int64_t{256} << 20;
  int64_t max_request_bytes = int64_t{1} << 20;
  int64_t max_log_chunk_bytes = int64_t{1} << 20;
  // Threads for work that blocks on a commit: audit appends and token exchanges. Waiting
  // threads share one commit (group commit), so more of them means more exchanges per sync.
  int blocking_threads = 32;
  size_t max_blocking_queue = 10'000;
  // Refused reads audited per actor and minute; past it they are counted in the server log
  // instead, so a job that probes in a loop cannot grow the audit log without bound.
  int max_audited_refusals_per_minute = 60;
};

class IdentityPlane;
class WorkerPool;

class ApiHandler {
 public:
  // `plane`, `auth` and `identity` must outlive the handler. Without `identity` (unit tests
  // of the API) the identity endpoints answer 404 and nothing is audited.
  ApiHandler(ControlPlane* plane, Authenticator* auth, ApiOptions options,
             IdentityPlane* identity = nullptr);
  ~ApiHandler();

  void Handle(net::HttpRequest request, net::Responder respond);

  // The body limit for a request, for HttpsServerOptions::body_limit.
  int64_t BodyLimit(std::string_view method, std::string_view path) const;

 private:
  struct Call;
  void HandleClouds(Call& call);
  void HandleResources(Call& call);
  void HandleQuotas(Call& call);
  void HandleJobs(Call& call);
  void ListJobs(Call& call);
  void SubmitJob(Call& call);
  void ReadJobLog(Call& call);
  void HandlePackages(Call& call);
  void HandleOperators(Call& call);
  void HandleComputeConfigs(Call& call);  // api_compute_configs.cc
  void NotFound(Call& call);
  std::string PackagePath(const std::string& digest) const;

  // ---- authorisation (api.cc) ----
  // Answers 403 and returns false when the caller may not do `action` on `target`.
  bool Allowed(Call& call, identity::Action action, const identity::Target& target);
  // The same for an action on something not named yet (a listing, an upload): allowed when
  // one of the caller's grants allows it at the grant's own scope.
  bool AllowedSomewhere(Call& call, identity::Action action);
  std::string CloudOfResource(const std::string& resource);
  identity::Target JobTarget(const nlohmann::json& job);
  // Keeps the items of a listing the caller may see.
  nlohmann::json FilterJobs(const Call& call, nlohmann::json listing);
  // Wraps the responder of a mutating call, and of a read by an application (a workload, an
  // operator, a script), so that the answer (for such a read: a refusal only) is audited
  // before it is sent.
  void AuditCall(Call& call);

  // ---- identity (api_identity.cc) ----
  // The unauthenticated endpoints (discovery, keys, token endpoint, cluster issuers); false
  // when `request` is not one of them.
  bool HandlePublic(net::HttpRequest& request, net::Responder& respond);
  void HandleTokenEndpoint(net::HttpRequest request, net::Responder respond);
  void HandleIdentity(Call& call);
  void HandleAudit(Call& call);
  void MintOperatorToken(Call& call, const std::string& resource);
  // Adds the workload identity of `resource` to an assignment listing.
  void AddWorkloadIdentity(const std::string& resource, api::AssignmentList& listing) const;
  // Register (or remove) a LOCAL resource's identities, then answer with `result`. Called
  // from commit callbacks: the directory's own commits run on a blocking worker.
  void OnResourceCreated(Result<nlohmann::json> result, net::Responder respond);
  void OnResourceDeleted(const std::string& resource, Result<nlohmann::json> result,
                         net::Responder respond);

  ControlPlane* const plane_;
  Authenticator* const auth_;
  const ApiOptions options_;
  IdentityPlane* const identity_;
  std::unique_ptr<WorkerPool> blocking_;  // null without identity

  // Whether one more refused read of `actor` may be audited now (see ApiOptions).
  bool TakeRefusalBudget(const std::string& actor);
  struct RefusalWindow {
    int64_t start_ms = 0;
    int audited = 0;
    int dropped = 0;
  };
  std::mutex refusals_mu_;
  std::map<std::string, RefusalWindow> refusals_ ABSL_GUARDED_BY(refusals_mu_);  // by actor
};

// The HTTP status for a Status code (the one mapping of the server side).
int HttpStatusFor(const Status& status);
// The JSON error answer {code, message, details} for a Status.
net::HttpResponse ErrorResponse(const Status& status);
// A JSON answer from JSON text.
net::HttpResponse JsonTextResponse(int status, std::string body);

}  // namespace meridian::control
