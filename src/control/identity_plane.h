// IdentityPlane: the server's side of workload identity, put together. It owns the signing
// keys, the directory of applications and role assignments, the audit log, the cluster
// issuer of LOCAL cloud resources and the token service, all over the control plane's state
// store, and does what the server must do with them on its own:
//
//  * the tenant: one GUID per server, made on first start and kept in the state store
//    (record "identity_tenant"/"tenant");
//  * bootstrap: on a directory without the user "admin", creates it with a fresh ES256 key,
//    writes the private key to <home>/credentials/admin.pem (0600, directory 0700) and
//    <home>/credentials/admin.json {client_id, tenant_id, authority, key_file}, and assigns
//    Admin at "/". The server keeps no copy of the private key. Later starts reuse it and
//    rewrite admin.json (the authority may have changed);
//  * LOCAL cloud resources: RegisterLocalResource makes the apps "operator-R" (Operator at
//    the resource) and "workloads-R" (no role) with their federated credentials, writes
//    <home>/clusters/R/operator.json and keeps <home>/clusters/R/operator.jwt fresh with a
//    TokenFileWriter. It is idempotent, so the server calls it for every LOCAL resource at
//    start (the authority, and so the cluster issuer, may have changed);
//  * migration: once per state store, removes the Viewer grant at "/clouds/C" that earlier
//    versions gave every "workloads-R" app, logging each removal.
//
// Thread safety: every method may be called from any thread; the owned services are
// thread-safe themselves.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "identity/audit.h"
#include "identity/cluster_issuer.h"
#include "identity/directory.h"
#include "identity/keys.h"
#include "identity/token_service.h"
#include "state/state_store.h"

namespace meridian::identity::credentials {
class TokenFileWriter;
class OidcIssuerKeys;
}

namespace meridian::control {

inline constexpr char kTenantRecordKind[] = "identity_tenant";
// Migrations of identity records that ran, one record each.
inline constexpr char kMigrationRecordKind[] = "identity_migration";
inline constexpr char kWorkloadViewerMigration[] = "workload-viewer-removed";
inline constexpr char kBootstrapAdminSubject[] = "admin";
inline constexpr char kServiceAccountNamespace[] = "meridian";
inline constexpr char kOperatorServiceAccount[] = "operator";
inline constexpr char kWorkloadServiceAccount[] = "workload";

struct IdentityPlaneOptions {
  std::string home;       // credentials/ and clusters/ are written here
  std::string authority;  // "https://host:port", no trailing slash
  int64_t access_token_lifetime_s = 3600;
  int64_t cluster_token_lifetime_s = 3600;  // operator and job-attempt federated tokens
  int64_t key_publish_ahead_s = 24 * 3600;  // a rotated key is published this long before it signs
  int64_t key_rotation_period_s = 30 * 24 * 3600;
  // External OIDC issuers (e.g. an AKS cluster's) whose tokens federated credentials may
  // name: https URLs, keys found by OIDC discovery; `trusted_issuers_ca_file` "" = system CAs.
  std::vector<std::string> trusted_issuers;
  std::string trusted_issuers_ca_file;
  base::Clock* clock = nullptr;  // default: the system clock
};

// What a workload of a cloud resource needs to exchange its federated token.
struct WorkloadIdentity {
  std::string client_id;
  std::string tenant_id;
  std::string authority;
};

class IdentityPlane {
 public:
  // `store` must outlive the plane. Creates the tenant and the bootstrap admin when missing.
  static Result<std::unique_ptr<IdentityPlane>> Open(state::StateStore* store,
                                                     IdentityPlaneOptions options);
  ~IdentityPlane();  // stops every token file writer

  const std::string& tenant_id() const { return tenant_id_; }
  const std::string& authority() const { return options_.authority; }
  const IdentityPlaneOptions& options() const { return options_; }
  base::Clock* clock() const { return clock_; }

  identity::KeyManager& keys() { return *keys_; }
  identity::Directory& directory() { return *directory_; }
  identity::AuditLog& audit() { return *audit_; }
  identity::ClusterIssuer& cluster_issuer() { return *cluster_issuer_; }
  identity::TokenService& tokens() { return *tokens_; }

  // Idempotent (see above). `cloud` is the resource's cloud name.
  Status RegisterLocalResource(const std::string& cloud, const std::string& resource);
  // Removes both apps (and their role assignments) and stops the writer. OK when absent.
  Status UnregisterResource(const std::string& resource);
  // The workloads app of a registered resource; nullopt when it has none.
  std::optional<WorkloadIdentity> WorkloadIdentityFor(const std::string& resource) const;
  // A federated token for service account `name` of `resource` (the TokenRequest API),
  // naming the job attempt it is for when given.
  Result<std::string> MintServiceAccountToken(
      const std::string& resource, const std::string& name, int64_t lifetime_s,
      const std::optional<identity::AttemptRef>& attempt = std::nullopt) const;

  // Rotates keys when due. Call now and then (e.g. once a minute).
  void Tick();

 private:
  IdentityPlane(state::StateStore* store, IdentityPlaneOptions options);
  Status LoadTenant();
  Status BootstrapAdmin();
  Status RemoveWorkloadViewerGrants();
  // The app named `display_name`, created when missing, with exactly one federated credential
  // for `subject` at the issuer of `resource`, and `role` (when given) at `scope`.
  Result<std::string> EnsureResourceApp(const std::string& display_name,
                                        const std::string& resource, const std::string& subject,
                                        std::optional<identity::Role> role,
                                        const std::string& scope);
  std::optional<identity::Application> FindAppByName(const std::string& display_name) const;

  // Constant after construction.
  state::StateStore* const store_;
  const IdentityPlaneOptions options_;
  base::Clock* const clock_;
  std::string tenant_id_;  // set once by Open
  std::unique_ptr<identity::KeyManager> keys_;
  std::unique_ptr<identity::Directory> directory_;
  std::unique_ptr<identity::AuditLog> audit_;
  std::unique_ptr<identity::ClusterIssuer> cluster_issuer_;
  std::unique_ptr<identity::credentials::OidcIssuerKeys> external_issuers_;
  std::unique_ptr<identity::TokenService> tokens_;

  mutable std::mutex mu_;  // serialises registration; guards the map below
  std::map<std::string, std::unique_ptr<identity::credentials::TokenFileWriter>> writers_;
  std::map<std::string, WorkloadIdentity> workload_identities_;  // by resource
};

}  // namespace meridian::control
