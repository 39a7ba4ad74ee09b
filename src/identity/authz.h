// Authorize: what a principal's role grants allow, as one pure function (no I/O, no state).
//
//   Admin      every action on targets within its scope (identity, audit and creating
//              clouds sit outside any cloud, so they need an Admin grant at "/").
//   Developer  within its scope: read clouds and resources, submit jobs (and upload their
//              packages), read and terminate only its own jobs (owner == subject), register
//              compute configs (archiving them is for Admins).
//   Viewer     within its scope: read clouds, resources and jobs (anyone's). Nothing else.
//   Operator   only the operator routes (heartbeat, watch, reports) of cloud resources its
//              scope covers; an operator's grant names its one resource.
//
// A target's scope comes from its cloud and resource ("" cloud: outside any cloud, covered
// only by "/"). Grants whose scope does not parse are ignored.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "identity/roles.h"

namespace meridian::identity {

enum class Action {
  kReadCloud,    // list/get clouds and cloud resources, capacity
  kManageCloud,  // create/delete clouds and cloud resources
  kSubmitJob,    // submit a job, upload its package
  kReadJob,      // get a job, its attempts, its logs
  kTerminateJob,
  kOperatorConnect,  // an operator's heartbeat, watch and reports
  kReadIdentity,     // list applications, credentials, role assignments
  kManageIdentity,   // change them
  kReadAudit,        // list and verify the audit log
  kCreateComputeConfig,   // register a named compute config or a new version of one
  kArchiveComputeConfig,  // stop new jobs from using a named compute config
};
std::string_view ActionName(Action action);

struct Target {
  std::string cloud;     // "" outside any cloud
  std::string resource;  // "" when not about one cloud resource
  std::string owner;     // a job's owner (its submitter's subject); "" otherwise
};

// OK, or kPermissionDenied saying which action on what was refused to `subject`.
Status Authorize(std::string_view subject, const std::vector<RoleGrant>& grants, Action action,
                 const Target& target);

}  // namespace meridian::identity
