#include "identity/keys.h"

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;

constexpr JwtAlg kAlgorithms[] = {JwtAlg::kRS256, JwtAlg::kES256};

}  // namespace

std::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kPending:
      return "pending";
    case KeyState::kActive:
      return "active";
    case KeyState::kRetiring:
      return "retiring";
    case KeyState::kRetired:
      return "retired";
  }
  return "unknown";
}

KeyManager::KeyManager(state::StateStore* store, base::Clock* clock, KeyManagerOptions options)
    : store_(store), clock_(clock), options_(options) {}

Result<std::unique_ptr<KeyManager>> KeyManager::Open(state::StateStore* store, base::Clock* clock,
                                                     KeyManagerOptions options) {
  if (options.rotation_period_s <= 0 || options.publish_ahead_s < 0 ||
      options.max_token_lifetime_s <= 0 || options.leeway_s < 0) {
    return absl::InvalidArgumentError("key manager: periods must be positive");
  }
  std::unique_ptr<KeyManager> manager(new KeyManager(store, clock, options));
  std::unique_lock lock(manager->mu_);
  RETURN_IF_ERROR(manager->LoadLocked());
  const int64_t now_ms = clock->NowUnixMs();
  for (JwtAlg alg : kAlgorithms) {
    bool live = false;
    for (const auto& [kid, entry] : manager->keys_) {
      if (entry.key->alg() == alg && manager->StateOf(entry, now_ms) != KeyState::kRetired) {
        live = true;
      }
    }
    if (!live) RETURN_IF_ERROR(manager->CreateKeyLocked(alg, now_ms));
  }
  return manager;
}

Status KeyManager::LoadLocked() {
  ASSIGN_OR_RETURN(std::vector<state::Record> records, store_->List(kKeyRecordKind));
  std::map<std::string, Entry, std::less<>> loaded;
  for (const state::Record& record : records) {
    json body = json::parse(record.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.value("private_pem", json()).is_string()) {
      return absl::InternalError(fmt::format("{} record {}: not a key", kKeyRecordKind, record.id));
    }
    Result<std::shared_ptr<const SigningKey>> key =
        SigningKey::FromPem(body["private_pem"].get<std::string>());
    if (!key.ok() || (*key)->kid() != record.id) {
      return absl::InternalError(
          fmt::format("{} record {}: unreadable or its kid differs", kKeyRecordKind, record.id));
    }
    Entry entry;
    entry.key = *std::move(key);
    entry.created_ms = body.value("created_ms", int64_t{0});
    entry.active_from_ms = body.value("active_from_ms", int64_t{0});
    loaded.emplace(record.id, std::move(entry));
  }
  keys_ = std::move(loaded);
  RecomputeLocked();
  return OkStatus();
}

Status KeyManager::Reload() {
  std::unique_lock lock(mu_);
  return LoadLocked();
}

Status KeyManager::CreateKeyLocked(JwtAlg alg, int64_t active_from_ms) {
  ASSIGN_OR_RETURN(std::shared_ptr<const SigningKey> key, SigningKey::Generate(alg));
  Entry entry;
  entry.key = key;
  entry.created_ms = clock_->NowUnixMs();
  entry.active_from_ms = active_from_ms;
  json body = {{"kid", key->kid()},
               {"alg", std::string(JwtAlgName(alg))},
               {"private_pem", key->PrivatePem()},
               {"created_ms", entry.created_ms},
               {"active_from_ms", active_from_ms}};
  state::WriteBatch batch;
  batch.Put(kKeyRecordKind, key->kid(), body.dump(), /*expected_version=*/0);
  RETURN_IF_ERROR(store_->Commit(std::move(batch)));
  keys_.emplace(key->kid(), std::move(entry));
  RecomputeLocked();
  spdlog::info("signing key {} ({}) created, signs from {}", key->kid(), JwtAlgName(alg),
               active_from_ms);
  return OkStatus();
}

// Each key's successor is the next key of its algorithm by activation time; the key stops
// signing when that one activates and stays verifiable for one token lifetime plus leeway.
void KeyManager::RecomputeLocked() {
  for (JwtAlg alg : kAlgorithms) {
    std::vector<Entry*> ordered;
    for (auto& [kid, entry] : keys_) {
      if (entry.key->alg() == alg) ordered.push_back(&entry);
    }
    std::sort(ordered.begin(), ordered.end(), [](const Entry* a, const Entry* b) {
      if (a->active_from_ms != b->active_from_ms) return a->active_from_ms < b->active_from_ms;
      return a->key->kid() < b->key->kid();
    });
    for (size_t i = 0; i < ordered.size(); ++i) {
      Entry* entry = ordered[i];
      entry->successor_from_ms = i + 1 < ordered.size() ? ordered[i + 1]->active_from_ms : 0;
      entry->retire_at_ms = entry->successor_from_ms == 0
                                ? 0
                                : entry->successor_from_ms +
                                      (options_.max_token_lifetime_s + options_.leeway_s) * 1000;
    }
  }
}

KeyState KeyManager::StateOf(const Entry& entry, int64_t now_ms) const {
  if (now_ms < entry.active_from_ms) return KeyState::kPending;
  if (entry.successor_from_ms == 0 || now_ms < entry.successor_from_ms) return KeyState::kActive;
  return now_ms < entry.retire_at_ms ? KeyState::kRetiring : KeyState::kRetired;
}

Status KeyManager::Rotate() {
  for (JwtAlg alg : kAlgorithms) RETURN_IF_ERROR(Rotate(alg));
  return OkStatus();
}

Status KeyManager::Rotate(JwtAlg alg) {
  std::unique_lock lock(mu_);
  return CreateKeyLocked(alg, clock_->NowUnixMs() + options_.publish_ahead_s * 1000);
}

Result<bool> KeyManager::MaybeRotate() {
  std::unique_lock lock(mu_);
  const int64_t now_ms = clock_->NowUnixMs();
  bool rotated = false;
  for (JwtAlg alg : kAlgorithms) {
    int64_t newest_from_ms = -1;
    for (const auto& [kid, entry] : keys_) {
      if (entry.key->alg() == alg) newest_from_ms = std::max(newest_from_ms, entry.active_from_ms);
    }
    // A pending key counts as the newest, so a rotation in flight is not repeated.
    if (newest_from_ms < 0 || now_ms - newest_from_ms >= options_.rotation_period_s * 1000) {
      RETURN_IF_ERROR(CreateKeyLocked(alg, now_ms + options_.publish_ahead_s * 1000));
      rotated = true;
    }
  }
  state::WriteBatch batch;
  std::vector<std::string> retired;
  for (const auto& [kid, entry] : keys_) {
    if (StateOf(entry, now_ms) == KeyState::kRetired) {
      batch.Delete(kKeyRecordKind, kid);
      retired.push_back(kid);
    }
  }
  if (!batch.empty()) {
    RETURN_IF_ERROR(store_->Commit(std::move(batch)));
    // Retired keys are never anyone's successor that matters: their successors activated.
    for (const std::string& kid : retired) keys_.erase(kid);
    RecomputeLocked();
    spdlog::info("{} retired signing key(s) deleted", retired.size());
  }
  return rotated;
}

Result<std::shared_ptr<const SigningKey>> KeyManager::ActiveSigner(JwtAlg alg) const {
  std::shared_lock lock(mu_);
  const int64_t now_ms = clock_->NowUnixMs();
  for (const auto& [kid, entry] : keys_) {
    if (entry.key->alg() == alg && StateOf(entry, now_ms) == KeyState::kActive) return entry.key;
  }
  return absl::FailedPreconditionError(
      fmt::format("no active {} signing key (the key store is empty)", JwtAlgName(alg)));
}

std::shared_ptr<const PublicKey> KeyManager::Lookup(std::string_view kid) const {
  std::shared_lock lock(mu_);
  auto it = keys_.find(kid);
  if (it == keys_.end() || StateOf(it->second, clock_->NowUnixMs()) == KeyState::kRetired) {
    return nullptr;
  }
  return it->second.key->public_key();
}

std::vector<KeyInfo> KeyManager::Keys() const {
  std::shared_lock lock(mu_);
  const int64_t now_ms = clock_->NowUnixMs();
  std::vector<KeyInfo> out;
  for (const auto& [kid, entry] : keys_) {
    out.push_back(KeyInfo{kid, entry.key->alg(), StateOf(entry, now_ms), entry.created_ms,
                          entry.active_from_ms, entry.retire_at_ms});
  }
  std::sort(out.begin(), out.end(), [](const KeyInfo& a, const KeyInfo& b) {
    if (a.active_from_ms != b.active_from_ms) return a.active_from_ms > b.active_from_ms;
    return a.kid < b.kid;
  });
  return out;
}

std::string KeyManager::JwksJson() const {
  json keys = json::array();
  for (const KeyInfo& info : Keys()) {
    if (info.state == KeyState::kRetired) continue;
    std::shared_ptr<const PublicKey> key = Lookup(info.kid);
    if (key != nullptr) keys.push_back(json::parse(key->JwkJson()));
  }
  return json{{"keys", keys}}.dump();
}

}  // namespace meridian::identity
