#include "identity/authz.h"

#include "fmt/format.h"

namespace meridian::identity {
namespace {

bool IsJobAction(Action action) {
  return action == Action::kReadJob || action == Action::kTerminateJob;
}

// Whether `role` allows `action` on `target`, scope aside.
bool RoleAllows(Role role, std::string_view subject, Action action, const Target& target) {
  switch (role) {
    case Role::kAdmin:
      return true;
    case Role::kDeveloper:
      if (action == Action::kReadCloud || action == Action::kSubmitJob ||
          action == Action::kCreateComputeConfig) {
        return true;
      }
      return IsJobAction(action) && !target.owner.empty() && target.owner == subject;
    case Role::kViewer:
      return action == Action::kReadCloud || action == Action::kReadJob;
    case Role::kOperator:
      return action == Action::kOperatorConnect && !target.resource.empty();
  }
  return false;
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

Status Authorize(std::string_view subject, const std::vector<RoleGrant>& grants, Action action,
                 const Target& target) {
  // A resource named without its cloud is outside every cloud scope: deny rather than guess.
  Scope target_scope{target.cloud, target.cloud.empty() ? "" : target.resource};
  for (const RoleGrant& grant : grants) {
    Result<Scope> granted = ParseScope(grant.scope);
    if (!granted.ok() || !ScopeCovers(*granted, target_scope)) continue;
    if (RoleAllows(grant.role, subject, action, target)) return OkStatus();
  }
  std::string what = target.cloud.empty() ? "/" : ScopeText(target_scope);
  if (!target.owner.empty()) what += fmt::format(" (owned by {})", target.owner);
  return absl::PermissionDeniedError(
      fmt::format("{} may not {} on {}", subject, ActionName(action), what));
}

}  // namespace meridian::identity
