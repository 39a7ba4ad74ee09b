#include "identity/roles.h"

#include "fmt/format.h"

namespace meridian::identity {
namespace {

constexpr size_t kMaxNameChars = 256;

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameChars || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "Admin";
    case Role::kDeveloper:
      return "Developer";
    case Role::kViewer:
      return "Viewer";
    case Role::kOperator:
      return "Operator";
  }
  return "unknown";
}

std::optional<Role> ParseRole(std::string_view name) {
  for (Role role : {Role::kAdmin, Role::kDeveloper, Role::kViewer, Role::kOperator}) {
    if (RoleName(role) == name) return role;
  }
  return std::nullopt;
}

Result<Scope> ParseScope(std::string_view scope) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        fmt::format("scope: \"{}\" {}; use \"/\", \"/clouds/<cloud>\" or "
                    "\"/clouds/<cloud>/resources/<resource>\"",
                    scope.substr(0, 300), why));
  };
  if (scope == "/") return Scope{};
  constexpr std::string_view kClouds = "/clouds/";
  if (scope.substr(0, kClouds.size()) != kClouds) return bad("does not start with /clouds/");
  std::string_view rest = scope.substr(kClouds.size());
  size_t slash = rest.find('/');
  Scope out;
  out.cloud = std::string(rest.substr(0, slash));
  if (!ValidName(out.cloud)) return bad("has no valid cloud name");
  if (slash == std::string_view::npos) return out;
  constexpr std::string_view kResources = "/resources/";
  rest = rest.substr(slash);
  if (rest.substr(0, kResources.size()) != kResources)
    return bad("has an unknown part after the cloud");
  out.resource = std::string(rest.substr(kResources.size()));
  if (!ValidName(out.resource)) return bad("has no valid resource name");
  return out;
}

std::string ScopeText(const Scope& scope) {
  if (scope.cloud.empty()) return "/";
  if (scope.resource.empty()) return fmt::format("/clouds/{}", scope.cloud);
  return fmt::format("/clouds/{}/resources/{}", scope.cloud, scope.resource);
}

bool ScopeCovers(const Scope& granted, const Scope& target) {
  if (granted.cloud.empty()) return true;
  if (granted.cloud != target.cloud) return false;
  return granted.resource.empty() || granted.resource == target.resource;
}

}  // namespace meridian::identity
