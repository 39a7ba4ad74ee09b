// A file descriptor owned by one scope, and the one errno -> Status mapping for file calls.
#pragma once

#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"

namespace meridian::base {

// Closes the descriptor it holds (if any, >= 0) when it goes out of scope. Not copyable.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.Release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership: the caller closes it (and can see close(2)'s error).
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// "<what> <path>: <strerror>" with the code a caller can act on: kNotFound (ENOENT),
// kPermissionDenied (EACCES, EPERM), kResourceExhausted (ENOSPC, EDQUOT), else kInternal.
Status ErrnoStatus(std::string_view what, const std::string& path, int err);

}  // namespace meridian::base
