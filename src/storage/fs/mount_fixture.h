// Test support for tests through a real mount: starts `meridian storage mount` (the binary
// named by MERIDIAN_BINARY in the test target) as a child process and waits for the mount
// to appear; unmounts on destruction. Requires /dev/fuse and the right to mount.
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "storage/azure_blob_store.h"
#include "storage/azurite_fixture.h"
#include "storage/fs/fs_core.h"
#include "storage/fs/fuse_adapter.h"
#include "storage/object_store.h"

namespace meridian::storage::fs {

// Writes `text` to `path` (created 0644; `flags` adds O_TRUNC or O_APPEND); whether every byte
// was written and the close succeeded.
bool WriteText(const std::string& path, const std::string& text, int flags = O_TRUNC);
// The whole file, "" when it cannot be read.
std::string ReadText(const std::string& path);

// A fresh directory under $TMPDIR (or /tmp) named `label`-XXXXXX; "" on failure.
std::string MakeTempDir(const std::string& label);

// Shared by a test binary's tests: starting Azurite takes seconds. nullptr, with a test
// failure, when it cannot start.
AzuriteServer* SharedAzurite();

// A fresh container on the shared Azurite, named `label`<pid>x<n>, reached directly by
// `store`; sets the AZURE_STORAGE_* variables a mount process reads its key from (as BlobFuse2
// does).
struct AzuriteContainer {
  std::string name;
  std::string url;  // to mount it by
  std::unique_ptr<AzureBlobStore> store;
};
Result<AzuriteContainer> NewAzuriteContainer(const std::string& label);

// What a test mounts: a local directory `dir`/store, or a fresh Azurite container.
enum class Backend { kLocal, kAzurite };
struct TestBackend {
  std::string url;                     // to mount it by
  std::unique_ptr<ObjectStore> store;  // the same objects, reached directly
};
Result<TestBackend> OpenTestBackend(Backend backend, const std::string& dir,
                                    const std::string& label);

// One `meridian storage mount` process. The destructor sends SIGTERM (flush and unmount)
// and waits up to 30 s, then SIGKILLs; a mount left behind is lazily unmounted.
class Mount {
 public:
  // Mounts `url` at `dir`/mnt with the cache in `dir`/cache, passing the StorageClass
  // options verbatim plus `extra_args`. nullptr (and a test failure) when it does not come
  // up within 30 s.
  static std::unique_ptr<Mount> Start(const std::string& url, const std::string& dir,
                                      const std::vector<std::string>& extra_args = {});
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  std::string Path(const std::string& name) const { return mountpoint_ + "/" + name; }
  const std::string& mountpoint() const { return mountpoint_; }
  const std::string& cache_dir() const { return cache_dir_; }
  pid_t pid() const { return pid_; }

  // kill -9 of the mount process, then a lazy unmount of what it left.
  void Kill();

 private:
  Mount() = default;
  pid_t pid_ = -1;
  std::string mountpoint_;
  std::string cache_dir_;
};

// A filesystem served by this test process at `dir`/mnt through a real FUSE mount: an
// FsCore over `store` (which the test may wrap to count or fail requests) with what the
// StorageClass options give the binary (attribute cache and kernel timeouts of 120 s), the
// cache in `dir`/cache. The destructor unmounts (lazily) and waits for the loop to end.
class InProcessMount {
 public:
  // `store` is not owned and must outlive the mount. nullptr (and a test failure) when it
  // cannot mount.
  static std::unique_ptr<InProcessMount> Start(ObjectStore* store, const std::string& dir,
                                               FsOptions options = {});
  ~InProcessMount();
  InProcessMount(const InProcessMount&) = delete;
  InProcessMount& operator=(const InProcessMount&) = delete;

  std::string Path(const std::string& name) const { return mountpoint_ + "/" + name; }

 private:
  InProcessMount() = default;
  std::string mountpoint_;
  std::unique_ptr<FsCore> core_;
  std::unique_ptr<FuseMount> fuse_;
  std::thread loop_;
};

}  // namespace meridian::storage::fs
