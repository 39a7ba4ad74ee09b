// ClusterStorage: the cloud resource's object storage (`object_storage.bucket_name`) mounted
// on the operator's machine, the directory every job attempt sees at MERIDIAN_CLUSTER_STORAGE.
//
// Open() starts `meridian storage mount URL DIR --cache-dir CACHE` as a child process (the
// binary is /proc/self/exe unless told otherwise) and returns once the mount is live: the
// mount point's st_dev differs from its parent's. The child gets SIGTERM if the thread that
// called Open() dies, so an operator killed outright does not leave a mount process behind.
// A mount left over from an earlier operator that died (a dead FUSE connection, or still
// mounted) is lazily unmounted first.
//
// Without FUSE (/dev/fuse cannot be opened read-write, or the mount does not come up):
//   - file:///root (the local backend, as under `meridian up`): one warning, and the attempts
//     get the plain directory <root>/fallback instead. Operators sharing the root on one
//     machine still share files, but those files are not objects of the store: a mount of
//     the same URL does not show them.
//   - any other URL (Azure Blob): kFailedPrecondition with the reason; the operator reports
//     it as the reason its attempts could not start.
//
// Shutdown: the destructor (or Unmount()) sends SIGTERM to the mount process, which uploads
// what is still dirty and unmounts; after unmount_timeout_ms it is killed and the mount point
// lazily unmounted with `fusermount3 -u -z`.
//
// Thread safety: none; one owner (the operator's main loop).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/status.h"

namespace meridian::op {

struct ClusterStorageOptions {
  std::string bucket_url;  // object_storage.bucket_name; required
  std::string mount_dir;   // created when missing
  std::string cache_dir;   // the mount's file cache; created when missing
  std::string log_file;    // the mount process's output ("": /dev/null)
  std::string binary = "/proc/self/exe";
  // Attempts run as other users (run_as.h) share the storage through this group: the mount
  // is made with allow_other, gid=<group> and umask=002, and the local fallback directory is
  // given to the group (setgid, 02775). nullopt: the operator's user alone uses it.
  std::optional<gid_t> shared_gid;
  int64_t mount_timeout_ms = 20'000;
  int64_t unmount_timeout_ms = 30'000;
};

class ClusterStorage {
 public:
  static Result<std::unique_ptr<ClusterStorage>> Open(const ClusterStorageOptions& options);
  ~ClusterStorage();
  ClusterStorage(const ClusterStorage&) = delete;
  ClusterStorage& operator=(const ClusterStorage&) = delete;

  // The directory attempts see: the mount point, or the local fallback directory.
  const std::string& path() const { return path_; }
  // Whether path() is a live FUSE mount (false: the local fallback).
  bool mounted() const { return mount_pid_ > 0; }
  // Idempotent; also run by the destructor.
  void Unmount();

 private:
  ClusterStorage() = default;

  ClusterStorageOptions options_;
  std::string path_;
  pid_t mount_pid_ = -1;
};

// Gives `dir` to group `gid` with mode 02775 (setgid: what is made inside stays the group's).
Status ShareWithGroup(const std::string& dir, gid_t gid);
// Whether this process can open /dev/fuse read-write (a precondition for mounting).
bool FuseDeviceUsable();
// Whether `dir` is a mount point: its st_dev differs from its parent's.
bool IsMountPoint(const std::string& dir);
// For "file:///absolute/path" the path without a trailing '/'; "" for any other URL.
std::string LocalBackendRoot(const std::string& url);

}  // namespace meridian::op
