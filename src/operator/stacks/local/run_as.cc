#include "operator/stacks/local/run_as.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <functional>
#include <vector>

#include "base/files.h"
#include "fmt/format.h"

namespace meridian::op {
namespace {

constexpr uid_t kMinRangeUid = 1000;  // below: system accounts
constexpr uid_t kMaxRangeUid = 0x7ffffffe;

Result<uid_t> ParseUid(std::string_view text, std::string_view whole) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < kMinRangeUid ||
      value > kMaxRangeUid) {
    return absl::InvalidArgumentError(fmt::format("--run-as {}: '{}' is not a uid from {} to {}",
                                                  whole, text, kMinRangeUid, kMaxRangeUid));
  }
  return static_cast<uid_t>(value);
}

Result<RunAs> ParseRange(std::string_view text) {
  size_t dash = text.find('-');
  ASSIGN_OR_RETURN(uid_t first, ParseUid(text.substr(0, dash), text));
  ASSIGN_OR_RETURN(uid_t last, ParseUid(text.substr(dash + 1), text));
  if (first > last) {
    return absl::InvalidArgumentError(
        fmt::format("--run-as {}: the first uid is above the last", text));
  }
  return RunAsUidRange{first, last, static_cast<gid_t>(first)};
}

Result<RunAs> LookUpUser(std::string_view text) {
  std::string name(text);
  std::vector<char> buffer(16 * 1024);
  passwd entry;
  passwd* found = nullptr;
  int error = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (error != 0 || found == nullptr) {
    return absl::NotFoundError(fmt::format(
        "--run-as {}: no such user (create it, e.g. `useradd --system --no-create-home {}`, or "
        "give a uid range such as 20000-29999)",
        name, name));
  }
  if (found->pw_uid == 0) {
    return absl::InvalidArgumentError(
        fmt::format("--run-as {}: that is root; attempts must run unprivileged", name));
  }
  return RunAsUser{name, found->pw_uid, found->pw_gid};
}

}  // namespace

Result<RunAs> ParseRunAs(std::string_view text) {
  if (text == "operator") return RunAsOperator{};
  if (::geteuid() != 0) {
    return absl::FailedPreconditionError(fmt::format(
        "--run-as {}: only an operator running as root can run attempts as another user", text));
  }
  if (!text.empty() && text.front() >= '0' && text.front() <= '9') return ParseRange(text);
  if (text.empty()) return absl::InvalidArgumentError("--run-as: empty");
  return LookUpUser(text);
}

RunAs DefaultRunAs() {
  if (::geteuid() == 0) return RunAsUidRange{};
  return RunAsOperator{};
}

std::string DescribeRunAs(const RunAs& run_as) {
  if (const auto* user = std::get_if<RunAsUser>(&run_as)) {
    return fmt::format("user {} (uid {})", user->name, user->uid);
  }
  if (const auto* range = std::get_if<RunAsUidRange>(&run_as)) {
    return fmt::format("uids {}-{} (group {})", range->first_uid, range->last_uid, range->gid);
  }
  return "the operator's user";
}

Result<AttemptUser> ClaimAttemptUser(const RunAs& run_as, std::string_view key,
                                     const std::string& lock_dir) {
  if (const auto* user = std::get_if<RunAsUser>(&run_as)) {
    return AttemptUser{user->uid, user->gid, -1};
  }
  const auto* range = std::get_if<RunAsUidRange>(&run_as);
  if (range == nullptr) return AttemptUser{::geteuid(), ::getegid(), -1};
  RETURN_IF_ERROR(base::MakeDirs(lock_dir, 0700));
  const uint64_t size = uint64_t{range->last_uid} - range->first_uid + 1;
  const uint64_t start = std::hash<std::string_view>{}(key) % size;
  for (uint64_t i = 0; i < size; ++i) {
    uid_t uid = static_cast<uid_t>(range->first_uid + (start + i) % size);
    std::string path = fmt::format("{}/{}", lock_dir, uid);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      return absl::InternalError(
          fmt::format("cannot open uid claim {}: {}", path, std::strerror(errno)));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return AttemptUser{uid, range->gid, fd};
    int error = errno;
    ::close(fd);
    if (error != EWOULDBLOCK) {
      return absl::InternalError(
          fmt::format("cannot lock uid claim {}: {}", path, std::strerror(error)));
    }
  }
  return absl::ResourceExhaustedError(
      fmt::format("every uid of {}-{} runs an attempt", range->first_uid, range->last_uid));
}

}  // namespace meridian::op
