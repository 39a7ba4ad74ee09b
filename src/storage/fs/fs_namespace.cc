// FsCore's namespace operations (fs_core.h): lookup, readdir, create, mkdir, symlink, unlink,
// rmdir and rename. Each asks the store first, without mu_, then records what it did under
// mu_ in the inode table, the attribute cache and the known directories. Renaming a
// non-empty directory is in fs_rename_directory.cc.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "storage/fs/directory_rename.h"
#include "storage/fs/fs_core.h"
#include "storage/fs/fs_core_internal.h"
#include "storage/fs/fs_errors.h"
#include "storage/fs/fs_paths.h"

namespace meridian::storage::fs {
namespace {

constexpr size_t kMaxDirectoryEntries = 1'000'000;

// A stable inode number for a directory entry the kernel has not looked up yet.
InodeId NumberForPath(const std::string& path) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : path) hash = (hash ^ c) * 1099511628211ull;
  return hash | (uint64_t{1} << 63);
}

}  // namespace

Result<Attr> FsCore::Lookup(InodeId parent, const std::string& name) {
  ASSIGN_OR_RETURN(std::string path, ChildPath(parent, name));
  ASSIGN_OR_RETURN(Found found, FindPath(path));
  if (std::optional<int64_t> size = OpenSize(path)) found.info.size = *size;
  std::lock_guard lock(mu_);
  return RememberLocked(path, found, true);
}

Result<std::vector<DirEntry>> FsCore::ReadDir(InodeId inode) {
  ASSIGN_OR_RETURN(std::string path, PathOf(inode));
  const int64_t started_ms = NowMs();
  BeginListing(path);
  Result<std::map<std::string, DirEntry>> entries = ListChildren(path);
  EndListing(path, entries.ok() ? &*entries : nullptr, started_ms);
  RETURN_IF_ERROR(entries.status());
  std::string prefix = ChildPrefix(path);
  std::vector<DirEntry> result;
  result.reserve(entries->size());
  int64_t newest_ms = 0;
  std::lock_guard lock(mu_);
  for (auto& [name, entry] : *entries) {
    std::string child = prefix + name;
    const Inode* live = inodes_.AtPath(child);
    entry.inode = live != nullptr ? live->id : NumberForPath(child);
    if (entry.object != nullptr) {
      newest_ms = std::max(newest_ms, entry.object->last_modified_unix_ms);
    }
    result.push_back(std::move(entry));
  }
  // Entries other nodes added since show in the directory's times from now on.
  if (Inode* directory = inodes_.Find(inode); directory != nullptr) {
    directory->entries_changed_ms = std::max(directory->entries_changed_ms, newest_ms);
    KeepDirectoryTimes(*directory);
  }
  return result;
}

Result<std::map<std::string, DirEntry>> FsCore::ListChildren(const std::string& path) {
  std::string prefix = ChildPrefix(path);
  std::map<std::string, DirEntry> entries;
  ListOptions list;
  list.prefix = prefix;
  list.delimiter.push_back('/');
  list.max_results = options_.list_page_size;
  do {
    ASSIGN_OR_RETURN(ListPage page, store_->List(list));
    for (ObjectInfo& object : page.objects) {
      std::string name = object.name.substr(prefix.size());
      if (name.empty() || (prefix.empty() && IsRenameJournalPath(name))) continue;
      FileKind kind = KindOf(object.metadata);
      auto listed = std::make_shared<const ObjectInfo>(std::move(object));
      CacheAttr(listed->name, Found{kind, *listed, false});
      entries[name] = DirEntry{name, kind, 0, std::move(listed)};
    }
    for (const std::string& common : page.common_prefixes) {
      std::string name = common.substr(prefix.size(), common.size() - prefix.size() - 1);
      if (name.empty() || entries.contains(name)) continue;  // a marker object came first
      if (prefix.empty() && IsRenameJournalPath(name)) continue;
      entries[name] = DirEntry{name, FileKind::kDirectory, 0, nullptr};
      Found implicit{FileKind::kDirectory, {}, true};
      implicit.info.name = prefix + name;
      CacheAttr(implicit.info.name, implicit);
    }
    if (entries.size() > kMaxDirectoryEntries) {
      return FsError(EFBIG, fmt::format("directory '{}' has more than {} entries", path,
                                        kMaxDirectoryEntries));
    }
    list.marker = page.next_marker;
  } while (!list.marker.empty());
  // Files created here and not uploaded yet are not in the store's listing.
  for (ObjectInfo& pending : cache_->PendingCreates(prefix)) {
    std::string name = pending.name.substr(prefix.size());
    if (entries.contains(name)) continue;
    entries[name] =
        DirEntry{name, FileKind::kFile, 0, std::make_shared<const ObjectInfo>(std::move(pending))};
  }
  return entries;
}

Result<Attr> FsCore::LookupListed(InodeId parent, const DirEntry& entry) {
  ASSIGN_OR_RETURN(std::string path, ChildPath(parent, entry.name));
  Found found{entry.kind, {}, entry.object == nullptr};
  if (entry.object != nullptr) {
    found.info = *entry.object;
  } else {
    found.info.name = path;
  }
  if (std::optional<int64_t> size = OpenSize(path)) found.info.size = *size;
  std::lock_guard lock(mu_);
  return RememberLocked(path, found, true);
}

Result<Attr> FsCore::MakeDirectory(InodeId parent, const std::string& name, uint32_t mode) {
  RETURN_IF_ERROR(RequireWritable());
  ASSIGN_OR_RETURN(std::string path, ChildPath(parent, name));
  DropCachedAttr(path);
  Result<Found> existing = FindPath(path);
  if (existing.ok()) return FsError(EEXIST, fmt::format("'{}' already exists", path));
  if (ErrnoFor(existing.status()) != ENOENT) return existing.status();
  Metadata metadata{{kFolderKey, "true"}};
  if ((mode & 07777) != options_.directory_mode) {
    metadata[kModeKey] = fmt::format("{:o}", mode & 07777);
  }
  const int64_t made_ms = NowMs();
  Result<std::string> etag = store_->Put(path, "", metadata, Condition::IfNotExists());
  if (!etag.ok() && etag.status().code() == absl::StatusCode::kFailedPrecondition) {
    NoteChildAdded(path);  // made elsewhere since this mount's knowledge of the parent
    return FsError(EEXIST, fmt::format("'{}' already exists", path));
  }
  RETURN_IF_ERROR(etag.status());
  Found found{FileKind::kDirectory, {}, false};
  found.info.name = path;
  found.info.etag = *etag;
  found.info.metadata = metadata;
  found.info.last_modified_unix_ms = made_ms;
  std::lock_guard lock(mu_);
  NoteChildAddedLocked(path);
  TouchParentLocked(path);
  // New and empty: lookups in it need no request.
  if (options_.use_attr_cache) known_.Remember(path, {}, made_ms, NowMs());
  return RememberLocked(path, found, true);
}

Status FsCore::RemoveDirectory(InodeId parent, const std::string& name) {
  RETURN_IF_ERROR(RequireWritable());
  ASSIGN_OR_RETURN(std::string path, ChildPath(parent, name));
  DropCachedAttr(path);
  ASSIGN_OR_RETURN(Found found, FindPath(path));
  if (found.kind != FileKind::kDirectory) return FsError(ENOTDIR, "not a directory");
  ASSIGN_OR_RETURN(bool empty, DirectoryIsEmpty(path));
  if (!empty) return FsError(ENOTEMPTY, fmt::format("directory '{}' is not empty", path));
  if (!found.implicit_directory) {
    Status deleted = store_->Delete(path, Condition::None());
    if (!deleted.ok() && deleted.code() != absl::StatusCode::kNotFound) return deleted;
  }
  {
    std::lock_guard lock(mu_);
    ForgetPathLocked(path);
    NoteChildRemovedLocked(path);
    TouchParentLocked(path);
  }
  KeepParentDirectory(path);
  return OkStatus();
}

Status FsCore::Unlink(InodeId parent, const std::string& name) {
  RETURN_IF_ERROR(RequireWritable());
  ASSIGN_OR_RETURN(std::string path, ChildPath(parent, name));
  DropCachedAttr(path);
  ASSIGN_OR_RETURN(Found found, FindPath(path));
  if (found.kind == FileKind::kDirectory) return FsError(EISDIR, "is a directory");
  // An open copy keeps serving its handles once the object is gone, so it must hold every
  // byte before the object goes.
  if (std::shared_ptr<CachedFile> open = cache_->FindOpen(path)) {
    std::lock_guard file_lock(open->mu);
    Status downloaded = cache_->FinishDownload(*open);
    if (!downloaded.ok()) {
      spdlog::warn("unlink: '{}' is open but its copy is incomplete: {}", path,
                   downloaded.message());
    }
  }
  Status deleted = store_->Delete(path, Condition::None());
  // A file created here and not uploaded yet is not in the store: removing the copy is all.
  const bool only_here = found.kind == FileKind::kFile && found.info.etag.empty();
  if (!deleted.ok() && !(only_here && absl::IsNotFound(deleted))) return deleted;
  cache_->Remove(path);
  std::shared_ptr<StreamFile> stream;
  {
    std::lock_guard lock(mu_);
    ForgetPathLocked(path);
    NoteChildRemovedLocked(path);
    TouchParentLocked(path);
    if (auto it = streams_.find(path); it != streams_.end()) {
      stream = std::move(it->second);
      streams_.erase(it);
    }
  }
  if (stream != nullptr) stream->MarkUnlinked();
  KeepParentDirectory(path);
  return OkStatus();
}

Result<Attr> FsCore::Symlink(const std::string& target, InodeId parent, const std::string& name) {
  RETURN_IF_ERROR(RequireWritable());
  ASSIGN_OR_RETURN(std::string path, ChildPath(parent, name));
  if (target.empty() || static_cast<int64_t>(target.size()) > kMaxSymlinkBytes) {
    return FsError(ENAMETOOLONG, "a symlink target must be 1..4096 bytes");
  }
  DropCachedAttr(path);
  Metadata metadata{{kSymlinkKey, "true"}};
  Result<std::string> etag = store_->Put(path, target, metadata, Condition::IfNotExists());
  if (!etag.ok() && etag.status().code() == absl::StatusCode::kFailedPrecondition) {
    NoteChildAdded(path);  // made elsewhere since this mount's knowledge of the parent
    return FsError(EEXIST, fmt::format("'{}' already exists", path));
  }
  RETURN_IF_ERROR(etag.status());
  Found found{FileKind::kSymlink, {}, false};
  found.info.name = path;
  found.info.etag = *etag;
  found.info.size = static_cast<int64_t>(target.size());
  found.info.metadata = metadata;
  found.info.last_modified_unix_ms = NowMs();
  std::lock_guard lock(mu_);
  NoteChildAddedLocked(path);
  TouchParentLocked(path);
  return RememberLocked(path, found, true);
}

Result<std::string> FsCore::ReadLink(InodeId inode) {
  ASSIGN_OR_RETURN(std::string path, PathOf(inode));
  ASSIGN_OR_RETURN(std::string target,
                   store_->GetRange(path, 0, kMaxSymlinkBytes + 1, Condition::None()));
  if (static_cast<int64_t>(target.size()) > kMaxSymlinkBytes) {
    return FsError(EIO, fmt::format("symlink '{}' has a target longer than 4096 bytes", path));
  }
  return target;
}

Result<CreateResult> FsCore::CreateFile(InodeId parent, const std::string& name, uint32_t mode,
                                        int flags) {
  RETURN_IF_ERROR(RequireWritable());
  ASSIGN_OR_RETURN(std::string path, ChildPath(parent, name));
  DropCachedAttr(path);
  Metadata metadata;
  if ((mode & 07777) != options_.file_mode) metadata[kModeKey] = fmt::format("{:o}", mode & 07777);
  const bool streams = ShouldStream(path, 0);
  if ((flags & O_TRUNC) && !(flags & O_EXCL) && !streams) {
    // O_CREAT|O_TRUNC (shell redirection, cp, most writers) replaces whatever is at the
    // name, so the object can wait for the first upload (flush, fsync or close): one request
    // per small file instead of an empty Put now and the real one at close. If another node
    // creates the name meanwhile, the upload replaces it, as O_TRUNC would have. Lookups and
    // listings here show the file meanwhile; other nodes see it once it is closed, as they
    // see its bytes. Without O_TRUNC an existing object's bytes matter, so it is looked for
    // below.
    ASSIGN_OR_RETURN(std::shared_ptr<CachedFile> file,
                     cache_->AcquireCreated(path, metadata));
    Found found{FileKind::kFile, {}, false};
    found.info.name = path;
    found.info.metadata = metadata;
    found.info.last_modified_unix_ms = NowMs();
    Attr attr;
    {
      std::lock_guard lock(mu_);
      attr = RememberLocked(path, found, true);
      NoteChildAddedLocked(path);
      TouchParentLocked(path);
    }
    return CreateResult{attr, AddHandle(attr.inode, std::move(file), nullptr, flags)};
  }
  // Otherwise the empty object is made at once, as BlobFuse2 does, so the name is taken in
  // the store (O_EXCL is exclusive across nodes) and the first upload can be conditional on
  // this version.
  Result<std::string> etag = store_->Put(path, "", metadata, Condition::IfNotExists());
  if (!etag.ok() && etag.status().code() == absl::StatusCode::kFailedPrecondition) {
    NoteChildAdded(path);  // made elsewhere since this mount learned its directory
    if (flags & O_EXCL) return FsError(EEXIST, fmt::format("'{}' already exists", path));
    // Created elsewhere after the kernel's lookup: open what is there.
    ASSIGN_OR_RETURN(Attr attr, Lookup(parent, name));
    if (attr.kind == FileKind::kDirectory) return FsError(EISDIR, "is a directory");
    Result<OpenResult> opened = Open(attr.inode, flags);
    if (!opened.ok()) {
      Forget(attr.inode, 1);
      return opened.status();
    }
    return CreateResult{attr, opened->handle};
  }
  RETURN_IF_ERROR(etag.status());
  NoteChildAdded(path);
  Found found{FileKind::kFile, {}, false};
  found.info.name = path;
  found.info.etag = *etag;
  found.info.metadata = metadata;
  found.info.last_modified_unix_ms = NowMs();
  std::shared_ptr<CachedFile> file;
  std::shared_ptr<StreamFile> stream;
  if (streams) {
    cache_->Remove(path);  // a copy of an earlier object of this name is stale now
    stream = StreamFor(found.info);
  } else {
    ASSIGN_OR_RETURN(file, cache_->AcquireNew(path, *etag, metadata));
  }
  Attr attr;
  {
    std::lock_guard lock(mu_);
    attr = RememberLocked(path, found, true);
    TouchParentLocked(path);
  }
  return CreateResult{attr, AddHandle(attr.inode, std::move(file), std::move(stream), flags)};
}

// ---- Rename -------------------------------------------------------------------------------

Status FsCore::Rename(InodeId parent, const std::string& name, InodeId new_parent,
                      const std::string& new_name, unsigned flags) {
  RETURN_IF_ERROR(RequireWritable());
  if (flags & RENAME_EXCHANGE) {
    return FsError(ENOTSUP, "exchanging two names atomically is not possible on object storage");
  }
  if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE)) return FsError(EINVAL, "rename flags");
  ASSIGN_OR_RETURN(std::string from, ChildPath(parent, name));
  ASSIGN_OR_RETURN(std::string to, ChildPath(new_parent, new_name));
  if (from == to) return OkStatus();
  DropCachedAttr(from);
  DropCachedAttr(to);
  ASSIGN_OR_RETURN(Found source, FindPath(from));
  Result<Found> target = FindPath(to);
  if (!target.ok() && ErrnoFor(target.status()) != ENOENT) return target.status();
  if (target.ok()) {
    if (flags & RENAME_NOREPLACE) return FsError(EEXIST, fmt::format("'{}' exists", to));
    bool source_dir = source.kind == FileKind::kDirectory;
    bool target_dir = target->kind == FileKind::kDirectory;
    if (target_dir && !source_dir) return FsError(EISDIR, fmt::format("'{}' is a directory", to));
    if (!target_dir && source_dir)
      return FsError(ENOTDIR, fmt::format("'{}' is not a directory", to));
    if (target_dir) {
      ASSIGN_OR_RETURN(bool empty, DirectoryIsEmpty(to));
      if (!empty) return FsError(ENOTEMPTY, fmt::format("directory '{}' is not empty", to));
    }
  }
  if (source.kind == FileKind::kDirectory) {
    RETURN_IF_ERROR(RenameDirectory(from, to));
  } else {
    RETURN_IF_ERROR(RenameFile(from, to));
  }
  {
    std::lock_guard lock(mu_);
    ForgetPathLocked(to);
    attr_cache_.erase(from);
    NoteChildRemovedLocked(from);
    NoteChildRemovedLocked(to);  // what `to` was is gone (as a directory it was empty) ...
    NoteChildAddedLocked(to);    // ... and the moved entry took its name
    TouchParentLocked(from);
    TouchParentLocked(to);
    if (Inode* moved = inodes_.Move(from, to); moved != nullptr) {
      moved->attr.ctime_ms = NowMs();  // as Linux filesystems do
    }
    if (source.kind == FileKind::kDirectory) RepathDescendantsLocked(from, to);
  }
  KeepParentDirectory(from);
  return OkStatus();
}

Status FsCore::RenameFile(const std::string& from, const std::string& to) {
  // A file open at `to` keeps serving its handles once it is replaced, so its copy must
  // hold every byte before the blob is overwritten.
  if (std::shared_ptr<CachedFile> replaced = cache_->FindOpen(to)) {
    std::lock_guard replaced_lock(replaced->mu);
    Status downloaded = cache_->FinishDownload(*replaced);
    if (!downloaded.ok()) {
      spdlog::warn("rename: '{}' is open but its copy is incomplete: {}", to, downloaded.message());
    }
  }
  // An open file with unsaved bytes goes up first, so the copy below carries them.
  std::shared_ptr<CachedFile> open = cache_->FindOpen(from);
  std::unique_lock<std::mutex> file_lock;
  if (open != nullptr) {
    file_lock = std::unique_lock(open->mu);
    // The download reads the old name, which is about to go.
    RETURN_IF_ERROR(cache_->FinishDownload(*open));
    RETURN_IF_ERROR(cache_->Upload(*open));
  }
  std::shared_ptr<StreamFile> stream = FindStream(from);
  if (stream != nullptr) RETURN_IF_ERROR(stream->Commit());
  ASSIGN_OR_RETURN(std::string etag, store_->Copy(from, to));
  Status deleted = store_->Delete(from, Condition::None());
  if (!deleted.ok() && deleted.code() != absl::StatusCode::kNotFound) {
    spdlog::error("rename: '{}' was copied to '{}' but could not be removed: {}", from, to,
                  deleted.message());
    return deleted;
  }
  cache_->Rename(from, to, etag);
  std::shared_ptr<StreamFile> replaced;
  {
    std::lock_guard lock(mu_);
    if (auto it = streams_.find(to); it != streams_.end()) {
      replaced = std::move(it->second);
      streams_.erase(it);
    }
    if (stream != nullptr && streams_.contains(from) && streams_.at(from) == stream) {
      streams_.erase(from);
      streams_[to] = stream;
    }
  }
  if (replaced != nullptr) replaced->MarkUnlinked();
  if (stream != nullptr) stream->Renamed(to, etag);
  return OkStatus();
}

Status FsCore::RenameDirectory(const std::string& from, const std::string& to) {
  ASSIGN_OR_RETURN(bool empty, DirectoryIsEmpty(from));
  if (!empty) return MoveNonEmptyDirectory(from, to);
  Result<ObjectInfo> marker = store_->Head(from);
  Metadata metadata{{kFolderKey, "true"}};
  if (marker.ok()) metadata = marker->metadata;
  RETURN_IF_ERROR(store_->Put(to, "", metadata, Condition::None()).status());
  if (marker.ok()) {
    Status deleted = store_->Delete(from, Condition::None());
    if (!deleted.ok() && deleted.code() != absl::StatusCode::kNotFound) return deleted;
  }
  return OkStatus();
}

}  // namespace meridian::storage::fs
