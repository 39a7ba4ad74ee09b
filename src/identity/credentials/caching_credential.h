// CachingCredential: a token cache in front of any TokenCredential.
//
// Tokens are cached per (scope, tenant). A cached token is handed out until its refresh_on;
// from then one caller fetches a new one while the others keep getting the cached token as
// long as it is valid. The caller that starts a fetch waits for it, the inner credential's
// retries included. With no valid token, exactly one caller fetches and every other caller
// for the same key waits for that one result (single flight), success or error.
//
// A failed refresh keeps the cached token, which is returned while it is valid (more than
// expiry_margin_s left); the next refresh is tried failed_refresh_retry_s later, not on every
// call. The inner credential does its own retries (token_endpoint.h).
//
// Limits: at most max_entries keys; when full, entries without a valid token are dropped
// first, then the one expiring soonest.
//
// Thread safety: GetToken may be called from many threads at once. The inner credential is
// called without any lock held.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/clock.h"
#include "identity/credentials/credential.h"

namespace meridian::identity::credentials {

struct CachingOptions {
  const base::Clock* clock = nullptr;  // not owned; nullptr: the system clock
  // A token with this little left is treated as expired: the caller needs time to use it.
  int64_t expiry_margin_s = 30;
  // After a failed refresh while a valid token is cached, wait this long before trying again.
  int64_t failed_refresh_retry_s = 30;
  int max_entries = 64;
};

class CachingCredential final : public TokenCredential {
 public:
  explicit CachingCredential(std::shared_ptr<TokenCredential> inner, CachingOptions options = {});

  Result<AccessToken> GetToken(const std::string& scope) override;
  std::string tenant_id() const override { return inner_->tenant_id(); }

 private:
  struct Entry {
    std::optional<AccessToken> token;
    bool fetching = false;
    uint64_t fetches_started = 0;   // generation of the latest fetch
    uint64_t fetches_finished = 0;  // generation of the latest fetch that ended
    Status last_error;              // of the latest finished fetch
    int64_t next_refresh_attempt_unix_s = 0;
  };

  bool Usable(const Entry& entry, int64_t now_unix_s) const;
  void MakeRoomLocked(int64_t now_unix_s);
  // Runs the inner credential for `key` and records the result. Called with `lock` held;
  // releases it while the inner credential runs.
  Result<AccessToken> FetchLocked(std::unique_lock<std::mutex>& lock, const std::string& key,
                                  const std::string& scope);

  // Constant after construction.
  const std::shared_ptr<TokenCredential> inner_;
  const CachingOptions options_;

  std::mutex mu_;
  std::condition_variable fetched_;       // signalled when any fetch ends
  std::map<std::string, Entry> entries_;  // guarded by mu_; key: scope '\n' tenant
};

}  // namespace meridian::identity::credentials
