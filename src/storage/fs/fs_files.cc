// FsCore's open files: create, open, read, write, flush, release and attributes, in file
// cache mode (a CachedFile) or streaming mode (a StreamFile). Names, directories and rename
// are in fs_core.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "storage/fs/fs_core.h"
#include "storage/fs/fs_core_internal.h"
#include "storage/fs/fs_errors.h"

namespace meridian::storage::fs {

// ---- Handles and modes --------------------------------------------------------------------

uint64_t FsCore::AddHandle(InodeId inode, std::shared_ptr<CachedFile> file,
                           std::shared_ptr<StreamFile> stream, int flags) {
  std::lock_guard lock(mu_);
  uint64_t id = next_handle_++;
  if (stream != nullptr) ++stream->open_count;
  handles_[id] = std::make_unique<Handle>(Handle{inode, std::move(file), std::move(stream), flags});
  if (Inode* node = inodes_.Find(inode); node != nullptr) ++node->open_handles;
  return id;
}

Result<FsCore::Handle> FsCore::HandleFor(uint64_t handle) {
  std::lock_guard lock(mu_);
  auto it = handles_.find(handle);
  if (it == handles_.end()) return FsError(EBADF, fmt::format("unknown file handle {}", handle));
  return *it->second;
}

Result<std::shared_ptr<CachedFile>> FsCore::HandleFile(uint64_t handle) {
  ASSIGN_OR_RETURN(Handle found, HandleFor(handle));
  if (found.file == nullptr) return FsError(EBADF, "the handle is in streaming mode");
  return found.file;
}

Result<bool> FsCore::IsStreaming(uint64_t handle) {
  ASSIGN_OR_RETURN(Handle found, HandleFor(handle));
  return found.stream != nullptr;
}

bool FsCore::ShouldStream(const std::string& path, int64_t size) {
  if (options_.block_cache) return true;
  if (size > cache_->options().capacity_bytes) {
    spdlog::info("'{}' ({} bytes) is larger than the file cache: streaming it", path, size);
    return true;
  }
  if (!cache_->MakeRoom(size)) {
    spdlog::warn("the cache disk cannot take '{}' ({} bytes) and keep {} bytes free: streaming it",
                 path, size, cache_->options().free_disk_floor_bytes);
    return true;
  }
  return false;
}

std::shared_ptr<StreamFile> FsCore::FindStream(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = streams_.find(path);
  return it == streams_.end() ? nullptr : it->second;
}

std::shared_ptr<StreamFile> FsCore::StreamFor(const ObjectInfo& remote) {
  std::shared_ptr<StreamFile> open = FindStream(remote.name);
  // Close-to-open: a clean stream of an older version is left to its handles.
  if (open != nullptr && (open->dirty() || open->etag() == remote.etag)) return open;
  std::shared_ptr<StreamFile> created = StreamFile::Open(stream_services_, remote);
  std::lock_guard lock(mu_);
  std::shared_ptr<StreamFile>& slot = streams_[remote.name];
  if (slot == open) slot = created;  // unless another open registered one meanwhile
  return slot;
}

std::optional<FsCore::Handle> FsCore::AnyHandleLocked(InodeId inode) {
  for (const auto& [id, handle] : handles_) {
    if (handle->inode == inode) return *handle;
  }
  return std::nullopt;
}

int64_t FsCore::HandleSize(const Handle& handle) {
  if (handle.stream != nullptr) return handle.stream->size();
  std::lock_guard file_lock(handle.file->mu);
  return handle.file->size;
}

void FsCore::NoteOpenChange(InodeId inode, const SetAttrRequest& change, bool data_changed) {
  const int64_t now_ms = NowMs();
  std::lock_guard lock(mu_);
  Inode* found = inodes_.Find(inode);
  if (found == nullptr) return;
  Inode& node = *found;
  node.changed_here = true;
  if (change.size) node.attr.size = *change.size;
  if (change.mode) node.attr.mode = (node.attr.mode & S_IFMT) | (*change.mode & 07777);
  if (data_changed) node.attr.mtime_ms = now_ms;
  if (change.mtime_ms) node.attr.mtime_ms = *change.mtime_ms;
  node.attr.ctime_ms = now_ms;
}

void FsCore::RememberOwnVersion(InodeId inode, const ObjectInfo& info) {
  Found found{FileKind::kFile, info, false};
  const int64_t now_ms = NowMs();
  std::lock_guard lock(mu_);
  Inode* node = inodes_.Find(inode);
  if (node != nullptr && node->unlinked) return;
  if (options_.use_attr_cache) {
    attr_cache_[info.name] = {now_ms + options_.attr_cache_timeout_s * 1000,
                              std::make_shared<Found>(found)};
  }
  if (node == nullptr || node->kind != FileKind::kFile) return;
  node->etag = info.etag;
  node->attr = AttrFor(inode, found);
  node->changed_here = false;
}

std::optional<int64_t> FsCore::OpenSize(const std::string& path) {
  if (std::shared_ptr<CachedFile> open = cache_->FindOpen(path)) {
    std::lock_guard file_lock(open->mu);
    return open->size;
  }
  if (std::shared_ptr<StreamFile> stream = FindStream(path)) return stream->size();
  return std::nullopt;
}

// ---- Create and open ----------------------------------------------------------------------

Result<OpenResult> FsCore::Open(InodeId inode, int flags) {
  bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  if (writes) RETURN_IF_ERROR(RequireWritable());
  std::string path;
  std::string known_etag;
  {
    std::lock_guard lock(mu_);
    const Inode* node = inodes_.Find(inode);
    if (node == nullptr) return FsError(ESTALE, fmt::format("unknown inode {}", inode));
    if (node->kind == FileKind::kDirectory) return FsError(EISDIR, "is a directory");
    path = node->path;
    known_etag = node->etag;
  }
  std::shared_ptr<CachedFile> file;
  std::shared_ptr<StreamFile> stream = FindStream(path);
  bool changed = false;
  std::shared_ptr<CachedFile> open = cache_->FindOpen(path);
  bool open_dirty = false;
  std::string open_etag;
  if (open != nullptr) {
    std::lock_guard file_lock(open->mu);
    open_dirty = open->dirty;
    open_etag = open->etag;
  }
  if (stream != nullptr && stream->dirty()) {
    // Another handle here has unsaved bytes: they are this mount's newest version.
  } else if (open_dirty) {
    ObjectInfo local;
    local.name = path;
    local.etag = open_etag;
    ASSIGN_OR_RETURN(file, cache_->Acquire(local, &changed));
  } else {
    // Close-to-open: always ask the store which version is current.
    DropCachedAttr(path);
    ASSIGN_OR_RETURN(Found found, FindPath(path));
    if (found.kind == FileKind::kDirectory) return FsError(EISDIR, "is a directory");
    const bool truncating = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
    if (stream != nullptr ||
        (open == nullptr && ShouldStream(path, truncating ? 0 : found.info.size))) {
      stream = StreamFor(found.info);
    } else {
      ASSIGN_OR_RETURN(file, cache_->Acquire(found.info, &changed, truncating));
    }
    changed = changed || found.info.etag != known_etag;
    std::lock_guard lock(mu_);
    if (Inode* node = inodes_.Find(inode); node != nullptr && node->kind == found.kind) {
      node->etag = found.info.etag;
      node->attr = AttrFor(inode, found);
    }
  }
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
    SetAttrRequest truncate;
    truncate.size = 0;
    Status status;
    if (stream != nullptr) {
      status = ApplyStreamAttr(*stream, truncate);
    } else {
      std::lock_guard file_lock(file->mu);
      status = ApplyFileAttr(*file, truncate);
    }
    if (!status.ok()) {
      if (file != nullptr) cache_->Release(file);
      return status;
    }
    NoteOpenChange(inode, truncate, true);
    changed = true;
  }
  return OpenResult{AddHandle(inode, std::move(file), std::move(stream), flags), changed};
}

// ---- Read, write, flush, release ----------------------------------------------------------

Result<std::string> FsCore::Read(uint64_t handle, int64_t offset, int64_t length) {
  ASSIGN_OR_RETURN(Handle open, HandleFor(handle));
  if (open.stream != nullptr) return open.stream->Read(offset, length);
  std::string buffer;
  Status copied;
  RETURN_IF_ERROR(ReadFromCopy(handle, offset, length, [&](int fd, int64_t at, int64_t count) {
                    buffer.assign(count, '\0');
                    for (int64_t done = 0; done < count;) {
                      ssize_t n = ::pread(fd, buffer.data() + done, count - done, at + done);
                      if (n < 0 && errno == EINTR) continue;
                      if (n < 0) {
                        copied =
                            FsErrnoError(errno, "reading the cached copy of " + open.file->name);
                        return;
                      }
                      if (n == 0) break;  // past the copy's end: zeros (a sparse tail)
                      done += n;
                    }
                  }).status());
  RETURN_IF_ERROR(copied);
  return buffer;
}

Result<bool> FsCore::ReadFromCopy(uint64_t handle, int64_t offset, int64_t length,
                                  const FdReply& reply) {
  ASSIGN_OR_RETURN(Handle open, HandleFor(handle));
  if (open.stream != nullptr) return false;
  CachedFile& file = *open.file;
  std::unique_lock file_lock(file.mu);
  if (offset < file.size && length > 0) {
    RETURN_IF_ERROR(cache_->WaitToRead(file_lock, file, offset, length));
  }
  reply(file.fd, offset, std::clamp<int64_t>(file.size - offset, 0, std::max<int64_t>(length, 0)));
  return true;
}

Result<int64_t> FsCore::Write(uint64_t handle, int64_t offset, std::string_view data) {
  RETURN_IF_ERROR(RequireWritable());
  ASSIGN_OR_RETURN(Handle open, HandleFor(handle));
  if ((open.flags & O_ACCMODE) == O_RDONLY) return FsError(EBADF, "the file is open read-only");
  const bool append = open.flags & O_APPEND;
  if (open.stream != nullptr) {
    // The blob's own time is the modification time again.
    open.stream->EditMetadata([](Metadata& metadata) { metadata.erase(kMtimeKey); });
    ASSIGN_OR_RETURN(int64_t written, open.stream->Write(offset, data, append));
    SetAttrRequest change;
    change.size = open.stream->size();
    NoteOpenChange(open.inode, change, true);
    return written;
  }
  CachedFile& file = *open.file;
  std::lock_guard file_lock(file.mu);
  RETURN_IF_ERROR(cache_->MarkDirty(file));
  if (append) offset = file.size;
  file.metadata.erase(kMtimeKey);
  int64_t done = 0;
  while (done < static_cast<int64_t>(data.size())) {
    ssize_t n = ::pwrite(file.fd, data.data() + done, data.size() - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FsErrnoError(errno, "writing the cached copy of " + file.name);
    done += n;
  }
  file.size = std::max(file.size, offset + done);
  cache_->Written(file, offset, done);
  SetAttrRequest change;
  change.size = file.size;
  NoteOpenChange(open.inode, change, true);
  return done;
}

Result<bool> FsCore::FlushChanges(uint64_t handle) {
  ASSIGN_OR_RETURN(Handle open, HandleFor(handle));
  ObjectInfo committed;
  if (open.stream != nullptr) {
    const bool dirty = open.stream->dirty();
    RETURN_IF_ERROR(open.stream->Commit());
    if (!dirty) return false;
    // The inode is keyed by path; a stream renamed meanwhile is found by its new name.
    {
      std::lock_guard lock(mu_);
      if (const Inode* node = inodes_.Find(open.inode); node != nullptr) {
        committed.name = node->path;
      }
    }
    committed.etag = open.stream->etag();
    committed.size = open.stream->size();
    committed.metadata = open.stream->metadata();
  } else {
    std::lock_guard file_lock(open.file->mu);
    const bool dirty = open.file->dirty;
    RETURN_IF_ERROR(cache_->Upload(*open.file));
    if (!dirty) return false;
    committed.name = open.file->name;
    committed.etag = open.file->etag;
    committed.size = open.file->size;
    committed.metadata = open.file->metadata;
  }
  committed.last_modified_unix_ms = NowMs();  // about the store's time of the commit
  // RememberOwnVersion skips an unlinked inode (nothing was uploaded for it).
  if (!committed.name.empty()) RememberOwnVersion(open.inode, committed);
  return true;
}

Status FsCore::Release(uint64_t handle) {
  Status flushed = Flush(handle);
  std::unique_ptr<Handle> released;
  std::shared_ptr<StreamFile> closed_stream;
  bool unlinked = false;  // then nothing was to be uploaded
  {
    std::lock_guard lock(mu_);
    auto it = handles_.find(handle);
    if (it == handles_.end()) return FsError(EBADF, "unknown file handle");
    released = std::move(it->second);
    handles_.erase(it);
    if (Inode* node = inodes_.Find(released->inode); node != nullptr) {
      unlinked = node->unlinked;
      --node->open_handles;
      // Closed: what the store has is what there is (unsaved bytes were dropped above).
      if (node->open_handles == 0) node->changed_here = false;
      inodes_.FreeIfUnused(released->inode);
    }
    if (released->stream != nullptr && --released->stream->open_count == 0) {
      closed_stream = released->stream;
      std::erase_if(streams_, [&](const auto& item) { return item.second == closed_stream; });
    }
  }
  if (released->file != nullptr) cache_->Release(released->file);
  if (closed_stream != nullptr && closed_stream->dirty() && !unlinked) {
    spdlog::error("dropping unsaved changes to a file in streaming mode after a failed upload");
  }
  return flushed;
}

Status FsCore::FlushAll() {
  std::vector<std::shared_ptr<CachedFile>> files;
  std::vector<std::shared_ptr<StreamFile>> streams;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, handle] : handles_) {
      if (handle->file != nullptr) files.push_back(handle->file);
      if (handle->stream != nullptr) streams.push_back(handle->stream);
    }
  }
  Status first;
  for (const std::shared_ptr<CachedFile>& file : files) {
    std::lock_guard file_lock(file->mu);
    Status status = cache_->Upload(*file);
    if (first.ok()) first = status;
  }
  for (const std::shared_ptr<StreamFile>& stream : streams) {
    Status status = stream->Commit();
    if (first.ok()) first = status;
  }
  return first;
}

// ---- Attributes ---------------------------------------------------------------------------

Status FsCore::ApplyFileAttr(CachedFile& file, const SetAttrRequest& request) {
  RETURN_IF_ERROR(cache_->MarkDirty(file));
  if (request.size) {
    if (*request.size < 0) return FsError(EINVAL, "negative size");
    if (::ftruncate(file.fd, *request.size) != 0) {
      return FsErrnoError(errno, "truncating the cached copy of " + file.name);
    }
    file.size = *request.size;
    cache_->Resized(file, file.size);
    file.metadata.erase(kMtimeKey);
  }
  if (request.mode) file.metadata[kModeKey] = fmt::format("{:o}", *request.mode & 07777);
  if (request.mtime_ms) file.metadata[kMtimeKey] = std::to_string(*request.mtime_ms);
  return OkStatus();
}

Status FsCore::ApplyStreamAttr(StreamFile& stream, const SetAttrRequest& request) {
  if (request.size) {
    if (*request.size < 0) return FsError(EINVAL, "negative size");
    RETURN_IF_ERROR(stream.Truncate(*request.size));
  }
  stream.EditMetadata([&](Metadata& metadata) {
    if (request.size) metadata.erase(kMtimeKey);
    if (request.mode) metadata[kModeKey] = fmt::format("{:o}", *request.mode & 07777);
    if (request.mtime_ms) metadata[kMtimeKey] = std::to_string(*request.mtime_ms);
  });
  return OkStatus();
}

namespace {

// The metadata keys a chmod or utimens sets. `keep_mtime_ms`: the modification time the
// entry shows now, kept in meridian_mtime_ms by a chmod, since the store moves the blob's
// own time on any change and chmod must not move mtime.
void ApplyAttrToMetadata(const SetAttrRequest& request, std::optional<int64_t> keep_mtime_ms,
                         Metadata& metadata) {
  if (request.mode) metadata[kModeKey] = fmt::format("{:o}", *request.mode & 07777);
  if (request.mtime_ms) {
    metadata[kMtimeKey] = std::to_string(*request.mtime_ms);
  } else if (keep_mtime_ms && !metadata.contains(kMtimeKey)) {
    metadata[kMtimeKey] = std::to_string(*keep_mtime_ms);
  }
}

}  // namespace

Status FsCore::SetDirectoryAttr(const std::string& path, const SetAttrRequest& request) {
  if (request.size) return FsError(EISDIR, "is a directory");
  if (path.empty()) return OkStatus();  // the root has no marker to keep attributes in
  Result<ObjectInfo> marker = store_->Head(path);
  DropCachedAttr(path);
  if (marker.ok()) {
    Metadata metadata = marker->metadata;
    const int64_t mtime_ms = AttrFor(0, Found{FileKind::kDirectory, *marker, false}).mtime_ms;
    ApplyAttrToMetadata(request, mtime_ms, metadata);
    return store_->SetMetadata(path, metadata, Condition::IfMatch(marker->etag)).status();
  }
  if (marker.status().code() != absl::StatusCode::kNotFound) return marker.status();
  // A directory that is only a prefix gets a marker to keep its attributes in.
  Metadata metadata{{kFolderKey, "true"}};
  ApplyAttrToMetadata(request, std::nullopt, metadata);
  return store_->Put(path, "", metadata, Condition::IfNotExists()).status();
}

Status FsCore::SetFileMetadata(InodeId inode, const std::string& path,
                               const SetAttrRequest& request) {
  // The copy's lock is held throughout, so no write can make it dirty between the check and
  // the new ETag (its upload, conditional on the old ETag, would then fail).
  std::shared_ptr<CachedFile> copy = cache_->Find(path);
  std::unique_lock<std::mutex> copy_lock;
  if (copy != nullptr) {
    copy_lock = std::unique_lock(copy->mu);
    if (copy->dirty) {  // goes with the pending upload
      RETURN_IF_ERROR(ApplyFileAttr(*copy, request));
      NoteOpenChange(inode, request, false);
      return OkStatus();
    }
    // A download still filling the copy reads the version about to be replaced.
    Status downloaded = cache_->FinishDownload(*copy);
    if (!downloaded.ok()) spdlog::debug("chmod: the copy of '{}': {}", path, downloaded.message());
  }
  if (std::shared_ptr<StreamFile> stream = FindStream(path)) {
    int64_t mtime_ms = 0;
    {
      std::lock_guard lock(mu_);
      if (const Inode* node = inodes_.Find(inode); node != nullptr) mtime_ms = node->attr.mtime_ms;
    }
    ASSIGN_OR_RETURN(std::string etag, stream->ChangeMetadata([&](Metadata& metadata) {
      ApplyAttrToMetadata(request, mtime_ms, metadata);
    }));
    if (etag.empty()) {  // dirty: goes with the pending commit
      NoteOpenChange(inode, request, false);
      return OkStatus();
    }
    RememberOwnVersion(
        inode, ObjectInfo{path, stream->size(), etag, NowMs(), std::nullopt, stream->metadata()});
    return OkStatus();
  }
  // The version this mount knows is tried first (usually from the attribute cache, so the
  // change is one request); changed elsewhere meanwhile, the change is applied to the
  // current version instead.
  constexpr int kMaxAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    ASSIGN_OR_RETURN(Found found, FindPath(path));
    if (found.kind != FileKind::kFile || found.info.etag.empty()) {
      return FsError(ENOENT, fmt::format("'{}' is no longer a file in the store", path));
    }
    Metadata metadata = found.info.metadata;
    ApplyAttrToMetadata(request, AttrFor(inode, found).mtime_ms, metadata);
    Result<std::string> etag =
        store_->SetMetadata(path, metadata, Condition::IfMatch(found.info.etag));
    if (etag.ok()) {
      if (copy != nullptr) cache_->MetadataChanged(*copy, found.info.etag, *etag, metadata);
      ObjectInfo info = found.info;
      info.etag = *etag;
      info.metadata = std::move(metadata);
      info.last_modified_unix_ms = NowMs();
      RememberOwnVersion(inode, info);
      return OkStatus();
    }
    if (!absl::IsFailedPrecondition(etag.status()) || attempt == kMaxAttempts) {
      return etag.status();
    }
    DropCachedAttr(path);
  }
}

Result<Attr> FsCore::SetUnlinkedAttr(InodeId inode, const SetAttrRequest& request,
                                     uint64_t handle) {
  std::optional<Handle> open;
  {
    std::lock_guard lock(mu_);
    if (auto it = handles_.find(handle); handle != 0 && it != handles_.end()) {
      open = *it->second;
    } else {
      open = AnyHandleLocked(inode);
    }
  }
  if (!open) return FsError(ENOENT, "the file was removed");
  if (open->stream != nullptr) {
    RETURN_IF_ERROR(ApplyStreamAttr(*open->stream, request));
  } else {
    std::lock_guard file_lock(open->file->mu);
    RETURN_IF_ERROR(ApplyFileAttr(*open->file, request));
  }
  NoteOpenChange(inode, request, request.size.has_value());
  return GetAttr(inode);
}

Result<Attr> FsCore::SetAttr(InodeId inode, const SetAttrRequest& request, uint64_t handle) {
  if (!request.mode && !request.size && !request.mtime_ms) return GetAttr(inode);
  RETURN_IF_ERROR(RequireWritable());
  FileKind kind;
  std::string path;
  bool unlinked = false;
  {
    std::lock_guard lock(mu_);
    const Inode* node = inodes_.Find(inode);
    if (node == nullptr) return FsError(ESTALE, fmt::format("unknown inode {}", inode));
    kind = node->kind;
    path = node->path;
    unlinked = node->unlinked;
  }
  if (unlinked) return SetUnlinkedAttr(inode, request, handle);
  if (kind == FileKind::kDirectory) {
    RETURN_IF_ERROR(SetDirectoryAttr(path, request));
    return GetAttr(inode);
  }
  if (kind == FileKind::kSymlink) return GetAttr(inode);  // links have no own attributes
  if (!request.size) {
    // chmod(2), utimes(2): a metadata update, whether or not the file is open.
    RETURN_IF_ERROR(SetFileMetadata(inode, path, request));
    return GetAttr(inode);
  }
  // truncate(2) on a path: change the file and upload it at once; ftruncate(2): change the
  // open file, uploaded at its flush or close.
  const bool by_path = handle == 0;
  if (by_path) {
    ASSIGN_OR_RETURN(OpenResult opened, Open(inode, O_RDWR));
    handle = opened.handle;
  }
  Result<Handle> open = HandleFor(handle);
  Status applied = open.status();
  if (open.ok() && open->stream != nullptr) {
    applied = ApplyStreamAttr(*open->stream, request);
  } else if (open.ok()) {
    std::lock_guard file_lock(open->file->mu);
    applied = ApplyFileAttr(*open->file, request);
  }
  if (applied.ok()) NoteOpenChange(inode, request, true);
  Status released = by_path ? Release(handle) : OkStatus();
  RETURN_IF_ERROR(applied);
  RETURN_IF_ERROR(released);
  return GetAttr(inode);
}

}  // namespace meridian::storage::fs
