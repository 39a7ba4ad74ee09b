// POSIX behaviour through a real FUSE mount: the meridian binary is started with
// `storage mount` over the local backend and over Azurite, and the tests use plain system
// calls on the mount point. Requires /dev/fuse and the right to mount (root, or fusermount3).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "base/files.h"
#include "fmt/format.h"
#include "storage/azure_blob_store.h"
#include "storage/azurite_fixture.h"
#include "storage/fs/mount_fixture.h"

namespace meridian::storage::fs {
namespace {

bool WriteText(const std::string& path, const std::string& text, int flags = O_TRUNC) {
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

// What `ls -l` sees: each entry of `dir` (but "." and "..") read with readdir, then lstat'ed
// by name. An entry whose readdir type and lstat kind disagree fails the test.
std::map<std::string, struct stat> ListLong(const std::string& dir) {
  std::map<std::string, struct stat> entries;
  DIR* stream = ::opendir(dir.c_str());
  EXPECT_NE(stream, nullptr) << dir;
  if (stream == nullptr) return entries;
  while (dirent* entry = ::readdir(stream)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    EXPECT_EQ(::fstatat(::dirfd(stream), entry->d_name, &st, AT_SYMLINK_NOFOLLOW), 0) << name;
    EXPECT_EQ(DTTOIF(entry->d_type), st.st_mode & S_IFMT) << name;
    entries[name] = st;
  }
  ::closedir(stream);
  return entries;
}

enum class Backend { kLocal, kAzurite };

// Shared across tests: starting Azurite takes seconds.
AzuriteServer* SharedAzurite() {
  static Result<std::unique_ptr<AzuriteServer>>* azurite =
      new Result<std::unique_ptr<AzuriteServer>>(AzuriteServer::Start());
  EXPECT_TRUE(azurite->ok()) << azurite->status();
  return azurite->ok() ? azurite->value().get() : nullptr;
}

class FuseMountTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("fuse-mount");
    ASSERT_FALSE(dir_.empty());
    if (GetParam() == Backend::kLocal) {
      url_ = "file://" + dir_ + "/store";
    } else {
      AzuriteServer* azurite = SharedAzurite();
      ASSERT_NE(azurite, nullptr);
      static int counter = 0;
      std::string container = fmt::format("mount{}x{}", ::getpid(), ++counter);
      Result<std::unique_ptr<AzureBlobStore>> store =
          AzureBlobStore::Create(azurite->ConfigFor(container), {});
      ASSERT_TRUE(store.ok()) << store.status();
      ASSERT_TRUE((*store)->CreateContainer().ok());
      url_ = azurite->endpoint() + "/" + container;
      // The mount process reads the key the way BlobFuse2 does.
      ::setenv("AZURE_STORAGE_ACCOUNT", kDevelopmentAccount, 1);
      ::setenv("AZURE_STORAGE_ACCESS_KEY", kDevelopmentAccountKey, 1);
    }
    mount_ = Mount::Start(url_, dir_ + "/a");
    ASSERT_NE(mount_, nullptr);
  }
  void TearDown() override {
    mount_.reset();
    (void)base::RemoveAll(dir_);
  }

  std::string dir_;
  std::string url_;
  std::unique_ptr<Mount> mount_;
};

TEST_P(FuseMountTest, WriteThenReadBack) {
  ASSERT_TRUE(WriteText(mount_->Path("hello.txt"), "hello through FUSE"));
  EXPECT_EQ(ReadText(mount_->Path("hello.txt")), "hello through FUSE");
  struct stat st {};
  ASSERT_EQ(::stat(mount_->Path("hello.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 18);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_P(FuseMountTest, AppendTruncateExtendAndSparseWrites) {
  ASSERT_TRUE(WriteText(mount_->Path("f"), "one\n"));
  ASSERT_TRUE(WriteText(mount_->Path("f"), "two\n", O_APPEND));
  EXPECT_EQ(ReadText(mount_->Path("f")), "one\ntwo\n");
  ASSERT_EQ(::truncate(mount_->Path("f").c_str(), 3), 0);
  EXPECT_EQ(ReadText(mount_->Path("f")), "one");
  ASSERT_EQ(::truncate(mount_->Path("f").c_str(), 6), 0);
  EXPECT_EQ(ReadText(mount_->Path("f")), std::string("one\0\0\0", 6));
  int fd = ::open(mount_->Path("sparse").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "end", 3, 1 << 20), 3);
  ASSERT_EQ(::close(fd), 0);
  std::string sparse = ReadText(mount_->Path("sparse"));
  ASSERT_EQ(sparse.size(), (1u << 20) + 3);
  EXPECT_EQ(sparse.substr(0, 4), std::string(4, '\0'));
  EXPECT_EQ(sparse.substr(1 << 20), "end");
}

TEST_P(FuseMountTest, RenameOverAnExistingFile) {
  ASSERT_TRUE(WriteText(mount_->Path("new"), "new contents"));
  ASSERT_TRUE(WriteText(mount_->Path("old"), "old"));
  ASSERT_EQ(::rename(mount_->Path("new").c_str(), mount_->Path("old").c_str()), 0);
  EXPECT_EQ(ReadText(mount_->Path("old")), "new contents");
  EXPECT_NE(::access(mount_->Path("new").c_str(), F_OK), 0);
}

TEST_P(FuseMountTest, DirectoriesSymlinksAndWhatIsRefused) {
  ASSERT_EQ(::mkdir(mount_->Path("d").c_str(), 0755), 0);
  ASSERT_TRUE(WriteText(mount_->Path("d/x"), "x"));
  EXPECT_EQ(::rmdir(mount_->Path("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  EXPECT_EQ(::rename(mount_->Path("d").c_str(), mount_->Path("e").c_str()), -1);
  EXPECT_EQ(errno, EXDEV);
  EXPECT_EQ(::link(mount_->Path("d/x").c_str(), mount_->Path("hard").c_str()), -1);
  EXPECT_EQ(errno, EPERM);
  ASSERT_EQ(::unlink(mount_->Path("d/x").c_str()), 0);
  ASSERT_EQ(::rmdir(mount_->Path("d").c_str()), 0);
  EXPECT_NE(::access(mount_->Path("d").c_str(), F_OK), 0);

  ASSERT_EQ(::symlink("target.txt", mount_->Path("link").c_str()), 0);
  ASSERT_TRUE(WriteText(mount_->Path("target.txt"), "via link"));
  char buffer[64] = {};
  ASSERT_EQ(::readlink(mount_->Path("link").c_str(), buffer, sizeof(buffer)), 10);
  EXPECT_STREQ(buffer, "target.txt");
  EXPECT_EQ(ReadText(mount_->Path("link")), "via link");
}

TEST_P(FuseMountTest, ManyFilesInOneDirectory) {
  ASSERT_EQ(::mkdir(mount_->Path("many").c_str(), 0755), 0);
  constexpr int kFiles = 300;
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_TRUE(WriteText(mount_->Path(fmt::format("many/file-{:04}", i)), std::to_string(i)));
  }
  DIR* dir = ::opendir(mount_->Path("many").c_str());
  ASSERT_NE(dir, nullptr);
  std::set<std::string> names;
  while (dirent* entry = ::readdir(dir)) names.insert(entry->d_name);
  ::closedir(dir);
  EXPECT_EQ(names.size(), static_cast<size_t>(kFiles) + 2);  // with "." and ".."
  EXPECT_TRUE(names.contains("file-0299"));
  EXPECT_EQ(ReadText(mount_->Path("many/file-0123")), "123");
}

// A fresh mount lists a directory another mount filled (READDIRPLUS: sizes and kinds come
// with the listing), then sees its own changes in the next listing.
TEST_P(FuseMountTest, LongListingShowsSizesAndKindsAndThisMountsChanges) {
  ASSERT_EQ(::mkdir(mount_->Path("big").c_str(), 0755), 0);
  constexpr int kFiles = 200;
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_TRUE(WriteText(mount_->Path(fmt::format("big/file-{:04}", i)), std::string(i, 'x')));
  }
  ASSERT_EQ(::mkdir(mount_->Path("big/sub").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("file-0001", mount_->Path("big/link").c_str()), 0);

  std::unique_ptr<Mount> fresh = Mount::Start(url_, dir_ + "/b");
  ASSERT_NE(fresh, nullptr);
  std::map<std::string, struct stat> listed = ListLong(fresh->Path("big"));
  ASSERT_EQ(listed.size(), static_cast<size_t>(kFiles) + 2);
  for (int i = 0; i < kFiles; ++i) {
    const struct stat& st = listed[fmt::format("file-{:04}", i)];
    EXPECT_TRUE(S_ISREG(st.st_mode)) << i;
    EXPECT_EQ(st.st_size, i);
  }
  EXPECT_TRUE(S_ISDIR(listed["sub"].st_mode));
  EXPECT_EQ(listed["sub"].st_mode & 07777, 0700u);
  EXPECT_TRUE(S_ISLNK(listed["link"].st_mode));
  EXPECT_EQ(listed["link"].st_size, 9);

  // Changes made through this mount show in its next listing.
  ASSERT_TRUE(WriteText(fresh->Path("big/new"), "new contents"));
  ASSERT_EQ(::unlink(fresh->Path("big/file-0007").c_str()), 0);
  // A file open with bytes not yet uploaded is listed at its open size.
  int fd = ::open(fresh->Path("big/file-0003").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "12345", 5), 5);
  listed = ListLong(fresh->Path("big"));
  EXPECT_EQ(listed.size(), static_cast<size_t>(kFiles) + 2);
  EXPECT_EQ(listed["new"].st_size, 12);
  EXPECT_FALSE(listed.contains("file-0007"));
  EXPECT_EQ(listed["file-0003"].st_size, 8);
  ASSERT_EQ(::close(fd), 0);
  struct stat st {};
  EXPECT_EQ(::lstat(fresh->Path("big/file-0007").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(ReadText(fresh->Path("big/new")), "new contents");
  EXPECT_EQ(ReadText(fresh->Path("big/file-0003")), "xxx12345");
}

TEST_P(FuseMountTest, TwoMountsSeeEachOthersClosedFilesAfterReopen) {
  std::unique_ptr<Mount> other = Mount::Start(url_, dir_ + "/b");
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(WriteText(mount_->Path("shared"), "version 1"));
  EXPECT_EQ(ReadText(other->Path("shared")), "version 1");
  // Rewritten (and longer) on the first mount; attr_timeout is 120 s on both.
  ASSERT_TRUE(WriteText(mount_->Path("shared"), "version 2 is longer"));
  EXPECT_EQ(ReadText(other->Path("shared")), "version 2 is longer");
}

INSTANTIATE_TEST_SUITE_P(Backends, FuseMountTest,
                         ::testing::Values(Backend::kLocal, Backend::kAzurite),
                         [](const auto& info) {
                           return info.param == Backend::kLocal ? "Local" : "Azurite";
                         });

}  // namespace
}  // namespace meridian::storage::fs
