// POSIX conformance of a mount's own changes, through a real FUSE mount (the meridian binary
// with `storage mount`, the seed's options: --use-attr-cache=true, attr_timeout and
// entry_timeout 120 s) over the local backend and over Azurite. Whatever this mount changes
// must show at once, whatever the kernel and the mount cache; files unlinked while open stay
// usable; directory times follow their entries; errno cases match Linux filesystems.
// Requires /dev/fuse and the right to mount (root, or fusermount3).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "base/files.h"
#include "fmt/format.h"
#include "storage/azure_blob_store.h"
#include "storage/azurite_fixture.h"
#include "storage/fs/mount_fixture.h"
#include "storage/local_store.h"

namespace meridian::storage::fs {
namespace {

struct stat Stat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

int64_t Nanos(const timespec& time) { return int64_t{time.tv_sec} * 1'000'000'000 + time.tv_nsec; }

// The errno of a call that must fail (0 when it succeeded).
int ErrnoOf(int result) { return result == 0 ? 0 : errno; }

// Lets the clock move past the store's time granularity (Azure's Last-Modified is in whole
// seconds), for tests that compare a time before a change with the time after it.
void LetTimePass() { std::this_thread::sleep_for(std::chrono::milliseconds(1'100)); }


class FusePosixTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("fuse-posix");
    ASSERT_FALSE(dir_.empty());
    Result<TestBackend> backend = OpenTestBackend(GetParam(), dir_, "posix");
    ASSERT_TRUE(backend.ok()) << backend.status();
    url_ = backend->url;
    store_ = std::move(backend->store);
    mount_ = Mount::Start(url_, dir_ + "/a");
    ASSERT_NE(mount_, nullptr);
  }
  void TearDown() override {
    mount_.reset();
    store_.reset();
    (void)base::RemoveAll(dir_);
  }

  std::string Path(const std::string& name) const { return mount_->Path(name); }

  // Every object name in the store (what other nodes see).
  std::set<std::string> StoredNames() {
    std::set<std::string> names;
    ListOptions list;
    do {
      Result<ListPage> page = store_->List(list);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const ObjectInfo& object : page->objects) names.insert(object.name);
      list.marker = page->next_marker;
    } while (!list.marker.empty());
    return names;
  }

  std::string dir_;
  std::string url_;
  std::unique_ptr<ObjectStore> store_;  // the mount's store, seen directly
  std::unique_ptr<Mount> mount_;
};

// ---- Part 1: this mount's own changes show at once ----------------------------------------

TEST_P(FusePosixTest, TruncatingOpenShowsTheNewSizeAtOnce) {
  ASSERT_TRUE(WriteText(Path("f"), "hello\n"));
  EXPECT_EQ(Stat(Path("f")).st_size, 6);
  ASSERT_TRUE(WriteText(Path("f"), ""));  // `: > f`
  EXPECT_EQ(Stat(Path("f")).st_size, 0);
  EXPECT_EQ(ReadText(Path("f")), "");
  ASSERT_TRUE(WriteText(Path("f"), "again"));
  EXPECT_EQ(Stat(Path("f")).st_size, 5);
  EXPECT_EQ(ReadText(Path("f")), "again");
}

TEST_P(FusePosixTest, TruncateToGrowAndShrinkShowsAtOnceAndReadsWhole) {
  ASSERT_TRUE(WriteText(Path("f"), "hello\n"));
  ASSERT_EQ(Stat(Path("f")).st_size, 6);
  ASSERT_EQ(::truncate(Path("f").c_str(), 100), 0);
  EXPECT_EQ(Stat(Path("f")).st_size, 100);
  // The kernel caps reads at the size it was told: all 100 bytes must come back.
  EXPECT_EQ(ReadText(Path("f")), "hello\n" + std::string(94, '\0'));
  ASSERT_EQ(::truncate(Path("f").c_str(), 3), 0);
  EXPECT_EQ(Stat(Path("f")).st_size, 3);
  EXPECT_EQ(ReadText(Path("f")), "hel");
}

TEST_P(FusePosixTest, FtruncateOnAnOpenFileShowsAtOnce) {
  int fd = ::open(Path("f").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "0123456789", 10), 10);
  ASSERT_EQ(::ftruncate(fd, 4), 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 4);
  EXPECT_EQ(Stat(Path("f")).st_size, 4);
  ASSERT_EQ(::ftruncate(fd, 50), 0);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 50);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(Stat(Path("f")).st_size, 50);
  EXPECT_EQ(ReadText(Path("f")), "0123" + std::string(46, '\0'));
}

TEST_P(FusePosixTest, ChmodShowsAtOnceAndMovesCtimeNotMtime) {
  ASSERT_TRUE(WriteText(Path("f"), "data"));
  const struct stat before = Stat(Path("f"));
  EXPECT_EQ(before.st_mode & 07777, 0644u);
  LetTimePass();
  ASSERT_EQ(::chmod(Path("f").c_str(), 0600), 0);
  const struct stat after = Stat(Path("f"));
  EXPECT_EQ(after.st_mode & 07777, 0600u);
  EXPECT_EQ(Nanos(after.st_mtim), Nanos(before.st_mtim));
  EXPECT_GT(Nanos(after.st_ctim), Nanos(before.st_ctim));
  EXPECT_EQ(after.st_size, 4);
  EXPECT_EQ(ReadText(Path("f")), "data");
  // A directory too.
  ASSERT_EQ(::mkdir(Path("d").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(Path("d").c_str(), 0700), 0);
  EXPECT_EQ(Stat(Path("d")).st_mode & 07777, 0700u);
}

TEST_P(FusePosixTest, ChmodOfAnOpenFileWithUnsavedBytesKeepsBoth) {
  int fd = ::open(Path("f").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "unsaved", 7), 7);
  ASSERT_EQ(::fchmod(fd, 0600), 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_size, 7);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(Stat(Path("f")).st_mode & 07777, 0600u);
  EXPECT_EQ(ReadText(Path("f")), "unsaved");
  Result<ObjectInfo> stored = store_->Head("f");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->size, 7);
  EXPECT_EQ(stored->metadata["meridian_mode"], "600");
}

TEST_P(FusePosixTest, UtimensatAndTouchSetTimesAtOnce) {
  ASSERT_TRUE(WriteText(Path("f"), "data"));
  const timespec times[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, Path("f").c_str(), times, 0), 0);
  EXPECT_EQ(Stat(Path("f")).st_mtim.tv_sec, 1'000'000'000);
  ASSERT_EQ(::utimensat(AT_FDCWD, Path("f").c_str(), nullptr, 0), 0);  // touch
  EXPECT_GT(Stat(Path("f")).st_mtim.tv_sec, 1'000'000'000);
  EXPECT_EQ(ReadText(Path("f")), "data");
  Result<ObjectInfo> stored = store_->Head("f");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->size, 4);
}

TEST_P(FusePosixTest, WritesMoveMtimeAndCtimeWhileOpenAndAfterClose) {
  ASSERT_TRUE(WriteText(Path("f"), "one"));
  const struct stat before = Stat(Path("f"));
  LetTimePass();
  int fd = ::open(Path("f").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "two", 3), 3);
  struct stat open_st {};
  ASSERT_EQ(::fstat(fd, &open_st), 0);
  EXPECT_EQ(open_st.st_size, 6);
  EXPECT_GT(Nanos(open_st.st_mtim), Nanos(before.st_mtim));
  EXPECT_GT(Nanos(open_st.st_ctim), Nanos(before.st_ctim));
  ASSERT_EQ(::close(fd), 0);
  const struct stat after = Stat(Path("f"));
  EXPECT_EQ(after.st_size, 6);
  EXPECT_GT(Nanos(after.st_mtim), Nanos(before.st_mtim));
  EXPECT_EQ(ReadText(Path("f")), "onetwo");
}

TEST_P(FusePosixTest, RenameOfAnOpenFileKeepsItsDescriptor) {
  int fd = ::open(Path("f").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "before", 6), 6);
  ASSERT_EQ(::rename(Path("f").c_str(), Path("g").c_str()), 0);
  ASSERT_EQ(::write(fd, "+after", 6), 6);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 12);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(ReadText(Path("g")), "before+after");
  EXPECT_EQ(Stat(Path("g")).st_size, 12);
  EXPECT_EQ(ErrnoOf(::access(Path("f").c_str(), F_OK)), ENOENT);
  EXPECT_EQ(StoredNames(), (std::set<std::string>{"g"}));
}

// ---- Part 2: files unlinked while open ----------------------------------------------------

TEST_P(FusePosixTest, PythonTemporaryFileWorksAndLeavesNothing) {
  std::string command = fmt::format(
      "cd '{}' && python3 -c \"import tempfile; f=tempfile.TemporaryFile(dir='.'); "
      "f.write(b'x'); f.seek(0); print(f.read())\" > '{}/out' 2>&1",
      mount_->mountpoint(), dir_);
  EXPECT_EQ(std::system(command.c_str()), 0) << ReadText(dir_ + "/out");
  EXPECT_EQ(ReadText(dir_ + "/out"), "b'x'\n");
  EXPECT_TRUE(StoredNames().empty());
}

TEST_P(FusePosixTest, AFileUnlinkedWhileOpenStaysUsableUntilClosed) {
  int fd = ::open(Path("tmp").c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::unlink(Path("tmp").c_str()), 0);
  EXPECT_EQ(ErrnoOf(::access(Path("tmp").c_str(), F_OK)), ENOENT);
  ASSERT_EQ(::write(fd, "kept while open", 15), 15);
  EXPECT_EQ(::fsync(fd), 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0) << std::strerror(errno);
  EXPECT_EQ(st.st_size, 15);
  EXPECT_EQ(st.st_nlink, 0u);
  char buffer[32] = {};
  ASSERT_EQ(::pread(fd, buffer, sizeof buffer, 0), 15) << std::strerror(errno);
  EXPECT_EQ(std::string(buffer, 15), "kept while open");
  ASSERT_EQ(::ftruncate(fd, 4), 0);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 4);
  // The name is free: a new file there is another file.
  ASSERT_TRUE(WriteText(Path("tmp"), "new"));
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 4);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(ReadText(Path("tmp")), "new");
  EXPECT_EQ(StoredNames(), (std::set<std::string>{"tmp"}));
}

TEST_P(FusePosixTest, UnlinkAndReplacingRenameLeaveReadersTheOldBytes) {
  const std::string old_bytes(20 << 20, 'o');  // more than one download chunk
  ASSERT_TRUE(WriteText(Path("a"), old_bytes));
  ASSERT_TRUE(WriteText(Path("b"), "B"));
  ASSERT_TRUE(WriteText(Path("c"), old_bytes));
  // Dropped from this mount's cache by a remount, so the reader below downloads.
  mount_.reset();
  mount_ = Mount::Start(url_, dir_ + "/a2");
  ASSERT_NE(mount_, nullptr);
  int replaced = ::open(Path("a").c_str(), O_RDONLY);
  int removed = ::open(Path("c").c_str(), O_RDONLY);
  ASSERT_GE(replaced, 0);
  ASSERT_GE(removed, 0);
  ASSERT_EQ(::rename(Path("b").c_str(), Path("a").c_str()), 0);
  ASSERT_EQ(::unlink(Path("c").c_str()), 0);
  for (int fd : {replaced, removed}) {
    std::string read(old_bytes.size() + 1, '\0');
    ASSERT_EQ(::pread(fd, read.data(), read.size(), 0), static_cast<ssize_t>(old_bytes.size()))
        << std::strerror(errno);
    read.resize(old_bytes.size());
    EXPECT_TRUE(read == old_bytes);
    struct stat st {};
    ASSERT_EQ(::fstat(fd, &st), 0) << std::strerror(errno);
    EXPECT_EQ(st.st_size, static_cast<off_t>(old_bytes.size()));
    ASSERT_EQ(::close(fd), 0);
  }
  EXPECT_EQ(ReadText(Path("a")), "B");
  EXPECT_EQ(StoredNames(), (std::set<std::string>{"a"}));
}

TEST_P(FusePosixTest, AStreamingFileUnlinkedWhileOpenStaysUsableAndIsNeverUploaded) {
  mount_.reset();
  mount_ = Mount::Start(url_, dir_ + "/streaming", {"--block-cache"});
  ASSERT_NE(mount_, nullptr);
  int fd = ::open(Path("tmp").c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::unlink(Path("tmp").c_str()), 0);
  const std::string data(1 << 20, 's');
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  EXPECT_EQ(::fsync(fd), 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0) << std::strerror(errno);
  EXPECT_EQ(st.st_size, static_cast<off_t>(data.size()));
  std::string read(data.size(), '\0');
  ASSERT_EQ(::pread(fd, read.data(), read.size(), 0), static_cast<ssize_t>(data.size()))
      << std::strerror(errno);
  EXPECT_TRUE(read == data);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_TRUE(StoredNames().empty());
}

// ---- Part 4: directory times follow their entries -----------------------------------------

TEST_P(FusePosixTest, ParentTimesMoveOnCreateRemoveAndRename) {
  ASSERT_EQ(::mkdir(Path("d").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(Path("e").c_str(), 0755), 0);
  struct stat last = Stat(Path("d"));
  auto moved = [&](const std::string& dir) {
    const struct stat now = Stat(Path(dir));
    bool later =
        Nanos(now.st_mtim) > Nanos(last.st_mtim) && Nanos(now.st_ctim) > Nanos(last.st_ctim);
    last = now;
    return later;
  };
  LetTimePass();
  ASSERT_TRUE(WriteText(Path("d/x"), "x"));
  EXPECT_TRUE(moved("d")) << "create";
  LetTimePass();
  ASSERT_EQ(::mkdir(Path("d/sub").c_str(), 0755), 0);
  EXPECT_TRUE(moved("d")) << "mkdir";
  LetTimePass();
  ASSERT_EQ(::rmdir(Path("d/sub").c_str()), 0);
  EXPECT_TRUE(moved("d")) << "rmdir";
  last = Stat(Path("e"));
  const struct stat d_before = Stat(Path("d"));
  LetTimePass();
  ASSERT_EQ(::rename(Path("d/x").c_str(), Path("e/y").c_str()), 0);
  EXPECT_TRUE(moved("e")) << "rename into";
  EXPECT_GT(Nanos(Stat(Path("d")).st_mtim), Nanos(d_before.st_mtim)) << "rename out of";
  LetTimePass();
  ASSERT_EQ(::unlink(Path("e/y").c_str()), 0);
  EXPECT_TRUE(moved("e")) << "unlink";
  last = Stat(Path("d"));
  LetTimePass();
  ASSERT_EQ(::symlink("d", Path("d/link").c_str()), 0);
  EXPECT_TRUE(moved("d")) << "symlink";
}

// ---- errno cases that share the code paths --------------------------------------------------

TEST_P(FusePosixTest, RemoveAndRenameErrorsAreThoseOfLinux) {
  ASSERT_EQ(::mkdir(Path("d").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(Path("empty").c_str(), 0755), 0);
  ASSERT_TRUE(WriteText(Path("d/f"), "f"));
  ASSERT_TRUE(WriteText(Path("file"), "file"));
  EXPECT_EQ(ErrnoOf(::rmdir(Path("d").c_str())), ENOTEMPTY);
  EXPECT_EQ(ErrnoOf(::rmdir(Path("file").c_str())), ENOTDIR);
  EXPECT_EQ(ErrnoOf(::rmdir(Path("missing").c_str())), ENOENT);
  EXPECT_EQ(ErrnoOf(::unlink(Path("d").c_str())), EISDIR);
  EXPECT_EQ(ErrnoOf(::unlink(Path("missing").c_str())), ENOENT);
  EXPECT_EQ(ErrnoOf(::rename(Path("missing").c_str(), Path("x").c_str())), ENOENT);
  EXPECT_EQ(ErrnoOf(::rename(Path("file").c_str(), Path("empty").c_str())), EISDIR);
  EXPECT_EQ(ErrnoOf(::rename(Path("empty").c_str(), Path("file").c_str())), ENOTDIR);
  EXPECT_EQ(ErrnoOf(::rename(Path("empty").c_str(), Path("d").c_str())), ENOTEMPTY);
  EXPECT_EQ(ErrnoOf(::rename(Path("file").c_str(), Path("missing/x").c_str())), ENOENT);
  // Nothing changed by the failures.
  EXPECT_EQ(ReadText(Path("file")), "file");
  EXPECT_EQ(ReadText(Path("d/f")), "f");
  EXPECT_TRUE(S_ISDIR(Stat(Path("empty")).st_mode));
}

INSTANTIATE_TEST_SUITE_P(Backends, FusePosixTest,
                         ::testing::Values(Backend::kLocal, Backend::kAzurite),
                         [](const auto& info) {
                           return info.param == Backend::kLocal ? "Local" : "Azurite";
                         });

}  // namespace
}  // namespace meridian::storage::fs
