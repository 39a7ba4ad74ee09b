#include "storage/local_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/ascii.h"
#include "base/fd.h"
#include "base/files.h"
#include "base/hash.h"
#include "base/ids.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace meridian::storage {
namespace {

constexpr std::string_view kMagic = "meridian-object 1\n";
constexpr int64_t kMaxHeaderBytes = 64 << 10;
constexpr size_t kMaxFileNameBytes = 255;
constexpr std::string_view kObjectSuffix = "~o";
constexpr std::string_view kDirSuffix = "~d";
constexpr int64_t kCopyBufferBytes = 1 << 20;

// Holds the store-wide flock for as long as it lives.
class StoreLock {
 public:
  static Result<StoreLock> Acquire(const std::string& path) {
    base::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (fd.get() < 0) return base::ErrnoStatus("cannot open lock file", path, errno);
    while (::flock(fd.get(), LOCK_EX) != 0) {
      if (errno != EINTR) return base::ErrnoStatus("cannot lock", path, errno);
    }
    return StoreLock(std::move(fd));
  }

 private:
  explicit StoreLock(base::UniqueFd fd) : fd_(std::move(fd)) {}
  base::UniqueFd fd_;  // closing it releases the lock
};

bool KeepByte(unsigned char c) { return std::isalnum(c) || c == '.' || c == '_' || c == '-'; }

std::string EncodeComponent(std::string_view component) {
  std::string out;
  for (unsigned char c : component) {
    if (KeepByte(c)) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

bool DecodeComponent(std::string_view encoded, std::string* out) {
  out->clear();
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] != '%') {
      out->push_back(encoded[i]);
      continue;
    }
    if (i + 2 >= encoded.size()) return false;
    unsigned value = 0;
    for (int j = 1; j <= 2; ++j) {
      const char c = encoded[i + j];
      value <<= 4;
      if (c >= '0' && c <= '9')
        value |= c - '0';
      else if (c >= 'A' && c <= 'F')
        value |= c - 'A' + 10;
      else
        return false;
    }
    out->push_back(static_cast<char>(value));
    i += 2;
  }
  return true;
}

// A new ETag per write: 64 random bits, so a rewrite with the same bytes still changes it.
std::string NewEtag() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return fmt::format("\"0x{:016X}\"", engine());
}

struct Header {
  std::string etag;
  int64_t last_modified_unix_ms = 0;
  std::optional<std::string> content_md5;
  Metadata metadata;
};

std::string SerializeHeader(const Header& header) {
  nlohmann::json json = {{"etag", header.etag},
                         {"last_modified_unix_ms", header.last_modified_unix_ms},
                         {"metadata", header.metadata}};
  if (header.content_md5) json["content_md5"] = *header.content_md5;
  const std::string text = json.dump();
  return fmt::format("{}{}\n{}", kMagic, text.size(), text);
}

// Reads up to `length` bytes at `offset`; fewer only at the end of the file.
Result<std::string> ReadAt(int fd, int64_t offset, int64_t length, const std::string& path) {
  std::string out(static_cast<size_t>(length), '\0');
  int64_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd, out.data() + done, length - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus("cannot read", path, errno);
    if (n == 0) break;
    done += n;
  }
  out.resize(done);
  return out;
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus("cannot write", path, errno);
    data.remove_prefix(n);
  }
  return OkStatus();
}

Status CorruptError(const std::string& path, std::string_view why) {
  return absl::DataLossError(fmt::format("local object file {} is corrupt: {}", path, why));
}

Result<Header> ParseHeaderJson(const std::string& text, const std::string& path) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return CorruptError(path, "header is not JSON");
  Header header;
  auto etag = json.find("etag");
  if (etag == json.end() || !etag->is_string()) return CorruptError(path, "no etag");
  header.etag = etag->get<std::string>();
  auto modified = json.find("last_modified_unix_ms");
  if (modified == json.end() || !modified->is_number_integer()) {
    return CorruptError(path, "no last_modified_unix_ms");
  }
  header.last_modified_unix_ms = modified->get<int64_t>();
  auto md5 = json.find("content_md5");
  if (md5 != json.end()) {
    if (!md5->is_string()) return CorruptError(path, "content_md5 is not a string");
    header.content_md5 = md5->get<std::string>();
  }
  auto metadata = json.find("metadata");
  if (metadata == json.end() || !metadata->is_object()) return CorruptError(path, "no metadata");
  for (const auto& [key, value] : metadata->items()) {
    if (!value.is_string()) return CorruptError(path, fmt::format("metadata '{}'", key));
    header.metadata[key] = value.get<std::string>();
  }
  return header;
}

// An object file opened for reading: the header, and the data that follows it.
class ObjectFile {
 public:
  // kNotFound naming `name` when there is no such object.
  static Result<ObjectFile> Open(const std::string& path, const std::string& name) {
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        return absl::NotFoundError(fmt::format("object '{}' not found", name));
      }
      return base::ErrnoStatus("cannot open", path, errno);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return base::ErrnoStatus("cannot stat", path, errno);
    ASSIGN_OR_RETURN(std::string prefix, ReadAt(fd.get(), 0, kMagic.size() + 16, path));
    if (prefix.compare(0, kMagic.size(), kMagic) != 0) return CorruptError(path, "bad magic");
    const size_t newline = prefix.find('\n', kMagic.size());
    if (newline == std::string::npos) return CorruptError(path, "no header length");
    int64_t header_bytes = 0;
    for (size_t i = kMagic.size(); i < newline; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(prefix[i])) || header_bytes > kMaxHeaderBytes) {
        return CorruptError(path, "bad header length");
      }
      header_bytes = header_bytes * 10 + (prefix[i] - '0');
    }
    const int64_t data_offset = static_cast<int64_t>(newline) + 1 + header_bytes;
    if (header_bytes > kMaxHeaderBytes || data_offset > st.st_size) {
      return CorruptError(path, "header length out of range");
    }
    ASSIGN_OR_RETURN(std::string text, ReadAt(fd.get(), newline + 1, header_bytes, path));
    ASSIGN_OR_RETURN(Header header, ParseHeaderJson(text, path));
    return ObjectFile(std::move(fd), std::move(header), data_offset, st.st_size - data_offset);
  }

  const Header& header() const { return header_; }
  int64_t size() const { return size_; }
  int fd() const { return fd_.get(); }
  int64_t data_offset() const { return data_offset_; }

 private:
  ObjectFile(base::UniqueFd fd, Header header, int64_t data_offset, int64_t size)
      : fd_(std::move(fd)), header_(std::move(header)), data_offset_(data_offset), size_(size) {}

  base::UniqueFd fd_;
  Header header_;
  int64_t data_offset_;
  int64_t size_;
};

Status CheckCondition(const std::string& path, const std::string& name,
                      const Condition& condition) {
  if (condition.if_match.empty() && !condition.if_none_match_any) return OkStatus();
  Result<ObjectFile> current = ObjectFile::Open(path, name);
  if (!current.ok() && !absl::IsNotFound(current.status())) return current.status();
  const std::string etag = current.ok() ? current->header().etag : "";
  if (condition.if_none_match_any && current.ok()) {
    return ConditionFailedError(name, condition, etag);
  }
  if (!condition.if_match.empty() && etag != condition.if_match) {
    return ConditionFailedError(name, condition, etag);
  }
  return OkStatus();
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

struct DirEntry {
  std::string key;        // the object name, or for a directory the name prefix ending in '/'
  std::string file_name;  // as on disk
  bool is_dir = false;
};

// The entries of one objects/ directory, sorted by key. A missing directory is empty (a
// concurrent delete may have removed it).
Result<std::vector<DirEntry>> ReadSortedDir(const std::string& dir, const std::string& key_prefix) {
  std::vector<DirEntry> entries;
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) {
    if (errno == ENOENT || errno == ENOTDIR) return entries;
    return base::ErrnoStatus("cannot list", dir, errno);
  }
  while (struct dirent* entry = ::readdir(handle)) {
    std::string_view file_name = entry->d_name;
    const bool is_dir = file_name.ends_with(kDirSuffix);
    if (!is_dir && !file_name.ends_with(kObjectSuffix)) continue;  // ".", "..", strangers
    std::string component;
    if (!DecodeComponent(file_name.substr(0, file_name.size() - 2), &component)) continue;
    entries.push_back(
        {key_prefix + component + (is_dir ? "/" : ""), std::string(file_name), is_dir});
  }
  ::closedir(handle);
  std::sort(entries.begin(), entries.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.key < b.key; });
  return entries;
}

// Walks objects/ depth first in name order, collecting up to max_results + 1 page entries
// (the extra one tells whether there is a next page) and skipping whole directories that
// lie before the marker, outside the prefix, or inside a common prefix already emitted.
class ListWalker {
 public:
  struct Item {
    std::string key;
    bool is_prefix;
  };

  explicit ListWalker(const ListOptions& options) : options_(options) {
    const std::string& marker = options.marker;
    if (!options.delimiter.empty() && marker.size() > options.prefix.size() &&
        StartsWith(marker, options.prefix) && marker.ends_with(options.delimiter)) {
      last_prefix_ = marker;  // the marker is a common prefix: skip everything under it
    }
  }

  Status Walk(const std::string& dir, const std::string& key_prefix) {
    ASSIGN_OR_RETURN(std::vector<DirEntry> entries, ReadSortedDir(dir, key_prefix));
    for (const DirEntry& entry : entries) {
      if (Full()) return OkStatus();
      if (entry.is_dir) {
        if (!SubtreeMayMatch(entry.key)) continue;
        RETURN_IF_ERROR(Walk(fmt::format("{}/{}", dir, entry.file_name), entry.key));
      } else {
        Visit(entry.key);
      }
    }
    return OkStatus();
  }

  bool Full() const { return static_cast<int>(items_.size()) > options_.max_results; }
  std::vector<Item>& items() { return items_; }

 private:
  bool SubtreeMayMatch(const std::string& key) const {
    const std::string& prefix = options_.prefix;
    const std::string& marker = options_.marker;
    if (!StartsWith(key, prefix) && !StartsWith(prefix, key)) return false;
    if (marker > key && !StartsWith(marker, key)) return false;  // all of it <= marker
    return last_prefix_.empty() || !StartsWith(key, last_prefix_);
  }

  void Visit(const std::string& name) {
    if (!StartsWith(name, options_.prefix)) return;
    if (!options_.marker.empty() && name <= options_.marker) return;
    if (!options_.delimiter.empty()) {
      const size_t at = name.find(options_.delimiter, options_.prefix.size());
      if (at != std::string::npos) {
        std::string common = name.substr(0, at + options_.delimiter.size());
        if (common == last_prefix_) return;
        last_prefix_ = common;
        items_.push_back({std::move(common), true});
        return;
      }
    }
    items_.push_back({name, false});
  }

  const ListOptions& options_;
  std::string last_prefix_;
  std::vector<Item> items_;
};

}  // namespace

// A file being written in .staging/tmp; removed unless it was renamed into place.
class LocalStore::TempFile {
 public:
  TempFile(std::string path, base::UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  TempFile(TempFile&& other) noexcept
      : path_(std::exchange(other.path_, "")), fd_(std::move(other.fd_)) {}
  ~TempFile() {
    fd_ = base::UniqueFd();
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  Status Append(std::string_view data) { return WriteAll(fd_.get(), data, path_); }

  // Appends `length` bytes of `fd` from `offset`.
  Status AppendFrom(int fd, int64_t offset, int64_t length, const std::string& from) {
    while (length > 0) {
      ASSIGN_OR_RETURN(std::string chunk,
                       ReadAt(fd, offset, std::min(length, kCopyBufferBytes), from));
      if (chunk.empty()) return CorruptError(from, "shorter than expected");
      RETURN_IF_ERROR(Append(chunk));
      offset += chunk.size();
      length -= chunk.size();
    }
    return OkStatus();
  }

  Status Close(bool fsync) {
    if (fsync && ::fsync(fd_.get()) != 0) return base::ErrnoStatus("cannot fsync", path_, errno);
    fd_ = base::UniqueFd();
    return OkStatus();
  }

  // Renames the file to `target`; from then on this object no longer owns it.
  Status RenameTo(const std::string& target) {
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      return base::ErrnoStatus("cannot rename into place", target, errno);
    }
    path_.clear();
    return OkStatus();
  }

 private:
  std::string path_;
  base::UniqueFd fd_;
};

LocalStore::LocalStore(std::string root, LocalStoreOptions options)
    : root_(std::move(root)),
      objects_dir_(root_ + "/objects"),
      tmp_dir_(root_ + "/.staging/tmp"),
      blocks_dir_(root_ + "/.staging/blocks"),
      lock_path_(root_ + "/.lock"),
      options_(options) {}

Result<std::unique_ptr<LocalStore>> LocalStore::Open(const std::string& root,
                                                     LocalStoreOptions options) {
  if (root.empty()) return absl::InvalidArgumentError("local store root is empty");
  if (options.clock == nullptr) options.clock = base::SystemClock::Get();
  std::unique_ptr<LocalStore> store(new LocalStore(root, options));
  RETURN_IF_ERROR(base::MakeDirs(store->objects_dir_));
  RETURN_IF_ERROR(base::MakeDirs(store->tmp_dir_));
  RETURN_IF_ERROR(base::MakeDirs(store->blocks_dir_));
  return store;
}

Result<std::string> LocalStore::ObjectPath(const std::string& name) const {
  RETURN_IF_ERROR(ValidateObjectName(name));
  std::string path = objects_dir_;
  size_t start = 0;
  while (true) {
    const size_t slash = name.find('/', start);
    const bool last = slash == std::string::npos;
    const std::string encoded =
        EncodeComponent(std::string_view(name).substr(start, last ? name.npos : slash - start));
    if (encoded.size() + kObjectSuffix.size() > kMaxFileNameBytes) {
      return absl::InvalidArgumentError(
          fmt::format("object name '{}' has a component too long for the local store", name));
    }
    path += fmt::format("/{}{}", encoded, last ? kObjectSuffix : kDirSuffix);
    if (last) return path;
    start = slash + 1;
  }
}

std::string LocalStore::BlockDir(const std::string& name) const {
  return fmt::format("{}/{}", blocks_dir_, base::Sha256Hex(name));
}

Result<LocalStore::TempFile> LocalStore::NewObjectFile(const Metadata& metadata,
                                                       std::optional<std::string> md5,
                                                       std::string* etag) {
  const std::string path = fmt::format("{}/{}", tmp_dir_, base::NewId("tmp"));
  base::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) return base::ErrnoStatus("cannot create", path, errno);
  TempFile temp(path, std::move(fd));
  Header header;
  header.etag = NewEtag();
  header.last_modified_unix_ms = options_.clock->NowUnixMs();
  header.content_md5 = std::move(md5);
  for (const auto& [key, value] : metadata) {
    header.metadata[absl::AsciiStrToLower(key)] = value;
  }
  RETURN_IF_ERROR(temp.Append(SerializeHeader(header)));
  *etag = header.etag;
  return temp;
}

Status LocalStore::Publish(const std::string& name, TempFile& temp, const Condition& condition) {
  RETURN_IF_ERROR(temp.Close(options_.fsync));
  ASSIGN_OR_RETURN(std::string path, ObjectPath(name));
  ASSIGN_OR_RETURN(StoreLock lock, StoreLock::Acquire(lock_path_));
  RETURN_IF_ERROR(CheckCondition(path, name, condition));
  RETURN_IF_ERROR(base::MakeDirs(path.substr(0, path.rfind('/'))));
  return temp.RenameTo(path);
}

Status LocalStore::RemoveEmptyParents(const std::string& path) const {
  std::string dir = path.substr(0, path.rfind('/'));
  while (dir.size() > objects_dir_.size()) {
    if (::rmdir(dir.c_str()) != 0) return OkStatus();  // not empty (or gone): stop
    dir.resize(dir.rfind('/'));
  }
  return OkStatus();
}

Result<ObjectInfo> LocalStore::Head(const std::string& name) {
  ASSIGN_OR_RETURN(std::string path, ObjectPath(name));
  ASSIGN_OR_RETURN(ObjectFile file, ObjectFile::Open(path, name));
  ObjectInfo info;
  info.name = name;
  info.size = file.size();
  info.etag = file.header().etag;
  info.last_modified_unix_ms = file.header().last_modified_unix_ms;
  info.content_md5 = file.header().content_md5;
  info.metadata = file.header().metadata;
  return info;
}

Result<std::string> LocalStore::GetRange(const std::string& name, int64_t offset, int64_t length,
                                         const Condition& condition) {
  if (condition.if_none_match_any) {
    return absl::InvalidArgumentError("reads take if_match conditions only");
  }
  if (offset < 0 || length < -1) {
    return absl::InvalidArgumentError(
        fmt::format("bad range offset {} length {} for '{}'", offset, length, name));
  }
  ASSIGN_OR_RETURN(std::string path, ObjectPath(name));
  ASSIGN_OR_RETURN(ObjectFile file, ObjectFile::Open(path, name));
  if (!condition.if_match.empty() && condition.if_match != file.header().etag) {
    return ConditionFailedError(name, condition, file.header().etag);
  }
  if (offset > file.size()) {
    return absl::OutOfRangeError(
        fmt::format("offset {} is past the end of '{}' ({} bytes)", offset, name, file.size()));
  }
  const int64_t available = file.size() - offset;
  const int64_t want = length < 0 ? available : std::min(length, available);
  return ReadAt(file.fd(), file.data_offset() + offset, want, path);
}

Result<std::string> LocalStore::Put(const std::string& name, std::string_view data,
                                    const Metadata& metadata, const Condition& condition) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  RETURN_IF_ERROR(ValidateMetadata(metadata));
  RETURN_IF_ERROR(ValidateCondition(condition));
  std::string etag;
  ASSIGN_OR_RETURN(TempFile temp, NewObjectFile(metadata, ContentMd5(data), &etag));
  RETURN_IF_ERROR(temp.Append(data));
  RETURN_IF_ERROR(Publish(name, temp, condition));
  return etag;
}

Status LocalStore::StageBlock(const std::string& name, const std::string& block_id,
                              std::string_view data) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  RETURN_IF_ERROR(ValidateBlockId(block_id));
  const std::string dir = BlockDir(name);
  const std::string temp_path = fmt::format("{}/{}", tmp_dir_, base::NewId("blk"));
  {
    base::UniqueFd fd(::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) return base::ErrnoStatus("cannot create", temp_path, errno);
    TempFile temp(temp_path, std::move(fd));
    RETURN_IF_ERROR(temp.Append(data));
    RETURN_IF_ERROR(temp.Close(options_.fsync));
    // Under the lock so that a concurrent commit's cleanup of `dir` cannot race the rename.
    ASSIGN_OR_RETURN(StoreLock lock, StoreLock::Acquire(lock_path_));
    RETURN_IF_ERROR(base::MakeDirs(dir));
    RETURN_IF_ERROR(temp.RenameTo(fmt::format("{}/{}", dir, base::HexEncode(block_id))));
  }
  return OkStatus();
}

Result<std::string> LocalStore::CommitBlocks(const std::string& name,
                                             const std::vector<std::string>& block_ids,
                                             const Metadata& metadata, const Condition& condition) {
  RETURN_IF_ERROR(ValidateObjectName(name));
  RETURN_IF_ERROR(ValidateMetadata(metadata));
  RETURN_IF_ERROR(ValidateCondition(condition));
  RETURN_IF_ERROR(ValidateBlockList(name, block_ids));
  const std::string dir = BlockDir(name);
  std::string etag;
  ASSIGN_OR_RETURN(TempFile temp, NewObjectFile(metadata, std::nullopt, &etag));
  for (const std::string& id : block_ids) {
    const std::string block_path = fmt::format("{}/{}", dir, base::HexEncode(id));
    base::UniqueFd fd(::open(block_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) {
        return absl::InvalidArgumentError(
            fmt::format("block '{}' of '{}' was not staged", id, name));
      }
      return base::ErrnoStatus("cannot open block", block_path, errno);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return base::ErrnoStatus("cannot stat", block_path, errno);
    RETURN_IF_ERROR(temp.AppendFrom(fd.get(), 0, st.st_size, block_path));
  }
  RETURN_IF_ERROR(Publish(name, temp, condition));
  // Committing discards the object's other uncommitted blocks, as Azure does.
  ASSIGN_OR_RETURN(StoreLock lock, StoreLock::Acquire(lock_path_));
  RETURN_IF_ERROR(base::RemoveAll(dir));
  return etag;
}

Result<std::string> LocalStore::SetMetadata(const std::string& name, const Metadata& metadata,
                                            const Condition& condition) {
  RETURN_IF_ERROR(ValidateMetadata(metadata));
  if (condition.if_none_match_any) {
    return absl::InvalidArgumentError("SetMetadata takes if_match conditions only");
  }
  ASSIGN_OR_RETURN(std::string path, ObjectPath(name));
  // The metadata lives in the object's file, so the bytes are copied into a new one. It is
  // published only over the version they came from; a write that lands in between (possible
  // only without a condition, since the caller's If-Match named that version) is retried.
  constexpr int kMaxAttempts = 8;
  for (int attempt = 1;; ++attempt) {
    ASSIGN_OR_RETURN(ObjectFile file, ObjectFile::Open(path, name));
    if (!condition.if_match.empty() && condition.if_match != file.header().etag) {
      return ConditionFailedError(name, condition, file.header().etag);
    }
    std::string etag;
    ASSIGN_OR_RETURN(TempFile temp, NewObjectFile(metadata, file.header().content_md5, &etag));
    RETURN_IF_ERROR(temp.AppendFrom(file.fd(), file.data_offset(), file.size(), path));
    Status published = Publish(name, temp, Condition::IfMatch(file.header().etag));
    if (published.ok()) return etag;
    if (!absl::IsFailedPrecondition(published) || !condition.if_match.empty() ||
        attempt == kMaxAttempts) {
      return published;
    }
  }
}

Status LocalStore::Delete(const std::string& name, const Condition& condition) {
  if (condition.if_none_match_any) {
    return absl::InvalidArgumentError("Delete takes if_match conditions only");
  }
  ASSIGN_OR_RETURN(std::string path, ObjectPath(name));
  ASSIGN_OR_RETURN(StoreLock lock, StoreLock::Acquire(lock_path_));
  ASSIGN_OR_RETURN(ObjectFile current, ObjectFile::Open(path, name));
  if (!condition.if_match.empty() && condition.if_match != current.header().etag) {
    return ConditionFailedError(name, condition, current.header().etag);
  }
  if (::unlink(path.c_str()) != 0) return base::ErrnoStatus("cannot delete", path, errno);
  return RemoveEmptyParents(path);
}

Result<std::string> LocalStore::Copy(const std::string& source, const std::string& destination) {
  ASSIGN_OR_RETURN(std::string source_path, ObjectPath(source));
  RETURN_IF_ERROR(ValidateObjectName(destination));
  // The open descriptor pins one version of the source even if it is replaced meanwhile.
  ASSIGN_OR_RETURN(ObjectFile file, ObjectFile::Open(source_path, source));
  std::string etag;
  ASSIGN_OR_RETURN(TempFile temp,
                   NewObjectFile(file.header().metadata, file.header().content_md5, &etag));
  RETURN_IF_ERROR(temp.AppendFrom(file.fd(), file.data_offset(), file.size(), source_path));
  RETURN_IF_ERROR(Publish(destination, temp, Condition::None()));
  return etag;
}

Result<ListPage> LocalStore::List(const ListOptions& options) {
  if (options.max_results <= 0) {
    return absl::InvalidArgumentError(
        fmt::format("max_results must be positive, not {}", options.max_results));
  }
  ListOptions clamped = options;
  clamped.max_results = std::min(options.max_results, kMaxListResults);
  ListWalker walker(clamped);
  RETURN_IF_ERROR(walker.Walk(objects_dir_, ""));
  ListPage page;
  std::vector<ListWalker::Item>& items = walker.items();
  if (walker.Full()) {
    items.resize(clamped.max_results);
    page.next_marker = items.back().key;
  }
  for (ListWalker::Item& item : items) {
    if (item.is_prefix) {
      page.common_prefixes.push_back(std::move(item.key));
      continue;
    }
    Result<ObjectInfo> info = Head(item.key);
    if (absl::IsNotFound(info.status())) continue;  // deleted while listing
    if (!info.ok()) return info.status();
    page.objects.push_back(*std::move(info));
  }
  return page;
}

}  // namespace meridian::storage
