// KeyManager: meridian's own signing keys (RS256 and ES256), kept in the state store and
// rotated with overlap so that no verifier ever sees a token signed by a key it cannot find.
//
// Life of a key (times from the injected clock):
//   pending   created by a rotation, published in the JWKS `publish_ahead_s` before it signs,
//             so verifiers that cache the JWKS learn it first;
//   active    the newest key whose activation time has passed: ActiveSigner returns it;
//   retiring  superseded, no longer signs, still published and verifiable until every token
//             it can have signed has expired: superseded_at + max_token_lifetime_s + leeway_s
//             (it signed nothing after its successor activated);
//   retired   gone from the JWKS and Lookup; MaybeRotate deletes its record.
// A fresh store gets one key per algorithm, active at once (no verifier can have cached a
// JWKS yet).
//
// Storage: records of kind "identity_key", id = kid, body JSON {kid, alg, private_pem,
// created_ms, active_from_ms}. Every change commits synchronously before it takes effect.
// One KeyManager writes a store at a time; another replica picks changes up with Reload().
//
// Thread safety: every method may be called from any thread; Lookup and ActiveSigner take a
// shared lock only (the per-request paths).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "identity/jwt.h"
#include "state/state_store.h"

namespace meridian::identity {

inline constexpr char kKeyRecordKind[] = "identity_key";

struct KeyManagerOptions {
  int64_t rotation_period_s = 30 * 24 * 3600;  // a key signs for about this long
  int64_t publish_ahead_s = 24 * 3600;         // JWKS caches refresh at least daily
  // The longest lifetime of any token signed with these keys; signers must not exceed it.
  int64_t max_token_lifetime_s = 3600;
  int64_t leeway_s = kDefaultLeewaySeconds;  // verifiers' clock-skew allowance
};

enum class KeyState { kPending, kActive, kRetiring, kRetired };
std::string_view KeyStateName(KeyState state);  // "pending", "active", "retiring", "retired"

struct KeyInfo {
  std::string kid;
  JwtAlg alg = JwtAlg::kES256;
  KeyState state = KeyState::kPending;
  int64_t created_ms = 0;
  int64_t active_from_ms = 0;
  int64_t retire_at_ms = 0;  // 0 while it has no active successor
};

class KeyManager {
 public:
  // Loads the keys from `store`, creating one active key per algorithm where none is live.
  // `store` and `clock` must outlive the manager.
  static Result<std::unique_ptr<KeyManager>> Open(state::StateStore* store, base::Clock* clock,
                                                  KeyManagerOptions options = {});

  // Creates a pending key for each algorithm (or one), active `publish_ahead_s` from now.
  Status Rotate();
  Status Rotate(JwtAlg alg);
  // Rotates each algorithm whose newest key has been active for `rotation_period_s`, and
  // deletes retired keys' records. Returns whether it created a key. Call it periodically.
  Result<bool> MaybeRotate();
  // Re-reads the store (after another replica rotated).
  Status Reload();

  // The key that signs now. kFailedPrecondition only if the store lost every key.
  Result<std::shared_ptr<const SigningKey>> ActiveSigner(JwtAlg alg) const;
  // A published (pending, active or retiring) key; nullptr when unknown or retired.
  std::shared_ptr<const PublicKey> Lookup(std::string_view kid) const;
  // {"keys": [JWK, ...]}: every published key, newest first.
  std::string JwksJson() const;
  // Every key in the store with its state now, newest first (for operators and tests).
  std::vector<KeyInfo> Keys() const;

  const KeyManagerOptions& options() const { return options_; }

 private:
  struct Entry {
    std::shared_ptr<const SigningKey> key;
    int64_t created_ms = 0;
    int64_t active_from_ms = 0;
    int64_t retire_at_ms = 0;  // 0: no active successor yet (see RecomputeLocked)
    int64_t successor_from_ms = 0;
  };

  KeyManager(state::StateStore* store, base::Clock* clock, KeyManagerOptions options);
  Status CreateKeyLocked(JwtAlg alg, int64_t active_from_ms);
  void RecomputeLocked();
  KeyState StateOf(const Entry& entry, int64_t now_ms) const;
  Status LoadLocked();

  // Constant after construction.
  state::StateStore* const store_;
  base::Clock* const clock_;
  const KeyManagerOptions options_;

  mutable std::shared_mutex mu_;
  std::map<std::string, Entry, std::less<>> keys_;  // by kid; protected by mu_
};

}  // namespace meridian::identity
