// The one mapping between meridian Status and errno for the filesystem.
//
// The filesystem core reports every failure as a Status. Where POSIX needs an errno that no
// canonical code names (ENOTEMPTY, EXDEV, EISDIR, ...), the core builds the Status with
// FsError, which carries the errno as a payload; ErrnoFor reads it back. Every other Status
// (for example one that came from the object store) is mapped by its canonical code.
// The FUSE adapter calls ErrnoFor once per failed request and nothing else decides errnos.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace meridian::storage::fs {

// A Status whose canonical code suits `error_number` and which carries it exactly.
Status FsError(int error_number, std::string message);

// FsError for a failed system call: "<what>: <strerror(error_number)>". The one errno ->
// Status helper of the filesystem (base::ErrnoStatus maps to a code and drops the errno).
Status FsErrnoError(int error_number, std::string_view what);

// The errno for `status` (0 for OK). Canonical codes without a payload:
//   kNotFound ENOENT, kAlreadyExists EEXIST, kInvalidArgument EINVAL,
//   kPermissionDenied / kUnauthenticated EACCES, kFailedPrecondition (an ETag conflict
//   from the store) EIO, kOutOfRange EINVAL, kResourceExhausted ENOSPC,
//   kUnimplemented ENOTSUP, kDeadlineExceeded ETIMEDOUT, kUnavailable / kAborted /
//   kInternal / anything else EIO.
int ErrnoFor(const Status& status);

}  // namespace meridian::storage::fs
