// Tests of the token file writer with short real lifetimes; waits poll with a generous
// deadline that only keeps a broken test from hanging.
#include "identity/credentials/token_file_writer.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "base/files.h"
#include "base/testing/eventually.h"
#include "gtest/gtest.h"
#include "identity/credentials/fake_token_endpoint.h"

namespace meridian::identity::credentials {
namespace {

std::string Contents(const std::string& path) {
  Result<std::string> contents = base::ReadFile(path);
  return contents.ok() ? *contents : std::string();
}

class TokenFileWriterTest : public ::testing::Test {
 protected:
  std::string Path() const { return dir_.path() + "/token"; }
  testing::TempDir dir_;
};

TEST_F(TokenFileWriterTest, WritesAtStartAndRewritesBeforeExpiry) {
  std::atomic<int> minted{0};
  Result<std::unique_ptr<TokenFileWriter>> writer = TokenFileWriter::Start(
      {.path = Path(),
       .mint = [&]() -> Result<std::string> { return "token-" + std::to_string(++minted); },
       .token_lifetime_ms = 2000});
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ(Contents(Path()), "token-1");
  struct stat info {};
  ASSERT_EQ(stat(Path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  // Rewritten at 80 % of the 2 s lifetime, i.e. while the first token is still valid.
  EXPECT_TRUE(Eventually([&] { return Contents(Path()) == "token-2"; }));
  (*writer)->Stop();
  const int64_t writes = (*writer)->writes();
  EXPECT_GE(writes, 2);
  EXPECT_EQ(writes, minted.load());
}

TEST_F(TokenFileWriterTest, MintFailureKeepsTheOldFileAndRetries) {
  std::atomic<int> calls{0};
  Result<std::unique_ptr<TokenFileWriter>> writer =
      TokenFileWriter::Start({.path = Path(),
                              .mint = [&]() -> Result<std::string> {
                                const int call = ++calls;
                                if (call == 1) return std::string("first");
                                if (call <= 3) return absl::UnavailableError("token service down");
                                return std::string("recovered");
                              },
                              .token_lifetime_ms = 500,
                              .initial_retry_ms = 10});
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_TRUE(Eventually([&] { return (*writer)->failures() >= 1; }));
  EXPECT_TRUE(Eventually([&] { return Contents(Path()) == "recovered"; }));
  EXPECT_EQ((*writer)->failures(), 2);
}

TEST_F(TokenFileWriterTest, FirstMintFailureFailsStart) {
  Result<std::unique_ptr<TokenFileWriter>> writer = TokenFileWriter::Start(
      {.path = Path(),
       .mint = []() -> Result<std::string> { return absl::UnavailableError("no issuer"); },
       .token_lifetime_ms = 1000});
  ASSERT_FALSE(writer.ok());
  EXPECT_NE(std::string(writer.status().message()).find("no issuer"), std::string::npos);
  EXPECT_FALSE(base::PathExists(Path()));
}

TEST_F(TokenFileWriterTest, StopReturnsPromptlyWithALongLifetime) {
  Result<std::unique_ptr<TokenFileWriter>> writer =
      TokenFileWriter::Start({.path = Path(),
                              .mint = []() -> Result<std::string> { return std::string("t"); },
                              .token_lifetime_ms = 3600 * 1000});
  ASSERT_TRUE(writer.ok());
  (*writer)->Stop();  // would hang for 48 minutes if Stop did not wake the thread
  (*writer)->Stop();  // idempotent
  EXPECT_EQ((*writer)->writes(), 1);
  EXPECT_TRUE(base::PathExists(Path()));
}

}  // namespace
}  // namespace meridian::identity::credentials
