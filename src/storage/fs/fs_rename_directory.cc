// FsCore's side of renaming a non-empty directory (the store side is directory_rename.h):
// local copies, open files and inodes follow the move; and markers written so that a
// directory this mount has shown does not vanish with its last child.
#include <cerrno>
#include <map>
#include <mutex>
#include <vector>

#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "storage/fs/directory_rename.h"
#include "storage/fs/fs_core.h"
#include "storage/fs/fs_core_internal.h"

namespace meridian::storage::fs {

Status FsCore::MoveNonEmptyDirectory(const std::string& from, const std::string& to) {
  const std::string from_prefix = from + "/";
  if (to.starts_with(from_prefix)) {
    return FsError(EINVAL, fmt::format("cannot move '{}' into itself ('{}')", from, to));
  }
  if (options_.max_dir_rename_objects <= 0) {
    return FsError(EXDEV, fmt::format("renaming the non-empty directory '{}' is turned off "
                                      "(--max-dir-rename-objects=0)",
                                      from));
  }
  std::lock_guard rename_lock(directory_rename_mu_);
  // Every local copy below `from` is held (in name order) until it follows the move, and
  // unsaved bytes go up first so that the server-side copies carry them.
  std::vector<std::shared_ptr<CachedFile>> copies = cache_->CopiesUnder(from_prefix);
  std::vector<std::unique_lock<std::mutex>> copy_locks;
  copy_locks.reserve(copies.size());
  for (const std::shared_ptr<CachedFile>& copy : copies) {
    copy_locks.emplace_back(copy->mu);
    RETURN_IF_ERROR(cache_->FinishDownload(*copy));
    RETURN_IF_ERROR(cache_->Upload(*copy));
  }
  std::map<std::string, std::shared_ptr<StreamFile>> streams;
  {
    std::lock_guard lock(mu_);
    for (auto it = streams_.lower_bound(from_prefix);
         it != streams_.end() && it->first.starts_with(from_prefix); ++it) {
      streams.insert(*it);
    }
  }
  for (auto& [path, stream] : streams) RETURN_IF_ERROR(stream->Commit());

  ASSIGN_OR_RETURN(DirectoryRenamePlan plan,
                   PlanDirectoryRename(*store_, from, to, options_.max_dir_rename_objects));
  const DirectoryRenameOptions rename_options{options_.max_dir_rename_objects,
                                              options_.dir_rename_copies_in_flight};
  Result<std::map<std::string, std::string>> etags =
      RunDirectoryRename(*store_, plan, rename_options);
  if (!etags.ok()) {
    // Half-moved until a mount finishes the journal: nothing cached about either name holds.
    std::lock_guard lock(mu_);
    attr_cache_.erase(attr_cache_.lower_bound(from_prefix),
                      attr_cache_.lower_bound(from + static_cast<char>('/' + 1)));
    attr_cache_.erase(attr_cache_.lower_bound(to + "/"),
                      attr_cache_.lower_bound(to + static_cast<char>('/' + 1)));
    known_.Forget(from);
    known_.Forget(to);
    return etags.status();
  }

  // The copies and streams follow their objects to the new names (and new ETags: Copy
  // makes a new version with the same bytes).
  for (const std::shared_ptr<CachedFile>& copy : copies) {
    const std::string relative = copy->name.substr(from_prefix.size());
    auto etag = etags->find(relative);
    if (etag == etags->end()) continue;  // not in the store (an unlinked file's copy)
    cache_->Rename(copy->name, to + "/" + relative, etag->second);
  }
  for (auto& [path, stream] : streams) {
    const std::string relative = path.substr(from_prefix.size());
    auto etag = etags->find(relative);
    if (etag == etags->end()) continue;
    std::string moved = to + "/" + relative;
    {
      std::lock_guard lock(mu_);
      if (auto it = streams_.find(path); it != streams_.end() && it->second == stream) {
        streams_.erase(it);
        streams_[moved] = stream;
      }
    }
    stream->Renamed(moved, etag->second);
  }
  return OkStatus();
}

void FsCore::RepathDescendantsLocked(const std::string& from, const std::string& to) {
  const std::string from_prefix = from + "/";
  const std::string to_prefix = to + "/";
  // Inodes the kernel holds below the directory keep their numbers under the new paths.
  inodes_.MoveBelow(from, to);
  // Attributes and known names below either name describe the tree before the move.
  for (const std::string* prefix : {&from_prefix, &to_prefix}) {
    const std::string end = prefix->substr(0, prefix->size() - 1) + static_cast<char>('/' + 1);
    attr_cache_.erase(attr_cache_.lower_bound(*prefix), attr_cache_.lower_bound(end));
  }
  known_.ForgetBelow(from_prefix);
  known_.ForgetBelow(to_prefix);
  known_.Forget(to);
}

void FsCore::KeepParentDirectory(const std::string& removed) {
  const size_t slash = removed.rfind('/');
  if (slash == std::string::npos) return;  // the root needs no marker
  const std::string parent = removed.substr(0, slash);
  {
    // What this mount knows answers without a request: a marker seen (the directory's inode
    // has the marker's ETag, or its cached attributes say so), or children left.
    std::lock_guard lock(mu_);
    if (const Inode* inode = inodes_.AtPath(parent); inode != nullptr && !inode->etag.empty()) {
      return;
    }
    const int64_t now_ms = NowMs();
    if (auto cached = attr_cache_.find(parent); cached != attr_cache_.end() &&
                                                cached->second.first > now_ms &&
                                                !cached->second.second->implicit_directory) {
      return;
    }
    if (known_.HasChildren(parent, now_ms)) return;
  }
  Result<ObjectInfo> marker = store_->Head(parent);
  if (!absl::IsNotFound(marker.status())) return;  // a marker (or the store cannot say)
  Result<bool> empty = DirectoryIsEmpty(parent);
  if (!empty.ok() || !*empty) return;
  const Metadata metadata{{kFolderKey, "true"}};
  Result<std::string> etag = store_->Put(parent, "", metadata, Condition::IfNotExists());
  if (!etag.ok()) {
    if (!absl::IsFailedPrecondition(etag.status())) {
      spdlog::warn("directory '{}' lost its last child and its marker could not be written: {}",
                   parent, etag.status().message());
    }
    return;
  }
  Found found{FileKind::kDirectory, {}, false};
  found.info.name = parent;
  found.info.etag = *etag;
  found.info.metadata = metadata;
  found.info.last_modified_unix_ms = NowMs();
  CacheAttr(parent, found);
}

}  // namespace meridian::storage::fs
