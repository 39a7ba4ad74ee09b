// Renaming non-empty directories in the filesystem core over the local backend: server-side
// copies only, markers kept, the object limit, open files following the move, and an
// interrupted rename finished by the next core without a file ever under neither name.
#include "storage/fs/directory_rename.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "base/files.h"
#include "fmt/format.h"
#include "storage/fs/fs_core.h"
#include "storage/fs/fs_errors.h"
#include "storage/fs/rename_test_stores.h"
#include "storage/local_store.h"

namespace meridian::storage::fs {
namespace {

const Metadata kFolder{{"hdi_isfolder", "true"}};

class DirectoryRenameTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    root_ = fmt::format("{}/dir-rename-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp");
    ASSERT_NE(::mkdtemp(root_.data()), nullptr);
    Result<std::unique_ptr<LocalStore>> store =
        LocalStore::Open(root_ + "/store", {nullptr, false});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    log_ = std::make_unique<RequestLogStore>(store_.get());
  }
  void TearDown() override { EXPECT_TRUE(base::RemoveAll(root_).ok()); }

  std::unique_ptr<FsCore> NewCore(ObjectStore* store, FsOptions options = {}) {
    options.cache_dir = fmt::format("{}/cache-{}", root_, ++cores_);
    options.use_attr_cache = true;
    options.free_disk_floor_bytes = 0;
    Result<std::unique_ptr<FsCore>> core = FsCore::Create(store, options);
    EXPECT_TRUE(core.ok()) << core.status();
    return core.ok() ? std::move(*core) : nullptr;
  }

  // The inode of `path` ("a/b"), looked up name by name.
  static Result<InodeId> Resolve(FsCore& core, const std::string& path) {
    InodeId inode = kRootInode;
    size_t start = 0;
    while (start < path.size()) {
      size_t slash = path.find('/', start);
      if (slash == std::string::npos) slash = path.size();
      ASSIGN_OR_RETURN(Attr attr, core.Lookup(inode, path.substr(start, slash - start)));
      inode = attr.inode;
      start = slash + 1;
    }
    return inode;
  }

  // rename(2) of `from` to `to`, both paths from the root.
  static Status RenamePath(FsCore& core, const std::string& from, const std::string& to) {
    auto split = [](const std::string& path) {
      size_t slash = path.rfind('/');
      return slash == std::string::npos ? std::pair<std::string, std::string>{"", path}
                                        : std::pair<std::string, std::string>{
                                              path.substr(0, slash), path.substr(slash + 1)};
    };
    auto [from_parent, from_name] = split(from);
    auto [to_parent, to_name] = split(to);
    ASSIGN_OR_RETURN(InodeId from_inode, Resolve(core, from_parent));
    ASSIGN_OR_RETURN(InodeId to_inode, Resolve(core, to_parent));
    return core.Rename(from_inode, from_name, to_inode, to_name, 0);
  }

  static Result<std::string> ReadPath(FsCore& core, const std::string& path) {
    ASSIGN_OR_RETURN(InodeId inode, Resolve(core, path));
    ASSIGN_OR_RETURN(OpenResult opened, core.Open(inode, O_RDONLY));
    Result<std::string> data = core.Read(opened.handle, 0, 1 << 20);
    RETURN_IF_ERROR(core.Release(opened.handle));
    return data;
  }

  bool Stored(const std::string& name) { return store_->Head(name).ok(); }

  // A tree with markers (`dir`, `dir/sub`) and without (`dir/bare`).
  void MakeTree(const std::string& dir) {
    ASSERT_TRUE(store_->Put(dir, "", kFolder, {}).ok());
    ASSERT_TRUE(store_->Put(dir + "/a", "alpha", {}, {}).ok());
    ASSERT_TRUE(store_->Put(dir + "/sub", "", kFolder, {}).ok());
    ASSERT_TRUE(store_->Put(dir + "/sub/b", "beta", {}, {}).ok());
    ASSERT_TRUE(store_->Put(dir + "/bare/c", "gamma", {}, {}).ok());
  }
  const std::vector<std::string> kTreeFiles = {"a", "sub/b", "bare/c"};

  std::string root_;
  std::unique_ptr<LocalStore> store_;
  std::unique_ptr<RequestLogStore> log_;
  int cores_ = 0;
};

TEST_F(DirectoryRenameTest, NestedDirectoryMovesWithServerSideCopiesAndKeepsItsMarkers) {
  MakeTree("dir");
  std::unique_ptr<FsCore> core = NewCore(log_.get());
  ASSERT_TRUE(Resolve(*core, "dir/sub/b").ok());  // inodes the kernel would hold
  Result<InodeId> child = Resolve(*core, "dir/a");
  ASSERT_TRUE(child.ok());
  log_->Reset();
  ASSERT_TRUE(RenamePath(*core, "dir", "moved").ok());

  EXPECT_EQ(log_->copies.load(), 5);  // two markers, three files
  EXPECT_EQ(log_->data_reads.load(), 0);
  EXPECT_EQ(log_->staged_blocks.load(), 0);
  for (const std::string& name : log_->put_names()) EXPECT_TRUE(IsRenameJournalPath(name)) << name;
  for (const std::string& name : kTreeFiles) {
    EXPECT_TRUE(Stored("moved/" + name)) << name;
    EXPECT_FALSE(Stored("dir/" + name)) << name;
  }
  EXPECT_TRUE(Stored("moved"));  // the marker came along ...
  EXPECT_TRUE(Stored("moved/sub"));
  EXPECT_FALSE(Stored("moved/bare"));  // ... and none was made where there was none
  EXPECT_FALSE(Stored("dir"));
  EXPECT_EQ(store_->List({".meridian-renames/", "", "", 10})->objects.size(), 0u);

  EXPECT_EQ(ErrnoFor(core->Lookup(kRootInode, "dir").status()), ENOENT);
  EXPECT_EQ(*ReadPath(*core, "moved/sub/b"), "beta");
  Result<Attr> held = core->GetAttr(*child);  // the held inode now names moved/a
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->size, 5);
  Result<std::vector<DirEntry>> listed = core->ReadDir(*Resolve(*core, "moved"));
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 3u);
}

TEST_F(DirectoryRenameTest, PrefixOnlyDirectoryRenamesAndItsEmptiedParentGetsAMarker) {
  ASSERT_TRUE(store_->Put("data/train/x", "x", {}, {}).ok());
  ASSERT_TRUE(store_->Put("data/train/y/z", "z", {}, {}).ok());
  std::unique_ptr<FsCore> core = NewCore(store_.get());
  ASSERT_TRUE(RenamePath(*core, "data/train", "train2").ok());
  EXPECT_TRUE(Stored("train2/x"));
  EXPECT_TRUE(Stored("train2/y/z"));
  EXPECT_FALSE(Stored("train2"));  // the source had no marker
  // `data` was only a prefix and lost its last child: it stays, as a marker.
  Result<ObjectInfo> marker = store_->Head("data");
  ASSERT_TRUE(marker.ok());
  EXPECT_EQ(marker->metadata.at("hdi_isfolder"), "true");
  ASSERT_TRUE(core->RemoveDirectory(kRootInode, "data").ok());
  EXPECT_FALSE(Stored("data"));
}

TEST_F(DirectoryRenameTest, LastChildUnlinkedFromPrefixOnlyDirectoryLeavesAMarker) {
  ASSERT_TRUE(store_->Put("d/one", "1", {}, {}).ok());
  ASSERT_TRUE(store_->Put("d/two", "2", {}, {}).ok());
  ASSERT_TRUE(store_->Put("d/e/three", "3", {}, {}).ok());
  std::unique_ptr<FsCore> core = NewCore(store_.get());
  Result<InodeId> d = Resolve(*core, "d");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(core->ReadDir(*d).ok());  // as `rm -r` would
  Result<InodeId> e = Resolve(*core, "d/e");
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(core->Unlink(*e, "three").ok());
  EXPECT_TRUE(Stored("d/e"));  // e kept
  ASSERT_TRUE(core->Unlink(*d, "one").ok());
  EXPECT_FALSE(Stored("d"));  // d still has children
  ASSERT_TRUE(core->Unlink(*d, "two").ok());
  ASSERT_TRUE(core->RemoveDirectory(*d, "e").ok());
  EXPECT_TRUE(Stored("d"));
  ASSERT_TRUE(core->RemoveDirectory(kRootInode, "d").ok());
  EXPECT_FALSE(Stored("d"));
  EXPECT_EQ(ErrnoFor(core->Lookup(kRootInode, "d").status()), ENOENT);
}

TEST_F(DirectoryRenameTest, MoreObjectsThanTheLimitIsExdevAndMovesNothing) {
  MakeTree("dir");
  FsOptions options;
  options.max_dir_rename_objects = 4;  // the tree has 5
  std::unique_ptr<FsCore> core = NewCore(log_.get(), options);
  log_->Reset();
  EXPECT_EQ(ErrnoFor(RenamePath(*core, "dir", "moved")), EXDEV);
  EXPECT_EQ(log_->copies.load(), 0);
  EXPECT_TRUE(log_->put_names().empty());
  for (const std::string& name : kTreeFiles) EXPECT_TRUE(Stored("dir/" + name)) << name;
  options.max_dir_rename_objects = 5;
  std::unique_ptr<FsCore> roomier = NewCore(store_.get(), options);
  EXPECT_TRUE(RenamePath(*roomier, "dir", "moved").ok());
}

TEST_F(DirectoryRenameTest, FileOpenForWritingFollowsItsDirectory) {
  MakeTree("dir");
  std::unique_ptr<FsCore> core = NewCore(store_.get());
  Result<InodeId> a = Resolve(*core, "dir/a");
  ASSERT_TRUE(a.ok());
  Result<OpenResult> opened = core->Open(*a, O_RDWR);
  ASSERT_TRUE(opened.ok());
  ASSERT_TRUE(core->Write(opened->handle, 5, "-one").ok());
  ASSERT_TRUE(RenamePath(*core, "dir", "moved").ok());
  ASSERT_TRUE(core->Write(opened->handle, 9, "-two").ok());  // after the move
  ASSERT_TRUE(core->Release(opened->handle).ok());
  EXPECT_EQ(*store_->GetRange("moved/a", 0, -1, {}), "alpha-one-two");
  EXPECT_FALSE(Stored("dir/a"));
}

TEST_F(DirectoryRenameTest, FileOpenInStreamingModeFollowsItsDirectory) {
  MakeTree("dir");
  FsOptions options;
  options.block_cache = true;
  options.block_size_bytes = 64 << 10;
  options.block_pool_bytes = 8 * options.block_size_bytes;
  std::unique_ptr<FsCore> core = NewCore(store_.get(), options);
  Result<InodeId> a = Resolve(*core, "dir/a");
  ASSERT_TRUE(a.ok());
  Result<OpenResult> opened = core->Open(*a, O_RDWR);
  ASSERT_TRUE(opened.ok());
  ASSERT_TRUE(*core->IsStreaming(opened->handle));
  ASSERT_TRUE(core->Write(opened->handle, 5, "-one").ok());
  ASSERT_TRUE(RenamePath(*core, "dir", "moved").ok());
  ASSERT_TRUE(core->Write(opened->handle, 9, "-two").ok());
  ASSERT_TRUE(core->Release(opened->handle).ok());
  EXPECT_EQ(*store_->GetRange("moved/a", 0, -1, {}), "alpha-one-two");
  EXPECT_FALSE(Stored("dir/a"));
}

TEST_F(DirectoryRenameTest, MovingADirectoryIntoItselfIsRefused) {
  MakeTree("dir");
  std::unique_ptr<FsCore> core = NewCore(store_.get());
  EXPECT_EQ(ErrnoFor(RenamePath(*core, "dir", "dir/sub/inside")), EINVAL);
  EXPECT_TRUE(Stored("dir/a"));
}

// The mount stops after each number of copies and deletes in turn. Every file is then in the
// store under one name or both (what a lookup on another node would find); the next core on
// the store finishes the rename when it starts.
TEST_F(DirectoryRenameTest, InterruptedRenameNeverHidesAFileAndTheNextMountFinishesIt) {
  constexpr int kSteps = 11;  // 5 copies, 5 deletes and the journal's delete
  for (int stop_after = 0; stop_after <= kSteps; ++stop_after) {
    SCOPED_TRACE(fmt::format("stopped after {} copies and deletes", stop_after));
    const std::string from = fmt::format("run{}/dir", stop_after);
    const std::string to = fmt::format("run{}/moved", stop_after);
    MakeTree(from);
    StopAfterChangesStore stopping(store_.get(), stop_after);
    {
      std::unique_ptr<FsCore> dying = NewCore(&stopping);
      Status renamed = RenamePath(*dying, from, to);
      EXPECT_EQ(renamed.ok(), stop_after >= kSteps) << renamed;
      if (!renamed.ok()) {
        EXPECT_EQ(ErrnoFor(renamed), EIO);
      }
    }
    for (const std::string& name : kTreeFiles) {
      bool old_name = Stored(from + "/" + name);
      bool new_name = Stored(to + "/" + name);
      EXPECT_TRUE(old_name || new_name) << name;
      if (!stopping.stopped()) {
        EXPECT_FALSE(old_name) << name;
      }
    }
    std::unique_ptr<FsCore> restarted = NewCore(store_.get());
    for (const std::string& name : kTreeFiles) {
      EXPECT_FALSE(Stored(from + "/" + name)) << name;
      Result<std::string> data = ReadPath(*restarted, to + "/" + name);
      EXPECT_TRUE(data.ok()) << name << ": " << data.status();
    }
    EXPECT_TRUE(Stored(to));
    EXPECT_FALSE(Stored(from));
    EXPECT_EQ(store_->List({".meridian-renames/", "", "", 10})->objects.size(), 0u);
  }
}

}  // namespace
}  // namespace meridian::storage::fs
