// InodeTable: an inode lives while the kernel holds lookups or a handle is open, a path
// leads to one inode, a detached inode lives on until unused, numbers are never reused, and
// renames keep the numbers of what moved.
#include "storage/fs/inode_table.h"

#include <gtest/gtest.h>

namespace meridian::storage::fs {
namespace {

TEST(InodeTableTest, TheRootIsThereFromTheStartAndIsNeverForgotten) {
  InodeTable table;
  Inode* root = table.Find(kRootInode);
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->kind, FileKind::kDirectory);
  EXPECT_EQ(table.AtPath(""), root);
  table.Forget(kRootInode, 100);
  table.FreeIfUnused(kRootInode);
  EXPECT_EQ(table.Find(kRootInode), root);
  EXPECT_EQ(table.Detach(""), nullptr) << "no path can be taken from the root";
}

TEST(InodeTableTest, AnInodeLivesWhileLookedUpOrOpen) {
  InodeTable table;
  Inode& file = table.Remember("a", FileKind::kFile);
  const InodeId id = file.id;
  EXPECT_NE(id, kRootInode);
  EXPECT_EQ(&table.Remember("a", FileKind::kFile), &file) << "one path, one inode";
  file.nlookup = 2;
  file.open_handles = 1;
  table.Forget(id, 5);  // more than it has: all of them
  ASSERT_NE(table.Find(id), nullptr) << "still open";
  EXPECT_EQ(table.Find(id)->nlookup, 0u);
  table.Find(id)->open_handles = 0;
  table.FreeIfUnused(id);
  EXPECT_EQ(table.Find(id), nullptr);
  EXPECT_EQ(table.AtPath("a"), nullptr);
  EXPECT_NE(table.Remember("a", FileKind::kFile).id, id) << "numbers are never reused";
}

TEST(InodeTableTest, AnotherKindAtAPathGetsANewInodeAndTheOldOneIsDetached) {
  InodeTable table;
  Inode& file = table.Remember("x", FileKind::kFile);
  file.nlookup = 1;
  const InodeId old_id = file.id;
  Inode& directory = table.Remember("x", FileKind::kDirectory);
  EXPECT_NE(directory.id, old_id);
  EXPECT_EQ(table.AtPath("x"), &directory);
  ASSERT_NE(table.Find(old_id), nullptr) << "the kernel still holds the old one";
  table.Forget(old_id, 1);
  EXPECT_EQ(table.Find(old_id), nullptr);
  EXPECT_EQ(table.AtPath("x"), &directory) << "freeing the old inode leaves the new path";
}

TEST(InodeTableTest, ADetachedInodeIsFreedOnlyWhenUnused) {
  InodeTable table;
  Inode& file = table.Remember("f", FileKind::kFile);
  file.open_handles = 1;
  const InodeId id = file.id;
  Inode* detached = table.Detach("f");
  ASSERT_EQ(detached, &file);
  EXPECT_EQ(table.AtPath("f"), nullptr);
  table.FreeIfUnused(id);
  ASSERT_NE(table.Find(id), nullptr) << "open: it lives on without a path";
  Inode& replacement = table.Remember("f", FileKind::kFile);
  EXPECT_NE(replacement.id, id);
  table.Find(id)->open_handles = 0;
  table.FreeIfUnused(id);
  EXPECT_EQ(table.Find(id), nullptr);
  EXPECT_EQ(table.AtPath("f"), &replacement) << "the new file at the name is untouched";
  EXPECT_EQ(table.Detach("missing"), nullptr);
}

TEST(InodeTableTest, RenamesKeepTheNumbersOfWhatMoved) {
  InodeTable table;
  Inode& file = table.Remember("a", FileKind::kFile);
  Inode* moved = table.Move("a", "b");
  ASSERT_EQ(moved, &file);
  EXPECT_EQ(file.path, "b");
  EXPECT_EQ(table.AtPath("b"), &file);
  EXPECT_EQ(table.AtPath("a"), nullptr);
  EXPECT_EQ(table.Move("nothing", "c"), nullptr);
}

TEST(InodeTableTest, ADirectoryRenameMovesItsTreeAndDetachesWhatItReplaced) {
  InodeTable table;
  Inode& child = table.Remember("d/sub/f", FileKind::kFile);
  child.nlookup = 1;
  Inode& replaced_held = table.Remember("e/old", FileKind::kFile);
  replaced_held.nlookup = 1;
  const InodeId held = replaced_held.id;
  const InodeId unused = table.Remember("e/unused", FileKind::kFile).id;
  Inode& sibling = table.Remember("dd", FileKind::kFile);
  table.MoveBelow("d", "e");
  EXPECT_EQ(child.path, "e/sub/f");
  EXPECT_EQ(table.AtPath("e/sub/f"), &child);
  EXPECT_EQ(table.AtPath("d/sub/f"), nullptr);
  EXPECT_EQ(table.AtPath("e/old"), nullptr);
  ASSERT_NE(table.Find(held), nullptr) << "still looked up: detached, not freed";
  EXPECT_EQ(table.Find(unused), nullptr);
  EXPECT_EQ(table.AtPath("dd"), &sibling) << "a name that only starts the same is not below";
}

}  // namespace
}  // namespace meridian::storage::fs
