// FuseMount: serves an FsCore at a mount point through libfuse3's low-level API.
//
// The adapter is thin: each kernel request becomes one FsCore call and exactly one
// fuse_reply_* (errors through ErrnoFor, fs_errors.h). No exception crosses into libfuse:
// every callback catches and replies EIO. The kernel is told the timeouts the user chose
// (entry_timeout, attr_timeout, negative_timeout: a negative lookup is cached as an entry
// with inode 0). When Open reports that a file changed in the store, the kernel's cached
// pages and attributes of that inode are invalidated before the open is answered, so a file
// rewritten elsewhere is never read stale or cut at its old size.
//
// Mount options always include default_permissions (the kernel checks the mode bits FsCore
// reports) and fsname=meridian; allow_other and ro when asked.
//
// Lifetime: Mount() mounts; Run() serves on a multi-threaded loop until the filesystem is
// unmounted or the process gets SIGTERM, SIGINT or SIGHUP, then uploads what is still dirty
// and unmounts. The destructor unmounts if Run() was never called.
// Thread safety: Run() once, from one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/fs/fs_core.h"

struct fuse_session;

namespace meridian::storage::fs {

struct MountOptions {
  std::string mountpoint;
  bool allow_other = false;       // -o allow_other
  bool read_only = false;         // --read-only: mounted ro as well
  double entry_timeout_s = 1.0;   // -o entry_timeout=N
  double attr_timeout_s = 1.0;    // -o attr_timeout=N
  double negative_timeout_s = 0;  // -o negative_timeout=N
  int max_idle_threads = 16;      // threads kept for the loop
  bool handle_signals = true;     // SIGTERM/SIGINT/SIGHUP end Run() cleanly
};

class FuseMount {
 public:
  // `core` is not owned and must outlive the mount.
  static Result<std::unique_ptr<FuseMount>> Mount(FsCore* core, MountOptions options);
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // Serves requests until unmounted or signalled; then flushes and unmounts.
  Status Run();

  // What the callbacks use (public for the C callbacks in the .cc, not for other callers).
  FsCore& core() { return *core_; }
  const MountOptions& options() const { return options_; }
  fuse_session* session() { return session_; }

 private:
  FuseMount(FsCore* core, MountOptions options) : core_(core), options_(std::move(options)) {}

  FsCore* const core_;
  const MountOptions options_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
};

}  // namespace meridian::storage::fs
