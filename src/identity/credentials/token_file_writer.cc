#include "identity/credentials/token_file_writer.h"

#include <algorithm>
#include <chrono>

#include "base/files.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meridian::identity::credentials {

Result<std::unique_ptr<TokenFileWriter>> TokenFileWriter::Start(TokenFileWriterOptions options) {
  if (options.path.empty()) return absl::InvalidArgumentError("a token file needs a path");
  if (!options.mint) return absl::InvalidArgumentError("a token file needs a mint function");
  if (options.token_lifetime_ms <= 0) {
    return absl::InvalidArgumentError("a token file needs a positive token lifetime");
  }
  if (options.rewrite_fraction <= 0 || options.rewrite_fraction >= 1) {
    return absl::InvalidArgumentError("rewrite_fraction must be between 0 and 1");
  }
  options.initial_retry_ms = std::max<int64_t>(1, options.initial_retry_ms);
  options.max_retry_ms = std::max(options.initial_retry_ms, options.max_retry_ms);
  std::unique_ptr<TokenFileWriter> writer(new TokenFileWriter(std::move(options)));
  RETURN_IF_ERROR(writer->WriteOnce());
  writer->thread_ = std::thread([raw = writer.get()] { raw->Run(); });
  return writer;
}

TokenFileWriter::TokenFileWriter(TokenFileWriterOptions options) : options_(std::move(options)) {}

TokenFileWriter::~TokenFileWriter() { Stop(); }

void TokenFileWriter::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

int64_t TokenFileWriter::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

int64_t TokenFileWriter::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

Status TokenFileWriter::WriteOnce() {
  Result<std::string> token = options_.mint();
  Status status = token.status();
  if (token.ok()) {
    status = base::WriteFileAtomic(options_.path, *token, 0600, base::FileSync::kProcessCrashSafe);
  }
  std::lock_guard lock(mu_);
  if (status.ok()) {
    ++writes_;
  } else {
    ++failures_;
    status = Status(status.code(),
                    fmt::format("writing the token file {}: {}", options_.path, status.message()));
  }
  return status;
}

void TokenFileWriter::Run() {
  const auto rewrite_after = std::chrono::milliseconds(static_cast<int64_t>(
      static_cast<double>(options_.token_lifetime_ms) * options_.rewrite_fraction));
  auto next = std::chrono::steady_clock::now() + rewrite_after;
  int64_t retry_ms = options_.initial_retry_ms;
  std::unique_lock lock(mu_);
  for (;;) {
    if (wake_.wait_until(lock, next, [this] { return stopping_; })) return;
    lock.unlock();
    const Status written = WriteOnce();
    lock.lock();
    const auto now = std::chrono::steady_clock::now();
    if (written.ok()) {
      next = now + rewrite_after;
      retry_ms = options_.initial_retry_ms;
      continue;
    }
    // The old token stays in the file; try again soon, but never wait past another rewrite
    // period, so that a long outage still leaves the retries frequent enough.
    spdlog::warn("{}; keeping the previous token and retrying in {} ms", written.message(),
                 retry_ms);
    next = now + std::min(std::chrono::milliseconds(retry_ms), rewrite_after);
    retry_ms = std::min(retry_ms * 2, options_.max_retry_ms);
  }
}

}  // namespace meridian::identity::credentials
