// ObjectStore: the one interface meridian uses for object storage (Azure Blob, a local
// directory), and the helpers that move large objects through it in parallel.
//
// Contract, kept by every implementation and checked by one contract test suite
// (object_store_contract_test.cc):
//
// Names. An object name is UTF-8 of 1..1024 characters counted as Azure counts them (UTF-16
// code units: a character outside the Basic Multilingual Plane counts two), never starting
// with '/' and without
// "." or ".." segments (the store may be rooted under a prefix; names are relative to it).
// '/' has no special meaning to the store except as a List delimiter: "a" and "a/b" may
// both exist (BlobFuse2 keeps a directory marker "a" with metadata hdi_isfolder=true beside
// the files "a/b").
//
// Metadata. User metadata keys are ASCII identifiers ([A-Za-z_][A-Za-z0-9_]*), compared
// case-insensitively and returned lowercased; values are printable ASCII without leading or
// trailing blanks (HTTP headers carry them), at most kMaxMetadataBytes in all (Azure's
// limit). Anything else is kInvalidArgument before any byte is sent. Put/CommitBlocks and
// SetMetadata replace the whole metadata map; Copy carries it over.
//
// ETags. Opaque strings (compare them whole, never parse them); every successful write,
// including a rewrite with identical bytes, gives the object a new ETag.
//
// Conditions. A write may carry `if_match` (succeed only while the object still has that
// ETag) or `if_none_match_any` (succeed only when the object does not exist). A failed
// condition is kFailedPrecondition with a message like
// "object 'x' was changed by someone else (etag \"0x1\")" or "object 'x' already exists".
// Reads may carry `if_match` only, so a multi-part read sees one version.
//
// Status mapping (HTTP for the Azure backend, the equivalent for others):
//   404 -> kNotFound; 412, and 409 BlobAlreadyExists under if_none_match -> kFailedPrecondition;
//   409 ContainerAlreadyExists -> kAlreadyExists; any other 409 (leases, pending copy) ->
//   kAborted; 400 -> kInvalidArgument; 401 -> kUnauthenticated; 403 -> kPermissionDenied;
//   416 / a read starting past the end -> kOutOfRange; 408, 429, 5xx and transport errors
//   after the retries are used up -> kUnavailable (kDeadlineExceeded for a final timeout).
//   A response the client cannot understand (bad XML, a missing header) -> kInternal naming
//   the field.
//
// Staged blocks. StageBlock stores an uncommitted block that no reader can see; CommitBlocks
// makes the object exactly the concatenation of the listed blocks, atomically (readers see
// the old object or the new one). Block ids are base64 strings of at most 64 decoded bytes,
// and all ids used for one object must have the same length. Committing discards every
// other uncommitted block of that object. At most kMaxBlocksPerObject blocks per object.
//
// Listing. Names come back in ascending byte order. With a delimiter, names that contain
// the delimiter after the prefix are rolled up into one common prefix (up to and including
// the delimiter). A page holds at most max_results entries (objects plus prefixes, at most
// kMaxListResults); `next_marker` is empty on the last page and otherwise is passed back
// unchanged as `marker` to get the next page. Markers are opaque.
//
// Thread safety: every ObjectStore is safe to use from many threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meridian::storage {

inline constexpr int kMaxNameCharacters = 1024;  // UTF-16 code units, as Azure counts
inline constexpr int kMaxBlocksPerObject = 50'000;
inline constexpr int kMaxBlockIdBytes = 64;  // decoded
inline constexpr int kMaxListResults = 5'000;
inline constexpr int kMaxMetadataBytes = 8 << 10;  // keys and values together

using Metadata = std::map<std::string, std::string>;

struct ObjectInfo {
  std::string name;  // relative to the store's root
  int64_t size = 0;
  std::string etag;
  int64_t last_modified_unix_ms = 0;
  std::optional<std::string> content_md5;  // base64 of the MD5, when the store knows it
  Metadata metadata;                       // keys lowercased
};

// A condition on the current state of an object. The default is "no condition".
struct Condition {
  std::string if_match;            // non-empty: the object must have this ETag
  bool if_none_match_any = false;  // true: the object must not exist

  static Condition None() { return {}; }
  static Condition IfMatch(std::string etag) { return {std::move(etag), false}; }
  static Condition IfNotExists() { return {"", true}; }
};

struct ListOptions {
  std::string prefix;
  std::string delimiter;  // "" lists everything under the prefix flat
  std::string marker;     // "" starts at the beginning; else a previous next_marker
  int max_results = kMaxListResults;
};

struct ListPage {
  std::vector<ObjectInfo> objects;
  std::vector<std::string> common_prefixes;
  std::string next_marker;  // "" when there is nothing more
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Properties and metadata of one object. kNotFound when absent.
  virtual Result<ObjectInfo> Head(const std::string& name) = 0;

  // Bytes [offset, offset + length) of the object, fewer when it ends sooner; length -1
  // reads to the end. offset == size gives ""; offset > size is kOutOfRange.
  virtual Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                                       const Condition& condition) = 0;

  // Streams bytes [offset, offset + length) of the object (length > 0) to `sink` as they
  // arrive, each piece with its offset in the object, so a large range needs no buffer of
  // its size. A retried request delivers its bytes again at the same offsets, so the sink
  // must be idempotent (pwrite into a file is). An error from the sink stops the read and is
  // returned. Returns how many bytes the range held: fewer when the object ends sooner, 0
  // when offset == size; offset > size is kOutOfRange. The default reads with GetRange.
  using RangeSink = std::function<Status(int64_t offset, std::string_view bytes)>;
  virtual Result<int64_t> ReadRange(const std::string& name, int64_t offset, int64_t length,
                                    const Condition& condition, const RangeSink& sink);

  // Creates or replaces the object with `data` and `metadata`. Returns the new ETag.
  virtual Result<std::string> Put(const std::string& name, std::string_view data,
                                  const Metadata& metadata, const Condition& condition) = 0;

  // Stores an uncommitted block for `name` (see "Staged blocks" above).
  virtual Status StageBlock(const std::string& name, const std::string& block_id,
                            std::string_view data) = 0;

  // Makes `name` the concatenation of the staged blocks, in order. A block id that was not
  // staged is kInvalidArgument. Returns the new ETag.
  virtual Result<std::string> CommitBlocks(const std::string& name,
                                           const std::vector<std::string>& block_ids,
                                           const Metadata& metadata,
                                           const Condition& condition) = 0;

  virtual Result<ListPage> List(const ListOptions& options) = 0;

  // Replaces the object's whole metadata map with `metadata` and keeps its bytes (Azure's Set
  // Blob Metadata): no data is sent, and the object gets a new ETag and last-modified time.
  // Keys not in `metadata` are gone afterwards, so a caller changing one key passes the
  // others back. kNotFound when absent (whatever the condition); the condition may carry
  // if_match only (if_none_match_any is kInvalidArgument). Returns the new ETag.
  virtual Result<std::string> SetMetadata(const std::string& name, const Metadata& metadata,
                                          const Condition& condition) = 0;

  // Removes the object. kNotFound when absent (whatever the condition); the condition may
  // carry if_match only (if_none_match_any is kInvalidArgument).
  virtual Status Delete(const std::string& name, const Condition& condition) = 0;

  // Copies `source` (data and metadata) to `destination`, replacing it. Returns the new
  // ETag of `destination`. kNotFound when the source is absent.
  virtual Result<std::string> Copy(const std::string& source, const std::string& destination) = 0;
};

// --- Checks shared by the implementations ---------------------------------------------

// The length of UTF-8 `text` in UTF-16 code units (how Azure counts a blob name's
// characters); a byte that is not valid UTF-8 counts one.
int64_t Utf16Length(std::string_view text);
// kInvalidArgument naming the problem when `name` breaks the naming rules above.
Status ValidateObjectName(std::string_view name);
// kInvalidArgument when a key or value breaks the metadata rules above.
Status ValidateMetadata(const Metadata& metadata);
// kInvalidArgument when `condition` sets both fields.
Status ValidateCondition(const Condition& condition);
// kInvalidArgument when `block_id` is not base64 of 1..kMaxBlockIdBytes bytes.
Status ValidateBlockId(std::string_view block_id);
// kInvalidArgument unless `block_ids` is a valid block list: at most kMaxBlocksPerObject
// ids, each valid, all of one length.
Status ValidateBlockList(std::string_view name, const std::vector<std::string>& block_ids);
// The kFailedPrecondition every backend returns for a failed condition. `current_etag` is
// the object's ETag now, "" when unknown or absent.
Status ConditionFailedError(std::string_view name, const Condition& condition,
                            std::string_view current_etag);

// Base64 of the MD5 of `data`: the Content-MD5 form.
std::string ContentMd5(std::string_view data);

// The block id meridian gives block `index` (0..kMaxBlocksPerObject-1) of an upload named
// `upload_id` (a base::NewId("up")): every id meridian writes has this one length, because
// Azure refuses a block whose id length differs from the object's other uncommitted blocks.
std::string BlockIdFor(std::string_view upload_id, int64_t index);

// Base64 (standard alphabet, padded) used for block ids and Content-MD5.
std::string Base64Encode(std::string_view bytes);
// False when `text` is not padded standard base64.
bool Base64Decode(std::string_view text, std::string* bytes);

// --- Parallel transfer helpers ------------------------------------------------------------

// Where UploadObject reads from. `read(offset, length)` must return exactly `length` bytes
// and be safe to call from several threads at once.
struct DataSource {
  int64_t size_bytes = 0;
  std::function<Result<std::string>(int64_t offset, int64_t length)> read;
};

// A source over bytes the caller keeps alive until UploadObject returns.
DataSource DataSourceFromBytes(std::string_view bytes);

struct UploadOptions {
  // Objects up to this size go in one Put; larger ones go in blocks.
  int64_t single_put_max_bytes = int64_t{32} << 20;
  // Block size for staged uploads; raised automatically so that the object needs at most
  // kMaxBlocksPerObject blocks.
  int64_t block_size_bytes = int64_t{8} << 20;
  int parallelism = 8;  // blocks in flight at once, 1..64
  Metadata metadata;
  Condition condition;
};

// Uploads `source` as `name`: one Put when small, else parallel StageBlock calls with
// equal-length random base64 block ids followed by one CommitBlocks (so a failed or
// concurrent upload never exposes a partial object). Returns the new ETag. On the first
// failing block the remaining ones are abandoned and that error is returned; the staged
// blocks are left for the store to discard.
Result<std::string> UploadObject(ObjectStore& store, const std::string& name,
                                 const DataSource& source, const UploadOptions& options);

struct DownloadOptions {
  int64_t chunk_bytes = int64_t{8} << 20;
  int parallelism = 8;                   // 1..64
  int64_t max_bytes = int64_t{4} << 30;  // larger ranges are kResourceExhausted
};

// Reads [offset, offset + length) of `name` (length -1: to the end) with parallel ranged
// reads pinned to the ETag seen first, so the result is one version of the object; if it
// changes meanwhile the result is kFailedPrecondition.
Result<std::string> DownloadRange(ObjectStore& store, const std::string& name, int64_t offset,
                                  int64_t length, const DownloadOptions& options);

}  // namespace meridian::storage
