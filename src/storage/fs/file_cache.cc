#include "storage/fs/file_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/files.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"
#include "storage/fs/fs_errors.h"

namespace meridian::storage::fs {
namespace {

constexpr char kMetaHeader[] = "meridian-cache 1";
constexpr int64_t kMaxMetaBytes = 8 << 10;
constexpr size_t kIdleBlockBuffers = 1;

}  // namespace

// Buffers for blocks on their way to the store, reused: a fresh block-sized buffer costs a
// page fault per 4 KiB and a memset each time (most of the mount's CPU when writing a large
// file); a reused one is mapped already. At most `max_idle` wait between uses, so a mount
// that stopped writing holds little.
class BlockBuffers : public std::enable_shared_from_this<BlockBuffers> {
 public:
  explicit BlockBuffers(size_t max_idle) : max_idle_(max_idle) {}

  // A buffer of `length` bytes with unspecified contents; given back when the last copy of
  // the pointer goes.
  std::shared_ptr<std::string> Take(int64_t length) {
    std::unique_ptr<std::string> buffer;
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        buffer = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    if (buffer == nullptr) buffer = std::make_unique<std::string>();
    buffer->resize(length);  // no writes when the size is what it was
    return std::shared_ptr<std::string>(
        buffer.release(), [self = shared_from_this()](std::string* done) { self->Give(done); });
  }

 private:
  void Give(std::string* buffer) {
    std::unique_ptr<std::string> owned(buffer);
    std::lock_guard lock(mu_);
    if (idle_.size() < max_idle_) idle_.push_back(std::move(owned));
  }

  const size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<std::string>> idle_;  // guarded by mu_
};

namespace {

// `length` bytes of the copy at `offset`; past its end (a sparse tail) they read as zeros.
Result<std::shared_ptr<const std::string>> ReadCopy(int fd, int64_t offset, int64_t length,
                                                    BlockBuffers& buffers) {
  std::shared_ptr<std::string> buffer = buffers.Take(length);
  int64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, buffer->data() + done, length - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FsErrnoError(errno, "reading the cached copy");
    if (n == 0) break;
    done += n;
  }
  std::fill(buffer->begin() + done, buffer->end(), '\0');
  return std::shared_ptr<const std::string>(std::move(buffer));
}

}  // namespace

FileCache::FileCache(ObjectStore* store, FileCacheOptions options)
    : store_(store),
      options_(std::move(options)),
      buffers_(std::make_shared<BlockBuffers>(kIdleBlockBuffers)),
      download_threads_(std::make_shared<DownloadThreadBudget>(options_.max_download_threads)) {}

FileCache::~FileCache() {
  for (auto& [name, file] : files_) {
    if (file->download != nullptr) file->download->Cancel();
  }
  for (auto& [name, file] : files_) {
    file->download.reset();  // joins its workers before the store can go away
    if (file->fd >= 0) ::close(file->fd);
  }
}

Result<std::unique_ptr<FileCache>> FileCache::Open(ObjectStore* store, FileCacheOptions options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("file cache: no directory given");
  if (options.capacity_bytes <= 0) {
    return absl::InvalidArgumentError("file cache: the size cap must be positive");
  }
  if (options.uploads == nullptr) return absl::InvalidArgumentError("file cache: no uploader");
  RETURN_IF_ERROR(base::MakeDirs(options.dir, 0700));
  std::unique_ptr<FileCache> cache(new FileCache(store, std::move(options)));
  RETURN_IF_ERROR(cache->AdoptExisting());
  return cache;
}

std::string FileCache::PathFor(const std::string& key, const char* suffix) const {
  return fmt::format("{}/{}{}", options_.dir, key, suffix);
}

int64_t FileCache::NowMs() const {
  return (options_.clock ? options_.clock : base::SystemClock::Get())->MonotonicMs();
}

// Reuses clean copies from an earlier run; removes everything else in the directory.
Status FileCache::AdoptExisting() {
  DIR* dir = ::opendir(options_.dir.c_str());
  if (dir == nullptr) return FsErrnoError(errno, "opening cache directory " + options_.dir);
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::lock_guard lock(mu_);
  for (const std::string& name : names) {
    if (!name.ends_with(".meta")) continue;
    std::string key = name.substr(0, name.size() - 5);
    Result<std::string> text = base::ReadFile(PathFor(key, ".meta"), kMaxMetaBytes);
    struct stat data_stat {};
    std::vector<std::string> lines;
    if (text.ok()) {
      size_t start = 0;
      for (int i = 0; i < 3 && start <= text->size(); ++i) {
        size_t end = text->find('\n', start);
        if (end == std::string::npos) break;
        lines.push_back(text->substr(start, end - start));
        start = end + 1;
      }
      if (lines.size() == 3) lines.push_back(text->substr(start));
    }
    bool valid = lines.size() == 4 && lines[0] == kMetaHeader && !lines[3].empty() &&
                 ::stat(PathFor(key, ".data").c_str(), &data_stat) == 0 &&
                 std::to_string(data_stat.st_size) == lines[2] && !files_.contains(lines[3]);
    if (!valid) continue;
    auto file = std::make_shared<CachedFile>();
    file->name = lines[3];
    file->key = key;
    file->etag = lines[1];
    file->size = data_stat.st_size;
    file->last_close_ms = NowMs();
    files_[file->name] = file;
  }
  // Whatever was not adopted (dirty leftovers of a crash, stray files) goes.
  for (const std::string& name : names) {
    size_t dot = name.rfind('.');
    std::string key = name.substr(0, dot);
    bool adopted = std::any_of(files_.begin(), files_.end(),
                               [&](const auto& item) { return item.second->key == key; });
    if (!adopted) ::unlink(PathFor(name, "").c_str());
    uint64_t number = std::strtoull(key.c_str(), nullptr, 16);
    next_key_ = std::max(next_key_, number + 1);
  }
  EvictLocked();
  return OkStatus();
}

Status FileCache::Download(CachedFile& file, const ObjectInfo& remote, bool truncating) {
  std::string key;
  {
    std::lock_guard lock(mu_);
    key = fmt::format("{:016x}", next_key_++);
  }
  std::string path = PathFor(key, ".data");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return FsErrnoError(errno, "creating " + path);
  const int64_t size = truncating ? 0 : remote.size;
  // Sparse until the bytes arrive; a reader past what has arrived waits (WaitToRead).
  if (::ftruncate(fd, size) != 0) {
    Status error = FsErrnoError(errno, "sizing " + path);
    ::close(fd);
    ::unlink(path.c_str());
    return error;
  }
  // Swap the new file in: the old copy's files go, the new key takes their place.
  std::shared_ptr<BackgroundDownload> old_download;
  {
    std::lock_guard lock(mu_);
    old_download = std::move(file.download);  // of another version: cancelled below
  }
  if (old_download != nullptr) old_download->Cancel();
  old_download.reset();  // joins its workers; they never take file.mu
  if (file.fd >= 0) ::close(file.fd);
  ::unlink(PathFor(file.key, ".data").c_str());
  ::unlink(PathFor(file.key, ".meta").c_str());
  if (::rename(path.c_str(), PathFor(file.key, ".data").c_str()) != 0) {
    Status error = FsErrnoError(errno, "renaming " + path);
    ::close(fd);
    ::unlink(path.c_str());
    file.fd = -1;
    file.etag.clear();
    return error;
  }
  file.fd = fd;
  file.staged = nullptr;  // blocks staged for the old bytes mean nothing now
  file.last_write_end = -1;
  file.etag = remote.etag;
  file.size = size;
  file.metadata = remote.metadata;
  // Emptied for O_TRUNC: not `remote`'s bytes, so never marked clean (no .meta).
  file.dirty = truncating;
  if (truncating || size == 0) {
    if (!truncating) WriteMeta(file);
    return OkStatus();
  }
  BackgroundDownloadOptions options{options_.download_chunk_bytes, options_.download_parallelism,
                                    download_threads_};
  if (size <= options.chunk_bytes) {
    // One chunk: a thread would cost more than it saves.
    Status status = BackgroundDownload::RunInline(store_, remote, fd, options);
    if (!status.ok()) {
      file.etag.clear();  // these bytes are no version: the next open downloads again
      return status;
    }
    WriteMeta(file);
    return OkStatus();
  }
  Result<std::shared_ptr<BackgroundDownload>> started =
      BackgroundDownload::Start(store_, remote, fd, options);
  if (!started.ok()) {
    file.etag.clear();
    return started.status();
  }
  std::lock_guard lock(mu_);
  file.download = *std::move(started);
  return OkStatus();
}

void FileCache::SettleDownload(CachedFile& file) {
  if (file.download == nullptr) return;
  std::optional<Status> finished = file.download->Finished();
  if (!finished || !finished->ok()) return;  // running, or failed: kept to report its error
  std::shared_ptr<BackgroundDownload> done;
  {
    std::lock_guard lock(mu_);
    done = std::move(file.download);
  }
  if (!file.dirty && !file.unlinked) WriteMeta(file);
}

Status FileCache::WaitToRead(std::unique_lock<std::mutex>& file_lock, CachedFile& file,
                             int64_t offset, int64_t length) {
  for (;;) {
    std::shared_ptr<BackgroundDownload> download = file.download;
    if (download == nullptr) return OkStatus();
    if (download->Has(offset, length)) {
      SettleDownload(file);
      return OkStatus();
    }
    file_lock.unlock();
    Status ready = download->WaitFor(offset, length);
    file_lock.lock();
    // Replaced meanwhile (another open found a newer version): wait on the new one.
    if (file.download != download) continue;
    return ready;
  }
}

Status FileCache::FinishDownload(CachedFile& file) {
  if (file.download == nullptr) return OkStatus();
  RETURN_IF_ERROR(file.download->WaitAll());
  SettleDownload(file);
  return OkStatus();
}

void FileCache::WriteMeta(const CachedFile& file) {
  std::string text = fmt::format("{}\n{}\n{}\n{}", kMetaHeader, file.etag, file.size, file.name);
  Status status = base::WriteFileAtomic(PathFor(file.key, ".meta"), text, 0600,
                                        base::FileSync::kProcessCrashSafe);
  if (!status.ok()) spdlog::warn("file cache: {}", status.message());
}

Result<std::shared_ptr<CachedFile>> FileCache::Acquire(const ObjectInfo& remote, bool* replaced,
                                                       bool truncating) {
  std::shared_ptr<CachedFile> file;
  {
    std::lock_guard lock(mu_);
    std::shared_ptr<CachedFile>& slot = files_[remote.name];
    if (slot == nullptr) {
      slot = std::make_shared<CachedFile>();
      slot->name = remote.name;
      slot->key = fmt::format("{:016x}", next_key_++);
    }
    file = slot;
    ++file->open_count;
  }
  std::lock_guard file_lock(file->mu);
  *replaced = false;
  if (file->dirty) return file;
  SettleDownload(*file);
  if (file->download != nullptr && file->download->Finished()) {
    file->etag.clear();  // failed: these bytes are no version, download again
  }
  if (file->etag == remote.etag && file->fd < 0) {
    std::string path = PathFor(file->key, ".data");
    file->fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  }
  if (file->etag == remote.etag && file->fd >= 0) return file;
  Status status = Download(*file, remote, truncating);
  if (!status.ok()) {
    Release(file);
    return status;
  }
  *replaced = true;
  return file;
}

Result<std::shared_ptr<CachedFile>> FileCache::AcquireNew(const std::string& name,
                                                          const std::string& etag,
                                                          const Metadata& metadata) {
  ObjectInfo empty;
  empty.name = name;
  empty.etag = etag;
  empty.metadata = metadata;
  Remove(name);  // any copy of an earlier object of this name is stale now
  bool replaced = false;
  return Acquire(empty, &replaced);
}

Result<std::shared_ptr<CachedFile>> FileCache::AcquireCreated(const std::string& name,
                                                              const Metadata& metadata) {
  ASSIGN_OR_RETURN(std::shared_ptr<CachedFile> file, AcquireNew(name, "", metadata));
  std::lock_guard file_lock(file->mu);
  Status dirty = MarkDirty(*file);
  if (!dirty.ok()) {
    Release(file);
    return dirty;
  }
  ObjectInfo pending;
  pending.name = name;
  pending.metadata = metadata;
  pending.last_modified_unix_ms =
      (options_.clock ? options_.clock : base::SystemClock::Get())->NowUnixMs();
  std::lock_guard lock(mu_);
  file->pending_create = std::move(pending);
  return file;
}

std::optional<ObjectInfo> FileCache::PendingCreate(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = files_.find(name);
  if (it == files_.end() || it->second->unlinked) return std::nullopt;
  return it->second->pending_create;
}

std::vector<ObjectInfo> FileCache::PendingCreates(const std::string& prefix) {
  std::vector<ObjectInfo> found;
  std::lock_guard lock(mu_);
  for (auto it = files_.lower_bound(prefix); it != files_.end(); ++it) {
    const std::string& name = it->first;
    if (name.compare(0, prefix.size(), prefix) != 0) break;
    if (name.find('/', prefix.size()) != std::string::npos) continue;  // deeper down
    if (it->second->pending_create && !it->second->unlinked) {
      found.push_back(*it->second->pending_create);
    }
  }
  return found;
}

void FileCache::Release(const std::shared_ptr<CachedFile>& file) {
  std::lock_guard lock(mu_);
  --file->open_count;
  file->last_close_ms = NowMs();
  // The last close of a copy that is still dirty (its upload failed and was reported)
  // drops it: the next open must see the store's version, not bytes that were refused.
  if (file->open_count == 0 && (file->unlinked || file->dirty)) {
    if (file->dirty && !file->unlinked) {
      spdlog::error("dropping unsaved changes to '{}' after a failed upload", file->name);
    }
    file->dirty = false;
    DropFilesLocked(*file);
    auto it = files_.find(file->name);
    if (it != files_.end() && it->second == file) files_.erase(it);
  }
  EvictLocked();
}

std::shared_ptr<CachedFile> FileCache::FindOpen(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = files_.find(name);
  if (it == files_.end() || it->second->open_count == 0) return nullptr;
  return it->second;
}

std::shared_ptr<CachedFile> FileCache::Find(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = files_.find(name);
  return it == files_.end() ? nullptr : it->second;
}

void FileCache::MetadataChanged(CachedFile& file, const std::string& old_etag,
                                const std::string& etag, const Metadata& metadata) {
  if (file.dirty || file.unlinked || file.etag != old_etag || file.fd < 0) return;
  SettleDownload(file);
  if (file.download != nullptr) return;  // still filling (or failed) from the old version
  // Under the cache's lock, so that eviction cannot drop the files between the check and
  // the new .meta.
  std::lock_guard lock(mu_);
  auto it = files_.find(file.name);
  if (it == files_.end() || it->second.get() != &file) return;
  file.etag = etag;
  file.metadata = metadata;
  WriteMeta(file);
}

Status FileCache::MarkDirty(CachedFile& file) {
  if (file.dirty) return OkStatus();
  RETURN_IF_ERROR(FinishDownload(file));
  // The .meta goes first: a crash after this leaves bytes that are never reused.
  ::unlink(PathFor(file.key, ".meta").c_str());
  file.dirty = true;
  return OkStatus();
}

void FileCache::Written(CachedFile& file, int64_t offset, int64_t length) {
  if (file.unlinked) return;  // never uploaded: nothing to stage
  if (file.staged == nullptr) {
    file.staged =
        StagedBlocks::Create(store_, options_.uploads, file.name, options_.upload.block_size_bytes);
  }
  file.staged->Changed(offset, length);
  const bool sequential = offset == 0 || offset == file.last_write_end;
  file.last_write_end = offset + length;
  if (!sequential) return;  // random writers stage everything at the commit
  const int64_t block_size = file.staged->block_size();
  for (int64_t index = offset / block_size; index < (offset + length) / block_size; ++index) {
    Result<std::shared_ptr<const std::string>> bytes =
        ReadCopy(file.fd, index * block_size, block_size, *buffers_);
    if (!bytes.ok()) return;  // the commit reads it again and reports the error
    file.staged->StageInBackground(index, std::move(*bytes));
  }
}

void FileCache::Resized(CachedFile& file, int64_t size) {
  if (file.staged != nullptr) file.staged->Resized(size);
}

Result<std::string> FileCache::UploadWith(CachedFile& file, const Condition& condition) {
  const int fd = file.fd;
  const bool any_staged = file.staged != nullptr && file.staged->staged_count() > 0;
  const int64_t block_size = options_.upload.block_size_bytes;
  if ((file.size <= options_.upload.single_put_max_bytes && !any_staged) ||
      (file.size + block_size - 1) / block_size > kMaxBlocksPerObject) {
    // Small and nothing staged: one Put. Too many blocks of this size: UploadObject raises
    // the block size and uploads it all again.
    UploadOptions upload = options_.upload;
    upload.metadata = file.metadata;
    upload.condition = condition;
    DataSource source;
    source.size_bytes = file.size;
    source.read = [fd, this](int64_t offset, int64_t length) -> Result<std::string> {
      ASSIGN_OR_RETURN(std::shared_ptr<const std::string> bytes,
                       ReadCopy(fd, offset, length, *buffers_));
      return *bytes;
    };
    return UploadObject(*store_, file.name, source, upload);
  }
  if (file.staged == nullptr) {
    file.staged = StagedBlocks::Create(store_, options_.uploads, file.name, block_size);
  }
  ASSIGN_OR_RETURN(std::vector<std::string> ids,
                   file.staged->StageAll(file.size, [fd, this](int64_t, int64_t offset,
                                                               int64_t length) {
                     return ReadCopy(fd, offset, length, *buffers_);
                   }));
  return store_->CommitBlocks(file.name, ids, file.metadata, condition);
}

Status FileCache::Upload(CachedFile& file) {
  SettleDownload(file);  // every close passes here: record a finished download's version
  if (!file.dirty || file.unlinked) return OkStatus();
  const Condition condition =
      file.etag.empty() ? Condition::IfNotExists() : Condition::IfMatch(file.etag);
  Result<std::string> etag = UploadWith(file, condition);
  bool created_here = false;
  {
    std::lock_guard lock(mu_);
    created_here = file.pending_create.has_value();
  }
  if (!etag.ok() && etag.status().code() == absl::StatusCode::kFailedPrecondition &&
      created_here) {
    // Created here with O_TRUNC, and meanwhile elsewhere: had this mount seen that file at
    // create, O_TRUNC would have replaced it, so replacing it now is what was asked.
    spdlog::info("'{}' was created elsewhere after this mount created it: replacing it (O_TRUNC)",
                 file.name);
    etag = UploadWith(file, Condition::None());
  }
  if (!etag.ok()) {
    if (etag.status().code() == absl::StatusCode::kFailedPrecondition) {
      spdlog::error(
          "not uploading '{}': it was changed or created elsewhere since this copy was opened "
          "({}); the local changes are kept only until the file is closed",
          file.name, etag.status().message());
    } else {
      spdlog::error("uploading '{}' failed: {}", file.name, etag.status().message());
    }
    return etag.status();
  }
  if (file.staged != nullptr) file.staged->Clear();
  file.etag = *etag;
  file.dirty = false;
  {
    std::lock_guard lock(mu_);
    file.pending_create.reset();
  }
  WriteMeta(file);
  return OkStatus();
}

std::vector<std::shared_ptr<CachedFile>> FileCache::CopiesUnder(const std::string& prefix) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<CachedFile>> copies;
  for (auto it = files_.lower_bound(prefix); it != files_.end() && it->first.starts_with(prefix);
       ++it) {
    copies.push_back(it->second);
  }
  return copies;
}

void FileCache::Rename(const std::string& from, const std::string& to, const std::string& to_etag) {
  std::lock_guard lock(mu_);
  if (auto old = files_.find(to); old != files_.end()) {
    old->second->unlinked = true;
    if (old->second->open_count == 0) DropFilesLocked(*old->second);
    files_.erase(old);
  }
  auto it = files_.find(from);
  if (it == files_.end()) return;
  std::shared_ptr<CachedFile> file = it->second;
  files_.erase(it);
  file->name = to;
  if (file->staged != nullptr) file->staged->Rename(to);
  // Copy gives the destination a new ETag; the bytes are the same, so keep them.
  file->etag = to_etag;
  if (!file->dirty && file->download == nullptr) WriteMeta(*file);
  files_[to] = file;
}

void FileCache::Remove(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = files_.find(name);
  if (it == files_.end()) return;
  it->second->unlinked = true;
  if (it->second->open_count == 0) DropFilesLocked(*it->second);
  files_.erase(it);
}

int64_t FileCache::used_bytes() {
  std::lock_guard lock(mu_);
  int64_t total = 0;
  for (const auto& [name, file] : files_) total += file->size;
  return total;
}

void FileCache::DropFilesLocked(CachedFile& file) {
  if (file.download != nullptr) file.download->Cancel();
  if (file.fd >= 0) ::close(file.fd);
  file.fd = -1;
  ::unlink(PathFor(file.key, ".meta").c_str());
  ::unlink(PathFor(file.key, ".data").c_str());
}

int64_t FileCache::FreeDiskBytes() const {
  struct statvfs st {};
  if (::statvfs(options_.dir.c_str(), &st) != 0) return INT64_MAX;  // unknown: do not block
  return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
}

bool FileCache::MakeRoom(int64_t bytes) {
  std::lock_guard lock(mu_);
  return EvictLocked(bytes);
}

bool FileCache::EvictLocked(int64_t incoming) {
  int64_t now_ms = NowMs();
  int64_t used = 0;
  std::vector<std::shared_ptr<CachedFile>> idle;
  for (const auto& [name, file] : files_) {
    used += file->size;
    if (file->open_count == 0 && !file->dirty) idle.push_back(file);
  }
  std::sort(idle.begin(), idle.end(),
            [](const auto& a, const auto& b) { return a->last_close_ms < b->last_close_ms; });
  const int64_t floor = options_.free_disk_floor_bytes;
  // Free space is asked once and then counted down: statvfs per file would be slow.
  int64_t free_bytes = floor > 0 ? FreeDiskBytes() : INT64_MAX;
  for (const std::shared_ptr<CachedFile>& file : idle) {
    bool expired = now_ms - file->last_close_ms >= options_.timeout_after_close_ms;
    bool over_cap = used + incoming > options_.capacity_bytes;
    bool under_floor = floor > 0 && free_bytes - incoming < floor;
    if (!over_cap && !under_floor && !expired) continue;
    used -= file->size;
    if (free_bytes != INT64_MAX) free_bytes += file->size;
    DropFilesLocked(*file);
    files_.erase(file->name);
  }
  return floor <= 0 || free_bytes - incoming >= floor;
}

}  // namespace meridian::storage::fs
