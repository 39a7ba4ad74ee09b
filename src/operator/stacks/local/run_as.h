// Who LOCAL attempts run as, and the per-attempt uid claims behind RunAsUidRange.
//
//   RunAsOperator  the operator's own user (the only choice when the operator is not root).
//                  Attempts can read whatever the operator can, each other included.
//   RunAsUser      every attempt as one unprivileged user (`--run-as NAME`); attempts are
//                  kept from the operator's files but not from each other.
//   RunAsUidRange  each attempt its own uid from [first_uid, last_uid] (`--run-as
//                  20000-29999`, the default for a root operator): attempts cannot read each
//                  other's files. The uids need no passwd entry. Every attempt's primary
//                  group is `gid`, which also owns the cluster storage, so files one attempt
//                  writes there another can change (umask 002).
//
// A uid is claimed for an attempt by an exclusive flock on <lock_dir>/<uid>, held by the
// attempt's shim for as long as the attempt runs (the stack hands the locked descriptor to
// the shim): the kernel releases it when the shim exits, however it exits, so two attempts
// on one machine (of any operator sharing lock_dir) never share a uid at once.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "base/status.h"

namespace meridian::op {

struct RunAsOperator {};
struct RunAsUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};
struct RunAsUidRange {
  uid_t first_uid = 20000;
  uid_t last_uid = 29999;
  gid_t gid = 20000;
};
using RunAs = std::variant<RunAsOperator, RunAsUser, RunAsUidRange>;

inline constexpr char kDefaultUidLockDir[] = "/run/meridian/attempt-uids";

// "operator"; a user name (looked up now; kNotFound when unknown, kInvalidArgument for
// root); or "FIRST-LAST" (uids 1000..2^31-2, FIRST <= LAST, the group FIRST). Anything but
// "operator" needs this process to be root (kFailedPrecondition otherwise).
Result<RunAs> ParseRunAs(std::string_view text);
// A uid range of 20000-29999 when this process is root, else the operator.
RunAs DefaultRunAs();
// "the operator's user", "user NAME (uid U)", "uids FIRST-LAST (group G)".
std::string DescribeRunAs(const RunAs& run_as);

// An attempt's uid and gid; `lock_fd` holds its claim (-1 when nothing is claimed: a fixed
// user, or the operator).
struct AttemptUser {
  uid_t uid = 0;
  gid_t gid = 0;
  int lock_fd = -1;
};

// For RunAsUidRange, claims a free uid, probing from one derived from `key` so that
// attempts spread over the range; kResourceExhausted when every uid is claimed. For the other
// kinds, their user and no claim. The caller owns `lock_fd` (close it to release).
Result<AttemptUser> ClaimAttemptUser(const RunAs& run_as, std::string_view key,
                                     const std::string& lock_dir = kDefaultUidLockDir);

}  // namespace meridian::op
