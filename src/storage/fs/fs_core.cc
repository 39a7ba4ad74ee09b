#include "storage/fs/fs_core.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "storage/fs/directory_rename.h"
#include "storage/fs/fs_core_internal.h"
#include "storage/fs/fs_errors.h"
#include "storage/fs/fs_paths.h"

namespace meridian::storage::fs {
namespace {

constexpr size_t kMaxDirectoryEntries = 1'000'000;

bool IsTrue(const Metadata& metadata, const char* key) {
  auto it = metadata.find(key);
  return it != metadata.end() && (it->second == "true" || it->second == "True");
}

FileKind KindOf(const Metadata& metadata) {
  if (IsTrue(metadata, kFolderKey)) return FileKind::kDirectory;
  if (IsTrue(metadata, kSymlinkKey)) return FileKind::kSymlink;
  return FileKind::kFile;
}

// A stable inode number for a directory entry the kernel has not looked up yet.
InodeId NumberForPath(const std::string& path) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : path) hash = (hash ^ c) * 1099511628211ull;
  return hash | (uint64_t{1} << 63);
}

}  // namespace

FsCore::FsCore(ObjectStore* store, FsOptions options, std::unique_ptr<BlockPool> pool,
               std::unique_ptr<BoundedExecutor> uploads, std::unique_ptr<BoundedExecutor> downloads,
               std::unique_ptr<FileCache> cache)
    : store_(store),
      options_(std::move(options)),
      pool_(std::move(pool)),
      uploads_(std::move(uploads)),
      downloads_(std::move(downloads)),
      cache_(std::move(cache)),
      stream_services_{store_,
                       pool_.get(),
                       downloads_.get(),
                       uploads_.get(),
                       options_.prefetch_blocks,
                       options_.wait_for_memory_ms},
      known_(options_.max_known_names, options_.attr_cache_timeout_s * 1000) {
  Inode& root = *inodes_.Find(kRootInode);
  root.attr = AttrFor(kRootInode, Found{FileKind::kDirectory, {}, true});
  root.attr.mtime_ms = root.attr.ctime_ms = NowMs();  // the root has no marker: mount time
}

FsCore::~FsCore() = default;

Result<std::unique_ptr<FsCore>> FsCore::Create(ObjectStore* store, FsOptions options) {
  if (store == nullptr) return absl::InvalidArgumentError("filesystem: no object store");
  if (options.cache_size_mb <= 0) {
    return absl::InvalidArgumentError("--cache-size-mb must be positive");
  }
  if (options.block_size_bytes <= 0 || options.block_size_bytes > (int64_t{4000} << 20)) {
    return absl::InvalidArgumentError("the block size must be 1 byte .. 4000 MiB (Azure's limit)");
  }
  if (options.block_pool_bytes < 2 * options.block_size_bytes) {
    return absl::InvalidArgumentError(
        "--block-cache-pool-size must hold at least two blocks of --block-cache-block-size");
  }
  auto pool = std::make_unique<BlockPool>(options.block_pool_bytes, options.block_size_bytes);
  auto uploads = std::make_unique<BoundedExecutor>(options.max_uploads_in_flight);
  auto downloads = std::make_unique<BoundedExecutor>(std::max(options.prefetch_blocks, 1));
  FileCacheOptions cache_options;
  cache_options.dir = options.cache_dir;
  cache_options.capacity_bytes = options.cache_size_mb << 20;
  cache_options.free_disk_floor_bytes = options.free_disk_floor_bytes;
  cache_options.timeout_after_close_ms = options.file_cache_timeout_s * 1000;
  cache_options.upload = options.upload;
  cache_options.upload.block_size_bytes = options.block_size_bytes;
  cache_options.upload.parallelism = options.max_uploads_in_flight;
  cache_options.uploads = uploads.get();
  cache_options.clock = options.clock;
  ASSIGN_OR_RETURN(std::unique_ptr<FileCache> cache,
                   FileCache::Open(store, std::move(cache_options)));
  // A directory rename interrupted here or on another node is finished before anything is
  // served; if that fails the mount still comes up (every object is under one of its names)
  // and the next start tries again.
  if (!options.read_only) {
    Result<int> finished = CompleteUnfinishedRenames(
        *store, {options.max_dir_rename_objects, options.dir_rename_copies_in_flight});
    if (!finished.ok()) {
      spdlog::error("an interrupted directory rename could not be finished: {}",
                    finished.status().message());
    }
  }
  return std::unique_ptr<FsCore>(new FsCore(store, std::move(options), std::move(pool),
                                            std::move(uploads), std::move(downloads),
                                            std::move(cache)));
}

int64_t FsCore::NowMs() const {
  return (options_.clock ? options_.clock : base::SystemClock::Get())->NowUnixMs();
}

Status FsCore::RequireWritable() const {
  if (options_.read_only) return FsError(EROFS, "the filesystem is mounted read-only");
  return OkStatus();
}

// ---- Paths and inodes ---------------------------------------------------------------------

Result<std::string> FsCore::PathOf(InodeId inode) {
  std::lock_guard lock(mu_);
  const Inode* node = inodes_.Find(inode);
  if (node == nullptr) return FsError(ESTALE, fmt::format("unknown inode {}", inode));
  return node->path;
}

Result<std::string> FsCore::ChildPath(InodeId parent, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return FsError(EINVAL, fmt::format("'{}' is not a valid file name", name));
  }
  if (name.size() > kMaxNameComponentBytes) {
    return FsError(ENAMETOOLONG, "a file name is longer than 255 bytes");
  }
  std::lock_guard lock(mu_);
  const Inode* directory = inodes_.Find(parent);
  if (directory == nullptr) return FsError(ESTALE, fmt::format("unknown inode {}", parent));
  if (directory->kind != FileKind::kDirectory) return FsError(ENOTDIR, "not a directory");
  std::string path = directory->path.empty() ? name : directory->path + "/" + name;
  if (Utf16Length(path) > kMaxNameCharacters) {
    return FsError(ENAMETOOLONG,
                   "a path is longer than Azure's blob-name limit of 1024 characters "
                   "(UTF-16 code units)");
  }
  return path;
}

Attr FsCore::AttrFor(InodeId inode, const Found& found) const {
  Attr attr;
  attr.inode = inode;
  attr.kind = found.kind;
  attr.uid = options_.uid;
  attr.gid = options_.gid;
  const Metadata& metadata = found.info.metadata;
  uint32_t permissions = options_.file_mode;
  switch (found.kind) {
    case FileKind::kDirectory:
      attr.mode = S_IFDIR;
      attr.nlink = 2;
      attr.size = 4096;
      permissions = options_.directory_mode;
      break;
    case FileKind::kSymlink:
      attr.mode = S_IFLNK;
      attr.size = found.info.size;
      permissions = 0777;
      break;
    case FileKind::kFile:
      attr.mode = S_IFREG;
      attr.size = found.info.size;
      break;
  }
  if (auto it = metadata.find(kModeKey); it != metadata.end()) {
    permissions = static_cast<uint32_t>(std::strtoul(it->second.c_str(), nullptr, 8)) & 07777;
  }
  attr.mode |= permissions;
  attr.mtime_ms = found.info.last_modified_unix_ms;
  if (auto it = metadata.find(kMtimeKey); it != metadata.end()) {
    attr.mtime_ms = std::strtoll(it->second.c_str(), nullptr, 10);
  }
  attr.ctime_ms = found.info.last_modified_unix_ms;
  return attr;
}

Attr FsCore::RememberLocked(const std::string& path, const Found& found, bool add_lookup) {
  Inode* inode = &inodes_.Remember(path, found.kind);
  if (add_lookup) ++inode->nlookup;
  if (path.empty()) return inode->attr;
  if (options_.use_attr_cache) known_.KnowChild(path, NowMs());
  if (inode->changed_here) return inode->attr;  // open with this mount's unsaved changes
  inode->etag = found.info.etag;
  inode->attr = AttrFor(inode->id, found);
  KeepDirectoryTimes(*inode);
  return inode->attr;
}

void FsCore::ForgetPathLocked(const std::string& path) {
  attr_cache_.erase(path);  // the lookups made on the way here cached it
  Inode* inode = inodes_.Detach(path);
  if (inode == nullptr) return;
  if (inode->open_handles > 0) {
    // Still open: the handles keep using it (unlink(2) semantics) until the last close.
    inode->unlinked = true;
    inode->attr.nlink = 0;
    inode->attr.ctime_ms = NowMs();
  }
  inodes_.FreeIfUnused(inode->id);
}

void FsCore::TouchParentLocked(const std::string& child_path) {
  Inode* parent = inodes_.AtPath(SplitPath(child_path).first);
  if (parent == nullptr) return;  // not known to the kernel: nothing to keep
  parent->entries_changed_ms = std::max(parent->entries_changed_ms, NowMs());
  KeepDirectoryTimes(*parent);
}

void FsCore::KeepDirectoryTimes(Inode& inode) {
  if (inode.kind != FileKind::kDirectory) return;
  inode.attr.mtime_ms = std::max(inode.attr.mtime_ms, inode.entries_changed_ms);
  inode.attr.ctime_ms = std::max(inode.attr.ctime_ms, inode.entries_changed_ms);
}

void FsCore::CacheAttr(const std::string& path, const Found& found) {
  if (!options_.use_attr_cache) return;
  std::lock_guard lock(mu_);
  attr_cache_[path] = {NowMs() + options_.attr_cache_timeout_s * 1000,
                       std::make_shared<Found>(found)};
}

void FsCore::DropCachedAttr(const std::string& path) {
  if (!options_.use_attr_cache) return;
  std::lock_guard lock(mu_);
  attr_cache_.erase(path);
}

Result<FsCore::Found> FsCore::FindPath(const std::string& path) {
  if (path.empty()) return Found{FileKind::kDirectory, {}, true};
  if (IsRenameJournalPath(path)) return FsError(ENOENT, "the rename journal is not shown");
  // Created here and not uploaded yet: only this mount knows it exists.
  if (std::optional<ObjectInfo> pending = cache_->PendingCreate(path)) {
    return Found{FileKind::kFile, *std::move(pending), false};
  }
  if (options_.use_attr_cache) {
    std::lock_guard lock(mu_);
    auto it = attr_cache_.find(path);
    if (it != attr_cache_.end()) {
      if (it->second.first > NowMs()) return *it->second.second;
      attr_cache_.erase(it);
    }
    if (known_.KnownAbsent(path, NowMs())) {
      return FsError(ENOENT,
                     fmt::format("'{}' does not exist (this mount knows its directory)", path));
    }
  }
  Found found;
  Result<ObjectInfo> head = store_->Head(path);
  if (head.ok()) {
    found.kind = KindOf(head->metadata);
    found.info = std::move(*head);
  } else if (head.status().code() == absl::StatusCode::kNotFound) {
    ListOptions list;
    list.prefix = ChildPrefix(path);
    list.max_results = 1;
    ASSIGN_OR_RETURN(ListPage page, store_->List(list));
    if (page.objects.empty() && page.common_prefixes.empty()) {
      return FsError(ENOENT, fmt::format("'{}' does not exist", path));
    }
    found.kind = FileKind::kDirectory;
    found.implicit_directory = true;
    found.info.name = path;
  } else {
    return head.status();
  }
  CacheAttr(path, found);
  return found;
}

Result<bool> FsCore::DirectoryIsEmpty(const std::string& path) {
  ListOptions list;
  list.prefix = ChildPrefix(path);
  list.max_results = 1;
  ASSIGN_OR_RETURN(ListPage page, store_->List(list));
  return page.objects.empty() && page.common_prefixes.empty();
}

// ---- Directories known completely (known_directories.h), all under mu_ --------------------

void FsCore::NoteChildAdded(const std::string& path) {
  std::lock_guard lock(mu_);
  NoteChildAddedLocked(path);
}

void FsCore::NoteChildRemoved(const std::string& path) {
  std::lock_guard lock(mu_);
  NoteChildRemovedLocked(path);
}

void FsCore::NoteChildAddedLocked(const std::string& path) {
  if (!options_.use_attr_cache || path.empty()) return;
  known_.NoteChildAdded(path, NowMs());
}

void FsCore::NoteChildRemovedLocked(const std::string& path) {
  if (!options_.use_attr_cache || path.empty()) return;
  known_.NoteChildRemoved(path);
}

void FsCore::BeginListing(const std::string& path) {
  if (!options_.use_attr_cache) return;
  std::lock_guard lock(mu_);
  known_.BeginListing(path);
}

void FsCore::EndListing(const std::string& path, const std::map<std::string, DirEntry>* entries,
                        int64_t started_ms) {
  if (!options_.use_attr_cache) return;
  // The names are gathered before mu_ is taken; a directory too large to keep costs nothing.
  std::unordered_set<std::string> names;
  const bool keep =
      entries != nullptr && static_cast<int64_t>(entries->size()) < options_.max_known_names;
  if (keep) {
    names.reserve(entries->size());
    for (const auto& [name, entry] : *entries) names.insert(name);
  }
  std::lock_guard lock(mu_);
  // False when this mount changed the directory meanwhile: the pages may miss it.
  const bool unchanged = known_.EndListing(path);
  if (unchanged && keep) known_.Remember(path, std::move(names), started_ms, NowMs());
}

// ---- Metadata operations ------------------------------------------------------------------

Result<Attr> FsCore::Lookup(InodeId parent, const std::string& name) {
  ASSIGN_OR_RETURN(std::string path, ChildPath(parent, name));
  ASSIGN_OR_RETURN(Found found, FindPath(path));
  if (std::optional<int64_t> size = OpenSize(path)) found.info.size = *size;
  std::lock_guard lock(mu_);
  return RememberLocked(path, found, true);
}

void FsCore::Forget(InodeId inode, uint64_t count) {
  std::lock_guard lock(mu_);
  inodes_.Forget(inode, count);
}

Result<Attr> FsCore::GetAttr(InodeId inode) {
  std::string path;
  std::optional<Handle> unlinked_handle;
  {
    std::lock_guard lock(mu_);
    const Inode* node = inodes_.Find(inode);
    if (node == nullptr) return FsError(ESTALE, fmt::format("unknown inode {}", inode));
    if (node->id == kRootInode) return node->attr;
    if (node->unlinked) {
      // No path leads here any more (a new file may have its name): ask its open handles.
      unlinked_handle = AnyHandleLocked(inode);
      if (!unlinked_handle) return node->attr;
    }
    path = node->path;
  }
  if (unlinked_handle) {
    const int64_t size = HandleSize(*unlinked_handle);
    std::lock_guard lock(mu_);
    Inode* node = inodes_.Find(inode);
    if (node == nullptr) return FsError(ESTALE, "the inode was forgotten");
    node->attr.size = size;
    return node->attr;
  }
  if (std::optional<int64_t> size = OpenSize(path)) {
    std::lock_guard lock(mu_);
    Inode* node = inodes_.Find(inode);
    if (node == nullptr) return FsError(ESTALE, "the inode was forgotten");
    node->attr.size = *size;
    return node->attr;
  }
  ASSIGN_OR_RETURN(Found found, FindPath(path));
  std::lock_guard lock(mu_);
  Inode* node = inodes_.Find(inode);
  if (node == nullptr) return FsError(ESTALE, "the inode was forgotten");
  if (node->kind != found.kind) return FsError(ENOENT, "replaced by another kind of entry");
  if (node->changed_here || node->unlinked) return node->attr;
  node->attr = AttrFor(inode, found);
  node->etag = found.info.etag;
  KeepDirectoryTimes(*node);
  return node->attr;
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

Result<FsStat> FsCore::StatFs() {
  // Object storage has no fixed size; report a large, stable figure as BlobFuse2 does.
  FsStat stat;
  stat.blocks = uint64_t{1} << 32;  // 16 TiB of 4 KiB blocks
  stat.blocks_free = stat.blocks;
  stat.files = uint64_t{1} << 32;
  stat.files_free = stat.files;
  return stat;
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
