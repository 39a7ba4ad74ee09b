#include "control/identity_plane.h"

#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "fmt/format.h"
#include "identity/credentials/oidc_issuer_keys.h"
#include "identity/credentials/token_file_writer.h"
#include "identity/guid.h"
#include "spdlog/spdlog.h"

namespace meridian::control {

using nlohmann::json;

namespace {

constexpr char kTenantRecordId[] = "tenant";
constexpr char kOperatorFicName[] = "operator";
constexpr char kWorkloadFicName[] = "workload";

std::string OperatorAppName(const std::string& resource) { return "operator-" + resource; }
std::string WorkloadsAppName(const std::string& resource) { return "workloads-" + resource; }
std::string ServiceAccountSubject(const std::string& name) {
  return fmt::format("system:serviceaccount:{}:{}", kServiceAccountNamespace, name);
}

}  // namespace

IdentityPlane::IdentityPlane(state::StateStore* store, IdentityPlaneOptions options)
    : store_(store),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : base::SystemClock::Get()) {}

IdentityPlane::~IdentityPlane() {
  std::lock_guard lock(mu_);
  for (auto& [resource, writer] : writers_) writer->Stop();
  writers_.clear();
}

Result<std::unique_ptr<IdentityPlane>> IdentityPlane::Open(state::StateStore* store,
                                                           IdentityPlaneOptions options) {
  if (options.authority.rfind("https://", 0) != 0 || options.authority.back() == '/') {
    return absl::InvalidArgumentError(
        fmt::format("identity authority '{}': expected https://host:port", options.authority));
  }
  for (int64_t lifetime : {options.access_token_lifetime_s, options.cluster_token_lifetime_s}) {
    if (lifetime < 10 || lifetime > identity::kMaxServiceAccountTokenLifetimeS) {
      return absl::InvalidArgumentError(fmt::format("token lifetime {} s: must be 10 to {} s",
                                                    lifetime,
                                                    identity::kMaxServiceAccountTokenLifetimeS));
    }
  }
  std::unique_ptr<IdentityPlane> plane(new IdentityPlane(store, std::move(options)));
  const IdentityPlaneOptions& opts = plane->options_;
  RETURN_IF_ERROR(plane->LoadTenant());

  identity::KeyManagerOptions key_options;
  key_options.rotation_period_s = opts.key_rotation_period_s;
  key_options.publish_ahead_s = opts.key_publish_ahead_s;
  key_options.max_token_lifetime_s = identity::kMaxServiceAccountTokenLifetimeS;
  ASSIGN_OR_RETURN(plane->keys_, identity::KeyManager::Open(store, plane->clock_, key_options));
  ASSIGN_OR_RETURN(plane->directory_, identity::Directory::Open(store, plane->clock_));
  ASSIGN_OR_RETURN(plane->audit_, identity::AuditLog::Open(store, plane->clock_));
  plane->cluster_issuer_ = std::make_unique<identity::ClusterIssuer>(
      plane->keys_.get(), plane->clock_, identity::ClusterIssuerOptions{opts.authority});

  identity::TokenServiceOptions token_options;
  token_options.authority = opts.authority;
  token_options.tenant_id = plane->tenant_id_;
  token_options.access_token_lifetime_s = opts.access_token_lifetime_s;
  token_options.resources = {"api://meridian"};
  std::vector<identity::IssuerKeySource*> sources = {plane->cluster_issuer_.get()};
  if (!opts.trusted_issuers.empty()) {
    identity::credentials::OidcIssuerKeysOptions external;
    external.trusted_issuers = opts.trusted_issuers;
    external.http.ca_file = opts.trusted_issuers_ca_file;
    external.clock = plane->clock_;
    ASSIGN_OR_RETURN(plane->external_issuers_,
                     identity::credentials::OidcIssuerKeys::Create(std::move(external)));
    sources.push_back(plane->external_issuers_.get());
  }
  plane->tokens_ = std::make_unique<identity::TokenService>(
      token_options, plane->keys_.get(), plane->directory_.get(), std::move(sources),
      plane->audit_.get());
  RETURN_IF_ERROR(plane->BootstrapAdmin());
  RETURN_IF_ERROR(plane->RemoveWorkloadViewerGrants());
  return plane;
}

Status IdentityPlane::RemoveWorkloadViewerGrants() {
  ASSIGN_OR_RETURN(std::optional<state::Record> done,
                   store_->Get(kMigrationRecordKind, kWorkloadViewerMigration));
  if (done.has_value()) return OkStatus();
  // Until this migration, every LOCAL resource's workloads app was given Viewer on its whole
  // cloud. Once only: afterwards such a grant is an administrator's explicit choice.
  for (const identity::Application& app : directory_->ListApplications()) {
    if (app.kind != identity::PrincipalKind::kApplication ||
        app.display_name.rfind(WorkloadsAppName(""), 0) != 0) {
      continue;
    }
    for (const identity::RoleAssignment& assignment : directory_->ListRoleAssignments(app.app_id)) {
      Result<identity::Scope> scope = identity::ParseScope(assignment.scope);
      if (assignment.role != identity::Role::kViewer || !scope.ok() || scope->cloud.empty() ||
          !scope->resource.empty()) {
        continue;
      }
      RETURN_IF_ERROR(directory_->RevokeRoleAssignment(assignment.id));
      spdlog::info(
          "identity migration: removed Viewer at {} from {} ({}): workloads hold no role on "
          "the control plane by default; grant one explicitly if a workload needs it",
          assignment.scope, app.display_name, app.app_id);
    }
  }
  state::WriteBatch batch;
  batch.Put(kMigrationRecordKind, kWorkloadViewerMigration, json{{"done", true}}.dump(), 0);
  return store_->Commit(std::move(batch));
}

Status IdentityPlane::LoadTenant() {
  ASSIGN_OR_RETURN(std::optional<state::Record> record,
                   store_->Get(kTenantRecordKind, kTenantRecordId));
  if (record.has_value()) {
    json body = json::parse(record->body, nullptr, false);
    if (body.is_object() && body.value("tenant_id", std::string()) != "") {
      tenant_id_ = body["tenant_id"].get<std::string>();
      return OkStatus();
    }
    return absl::DataLossError("state store: the identity_tenant record is not valid");
  }
  tenant_id_ = identity::NewGuid();
  state::WriteBatch batch;
  batch.Put(kTenantRecordKind, kTenantRecordId, json{{"tenant_id", tenant_id_}}.dump(), 0);
  return store_->Commit(std::move(batch));
}

std::optional<identity::Application> IdentityPlane::FindAppByName(
    const std::string& display_name) const {
  for (identity::Application& app : directory_->ListApplications()) {
    if (app.kind == identity::PrincipalKind::kApplication && app.display_name == display_name) {
      return std::move(app);
    }
  }
  return std::nullopt;
}

Status IdentityPlane::BootstrapAdmin() {
  const std::string dir = options_.home + "/credentials";
  const std::string key_file = dir + "/admin.pem";
  std::optional<identity::Application> admin;
  for (identity::Application& app : directory_->ListApplications()) {
    if (app.kind == identity::PrincipalKind::kUser && app.user_subject == kBootstrapAdminSubject) {
      admin = std::move(app);
    }
  }
  RETURN_IF_ERROR(base::MakeDirs(dir, 0700));
  ::chmod(dir.c_str(), 0700);
  // A key file whose public key the directory still knows is reused; anything else is made
  // afresh (a new state store, or a lost key file).
  bool key_known = false;
  if (admin.has_value() && base::PathExists(key_file)) {
    Result<std::string> pem = base::ReadFile(key_file, 1 << 20);
    if (pem.ok()) {
      Result<std::shared_ptr<const identity::SigningKey>> key = identity::SigningKey::FromPem(*pem);
      key_known = key.ok() && directory_->FindKey(admin->app_id, (*key)->kid()) != nullptr;
    }
  }
  if (!admin.has_value()) {
    identity::ApplicationSpec spec;
    spec.display_name = "admin";
    spec.kind = identity::PrincipalKind::kUser;
    spec.user_subject = kBootstrapAdminSubject;
    ASSIGN_OR_RETURN(admin, directory_->CreateApplication(spec));
    Result<identity::RoleAssignment> assigned =
        directory_->AssignRole(identity::Role::kAdmin, kBootstrapAdminSubject, "/");
    if (!assigned.ok() && !absl::IsAlreadyExists(assigned.status())) return assigned.status();
    spdlog::info("created the first administrator '{}' (client id {})", kBootstrapAdminSubject,
                 admin->app_id);
  }
  if (!key_known) {
    ASSIGN_OR_RETURN(std::shared_ptr<const identity::SigningKey> key,
                     identity::SigningKey::Generate(identity::JwtAlg::kES256));
    RETURN_IF_ERROR(base::WriteFileAtomic(key_file, key->PrivatePem(), 0600));
    RETURN_IF_ERROR(directory_->AddKey(admin->app_id, key->public_key()->PublicPem()).status());
  }
  json config = {{"client_id", admin->app_id},
                 {"tenant_id", tenant_id_},
                 {"authority", options_.authority},
                 {"key_file", key_file}};
  return base::WriteFileAtomic(dir + "/admin.json", config.dump(2) + "\n", 0600);
}

Result<std::string> IdentityPlane::EnsureResourceApp(const std::string& display_name,
                                                     const std::string& resource,
                                                     const std::string& subject,
                                                     std::optional<identity::Role> role,
                                                     const std::string& scope) {
  std::optional<identity::Application> app = FindAppByName(display_name);
  if (!app.has_value()) {
    identity::ApplicationSpec spec;
    spec.display_name = display_name;
    ASSIGN_OR_RETURN(app, directory_->CreateApplication(spec));
  }
  identity::FederatedCredential wanted;
  wanted.name = role == identity::Role::kOperator ? kOperatorFicName : kWorkloadFicName;
  wanted.issuer = cluster_issuer_->IssuerFor(resource);
  wanted.subject = subject;
  wanted.audiences = {identity::kDefaultFederatedAudience};
  wanted.description = fmt::format("LOCAL cloud resource {}", resource);
  bool present = false;
  for (const identity::FederatedCredential& fic : app->federated_credentials) {
    if (fic.name != wanted.name) continue;
    // The authority (so the issuer) changes when the server moves: replace a stale one.
    if (fic.issuer == wanted.issuer && fic.subject == wanted.subject) {
      present = true;
    } else {
      RETURN_IF_ERROR(directory_->DeleteFederatedCredential(app->app_id, fic.name));
    }
  }
  if (!present) RETURN_IF_ERROR(directory_->AddFederatedCredential(app->app_id, wanted).status());
  if (!role.has_value()) return app->app_id;
  Result<identity::RoleAssignment> assigned = directory_->AssignRole(*role, app->app_id, scope);
  if (!assigned.ok() && !absl::IsAlreadyExists(assigned.status())) return assigned.status();
  return app->app_id;
}

Status IdentityPlane::RegisterLocalResource(const std::string& cloud, const std::string& resource) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      std::string operator_app,
      EnsureResourceApp(OperatorAppName(resource), resource,
                        ServiceAccountSubject(kOperatorServiceAccount), identity::Role::kOperator,
                        fmt::format("/clouds/{}/resources/{}", cloud, resource)));
  // Workloads hold no role on the control plane: their tokens are for what they use, and
  // one minted for a job attempt may read that job (authz.h). An administrator may still
  // grant the app a role.
  ASSIGN_OR_RETURN(
      std::string workloads_app,
      EnsureResourceApp(WorkloadsAppName(resource), resource,
                        ServiceAccountSubject(kWorkloadServiceAccount), std::nullopt, ""));
  workload_identities_[resource] = {workloads_app, tenant_id_, options_.authority};
  const std::string dir = fmt::format("{}/clusters/{}", options_.home, resource);
  RETURN_IF_ERROR(base::MakeDirs(dir, 0700));
  const std::string token_file = dir + "/operator.jwt";
  json config = {{"client_id", operator_app},
                 {"tenant_id", tenant_id_},
                 {"authority", options_.authority},
                 {"token_file", token_file}};
  RETURN_IF_ERROR(base::WriteFileAtomic(dir + "/operator.json", config.dump(2) + "\n", 0600));
  auto existing = writers_.find(resource);
  if (existing != writers_.end()) {
    existing->second->Stop();
    writers_.erase(existing);
  }
  identity::credentials::TokenFileWriterOptions writer_options;
  writer_options.path = token_file;
  writer_options.token_lifetime_ms = options_.cluster_token_lifetime_s * 1000;
  writer_options.mint = [this, resource] {
    return MintServiceAccountToken(resource, kOperatorServiceAccount,
                                   options_.cluster_token_lifetime_s);
  };
  ASSIGN_OR_RETURN(writers_[resource],
                   identity::credentials::TokenFileWriter::Start(std::move(writer_options)));
  return OkStatus();
}

Status IdentityPlane::UnregisterResource(const std::string& resource) {
  std::lock_guard lock(mu_);
  auto writer = writers_.find(resource);
  if (writer != writers_.end()) {
    writer->second->Stop();
    writers_.erase(writer);
  }
  workload_identities_.erase(resource);
  for (const std::string& name : {OperatorAppName(resource), WorkloadsAppName(resource)}) {
    std::optional<identity::Application> app = FindAppByName(name);
    if (app.has_value()) RETURN_IF_ERROR(directory_->DeleteApplication(app->app_id));
  }
  Status removed = base::RemoveAll(fmt::format("{}/clusters/{}", options_.home, resource));
  if (!removed.ok()) spdlog::warn("{}", removed.message());
  return OkStatus();
}

std::optional<WorkloadIdentity> IdentityPlane::WorkloadIdentityFor(
    const std::string& resource) const {
  std::lock_guard lock(mu_);
  auto it = workload_identities_.find(resource);
  if (it == workload_identities_.end()) return std::nullopt;
  return it->second;
}

Result<std::string> IdentityPlane::MintServiceAccountToken(
    const std::string& resource, const std::string& name, int64_t lifetime_s,
    const std::optional<identity::AttemptRef>& attempt) const {
  return cluster_issuer_->MintServiceAccountToken(resource, kServiceAccountNamespace, name,
                                                  identity::kDefaultFederatedAudience, lifetime_s,
                                                  attempt);
}

void IdentityPlane::Tick() {
  Result<bool> rotated = keys_->MaybeRotate();
  if (!rotated.ok()) {
    spdlog::warn("signing key rotation: {}", rotated.status().message());
  } else if (*rotated) {
    spdlog::info("created a new signing key; it signs from {} s from now",
                 options_.key_publish_ahead_s);
  }
}

}  // namespace meridian::control
