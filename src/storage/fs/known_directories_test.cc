// KnownDirectories: what a listing or mkdir makes known absent, how this mount's own changes
// keep it true, that a listing raced by a change is not remembered, and its limits (expiry,
// the oldest going first, a directory too large never kept).
#include "storage/fs/known_directories.h"

#include <gtest/gtest.h>

namespace meridian::storage::fs {
namespace {

constexpr int64_t kTimeoutMs = 1000;

TEST(KnownDirectoriesTest, AListedDirectoryAnswersForNamesItDoesNotHave) {
  KnownDirectories known(100, kTimeoutMs);
  EXPECT_FALSE(known.KnownAbsent("d/missing", 0)) << "nothing known yet: ask the store";
  known.Remember("d", {"a", "b"}, /*known_since_ms=*/0, /*now_ms=*/0);
  EXPECT_TRUE(known.KnownAbsent("d/missing", 10));
  EXPECT_FALSE(known.KnownAbsent("d/a", 10));
  EXPECT_FALSE(known.KnownAbsent("other/missing", 10)) << "another directory is not known";
  EXPECT_TRUE(known.HasChildren("d", 10));
  EXPECT_EQ(known.known_names(), 3);
}

TEST(KnownDirectoriesTest, TheRootIsADirectoryLikeAnyOther) {
  KnownDirectories known(100, kTimeoutMs);
  known.Remember("", {"top"}, 0, 0);
  EXPECT_TRUE(known.KnownAbsent("missing", 1));
  EXPECT_FALSE(known.KnownAbsent("top", 1));
}

TEST(KnownDirectoriesTest, KnowledgeExpiresAtTheTimeoutAfterItWasTrue) {
  KnownDirectories known(100, kTimeoutMs);
  known.Remember("d", {}, /*known_since_ms=*/500, /*now_ms=*/600);
  EXPECT_TRUE(known.KnownAbsent("d/x", 500 + kTimeoutMs - 1));
  EXPECT_FALSE(known.HasChildren("d", 0)) << "an empty directory has no children";
  EXPECT_FALSE(known.KnownAbsent("d/x", 500 + kTimeoutMs));
  EXPECT_FALSE(known.Knows("d")) << "expired knowledge is dropped when it is asked";
  EXPECT_EQ(known.known_names(), 0);
}

TEST(KnownDirectoriesTest, ThisMountsOwnChangesKeepTheNamesTrue) {
  KnownDirectories known(100, kTimeoutMs);
  known.Remember("d", {"a"}, 0, 0);
  known.Remember("d/a", {"x"}, 0, 0);
  known.NoteChildAdded("d/new", 1);
  EXPECT_FALSE(known.KnownAbsent("d/new", 2));
  known.NoteChildRemoved("d/a");
  EXPECT_TRUE(known.KnownAbsent("d/a", 2));
  EXPECT_FALSE(known.Knows("d/a")) << "a removed directory's own names are forgotten";
  EXPECT_EQ(known.known_names(), 2);  // "new", plus one for "d"
  known.KnowChild("unknown/child", 2);
  EXPECT_FALSE(known.Knows("unknown")) << "a child of an unknown directory teaches nothing";
}

TEST(KnownDirectoriesTest, AListingDuringWhichThisMountChangedTheDirectoryIsNotRemembered) {
  KnownDirectories known(100, kTimeoutMs);
  known.BeginListing("d");
  EXPECT_TRUE(known.EndListing("d")) << "nothing changed: the listing may be remembered";
  known.BeginListing("d");
  known.BeginListing("d");
  known.NoteChildAdded("d/new", 0);
  EXPECT_FALSE(known.EndListing("d"));
  EXPECT_FALSE(known.EndListing("d")) << "both listings overlapped the change";
  known.BeginListing("d");
  known.NoteChildRemoved("elsewhere/x");
  EXPECT_TRUE(known.EndListing("d")) << "a change in another directory does not matter";
}

TEST(KnownDirectoriesTest, TheOldestGoesFirstAndATooLargeDirectoryIsNeverKept) {
  KnownDirectories known(/*max_known_names=*/5, kTimeoutMs);
  known.Remember("old", {"a"}, 0, 0);  // 2
  known.Remember("new", {"b"}, 1, 1);  // 4
  known.Remember("big", {"1", "2", "3", "4", "5"}, 2, 2);
  EXPECT_FALSE(known.Knows("big")) << "6 names cannot fit in 5";
  EXPECT_TRUE(known.Knows("old"));
  known.Remember("third", {"c", "d"}, 3, 3);  // 7 > 5: "old" goes
  EXPECT_FALSE(known.Knows("old"));
  EXPECT_TRUE(known.Knows("new"));
  EXPECT_TRUE(known.Knows("third"));
  EXPECT_EQ(known.known_names(), 5);
}

TEST(KnownDirectoriesTest, ForgetBelowDropsADirectoryTreeOnly) {
  KnownDirectories known(100, kTimeoutMs);
  for (const char* path : {"a", "a/b", "a/b/c", "ab"}) known.Remember(path, {"x"}, 0, 0);
  known.ForgetBelow("a/");
  EXPECT_TRUE(known.Knows("a"));
  EXPECT_FALSE(known.Knows("a/b"));
  EXPECT_FALSE(known.Knows("a/b/c"));
  EXPECT_TRUE(known.Knows("ab"));
  EXPECT_EQ(known.known_names(), 4);
}

}  // namespace
}  // namespace meridian::storage::fs
