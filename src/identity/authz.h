// Authorize: what a caller's role grants allow, as one pure function (no I/O, no state).
//
//   Admin      every action on targets within its scope (identity, audit and creating
//              clouds sit outside any cloud, so they need an Admin grant at "/").
//   Developer  within its scope: read clouds and resources, submit jobs (and upload their
//              packages), read and terminate only its own jobs (owner == subject), read
//              their output, and register compute configs (archiving them is for Admins).
//   Viewer     within its scope: read clouds, resources and jobs (anyone's). A job's output
//              only when the caller is a person: a script or workload holding Viewer sees
//              jobs' states, never what they printed.
//   Operator   only the operator routes (heartbeat, watch, reports) of cloud resources its
//              scope covers; an operator's grant names its one resource.
//
// A workload token minted for one job attempt (Caller::attempt) may, without any grant,
// read that job (its status, attempts, events) and its output while that attempt is the
// job's live one (Target::live_attempt): once the attempt has ended or been superseded it
// may not. Nothing else: no listing, no other job, no change.
//
// A target's scope comes from its cloud and resource ("" cloud: outside any cloud, covered
// only by "/"). Grants whose scope does not parse are ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "identity/roles.h"

namespace meridian::identity {

enum class Action {
  kReadCloud,      // list/get clouds and cloud resources, capacity
  kManageCloud,    // create/delete clouds and cloud resources
  kSubmitJob,      // submit a job, upload its package
  kReadJob,        // list/get jobs: state, attempts, events
  kReadJobOutput,  // a job's logs (what it printed)
  kTerminateJob,
  kOperatorConnect,  // an operator's heartbeat, watch and reports
  kReadIdentity,     // list applications, credentials, role assignments
  kManageIdentity,   // change them
  kReadAudit,        // list and verify the audit log
  kCreateComputeConfig,   // register a named compute config or a new version of one
  kArchiveComputeConfig,  // stop new jobs from using a named compute config
};
std::string_view ActionName(Action action);

// One placement of one job: what a workload token was minted for.
struct AttemptRef {
  std::string job_id;
  int attempt = 0;
  int64_t epoch = 0;
  bool operator==(const AttemptRef&) const = default;
};

// Who asks, as a validated access token says.
struct Caller {
  std::string subject;  // the token's sub: an app id or a user subject
  bool person = false;  // a user (idtyp "user"), not an application or workload
  std::vector<RoleGrant> grants;
  std::optional<AttemptRef> attempt;  // set only on workload tokens of one job attempt
};

struct Target {
  std::string cloud;     // "" outside any cloud
  std::string resource;  // "" when not about one cloud resource
  std::string owner;     // a job's owner (its submitter's subject); "" otherwise
  // A job's attempt that has neither ended nor been superseded; nullopt when it has none
  // (or the target is not a job).
  std::optional<AttemptRef> live_attempt;
};

// OK, or kPermissionDenied saying which action on what was refused to the caller.
Status Authorize(const Caller& caller, Action action, const Target& target);

}  // namespace meridian::identity
