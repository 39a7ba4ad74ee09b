#include "storage/fs/known_directories.h"

#include <iterator>
#include <utility>
#include <vector>

#include "storage/fs/fs_paths.h"

namespace meridian::storage::fs {

void KnownDirectories::MarkListingChanged(const std::string& directory) {
  if (auto listing = listings_in_progress_.find(directory);
      listing != listings_in_progress_.end()) {
    listing->second.changed = true;
  }
}

void KnownDirectories::NoteChildAdded(const std::string& path, int64_t now_ms) {
  MarkListingChanged(SplitPath(path).first);
  KnowChild(path, now_ms);
}

void KnownDirectories::NoteChildRemoved(const std::string& path) {
  auto [parent, name] = SplitPath(path);
  MarkListingChanged(parent);
  Forget(path);  // when it was a directory, it is gone
  auto it = directories_.find(parent);
  if (it != directories_.end() && it->second.names.erase(name) > 0) --known_names_;
}

void KnownDirectories::KnowChild(const std::string& path, int64_t now_ms) {
  auto [parent, name] = SplitPath(path);
  auto it = directories_.find(parent);
  if (it == directories_.end() || !it->second.names.insert(std::move(name)).second) return;
  ++known_names_;
  Trim(now_ms);
}

bool KnownDirectories::KnownAbsent(const std::string& path, int64_t now_ms) {
  auto [parent, name] = SplitPath(path);
  auto it = directories_.find(parent);
  if (it == directories_.end()) return false;
  if (it->second.expires_ms <= now_ms) {
    Forget(parent);
    return false;
  }
  return !it->second.names.contains(name);
}

bool KnownDirectories::HasChildren(const std::string& path, int64_t now_ms) const {
  auto it = directories_.find(path);
  return it != directories_.end() && it->second.expires_ms > now_ms && !it->second.names.empty();
}

void KnownDirectories::Remember(const std::string& path, std::unordered_set<std::string> names,
                                int64_t known_since_ms, int64_t now_ms) {
  Forget(path);
  const int64_t cost = static_cast<int64_t>(names.size()) + 1;
  if (cost > max_known_names_) return;  // too large to keep: its lookups ask the store
  by_age_.push_back(path);
  Directory& known = directories_[path];
  known.expires_ms = known_since_ms + timeout_ms_;
  known.names = std::move(names);
  known.age = std::prev(by_age_.end());
  known_names_ += cost;
  Trim(now_ms);
}

void KnownDirectories::Forget(const std::string& path) {
  auto it = directories_.find(path);
  if (it == directories_.end()) return;
  known_names_ -= static_cast<int64_t>(it->second.names.size()) + 1;
  by_age_.erase(it->second.age);
  directories_.erase(it);
}

void KnownDirectories::ForgetBelow(const std::string& prefix) {
  std::vector<std::string> below;
  for (const auto& [path, directory] : directories_) {
    if (path.starts_with(prefix)) below.push_back(path);
  }
  for (const std::string& path : below) Forget(path);
}

void KnownDirectories::Trim(int64_t now_ms) {
  while (!by_age_.empty()) {
    std::string oldest = by_age_.front();  // a copy: forgetting frees the list's string
    if (known_names_ <= max_known_names_ && directories_.at(oldest).expires_ms > now_ms) return;
    Forget(oldest);
  }
}

void KnownDirectories::BeginListing(const std::string& path) {
  ++listings_in_progress_[path].listings;
}

bool KnownDirectories::EndListing(const std::string& path) {
  auto listing = listings_in_progress_.find(path);
  const bool changed = listing->second.changed;
  if (--listing->second.listings == 0) listings_in_progress_.erase(listing);
  return !changed;
}

}  // namespace meridian::storage::fs
