#include "base/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "base/files.h"
#include "fmt/format.h"

namespace meridian::base {
namespace {

constexpr size_t kBlockBytes = 512;
constexpr size_t kChunkBytes = 64 * 1024;
constexpr int64_t kMaxEntries = 1'000'000;
constexpr size_t kMaxPathBytes = 4096;
constexpr int kMaxDepth = 256;
constexpr int64_t kMaxPaxBytes = 1 << 20;
// ustar's 12-byte size field holds 11 octal digits; larger files carry a pax "size".
constexpr uint64_t kMaxUstarSize = 077777777777ULL;
constexpr int64_t kMiB = 1 << 20;

Status ErrnoError(std::string_view what, const std::string& path, int err) {
  std::string message = fmt::format("{} {}: {}", what, path, std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  if (err == ENOSPC) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

std::string JoinPath(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  return a + "/" + b;
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// ---- excludes: .gitignore-style patterns over relative paths ----

struct ExcludePattern {
  std::vector<std::string> segments;  // "**" is a segment of its own
  bool dir_only = false;
};

// Segment-wise match where "**" matches zero or more whole names.
bool MatchSegments(const std::vector<std::string>& pattern, size_t p,
                   const std::vector<std::string>& path, size_t s) {
  if (p == pattern.size()) return s == path.size();
  if (pattern[p] == "**") {
    for (size_t skip = s; skip <= path.size(); ++skip) {
      if (MatchSegments(pattern, p + 1, path, skip)) return true;
    }
    return false;
  }
  if (s == path.size()) return false;
  if (::fnmatch(pattern[p].c_str(), path[s].c_str(), 0) != 0) return false;
  return MatchSegments(pattern, p + 1, path, s + 1);
}

class ExcludeMatcher {
 public:
  static Result<ExcludeMatcher> Create(const std::vector<std::string>& excludes) {
    ExcludeMatcher matcher;
    for (const std::string& raw : excludes) {
      std::string text = raw;
      if (text.empty()) continue;
      if (text[0] == '!') {
        return absl::InvalidArgumentError(fmt::format(
            "excludes: negated pattern '{}' is not supported; list only what to leave out", raw));
      }
      ExcludePattern pattern;
      if (text.back() == '/') {
        pattern.dir_only = true;
        while (!text.empty() && text.back() == '/') text.pop_back();
      }
      // Without a slash a pattern matches a name at any depth, like "**/name".
      bool anchored = text.find('/') != std::string::npos;
      if (!anchored) pattern.segments.push_back("**");
      for (std::string& segment : SplitPath(text)) {
        if (segment != ".") pattern.segments.push_back(std::move(segment));
      }
      if (pattern.segments.empty() || (pattern.segments.size() == 1 && !anchored)) continue;
      matcher.patterns_.push_back(std::move(pattern));
    }
    return matcher;
  }

  bool Excluded(const std::string& relative_path, bool is_dir) const {
    std::vector<std::string> path = SplitPath(relative_path);
    for (const ExcludePattern& pattern : patterns_) {
      if (pattern.dir_only && !is_dir) continue;
      if (MatchSegments(pattern.segments, 0, path, 0)) return true;
    }
    return false;
  }

 private:
  std::vector<ExcludePattern> patterns_;
};

// ---- walking the tree ----

struct Entry {
  std::string path;  // relative, '/'-separated, no trailing slash
  char type = '0';   // '0' file, '5' directory, '2' symlink
  mode_t mode = 0;
  int64_t size = 0;
  std::string link_target;
};

class Walker {
 public:
  Walker(const std::string& root, const ExcludeMatcher& matcher) : root_(root), matcher_(matcher) {}

  Status Walk(const std::string& relative, int depth) {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(fmt::format("{} is nested deeper than {} directories",
                                                    JoinPath(root_, relative), kMaxDepth));
    }
    std::string directory = relative.empty() ? root_ : JoinPath(root_, relative);
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListSorted(directory));
    for (const std::string& name : names) {
      std::string child = JoinPath(relative, name);
      std::string full = JoinPath(root_, child);
      struct stat info;
      if (::lstat(full.c_str(), &info) != 0) {
        if (errno == ENOENT) continue;  // removed since listed
        return ErrnoError("cannot stat", full, errno);
      }
      bool is_dir = S_ISDIR(info.st_mode);
      if (matcher_.Excluded(child, is_dir)) continue;
      if (!S_ISDIR(info.st_mode) && !S_ISREG(info.st_mode) && !S_ISLNK(info.st_mode)) continue;
      if (child.size() > kMaxPathBytes) {
        return absl::InvalidArgumentError(
            fmt::format("{}: path longer than {} bytes", full, kMaxPathBytes));
      }
      if (static_cast<int64_t>(entries_.size()) >= kMaxEntries) {
        return absl::ResourceExhaustedError(fmt::format(
            "{} has more than {} files and directories; add some to excludes", root_, kMaxEntries));
      }
      Entry entry{child, '0', info.st_mode & 0777, 0, ""};
      if (is_dir) {
        entry.type = '5';
      } else if (S_ISLNK(info.st_mode)) {
        entry.type = '2';
        ASSIGN_OR_RETURN(entry.link_target, ReadLink(full, info.st_size));
      } else {
        entry.size = info.st_size;
        total_bytes_ += info.st_size;
      }
      entries_.push_back(std::move(entry));
      if (is_dir) RETURN_IF_ERROR(Walk(child, depth + 1));
    }
    return OkStatus();
  }

  std::vector<Entry>& entries() { return entries_; }
  int64_t total_bytes() const { return total_bytes_; }

 private:
  static Result<std::vector<std::string>> ListSorted(const std::string& directory) {
    std::unique_ptr<DIR, int (*)(DIR*)> handle(::opendir(directory.c_str()), &::closedir);
    if (handle == nullptr) return ErrnoError("cannot open directory", directory, errno);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* item = ::readdir(handle.get())) {
      std::string name = item->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    if (errno != 0) return ErrnoError("cannot list", directory, errno);
    std::sort(names.begin(), names.end());  // byte order: the same on every machine
    return names;
  }

  static Result<std::string> ReadLink(const std::string& path, off_t size_hint) {
    std::string target(std::max<size_t>(static_cast<size_t>(size_hint), 1) + 1, '\0');
    ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    if (n < 0) return ErrnoError("cannot read link", path, errno);
    if (static_cast<size_t>(n) >= target.size() || static_cast<size_t>(n) > kMaxPathBytes) {
      return absl::InvalidArgumentError(fmt::format("{}: link target too long", path));
    }
    target.resize(static_cast<size_t>(n));
    return target;
  }

  const std::string& root_;
  const ExcludeMatcher& matcher_;
  std::vector<Entry> entries_;
  int64_t total_bytes_ = 0;
};

// ---- gzip output with a size limit ----

class GzipWriter {
 public:
  explicit GzipWriter(int64_t max_bytes) : max_bytes_(max_bytes) {
    std::memset(&stream_, 0, sizeof(stream_));
    // windowBits 15 + 16: a gzip wrapper with mtime 0 and no file name, so output is stable.
    ok_ = deflateInit2(&stream_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                       Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~GzipWriter() {
    if (ok_) deflateEnd(&stream_);
  }
  GzipWriter(const GzipWriter&) = delete;
  GzipWriter& operator=(const GzipWriter&) = delete;

  Status Write(std::string_view data) { return Deflate(data, Z_NO_FLUSH); }

  Result<std::string> Finish() {
    RETURN_IF_ERROR(Deflate("", Z_FINISH));
    return std::move(out_);
  }

 private:
  Status Deflate(std::string_view data, int flush) {
    if (!ok_) return absl::InternalError("cannot initialise zlib");
    stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream_.avail_in = static_cast<uInt>(data.size());
    char buffer[kChunkBytes];
    int result = Z_OK;
    do {
      stream_.next_out = reinterpret_cast<Bytef*>(buffer);
      stream_.avail_out = sizeof(buffer);
      result = deflate(&stream_, flush);
      if (result == Z_STREAM_ERROR) return absl::InternalError("zlib deflate failed");
      out_.append(buffer, sizeof(buffer) - stream_.avail_out);
      if (static_cast<int64_t>(out_.size()) > max_bytes_) {
        return absl::ResourceExhaustedError(fmt::format(
            "working_dir packs to more than {} MiB, above the limit of {} MiB; add large files "
            "to excludes",
            static_cast<int64_t>(out_.size()) / kMiB, max_bytes_ / kMiB));
      }
    } while (stream_.avail_out == 0 || (flush == Z_FINISH && result != Z_STREAM_END));
    return OkStatus();
  }

  int64_t max_bytes_;
  z_stream stream_;
  bool ok_ = false;
  std::string out_;
};

// ---- tar headers ----

void PutOctal(char* field, size_t width, uint64_t value) {
  // width - 1 digits and a NUL, zero-padded, as ustar readers expect.
  std::string digits = fmt::format("{:0{}o}", value, width - 1);
  std::memcpy(field, digits.data(), width - 1);
  field[width - 1] = '\0';
}

void PutString(char* field, size_t width, std::string_view text) {
  std::memcpy(field, text.data(), std::min(width, text.size()));
}

std::string UstarHeader(std::string_view name, char type, mode_t mode, uint64_t size,
                        std::string_view link_name) {
  std::string header(kBlockBytes, '\0');
  char* h = header.data();
  PutString(h, 100, name);
  PutOctal(h + 100, 8, mode);
  PutOctal(h + 108, 8, 0);  // uid
  PutOctal(h + 116, 8, 0);  // gid
  PutOctal(h + 124, 12, size);
  PutOctal(h + 136, 12, 0);  // mtime: zero, so the same tree packs to the same bytes
  h[156] = type;
  PutString(h + 157, 100, link_name);
  std::memcpy(h + 257,
              "ustar\0"
              "00",
              8);
  // uname and gname stay empty; devmajor/devminor are zero.
  PutOctal(h + 329, 8, 0);
  PutOctal(h + 337, 8, 0);
  std::memset(h + 148, ' ', 8);
  unsigned checksum = 0;
  for (unsigned char c : header) checksum += c;
  std::string text = fmt::format("{:06o}", checksum);
  std::memcpy(h + 148, text.data(), 6);
  h[154] = '\0';
  h[155] = ' ';
  return header;
}

// "<length> <key>=<value>\n" where <length> counts the whole record, its own digits included.
std::string PaxRecord(std::string_view key, std::string_view value) {
  size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t length = body + 1;
  while (std::to_string(length).size() + body != length) ++length;
  return fmt::format("{} {}={}\n", length, key, value);
}

std::string Padding(uint64_t size) {
  return std::string((kBlockBytes - size % kBlockBytes) % kBlockBytes, '\0');
}

Status WriteHeaders(GzipWriter& out, const Entry& entry) {
  std::string name = entry.type == '5' ? entry.path + "/" : entry.path;
  std::string pax;
  if (name.size() > 100) pax += PaxRecord("path", name);
  if (entry.link_target.size() > 100) pax += PaxRecord("linkpath", entry.link_target);
  if (static_cast<uint64_t>(entry.size) > kMaxUstarSize) {
    pax += PaxRecord("size", std::to_string(entry.size));
  }
  if (!pax.empty()) {
    RETURN_IF_ERROR(out.Write(UstarHeader("././@PaxHeader", 'x', 0644, pax.size(), "")));
    RETURN_IF_ERROR(out.Write(pax + Padding(pax.size())));
  }
  uint64_t ustar_size = static_cast<uint64_t>(entry.size) > kMaxUstarSize ? 0 : entry.size;
  return out.Write(UstarHeader(std::string_view(name).substr(0, 100), entry.type, entry.mode,
                               ustar_size, std::string_view(entry.link_target).substr(0, 100)));
}

Status WriteFileData(GzipWriter& out, const std::string& path, int64_t size, int64_t& done,
                     int64_t total, const PackOptions& options) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("cannot open", path, errno);
  std::string buffer(kChunkBytes, '\0');
  int64_t left = size;
  while (left > 0) {
    size_t want = static_cast<size_t>(std::min<int64_t>(left, kChunkBytes));
    ssize_t n = ::read(fd.get(), buffer.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("cannot read", path, errno);
    if (n == 0) {
      return absl::AbortedError(
          fmt::format("{} shrank while it was being packed; try again", path));
    }
    RETURN_IF_ERROR(out.Write(std::string_view(buffer.data(), static_cast<size_t>(n))));
    left -= n;
    done += n;
    if (options.progress) options.progress(done, total);
  }
  return out.Write(Padding(static_cast<uint64_t>(size)));
}

}  // namespace

Result<std::string> PackDirectory(const std::string& dir, const PackOptions& options) {
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0) return ErrnoError("cannot pack", dir, errno);
  if (!S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(fmt::format("{} is not a directory", dir));
  }
  ASSIGN_OR_RETURN(ExcludeMatcher matcher, ExcludeMatcher::Create(options.excludes));
  Walker walker(dir, matcher);
  RETURN_IF_ERROR(walker.Walk("", 0));
  GzipWriter out(options.max_bytes);
  int64_t done = 0;
  int64_t total = walker.total_bytes();
  if (options.progress) options.progress(0, total);
  for (const Entry& entry : walker.entries()) {
    RETURN_IF_ERROR(WriteHeaders(out, entry));
    if (entry.type == '0') {
      RETURN_IF_ERROR(
          WriteFileData(out, JoinPath(dir, entry.path), entry.size, done, total, options));
    }
  }
  RETURN_IF_ERROR(out.Write(std::string(2 * kBlockBytes, '\0')));  // end-of-archive marker
  return out.Finish();
}

namespace {

// ---- gzip input ----

// Supplies compressed bytes: the next chunk, or an empty view at the end.
using ChunkSource = std::function<Result<std::string_view>()>;

Status Truncated() {
  return absl::InvalidArgumentError(
      "archive is truncated (it ends before its end-of-archive "
      "marker)");
}

class GzipReader {
 public:
  explicit GzipReader(ChunkSource source) : source_(std::move(source)) {
    std::memset(&stream_, 0, sizeof(stream_));
    ok_ = inflateInit2(&stream_, 15 + 16) == Z_OK;  // gzip only
  }
  ~GzipReader() {
    if (ok_) inflateEnd(&stream_);
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  // Exactly `size` bytes; a stream that ends first is truncated.
  Status ReadExactly(char* out, size_t size) {
    if (!ok_) return absl::InternalError("cannot initialise zlib");
    size_t produced = 0;
    while (produced < size) {
      if (ended_) return Truncated();
      if (stream_.avail_in == 0 && !input_done_) RETURN_IF_ERROR(Refill());
      stream_.next_out = reinterpret_cast<Bytef*>(out + produced);
      stream_.avail_out = static_cast<uInt>(size - produced);
      int result = inflate(&stream_, Z_NO_FLUSH);
      produced = size - stream_.avail_out;
      if (result == Z_STREAM_END) {
        ended_ = true;
      } else if (result == Z_BUF_ERROR) {
        if (input_done_) return Truncated();
      } else if (result != Z_OK) {
        return Corrupt();
      }
    }
    return OkStatus();
  }

  Status Skip(uint64_t size) {
    char scratch[kChunkBytes];
    while (size > 0) {
      size_t step = static_cast<size_t>(std::min<uint64_t>(size, sizeof(scratch)));
      RETURN_IF_ERROR(ReadExactly(scratch, step));
      size -= step;
    }
    return OkStatus();
  }

  // Reads past the end-of-archive marker to the gzip trailer so its CRC is checked; tar
  // writers pad with zero blocks, bounded here.
  Status Finish() {
    constexpr uint64_t kMaxTrailingBytes = 16 * kMiB;
    uint64_t drained = 0;
    char scratch[kChunkBytes];
    while (!ended_) {
      if (drained > kMaxTrailingBytes) {
        return absl::InvalidArgumentError("archive has too much data after its end marker");
      }
      if (stream_.avail_in == 0 && !input_done_) RETURN_IF_ERROR(Refill());
      stream_.next_out = reinterpret_cast<Bytef*>(scratch);
      stream_.avail_out = sizeof(scratch);
      int result = inflate(&stream_, Z_NO_FLUSH);
      drained += sizeof(scratch) - stream_.avail_out;
      if (result == Z_STREAM_END) break;
      if (result == Z_BUF_ERROR && input_done_) return Truncated();
      if (result != Z_OK && result != Z_BUF_ERROR) return Corrupt();
    }
    return OkStatus();
  }

 private:
  Status Corrupt() const {
    return absl::InvalidArgumentError(
        fmt::format("archive is corrupt (not a gzip stream, or damaged): {}",
                    stream_.msg != nullptr ? stream_.msg : "inflate failed"));
  }

  Status Refill() {
    ASSIGN_OR_RETURN(std::string_view chunk, source_());
    if (chunk.empty()) {
      input_done_ = true;
      return OkStatus();
    }
    stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(chunk.data()));
    stream_.avail_in = static_cast<uInt>(chunk.size());
    return OkStatus();
  }

  ChunkSource source_;
  z_stream stream_;
  bool ok_ = false;
  bool input_done_ = false;
  bool ended_ = false;
};

// ---- tar entries ----

Result<uint64_t> ParseNumber(const char* field, size_t width, std::string_view what) {
  if (static_cast<unsigned char>(field[0]) & 0x80) {  // GNU base-256 for large values
    uint64_t value = static_cast<unsigned char>(field[0]) & 0x7f;
    for (size_t i = 1; i < width; ++i) {
      if (value >> 55) return absl::InvalidArgumentError("archive is corrupt: number too large");
      value = (value << 8) | static_cast<unsigned char>(field[i]);
    }
    return value;
  }
  uint64_t value = 0;
  size_t i = 0;
  while (i < width && field[i] == ' ') ++i;
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (value >> 60) return absl::InvalidArgumentError("archive is corrupt: number too large");
    value = value * 8 + static_cast<uint64_t>(field[i] - '0');
  }
  for (; i < width; ++i) {
    if (field[i] != ' ' && field[i] != '\0') {
      return absl::InvalidArgumentError(
          fmt::format("archive is corrupt: bad {} field in a header", what));
    }
  }
  return value;
}

std::string FieldText(const char* field, size_t width) {
  return std::string(field, strnlen(field, width));
}

struct Header {
  std::string name;
  std::string link_name;
  char type = '0';
  mode_t mode = 0;
  uint64_t size = 0;
};

Result<Header> ParseHeader(const char* block, int64_t index) {
  unsigned checksum = 0;
  for (size_t i = 0; i < kBlockBytes; ++i) {
    checksum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(block[i]);
  }
  ASSIGN_OR_RETURN(uint64_t stored, ParseNumber(block + 148, 8, "checksum"));
  if (stored != checksum) {
    return absl::InvalidArgumentError(
        fmt::format("archive is corrupt: header {} has a bad checksum", index));
  }
  Header header;
  header.name = FieldText(block, 100);
  std::string prefix = std::memcmp(block + 257, "ustar", 5) == 0 ? FieldText(block + 345, 155) : "";
  if (!prefix.empty()) header.name = prefix + "/" + header.name;
  header.link_name = FieldText(block + 157, 100);
  header.type = block[156];
  ASSIGN_OR_RETURN(uint64_t mode, ParseNumber(block + 100, 8, "mode"));
  header.mode = static_cast<mode_t>(mode & 0777);  // never setuid/setgid/sticky
  ASSIGN_OR_RETURN(header.size, ParseNumber(block + 124, 12, "size"));
  return header;
}

// Overrides from pax ('x') and GNU long-name ('L', 'K') records for the next entry.
struct Overrides {
  std::optional<std::string> path;
  std::optional<std::string> link_path;
  std::optional<uint64_t> size;
};

Status ParsePax(std::string_view data, Overrides& overrides) {
  while (!data.empty()) {
    size_t space = data.find(' ');
    uint64_t length = 0;
    auto [end, error] =
        std::from_chars(data.data(), data.data() + std::min(space, data.size()), length);
    if (space == std::string_view::npos || error != std::errc() || end != data.data() + space ||
        length <= space + 1 || length > data.size() || data[length - 1] != '\n') {
      return absl::InvalidArgumentError("archive is corrupt: bad pax extended header");
    }
    std::string_view record = data.substr(space + 1, length - space - 2);
    size_t equals = record.find('=');
    if (equals == std::string_view::npos) {
      return absl::InvalidArgumentError("archive is corrupt: bad pax record");
    }
    std::string_view key = record.substr(0, equals);
    std::string value(record.substr(equals + 1));
    if (key == "path") overrides.path = value;
    if (key == "linkpath") overrides.link_path = value;
    if (key == "size") {
      uint64_t size = 0;
      auto [size_end, size_error] =
          std::from_chars(value.data(), value.data() + value.size(), size);
      if (size_error != std::errc() || size_end != value.data() + value.size()) {
        return absl::InvalidArgumentError("archive is corrupt: bad pax size");
      }
      overrides.size = size;
    }
    data.remove_prefix(length);
  }
  return OkStatus();
}

// "a/./b" -> "a/b"; refuses absolute paths and "..". Empty means the archive root itself.
Result<std::string> SafeRelativePath(const std::string& name) {
  if (name.find('\0') != std::string::npos || name.size() > kMaxPathBytes) {
    return absl::InvalidArgumentError(fmt::format("archive entry '{}' has an invalid name", name));
  }
  if (!name.empty() && name[0] == '/') {
    return absl::InvalidArgumentError(
        fmt::format("archive entry '{}' has an absolute path; refusing to unpack it", name));
  }
  std::string clean;
  for (const std::string& part : SplitPath(name)) {
    if (part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(
          fmt::format("archive entry '{}' points outside the destination ('..'); refusing to "
                      "unpack it",
                      name));
    }
    clean = JoinPath(clean, part);
  }
  return clean;
}

class Unpacker {
 public:
  Unpacker(GzipReader& in, const std::string& dest, int64_t max_unpacked_bytes)
      : in_(in), dest_(dest), max_unpacked_bytes_(max_unpacked_bytes) {}

  Status Run() {
    Overrides overrides;
    char block[kBlockBytes];
    for (int64_t index = 0;; ++index) {
      if (index > kMaxEntries * 2) {
        return absl::ResourceExhaustedError("archive has too many entries");
      }
      RETURN_IF_ERROR(in_.ReadExactly(block, kBlockBytes));
      if (std::all_of(block, block + kBlockBytes, [](char c) { return c == '\0'; })) break;
      ASSIGN_OR_RETURN(Header header, ParseHeader(block, index));
      if (header.type == 'x' || header.type == 'L' || header.type == 'K') {
        RETURN_IF_ERROR(ReadExtension(header, overrides));
        continue;
      }
      if (overrides.path) header.name = *overrides.path;
      if (overrides.link_path) header.link_name = *overrides.link_path;
      if (overrides.size) header.size = *overrides.size;
      overrides = Overrides();
      RETURN_IF_ERROR(Extract(header));
    }
    RETURN_IF_ERROR(in_.Finish());
    // Deepest first, so a read-only parent is made read-only after its children.
    for (auto it = directory_modes_.rbegin(); it != directory_modes_.rend(); ++it) {
      if (::chmod(it->first.c_str(), it->second) != 0) {
        return ErrnoError("cannot set the mode of", it->first, errno);
      }
    }
    return OkStatus();
  }

 private:
  Status ReadExtension(const Header& header, Overrides& overrides) {
    if (header.size > static_cast<uint64_t>(kMaxPaxBytes)) {
      return absl::InvalidArgumentError("archive has an oversized extended header");
    }
    std::string data(header.size, '\0');
    RETURN_IF_ERROR(in_.ReadExactly(data.data(), data.size()));
    RETURN_IF_ERROR(in_.Skip(Padding(header.size).size()));
    if (header.type == 'x') return ParsePax(data, overrides);
    std::string text = data.substr(0, strnlen(data.c_str(), data.size()));
    if (header.type == 'L') overrides.path = text;
    if (header.type == 'K') overrides.link_path = text;
    return OkStatus();
  }

  Status Extract(const Header& header) {
    uint64_t data_bytes = header.size + Padding(header.size).size();
    bool is_file = header.type == '0' || header.type == '\0' || header.type == '7';
    if (!is_file && header.type != '5' && header.type != '2') return in_.Skip(data_bytes);
    ASSIGN_OR_RETURN(std::string relative, SafeRelativePath(header.name));
    if (relative.empty()) return in_.Skip(data_bytes);  // "./": the destination itself
    RETURN_IF_ERROR(PrepareParents(header.name, relative));
    std::string path = JoinPath(dest_, relative);
    struct stat info;
    bool exists = ::lstat(path.c_str(), &info) == 0;
    if (header.type == '5') {
      if (exists && !S_ISDIR(info.st_mode)) RETURN_IF_ERROR(Unlink(path));
      if ((!exists || !S_ISDIR(info.st_mode)) && ::mkdir(path.c_str(), 0700) != 0) {
        return ErrnoError("cannot create directory", path, errno);
      }
      directory_modes_.emplace_back(path, header.mode | S_IRWXU);
      return in_.Skip(data_bytes);
    }
    if (exists && S_ISDIR(info.st_mode)) {
      return absl::InvalidArgumentError(
          fmt::format("archive entry '{}' would replace a directory", header.name));
    }
    // Whatever is there (a symlink above all) is replaced, never written through.
    if (exists) RETURN_IF_ERROR(Unlink(path));
    if (header.type == '2') {
      if (::symlink(header.link_name.c_str(), path.c_str()) != 0) {
        return ErrnoError("cannot create symlink", path, errno);
      }
      return in_.Skip(data_bytes);
    }
    RETURN_IF_ERROR(WriteFile(path, header));
    return in_.Skip(Padding(header.size).size());
  }

  // Creates missing parents of `relative` and refuses to go through a symlink.
  Status PrepareParents(const std::string& name, const std::string& relative) {
    std::vector<std::string> parts = SplitPath(relative);
    std::string current = dest_;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      current = JoinPath(current, parts[i]);
      struct stat info;
      if (::lstat(current.c_str(), &info) != 0) {
        if (errno != ENOENT) return ErrnoError("cannot stat", current, errno);
        if (::mkdir(current.c_str(), 0755) != 0) {
          return ErrnoError("cannot create directory", current, errno);
        }
        continue;
      }
      if (S_ISLNK(info.st_mode)) {
        return absl::InvalidArgumentError(fmt::format(
            "archive entry '{}' would be written through the symlink '{}'; refusing to unpack it",
            name, current.substr(dest_.size() + 1)));
      }
      if (!S_ISDIR(info.st_mode)) {
        return absl::InvalidArgumentError(
            fmt::format("archive entry '{}' needs '{}' to be a directory, but it is a file", name,
                        current.substr(dest_.size() + 1)));
      }
    }
    return OkStatus();
  }

  static Status Unlink(const std::string& path) {
    if (::unlink(path.c_str()) != 0) return ErrnoError("cannot replace", path, errno);
    return OkStatus();
  }

  Status WriteFile(const std::string& path, const Header& header) {
    unpacked_bytes_ += static_cast<int64_t>(std::min<uint64_t>(header.size, INT64_MAX / 2));
    if (unpacked_bytes_ > max_unpacked_bytes_) {
      return absl::ResourceExhaustedError(fmt::format(
          "archive unpacks to more than {} MiB, the limit", max_unpacked_bytes_ / kMiB));
    }
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0) return ErrnoError("cannot create", path, errno);
    std::string buffer(kChunkBytes, '\0');
    uint64_t left = header.size;
    while (left > 0) {
      size_t step = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
      RETURN_IF_ERROR(in_.ReadExactly(buffer.data(), step));
      size_t written = 0;
      while (written < step) {
        ssize_t n = ::write(fd.get(), buffer.data() + written, step - written);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError("cannot write", path, errno);
        written += static_cast<size_t>(n);
      }
      left -= step;
    }
    if (::fchmod(fd.get(), header.mode) != 0) return ErrnoError("cannot chmod", path, errno);
    if (::close(fd.Release()) != 0) return ErrnoError("cannot write", path, errno);
    return OkStatus();
  }

  GzipReader& in_;
  const std::string& dest_;
  int64_t max_unpacked_bytes_;
  int64_t unpacked_bytes_ = 0;
  std::vector<std::pair<std::string, mode_t>> directory_modes_;
};

Status Unpack(ChunkSource source, const std::string& dest, int64_t max_unpacked_bytes) {
  RETURN_IF_ERROR(MakeDirs(dest));
  GzipReader reader(std::move(source));
  Unpacker unpacker(reader, dest, max_unpacked_bytes);
  return unpacker.Run();
}

}  // namespace

Status UnpackArchiveData(std::string_view archive, const std::string& dest,
                         int64_t max_unpacked_bytes) {
  bool given = false;
  auto source = [&]() -> Result<std::string_view> {
    if (given) return std::string_view();
    given = true;
    // zlib takes at most 4 GiB at a time; archives are far below that (max_bytes).
    return archive.substr(0, std::min<size_t>(archive.size(), UINT32_MAX));
  };
  return Unpack(source, dest, max_unpacked_bytes);
}

Status UnpackArchive(const std::string& archive_path, const std::string& dest,
                     int64_t max_unpacked_bytes) {
  Fd fd(::open(archive_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("cannot open archive", archive_path, errno);
  std::string buffer(kChunkBytes, '\0');
  auto source = [&]() -> Result<std::string_view> {
    while (true) {
      ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("cannot read archive", archive_path, errno);
      return std::string_view(buffer.data(), static_cast<size_t>(n));
    }
  };
  Status status = Unpack(source, dest, max_unpacked_bytes);
  if (!status.ok() && status.code() == absl::StatusCode::kInvalidArgument) {
    return absl::InvalidArgumentError(
        fmt::format("{}: {}", archive_path, std::string(status.message())));
  }
  return status;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return "";
  }
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace meridian::base
