#include "storage/fs/fs_errors.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "absl/strings/cord.h"
#include "fmt/format.h"

namespace meridian::storage::fs {
namespace {

constexpr char kErrnoPayload[] = "meridian.storage.fs/errno";

absl::StatusCode CodeFor(int error_number) {
  switch (error_number) {
    case ENOENT:
      return absl::StatusCode::kNotFound;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::StatusCode::kPermissionDenied;
    case EINVAL:
    case ENAMETOOLONG:
    case EISDIR:
    case ENOTDIR:
      return absl::StatusCode::kInvalidArgument;
    case ENOTEMPTY:
      return absl::StatusCode::kFailedPrecondition;
    case ENOTSUP:
    case EXDEV:
      return absl::StatusCode::kUnimplemented;
    case ENOSPC:
    case EFBIG:
      return absl::StatusCode::kResourceExhausted;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

Status FsError(int error_number, std::string message) {
  Status status(CodeFor(error_number), message);
  status.SetPayload(kErrnoPayload, absl::Cord(std::to_string(error_number)));
  return status;
}

Status FsErrnoError(int error_number, std::string_view what) {
  return FsError(error_number, fmt::format("{}: {}", what, std::strerror(error_number)));
}

int ErrnoFor(const Status& status) {
  if (status.ok()) return 0;
  if (auto payload = status.GetPayload(kErrnoPayload)) {
    int value = std::atoi(std::string(*payload).c_str());
    if (value > 0) return value;
  }
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return ENOENT;
    case absl::StatusCode::kAlreadyExists:
      return EEXIST;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return EINVAL;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return EACCES;
    case absl::StatusCode::kResourceExhausted:
      return ENOSPC;
    case absl::StatusCode::kUnimplemented:
      return ENOTSUP;
    case absl::StatusCode::kDeadlineExceeded:
      return ETIMEDOUT;
    default:
      return EIO;
  }
}

}  // namespace meridian::storage::fs
