// The filesystem core over the local backend, without FUSE: what a user of the mount would
// notice (data read back, directories, renames, links, consistency between two mounts, ETag
// conflicts, the cache cap), and how many store requests metadata work costs.
#include "storage/fs/fs_core.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <functional>
#include <utility>

#include "base/files.h"
#include "fmt/format.h"
#include "storage/forwarding_store.h"
#include "storage/fs/fs_errors.h"
#include "storage/local_store.h"

namespace meridian::storage::fs {
namespace {

class FsCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    root_ = fmt::format("{}/fs-core-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp");
    ASSERT_NE(::mkdtemp(root_.data()), nullptr);
    Result<std::unique_ptr<LocalStore>> store =
        LocalStore::Open(root_ + "/store", {nullptr, false});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    core_ = NewCore("a");
  }
  void TearDown() override {
    core_.reset();
    EXPECT_TRUE(base::RemoveAll(root_).ok());
  }

  std::unique_ptr<FsCore> NewCore(const std::string& cache_name, FsOptions options = {},
                                  ObjectStore* store = nullptr) {
    options.cache_dir = root_ + "/cache-" + cache_name;
    Result<std::unique_ptr<FsCore>> core =
        FsCore::Create(store != nullptr ? store : store_.get(), options);
    EXPECT_TRUE(core.ok()) << core.status();
    return core.ok() ? std::move(*core) : nullptr;
  }

  // Writes `data` to a new or existing file at the root and closes it.
  static Status WriteFile(FsCore& core, const std::string& name, const std::string& data) {
    Result<Attr> existing = core.Lookup(kRootInode, name);
    uint64_t handle;
    if (existing.ok()) {
      ASSIGN_OR_RETURN(OpenResult opened, core.Open(existing->inode, O_WRONLY | O_TRUNC));
      handle = opened.handle;
    } else {
      ASSIGN_OR_RETURN(CreateResult created, core.CreateFile(kRootInode, name, 0644, O_WRONLY));
      handle = created.handle;
    }
    Result<int64_t> written = core.Write(handle, 0, data);
    Status released = core.Release(handle);
    RETURN_IF_ERROR(written.status());
    return released;
  }

  static Result<std::string> ReadFile(FsCore& core, const std::string& name) {
    ASSIGN_OR_RETURN(Attr attr, core.Lookup(kRootInode, name));
    ASSIGN_OR_RETURN(OpenResult opened, core.Open(attr.inode, O_RDONLY));
    Result<std::string> data = core.Read(opened.handle, 0, 1 << 20);
    RETURN_IF_ERROR(core.Release(opened.handle));
    return data;
  }

  std::string root_;
  std::unique_ptr<LocalStore> store_;
  std::unique_ptr<FsCore> core_;
};

TEST_F(FsCoreTest, CreateWriteReadBackAndStoredAsOneObject) {
  ASSERT_TRUE(WriteFile(*core_, "hello.txt", "hello, world").ok());
  Result<std::string> data = ReadFile(*core_, "hello.txt");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "hello, world");
  EXPECT_EQ(*store_->GetRange("hello.txt", 0, -1, {}), "hello, world");
  Result<Attr> attr = core_->Lookup(kRootInode, "hello.txt");
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, 12);
  EXPECT_TRUE(S_ISREG(attr->mode));
}

TEST_F(FsCoreTest, DataIsInTheStoreOnlyAfterFlush) {
  Result<CreateResult> created = core_->CreateFile(kRootInode, "f", 0644, O_WRONLY);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(core_->Write(created->handle, 0, "abc").ok());
  EXPECT_EQ(*store_->GetRange("f", 0, -1, {}), "");  // the empty object from create
  ASSERT_TRUE(core_->Fsync(created->handle).ok());
  EXPECT_EQ(*store_->GetRange("f", 0, -1, {}), "abc");
  ASSERT_TRUE(core_->Release(created->handle).ok());
}

TEST_F(FsCoreTest, MkdirWritesBlobFuseMarkerAndReaddirListsEntries) {
  Result<Attr> dir = core_->MakeDirectory(kRootInode, "data", 0755);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_TRUE(S_ISDIR(dir->mode));
  Result<ObjectInfo> marker = store_->Head("data");
  ASSERT_TRUE(marker.ok());
  EXPECT_EQ(marker->metadata.at("hdi_isfolder"), "true");
  Result<CreateResult> file = core_->CreateFile(dir->inode, "x.bin", 0644, O_WRONLY);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(core_->Release(file->handle).ok());
  // A directory written by another tool: only a prefix, no marker.
  ASSERT_TRUE(store_->Put("data/implicit/y", "y", {}, {}).ok());

  Result<std::vector<DirEntry>> root = core_->ReadDir(kRootInode);
  ASSERT_TRUE(root.ok());
  ASSERT_EQ(root->size(), 1u);  // the marker and the prefix are one entry
  EXPECT_EQ((*root)[0].name, "data");
  EXPECT_EQ((*root)[0].kind, FileKind::kDirectory);
  Result<std::vector<DirEntry>> inside = core_->ReadDir(dir->inode);
  ASSERT_TRUE(inside.ok());
  ASSERT_EQ(inside->size(), 2u);
  EXPECT_EQ((*inside)[0].name, "implicit");
  EXPECT_EQ((*inside)[0].kind, FileKind::kDirectory);
  EXPECT_EQ((*inside)[1].name, "x.bin");

  EXPECT_EQ(ErrnoFor(core_->MakeDirectory(kRootInode, "data", 0755).status()), EEXIST);
  EXPECT_EQ(ErrnoFor(core_->RemoveDirectory(kRootInode, "data")), ENOTEMPTY);
  EXPECT_EQ(ErrnoFor(core_->Unlink(kRootInode, "data")), EISDIR);
}

TEST_F(FsCoreTest, ReaddirPagesThroughLongListings) {
  FsOptions options;
  options.list_page_size = 7;
  std::unique_ptr<FsCore> core = NewCore("paged", options);
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(store_->Put(fmt::format("many/f{:03}", i), "", {}, {}).ok());
  Result<Attr> dir = core->Lookup(kRootInode, "many");
  ASSERT_TRUE(dir.ok());
  Result<std::vector<DirEntry>> entries = core->ReadDir(dir->inode);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 50u);
  EXPECT_EQ(entries->back().name, "f049");
}

TEST_F(FsCoreTest, RmdirRemovesAnEmptyDirectory) {
  ASSERT_TRUE(core_->MakeDirectory(kRootInode, "empty", 0755).ok());
  ASSERT_TRUE(core_->RemoveDirectory(kRootInode, "empty").ok());
  EXPECT_EQ(store_->Head("empty").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoFor(core_->Lookup(kRootInode, "empty").status()), ENOENT);
}

TEST_F(FsCoreTest, RenameFileReplacesTargetAndKeepsData) {
  ASSERT_TRUE(WriteFile(*core_, "a", "new").ok());
  ASSERT_TRUE(WriteFile(*core_, "b", "old").ok());
  ASSERT_TRUE(core_->Rename(kRootInode, "a", kRootInode, "b", 0).ok());
  EXPECT_EQ(ErrnoFor(core_->Lookup(kRootInode, "a").status()), ENOENT);
  EXPECT_EQ(*ReadFile(*core_, "b"), "new");
  EXPECT_EQ(store_->Head("a").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(WriteFile(*core_, "c", "c").ok());
  EXPECT_EQ(ErrnoFor(core_->Rename(kRootInode, "c", kRootInode, "b", RENAME_NOREPLACE)), EEXIST);
  EXPECT_EQ(ErrnoFor(core_->Rename(kRootInode, "c", kRootInode, "b", RENAME_EXCHANGE)), ENOTSUP);
}

TEST_F(FsCoreTest, RenameOfNonEmptyDirectoryTurnedOffFailsEarlyWithExdev) {
  FsOptions options;
  options.max_dir_rename_objects = 0;
  core_ = NewCore("no-dir-rename", options);
  Result<Attr> dir = core_->MakeDirectory(kRootInode, "d", 0755);
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(store_->Put("d/file", "x", {}, {}).ok());
  EXPECT_EQ(ErrnoFor(core_->Rename(kRootInode, "d", kRootInode, "e", 0)), EXDEV);
  EXPECT_TRUE(store_->Head("d/file").ok());  // nothing moved
  ASSERT_TRUE(core_->MakeDirectory(kRootInode, "empty", 0700).ok());
  ASSERT_TRUE(core_->Rename(kRootInode, "empty", kRootInode, "moved", 0).ok());
  Result<Attr> moved = core_->Lookup(kRootInode, "moved");
  ASSERT_TRUE(moved.ok());
  EXPECT_TRUE(S_ISDIR(moved->mode));
  EXPECT_EQ(moved->mode & 07777, 0700u);
}

// Stores every name with U+00E9 written as 'e', so that paths of more than 1,024 bytes of
// accented letters fit the local backend's file-name limits (the filesystem's own checks
// see the real names).
class TransliteratingStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  static std::string Map(std::string name) {
    for (size_t at; (at = name.find("\xC3\xA9")) != std::string::npos;) name.replace(at, 2, "e");
    return name;
  }
  Result<ObjectInfo> Head(const std::string& name) override { return inner()->Head(Map(name)); }
  Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                               const Condition& condition) override {
    return inner()->GetRange(Map(name), offset, length, condition);
  }
  Result<std::string> Put(const std::string& name, std::string_view data, const Metadata& metadata,
                          const Condition& condition) override {
    return inner()->Put(Map(name), data, metadata, condition);
  }
  Result<ListPage> List(const ListOptions& options) override {
    ListOptions mapped = options;
    mapped.prefix = Map(options.prefix);
    return inner()->List(mapped);
  }
  Status Delete(const std::string& name, const Condition& condition) override {
    return inner()->Delete(Map(name), condition);
  }
};

// Azure's blob-name limit is 1,024 characters in UTF-16 code units: a path of 1,024
// accented letters (2,000 bytes and more) is fine, one more character is ENAMETOOLONG.
TEST_F(FsCoreTest, PathsLongerThan1024CharactersAreNameTooLongCountedAsAzureCounts) {
  TransliteratingStore transliterating(store_.get());
  core_ = NewCore("long-names", {}, &transliterating);
  std::string component;
  for (int i = 0; i < 100; ++i) component += "\xC3\xA9";  // 100 x U+00E9, 200 bytes
  InodeId parent = kRootInode;
  for (int depth = 0; depth < 10; ++depth) {  // 10 x 100 characters and 9 slashes
    Result<Attr> dir = core_->MakeDirectory(parent, component, 0755);
    ASSERT_TRUE(dir.ok()) << depth << ": " << dir.status();
    parent = dir->inode;
  }
  Result<CreateResult> fits = core_->CreateFile(parent, std::string(14, 'x'), 0644, O_WRONLY);
  ASSERT_TRUE(fits.ok()) << fits.status();  // 1,024 characters
  ASSERT_TRUE(core_->Release(fits->handle).ok());
  EXPECT_EQ(ErrnoFor(core_->CreateFile(parent, std::string(15, 'x'), 0644, O_WRONLY).status()),
            ENAMETOOLONG);
  EXPECT_EQ(ErrnoFor(core_->Lookup(parent, std::string(15, 'x')).status()), ENAMETOOLONG);
  // A character beyond U+FFFF counts two, as in UTF-16.
  EXPECT_EQ(
      ErrnoFor(core_->CreateFile(parent, "\xF0\x9F\x98\x80" + std::string(13, 'x'), 0644, O_WRONLY)
                   .status()),
      ENAMETOOLONG);
  core_.reset();  // before the store it uses
}

TEST_F(FsCoreTest, SymlinkStoredTheBlobFuseWay) {
  Result<Attr> link = core_->Symlink("target/file", kRootInode, "link");
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_TRUE(S_ISLNK(link->mode));
  EXPECT_EQ(*core_->ReadLink(link->inode), "target/file");
  Result<ObjectInfo> object = store_->Head("link");
  ASSERT_TRUE(object.ok());
  EXPECT_EQ(object->metadata.at("is_symlink"), "true");
  EXPECT_EQ(*store_->GetRange("link", 0, -1, {}), "target/file");
  std::unique_ptr<FsCore> other = NewCore("other");
  Result<Attr> seen = other->Lookup(kRootInode, "link");
  ASSERT_TRUE(seen.ok());
  EXPECT_TRUE(S_ISLNK(seen->mode));
}

TEST_F(FsCoreTest, TruncateExtendAndSparseWrite) {
  ASSERT_TRUE(WriteFile(*core_, "t", "0123456789").ok());
  Result<Attr> attr = core_->Lookup(kRootInode, "t");
  ASSERT_TRUE(attr.ok());
  SetAttrRequest shrink;
  shrink.size = 4;
  ASSERT_TRUE(core_->SetAttr(attr->inode, shrink, 0).ok());
  EXPECT_EQ(*store_->GetRange("t", 0, -1, {}), "0123");
  Result<OpenResult> opened = core_->Open(attr->inode, O_WRONLY);
  ASSERT_TRUE(opened.ok());
  ASSERT_TRUE(core_->Write(opened->handle, 8, "xy").ok());
  ASSERT_TRUE(core_->Release(opened->handle).ok());
  EXPECT_EQ(*store_->GetRange("t", 0, -1, {}), std::string("0123\0\0\0\0xy", 10));
}

TEST_F(FsCoreTest, AppendWritesAtTheEnd) {
  ASSERT_TRUE(WriteFile(*core_, "log", "one\n").ok());
  Result<Attr> attr = core_->Lookup(kRootInode, "log");
  Result<OpenResult> opened = core_->Open(attr->inode, O_WRONLY | O_APPEND);
  ASSERT_TRUE(opened.ok());
  ASSERT_TRUE(core_->Write(opened->handle, 0, "two\n").ok());
  ASSERT_TRUE(core_->Release(opened->handle).ok());
  EXPECT_EQ(*ReadFile(*core_, "log"), "one\ntwo\n");
}

TEST_F(FsCoreTest, ChmodAndUtimensAreKeptInMetadata) {
  ASSERT_TRUE(WriteFile(*core_, "m", "data").ok());
  Result<Attr> attr = core_->Lookup(kRootInode, "m");
  SetAttrRequest request;
  request.mode = 0600;
  request.mtime_ms = 1'600'000'000'000;
  ASSERT_TRUE(core_->SetAttr(attr->inode, request, 0).ok());
  std::unique_ptr<FsCore> other = NewCore("other");
  Result<Attr> seen = other->Lookup(kRootInode, "m");
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->mode & 07777, 0600u);
  EXPECT_EQ(seen->mtime_ms, 1'600'000'000'000);
  EXPECT_EQ(*ReadFile(*other, "m"), "data");
}

TEST_F(FsCoreTest, CloseToOpenAcrossTwoMounts) {
  std::unique_ptr<FsCore> other = NewCore("other");
  ASSERT_TRUE(WriteFile(*core_, "shared", "version 1").ok());
  EXPECT_EQ(*ReadFile(*other, "shared"), "version 1");  // now cached on the other mount
  ASSERT_TRUE(WriteFile(*core_, "shared", "version 2, longer").ok());
  Result<Attr> attr = other->Lookup(kRootInode, "shared");
  ASSERT_TRUE(attr.ok());
  Result<OpenResult> opened = other->Open(attr->inode, O_RDONLY);
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(opened->changed);  // the adapter drops the kernel's cached pages and size
  EXPECT_EQ(*other->Read(opened->handle, 0, 100), "version 2, longer");
  ASSERT_TRUE(other->Release(opened->handle).ok());
}

TEST_F(FsCoreTest, ConcurrentWriteElsewhereIsAConflictNotAnOverwrite) {
  std::unique_ptr<FsCore> other = NewCore("other");
  ASSERT_TRUE(WriteFile(*core_, "doc", "base").ok());
  Result<Attr> mine = core_->Lookup(kRootInode, "doc");
  Result<OpenResult> opened = core_->Open(mine->inode, O_WRONLY);
  ASSERT_TRUE(opened.ok());
  ASSERT_TRUE(core_->Write(opened->handle, 0, "mine").ok());
  ASSERT_TRUE(WriteFile(*other, "doc", "theirs").ok());  // written and closed elsewhere
  Status flushed = core_->Flush(opened->handle);
  EXPECT_EQ(ErrnoFor(flushed), EIO) << flushed;
  EXPECT_FALSE(core_->Release(opened->handle).ok());
  EXPECT_EQ(*store_->GetRange("doc", 0, -1, {}), "theirs");
  EXPECT_EQ(*ReadFile(*core_, "doc"), "theirs");  // the refused bytes are not served later
}

TEST_F(FsCoreTest, TwoNewFilesOfOneNameDoNotOverwriteEachOther) {
  std::unique_ptr<FsCore> other = NewCore("other");
  Result<CreateResult> created = core_->CreateFile(kRootInode, "n", 0644, O_WRONLY | O_EXCL);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(ErrnoFor(other->CreateFile(kRootInode, "n", 0644, O_WRONLY | O_EXCL).status()), EEXIST);
  ASSERT_TRUE(core_->Release(created->handle).ok());
}

TEST_F(FsCoreTest, CacheStaysUnderItsCapAndNeverEvictsOpenFiles) {
  FsOptions options;
  options.cache_size_mb = 1;
  std::unique_ptr<FsCore> core = NewCore("small", options);
  std::string chunk(300 << 10, 'x');
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(WriteFile(*core, fmt::format("f{}", i), chunk).ok());
  EXPECT_LE(core->file_cache().used_bytes(), int64_t{1} << 20);
  // A file bigger than the cap, written while it is open, stays cached while open; opened
  // again, it streams instead of taking the cache over its cap.
  std::string big(3 << 20, 'b');
  ASSERT_TRUE(WriteFile(*core, "big", big).ok());
  Result<Attr> attr = core->Lookup(kRootInode, "big");
  Result<OpenResult> opened = core->Open(attr->inode, O_RDONLY);
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(*core->IsStreaming(opened->handle));
  ASSERT_TRUE(WriteFile(*core, "later", chunk).ok());
  EXPECT_EQ(core->Read(opened->handle, 0, 4 << 20)->size(), big.size());
  ASSERT_TRUE(core->Release(opened->handle).ok());
  EXPECT_LE(core->file_cache().used_bytes(), int64_t{1} << 20);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(*ReadFile(*core, fmt::format("f{}", i)), chunk);
}

TEST_F(FsCoreTest, CleanCopiesSurviveARestartDirtyOnesDoNot) {
  ASSERT_TRUE(WriteFile(*core_, "kept", "cached bytes").ok());
  EXPECT_GT(core_->file_cache().used_bytes(), 0);
  core_.reset();
  core_ = NewCore("a");
  EXPECT_EQ(core_->file_cache().used_bytes(), 12);
  EXPECT_EQ(*ReadFile(*core_, "kept"), "cached bytes");
}

TEST_F(FsCoreTest, UnlinkRemovesTheObject) {
  ASSERT_TRUE(WriteFile(*core_, "gone", "x").ok());
  ASSERT_TRUE(core_->Unlink(kRootInode, "gone").ok());
  EXPECT_EQ(store_->Head("gone").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoFor(core_->Unlink(kRootInode, "gone")), ENOENT);
}

TEST_F(FsCoreTest, ReadOnlyRefusesWrites) {
  FsOptions options;
  options.read_only = true;
  std::unique_ptr<FsCore> core = NewCore("ro", options);
  EXPECT_EQ(ErrnoFor(core->CreateFile(kRootInode, "x", 0644, O_WRONLY).status()), EROFS);
  EXPECT_EQ(ErrnoFor(core->MakeDirectory(kRootInode, "d", 0755).status()), EROFS);
}

TEST_F(FsCoreTest, AttrCacheServesLookupsUntilItExpires) {
  base::FakeClock clock;
  FsOptions options;
  options.use_attr_cache = true;
  options.attr_cache_timeout_s = 10;
  options.clock = &clock;
  std::unique_ptr<FsCore> core = NewCore("attr", options);
  ASSERT_TRUE(store_->Put("x", "12", {}, {}).ok());
  EXPECT_EQ(core->Lookup(kRootInode, "x")->size, 2);
  ASSERT_TRUE(store_->Put("x", "12345", {}, {}).ok());
  EXPECT_EQ(core->Lookup(kRootInode, "x")->size, 2);  // cached
  clock.AdvanceMs(11'000);
  EXPECT_EQ(core->Lookup(kRootInode, "x")->size, 5);
  EXPECT_EQ(*ReadFile(*core, "x"), "12345");  // open always revalidates
}

// ---- Requests for metadata ----------------------------------------------------------------

// Forwards to another store and counts every request; `after_list` runs once, after the
// next List has its page (to change the store while a listing is under way).
class RequestCountingStore final : public ObjectStore {
 public:
  explicit RequestCountingStore(ObjectStore* inner) : inner_(inner) {}
  Result<ObjectInfo> Head(const std::string& name) override {
    ++requests;
    return inner_->Head(name);
  }
  Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                               const Condition& condition) override {
    ++requests;
    ++reads;
    return inner_->GetRange(name, offset, length, condition);
  }
  Result<std::string> Put(const std::string& name, std::string_view data, const Metadata& metadata,
                          const Condition& condition) override {
    ++requests;
    ++data_writes;
    return inner_->Put(name, data, metadata, condition);
  }
  Status StageBlock(const std::string& name, const std::string& block_id,
                    std::string_view data) override {
    ++requests;
    ++data_writes;
    return inner_->StageBlock(name, block_id, data);
  }
  Result<std::string> CommitBlocks(const std::string& name,
                                   const std::vector<std::string>& block_ids,
                                   const Metadata& metadata, const Condition& condition) override {
    ++requests;
    ++data_writes;
    return inner_->CommitBlocks(name, block_ids, metadata, condition);
  }
  Result<ListPage> List(const ListOptions& options) override {
    ++requests;
    Result<ListPage> page = inner_->List(options);
    if (std::function<void()> hook = std::exchange(after_list, nullptr)) hook();
    return page;
  }
  Result<std::string> SetMetadata(const std::string& name, const Metadata& metadata,
                                  const Condition& condition) override {
    ++requests;
    ++metadata_updates;
    return inner_->SetMetadata(name, metadata, condition);
  }
  Status Delete(const std::string& name, const Condition& condition) override {
    ++requests;
    return inner_->Delete(name, condition);
  }
  Result<std::string> Copy(const std::string& source, const std::string& destination) override {
    ++requests;
    return inner_->Copy(source, destination);
  }

  std::atomic<int> requests{0};
  std::atomic<int> data_writes{0};       // Put, StageBlock, CommitBlocks
  std::atomic<int> reads{0};             // GetRange
  std::atomic<int> metadata_updates{0};  // SetMetadata
  std::function<void()> after_list;  // not thread-safe: set it while nothing else runs

 private:
  ObjectStore* const inner_;
};

class MetadataRequestTest : public FsCoreTest {
 protected:
  void SetUp() override {
    FsCoreTest::SetUp();
    counting_ = std::make_unique<RequestCountingStore>(store_.get());
  }

  // A core over the counting store with the attribute cache (10 s) on the fake clock.
  std::unique_ptr<FsCore> CachingCore(FsOptions options = {}) {
    options.use_attr_cache = true;
    options.attr_cache_timeout_s = 10;
    options.clock = &clock_;
    return NewCore("counted", options, counting_.get());
  }

  // The requests `action` sent to the store.
  template <typename Action>
  int RequestsFor(Action action) {
    int before = counting_->requests.load();
    action();
    return counting_->requests.load() - before;
  }

  base::FakeClock clock_;
  std::unique_ptr<RequestCountingStore> counting_;
};

TEST_F(MetadataRequestTest, ListedDirectoryAnswersMissingNamesWithoutAStoreRequest) {
  for (const char* name : {"dir/a", "dir/b", "dir/sub/c"}) {
    ASSERT_TRUE(store_->Put(name, "data", {}, {}).ok());
  }
  std::unique_ptr<FsCore> core = CachingCore();
  Result<Attr> dir = core->Lookup(kRootInode, "dir");
  ASSERT_TRUE(dir.ok()) << dir.status();
  ASSERT_TRUE(core->ReadDir(dir->inode).ok());

  EXPECT_EQ(RequestsFor([&] {
              EXPECT_EQ(ErrnoFor(core->Lookup(dir->inode, "missing").status()), ENOENT);
              EXPECT_EQ(core->Lookup(dir->inode, "a")->size, 4);
              EXPECT_TRUE(S_ISDIR(core->Lookup(dir->inode, "sub")->mode));  // only a prefix
            }),
            0);
  // A name another node makes stays unseen for the attribute cache's timeout, then shows.
  ASSERT_TRUE(store_->Put("dir/late", "x", {}, {}).ok());
  EXPECT_EQ(ErrnoFor(core->Lookup(dir->inode, "late").status()), ENOENT);
  clock_.AdvanceMs(10'001);
  int asked = RequestsFor([&] { EXPECT_TRUE(core->Lookup(dir->inode, "late").ok()); });
  EXPECT_GT(asked, 0);
  EXPECT_GT(RequestsFor([&] { (void)core->Lookup(dir->inode, "missing"); }), 0);
}

TEST_F(MetadataRequestTest, NewDirectoryAnswersLookupsAndFollowsThisMountsChanges) {
  std::unique_ptr<FsCore> core = CachingCore();
  Result<Attr> dir = core->MakeDirectory(kRootInode, "fresh", 0755);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(RequestsFor([&] {
              EXPECT_EQ(ErrnoFor(core->Lookup(dir->inode, "f").status()), ENOENT);
              EXPECT_EQ(ErrnoFor(core->Lookup(dir->inode, "d").status()), ENOENT);
            }),
            0);
  // Made here: each name is found afterwards.
  Result<CreateResult> file = core->CreateFile(dir->inode, "f", 0644, O_WRONLY);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE(core->Write(file->handle, 0, "abc").ok());
  ASSERT_TRUE(core->Release(file->handle).ok());
  ASSERT_TRUE(core->MakeDirectory(dir->inode, "d", 0755).ok());
  ASSERT_TRUE(core->Symlink("f", dir->inode, "l").ok());
  EXPECT_EQ(core->Lookup(dir->inode, "f")->size, 3);
  EXPECT_TRUE(S_ISDIR(core->Lookup(dir->inode, "d")->mode));
  EXPECT_TRUE(S_ISLNK(core->Lookup(dir->inode, "l")->mode));
  // The new subdirectory is known empty too.
  Result<Attr> sub = core->Lookup(dir->inode, "d");
  EXPECT_EQ(RequestsFor([&] { (void)core->Lookup(sub->inode, "x"); }), 0);

  // Renamed and removed here: the old names are gone, with no request to say so.
  ASSERT_TRUE(core->Rename(dir->inode, "f", dir->inode, "g", 0).ok());
  ASSERT_TRUE(core->Unlink(dir->inode, "l").ok());
  ASSERT_TRUE(core->RemoveDirectory(dir->inode, "d").ok());
  EXPECT_EQ(RequestsFor([&] {
              EXPECT_EQ(ErrnoFor(core->Lookup(dir->inode, "f").status()), ENOENT);
              EXPECT_EQ(ErrnoFor(core->Lookup(dir->inode, "l").status()), ENOENT);
              EXPECT_EQ(ErrnoFor(core->Lookup(dir->inode, "d").status()), ENOENT);
            }),
            0);
  EXPECT_EQ(core->Lookup(dir->inode, "g")->size, 3);
  EXPECT_EQ(*store_->GetRange("fresh/g", 0, -1, {}), "abc");
  // A name made again after its removal is found again.
  ASSERT_TRUE(core->MakeDirectory(dir->inode, "d", 0700).ok());
  EXPECT_TRUE(S_ISDIR(core->Lookup(dir->inode, "d")->mode));
}

TEST_F(MetadataRequestTest, RenameAcrossDirectoriesUpdatesBothEnds) {
  std::unique_ptr<FsCore> core = CachingCore();
  Result<Attr> from = core->MakeDirectory(kRootInode, "from", 0755);
  Result<Attr> to = core->MakeDirectory(kRootInode, "to", 0755);
  ASSERT_TRUE(from.ok() && to.ok());
  Result<CreateResult> file = core->CreateFile(from->inode, "f", 0644, O_WRONLY);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(core->Release(file->handle).ok());
  ASSERT_TRUE(core->Rename(from->inode, "f", to->inode, "g", 0).ok());
  EXPECT_EQ(ErrnoFor(core->Lookup(from->inode, "f").status()), ENOENT);
  EXPECT_TRUE(core->Lookup(to->inode, "g").ok());
  EXPECT_EQ(ErrnoFor(core->Lookup(to->inode, "f").status()), ENOENT);
}

TEST_F(MetadataRequestTest, WithoutTheAttrCacheEveryLookupAsksTheStore) {
  ASSERT_TRUE(store_->Put("dir/a", "data", {}, {}).ok());
  std::unique_ptr<FsCore> core = NewCore("uncached", {}, counting_.get());
  Result<Attr> dir = core->Lookup(kRootInode, "dir");
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(core->ReadDir(dir->inode).ok());
  EXPECT_GT(RequestsFor(
                [&] { EXPECT_EQ(ErrnoFor(core->Lookup(dir->inode, "missing").status()), ENOENT); }),
            0);
  Result<Attr> made = core->MakeDirectory(kRootInode, "made", 0755);
  ASSERT_TRUE(made.ok());
  EXPECT_GT(RequestsFor([&] { (void)core->Lookup(made->inode, "x"); }), 0);
  // A name made elsewhere is seen at once.
  ASSERT_TRUE(store_->Put("made/x", "x", {}, {}).ok());
  EXPECT_TRUE(core->Lookup(made->inode, "x").ok());
}

TEST_F(MetadataRequestTest, KnowledgeIsBoundedOldestDirectoryFirst) {
  for (const char* name : {"one/a", "one/b", "two/a", "two/b", "big/a", "big/b", "big/c"}) {
    ASSERT_TRUE(store_->Put(name, "", {}, {}).ok());
  }
  FsOptions options;
  options.max_known_names = 3;  // one directory of two names (plus one for itself)
  std::unique_ptr<FsCore> core = CachingCore(options);
  Result<Attr> one = core->Lookup(kRootInode, "one");
  Result<Attr> two = core->Lookup(kRootInode, "two");
  Result<Attr> big = core->Lookup(kRootInode, "big");
  ASSERT_TRUE(one.ok() && two.ok() && big.ok());
  ASSERT_TRUE(core->ReadDir(one->inode).ok());
  EXPECT_EQ(RequestsFor([&] { (void)core->Lookup(one->inode, "x"); }), 0);
  ASSERT_TRUE(core->ReadDir(two->inode).ok());  // pushes "one" out
  EXPECT_EQ(RequestsFor([&] { (void)core->Lookup(two->inode, "x"); }), 0);
  EXPECT_GT(RequestsFor([&] { (void)core->Lookup(one->inode, "x"); }), 0);
  ASSERT_TRUE(core->ReadDir(big->inode).ok());  // too large to keep at all
  EXPECT_GT(RequestsFor([&] { (void)core->Lookup(big->inode, "x"); }), 0);
  EXPECT_EQ(RequestsFor([&] { (void)core->Lookup(two->inode, "y"); }), 0);
}

TEST_F(MetadataRequestTest, ANameMadeHereWhileTheDirectoryIsListedIsNotLost) {
  ASSERT_TRUE(store_->Put("dir/a", "", {}, {}).ok());
  std::unique_ptr<FsCore> core = CachingCore();
  Result<Attr> dir = core->Lookup(kRootInode, "dir");
  ASSERT_TRUE(dir.ok());
  // The listing's page is taken before the directory is made, and the names come after.
  counting_->after_list = [&] { ASSERT_TRUE(core->MakeDirectory(dir->inode, "b", 0755).ok()); };
  Result<std::vector<DirEntry>> listed = core->ReadDir(dir->inode);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_TRUE(core->Lookup(dir->inode, "b").ok());
}

TEST_F(MetadataRequestTest, LookupListedAnswersFromTheListingAndCountsALookup) {
  ASSERT_TRUE(store_->Put("dir/file", "12345", {{"meridian_mode", "600"}}, {}).ok());
  ASSERT_TRUE(store_->Put("dir/implicit/x", "", {}, {}).ok());
  ASSERT_TRUE(store_->Put("dir/link", "file", {{"is_symlink", "true"}}, {}).ok());
  for (bool attr_cache : {false, true}) {
    SCOPED_TRACE(attr_cache ? "with the attribute cache" : "without");
    FsOptions options;
    options.use_attr_cache = attr_cache;
    std::unique_ptr<FsCore> core = NewCore(attr_cache ? "on" : "off", options, counting_.get());
    Result<Attr> dir = core->Lookup(kRootInode, "dir");
    ASSERT_TRUE(dir.ok());
    Result<std::vector<DirEntry>> entries = core->ReadDir(dir->inode);
    ASSERT_TRUE(entries.ok());
    ASSERT_EQ(entries->size(), 3u);
    std::vector<Attr> listed;
    EXPECT_EQ(RequestsFor([&] {
                for (const DirEntry& entry : *entries) {
                  Result<Attr> attr = core->LookupListed(dir->inode, entry);
                  ASSERT_TRUE(attr.ok()) << attr.status();
                  listed.push_back(*attr);
                }
              }),
              0);
    EXPECT_TRUE(S_ISREG(listed[0].mode));  // file
    EXPECT_EQ(listed[0].mode & 07777, 0600u);
    EXPECT_EQ(listed[0].size, 5);
    EXPECT_TRUE(S_ISDIR(listed[1].mode));  // implicit
    EXPECT_TRUE(S_ISLNK(listed[2].mode));  // link
    // The same inode and attributes as a lookup; each counted once, like a lookup.
    Result<Attr> looked_up = core->Lookup(dir->inode, "file");
    ASSERT_TRUE(looked_up.ok());
    EXPECT_EQ(looked_up->inode, listed[0].inode);
    EXPECT_EQ(looked_up->size, 5);
    EXPECT_EQ(looked_up->mtime_ms, listed[0].mtime_ms);
    core->Forget(listed[0].inode, 1);
    EXPECT_TRUE(core->GetAttr(listed[0].inode).ok());
    core->Forget(listed[0].inode, 1);
    EXPECT_EQ(ErrnoFor(core->GetAttr(listed[0].inode).status()), ESTALE);
  }
}

TEST_F(MetadataRequestTest, LookupListedShowsTheSizeOfAFileOpenWithUnsavedBytes) {
  std::unique_ptr<FsCore> core = CachingCore();
  Result<CreateResult> file = core->CreateFile(kRootInode, "open", 0644, O_WRONLY);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(core->Write(file->handle, 0, "unsaved").ok());
  Result<std::vector<DirEntry>> entries = core->ReadDir(kRootInode);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  ASSERT_EQ((*entries)[0].object->size, 0);  // the store has the empty object from create
  Result<Attr> attr = core->LookupListed(kRootInode, (*entries)[0]);
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, 7);
  EXPECT_EQ(attr->inode, file->attr.inode);
  ASSERT_TRUE(core->Release(file->handle).ok());
}

// ---- This mount's own changes -------------------------------------------------------------

// The attribute cache on a fake clock that starts at the real time (the local store stamps
// objects with the real clock), so times from the store and from the core compare.
class OwnChangesTest : public MetadataRequestTest {
 protected:
  void SetUp() override {
    MetadataRequestTest::SetUp();
    clock_.AdvanceMs(base::SystemClock::Get()->NowUnixMs() - clock_.NowUnixMs());
    core_ = CachingCore();
  }
};

TEST_F(OwnChangesTest, SizeAndModeChangesShowAtOnceWithoutAStoreRequest) {
  ASSERT_TRUE(WriteFile(*core_, "f", "hello\n").ok());
  Result<Attr> attr = core_->Lookup(kRootInode, "f");
  ASSERT_TRUE(attr.ok()) << attr.status();
  EXPECT_EQ(attr->size, 6);

  ASSERT_TRUE(WriteFile(*core_, "f", "").ok());  // open with O_TRUNC, close
  EXPECT_EQ(RequestsFor([&] { EXPECT_EQ(core_->GetAttr(attr->inode)->size, 0); }), 0);

  SetAttrRequest grow;
  grow.size = 100;
  Result<Attr> grown = core_->SetAttr(attr->inode, grow, 0);
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ(grown->size, 100);  // the reply to truncate(2) itself
  EXPECT_EQ(RequestsFor([&] { EXPECT_EQ(core_->GetAttr(attr->inode)->size, 100); }), 0);

  SetAttrRequest chmod;
  chmod.mode = 0600;
  Result<Attr> changed = core_->SetAttr(attr->inode, chmod, 0);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->mode & 07777, 0600u);
  EXPECT_EQ(RequestsFor([&] {
              Result<Attr> again = core_->GetAttr(attr->inode);
              EXPECT_EQ(again->mode & 07777, 0600u);
              EXPECT_EQ(again->size, 100);
              EXPECT_EQ(core_->Lookup(kRootInode, "f")->mode & 07777, 0600u);
            }),
            0);
}

TEST_F(OwnChangesTest, ChmodShowsAtOnceAndDoesNotUploadTheData) {
  const std::string data(1 << 20, 'd');
  ASSERT_TRUE(WriteFile(*core_, "big", data).ok());
  ASSERT_EQ(ReadFile(*core_, "big")->size(), data.size());
  Result<Attr> before = core_->Lookup(kRootInode, "big");
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(store_->Put("other", "x", {{"custom", "kept"}}, {}).ok());
  Result<Attr> other = core_->Lookup(kRootInode, "other");
  clock_.AdvanceMs(5'000);

  const int writes = counting_->data_writes, updates = counting_->metadata_updates;
  SetAttrRequest chmod;
  chmod.mode = 0640;
  Result<Attr> changed = core_->SetAttr(before->inode, chmod, 0);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(counting_->data_writes - writes, 0) << "chmod uploaded the data";
  EXPECT_EQ(counting_->metadata_updates - updates, 1);
  EXPECT_EQ(changed->mode & 07777, 0640u);
  EXPECT_EQ(changed->mtime_ms, before->mtime_ms);  // chmod moves ctime, not mtime
  EXPECT_GT(changed->ctime_ms, before->ctime_ms);
  EXPECT_EQ(changed->size, before->size);

  // The cached copy took the new ETag: opening and reading again downloads nothing.
  const int reads = counting_->reads;
  Result<std::string> read = ReadFile(*core_, "big");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == data);
  EXPECT_EQ(counting_->reads - reads, 0) << "the copy was downloaded again after chmod";

  // Set Blob Metadata replaces the whole map: the keys meridian does not own stay.
  ASSERT_TRUE(core_->SetAttr(other->inode, chmod, 0).ok());
  Result<ObjectInfo> stored = store_->Head("other");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->metadata.at("custom"), "kept");
  EXPECT_EQ(stored->metadata.at("meridian_mode"), "640");
  EXPECT_EQ(*store_->GetRange("other", 0, -1, {}), "x");
}

TEST_F(OwnChangesTest, UtimensSetsMtimeByMetadataAlone) {
  ASSERT_TRUE(WriteFile(*core_, "f", "abc").ok());
  Result<Attr> attr = core_->Lookup(kRootInode, "f");
  const int writes = counting_->data_writes;
  SetAttrRequest touch;
  touch.mtime_ms = 1'000'000'000'000;
  Result<Attr> touched = core_->SetAttr(attr->inode, touch, 0);
  ASSERT_TRUE(touched.ok()) << touched.status();
  EXPECT_EQ(touched->mtime_ms, 1'000'000'000'000);
  EXPECT_EQ(counting_->data_writes - writes, 0);
  EXPECT_EQ(core_->GetAttr(attr->inode)->mtime_ms, 1'000'000'000'000);
  // A write moves it again.
  ASSERT_TRUE(WriteFile(*core_, "f", "abcd").ok());
  EXPECT_GT(core_->GetAttr(attr->inode)->mtime_ms, 1'000'000'000'000);
}

TEST_F(OwnChangesTest, ChmodOfAFileWithUnsavedBytesGoesWithItsUpload) {
  Result<CreateResult> file = core_->CreateFile(kRootInode, "f", 0644, O_RDWR);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE(core_->Write(file->handle, 0, "unsaved").ok());
  const int updates = counting_->metadata_updates;
  SetAttrRequest chmod;
  chmod.mode = 0600;
  Result<Attr> changed = core_->SetAttr(file->attr.inode, chmod, file->handle);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->mode & 07777, 0600u);
  EXPECT_EQ(changed->size, 7);
  EXPECT_EQ(counting_->metadata_updates - updates, 0);
  ASSERT_TRUE(core_->Release(file->handle).ok());
  Result<ObjectInfo> stored = store_->Head("f");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->metadata.at("meridian_mode"), "600");
  EXPECT_EQ(stored->size, 7);
  EXPECT_EQ(core_->GetAttr(file->attr.inode)->mode & 07777, 0600u);
}

TEST_F(OwnChangesTest, WritesMoveMtimeAndCtimeWhileOpen) {
  Result<CreateResult> file = core_->CreateFile(kRootInode, "f", 0644, O_RDWR);
  ASSERT_TRUE(file.ok());
  const Attr created = file->attr;
  clock_.AdvanceMs(5'000);
  ASSERT_TRUE(core_->Write(file->handle, 0, "12345").ok());
  Result<Attr> written = core_->GetAttr(created.inode);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(written->size, 5);
  EXPECT_GT(written->mtime_ms, created.mtime_ms);
  EXPECT_GT(written->ctime_ms, created.ctime_ms);
  // A lookup meanwhile (the store still has the empty object) does not undo it.
  EXPECT_EQ(core_->Lookup(kRootInode, "f")->mtime_ms, written->mtime_ms);
  core_->Forget(created.inode, 1);
  ASSERT_TRUE(core_->Release(file->handle).ok());
}

TEST_F(OwnChangesTest, AFileUnlinkedWhileOpenStaysUsableAndLeavesNothingInTheStore) {
  Result<CreateResult> file = core_->CreateFile(kRootInode, "tmp", 0600, O_RDWR | O_EXCL);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE(core_->Unlink(kRootInode, "tmp").ok());
  EXPECT_EQ(ErrnoFor(core_->Lookup(kRootInode, "tmp").status()), ENOENT);
  ASSERT_TRUE(core_->Write(file->handle, 0, "kept while open").ok());
  EXPECT_TRUE(core_->Fsync(file->handle).ok());
  EXPECT_EQ(*core_->Read(file->handle, 0, 100), "kept while open");
  Result<Attr> attr = core_->GetAttr(file->attr.inode);
  ASSERT_TRUE(attr.ok()) << attr.status();
  EXPECT_EQ(attr->size, 15);
  EXPECT_EQ(attr->nlink, 0u);
  SetAttrRequest shrink;
  shrink.size = 4;
  EXPECT_EQ(core_->SetAttr(file->attr.inode, shrink, file->handle)->size, 4);

  // A new file of the same name is another file.
  ASSERT_TRUE(WriteFile(*core_, "tmp", "new").ok());
  EXPECT_EQ(core_->GetAttr(file->attr.inode)->size, 4);
  EXPECT_EQ(*core_->Read(file->handle, 0, 100), "kept");
  ASSERT_TRUE(core_->Release(file->handle).ok());
  EXPECT_EQ(*store_->GetRange("tmp", 0, -1, {}), "new");
  Result<ListPage> listed = store_->List({});
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->objects.size(), 1u);
}

TEST_F(OwnChangesTest, AnOpenFileUnlinkedKeepsItsOldBytesForItsReader) {
  const std::string data(2 << 20, 'o');
  ASSERT_TRUE(WriteFile(*core_, "old", data).ok());
  // Another mount opens it, so its copy is downloaded in the background.
  std::unique_ptr<FsCore> other = NewCore("other", {}, store_.get());
  Result<Attr> attr = other->Lookup(kRootInode, "old");
  ASSERT_TRUE(attr.ok());
  Result<OpenResult> opened = other->Open(attr->inode, O_RDONLY);
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_TRUE(other->Unlink(kRootInode, "old").ok());
  Result<std::string> read = other->Read(opened->handle, 0, data.size());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == data);
  EXPECT_EQ(other->GetAttr(attr->inode)->size, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(other->Release(opened->handle).ok());
  EXPECT_EQ(store_->Head("old").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(OwnChangesTest, AStreamingFileUnlinkedWhileOpenStaysUsableAndIsNeverCommitted) {
  FsOptions options;
  options.block_cache = true;
  options.block_size_bytes = 64 << 10;
  options.block_pool_bytes = 4 << 20;
  std::unique_ptr<FsCore> core = NewCore("stream", options, counting_.get());
  Result<CreateResult> file = core->CreateFile(kRootInode, "tmp", 0600, O_RDWR | O_EXCL);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE(*core->IsStreaming(file->handle));
  ASSERT_TRUE(core->Unlink(kRootInode, "tmp").ok());
  const std::string data(200 << 10, 's');  // several blocks, written in order
  const int writes = counting_->data_writes;
  ASSERT_TRUE(core->Write(file->handle, 0, data).ok());
  EXPECT_TRUE(core->Fsync(file->handle).ok());
  EXPECT_EQ(counting_->data_writes - writes, 0) << "blocks of a removed file were staged";
  Result<std::string> read = core->Read(file->handle, 0, data.size());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == data);
  EXPECT_EQ(core->GetAttr(file->attr.inode)->size, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(core->Release(file->handle).ok());
  EXPECT_EQ(counting_->data_writes - writes, 0);
  EXPECT_EQ(store_->Head("tmp").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(OwnChangesTest, DirectoryTimesMoveWithThisMountsChangesInIt) {
  Result<Attr> dir = core_->MakeDirectory(kRootInode, "d", 0755);
  ASSERT_TRUE(dir.ok()) << dir.status();
  Result<Attr> other_dir = core_->MakeDirectory(kRootInode, "e", 0755);
  int64_t last = core_->GetAttr(dir->inode)->mtime_ms;
  auto moved = [&](InodeId inode) {
    Result<Attr> now = core_->GetAttr(inode);
    EXPECT_TRUE(now.ok()) << now.status();
    bool later = now.ok() && now->mtime_ms > last && now->ctime_ms > last;
    if (now.ok()) last = now->mtime_ms;
    return later;
  };
  clock_.AdvanceMs(2'000);
  Result<CreateResult> file = core_->CreateFile(dir->inode, "x", 0644, O_WRONLY);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE(core_->Release(file->handle).ok());
  EXPECT_TRUE(moved(dir->inode)) << "create";
  clock_.AdvanceMs(2'000);
  ASSERT_TRUE(core_->MakeDirectory(dir->inode, "sub", 0755).ok());
  EXPECT_TRUE(moved(dir->inode)) << "mkdir";
  clock_.AdvanceMs(2'000);
  ASSERT_TRUE(core_->RemoveDirectory(dir->inode, "sub").ok());
  EXPECT_TRUE(moved(dir->inode)) << "rmdir";
  clock_.AdvanceMs(2'000);
  const int64_t before_rename = last;
  ASSERT_TRUE(core_->Rename(dir->inode, "x", other_dir->inode, "y", 0).ok());
  EXPECT_TRUE(moved(dir->inode)) << "rename out";
  EXPECT_GT(core_->GetAttr(other_dir->inode)->mtime_ms, before_rename) << "rename in";
  last = core_->GetAttr(other_dir->inode)->mtime_ms;
  clock_.AdvanceMs(2'000);
  ASSERT_TRUE(core_->Unlink(other_dir->inode, "y").ok());
  EXPECT_TRUE(moved(other_dir->inode)) << "unlink";
  clock_.AdvanceMs(2'000);
  const int64_t root_before = core_->GetAttr(kRootInode)->mtime_ms;
  ASSERT_TRUE(core_->Symlink("d", kRootInode, "link").ok());
  EXPECT_GT(core_->GetAttr(kRootInode)->mtime_ms, root_before) << "symlink in the root";
}

}  // namespace
}  // namespace meridian::storage::fs
