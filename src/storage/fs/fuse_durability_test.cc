// Durability and resource bounds of the filesystem through a real mount (the meridian
// binary, as fuse_mount_test.cc starts it): kill -9 in the middle of a large write leaves
// the old or the new version byte for byte; blocks are in the store before close while
// readers still see the old version; the cache directory stays under its cap under a
// larger workload; the mount's memory stays bounded while 1 GiB streams through it; and
// fio's data-integrity check passes in both cache modes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/files.h"
#include "base/testing/eventually.h"
#include "fmt/format.h"
#include "storage/azure_blob_store.h"
#include "storage/azurite_fixture.h"
#include "storage/fs/mount_fixture.h"
#include "storage/local_store.h"

namespace meridian::storage::fs {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// Bytes that differ per `seed` and per offset, cheap to make and to check.
std::string Pattern(int64_t size, uint64_t seed) {
  std::string bytes(size, '\0');
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i + 8 <= size; i += 8) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    std::memcpy(bytes.data() + i, &state, 8);
  }
  return bytes;
}

// Writes `data` to `path` in 1 MiB writes; stops at the first error. Returns bytes written.
int64_t WriteInChunks(int fd, const std::string& data, std::atomic<int64_t>* progress) {
  int64_t done = 0;
  while (done < static_cast<int64_t>(data.size())) {
    int64_t want = std::min<int64_t>(kMiB, data.size() - done);
    ssize_t n = ::write(fd, data.data() + done, want);
    if (n <= 0) break;
    done += n;
    if (progress != nullptr) *progress = done;
  }
  return done;
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Bytes the files below `dir` occupy on disk, as du counts them.
int64_t DiskUsage(const std::string& dir) {
  int64_t total = 0;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<int64_t>(st.st_blocks) * 512;
    }
  }
  return total;
}

int64_t FilesBelow(const std::string& dir) {
  int64_t count = 0;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error)) ++count;
  }
  return count;
}

// A field of /proc/<pid>/status in KiB (VmHWM, VmRSS), -1 when absent.
int64_t ProcStatusKiB(pid_t pid, const std::string& field) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(field + ":"))
      return std::strtoll(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return -1;
}


class FuseDurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("fuse-durability");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { (void)base::RemoveAll(dir_); }

  std::string LocalUrl() const { return "file://" + dir_ + "/store"; }

  std::string dir_;
};

// kill -9 of the mount while a 200 MiB file is being rewritten, in both cache modes.
class KillDuringWriteTest : public FuseDurabilityTest,
                            public ::testing::WithParamInterface<bool> {};

TEST_P(KillDuringWriteTest, LeavesTheOldOrTheNewVersionByteForByte) {
  Result<AzuriteContainer> container = NewAzuriteContainer("kill");
  ASSERT_TRUE(container.ok()) << container.status();
  AzureBlobStore* store = container->store.get();
  const std::string old_version = Pattern(200 * kMiB, 1);
  const std::string new_version = Pattern(200 * kMiB, 2);
  ASSERT_TRUE(UploadObject(*store, "checkpoint.bin", DataSourceFromBytes(old_version), {}).ok());

  std::vector<std::string> args = {"--block-cache-block-size=4"};
  if (GetParam()) args.push_back("--block-cache");
  std::unique_ptr<Mount> mount =
      Mount::Start(container->url, dir_ + "/a", args);
  ASSERT_NE(mount, nullptr);
  int fd = ::open(mount->Path("checkpoint.bin").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  std::atomic<int64_t> written{0};
  std::thread writer([&] { WriteInChunks(fd, new_version, &written); });
  ASSERT_TRUE(Eventually([&] { return written.load() >= 120 * kMiB; }));
  mount->Kill();
  writer.join();
  ::close(fd);

  Result<std::string> stored = DownloadRange(*store, "checkpoint.bin", 0, -1, {});
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(*stored == old_version || *stored == new_version)
      << "the blob is neither version: " << stored->size() << " bytes";
  // The crashed mount's dirty copy is never uploaded later: a new mount reads the store's.
  std::unique_ptr<Mount> again =
      Mount::Start(container->url, dir_ + "/a", args);
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(ReadWhole(again->Path("checkpoint.bin")) == *stored);
}

INSTANTIATE_TEST_SUITE_P(Modes, KillDuringWriteTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Streaming" : "FileCache"; });

TEST_F(FuseDurabilityTest, BlocksAreStagedBeforeCloseWhileReadersSeeTheOldVersion) {
  std::unique_ptr<Mount> mount = Mount::Start(LocalUrl(), dir_ + "/a", {"--block-size-mb=1"});
  ASSERT_NE(mount, nullptr);
  const std::string old_version = "the previous checkpoint";
  {
    std::ofstream out(mount->Path("ckpt"), std::ios::binary);
    out << old_version;
  }
  const std::string new_version = Pattern(32 * kMiB, 3);
  int fd = ::open(mount->Path("ckpt").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(WriteInChunks(fd, new_version, nullptr), 32 * kMiB);
  // Not closed yet: the store holds uncommitted blocks, and its object is the old version.
  const std::string blocks = dir_ + "/store/.staging/blocks";
  EXPECT_TRUE(Eventually([&] { return FilesBelow(blocks) >= 16; })) << FilesBelow(blocks);
  Result<std::unique_ptr<LocalStore>> store = LocalStore::Open(dir_ + "/store");
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*(*store)->GetRange("ckpt", 0, -1, {}), old_version);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_TRUE(*(*store)->GetRange("ckpt", 0, -1, {}) == new_version);
  EXPECT_EQ(FilesBelow(blocks), 0);  // committed: nothing left staged
}

TEST_F(FuseDurabilityTest, CacheDirectoryStaysUnderItsCapUnderALargerWorkload) {
  std::unique_ptr<Mount> mount =
      Mount::Start(LocalUrl(), dir_ + "/a",
                   {"--cache-size-mb=64", "--block-size-mb=4", "--cache-free-disk-floor-mb=0"});
  ASSERT_NE(mount, nullptr);
  std::atomic<bool> done{false};
  std::atomic<int64_t> peak{0};
  std::thread sampler([&] {
    while (!done) {
      peak = std::max(peak.load(), DiskUsage(mount->cache_dir()));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  constexpr int kFiles = 30;
  constexpr int64_t kFileBytes = 10 * kMiB;  // 300 MiB in all
  for (int i = 0; i < kFiles; ++i) {
    int fd = ::open(mount->Path(fmt::format("f{:02}", i)).c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(WriteInChunks(fd, Pattern(kFileBytes, 100 + i), nullptr), kFileBytes);
    ASSERT_EQ(::close(fd), 0);
  }
  for (int i = 0; i < kFiles; ++i) {
    EXPECT_TRUE(ReadWhole(mount->Path(fmt::format("f{:02}", i))) == Pattern(kFileBytes, 100 + i))
        << i;
  }
  done = true;
  sampler.join();
  // The cap, plus the one file being written or downloaded, plus the small .meta files.
  EXPECT_LE(peak.load(), 64 * kMiB + kFileBytes + kMiB) << "peak " << peak.load() / kMiB << " MiB";
  EXPECT_GT(peak.load(), 0);
}

TEST_F(FuseDurabilityTest, MountMemoryStaysBoundedWhileOneGibibyteStreamsThrough) {
  constexpr int64_t kPoolMiB = 64;
  std::unique_ptr<Mount> mount =
      Mount::Start(LocalUrl(), dir_ + "/a",
                   {"--block-cache", fmt::format("--block-cache-pool-size={}", kPoolMiB),
                    "--block-cache-block-size=4", "--block-cache-prefetch=4"});
  ASSERT_NE(mount, nullptr);
  const int64_t idle_kib = ProcStatusKiB(mount->pid(), "VmHWM");
  const std::string chunk = Pattern(16 * kMiB, 4);
  constexpr int kChunks = 64;  // 1 GiB
  int fd = ::open(mount->Path("big.bin").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < kChunks; ++i) ASSERT_EQ(WriteInChunks(fd, chunk, nullptr), 16 * kMiB);
  ASSERT_EQ(::close(fd), 0);
  fd = ::open(mount->Path("big.bin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string buffer(kMiB, '\0');
  int64_t offset = 0;
  while (true) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    ASSERT_GE(n, 0);
    if (n == 0) break;
    ASSERT_EQ(std::memcmp(buffer.data(), chunk.data() + offset % chunk.size(), n), 0) << offset;
    offset += n;
  }
  ::close(fd);
  EXPECT_EQ(offset, kChunks * 16 * kMiB);
  const int64_t peak_kib = ProcStatusKiB(mount->pid(), "VmHWM");
  std::cout << "mount VmHWM: idle " << idle_kib / 1024 << " MiB, after 1 GiB written and read "
            << peak_kib / 1024 << " MiB (pool " << kPoolMiB << " MiB)\n";
  // The pool, plus a fixed allowance for the program, its threads and FUSE's buffers.
  constexpr int64_t kAllowanceMiB = 96;
  EXPECT_LE(peak_kib, (kPoolMiB + kAllowanceMiB) * 1024);
}

// fio writes with checksums, then reads back and verifies (sequential and random writes),
// in both cache modes; a fresh mount verifies the sequential file again from the store.
class FioVerifyTest : public FuseDurabilityTest, public ::testing::WithParamInterface<bool> {};

TEST_P(FioVerifyTest, DataIntegrityCheckPasses) {
  // fio is a test peer `make test` installs: without it this test fails rather than passes
  // unseen.
  ASSERT_EQ(std::system("command -v fio >/dev/null 2>&1"), 0)
      << "fio is not installed: `make test` installs it (scripts/deps.sh), or apt-get install fio";
  std::vector<std::string> args = {"--block-cache-block-size=1", "--block-cache-pool-size=16"};
  if (GetParam()) args.push_back("--block-cache");
  auto run_fio = [&](const Mount& mount, const std::string& job) {
    std::string command = fmt::format(
        "cd '{}' && fio --output-format=terse --ioengine=psync --fallocate=none "
        "--verify=crc32c --verify_fatal=1 --end_fsync=1 {} > '{}/fio.out' 2>&1",
        mount.mountpoint(), job, dir_);
    int status = std::system(command.c_str());
    return status == 0 ? std::string() : ReadWhole(dir_ + "/fio.out");
  };
  {
    std::unique_ptr<Mount> mount = Mount::Start(LocalUrl(), dir_ + "/a", args);
    ASSERT_NE(mount, nullptr);
    EXPECT_EQ(run_fio(*mount, "--name=seq --filename=seq.dat --size=24M --bs=128k --rw=write"), "");
    EXPECT_EQ(run_fio(*mount,
                      "--name=rand --filename=rand.dat --size=8M --bs=4k "
                      "--rw=randwrite --randrepeat=1"),
              "");
  }
  std::unique_ptr<Mount> fresh = Mount::Start(LocalUrl(), dir_ + "/b", args);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(run_fio(*fresh,
                    "--name=seq --filename=seq.dat --size=24M --bs=128k --rw=write "
                    "--verify_only"),
            "");
}

INSTANTIATE_TEST_SUITE_P(Modes, FioVerifyTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Streaming" : "FileCache"; });

}  // namespace
}  // namespace meridian::storage::fs
