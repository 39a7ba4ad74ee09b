#include "package/tar_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "base/fd.h"
#include "fmt/format.h"
#include "package/exclude_matcher.h"
#include "package/tar_format.h"

namespace meridian::package {
namespace {

using namespace tar;  // NOLINT: the format's constants, used throughout

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
        return base::ErrnoStatus("cannot stat", full, errno);
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
    if (handle == nullptr) return base::ErrnoStatus("cannot open directory", directory, errno);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* item = ::readdir(handle.get())) {
      std::string name = item->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    if (errno != 0) return base::ErrnoStatus("cannot list", directory, errno);
    std::sort(names.begin(), names.end());  // byte order: the same on every machine
    return names;
  }

  static Result<std::string> ReadLink(const std::string& path, off_t size_hint) {
    std::string target(std::max<size_t>(static_cast<size_t>(size_hint), 1) + 1, '\0');
    ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    if (n < 0) return base::ErrnoStatus("cannot read link", path, errno);
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
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) return base::ErrnoStatus("cannot open", path, errno);
  std::string buffer(kChunkBytes, '\0');
  int64_t left = size;
  while (left > 0) {
    size_t want = static_cast<size_t>(std::min<int64_t>(left, kChunkBytes));
    ssize_t n = ::read(fd.get(), buffer.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus("cannot read", path, errno);
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
  if (::stat(dir.c_str(), &info) != 0) return base::ErrnoStatus("cannot pack", dir, errno);
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

}  // namespace meridian::package
