// AuditLog: the append-only, hash-chained record of every mutating API call and every token
// issued or refused.
//
// Each entry carries the SHA-256 of the entry before it, and its own hash covers every field
// including that one, so editing an entry breaks its hash, and deleting one breaks the chain
// (a sequence gap and a prev_hash that no longer matches). Verify() walks the chain and names
// the first entry that fails.
//
// Storage: one state-store record per entry, kind "audit", id = seq zero-padded to 20
// digits (so the store's id order is seq order), body = the entry as canonical JSON, plus
// one record "audit_head"/"head" {seq, hash} written in the same batch, so that deleting
// the newest entries is detected too. Records rather than a log stream, so that an edit is
// detectable per entry. List and Verify read the whole log (the store has no range query).
// Appends are queued in seq order under a mutex and waited for outside it, so concurrent
// appends share one sync; each returns once its entry is durable. After a failed commit the
// log refuses appends (kUnavailable) until reopened: the chain in memory ran ahead of the
// store, and Verify would name the gap.
//
// Never put a token or a key in an entry: TokenFingerprint gives a stable, non-reversible
// name for one.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "state/state_store.h"

namespace meridian::identity {

inline constexpr char kAuditRecordKind[] = "audit";
inline constexpr size_t kMaxAuditFieldChars = 1024;  // longer fields are cut, marked "..."
inline constexpr size_t kMaxAuditDetailChars = 4096;
inline constexpr int64_t kMaxAuditListEntries = 10'000;

struct AuditEntry {
  int64_t seq = 0;  // 1, 2, 3, ... assigned by Append
  int64_t time_ms = 0;
  std::string actor;   // app id or user subject; "anonymous" when unknown
  std::string action;  // e.g. "token.issue", "token.refuse", "job.submit"
  std::string target;  // what was acted on, e.g. "/clouds/prod/resources/east", a job id
  std::string result;  // "ok", or an error code / HTTP status
  std::string correlation_id;
  std::string source_address;
  std::string detail;     // free text: never a token or a key
  std::string prev_hash;  // hex SHA-256 of the previous entry ("" for seq 1)
  std::string hash;       // hex SHA-256 of this entry's canonical form
};

struct AuditFilter {
  std::string actor;   // "" : any (exact match otherwise)
  std::string action;  // "" : any (exact match, or a prefix ending in '.', e.g. "token.")
  int64_t since_ms = 0;
  int64_t limit = 100;  // newest entries first; at most kMaxAuditListEntries
};

// "sha256:" + the first 16 hex digits of SHA-256(token): enough to correlate, useless to
// replay.
std::string TokenFingerprint(std::string_view token);

// The hash an entry must carry: hex SHA-256 of its canonical JSON (every field but `hash`,
// keys sorted).
std::string AuditEntryHash(const AuditEntry& entry);

class AuditLog {
 public:
  // Reads the newest entry to continue the chain. `store` and `clock` must outlive the log.
  static Result<std::unique_ptr<AuditLog>> Open(state::StateStore* store, base::Clock* clock);

  // Fills seq, time_ms (when 0), prev_hash and hash, cuts over-long fields, commits, and
  // returns the entry as stored. Entries are stored in the order Append is called.
  Result<AuditEntry> Append(AuditEntry entry);

  // Appends `entry` inside the caller's own write: adds it to `batch` (seq and hashes assigned
  // as Append does) and queues the batch with the store's CommitAsync, both under the log's
  // lock, so the caller's records and the entry become durable together or not at all, and
  // entries stay in seq order. `done` runs as CommitAsync's does (never on this thread).
  // Callers may hold a lock of their own (lock order: theirs, then the log's); the log calls
  // nothing but the store while it holds its lock. kUnavailable to `done` after a failed
  // commit, as for Append.
  void CommitWith(AuditEntry entry, state::WriteBatch batch, std::function<void(Status)> done);

  // Matching entries, newest first.
  Result<std::vector<AuditEntry>> List(const AuditFilter& filter) const;

  // OK when the chain is intact; kDataLoss naming the first bad seq and why otherwise.
  Status Verify() const;

 private:
  // CommitWith, filling `entry` in place (seq, time, hashes) under the lock.
  void CommitWithFilled(AuditEntry& entry, state::WriteBatch batch,
                        std::function<void(Status)> done);
  AuditLog(state::StateStore* store, base::Clock* clock) : store_(store), clock_(clock) {}

  // Constant after construction.
  state::StateStore* const store_;
  base::Clock* const clock_;

  std::mutex mu_;          // orders appends
  int64_t last_seq_ = 0;   // protected by mu_
  std::string last_hash_;  // protected by mu_
  // Set from the store's writer thread.
  std::atomic<bool> broken_{false};
};

}  // namespace meridian::identity
