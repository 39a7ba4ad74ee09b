// meridian's roles and the scopes they are granted at.
//
// A scope is "/" (everything), "/clouds/<cloud>" (a cloud and its resources), or
// "/clouds/<cloud>/resources/<resource>" (one cloud resource). Names are 1..256 characters
// of [A-Za-z0-9_.-], like the names the API accepts.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace meridian::identity {

enum class Role { kAdmin, kDeveloper, kViewer, kOperator };

std::string_view RoleName(Role role);  // "Admin", "Developer", "Viewer", "Operator"
// Exact, case-sensitive names as RoleName writes them.
std::optional<Role> ParseRole(std::string_view name);

// A role held at a scope (from a role assignment, carried in access tokens).
struct RoleGrant {
  Role role = Role::kViewer;
  std::string scope;
  bool operator==(const RoleGrant&) const = default;
};

struct Scope {
  std::string cloud;     // "" for "/"
  std::string resource;  // "" for "/" and "/clouds/<cloud>"
};

// kInvalidArgument naming what is wrong ("scope: ...").
Result<Scope> ParseScope(std::string_view scope);
std::string ScopeText(const Scope& scope);

// Whether a grant at `granted` covers something at `target` ("/" covers all; a cloud covers
// its resources). `target.cloud` "" means a thing outside any cloud: only "/" covers it.
bool ScopeCovers(const Scope& granted, const Scope& target);

}  // namespace meridian::identity
