// TokenFileWriter: keeps a federated token file fresh, as the kubelet does for a projected
// service-account token. The operator runs one per job attempt (and one for itself), so the
// workload's AZURE_FEDERATED_TOKEN_FILE always holds a valid token.
//
// Start mints a token and writes it before returning; a background thread then mints and
// writes a new one at rewrite_fraction (80 %) of the token lifetime. Writes are atomic (a
// temporary file renamed over the path): a reader sees the old or the new token, never a mix.
//
// Mode 0600, not the 0644 Kubernetes projects with: on the LOCAL stack the workload runs as
// the operator's user, and a bearer credential should not be readable by other local users.
//
// A mint or write failure is logged and retried with exponential backoff (initial_retry_ms
// doubling up to max_retry_ms, never past the next scheduled rewrite); the old file stays in
// place meanwhile. Stop() (also run by the destructor) wakes the thread and joins it; the
// file is left in place.
//
// Thread safety: Stop and the accessors may be called from any thread. The mint function is
// called from the background thread only (and once from Start).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/status.h"

namespace meridian::identity::credentials {

struct TokenFileWriterOptions {
  std::string path;
  std::function<Result<std::string>()> mint;  // called without locks held
  int64_t token_lifetime_ms = 3600 * 1000;
  double rewrite_fraction = 0.8;
  int64_t initial_retry_ms = 500;
  int64_t max_retry_ms = 30'000;
};

class TokenFileWriter {
 public:
  // kInvalidArgument for a missing path/mint or a non-positive lifetime; the mint's or the
  // write's error when the first token cannot be written (nothing is started then).
  static Result<std::unique_ptr<TokenFileWriter>> Start(TokenFileWriterOptions options);
  ~TokenFileWriter();
  TokenFileWriter(const TokenFileWriter&) = delete;
  TokenFileWriter& operator=(const TokenFileWriter&) = delete;

  void Stop();
  const std::string& path() const { return options_.path; }
  int64_t writes() const;    // tokens written so far, the first included
  int64_t failures() const;  // mint or write failures so far

 private:
  explicit TokenFileWriter(TokenFileWriterOptions options);
  Status WriteOnce();
  void Run();

  // Constant after construction.
  const TokenFileWriterOptions options_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  int64_t writes_ = 0;     // guarded by mu_
  int64_t failures_ = 0;   // guarded by mu_
  std::thread thread_;
};

}  // namespace meridian::identity::credentials
