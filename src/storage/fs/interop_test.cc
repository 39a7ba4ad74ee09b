// Interoperability with Microsoft's own client library: what a `meridian storage mount` over
// Azurite writes is read back byte for byte, with BlobFuse2's directory and symlink metadata,
// by @azure/storage-blob (tests/node/blob_interop.mjs), and what that library uploads is
// read back through the mount. Requires /dev/fuse and the right to mount, `node` on PATH and
// the npm test peers installed (`make test` installs them).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
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

// Larger than the single-Put limit of both sides, so each side uploads staged blocks and
// one Put Block List.
constexpr size_t kLargeBlobBytes = size_t{40} << 20;
constexpr int kSdkBlockBytes = 8 << 20;

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string bytes(size, '\0');
  for (size_t i = 0; i + 8 <= size; i += 8) {
    uint64_t word = random();
    std::memcpy(bytes.data() + i, &word, 8);
  }
  return bytes;
}

bool WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();  // through the mount: the upload, whose failure shows here
  return !out.fail();
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::set<std::string> ListDirectory(const std::string& path) {
  std::set<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = ::readdir(dir)) names.insert(entry->d_name);
  ::closedir(dir);
  return names;
}


class BlobInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("blob-interop");
    ASSERT_FALSE(dir_.empty());
    // Both the mount and the SDK script read the key from the variables this sets.
    Result<AzuriteContainer> container = NewAzuriteContainer("interop");
    ASSERT_TRUE(container.ok()) << container.status();
    container_ = container->name;
    endpoint_ = SharedAzurite()->endpoint();
  }
  void TearDown() override { (void)base::RemoveAll(dir_); }

  std::unique_ptr<Mount> MountContainer() {
    return Mount::Start(endpoint_ + "/" + container_, dir_);
  }

  // Runs tests/node/blob_interop.mjs with `args`; returns its stdout, or fails the test.
  std::string Sdk(const std::string& args) {
    const std::string command = fmt::format("node '{}/tests/node/blob_interop.mjs' '{}' '{}' {}",
                                            MERIDIAN_SOURCE_DIR, endpoint_, container_, args);
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
      ADD_FAILURE() << "cannot run " << command;
      return "";
    }
    std::string output;
    char buffer[4096];
    while (size_t read = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, read);
    const int status = ::pclose(pipe);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << command << " failed with status " << status;
    return output;
  }

  // {"size": N, "metadata": {...}} of a blob as the SDK sees it; discarded JSON on failure.
  nlohmann::json Properties(const std::string& name) {
    return nlohmann::json::parse(Sdk(fmt::format("props '{}'", name)), nullptr, false);
  }
  static int64_t SizeOf(const nlohmann::json& properties) {
    return properties.is_object() ? properties.value("size", int64_t{-1}) : -1;
  }
  static std::string MetadataOf(const nlohmann::json& properties, const std::string& key) {
    if (!properties.is_object() || !properties.contains("metadata")) return "";
    const nlohmann::json& metadata = properties["metadata"];
    return metadata.is_object() ? metadata.value(key, "") : "";
  }

  std::string SdkDownload(const std::string& name) {
    const std::string file = dir_ + "/downloaded";
    Sdk(fmt::format("get '{}' '{}'", name, file));
    return ReadBytes(file);
  }

  void SdkUpload(const std::string& name, const std::string& bytes,
                 const std::string& options = "") {
    const std::string file = dir_ + "/upload";
    ASSERT_TRUE(WriteBytes(file, bytes));
    Sdk(fmt::format("put '{}' '{}' {}", name, file, options));
  }

  std::string dir_;
  std::string endpoint_;
  std::string container_;
};

TEST_F(BlobInteropTest, FilesWrittenThroughTheMountReadBackIdenticalWithTheAzureSdk) {
  const std::string large = RandomBytes(kLargeBlobBytes, 1);
  {
    std::unique_ptr<Mount> mount = MountContainer();
    ASSERT_NE(mount, nullptr);
    ASSERT_EQ(::mkdir(mount->Path("out").c_str(), 0755), 0);
    ASSERT_TRUE(WriteBytes(mount->Path("out/small.txt"), "written through the mount\n"));
    ASSERT_TRUE(WriteBytes(mount->Path("out/large.bin"), large));
  }  // unmounted: nothing can still be in flight

  EXPECT_EQ(SdkDownload("out/small.txt"), "written through the mount\n");
  EXPECT_EQ(SizeOf(Properties("out/large.bin")), static_cast<int64_t>(kLargeBlobBytes));
  EXPECT_TRUE(SdkDownload("out/large.bin") == large) << "40 MiB blob differs";
  nlohmann::json names = nlohmann::json::parse(Sdk("list out/"), nullptr, false);
  EXPECT_EQ(names, nlohmann::json({"out/large.bin", "out/small.txt"}));
}

TEST_F(BlobInteropTest, DirectoriesAndSymlinksMadeOnTheMountCarryBlobFuse2Metadata) {
  {
    std::unique_ptr<Mount> mount = MountContainer();
    ASSERT_NE(mount, nullptr);
    ASSERT_EQ(::mkdir(mount->Path("models").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(mount->Path("models/v1").c_str(), 0755), 0);
    ASSERT_EQ(::symlink("v1/weights.bin", mount->Path("models/latest").c_str()), 0);
  }

  for (const std::string directory : {"models", "models/v1"}) {
    nlohmann::json marker = Properties(directory);
    EXPECT_EQ(SizeOf(marker), 0) << directory;
    EXPECT_EQ(MetadataOf(marker, "hdi_isfolder"), "true") << directory;
  }
  EXPECT_EQ(MetadataOf(Properties("models/latest"), "is_symlink"), "true");
  EXPECT_EQ(SdkDownload("models/latest"), "v1/weights.bin");
}

TEST_F(BlobInteropTest, BlobsUploadedWithTheAzureSdkReadBackIdenticalThroughTheMount) {
  const std::string large = RandomBytes(kLargeBlobBytes, 2);
  SdkUpload("a/b/c.txt", "uploaded by the Azure SDK\n");
  SdkUpload("large.bin", large, fmt::format("--block-bytes {}", kSdkBlockBytes));
  SdkUpload("empty-dir", "", "--metadata hdi_isfolder=true");
  SdkUpload("link-to-c", "a/b/c.txt", "--metadata is_symlink=true");

  std::unique_ptr<Mount> mount = MountContainer();
  ASSERT_NE(mount, nullptr);
  struct stat st {};
  ASSERT_EQ(::stat(mount->Path("a").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  ASSERT_EQ(::stat(mount->Path("a/b").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(ListDirectory(mount->Path("")),
            std::set<std::string>({".", "..", "a", "empty-dir", "large.bin", "link-to-c"}));
  EXPECT_EQ(ListDirectory(mount->Path("a")), std::set<std::string>({".", "..", "b"}));
  EXPECT_EQ(ReadBytes(mount->Path("a/b/c.txt")), "uploaded by the Azure SDK\n");

  ASSERT_EQ(::stat(mount->Path("large.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(kLargeBlobBytes));
  EXPECT_TRUE(ReadBytes(mount->Path("large.bin")) == large) << "40 MiB file differs";

  ASSERT_EQ(::stat(mount->Path("empty-dir").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(ListDirectory(mount->Path("empty-dir")), std::set<std::string>({".", ".."}));

  ASSERT_EQ(::lstat(mount->Path("link-to-c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  char target[64] = {};
  ASSERT_EQ(::readlink(mount->Path("link-to-c").c_str(), target, sizeof(target) - 1), 9);
  EXPECT_STREQ(target, "a/b/c.txt");
  EXPECT_EQ(ReadBytes(mount->Path("link-to-c")), "uploaded by the Azure SDK\n");
}

}  // namespace
}  // namespace meridian::storage::fs
