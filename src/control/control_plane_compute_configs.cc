// ControlPlane: named compute configs (compute_configs.h) and their resolution at submit.
#include <nlohmann/json.hpp>

#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "fmt/format.h"

namespace meridian::control {

using internal::Dump;
using internal::kComputeConfigKind;

namespace {

Status NoSuchComputeConfig(const std::string& name) {
  return absl::NotFoundError(fmt::format(
      "compute config '{}' does not exist (register it with `meridian compute-config create -n "
      "{} -f FILE`)",
      name, name));
}

}  // namespace

void ControlPlane::CreateComputeConfig(std::string name, spec::ComputeConfig config,
                                       std::string creator, ComputeConfigDone done) {
  std::unique_lock lock(mu_);
  auto it = compute_configs_.find(name);
  Status refused;
  if (it == compute_configs_.end() && compute_configs_.size() >= kMaxComputeConfigs) {
    refused = absl::ResourceExhaustedError(
        fmt::format("the control plane holds its limit of {} compute configs", kMaxComputeConfigs));
  } else if (it != compute_configs_.end() && it->second.archived) {
    refused = absl::FailedPreconditionError(fmt::format(
        "compute config '{}' is archived; register the new version under another name", name));
  } else if (it != compute_configs_.end() &&
             it->second.versions.size() >= kMaxComputeConfigVersions) {
    refused = absl::ResourceExhaustedError(fmt::format(
        "compute config '{}' has its limit of {} versions", name, kMaxComputeConfigVersions));
  }
  if (!refused.ok()) {
    lock.unlock();
    done(refused);
    return;
  }
  int64_t expected_version = 0;  // a new name must not exist in the store yet
  if (it == compute_configs_.end()) {
    it = compute_configs_.emplace(name, NamedComputeConfig{name, {}, false, 0}).first;
  } else {
    expected_version = state::kAnyVersion;
  }
  NamedComputeConfig& record = it->second;
  record.versions.push_back({static_cast<int>(record.versions.size()) + 1, std::move(config),
                             std::move(creator), NowMs()});
  state::WriteBatch batch;
  batch.Put(std::string(kComputeConfigKind), name, Dump(StoredJson(record)), expected_version);
  NamedComputeConfig result = record;
  CommitLocked(std::move(batch), [done, result = std::move(result)](Status) { done(result); });
}

std::vector<NamedComputeConfig> ControlPlane::ListComputeConfigs() {
  std::lock_guard lock(mu_);
  std::vector<NamedComputeConfig> out;
  out.reserve(compute_configs_.size());
  for (const auto& [name, record] : compute_configs_) out.push_back(record);
  return out;
}

Result<NamedComputeConfig> ControlPlane::GetComputeConfig(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = compute_configs_.find(name);
  if (it == compute_configs_.end()) return NoSuchComputeConfig(name);
  return it->second;
}

void ControlPlane::ArchiveComputeConfig(const std::string& name, ComputeConfigDone done) {
  std::unique_lock lock(mu_);
  auto it = compute_configs_.find(name);
  if (it == compute_configs_.end()) {
    lock.unlock();
    done(NoSuchComputeConfig(name));
    return;
  }
  NamedComputeConfig& record = it->second;
  if (!record.archived) {  // archiving twice answers the same, and writes nothing
    record.archived = true;
    record.archived_unix_ms = NowMs();
    state::WriteBatch batch;
    batch.Put(std::string(kComputeConfigKind), name, Dump(StoredJson(record)));
    NamedComputeConfig result = record;
    CommitLocked(std::move(batch), [done, result = std::move(result)](Status) { done(result); });
    return;
  }
  NamedComputeConfig result = record;
  lock.unlock();
  done(result);
}

Result<std::string> ControlPlane::ResolveComputeConfigLocked(spec::ComputeConfig& config) const {
  ASSIGN_OR_RETURN(spec::ComputeConfigRef ref, spec::ParseComputeConfigRef(config.named));
  auto it = compute_configs_.find(ref.name);
  if (it == compute_configs_.end()) return NoSuchComputeConfig(ref.name);
  const NamedComputeConfig& record = it->second;
  if (record.archived) {
    return absl::FailedPreconditionError(
        fmt::format("compute config '{}' is archived: new jobs cannot use it", ref.name));
  }
  ASSIGN_OR_RETURN(const ComputeConfigVersion* version, FindVersion(record, ref));
  config = version->config;
  return fmt::format("{}:{}", record.name, version->version);
}

}  // namespace meridian::control
