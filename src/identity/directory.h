// Directory: who exists and what they may do. Applications (workloads, operators, scripts)
// and users, their federated identity credentials and registered public keys, and role
// assignments, following Microsoft Entra ID's model and rules.
//
// Users are Applications of kind kUser: a user is a principal subject string (e.g.
// "alice@example.com") with public keys registered for private_key_jwt (`meridian login`).
// A user logs in with its app_id as client_id; its access tokens carry `sub` = the user
// subject. Role assignments name an app_id, or a user's subject.
//
// Storage: records of kind "identity_app" (id = app_id, the whole application as JSON,
// including credentials and public keys) and "identity_role_assignment" (id = assignment
// id). Every mutation commits synchronously, with the version it read, before it takes
// effect in memory; mutations are rare, reads are served from memory.
//
// Errors: kInvalidArgument naming the field ("federated credential name: ..."),
// kAlreadyExists, kNotFound, kResourceExhausted when a per-app limit is reached, kAborted
// when another writer changed the same record (Reload and retry).
//
// Thread safety: every method may be called from any thread. Mutations are serialised;
// reads never wait for a commit.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "identity/jwt.h"
#include "identity/roles.h"
#include "state/state_store.h"

namespace meridian::identity {

inline constexpr char kAppRecordKind[] = "identity_app";
inline constexpr char kRoleAssignmentRecordKind[] = "identity_role_assignment";
inline constexpr char kDefaultFederatedAudience[] = "api://AzureADTokenExchange";

// Entra's limits, and meridian's own where Entra has none that matters here.
inline constexpr size_t kMaxFederatedCredentialsPerApp = 20;
inline constexpr size_t kMinFederatedCredentialNameChars = 3;
inline constexpr size_t kMaxFederatedCredentialNameChars = 120;
inline constexpr size_t kMaxIssuerChars = 600;
inline constexpr size_t kMaxSubjectChars = 600;
inline constexpr size_t kMaxAudienceChars = 600;
inline constexpr size_t kMaxDescriptionChars = 600;
inline constexpr size_t kMaxDisplayNameChars = 256;
inline constexpr size_t kMaxUserSubjectChars = 256;
inline constexpr size_t kMaxAppRoles = 50;
inline constexpr size_t kMaxKeysPerApp = 10;
inline constexpr size_t kMaxApplications = 100'000;
inline constexpr size_t kMaxRoleAssignments = 100'000;

enum class PrincipalKind { kApplication, kUser };
std::string_view PrincipalKindName(PrincipalKind kind);  // "application", "user"

struct FederatedCredential {
  std::string name;     // 3..120 of [A-Za-z0-9_-], first alphanumeric; unique per app
  std::string issuer;   // matched exactly, case-sensitively, against the token's iss
  std::string subject;  // matched exactly, case-sensitively, against the token's sub
  std::vector<std::string> audiences;  // exactly one; empty on input means the default
  std::string description;
  bool operator==(const FederatedCredential&) const = default;
};

// A public key registered for private_key_jwt.
struct RegisteredKey {
  std::string kid;  // base64url SHA-256 of the key (the assertion's header kid)
  JwtAlg alg = JwtAlg::kES256;
  std::string public_pem;
  int64_t added_ms = 0;
};

struct ApplicationSpec {
  std::string display_name;  // 1..256 characters
  PrincipalKind kind = PrincipalKind::kApplication;
  std::string user_subject;  // kUser only: 1..256 printable characters, no spaces; unique
  // Roles the application declares (Entra's appRoles): informational; what a principal may
  // do comes from role assignments.
  std::vector<std::string> app_roles;
};

struct Application {
  std::string app_id;  // a GUID, generated
  PrincipalKind kind = PrincipalKind::kApplication;
  std::string display_name;
  std::string user_subject;
  std::vector<std::string> app_roles;
  std::vector<FederatedCredential> federated_credentials;
  std::vector<RegisteredKey> keys;
  int64_t created_ms = 0;

  // The `sub` of its access tokens: the user subject for users, else the app id.
  const std::string& subject() const {
    return kind == PrincipalKind::kUser ? user_subject : app_id;
  }
};

struct RoleAssignment {
  std::string id;
  Role role = Role::kViewer;
  std::string principal;  // an app_id, or a user's subject
  std::string scope;      // see roles.h
  int64_t created_ms = 0;
};

class Directory {
 public:
  // Loads every application and role assignment from `store`. `store` and `clock` must
  // outlive the directory.
  static Result<std::unique_ptr<Directory>> Open(state::StateStore* store, base::Clock* clock);

  Result<Application> CreateApplication(const ApplicationSpec& spec);
  Result<Application> GetApplication(std::string_view app_id) const;
  // The same, shared and immutable, without a copy (the token service's path); nullptr when
  // unknown.
  std::shared_ptr<const Application> FindApplication(std::string_view app_id) const;
  std::vector<Application> ListApplications() const;
  // Also removes the application's role assignments.
  Status DeleteApplication(std::string_view app_id);

  // Validates, applies the default audience, and stores. Returns the stored credential.
  Result<FederatedCredential> AddFederatedCredential(std::string_view app_id,
                                                     FederatedCredential credential);
  Result<std::vector<FederatedCredential>> ListFederatedCredentials(std::string_view app_id) const;
  Status DeleteFederatedCredential(std::string_view app_id, std::string_view name);

  // Registers a public key (PEM SubjectPublicKeyInfo or certificate, RS256 or ES256).
  Result<RegisteredKey> AddKey(std::string_view app_id, std::string_view public_pem);
  Status RemoveKey(std::string_view app_id, std::string_view kid);
  // A registered key of the app, parsed once; nullptr when unknown.
  std::shared_ptr<const PublicKey> FindKey(std::string_view app_id, std::string_view kid) const;

  // `principal` must be an existing app_id or user subject (kNotFound otherwise). Assigning
  // the same (role, principal, scope) twice is kAlreadyExists.
  Result<RoleAssignment> AssignRole(Role role, std::string_view principal, std::string_view scope);
  // Every assignment, or those of one principal, ordered by id.
  std::vector<RoleAssignment> ListRoleAssignments(std::string_view principal = "") const;
  Status RevokeRoleAssignment(std::string_view id);
  // What `app` holds: assignments to its app_id, and for a user also to its subject.
  std::vector<RoleGrant> GrantsFor(const Application& app) const;

  // Re-reads the store (after another replica changed it).
  Status Reload();

 private:
  struct AppEntry {
    std::shared_ptr<const Application> app;
    std::map<std::string, std::shared_ptr<const PublicKey>, std::less<>> keys;  // by kid
    int64_t version = 0;
  };
  struct AssignmentEntry {
    RoleAssignment assignment;
    int64_t version = 0;
  };

  Directory(state::StateStore* store, base::Clock* clock);
  Status LoadLocked();
  // Writes `app` (expecting the version `entry` holds) and installs it.
  Status StoreAppLocked(Application app, const AppEntry* entry,
                        std::map<std::string, std::shared_ptr<const PublicKey>, std::less<>> keys);
  Result<const AppEntry*> EntryLocked(std::string_view app_id) const;
  bool PrincipalExistsLocked(std::string_view principal) const;

  // Constant after construction.
  state::StateStore* const store_;
  base::Clock* const clock_;

  // Serialises mutations (held across validation and commit), so readers never wait on a
  // commit: the maps below change only under both write_mu_ and an exclusive mu_.
  std::mutex write_mu_;
  mutable std::shared_mutex mu_;
  std::map<std::string, AppEntry, std::less<>> apps_;                // by app_id
  std::map<std::string, std::string, std::less<>> users_;            // user subject -> app_id
  std::map<std::string, AssignmentEntry, std::less<>> assignments_;  // by id
};

}  // namespace meridian::identity
