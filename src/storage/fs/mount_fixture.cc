#include "storage/fs/mount_fixture.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/files.h"
#include "base/testing/eventually.h"
#include "fmt/format.h"
#include "storage/local_store.h"

namespace meridian::storage::fs {

bool WriteText(const std::string& path, const std::string& text, int flags) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | flags, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  return ::close(fd) == 0 && ok;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

AzuriteServer* SharedAzurite() {
  static auto* azurite = new Result<std::unique_ptr<AzuriteServer>>(AzuriteServer::Start());
  EXPECT_TRUE(azurite->ok()) << azurite->status();
  return azurite->ok() ? azurite->value().get() : nullptr;
}

Result<AzuriteContainer> NewAzuriteContainer(const std::string& label) {
  AzuriteServer* azurite = SharedAzurite();
  if (azurite == nullptr) return absl::UnavailableError("Azurite did not start");
  static int counter = 0;
  AzuriteContainer container;
  container.name = fmt::format("{}{}x{}", label, ::getpid(), ++counter);
  ASSIGN_OR_RETURN(container.store, AzureBlobStore::Create(azurite->ConfigFor(container.name), {}));
  RETURN_IF_ERROR(container.store->CreateContainer());
  container.url = azurite->endpoint() + "/" + container.name;
  ::setenv("AZURE_STORAGE_ACCOUNT", kDevelopmentAccount, 1);
  ::setenv("AZURE_STORAGE_ACCESS_KEY", kDevelopmentAccountKey, 1);
  return container;
}

Result<TestBackend> OpenTestBackend(Backend backend, const std::string& dir,
                                    const std::string& label) {
  TestBackend out;
  if (backend == Backend::kLocal) {
    out.url = "file://" + dir + "/store";
    ASSIGN_OR_RETURN(out.store, LocalStore::Open(dir + "/store"));
    return out;
  }
  ASSIGN_OR_RETURN(AzuriteContainer container, NewAzuriteContainer(label));
  out.url = container.url;
  out.store = std::move(container.store);
  return out;
}

std::string MakeTempDir(const std::string& label) {
  const char* tmp = std::getenv("TMPDIR");
  std::string path = fmt::format("{}/{}-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp", label);
  return ::mkdtemp(path.data()) != nullptr ? path : "";
}

std::unique_ptr<Mount> Mount::Start(const std::string& url, const std::string& dir,
                                    const std::vector<std::string>& extra_args) {
  auto mount = std::unique_ptr<Mount>(new Mount);
  mount->mountpoint_ = dir + "/mnt";
  mount->cache_dir_ = dir + "/cache";
  EXPECT_TRUE(base::MakeDirs(mount->mountpoint_).ok());
  // The StorageClass options verbatim, plus a private cache directory.
  std::vector<std::string> args = {MERIDIAN_BINARY,
                                   "storage",
                                   "mount",
                                   url,
                                   mount->mountpoint_,
                                   "-o",
                                   "allow_other",
                                   "--file-cache-timeout-in-seconds=120",
                                   "--use-attr-cache=true",
                                   "--cancel-list-on-mount-seconds=10",
                                   "-o",
                                   "attr_timeout=120",
                                   "-o",
                                   "entry_timeout=120",
                                   "-o",
                                   "negative_timeout=120",
                                   "--log-level=LOG_WARNING",
                                   "--cache-dir",
                                   mount->cache_dir_};
  bool sized = false;
  for (const std::string& arg : extra_args) sized = sized || arg.starts_with("--cache-size-mb");
  if (!sized) args.push_back("--cache-size-mb=1000");
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  mount->pid_ = ::fork();
  if (mount->pid_ == 0) {
    ::execv(MERIDIAN_BINARY, argv.data());
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!base::IsMounted(mount->mountpoint_)) {
    int status = 0;
    if (::waitpid(mount->pid_, &status, WNOHANG) == mount->pid_) {
      mount->pid_ = -1;
      ADD_FAILURE() << "meridian storage mount exited with status " << status;
      return nullptr;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "the mount did not appear within 30 s";
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return mount;
}

void Mount::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  std::string command = fmt::format("fusermount3 -u -z '{}' 2>/dev/null", mountpoint_);
  (void)std::system(command.c_str());
}

Mount::~Mount() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);  // the clean path: flush and unmount
  int status = 0;
  if (!Eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; },
                  std::chrono::seconds(30))) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  if (base::IsMounted(mountpoint_)) {
    ADD_FAILURE() << "SIGTERM did not unmount " << mountpoint_;
    std::string command = fmt::format("fusermount3 -u -z '{}' 2>/dev/null", mountpoint_);
    (void)std::system(command.c_str());
  }
}

std::unique_ptr<InProcessMount> InProcessMount::Start(ObjectStore* store, const std::string& dir,
                                                      FsOptions options) {
  auto mount = std::unique_ptr<InProcessMount>(new InProcessMount);
  mount->mountpoint_ = dir + "/mnt";
  EXPECT_TRUE(base::MakeDirs(mount->mountpoint_).ok());
  options.cache_dir = dir + "/cache";
  options.use_attr_cache = true;
  options.attr_cache_timeout_s = 120;
  options.free_disk_floor_bytes = 0;
  options.uid = ::getuid();
  options.gid = ::getgid();
  Result<std::unique_ptr<FsCore>> core = FsCore::Create(store, options);
  if (!core.ok()) {
    ADD_FAILURE() << core.status();
    return nullptr;
  }
  mount->core_ = std::move(*core);
  MountOptions mount_options;
  mount_options.mountpoint = mount->mountpoint_;
  mount_options.attr_timeout_s = 120;
  mount_options.entry_timeout_s = 120;
  mount_options.negative_timeout_s = 120;
  mount_options.handle_signals = false;
  Result<std::unique_ptr<FuseMount>> fuse = FuseMount::Mount(mount->core_.get(), mount_options);
  if (!fuse.ok()) {
    ADD_FAILURE() << fuse.status();
    return nullptr;
  }
  mount->fuse_ = std::move(*fuse);
  mount->loop_ = std::thread([fuse = mount->fuse_.get()] { (void)fuse->Run(); });
  return mount;
}

InProcessMount::~InProcessMount() {
  if (!loop_.joinable()) return;
  std::string command = fmt::format("fusermount3 -u -z '{}' 2>/dev/null", mountpoint_);
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  loop_.join();
}

}  // namespace meridian::storage::fs
