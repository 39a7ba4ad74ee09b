#include "package/tar_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "base/fd.h"
#include "base/files.h"
#include "fmt/format.h"
#include "package/exclude_matcher.h"
#include "package/tar_format.h"

namespace meridian::package {
namespace {

using namespace tar;  // NOLINT: the format's constants, used throughout

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
        return base::ErrnoStatus("cannot set the mode of", it->first, errno);
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
        return base::ErrnoStatus("cannot create directory", path, errno);
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
        return base::ErrnoStatus("cannot create symlink", path, errno);
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
        if (errno != ENOENT) return base::ErrnoStatus("cannot stat", current, errno);
        if (::mkdir(current.c_str(), 0755) != 0) {
          return base::ErrnoStatus("cannot create directory", current, errno);
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
    if (::unlink(path.c_str()) != 0) return base::ErrnoStatus("cannot replace", path, errno);
    return OkStatus();
  }

  Status WriteFile(const std::string& path, const Header& header) {
    unpacked_bytes_ += static_cast<int64_t>(std::min<uint64_t>(header.size, INT64_MAX / 2));
    if (unpacked_bytes_ > max_unpacked_bytes_) {
      return absl::ResourceExhaustedError(fmt::format(
          "archive unpacks to more than {} MiB, the limit", max_unpacked_bytes_ / kMiB));
    }
    base::UniqueFd fd(
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0) return base::ErrnoStatus("cannot create", path, errno);
    std::string buffer(kChunkBytes, '\0');
    uint64_t left = header.size;
    while (left > 0) {
      size_t step = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
      RETURN_IF_ERROR(in_.ReadExactly(buffer.data(), step));
      size_t written = 0;
      while (written < step) {
        ssize_t n = ::write(fd.get(), buffer.data() + written, step - written);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return base::ErrnoStatus("cannot write", path, errno);
        written += static_cast<size_t>(n);
      }
      left -= step;
    }
    if (::fchmod(fd.get(), header.mode) != 0) return base::ErrnoStatus("cannot chmod", path, errno);
    if (::close(fd.Release()) != 0) return base::ErrnoStatus("cannot write", path, errno);
    return OkStatus();
  }

  GzipReader& in_;
  const std::string& dest_;
  int64_t max_unpacked_bytes_;
  int64_t unpacked_bytes_ = 0;
  std::vector<std::pair<std::string, mode_t>> directory_modes_;
};

Status Unpack(ChunkSource source, const std::string& dest, int64_t max_unpacked_bytes) {
  RETURN_IF_ERROR(base::MakeDirs(dest));
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
  base::UniqueFd fd(::open(archive_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return base::ErrnoStatus("cannot open archive", archive_path, errno);
  std::string buffer(kChunkBytes, '\0');
  auto source = [&]() -> Result<std::string_view> {
    while (true) {
      ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return base::ErrnoStatus("cannot read archive", archive_path, errno);
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

}  // namespace meridian::package
