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

// ---- Attributes (the namespace operations are in fs_namespace.cc) ------------------------

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

Result<FsStat> FsCore::StatFs() {
  // Object storage has no fixed size; report a large, stable figure as BlobFuse2 does.
  FsStat stat;
  stat.blocks = uint64_t{1} << 32;  // 16 TiB of 4 KiB blocks
  stat.blocks_free = stat.blocks;
  stat.files = uint64_t{1} << 32;
  stat.files_free = stat.files;
  return stat;
}

}  // namespace meridian::storage::fs
