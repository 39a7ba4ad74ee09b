#include <sys/stat.h>

#include <filesystem>

#include "base/files.h"
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

}  // namespace
}  // namespace meridian::base
