#include "identity/directory.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/ids.h"
#include "fmt/format.h"
#include "identity/guid.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;
using KeyMap = std::map<std::string, std::shared_ptr<const PublicKey>, std::less<>>;

constexpr size_t kMaxAppRoleChars = 120;

Status Invalid(std::string_view field, std::string_view problem) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", field, problem));
}

bool HasControlCharacter(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool IsAlphanumeric(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Required text of at most `max_chars`, no control characters.
Status CheckText(std::string_view field, std::string_view value, size_t max_chars,
                 bool required = true) {
  if (required && value.empty()) return Invalid(field, "is required");
  if (value.size() > max_chars) {
    return Invalid(field,
                   fmt::format("is {} characters long; the limit is {}", value.size(), max_chars));
  }
  if (HasControlCharacter(value)) return Invalid(field, "contains a control character");
  return OkStatus();
}

Status CheckCredentialName(std::string_view name) {
  constexpr std::string_view kField = "federated credential name";
  if (name.size() < kMinFederatedCredentialNameChars ||
      name.size() > kMaxFederatedCredentialNameChars) {
    return Invalid(
        kField, fmt::format("must be {} to {} characters (is {})", kMinFederatedCredentialNameChars,
                            kMaxFederatedCredentialNameChars, name.size()));
  }
  if (!IsAlphanumeric(name[0])) return Invalid(kField, "must start with a letter or digit");
  for (char c : name) {
    if (!IsAlphanumeric(c) && c != '-' && c != '_') {
      return Invalid(kField, "may contain only letters, digits, '-' and '_'");
    }
  }
  return OkStatus();
}

Status CheckFederatedCredential(FederatedCredential& credential) {
  RETURN_IF_ERROR(CheckCredentialName(credential.name));
  RETURN_IF_ERROR(CheckText("issuer", credential.issuer, kMaxIssuerChars));
  RETURN_IF_ERROR(CheckText("subject", credential.subject, kMaxSubjectChars));
  if (credential.audiences.empty()) credential.audiences = {kDefaultFederatedAudience};
  if (credential.audiences.size() != 1) {
    return Invalid("audiences", fmt::format("must hold exactly one audience (has {})",
                                            credential.audiences.size()));
  }
  RETURN_IF_ERROR(CheckText("audiences", credential.audiences[0], kMaxAudienceChars));
  return CheckText("description", credential.description, kMaxDescriptionChars, false);
}

Status CheckSpec(const ApplicationSpec& spec) {
  RETURN_IF_ERROR(CheckText("display_name", spec.display_name, kMaxDisplayNameChars));
  if (spec.kind == PrincipalKind::kUser) {
    RETURN_IF_ERROR(CheckText("user_subject", spec.user_subject, kMaxUserSubjectChars));
    if (spec.user_subject.find(' ') != std::string::npos) {
      return Invalid("user_subject", "may not contain spaces");
    }
    // Role assignments name an app id or a user subject: the two must never collide.
    if (IsGuid(spec.user_subject)) return Invalid("user_subject", "may not have a GUID's form");
  } else if (!spec.user_subject.empty()) {
    return Invalid("user_subject", "applies to users only");
  }
  if (spec.app_roles.size() > kMaxAppRoles) {
    return Invalid("app_roles", fmt::format("at most {} roles", kMaxAppRoles));
  }
  for (const std::string& role : spec.app_roles) {
    RETURN_IF_ERROR(CheckText("app_roles", role, kMaxAppRoleChars));
    if (role.find(' ') != std::string::npos) return Invalid("app_roles", "may not contain spaces");
  }
  return OkStatus();
}

json ToJson(const Application& app) {
  json credentials = json::array();
  for (const FederatedCredential& credential : app.federated_credentials) {
    credentials.push_back({{"name", credential.name},
                           {"issuer", credential.issuer},
                           {"subject", credential.subject},
                           {"audiences", credential.audiences},
                           {"description", credential.description}});
  }
  json keys = json::array();
  for (const RegisteredKey& key : app.keys) {
    keys.push_back({{"kid", key.kid},
                    {"alg", std::string(JwtAlgName(key.alg))},
                    {"public_pem", key.public_pem},
                    {"added_ms", key.added_ms}});
  }
  return {{"app_id", app.app_id},
          {"kind", std::string(PrincipalKindName(app.kind))},
          {"display_name", app.display_name},
          {"user_subject", app.user_subject},
          {"app_roles", app.app_roles},
          {"federated_credentials", credentials},
          {"keys", keys},
          {"created_ms", app.created_ms}};
}

// Records are written only by this file; a record that does not read back is corruption.
Result<std::pair<Application, KeyMap>> AppFromRecord(const state::Record& record) {
  try {
    json body = json::parse(record.body);
    Application app;
    app.app_id = body.at("app_id").get<std::string>();
    app.kind = body.at("kind") == "user" ? PrincipalKind::kUser : PrincipalKind::kApplication;
    app.display_name = body.at("display_name").get<std::string>();
    app.user_subject = body.at("user_subject").get<std::string>();
    app.app_roles = body.at("app_roles").get<std::vector<std::string>>();
    app.created_ms = body.at("created_ms").get<int64_t>();
    for (const json& item : body.at("federated_credentials")) {
      app.federated_credentials.push_back(FederatedCredential{
          item.at("name"), item.at("issuer"), item.at("subject"),
          item.at("audiences").get<std::vector<std::string>>(), item.at("description")});
    }
    KeyMap keys;
    for (const json& item : body.at("keys")) {
      Result<std::shared_ptr<const PublicKey>> key =
          PublicKey::FromPem(item.at("public_pem").get<std::string>());
      if (!key.ok()) throw std::runtime_error(std::string(key.status().message()));
      app.keys.push_back(RegisteredKey{(*key)->kid(), (*key)->alg(), item.at("public_pem"),
                                       item.at("added_ms").get<int64_t>()});
      keys.emplace((*key)->kid(), *key);
    }
    return std::make_pair(std::move(app), std::move(keys));
  } catch (const std::exception& error) {
    return absl::InternalError(
        fmt::format("{} record {}: unreadable: {}", kAppRecordKind, record.id, error.what()));
  }
}

json ToJson(const RoleAssignment& assignment) {
  return {{"id", assignment.id},
          {"role", std::string(RoleName(assignment.role))},
          {"principal", assignment.principal},
          {"scope", assignment.scope},
          {"created_ms", assignment.created_ms}};
}

Result<RoleAssignment> AssignmentFromRecord(const state::Record& record) {
  json body = json::parse(record.body, nullptr, /*allow_exceptions=*/false);
  std::optional<Role> role =
      body.is_object() ? ParseRole(body.value("role", "")) : std::optional<Role>();
  if (!role.has_value() || !body.value("principal", json()).is_string() ||
      !body.value("scope", json()).is_string()) {
    return absl::InternalError(
        fmt::format("{} record {}: unreadable", kRoleAssignmentRecordKind, record.id));
  }
  return RoleAssignment{record.id, *role, body["principal"], body["scope"],
                        body.value("created_ms", int64_t{0})};
}

}  // namespace

std::string_view PrincipalKindName(PrincipalKind kind) {
  return kind == PrincipalKind::kUser ? "user" : "application";
}

Directory::Directory(state::StateStore* store, base::Clock* clock) : store_(store), clock_(clock) {}

Result<std::unique_ptr<Directory>> Directory::Open(state::StateStore* store, base::Clock* clock) {
  std::unique_ptr<Directory> directory(new Directory(store, clock));
  RETURN_IF_ERROR(directory->Reload());
  return directory;
}

Status Directory::Reload() {
  std::lock_guard write_lock(write_mu_);
  return LoadLocked();
}

Status Directory::LoadLocked() {
  ASSIGN_OR_RETURN(std::vector<state::Record> app_records, store_->List(kAppRecordKind));
  ASSIGN_OR_RETURN(std::vector<state::Record> assignment_records,
                   store_->List(kRoleAssignmentRecordKind));
  std::map<std::string, AppEntry, std::less<>> apps;
  std::map<std::string, std::string, std::less<>> users;
  for (const state::Record& record : app_records) {
    ASSIGN_OR_RETURN(auto loaded, AppFromRecord(record));
    if (loaded.first.kind == PrincipalKind::kUser) {
      users[loaded.first.user_subject] = loaded.first.app_id;
    }
    apps[record.id] = AppEntry{std::make_shared<const Application>(std::move(loaded.first)),
                               std::move(loaded.second), record.version};
  }
  std::map<std::string, AssignmentEntry, std::less<>> assignments;
  for (const state::Record& record : assignment_records) {
    ASSIGN_OR_RETURN(RoleAssignment assignment, AssignmentFromRecord(record));
    assignments[record.id] = AssignmentEntry{std::move(assignment), record.version};
  }
  std::unique_lock lock(mu_);
  apps_ = std::move(apps);
  users_ = std::move(users);
  assignments_ = std::move(assignments);
  return OkStatus();
}

Result<const Directory::AppEntry*> Directory::EntryLocked(std::string_view app_id) const {
  auto it = apps_.find(app_id);
  if (it == apps_.end()) {
    return absl::NotFoundError(fmt::format("application {} not found", app_id));
  }
  return &it->second;
}

Status Directory::StoreAppLocked(Application app, const AppEntry* entry, KeyMap keys) {
  state::WriteBatch batch;
  batch.Put(kAppRecordKind, app.app_id, ToJson(app).dump(), entry ? entry->version : 0);
  RETURN_IF_ERROR(store_->Commit(std::move(batch)));
  int64_t version = entry ? entry->version + 1 : 1;
  std::string app_id = app.app_id;
  std::unique_lock lock(mu_);
  if (app.kind == PrincipalKind::kUser) users_[app.user_subject] = app_id;
  apps_[app_id] =
      AppEntry{std::make_shared<const Application>(std::move(app)), std::move(keys), version};
  return OkStatus();
}

Result<Application> Directory::CreateApplication(const ApplicationSpec& spec) {
  RETURN_IF_ERROR(CheckSpec(spec));
  std::lock_guard write_lock(write_mu_);
  if (apps_.size() >= kMaxApplications) {
    return absl::ResourceExhaustedError(
        fmt::format("at most {} applications and users", kMaxApplications));
  }
  if (spec.kind == PrincipalKind::kUser && users_.count(spec.user_subject) > 0) {
    return absl::AlreadyExistsError(
        fmt::format("user_subject: a user \"{}\" already exists", spec.user_subject));
  }
  Application app;
  app.app_id = NewGuid();
  app.kind = spec.kind;
  app.display_name = spec.display_name;
  app.user_subject = spec.user_subject;
  app.app_roles = spec.app_roles;
  app.created_ms = clock_->NowUnixMs();
  RETURN_IF_ERROR(StoreAppLocked(app, nullptr, {}));
  return app;
}

Result<Application> Directory::GetApplication(std::string_view app_id) const {
  std::shared_ptr<const Application> app = FindApplication(app_id);
  if (app == nullptr) return absl::NotFoundError(fmt::format("application {} not found", app_id));
  return *app;
}

std::shared_ptr<const Application> Directory::FindApplication(std::string_view app_id) const {
  std::shared_lock lock(mu_);
  auto it = apps_.find(app_id);
  return it == apps_.end() ? nullptr : it->second.app;
}

std::vector<Application> Directory::ListApplications() const {
  std::shared_lock lock(mu_);
  std::vector<Application> out;
  for (const auto& [app_id, entry] : apps_) out.push_back(*entry.app);
  return out;
}

Status Directory::DeleteApplication(std::string_view app_id) {
  std::lock_guard write_lock(write_mu_);
  ASSIGN_OR_RETURN(const AppEntry* entry, EntryLocked(app_id));
  const Application& app = *entry->app;
  state::WriteBatch batch;
  batch.Delete(kAppRecordKind, app.app_id, entry->version);
  std::vector<std::string> revoked;
  for (const auto& [id, assignment] : assignments_) {
    if (assignment.assignment.principal == app.app_id ||
        (app.kind == PrincipalKind::kUser && assignment.assignment.principal == app.user_subject)) {
      batch.Delete(kRoleAssignmentRecordKind, id, assignment.version);
      revoked.push_back(id);
    }
  }
  RETURN_IF_ERROR(store_->Commit(std::move(batch)));
  std::unique_lock lock(mu_);
  for (const std::string& id : revoked) assignments_.erase(id);
  if (app.kind == PrincipalKind::kUser) users_.erase(app.user_subject);
  apps_.erase(apps_.find(app_id));  // `app` and `entry` die here
  return OkStatus();
}

Result<FederatedCredential> Directory::AddFederatedCredential(std::string_view app_id,
                                                              FederatedCredential credential) {
  RETURN_IF_ERROR(CheckFederatedCredential(credential));
  std::lock_guard write_lock(write_mu_);
  ASSIGN_OR_RETURN(const AppEntry* entry, EntryLocked(app_id));
  const std::vector<FederatedCredential>& existing = entry->app->federated_credentials;
  for (const FederatedCredential& other : existing) {
    if (other.name == credential.name) {
      return absl::AlreadyExistsError(
          fmt::format("federated credential name: \"{}\" already exists on application {}",
                      other.name, app_id));
    }
    if (other.issuer == credential.issuer && other.subject == credential.subject) {
      return absl::AlreadyExistsError(fmt::format(
          "issuer, subject: federated credential \"{}\" of application {} already has this "
          "issuer and subject",
          other.name, app_id));
    }
  }
  if (existing.size() >= kMaxFederatedCredentialsPerApp) {
    return absl::ResourceExhaustedError(
        fmt::format("application {} already has the most federated credentials allowed ({})",
                    app_id, kMaxFederatedCredentialsPerApp));
  }
  Application app = *entry->app;
  app.federated_credentials.push_back(credential);
  RETURN_IF_ERROR(StoreAppLocked(std::move(app), entry, entry->keys));
  return credential;
}

Result<std::vector<FederatedCredential>> Directory::ListFederatedCredentials(
    std::string_view app_id) const {
  ASSIGN_OR_RETURN(Application app, GetApplication(app_id));
  return app.federated_credentials;
}

Status Directory::DeleteFederatedCredential(std::string_view app_id, std::string_view name) {
  std::lock_guard write_lock(write_mu_);
  ASSIGN_OR_RETURN(const AppEntry* entry, EntryLocked(app_id));
  Application app = *entry->app;
  auto it = std::find_if(app.federated_credentials.begin(), app.federated_credentials.end(),
                         [&](const FederatedCredential& c) { return c.name == name; });
  if (it == app.federated_credentials.end()) {
    return absl::NotFoundError(
        fmt::format("federated credential \"{}\" not found on application {}", name, app_id));
  }
  app.federated_credentials.erase(it);
  return StoreAppLocked(std::move(app), entry, entry->keys);
}

Result<RegisteredKey> Directory::AddKey(std::string_view app_id, std::string_view public_pem) {
  Result<std::shared_ptr<const PublicKey>> key = PublicKey::FromPem(public_pem);
  if (!key.ok()) return Invalid("public key", std::string(key.status().message()));
  std::lock_guard write_lock(write_mu_);
  ASSIGN_OR_RETURN(const AppEntry* entry, EntryLocked(app_id));
  if (entry->keys.count((*key)->kid()) > 0) {
    return absl::AlreadyExistsError(
        fmt::format("public key {} is already registered for {}", (*key)->kid(), app_id));
  }
  if (entry->keys.size() >= kMaxKeysPerApp) {
    return absl::ResourceExhaustedError(fmt::format(
        "application {} already has {} keys, the most allowed", app_id, kMaxKeysPerApp));
  }
  RegisteredKey registered{(*key)->kid(), (*key)->alg(), (*key)->PublicPem(), clock_->NowUnixMs()};
  Application app = *entry->app;
  app.keys.push_back(registered);
  KeyMap keys = entry->keys;
  keys.emplace((*key)->kid(), *key);
  RETURN_IF_ERROR(StoreAppLocked(std::move(app), entry, std::move(keys)));
  return registered;
}

Status Directory::RemoveKey(std::string_view app_id, std::string_view kid) {
  std::lock_guard write_lock(write_mu_);
  ASSIGN_OR_RETURN(const AppEntry* entry, EntryLocked(app_id));
  Application app = *entry->app;
  auto it = std::find_if(app.keys.begin(), app.keys.end(),
                         [&](const RegisteredKey& key) { return key.kid == kid; });
  if (it == app.keys.end()) {
    return absl::NotFoundError(fmt::format("key {} not registered for {}", kid, app_id));
  }
  app.keys.erase(it);
  KeyMap keys = entry->keys;
  keys.erase(keys.find(kid));
  return StoreAppLocked(std::move(app), entry, std::move(keys));
}

std::shared_ptr<const PublicKey> Directory::FindKey(std::string_view app_id,
                                                    std::string_view kid) const {
  std::shared_lock lock(mu_);
  auto app = apps_.find(app_id);
  if (app == apps_.end()) return nullptr;
  auto key = app->second.keys.find(kid);
  return key == app->second.keys.end() ? nullptr : key->second;
}

bool Directory::PrincipalExistsLocked(std::string_view principal) const {
  return apps_.count(principal) > 0 || users_.count(principal) > 0;
}

Result<RoleAssignment> Directory::AssignRole(Role role, std::string_view principal,
                                             std::string_view scope) {
  ASSIGN_OR_RETURN(Scope parsed, ParseScope(scope));
  std::lock_guard write_lock(write_mu_);
  if (!PrincipalExistsLocked(principal)) {
    return absl::NotFoundError(fmt::format("principal: no application or user \"{}\"", principal));
  }
  RoleAssignment assignment{base::NewId("ra"), role, std::string(principal), ScopeText(parsed),
                            clock_->NowUnixMs()};
  for (const auto& [id, other] : assignments_) {
    if (other.assignment.role == role && other.assignment.principal == principal &&
        other.assignment.scope == assignment.scope) {
      return absl::AlreadyExistsError(fmt::format("{} already holds {} at {} (assignment {})",
                                                  principal, RoleName(role), assignment.scope, id));
    }
  }
  if (assignments_.size() >= kMaxRoleAssignments) {
    return absl::ResourceExhaustedError(
        fmt::format("at most {} role assignments", kMaxRoleAssignments));
  }
  state::WriteBatch batch;
  batch.Put(kRoleAssignmentRecordKind, assignment.id, ToJson(assignment).dump(), 0);
  RETURN_IF_ERROR(store_->Commit(std::move(batch)));
  std::unique_lock lock(mu_);
  assignments_[assignment.id] = AssignmentEntry{assignment, 1};
  return assignment;
}

std::vector<RoleAssignment> Directory::ListRoleAssignments(std::string_view principal) const {
  std::shared_lock lock(mu_);
  std::vector<RoleAssignment> out;
  for (const auto& [id, entry] : assignments_) {
    if (principal.empty() || entry.assignment.principal == principal) {
      out.push_back(entry.assignment);
    }
  }
  return out;
}

Status Directory::RevokeRoleAssignment(std::string_view id) {
  std::lock_guard write_lock(write_mu_);
  auto it = assignments_.find(id);
  if (it == assignments_.end()) {
    return absl::NotFoundError(fmt::format("role assignment {} not found", id));
  }
  state::WriteBatch batch;
  batch.Delete(kRoleAssignmentRecordKind, it->first, it->second.version);
  RETURN_IF_ERROR(store_->Commit(std::move(batch)));
  std::unique_lock lock(mu_);
  assignments_.erase(it);
  return OkStatus();
}

// A linear scan: assignments number in the hundreds, and this runs once per token issued.
std::vector<RoleGrant> Directory::GrantsFor(const Application& app) const {
  std::shared_lock lock(mu_);
  std::vector<RoleGrant> out;
  for (const auto& [id, entry] : assignments_) {
    const RoleAssignment& assignment = entry.assignment;
    if (assignment.principal == app.app_id ||
        (app.kind == PrincipalKind::kUser && assignment.principal == app.user_subject)) {
      out.push_back(RoleGrant{assignment.role, assignment.scope});
    }
  }
  return out;
}

}  // namespace meridian::identity
