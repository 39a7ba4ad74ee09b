#include "identity/audit.h"

#include <future>
#include <nlohmann/json.hpp>

#include "base/hash.h"
#include "fmt/format.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;

constexpr char kHeadKind[] = "audit_head";
constexpr char kHeadId[] = "head";

std::string RecordId(int64_t seq) { return fmt::format("{:020d}", seq); }

// Cuts to `max_chars` and replaces invalid UTF-8, so what is hashed is what is stored.
std::string Clean(std::string_view text, size_t max_chars) {
  std::string cut(text.substr(0, max_chars));
  if (text.size() > max_chars) cut.replace(max_chars - 3, 3, "...");
  std::string quoted = json(cut).dump(-1, ' ', false, json::error_handler_t::replace);
  return json::parse(quoted).get<std::string>();
}

json Canonical(const AuditEntry& entry) {
  return {{"seq", entry.seq},
          {"time_ms", entry.time_ms},
          {"actor", entry.actor},
          {"action", entry.action},
          {"target", entry.target},
          {"result", entry.result},
          {"correlation_id", entry.correlation_id},
          {"source_address", entry.source_address},
          {"detail", entry.detail},
          {"prev_hash", entry.prev_hash}};
}

Result<AuditEntry> FromRecord(const state::Record& record) {
  try {
    json body = json::parse(record.body);
    AuditEntry entry;
    entry.seq = body.at("seq").get<int64_t>();
    entry.time_ms = body.at("time_ms").get<int64_t>();
    entry.actor = body.at("actor").get<std::string>();
    entry.action = body.at("action").get<std::string>();
    entry.target = body.at("target").get<std::string>();
    entry.result = body.at("result").get<std::string>();
    entry.correlation_id = body.at("correlation_id").get<std::string>();
    entry.source_address = body.at("source_address").get<std::string>();
    entry.detail = body.at("detail").get<std::string>();
    entry.prev_hash = body.at("prev_hash").get<std::string>();
    entry.hash = body.at("hash").get<std::string>();
    return entry;
  } catch (const json::exception& error) {
    return absl::DataLossError(
        fmt::format("audit record {}: unreadable ({})", record.id, error.what()));
  }
}

bool ActionMatches(std::string_view wanted, std::string_view action) {
  if (wanted.empty() || wanted == action) return true;
  return wanted.back() == '.' && action.substr(0, wanted.size()) == wanted;
}

}  // namespace

std::string TokenFingerprint(std::string_view token) {
  return "sha256:" + base::Sha256Hex(token).substr(0, 16);
}

std::string AuditEntryHash(const AuditEntry& entry) {
  return base::Sha256Hex(Canonical(entry).dump());
}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(state::StateStore* store, base::Clock* clock) {
  std::unique_ptr<AuditLog> log(new AuditLog(store, clock));
  ASSIGN_OR_RETURN(std::optional<state::Record> head, store->Get(kHeadKind, kHeadId));
  if (head.has_value()) {
    json body = json::parse(head->body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.value("seq", json()).is_number_integer() ||
        !body.value("hash", json()).is_string()) {
      return absl::DataLossError("audit log head record is unreadable");
    }
    log->last_seq_ = body["seq"].get<int64_t>();
    log->last_hash_ = body["hash"].get<std::string>();
  }
  return log;
}

namespace {

void CleanFields(AuditEntry& entry) {
  for (std::string* field : {&entry.actor, &entry.action, &entry.target, &entry.result,
                             &entry.correlation_id, &entry.source_address}) {
    *field = Clean(*field, kMaxAuditFieldChars);
  }
  entry.detail = Clean(entry.detail, kMaxAuditDetailChars);
  if (entry.actor.empty()) entry.actor = "anonymous";
}

}  // namespace

Result<AuditEntry> AuditLog::Append(AuditEntry entry) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> committed = promise->get_future();
  CommitWithFilled(entry, state::WriteBatch(), [promise](Status status) {
    promise->set_value(std::move(status));
  });
  // Waited for outside the lock, so concurrent appends share one sync (group commit).
  RETURN_IF_ERROR(committed.get());
  return entry;  // filled in place under the log's lock
}

void AuditLog::CommitWith(AuditEntry entry, state::WriteBatch batch,
                          std::function<void(Status)> done) {
  CommitWithFilled(entry, std::move(batch), std::move(done));
}

void AuditLog::CommitWithFilled(AuditEntry& entry, state::WriteBatch batch,
                                std::function<void(Status)> done) {
  CleanFields(entry);
  std::lock_guard lock(mu_);
  if (broken_) {
    // Answered as the store would: never on the caller's thread.
    store_->CommitAsync(state::WriteBatch(), [done = std::move(done)](Status) {
      done(absl::UnavailableError("audit log: an earlier append failed; reopen the log"));
    });
    return;
  }
  entry.seq = last_seq_ + 1;
  if (entry.time_ms == 0) entry.time_ms = clock_->NowUnixMs();
  entry.prev_hash = last_hash_;
  entry.hash = AuditEntryHash(entry);
  json body = Canonical(entry);
  body["hash"] = entry.hash;
  batch.Put(kAuditRecordKind, RecordId(entry.seq), body.dump(), /*expected_version=*/0);
  batch.Put(kHeadKind, kHeadId, json{{"seq", entry.seq}, {"hash", entry.hash}}.dump());
  // Queued under the lock so entries are stored in seq order.
  store_->CommitAsync(std::move(batch), [this, done = std::move(done)](Status status) {
    if (!status.ok()) broken_ = true;
    done(std::move(status));
  });
  last_seq_ = entry.seq;
  last_hash_ = entry.hash;
}

Result<std::vector<AuditEntry>> AuditLog::List(const AuditFilter& filter) const {
  ASSIGN_OR_RETURN(std::vector<state::Record> records, store_->List(kAuditRecordKind));
  const int64_t limit = std::clamp<int64_t>(filter.limit, 0, kMaxAuditListEntries);
  std::vector<AuditEntry> out;
  for (auto it = records.rbegin(); it != records.rend() && static_cast<int64_t>(out.size()) < limit;
       ++it) {
    ASSIGN_OR_RETURN(AuditEntry entry, FromRecord(*it));
    if (entry.time_ms < filter.since_ms) break;  // newest first: the rest are older
    if (!filter.actor.empty() && entry.actor != filter.actor) continue;
    if (!ActionMatches(filter.action, entry.action)) continue;
    out.push_back(std::move(entry));
  }
  return out;
}

Status AuditLog::Verify() const {
  ASSIGN_OR_RETURN(std::vector<state::Record> records, store_->List(kAuditRecordKind));
  int64_t expected_seq = 1;
  std::string prev_hash;
  for (const state::Record& record : records) {
    ASSIGN_OR_RETURN(AuditEntry entry, FromRecord(record));
    if (entry.seq != expected_seq || record.id != RecordId(entry.seq)) {
      return absl::DataLossError(fmt::format(
          "audit log: seq {}: missing (deleted); the next entry stored is {} (record {})",
          expected_seq, entry.seq, record.id));
    }
    if (entry.prev_hash != prev_hash) {
      return absl::DataLossError(fmt::format(
          "audit log: seq {}: prev_hash does not match entry {} (an entry was replaced or "
          "deleted)",
          entry.seq, entry.seq - 1));
    }
    if (AuditEntryHash(entry) != entry.hash) {
      return absl::DataLossError(
          fmt::format("audit log: seq {}: hash mismatch (the entry was edited)", entry.seq));
    }
    prev_hash = entry.hash;
    ++expected_seq;
  }
  ASSIGN_OR_RETURN(std::optional<state::Record> head, store_->Get(kHeadKind, kHeadId));
  int64_t head_seq = 0;
  std::string head_hash;
  if (head.has_value()) {
    json body = json::parse(head->body, nullptr, /*allow_exceptions=*/false);
    head_seq = body.is_object() ? body.value("seq", int64_t{-1}) : -1;
    head_hash = body.is_object() ? body.value("hash", "") : "";
  }
  if (head_seq != expected_seq - 1 || head_hash != prev_hash) {
    return absl::DataLossError(fmt::format(
        "audit log: seq {}: missing (deleted); the log ends at {} but its head records {}",
        expected_seq, expected_seq - 1, head_seq));
  }
  return OkStatus();
}

}  // namespace meridian::identity
