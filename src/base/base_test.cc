#include <sys/stat.h>

#include <filesystem>

#include "base/files.h"
#include "base/hash.h"
#include "base/ids.h"
#include "gtest/gtest.h"

namespace meridian::base {
namespace {

TEST(Ids, HaveThePrefixAndAreUnique) {
  std::string a = NewId("job");
  std::string b = NewId("job");
  EXPECT_NE(a, b);
  EXPECT_TRUE(IsWellFormedId(a, "job"));
  EXPECT_FALSE(IsWellFormedId(a, "cld"));
  EXPECT_FALSE(IsWellFormedId("job_../../etc", "job"));
}

TEST(Time, FormatsRfc3339Utc) {
  EXPECT_EQ(FormatTimeMs(1'700'000'000'123), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(FormatTimeMs(0), "");
}

TEST(Files, IsMountedKnowsMountPointsFromPlainDirectories) {
  EXPECT_TRUE(IsMounted("/"));
  std::string dir = ::testing::TempDir() + "/not_a_mount";
  std::filesystem::create_directories(dir);
  EXPECT_FALSE(IsMounted(dir));
  EXPECT_FALSE(IsMounted(dir + "/missing"));
}

TEST(Files, AtomicWriteReplacesAndKeepsMode) {
  std::string dir = ::testing::TempDir() + "/files_test";
  ASSERT_TRUE(MakeDirs(dir).ok());
  std::string path = dir + "/key";
  ASSERT_TRUE(WriteFileAtomic(path, "one", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(path, "two", 0600).ok());
  EXPECT_EQ(*ReadFile(path), "two");
  struct stat info;
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadFile(dir + "/missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFile(path, 1).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(Sha256, MatchesKnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, RawDigestIsThirtyTwoBytesAndHexEncodesToTheHexForm) {
  EXPECT_EQ(Sha256("abc").size(), 32u);
  EXPECT_EQ(HexEncode(Sha256("abc")), Sha256Hex("abc"));
  EXPECT_EQ(HexEncode(std::string("\x00\xff\x10", 3)), "00ff10");
}

}  // namespace
}  // namespace meridian::base
