// The archives `meridian` packs are ordinary tar.gz: the system's `tar` (a test peer, so
// this is an integration test) unpacks them with long names and file modes intact.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "base/files.h"
#include "fmt/format.h"
#include "gtest/gtest.h"
#include "package/tar_writer.h"

namespace meridian::package {
namespace {

TEST(SystemTarTest, SystemTarReadsOurArchives) {
  ASSERT_EQ(std::system("tar --version >/dev/null 2>&1"), 0)
      << "tar is not installed: apt-get install tar (users unpack packages with it)";
  const std::string root = fmt::format("{}/system_tar_test_{}", ::testing::TempDir(), ::getpid());
  const std::string long_name = std::string(80, 'a') + "/" + std::string(80, 'b') + ".txt";
  ASSERT_TRUE(base::MakeDirs(root + "/" + std::string(80, 'a')).ok());
  ASSERT_TRUE(base::MakeDirs(root + "/bin").ok());
  ASSERT_TRUE(base::WriteFileAtomic(root + "/" + long_name, "pax\n", 0644).ok());
  ASSERT_TRUE(base::WriteFileAtomic(root + "/bin/tool", "#!/bin/sh\n", 0750).ok());
  Result<std::string> packed = PackDirectory(root, PackOptions{});
  ASSERT_TRUE(packed.ok()) << packed.status();
  const std::string archive = root + "_sys.tar.gz";
  const std::string out = root + "_sys";
  ASSERT_TRUE(base::WriteFileAtomic(archive, *packed, 0644).ok());
  ASSERT_TRUE(base::MakeDirs(out).ok());

  ASSERT_EQ(std::system(fmt::format("tar -xzf '{}' -C '{}'", archive, out).c_str()), 0);

  EXPECT_EQ(*base::ReadFile(out + "/" + long_name), "pax\n");
  struct stat info;
  ASSERT_EQ(::stat((out + "/bin/tool").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0750u);
  for (const std::string& dir : {root, out, archive}) (void)base::RemoveAll(dir);
}

}  // namespace
}  // namespace meridian::package
