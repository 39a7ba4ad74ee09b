#include "identity/authz.h"

#include "fmt/format.h"

namespace meridian::identity {
namespace {

bool IsOwnJobAction(Action action) {
  return action == Action::kReadJob || action == Action::kReadJobOutput ||
         action == Action::kTerminateJob;
}

// Whether `role` allows `action` on `target`, scope aside.
bool RoleAllows(Role role, const Caller& caller, Action action, const Target& target) {
  switch (role) {
    case Role::kAdmin:
      return true;
    case Role::kDeveloper:
      if (action == Action::kReadCloud || action == Action::kSubmitJob ||
          action == Action::kCreateComputeConfig) {
        return true;
      }
      return IsOwnJobAction(action) && !target.owner.empty() && target.owner == caller.subject;
    case Role::kViewer:
      if (action == Action::kReadJobOutput) return caller.person;
      return action == Action::kReadCloud || action == Action::kReadJob;
    case Role::kOperator:
      return action == Action::kOperatorConnect && !target.resource.empty();
  }
  return false;
}

// The one thing a workload token of an attempt may do without a grant: read its own job
// while the attempt is live.
bool AttemptAllows(const Caller& caller, Action action, const Target& target) {
  if (!caller.attempt.has_value() || !target.live_attempt.has_value()) return false;
  if (action != Action::kReadJob && action != Action::kReadJobOutput) return false;
  return !caller.attempt->job_id.empty() && *caller.attempt == *target.live_attempt;
}

}  // namespace

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kReadCloud:
      return "read cloud";
    case Action::kManageCloud:
      return "manage cloud";
    case Action::kSubmitJob:
      return "submit job";
    case Action::kReadJob:
      return "read job";
    case Action::kReadJobOutput:
      return "read job output";
    case Action::kTerminateJob:
      return "terminate job";
    case Action::kOperatorConnect:
      return "operator connect";
    case Action::kReadIdentity:
      return "read identity";
    case Action::kManageIdentity:
      return "manage identity";
    case Action::kReadAudit:
      return "read audit";
    case Action::kCreateComputeConfig:
      return "create compute config";
    case Action::kArchiveComputeConfig:
      return "archive compute config";
  }
  return "unknown";
}

Status Authorize(const Caller& caller, Action action, const Target& target) {
  if (AttemptAllows(caller, action, target)) return OkStatus();
  // A resource named without its cloud is outside every cloud scope: deny rather than guess.
  Scope target_scope{target.cloud, target.cloud.empty() ? "" : target.resource};
  for (const RoleGrant& grant : caller.grants) {
    Result<Scope> granted = ParseScope(grant.scope);
    if (!granted.ok() || !ScopeCovers(*granted, target_scope)) continue;
    if (RoleAllows(grant.role, caller, action, target)) return OkStatus();
  }
  std::string what = target.cloud.empty() ? "/" : ScopeText(target_scope);
  if (!target.owner.empty()) what += fmt::format(" (owned by {})", target.owner);
  std::string who = caller.subject;
  if (caller.attempt.has_value()) {
    who += fmt::format(" (workload of job {} attempt {})", caller.attempt->job_id,
                       caller.attempt->attempt);
  }
  return absl::PermissionDeniedError(
      fmt::format("{} may not {} on {}", who, ActionName(action), what));
}

}  // namespace meridian::identity
