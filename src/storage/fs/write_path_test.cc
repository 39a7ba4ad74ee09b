// The write path and streaming mode of the filesystem core, over the local backend seen
// through a counting store: blocks are staged while a file is written (and readers still see
// the old version), one commit makes the new version visible, rewritten blocks are staged
// again, streaming mode keeps its memory pool bound, and the free-disk floor sends new files
// to streaming mode instead of failing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "base/files.h"
#include "base/testing/eventually.h"
#include "fmt/format.h"
#include "storage/fs/fs_core.h"
#include "storage/fs/fs_errors.h"
#include "storage/forwarding_store.h"
#include "storage/local_store.h"

namespace meridian::storage::fs {
namespace {

constexpr int64_t kBlock = 64 << 10;

// Forwards to a LocalStore and counts the reads and writes the filesystem makes.
class CountingStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                               const Condition& condition) override {
    ++gets;
    return inner()->GetRange(name, offset, length, condition);
  }
  Result<std::string> Put(const std::string& name, std::string_view data, const Metadata& metadata,
                          const Condition& condition) override {
    ++puts;
    return inner()->Put(name, data, metadata, condition);
  }
  Status StageBlock(const std::string& name, const std::string& block_id,
                    std::string_view data) override {
    Status status = inner()->StageBlock(name, block_id, data);
    if (status.ok()) ++staged;
    return status;
  }
  Result<std::string> CommitBlocks(const std::string& name,
                                   const std::vector<std::string>& block_ids,
                                   const Metadata& metadata, const Condition& condition) override {
    ++commits;
    return inner()->CommitBlocks(name, block_ids, metadata, condition);
  }

  std::atomic<int> gets{0}, puts{0}, staged{0}, commits{0};
};

std::string RandomBytes(size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

class WritePathTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    root_ = fmt::format("{}/fs-write-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp");
    ASSERT_NE(::mkdtemp(root_.data()), nullptr);
    Result<std::unique_ptr<LocalStore>> local =
        LocalStore::Open(root_ + "/store", {nullptr, false});
    ASSERT_TRUE(local.ok()) << local.status();
    local_ = std::move(*local);
    store_ = std::make_unique<CountingStore>(local_.get());
  }
  void TearDown() override { EXPECT_TRUE(base::RemoveAll(root_).ok()); }

  // GetParam(): streaming mode (--block-cache) or the file cache.
  std::unique_ptr<FsCore> NewCore(FsOptions options = {}) {
    options.cache_dir = root_ + "/cache";
    options.block_cache = GetParam();
    options.block_size_bytes = kBlock;
    options.block_pool_bytes = 8 * kBlock;
    options.free_disk_floor_bytes = 0;
    options.wait_for_memory_ms = 3000;
    Result<std::unique_ptr<FsCore>> core = FsCore::Create(store_.get(), options);
    EXPECT_TRUE(core.ok()) << core.status();
    return core.ok() ? std::move(*core) : nullptr;
  }

  Result<uint64_t> OpenForWrite(FsCore& core, const std::string& name, int flags) {
    Result<Attr> existing = core.Lookup(kRootInode, name);
    if (existing.ok()) {
      ASSIGN_OR_RETURN(OpenResult opened, core.Open(existing->inode, O_RDWR | flags));
      return opened.handle;
    }
    ASSIGN_OR_RETURN(CreateResult created, core.CreateFile(kRootInode, name, 0644, O_RDWR));
    return created.handle;
  }

  Result<std::string> ReadAll(FsCore& core, const std::string& name) {
    ASSIGN_OR_RETURN(Attr attr, core.Lookup(kRootInode, name));
    ASSIGN_OR_RETURN(OpenResult opened, core.Open(attr.inode, O_RDONLY));
    std::string out;
    while (true) {
      ASSIGN_OR_RETURN(std::string chunk, core.Read(opened.handle, out.size(), 100'000));
      if (chunk.empty()) break;
      out += chunk;
    }
    RETURN_IF_ERROR(core.Release(opened.handle));
    return out;
  }

  std::string Stored(const std::string& name) {
    Result<std::string> data = local_->GetRange(name, 0, -1, {});
    return data.ok() ? *data : "<" + data.status().ToString() + ">";
  }

  std::string root_;
  std::unique_ptr<LocalStore> local_;
  std::unique_ptr<CountingStore> store_;
};

TEST_P(WritePathTest, SequentialWriterStagesBlocksBeforeCloseWhileReadersSeeTheOldVersion) {
  ASSERT_TRUE(local_->Put("ckpt", "old version", {}, {}).ok());
  std::unique_ptr<FsCore> core = NewCore();
  ASSERT_NE(core, nullptr);
  const std::string data = RandomBytes(16 * kBlock, 1);
  Result<uint64_t> handle = OpenForWrite(*core, "ckpt", O_TRUNC);
  ASSERT_TRUE(handle.ok()) << handle.status();
  for (size_t offset = 0; offset < data.size(); offset += 16 << 10) {
    ASSERT_TRUE(core->Write(*handle, offset, data.substr(offset, 16 << 10)).ok());
  }
  // Before close: every finished block is staged (uncommitted) in the store...
  EXPECT_TRUE(Eventually([&] { return store_->staged.load() >= 15; })) << store_->staged;
  EXPECT_EQ(store_->commits.load(), 0);
  // ...and readers of the store still see the old version.
  EXPECT_EQ(Stored("ckpt"), "old version");
  ASSERT_TRUE(core->Release(*handle).ok());
  EXPECT_EQ(Stored("ckpt"), data);
  EXPECT_EQ(store_->commits.load(), 1);
  EXPECT_EQ(store_->staged.load(), 16);  // each block went up exactly once
}

TEST_P(WritePathTest, BlocksRewrittenAfterStagingAreStagedAgain) {
  std::unique_ptr<FsCore> core = NewCore();
  ASSERT_NE(core, nullptr);
  std::string data = RandomBytes(4 * kBlock, 2);
  Result<uint64_t> handle = OpenForWrite(*core, "f", 0);
  ASSERT_TRUE(handle.ok()) << handle.status();
  ASSERT_TRUE(core->Write(*handle, 0, data).ok());
  ASSERT_TRUE(Eventually([&] { return store_->staged.load() >= 4; }));
  data.replace(kBlock + 10, 5, "again");
  ASSERT_TRUE(core->Write(*handle, kBlock + 10, "again").ok());
  ASSERT_TRUE(core->Release(*handle).ok());
  EXPECT_EQ(Stored("f"), data);
  EXPECT_EQ(store_->staged.load(), 5);
  EXPECT_EQ(*ReadAll(*core, "f"), data);
}

TEST_P(WritePathTest, FsyncMakesTheDataDurableWhileTheFileStaysOpen) {
  std::unique_ptr<FsCore> core = NewCore();
  ASSERT_NE(core, nullptr);
  const std::string first = RandomBytes(3 * kBlock + 100, 3);
  Result<uint64_t> handle = OpenForWrite(*core, "log", 0);
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(core->Write(*handle, 0, first).ok());
  ASSERT_TRUE(core->Fsync(*handle).ok());
  EXPECT_EQ(Stored("log"), first);
  ASSERT_TRUE(core->Write(*handle, first.size(), "tail").ok());
  ASSERT_TRUE(core->Release(*handle).ok());
  EXPECT_EQ(Stored("log"), first + "tail");
}

TEST_P(WritePathTest, ACrashBeforeCloseLeavesTheOldVersion) {
  ASSERT_TRUE(local_->Put("model", "old", {}, {}).ok());
  std::unique_ptr<FsCore> core = NewCore();
  ASSERT_NE(core, nullptr);
  Result<uint64_t> handle = OpenForWrite(*core, "model", O_TRUNC);
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(core->Write(*handle, 0, RandomBytes(10 * kBlock, 4)).ok());
  ASSERT_TRUE(Eventually([&] { return store_->staged.load() >= 10; }));
  core.reset();  // gone without a flush, as after kill -9
  EXPECT_EQ(Stored("model"), "old");
}

TEST_P(WritePathTest, RandomWritesSparseFilesTruncateAndExtend) {
  ASSERT_TRUE(local_->Put("r", RandomBytes(5 * kBlock + 7, 5), {}, {}).ok());
  std::string expected = *local_->GetRange("r", 0, -1, {});
  std::unique_ptr<FsCore> core = NewCore();
  ASSERT_NE(core, nullptr);
  Result<uint64_t> handle = OpenForWrite(*core, "r", 0);
  ASSERT_TRUE(handle.ok());
  std::mt19937 random(6);
  for (int i = 0; i < 40; ++i) {
    int64_t offset = random() % (7 * kBlock);
    std::string bytes = RandomBytes(1 + random() % 5000, i);
    Result<int64_t> written = core->Write(*handle, offset, bytes);
    ASSERT_TRUE(written.ok()) << written.status() << " pool " << core->block_pool().used_blocks();
    if (expected.size() < offset + bytes.size()) expected.resize(offset + bytes.size(), '\0');
    expected.replace(offset, bytes.size(), bytes);
  }
  SetAttrRequest shrink;
  shrink.size = 2 * kBlock + 3;
  Result<Attr> attr = core->Lookup(kRootInode, "r");
  ASSERT_TRUE(core->SetAttr(attr->inode, shrink, *handle).ok());
  expected.resize(*shrink.size);
  SetAttrRequest extend;
  extend.size = 4 * kBlock;
  ASSERT_TRUE(core->SetAttr(attr->inode, extend, *handle).ok());
  expected.resize(*extend.size, '\0');
  Result<std::string> read = core->Read(*handle, 0, 8 * kBlock);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, expected);
  ASSERT_TRUE(core->Release(*handle).ok());
  EXPECT_EQ(Stored("r"), expected);
  EXPECT_EQ(*ReadAll(*core, "r"), expected);
}

TEST_P(WritePathTest, AConcurrentWriterElsewhereIsDetectedNotOverwritten) {
  ASSERT_TRUE(local_->Put("shared", RandomBytes(3 * kBlock, 7), {}, {}).ok());
  std::unique_ptr<FsCore> core = NewCore();
  ASSERT_NE(core, nullptr);
  Result<uint64_t> handle = OpenForWrite(*core, "shared", 0);
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(core->Write(*handle, 5, "mine").ok());
  ASSERT_TRUE(local_->Put("shared", "theirs", {}, {}).ok());
  EXPECT_EQ(ErrnoFor(core->Release(*handle)), EIO);
  EXPECT_EQ(Stored("shared"), "theirs");
}

INSTANTIATE_TEST_SUITE_P(Modes, WritePathTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Streaming" : "FileCache"; });

// O_CREAT|O_TRUNC in the file cache: the object is made by the upload at close, one Put for
// a small file, and until then only this mount shows the file.
class DeferredCreateTest : public WritePathTest {};

TEST_P(DeferredCreateTest, ASmallFileCostsOnePutAndShowsHereBeforeItIsClosed) {
  std::unique_ptr<FsCore> core = NewCore();
  ASSERT_NE(core, nullptr);
  Result<CreateResult> created =
      core->CreateFile(kRootInode, "new.txt", 0600, O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(core->Write(created->handle, 0, "hello").ok());
  EXPECT_EQ(local_->Head("new.txt").status().code(), absl::StatusCode::kNotFound)
      << "the object should wait for the upload";
  // This mount shows it meanwhile: lookup, getattr and the directory listing.
  Result<Attr> looked = core->Lookup(kRootInode, "new.txt");
  ASSERT_TRUE(looked.ok()) << looked.status();
  EXPECT_EQ(looked->inode, created->attr.inode);
  EXPECT_EQ(looked->size, 5);
  EXPECT_EQ(looked->mode & 07777, 0600u);
  Result<std::vector<DirEntry>> listed = core->ReadDir(kRootInode);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "new.txt");
  EXPECT_EQ((*listed)[0].kind, FileKind::kFile);

  ASSERT_TRUE(core->Release(created->handle).ok());
  EXPECT_EQ(Stored("new.txt"), "hello");
  EXPECT_EQ(store_->puts.load(), 1) << "one Put for the whole file";
  EXPECT_EQ(store_->commits.load(), 0);
  EXPECT_EQ(local_->Head("new.txt")->metadata.at("meridian_mode"), "600");
}

TEST_P(DeferredCreateTest, AnEmptyFileIsMadeAtClose) {
  std::unique_ptr<FsCore> core = NewCore();
  Result<CreateResult> created =
      core->CreateFile(kRootInode, "empty", 0644, O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(core->Release(created->handle).ok());
  Result<ObjectInfo> info = local_->Head("empty");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, 0);
}

TEST_P(DeferredCreateTest, ANameCreatedElsewhereMeanwhileIsReplacedAsOTruncAsks) {
  std::unique_ptr<FsCore> core = NewCore();
  Result<CreateResult> created =
      core->CreateFile(kRootInode, "race", 0644, O_WRONLY | O_CREAT | O_TRUNC);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(core->Write(created->handle, 0, "mine").ok());
  ASSERT_TRUE(local_->Put("race", "theirs", {}, {}).ok());
  ASSERT_TRUE(core->Release(created->handle).ok());
  EXPECT_EQ(Stored("race"), "mine");
}

TEST_P(DeferredCreateTest, WithoutOTruncAnObjectElsewhereIsOpenedNotReplaced) {
  ASSERT_TRUE(local_->Put("log", "theirs\n", {}, {}).ok());
  std::unique_ptr<FsCore> core = NewCore();
  // The kernel's lookup missed it (made after), so create is asked; O_APPEND keeps their bytes.
  Result<CreateResult> created =
      core->CreateFile(kRootInode, "log", 0644, O_WRONLY | O_CREAT | O_APPEND);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(core->Write(created->handle, 0, "mine\n").ok());
  ASSERT_TRUE(core->Release(created->handle).ok());
  EXPECT_EQ(Stored("log"), "theirs\nmine\n");
}

TEST_P(DeferredCreateTest, UnlinkingBeforeCloseLeavesNothingInTheStore) {
  std::unique_ptr<FsCore> core = NewCore();
  Result<CreateResult> created =
      core->CreateFile(kRootInode, "scratch", 0644, O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(core->Write(created->handle, 0, "temp").ok());
  ASSERT_TRUE(core->Unlink(kRootInode, "scratch").ok());
  EXPECT_EQ(ErrnoFor(core->Lookup(kRootInode, "scratch").status()), ENOENT);
  ASSERT_TRUE(core->Release(created->handle).ok());
  EXPECT_EQ(local_->Head("scratch").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(core->ReadDir(kRootInode)->empty());
}

// Large files in the file cache are downloaded in the background (background_download.h).
class FileCacheDownloadTest : public WritePathTest {};

TEST_P(FileCacheDownloadTest, ALargeFileDownloadedInTheBackgroundIsReusedAfterARestart) {
  // Several download chunks: fetched in the background while it is read.
  const int64_t chunk = FileCacheOptions{}.download_chunk_bytes;
  const std::string data = RandomBytes(2 * chunk + 5, 11);
  ASSERT_TRUE(local_->Put("big.bin", data, {}, {}).ok());
  std::unique_ptr<FsCore> core = NewCore();
  Result<std::string> read = ReadAll(*core, "big.bin");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == data) << "the bytes read while downloading differ";
  EXPECT_EQ(store_->gets.load(), 3) << "one ranged read per chunk (3 chunks)";
  core.reset();

  // A new mount on the same cache directory finds the finished copy and reads no bytes.
  core = NewCore();
  read = ReadAll(*core, "big.bin");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == data);
  EXPECT_EQ(store_->gets.load(), 3) << "the copy was downloaded again after the restart";
}

INSTANTIATE_TEST_SUITE_P(FileCache, DeferredCreateTest, ::testing::Values(false),
                         [](const auto&) { return std::string("FileCache"); });
INSTANTIATE_TEST_SUITE_P(FileCache, FileCacheDownloadTest, ::testing::Values(false),
                         [](const auto&) { return std::string("FileCache"); });

class StreamingTest : public WritePathTest {};

TEST_P(StreamingTest, ReadingAFileMuchLargerThanThePoolKeepsMemoryBounded) {
  const std::string data = RandomBytes(64 * kBlock + 123, 8);
  ASSERT_TRUE(local_->Put("big", data, {}, {}).ok());
  std::unique_ptr<FsCore> core = NewCore();
  ASSERT_NE(core, nullptr);
  Result<Attr> attr = core->Lookup(kRootInode, "big");
  Result<OpenResult> opened = core->Open(attr->inode, O_RDONLY);
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(*core->IsStreaming(opened->handle));
  std::string read;
  int64_t peak_blocks = 0;
  while (true) {
    Result<std::string> chunk = core->Read(opened->handle, read.size(), 32 << 10);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    peak_blocks = std::max(peak_blocks, core->block_pool().used_blocks());
    if (chunk->empty()) break;
    read += *chunk;
  }
  EXPECT_TRUE(read == data);
  EXPECT_LE(peak_blocks, core->block_pool().capacity_blocks());
  ASSERT_TRUE(core->Release(opened->handle).ok());
}

TEST_P(StreamingTest, WrittenBlocksDroppedFromMemoryReadBackCorrectly) {
  std::unique_ptr<FsCore> core = NewCore();
  ASSERT_NE(core, nullptr);
  const std::string data = RandomBytes(40 * kBlock, 9);  // five times the pool
  Result<uint64_t> handle = OpenForWrite(*core, "w", 0);
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(core->Write(*handle, 0, data).ok());
  Result<std::string> head = core->Read(*handle, 0, 3 * kBlock);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_TRUE(*head == data.substr(0, 3 * kBlock));
  ASSERT_TRUE(core->Write(*handle, kBlock, "patched").ok());
  ASSERT_TRUE(core->Release(*handle).ok());
  std::string expected = data;
  expected.replace(kBlock, 7, "patched");
  EXPECT_TRUE(Stored("w") == expected);
}

INSTANTIATE_TEST_SUITE_P(Streaming, StreamingTest, ::testing::Values(true));

TEST(FreeDiskFloorTest, NewFilesStreamWhenTheCacheDiskIsBelowItsFloor) {
  const char* tmp = std::getenv("TMPDIR");
  std::string root = fmt::format("{}/fs-floor-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp");
  ASSERT_NE(::mkdtemp(root.data()), nullptr);
  Result<std::unique_ptr<LocalStore>> store = LocalStore::Open(root + "/store", {nullptr, false});
  ASSERT_TRUE(store.ok());
  FsOptions options;
  options.cache_dir = root + "/cache";
  options.block_size_bytes = kBlock;
  options.block_pool_bytes = 8 * kBlock;
  options.free_disk_floor_bytes = 0;
  std::unique_ptr<FsCore> roomy = *FsCore::Create(store->get(), options);
  Result<CreateResult> cached = roomy->CreateFile(kRootInode, "cached", 0644, O_RDWR);
  ASSERT_TRUE(cached.ok());
  EXPECT_FALSE(*roomy->IsStreaming(cached->handle));
  ASSERT_TRUE(roomy->Write(cached->handle, 0, "kept").ok());
  ASSERT_TRUE(roomy->Release(cached->handle).ok());
  EXPECT_EQ(roomy->file_cache().used_bytes(), 4);
  roomy.reset();

  // A floor no disk can keep: idle copies are evicted first, then new files stream.
  options.free_disk_floor_bytes = int64_t{1} << 62;
  std::unique_ptr<FsCore> full = *FsCore::Create(store->get(), options);
  Result<CreateResult> streamed = full->CreateFile(kRootInode, "streamed", 0644, O_RDWR);
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_TRUE(*full->IsStreaming(streamed->handle));
  EXPECT_EQ(full->file_cache().used_bytes(), 0);
  ASSERT_TRUE(full->Write(streamed->handle, 0, "no disk needed").ok());
  ASSERT_TRUE(full->Release(streamed->handle).ok());
  EXPECT_EQ(*(*store)->GetRange("streamed", 0, -1, {}), "no disk needed");
  full.reset();
  EXPECT_TRUE(base::RemoveAll(root).ok());
}

}  // namespace
}  // namespace meridian::storage::fs
