#include "identity/credentials/caching_credential.h"

#include <algorithm>

#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::identity::credentials {

CachingCredential::CachingCredential(std::shared_ptr<TokenCredential> inner, CachingOptions options)
    : inner_(std::move(inner)), options_([&] {
        if (options.clock == nullptr) options.clock = base::SystemClock::Get();
        options.max_entries = std::max(1, options.max_entries);
        return options;
      }()) {}

bool CachingCredential::Usable(const Entry& entry, int64_t now_unix_s) const {
  return entry.token.has_value() &&
         now_unix_s + options_.expiry_margin_s < entry.token->expires_on_unix_s;
}

Result<AccessToken> CachingCredential::GetToken(const std::string& scope) {
  if (scope.empty()) return absl::InvalidArgumentError("a token was asked for an empty scope");
  const std::string key = scope + '\n' + inner_->tenant_id();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    const int64_t now_s = options_.clock->NowUnixMs() / 1000;
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      MakeRoomLocked(now_s);
      it = entries_.emplace(key, Entry{}).first;
    }
    Entry& entry = it->second;
    const bool usable = Usable(entry, now_s);
    if (usable && now_s < entry.token->refresh_on_unix_s) return *entry.token;
    if (entry.fetching) {
      // Someone is already fetching: use what we have, or wait for their result.
      if (usable) return *entry.token;
      const uint64_t awaited = entry.fetches_started;
      fetched_.wait(lock, [&] {
        const auto found = entries_.find(key);
        return found == entries_.end() || found->second.fetches_finished >= awaited;
      });
      const auto found = entries_.find(key);
      if (found == entries_.end()) continue;
      if (Usable(found->second, options_.clock->NowUnixMs() / 1000)) return *found->second.token;
      if (!found->second.last_error.ok()) return found->second.last_error;
      continue;
    }
    if (usable && now_s < entry.next_refresh_attempt_unix_s) return *entry.token;
    return FetchLocked(lock, key, scope);
  }
}

Result<AccessToken> CachingCredential::FetchLocked(std::unique_lock<std::mutex>& lock,
                                                   const std::string& key,
                                                   const std::string& scope) {
  entries_[key].fetching = true;
  const uint64_t generation = ++entries_[key].fetches_started;
  lock.unlock();
  Result<AccessToken> fetched = inner_->GetToken(scope);
  lock.lock();
  // The entry cannot have been dropped: MakeRoomLocked skips entries being fetched.
  Entry& entry = entries_[key];
  entry.fetching = false;
  entry.fetches_finished = generation;
  const int64_t now_s = options_.clock->NowUnixMs() / 1000;
  if (fetched.ok()) {
    entry.token = *fetched;
    entry.last_error = OkStatus();
    entry.next_refresh_attempt_unix_s = 0;
  } else {
    entry.last_error = fetched.status();
    entry.next_refresh_attempt_unix_s = now_s + options_.failed_refresh_retry_s;
  }
  fetched_.notify_all();
  if (fetched.ok()) return fetched;
  if (Usable(entry, now_s)) {
    spdlog::warn(
        "refreshing the token for scope '{}' failed ({}); using the cached token, "
        "valid {} s more",
        scope, fetched.status().message(), entry.token->expires_on_unix_s - now_s);
    return *entry.token;
  }
  return fetched.status();
}

void CachingCredential::MakeRoomLocked(int64_t now_unix_s) {
  if (static_cast<int>(entries_.size()) < options_.max_entries) return;
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = !it->second.fetching && !Usable(it->second, now_unix_s) ? entries_.erase(it)
                                                                 : std::next(it);
  }
  if (static_cast<int>(entries_.size()) < options_.max_entries) return;
  auto soonest = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.fetching) continue;
    if (soonest == entries_.end() ||
        it->second.token->expires_on_unix_s < soonest->second.token->expires_on_unix_s) {
      soonest = it;
    }
  }
  if (soonest != entries_.end()) entries_.erase(soonest);
}

}  // namespace meridian::identity::credentials
