#include "storage/object_store.h"

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <thread>

#include "base/ids.h"
#include "fmt/format.h"

namespace meridian::storage {
namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr int kMaxParallelism = 64;

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool IsIdentifier(std::string_view key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Runs fn(0..count-1) on up to `parallelism` threads; stops handing out work after the
// first failure and returns it.
Status RunParallel(int64_t count, int parallelism, const std::function<Status(int64_t)>& fn) {
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first_error;  // guarded by mu
  auto worker = [&] {
    while (!failed.load()) {
      const int64_t index = next.fetch_add(1);
      if (index >= count) return;
      Status status = fn(index);
      if (!status.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = std::move(status);
        failed = true;
      }
    }
  };
  const int threads =
      static_cast<int>(std::min<int64_t>(count, std::clamp(parallelism, 1, kMaxParallelism)));
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& thread : pool) thread.join();
  return first_error;
}

}  // namespace

Result<int64_t> ObjectStore::ReadRange(const std::string& name, int64_t offset, int64_t length,
                                       const Condition& condition, const RangeSink& sink) {
  if (length <= 0) {
    return absl::InvalidArgumentError(
        fmt::format("bad range offset {} length {} for '{}'", offset, length, name));
  }
  ASSIGN_OR_RETURN(std::string bytes, GetRange(name, offset, length, condition));
  if (!bytes.empty()) RETURN_IF_ERROR(sink(offset, bytes));
  return static_cast<int64_t>(bytes.size());
}

int64_t Utf16Length(std::string_view text) {
  int64_t units = 0;
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t length = lead < 0x80           ? 1
                    : (lead >> 5) == 0x6  ? 2
                    : (lead >> 4) == 0xE  ? 3
                    : (lead >> 3) == 0x1E ? 4
                                          : 0;
    for (size_t k = 1; k < length; ++k) {
      if (i + k >= text.size() || (static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) {
        length = 0;  // a truncated sequence
        break;
      }
    }
    if (length == 0) {
      ++units;  // not UTF-8: one unit per byte
      ++i;
      continue;
    }
    units += length == 4 ? 2 : 1;  // four bytes encode a code point beyond U+FFFF
    i += length;
  }
  return units;
}

Status ValidateObjectName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("object name is empty");
  if (const int64_t characters = Utf16Length(name); characters > kMaxNameCharacters) {
    return absl::InvalidArgumentError(fmt::format("object name is {} characters; the limit is {}",
                                                  characters, kMaxNameCharacters));
  }
  if (name.front() == '/') {
    return absl::InvalidArgumentError(fmt::format("object name '{}' starts with '/'", name));
  }
  for (char c : name) {
    if (c == '\0') return absl::InvalidArgumentError("object name contains a NUL byte");
  }
  // "." and ".." segments would be resolved away in URLs and paths.
  size_t start = 0;
  while (start <= name.size()) {
    const size_t slash = std::min(name.find('/', start), name.size());
    const std::string_view segment = name.substr(start, slash - start);
    if (segment == "." || segment == "..") {
      return absl::InvalidArgumentError(
          fmt::format("object name '{}' has a '{}' segment", name, segment));
    }
    start = slash + 1;
  }
  return OkStatus();
}

Status ValidateMetadata(const Metadata& metadata) {
  size_t total_bytes = 0;
  for (const auto& [key, value] : metadata) {
    total_bytes += key.size() + value.size();
    if (total_bytes > static_cast<size_t>(kMaxMetadataBytes)) {
      return absl::InvalidArgumentError(
          fmt::format("metadata exceeds {} bytes", kMaxMetadataBytes));
    }
    if (!IsIdentifier(key)) {
      return absl::InvalidArgumentError(
          fmt::format("metadata key '{}' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)", key));
    }
    const bool printable =
        std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    if (!printable || (!value.empty() && (value.front() == ' ' || value.back() == ' '))) {
      return absl::InvalidArgumentError(fmt::format(
          "metadata value for '{}' must be printable ASCII without leading or trailing blanks",
          key));
    }
  }
  return OkStatus();
}

Status ValidateCondition(const Condition& condition) {
  if (!condition.if_match.empty() && condition.if_none_match_any) {
    return absl::InvalidArgumentError("a condition may set if_match or if_none_match, not both");
  }
  return OkStatus();
}

Status ValidateBlockId(std::string_view block_id) {
  std::string decoded;
  if (!Base64Decode(block_id, &decoded) || decoded.empty() || decoded.size() > kMaxBlockIdBytes) {
    return absl::InvalidArgumentError(
        fmt::format("block id '{}' is not base64 of 1..{} bytes", block_id, kMaxBlockIdBytes));
  }
  return OkStatus();
}

Status ValidateBlockList(std::string_view name, const std::vector<std::string>& block_ids) {
  if (block_ids.size() > static_cast<size_t>(kMaxBlocksPerObject)) {
    return absl::InvalidArgumentError(fmt::format("{} blocks for '{}'; the limit is {}",
                                                  block_ids.size(), name, kMaxBlocksPerObject));
  }
  for (const std::string& id : block_ids) {
    RETURN_IF_ERROR(ValidateBlockId(id));
    if (id.size() != block_ids.front().size()) {
      return absl::InvalidArgumentError(
          fmt::format("block ids for '{}' must all have the same length", name));
    }
  }
  return OkStatus();
}

Status ConditionFailedError(std::string_view name, const Condition& condition,
                            std::string_view current_etag) {
  if (condition.if_none_match_any) {
    return absl::FailedPreconditionError(fmt::format("object '{}' already exists", name));
  }
  if (current_etag.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "object '{}' was changed by someone else (etag {} expected)", name, condition.if_match));
  }
  return absl::FailedPreconditionError(
      fmt::format("object '{}' was changed by someone else (etag {} expected, now {})", name,
                  condition.if_match, current_etag));
}

std::string ContentMd5(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr);
  return Base64Encode(std::string_view(reinterpret_cast<char*>(digest), length));
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n =
        (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += kBase64Alphabet[(n >> 6) & 63];
    out += kBase64Alphabet[n & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = uint8_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= uint8_t(bytes[i + 1]) << 8;
    out += kBase64Alphabet[(n >> 18) & 63];
    out += kBase64Alphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kBase64Alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool Base64Decode(std::string_view text, std::string* bytes) {
  if (text.size() % 4 != 0) return false;
  bytes->clear();
  for (size_t i = 0; i < text.size(); i += 4) {
    int values[4];
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = text[i + j];
      const bool last_group = i + 4 == text.size();
      if (c == '=' && last_group && j >= 2) {
        values[j] = 0;
        ++padding;
        continue;
      }
      if (padding > 0) return false;  // data after '='
      values[j] = Base64Value(c);
      if (values[j] < 0) return false;
    }
    const uint32_t n = (values[0] << 18) | (values[1] << 12) | (values[2] << 6) | values[3];
    bytes->push_back(static_cast<char>((n >> 16) & 0xff));
    if (padding < 2) bytes->push_back(static_cast<char>((n >> 8) & 0xff));
    if (padding < 1) bytes->push_back(static_cast<char>(n & 0xff));
  }
  return true;
}

std::string BlockIdFor(std::string_view upload_id, int64_t index) {
  return Base64Encode(fmt::format("{}-{:06d}", upload_id, index));
}

DataSource DataSourceFromBytes(std::string_view bytes) {
  DataSource source;
  source.size_bytes = static_cast<int64_t>(bytes.size());
  source.read = [bytes](int64_t offset, int64_t length) -> Result<std::string> {
    if (offset < 0 || length < 0 || offset + length > static_cast<int64_t>(bytes.size())) {
      return absl::OutOfRangeError("read past the end of the upload source");
    }
    return std::string(bytes.substr(offset, length));
  };
  return source;
}

Result<std::string> UploadObject(ObjectStore& store, const std::string& name,
                                 const DataSource& source, const UploadOptions& options) {
  if (source.size_bytes < 0 || !source.read) {
    return absl::InvalidArgumentError("upload source has no size or no reader");
  }
  if (source.size_bytes <= options.single_put_max_bytes) {
    ASSIGN_OR_RETURN(std::string data, source.read(0, source.size_bytes));
    return store.Put(name, data, options.metadata, options.condition);
  }
  int64_t block_size = std::max<int64_t>(options.block_size_bytes, 1);
  // Raise the block size when the object would need more blocks than a blob may have.
  block_size =
      std::max(block_size, (source.size_bytes + kMaxBlocksPerObject - 1) / kMaxBlocksPerObject);
  const int64_t block_count = (source.size_bytes + block_size - 1) / block_size;
  // Equal-length ids, random per upload so that two uploaders of one name never mix blocks.
  const std::string upload_id = base::NewId("up");
  std::vector<std::string> block_ids(block_count);
  for (int64_t i = 0; i < block_count; ++i) {
    block_ids[i] = BlockIdFor(upload_id, i);
  }
  RETURN_IF_ERROR(RunParallel(block_count, options.parallelism, [&](int64_t index) -> Status {
    const int64_t offset = index * block_size;
    const int64_t length = std::min(block_size, source.size_bytes - offset);
    ASSIGN_OR_RETURN(std::string data, source.read(offset, length));
    if (static_cast<int64_t>(data.size()) != length) {
      return absl::DataLossError(fmt::format(
          "upload source gave {} bytes at offset {}; expected {}", data.size(), offset, length));
    }
    return store.StageBlock(name, block_ids[index], data);
  }));
  return store.CommitBlocks(name, block_ids, options.metadata, options.condition);
}

Result<std::string> DownloadRange(ObjectStore& store, const std::string& name, int64_t offset,
                                  int64_t length, const DownloadOptions& options) {
  if (offset < 0 || length < -1) {
    return absl::InvalidArgumentError(
        fmt::format("bad range offset {} length {} for '{}'", offset, length, name));
  }
  ASSIGN_OR_RETURN(ObjectInfo info, store.Head(name));
  if (offset > info.size) {
    return absl::OutOfRangeError(
        fmt::format("offset {} is past the end of '{}' ({} bytes)", offset, name, info.size));
  }
  const int64_t available = info.size - offset;
  const int64_t total = length < 0 ? available : std::min(length, available);
  if (total > options.max_bytes) {
    return absl::ResourceExhaustedError(fmt::format(
        "reading {} bytes of '{}' exceeds the limit of {} bytes", total, name, options.max_bytes));
  }
  std::string out(static_cast<size_t>(total), '\0');
  const int64_t chunk = std::max<int64_t>(options.chunk_bytes, 1);
  const int64_t chunk_count = (total + chunk - 1) / chunk;
  const Condition pinned = Condition::IfMatch(info.etag);
  RETURN_IF_ERROR(RunParallel(chunk_count, options.parallelism, [&](int64_t index) -> Status {
    const int64_t start = index * chunk;
    const int64_t want = std::min(chunk, total - start);
    ASSIGN_OR_RETURN(std::string data, store.GetRange(name, offset + start, want, pinned));
    if (static_cast<int64_t>(data.size()) != want) {
      return absl::FailedPreconditionError(
          fmt::format("object '{}' was changed by someone else while reading (short read at {})",
                      name, offset + start));
    }
    // Each worker owns a disjoint slice of `out`.
    std::copy(data.begin(), data.end(), out.begin() + start);
    return OkStatus();
  }));
  return out;
}

}  // namespace meridian::storage
