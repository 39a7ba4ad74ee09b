// ApiHandler: the REST API under /api/v1 (docs/api.md), plus /healthz, /readyz and /metrics.
// Parses and validates requests, calls the ControlPlane, and maps Status to HTTP in one
// place. Errors are JSON {code, message, details} with the matching HTTP status.
#pragma once

#include <cstdint>
#include <string>

#include "control/auth.h"
#include "control/control_plane.h"
#include "net/http_types.h"

namespace meridian::control {

struct ApiOptions {
  std::string package_dir;  // content-addressed working_dir packages
  int64_t max_package_bytes = int64_t{256} << 20;
  int64_t max_request_bytes = int64_t{1} << 20;
  int64_t max_log_chunk_bytes = int64_t{1} << 20;
};

class ApiHandler {
 public:
  // `plane` and `auth` must outlive the handler.
  ApiHandler(ControlPlane* plane, Authenticator* auth, ApiOptions options);

  void Handle(net::HttpRequest request, net::Responder respond);

  // The body limit for a request, for HttpsServerOptions::body_limit.
  int64_t BodyLimit(std::string_view method, std::string_view path) const;

 private:
  struct Call;
  void HandleClouds(Call& call);
  void HandleResources(Call& call);
  void HandleJobs(Call& call);
  void ListJobs(Call& call);
  void SubmitJob(Call& call);
  void ReadJobLog(Call& call);
  void HandlePackages(Call& call);
  void HandleOperators(Call& call);
  void NotFound(Call& call);
  std::string PackagePath(const std::string& digest) const;

  ControlPlane* const plane_;
  Authenticator* const auth_;
  const ApiOptions options_;
};

// The HTTP status for a Status code (the one mapping of the server side).
int HttpStatusFor(const Status& status);

}  // namespace meridian::control
