// KnownDirectories: the negative side of the attribute cache (fs_core.h, Consistency).
//
// The kernel looks up every name before it creates it, and a lookup of a missing name costs
// a Head and a List. So the names of a directory this mount listed to the end or made at
// time T are kept until T + timeout_ms: until then a lookup of any other name there is known
// absent with no request. This mount's own creates, removes and renames keep the names true
// (NoteChildAdded, NoteChildRemoved); a listing during which this mount changed the
// directory may have missed the change, so EndListing says not to remember it.
//
// Limits: at most max_known_names names (plus one per directory) are kept, about 100 bytes
// each; expired knowledge goes first, then the oldest, and a directory with more names than
// that is not kept at all (its lookups ask the store).
//
// Paths are as in fs_paths.h. Times are the caller's clock in Unix ms, passed in.
// Thread safety: none; the owner (FsCore) calls it under its mu_.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace meridian::storage::fs {

class KnownDirectories {
 public:
  KnownDirectories(int64_t max_known_names, int64_t timeout_ms)
      : max_known_names_(max_known_names), timeout_ms_(timeout_ms) {}

  // This mount has just made `path` (not the root) in the store.
  void NoteChildAdded(const std::string& path, int64_t now_ms);
  // This mount has just removed `path` (not the root): gone from its parent's names, and
  // when it was a directory, its own names are forgotten.
  void NoteChildRemoved(const std::string& path);
  // `path` (not the root) exists in the store: its parent's known names include it.
  void KnowChild(const std::string& path, int64_t now_ms);
  // Whether `path` is absent according to its parent's known names (false: ask the store).
  // Forgets the parent's names when they have expired.
  bool KnownAbsent(const std::string& path, int64_t now_ms);
  // Whether `path` is known, unexpired, to have at least one child.
  bool HasChildren(const std::string& path, int64_t now_ms) const;

  // The names of `path`'s children as the store had them at `known_since_ms`; replaces what
  // was known. Not kept when there are more than max_known_names.
  void Remember(const std::string& path, std::unordered_set<std::string> names,
                int64_t known_since_ms, int64_t now_ms);
  void Forget(const std::string& path);
  // Forgets every directory whose path starts with `prefix` ("a/" for those below "a").
  void ForgetBelow(const std::string& prefix);

  // A listing of `path` runs from BeginListing to EndListing; EndListing returns whether
  // its names may be remembered (this mount changed none of the directory's names meanwhile).
  void BeginListing(const std::string& path);
  bool EndListing(const std::string& path);

  // Names kept, plus one per directory (tests).
  int64_t known_names() const { return known_names_; }
  bool Knows(const std::string& path) const { return directories_.contains(path); }

 private:
  struct Directory {
    int64_t expires_ms = 0;  // known since + timeout_ms
    std::unordered_set<std::string> names;
    std::list<std::string>::iterator age;  // its place in by_age_
  };
  struct ListingInProgress {
    int listings = 0;
    bool changed = false;
  };

  void MarkListingChanged(const std::string& directory);
  // Drops expired knowledge, then the oldest, until at most max_known_names are kept.
  void Trim(int64_t now_ms);

  const int64_t max_known_names_;
  const int64_t timeout_ms_;
  std::unordered_map<std::string, Directory> directories_;  // by directory path
  std::list<std::string> by_age_;                           // paths in directories_, oldest first
  int64_t known_names_ = 0;  // names in directories_, plus one per directory
  std::unordered_map<std::string, ListingInProgress> listings_in_progress_;
};

}  // namespace meridian::storage::fs
