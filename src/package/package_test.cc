#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "base/files.h"
#include "base/hash.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "package/tar_reader.h"
#include "package/tar_writer.h"

namespace meridian::package {
namespace {

using base::MakeDirs;
using base::PathExists;
using base::ReadFile;
using base::RemoveAll;
using base::Sha256Hex;
using base::WriteFileAtomic;

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fmt::format("{}/archive_test_{}_{}", ::testing::TempDir(), info->name(), ::getpid());
    ASSERT_TRUE(RemoveAll(root_).ok());
    ASSERT_TRUE(MakeDirs(root_).ok());
  }
  void TearDown() override {
    // Read-only directories from a round trip must be writable again to be removed.
    std::error_code error;
    for (auto it = fs::recursive_directory_iterator(root_, error);
         it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (it->is_directory(error) && !it->is_symlink(error)) {
        fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, error);
      }
    }
    (void)RemoveAll(root_);
  }

  void Write(const std::string& relative, const std::string& contents, mode_t mode = 0644) {
    std::string path = root_ + "/" + relative;
    ASSERT_TRUE(MakeDirs(fs::path(path).parent_path().string()).ok());
    ASSERT_TRUE(WriteFileAtomic(path, contents, mode).ok());
  }

  // Relative paths of everything under `dir`, directories with a trailing '/'.
  static std::set<std::string> Listing(const std::string& dir) {
    std::set<std::string> names;
    for (const auto& item : fs::recursive_directory_iterator(dir)) {
      std::string name = fs::relative(item.path(), dir).string();
      if (item.is_directory() && !item.is_symlink()) name += "/";
      names.insert(name);
    }
    return names;
  }

  std::string root_;
};

std::string Gzip(const std::string& data) {
  z_stream stream;
  std::memset(&stream, 0, sizeof(stream));
  deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&stream, data.size()) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// A ustar header written by hand, so tests can build archives no honest packer would.
std::string TarHeader(const std::string& name, char type, size_t size,
                      const std::string& link = "") {
  std::string header(512, '\0');
  std::memcpy(header.data(), name.data(), std::min<size_t>(name.size(), 100));
  std::memcpy(header.data() + 100, "0000644", 7);
  std::memcpy(header.data() + 108, "0000000", 7);
  std::memcpy(header.data() + 116, "0000000", 7);
  std::string octal_size = fmt::format("{:011o}", size);
  std::memcpy(header.data() + 124, octal_size.data(), 11);
  std::memcpy(header.data() + 136, "00000000000", 11);
  header[156] = type;
  std::memcpy(header.data() + 157, link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(header.data() + 257,
              "ustar\0"
              "00",
              8);
  std::memset(header.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : header) sum += c;
  std::string checksum = fmt::format("{:06o}", sum);
  std::memcpy(header.data() + 148, checksum.data(), 6);
  header[154] = '\0';
  return header;
}

std::string TarFile(const std::string& name, const std::string& contents) {
  return TarHeader(name, '0', contents.size()) + contents +
         std::string((512 - contents.size() % 512) % 512, '\0');
}

std::string TarEnd() { return std::string(1024, '\0'); }

TEST_F(ArchiveTest, RoundTripKeepsTreeModesLinksAndLongPaths) {
  std::string long_dir = std::string(60, 'd') + "/" + std::string(70, 'e');
  Write("src/main.py", "print('hi')\n");
  Write("src/pkg/deep/module.py", "x = 1\n");
  Write("run.sh", "#!/bin/sh\necho run\n", 0755);
  Write(long_dir + "/" + std::string(90, 'f') + ".txt", "long\n");
  Write("empty.txt", "");
  ASSERT_TRUE(MakeDirs(root_ + "/src/empty_dir").ok());
  ASSERT_EQ(::symlink("src/main.py", (root_ + "/link.py").c_str()), 0);
  std::string long_target = std::string(120, 't');
  ASSERT_EQ(::symlink(long_target.c_str(), (root_ + "/dangling").c_str()), 0);

  std::vector<std::pair<int64_t, int64_t>> progress;
  PackOptions options;
  options.progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };
  Result<std::string> packed = PackDirectory(root_, options);
  ASSERT_TRUE(packed.ok()) << packed.status();
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().first, progress.back().second);
  EXPECT_EQ(progress.back().second, 12 + 6 + 19 + 5);

  std::string out = root_ + "_out";
  ASSERT_TRUE(UnpackArchiveData(*packed, out).ok());
  EXPECT_EQ(Listing(out), Listing(root_));
  EXPECT_EQ(*ReadFile(out + "/src/pkg/deep/module.py"), "x = 1\n");
  EXPECT_EQ(*ReadFile(out + "/" + long_dir + "/" + std::string(90, 'f') + ".txt"), "long\n");
  struct stat info;
  ASSERT_EQ(::stat((out + "/run.sh").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0755u);
  ASSERT_EQ(::stat((out + "/src/main.py").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
  EXPECT_EQ(fs::read_symlink(out + "/link.py").string(), "src/main.py");
  EXPECT_EQ(fs::read_symlink(out + "/dangling").string(), long_target);
  EXPECT_EQ(*ReadFile(out + "/link.py"), "print('hi')\n");

  // The same bytes unpack from a file too (the operator's path).
  std::string archive = root_ + "_pkg.tar.gz";
  ASSERT_TRUE(WriteFileAtomic(archive, *packed).ok());
  std::string out2 = root_ + "_out2";
  ASSERT_TRUE(UnpackArchive(archive, out2).ok());
  EXPECT_EQ(Listing(out2), Listing(root_));
  (void)RemoveAll(out);
  (void)RemoveAll(out2);
  (void)RemoveAll(archive);
}

TEST_F(ArchiveTest, ExcludesFollowGitignoreRules) {
  for (const char* file :
       {"main.py", "main.pyc", "pkg/util.pyc", "pkg/util.py", "data/big.bin", "pkg/data/x.csv",
        "build/out.o", "pkg/build/keep.txt", "a/b/cache/c.bin", "cache/top.bin", "docs/x/y/z.md",
        "docs/readme.txt", "notes/data", ".env", "src/gen/gen.py", "src/genuine.py"}) {
    Write(file, "content");
  }
  PackOptions options;
  options.excludes = {"*.pyc",   "data/", "/build", "**/cache",   "docs/**/*.md",
                      "src/gen", ".env",  "",       "notes/data/"};
  Result<std::string> packed = PackDirectory(root_, options);
  ASSERT_TRUE(packed.ok()) << packed.status();
  std::string out = root_ + "_out";
  ASSERT_TRUE(UnpackArchiveData(*packed, out).ok());
  std::set<std::string> expected = {
      "main.py",    "pkg/",  "pkg/util.py",   "pkg/build/", "pkg/build/keep.txt", "a/",
      "a/b/",       "docs/", "docs/x/",       "docs/x/y/",  "docs/readme.txt",    "notes/",
      "notes/data", "src/",  "src/genuine.py"};
  EXPECT_EQ(Listing(out), expected);
  (void)RemoveAll(out);

  options.excludes = {"!keep.txt"};
  EXPECT_EQ(PackDirectory(root_, options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ArchiveTest, PackingIsDeterministic) {
  Write("a/one.txt", "1");
  Write("b/two.txt", "22");
  Write("c.txt", "333");
  Result<std::string> first = PackDirectory(root_, PackOptions{});
  ASSERT_TRUE(first.ok());
  // New mtimes (and a new inode order) must not change the bytes.
  struct utimbuf times {
    1'000'000, 1'000'000
  };
  ASSERT_EQ(::utime((root_ + "/c.txt").c_str(), &times), 0);
  ASSERT_TRUE(RemoveAll(root_ + "/a").ok());
  Write("a/one.txt", "1");
  Result<std::string> second = PackDirectory(root_, PackOptions{});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(Sha256Hex(*first), Sha256Hex(*second));
  Write("c.txt", "334");
  EXPECT_NE(Sha256Hex(*PackDirectory(root_, PackOptions{})), Sha256Hex(*first));
}

TEST_F(ArchiveTest, SizeLimitNamesTheSizes) {
  std::mt19937_64 random(42);
  std::string noise(3 << 20, '\0');
  for (char& c : noise) c = static_cast<char>(random());
  Write("weights.bin", noise);
  PackOptions options;
  options.max_bytes = 1 << 20;
  Status status = PackDirectory(root_, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("above the limit of 1 MiB; add large files to excludes"));
  options.excludes = {"*.bin"};
  EXPECT_TRUE(PackDirectory(root_, options).ok());
}

TEST_F(ArchiveTest, UnpackLimitStopsBombs) {
  Write("zeros.bin", std::string(4 << 20, '\0'));
  Result<std::string> packed = PackDirectory(root_, PackOptions{});
  ASSERT_TRUE(packed.ok());
  Status status = UnpackArchiveData(*packed, root_ + "_out", 1 << 20);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  (void)RemoveAll(root_ + "_out");
}

TEST_F(ArchiveTest, TraversalEntriesAreRefused) {
  std::string outside = root_ + "/outside";
  ASSERT_TRUE(MakeDirs(outside).ok());
  struct Case {
    std::string archive;
    std::string entry;
  };
  std::vector<Case> cases = {
      {TarFile("../evil.txt", "x") + TarEnd(), "../evil.txt"},
      {TarFile("ok/../../evil.txt", "x") + TarEnd(), "ok/../../evil.txt"},
      {TarFile("/tmp/evil.txt", "x") + TarEnd(), "/tmp/evil.txt"},
      {TarHeader("link", '2', 0, outside) + TarFile("link/evil.txt", "x") + TarEnd(),
       "link/evil.txt"},
  };
  for (const Case& c : cases) {
    std::string dest = root_ + "/dest";
    Status status = UnpackArchiveData(Gzip(c.archive), dest);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.entry;
    EXPECT_THAT(std::string(status.message()), HasSubstr("'" + c.entry + "'"));
    EXPECT_FALSE(PathExists(root_ + "/evil.txt"));
    EXPECT_FALSE(PathExists(outside + "/evil.txt"));
    EXPECT_FALSE(PathExists("/tmp/evil.txt") && ReadFile("/tmp/evil.txt").value_or("") == "x");
    ASSERT_TRUE(RemoveAll(dest).ok());
  }

  // A file entry that lands on an existing symlink replaces the link, not its target.
  Write("outside/target.txt", "keep");
  std::string dest = root_ + "/dest";
  std::string archive =
      TarHeader("f.txt", '2', 0, outside + "/target.txt") + TarFile("f.txt", "replaced") + TarEnd();
  ASSERT_TRUE(UnpackArchiveData(Gzip(archive), dest).ok());
  EXPECT_EQ(*ReadFile(outside + "/target.txt"), "keep");
  EXPECT_EQ(*ReadFile(dest + "/f.txt"), "replaced");
  EXPECT_FALSE(fs::is_symlink(dest + "/f.txt"));
}

TEST_F(ArchiveTest, CorruptAndTruncatedArchivesAreRefused) {
  Write("a.txt", std::string(100'000, 'a'));
  Write("b.txt", "b");
  Result<std::string> packed = PackDirectory(root_, PackOptions{});
  ASSERT_TRUE(packed.ok());
  std::string dest = root_ + "_out";

  Status truncated = UnpackArchiveData(packed->substr(0, packed->size() / 2), dest);
  EXPECT_EQ(truncated.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(truncated.message()), HasSubstr("truncated"));
  (void)RemoveAll(dest);

  std::string damaged = *packed;
  damaged[damaged.size() / 2] ^= 0x5a;
  damaged[damaged.size() / 2 + 1] ^= 0x5a;
  Status corrupt = UnpackArchiveData(damaged, dest);
  EXPECT_EQ(corrupt.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(corrupt.message()), HasSubstr("archive is"));
  (void)RemoveAll(dest);

  Status not_gzip = UnpackArchiveData("this is not a gzip stream", dest);
  EXPECT_EQ(not_gzip.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(not_gzip.message()), HasSubstr("corrupt"));

  std::string bad_header = TarFile("a.txt", "x");
  bad_header[0] = 'b';  // the checksum no longer matches
  Status checksum = UnpackArchiveData(Gzip(bad_header + TarEnd()), dest);
  EXPECT_THAT(std::string(checksum.message()), HasSubstr("bad checksum"));

  Status no_end = UnpackArchiveData(Gzip(TarFile("a.txt", "x")), dest);
  EXPECT_THAT(std::string(no_end.message()), HasSubstr("truncated"));

  std::string missing = root_ + "/missing.tar.gz";
  EXPECT_EQ(UnpackArchive(missing, dest).code(), absl::StatusCode::kNotFound);
  (void)RemoveAll(dest);
}

}  // namespace
}  // namespace meridian::package
