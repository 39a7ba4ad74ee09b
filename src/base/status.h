// Status and Result: the one error type of meridian.
//
// meridian uses absl::Status and absl::StatusOr with canonical codes chosen by who must act:
//   kInvalidArgument     the caller's input is wrong; fix it and do not retry.
//   kNotFound            the named thing does not exist.
//   kAlreadyExists       a create collided with an existing name.
//   kFailedPrecondition  the system is not in a state that allows the call; fix state first.
//   kUnavailable         transient; retry the same call (with backoff).
//   kDeadlineExceeded    the call ran out of time; retrying may help.
//   kAborted             a concurrency conflict; retry at a higher level.
//   kResourceExhausted   a limit was hit (size, quota).
//   kUnauthenticated / kPermissionDenied  identity problems.
//   kInternal            a bug or a broken invariant.
// Debian's abseil has its own absl::string_view (not std::string_view): build messages with
// fmt::format, which takes std::string_view, and pass std::string to absl.
// Mapping to HTTP status, errno and CLI exit codes happens once each, at the edges.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fmt/core.h"

namespace meridian {

using Status = absl::Status;
template <typename T>
using Result = absl::StatusOr<T>;

using absl::OkStatus;

}  // namespace meridian

// fmt (and so spdlog) can print absl::string_view, e.g. status.message(), and Status itself.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view text, FormatContext& context) const {
    return fmt::formatter<std::string_view>::format(std::string_view(text.data(), text.size()),
                                                    context);
  }
};

#define MERIDIAN_STATUS_CONCAT_INNER(a, b) a##b
#define MERIDIAN_STATUS_CONCAT(a, b) MERIDIAN_STATUS_CONCAT_INNER(a, b)

// Returns from the current function when `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                            \
  do {                                                   \
    ::meridian::Status _meridian_status = (expr);        \
    if (!_meridian_status.ok()) return _meridian_status; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, ResultExpr())` binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(MERIDIAN_STATUS_CONCAT(_meridian_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(result, lhs, expr) \
  auto result = (expr);                          \
  if (!result.ok()) return result.status();      \
  lhs = std::move(result).value()
