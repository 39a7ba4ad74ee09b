// POSIX behaviour through a real FUSE mount: the meridian binary is started with
// `storage mount` over the local backend and over Azurite, and the tests use plain system
// calls on the mount point. Requires /dev/fuse and the right to mount (root, or fusermount3).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
#include "storage/fs/directory_rename.h"
#include "storage/fs/mount_fixture.h"
#include "storage/fs/rename_test_stores.h"
#include "storage/local_store.h"

namespace meridian::storage::fs {
namespace {

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


class FuseMountTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("fuse-mount");
    ASSERT_FALSE(dir_.empty());
    Result<TestBackend> backend = OpenTestBackend(GetParam(), dir_, "mount");
    ASSERT_TRUE(backend.ok()) << backend.status();
    url_ = backend->url;
    store_ = std::move(backend->store);
    mount_ = Mount::Start(url_, dir_ + "/a");
    ASSERT_NE(mount_, nullptr);
  }
  void TearDown() override {
    mount_.reset();
    (void)base::RemoveAll(dir_);
  }

  std::string dir_;
  std::string url_;
  std::unique_ptr<ObjectStore> store_;  // the mounted container, reached directly
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

// ---- Renaming directories ------------------------------------------------------------------

// The exit status of `command` run by /bin/sh (-1 when it did not run or was killed).
int Shell(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// A tree written straight to the store: markers for `dir` and `dir/sub`, none for
// `dir/bare` (as other tools upload).
void PutTree(ObjectStore& store, const std::string& dir) {
  const Metadata folder{{"hdi_isfolder", "true"}};
  ASSERT_TRUE(store.Put(dir, "", folder, {}).ok());
  ASSERT_TRUE(store.Put(dir + "/a", "alpha", {}, {}).ok());
  ASSERT_TRUE(store.Put(dir + "/sub", "", folder, {}).ok());
  ASSERT_TRUE(store.Put(dir + "/sub/b", "beta", {}, {}).ok());
  ASSERT_TRUE(store.Put(dir + "/bare/c", "gamma", {}, {}).ok());
}
const std::map<std::string, std::string> kTreeFiles = {
    {"a", "alpha"}, {"sub/b", "beta"}, {"bare/c", "gamma"}};

TEST_P(FuseMountTest, MvOfNestedDirectoryCopiesInTheStoreWithoutReadingData) {
  PutTree(*store_, "nested");
  RequestLogStore log(store_.get());
  std::unique_ptr<InProcessMount> counted = InProcessMount::Start(&log, dir_ + "/counted");
  ASSERT_NE(counted, nullptr);
  ASSERT_EQ(Shell(fmt::format("ls -lR '{}' >/dev/null", counted->Path("nested"))), 0);
  log.Reset();
  ASSERT_EQ(Shell(fmt::format("mv '{}' '{}'", counted->Path("nested"), counted->Path("moved"))), 0);
  EXPECT_EQ(log.copies.load(), 5);  // two markers and three files
  EXPECT_EQ(log.data_reads.load(), 0);
  EXPECT_EQ(log.staged_blocks.load(), 0);
  for (const std::string& name : log.put_names()) EXPECT_TRUE(IsRenameJournalPath(name)) << name;
  for (const auto& [name, data] : kTreeFiles) {
    EXPECT_EQ(ReadText(counted->Path("moved/" + name)), data) << name;
    EXPECT_EQ(ReadText(mount_->Path("moved/" + name)), data) << name;  // another mount
    EXPECT_FALSE(Exists(mount_->Path("nested/" + name))) << name;
  }
  EXPECT_FALSE(Exists(counted->Path("nested")));
  EXPECT_TRUE(store_->Head("moved").ok());  // the markers came along
  EXPECT_TRUE(store_->Head("moved/sub").ok());
  EXPECT_FALSE(store_->Head("moved/bare").ok());  // and none was invented
}

TEST_P(FuseMountTest, MvOfPrefixOnlyDirectoryExitsZeroAndItsParentStays) {
  for (const char* name : {"data/train/x0", "data/train/x1", "data/train/deep/x2"}) {
    ASSERT_TRUE(store_->Put(name, name, {}, {}).ok());
  }
  ASSERT_EQ(Shell(fmt::format("cd '{}' && mv data/train data/train2", mount_->mountpoint())), 0);
  EXPECT_EQ(ReadText(mount_->Path("data/train2/deep/x2")), "data/train/deep/x2");
  EXPECT_FALSE(Exists(mount_->Path("data/train")));
  // Moved out of `data`, which is only a prefix: it stays, with a marker, and rmdir works.
  ASSERT_EQ(Shell(fmt::format("cd '{}' && mv data/train2 train3", mount_->mountpoint())), 0);
  EXPECT_EQ(ReadText(mount_->Path("train3/x1")), "data/train/x1");
  struct stat st {};
  ASSERT_EQ(::stat(mount_->Path("data").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(::rmdir(mount_->Path("data").c_str()), 0);
  EXPECT_FALSE(Exists(mount_->Path("data")));
}

TEST_P(FuseMountTest, LastChildRemovedFromPrefixOnlyDirectoryLeavesItUntilRmdir) {
  ASSERT_TRUE(store_->Put("only/file", "x", {}, {}).ok());
  ASSERT_TRUE(store_->Put("only/inner/file", "y", {}, {}).ok());
  ASSERT_EQ(::unlink(mount_->Path("only/inner/file").c_str()), 0);
  ASSERT_EQ(::unlink(mount_->Path("only/file").c_str()), 0);
  struct stat st {};
  ASSERT_EQ(::stat(mount_->Path("only/inner").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(::rmdir(mount_->Path("only/inner").c_str()), 0);
  ASSERT_EQ(::stat(mount_->Path("only").c_str(), &st), 0);
  EXPECT_EQ(::rmdir(mount_->Path("only").c_str()), 0);
  EXPECT_FALSE(Exists(mount_->Path("only")));
  EXPECT_FALSE(store_->Head("only").ok());
}

TEST_P(FuseMountTest, DirectoryOverTheRenameLimitIsExdevAndMvStillMovesIt) {
  PutTree(*store_, "big");  // five objects
  std::unique_ptr<Mount> limited =
      Mount::Start(url_, dir_ + "/limited", {"--max-dir-rename-objects=4"});
  ASSERT_NE(limited, nullptr);
  EXPECT_EQ(::rename(limited->Path("big").c_str(), limited->Path("big2").c_str()), -1);
  EXPECT_EQ(errno, EXDEV);
  EXPECT_TRUE(Exists(limited->Path("big/sub/b")));
  ASSERT_EQ(Shell(fmt::format("mv '{}' '{}'", limited->Path("big"), limited->Path("big2"))), 0);
  for (const auto& [name, data] : kTreeFiles) {
    EXPECT_EQ(ReadText(limited->Path("big2/" + name)), data) << name;
  }
}

// A file open for writing under the directory keeps its handle through the move and is
// saved under its new name; the mount's listings of both names show the move at once.
TEST_P(FuseMountTest, OpenFileAndListingsFollowARenamedDirectory) {
  PutTree(*store_, "work");
  ASSERT_EQ(ListLong(mount_->Path("work")).size(), 3u);  // listed: its names are known
  int fd = ::open(mount_->Path("work/a").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "-1", 2), 2);
  ASSERT_EQ(::rename(mount_->Path("work").c_str(), mount_->Path("done").c_str()), 0);
  ASSERT_EQ(::write(fd, "-2", 2), 2);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_FALSE(Exists(mount_->Path("work")));
  std::map<std::string, struct stat> listed = ListLong(mount_->Path("done"));
  EXPECT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed["a"].st_size, 9);
  EXPECT_EQ(ReadText(mount_->Path("done/sub/b")), "beta");
  std::unique_ptr<Mount> other = Mount::Start(url_, dir_ + "/other");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(ReadText(other->Path("done/a")), "alpha-1-2");
  EXPECT_FALSE(Exists(other->Path("work/a")));
}

// The mount serving the rename stops (every store call fails) after each number of copies
// and deletes in turn. Another mount, started before, then finds every file under the old
// name or the new one; a mount started afterwards finishes the rename.
TEST_P(FuseMountTest, InterruptedDirectoryRenameNeverHidesAFileAndTheNextMountFinishesIt) {
  constexpr int kChanges = 11;  // 5 copies, 5 deletes, the journal's delete
  for (int stop_after = 0; stop_after <= kChanges; ++stop_after) {
    SCOPED_TRACE(fmt::format("stopped after {} copies and deletes", stop_after));
    const std::string from = fmt::format("run{}/dir", stop_after);
    const std::string to = fmt::format("run{}/moved", stop_after);
    PutTree(*store_, from);
    {
      StopAfterChangesStore stopping(store_.get(), stop_after);
      std::unique_ptr<InProcessMount> dying =
          InProcessMount::Start(&stopping, fmt::format("{}/dying{}", dir_, stop_after));
      ASSERT_NE(dying, nullptr);
      int renamed = ::rename(dying->Path(from).c_str(), dying->Path(to).c_str());
      if (stop_after < kChanges) {
        EXPECT_EQ(renamed, -1);
        EXPECT_EQ(errno, EIO);
      } else {
        EXPECT_EQ(renamed, 0);
      }
    }
    for (const auto& [name, data] : kTreeFiles) {
      EXPECT_TRUE(Exists(mount_->Path(from + "/" + name)) || Exists(mount_->Path(to + "/" + name)))
          << name;
    }
    std::unique_ptr<Mount> restarted =
        Mount::Start(url_, fmt::format("{}/restarted{}", dir_, stop_after));
    ASSERT_NE(restarted, nullptr);
    for (const auto& [name, data] : kTreeFiles) {
      EXPECT_EQ(ReadText(restarted->Path(to + "/" + name)), data) << name;
      EXPECT_FALSE(Exists(restarted->Path(from + "/" + name))) << name;
    }
    EXPECT_FALSE(Exists(restarted->Path(from)));
    ListOptions journals;
    journals.prefix = std::string(kRenameJournalDir) + "/";
    Result<ListPage> left = store_->List(journals);
    ASSERT_TRUE(left.ok());
    EXPECT_TRUE(left->objects.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, FuseMountTest,
                         ::testing::Values(Backend::kLocal, Backend::kAzurite),
                         [](const auto& info) {
                           return info.param == Backend::kLocal ? "Local" : "Azurite";
                         });

}  // namespace
}  // namespace meridian::storage::fs
