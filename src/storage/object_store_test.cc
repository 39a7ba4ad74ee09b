// Unit tests of the shared checks and the parallel transfer helpers.
#include "storage/object_store.h"

#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "fmt/format.h"

namespace meridian::storage {
namespace {

TEST(Base64Test, RoundTripsAndRejectsGarbage) {
  for (std::string bytes : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    std::string decoded;
    ASSERT_TRUE(Base64Decode(Base64Encode(bytes), &decoded)) << bytes;
    EXPECT_EQ(decoded, bytes);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  std::string out;
  EXPECT_FALSE(Base64Decode("Zm8", &out));
  EXPECT_FALSE(Base64Decode("Z=8=", &out));
  EXPECT_FALSE(Base64Decode("Zm!=", &out));
  EXPECT_EQ(ContentMd5("hello world"), "XrY7u+Ae7tCTyyK7j1rNww==");
}

// Azure counts a blob name's 1,024 characters in UTF-16 code units, not in bytes.
TEST(ValidationTest, NameLengthIsCountedInUtf16CodeUnitsAsAzureCountsIt) {
  const std::string e_acute = "\xC3\xA9";        // U+00E9: 2 bytes, 1 unit
  const std::string emoji = "\xF0\x9F\x98\x80";  // U+1F600: 4 bytes, 2 units
  EXPECT_EQ(Utf16Length("abc"), 3);
  EXPECT_EQ(Utf16Length(e_acute + "x" + emoji), 4);
  EXPECT_EQ(Utf16Length("\xE2\x82\xAC"), 1);  // U+20AC: 3 bytes
  EXPECT_EQ(Utf16Length("\xC3"), 1);          // truncated: one unit per byte
  std::string accents;
  for (int i = 0; i < kMaxNameCharacters; ++i) accents += e_acute;  // 2,048 bytes
  EXPECT_TRUE(ValidateObjectName(accents).ok());
  EXPECT_FALSE(ValidateObjectName(accents + "x").ok());
  std::string emojis;
  for (int i = 0; i < kMaxNameCharacters / 2 + 1; ++i) emojis += emoji;  // 513 code points
  EXPECT_FALSE(ValidateObjectName(emojis).ok());
}

TEST(ValidationTest, NamesMetadataAndBlockIds) {
  EXPECT_TRUE(ValidateObjectName("a/b c/d.txt").ok());
  EXPECT_FALSE(ValidateObjectName("").ok());
  EXPECT_FALSE(ValidateObjectName("/abs").ok());
  EXPECT_FALSE(ValidateObjectName("a/./b").ok());
  EXPECT_FALSE(ValidateObjectName("..").ok());
  EXPECT_FALSE(ValidateObjectName(std::string(kMaxNameCharacters + 1, 'x')).ok());
  EXPECT_TRUE(ValidateMetadata({{"hdi_isfolder", "true"}, {"_x9", ""}}).ok());
  EXPECT_FALSE(ValidateMetadata({{"9lives", "x"}}).ok());
  EXPECT_FALSE(ValidateMetadata({{"k", "line\nbreak"}}).ok());
  EXPECT_FALSE(ValidateMetadata({{"big", std::string(kMaxMetadataBytes, 'x')}}).ok());
  EXPECT_FALSE(ValidateCondition({"\"0x1\"", true}).ok());
  EXPECT_TRUE(ValidateBlockId(Base64Encode("block-1")).ok());
  EXPECT_FALSE(ValidateBlockId(Base64Encode(std::string(kMaxBlockIdBytes + 1, 'x'))).ok());
  EXPECT_FALSE(ValidateBlockList("x", {Base64Encode("a"), Base64Encode("bbbb")}).ok());
}

// Records what UploadObject asks of a store, storing nothing.
class RecordingStore final : public ObjectStore {
 public:
  Result<ObjectInfo> Head(const std::string&) override { return absl::UnimplementedError(""); }
  Result<std::string> GetRange(const std::string&, int64_t, int64_t, const Condition&) override {
    return absl::UnimplementedError("");
  }
  Result<std::string> Put(const std::string&, std::string_view data, const Metadata&,
                          const Condition&) override {
    std::lock_guard<std::mutex> lock(mu);
    ++puts;
    return std::string("\"put\"");
  }
  Status StageBlock(const std::string&, const std::string& block_id,
                    std::string_view data) override {
    std::lock_guard<std::mutex> lock(mu);
    if (fail_block_ids.count(staged.size())) return absl::UnavailableError("injected");
    staged.emplace_back(block_id, data.size());
    return OkStatus();
  }
  Result<std::string> CommitBlocks(const std::string& name, const std::vector<std::string>& ids,
                                   const Metadata&, const Condition&) override {
    RETURN_IF_ERROR(ValidateBlockList(name, ids));
    committed = ids;
    return std::string("\"commit\"");
  }
  Result<ListPage> List(const ListOptions&) override { return absl::UnimplementedError(""); }
  Result<std::string> SetMetadata(const std::string&, const Metadata&, const Condition&) override {
    return absl::UnimplementedError("");
  }
  Status Delete(const std::string&, const Condition&) override { return OkStatus(); }
  Result<std::string> Copy(const std::string&, const std::string&) override {
    return absl::UnimplementedError("");
  }

  std::mutex mu;
  int puts = 0;
  std::vector<std::pair<std::string, size_t>> staged;
  std::vector<std::string> committed;
  std::set<size_t> fail_block_ids;
};

DataSource ZeroSource(int64_t size) {
  return {size, [](int64_t, int64_t length) -> Result<std::string> {
            return std::string(static_cast<size_t>(length), '\0');
          }};
}

TEST(UploadObjectTest, SmallObjectsGoInOnePut) {
  RecordingStore store;
  ASSERT_TRUE(UploadObject(store, "x", ZeroSource(100), {}).ok());
  EXPECT_EQ(store.puts, 1);
  EXPECT_TRUE(store.staged.empty());
}

TEST(UploadObjectTest, BlockCountStaysWithinTheServiceLimit) {
  RecordingStore store;
  UploadOptions options;
  options.single_put_max_bytes = 0;
  options.block_size_bytes = 1;  // would need 120,000 blocks
  options.parallelism = 4;
  Result<std::string> etag = UploadObject(store, "x", ZeroSource(120'000), options);
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_EQ(*etag, "\"commit\"");
  EXPECT_LE(store.committed.size(), static_cast<size_t>(kMaxBlocksPerObject));
  EXPECT_EQ(store.committed.size(), 40'000u);  // 3-byte blocks
  size_t total = 0;
  for (const auto& [id, size] : store.staged) total += size;
  EXPECT_EQ(total, 120'000u);
  std::set<std::string> unique(store.committed.begin(), store.committed.end());
  EXPECT_EQ(unique.size(), store.committed.size());
}

TEST(UploadObjectTest, AFailedBlockAbandonsTheUpload) {
  RecordingStore store;
  store.fail_block_ids = {3};
  UploadOptions options;
  options.single_put_max_bytes = 0;
  options.block_size_bytes = 10;
  Result<std::string> etag = UploadObject(store, "x", ZeroSource(100), options);
  EXPECT_EQ(etag.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(store.committed.empty());
}

TEST(UploadObjectTest, ASourceThatReadsShortIsAnError) {
  RecordingStore store;
  UploadOptions options;
  options.single_put_max_bytes = 0;
  options.block_size_bytes = 10;
  DataSource source{100, [](int64_t, int64_t) -> Result<std::string> { return std::string("x"); }};
  EXPECT_EQ(UploadObject(store, "x", source, options).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace meridian::storage
