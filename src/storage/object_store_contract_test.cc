// The ObjectStore contract (object_store.h), run against every implementation: the local
// directory backend, and the Azure Blob client against Azurite started by the test.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include "base/files.h"
#include "base/ids.h"
#include "fmt/format.h"
#include "storage/azure_blob_store.h"
#include "storage/azurite_fixture.h"
#include "storage/blob_fault_injector.h"
#include "storage/local_store.h"
#include "storage/object_store.h"

namespace meridian::storage {
namespace {

using ::testing::TestWithParam;

// One Azurite for the whole test process, started on first use, stopped at exit.
Result<AzuriteServer*> SharedAzurite() {
  static Result<std::unique_ptr<AzuriteServer>>* server =
      new Result<std::unique_ptr<AzuriteServer>>(AzuriteServer::Start());
  static struct Stopper {
    ~Stopper() { delete server; }
  } stopper;
  if (!server->ok()) return server->status();
  return server->value().get();
}

std::string TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      fmt::format("{}/storage-test-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp");
  EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
  return pattern;
}

// A fresh, empty store per test.
struct StoreFactory {
  std::string name;
  std::function<Result<std::shared_ptr<ObjectStore>>()> make;
};

void PrintTo(const StoreFactory& factory, std::ostream* out) { *out << factory.name; }

StoreFactory LocalFactory() {
  return {"Local", []() -> Result<std::shared_ptr<ObjectStore>> {
            LocalStoreOptions options;
            options.fsync = false;  // temp dirs: durability is not what these tests check
            const std::string dir = TempDir();
            ASSIGN_OR_RETURN(auto store, LocalStore::Open(dir + "/store", options));
            // The store's files go when the test's last reference does.
            return std::shared_ptr<ObjectStore>(store.release(), [dir](ObjectStore* store) {
              delete store;
              EXPECT_TRUE(base::RemoveAll(dir).ok());
            });
          }};
}

// A container name of lowercase letters and digits, unique per test.
std::string NewContainerName() {
  std::string id = base::NewId("c");
  id.erase(std::remove(id.begin(), id.end(), '_'), id.end());
  return id;
}

StoreFactory AzuriteFactory(std::string prefix) {
  return {prefix.empty() ? "Azurite" : "AzuritePrefixed",
          [prefix]() -> Result<std::shared_ptr<ObjectStore>> {
            ASSIGN_OR_RETURN(AzuriteServer * azurite, SharedAzurite());
            AzureBlobOptions options;
            options.http.timeout_ms = 120'000;
            ASSIGN_OR_RETURN(auto store,
                             AzureBlobStore::Create(azurite->ConfigFor(NewContainerName(), prefix),
                                                    std::move(options)));
            RETURN_IF_ERROR(store->CreateContainer());
            return std::shared_ptr<ObjectStore>(store.release(), [](ObjectStore* store) {
              // Keeps Azurite's data small when a process runs many tests.
              EXPECT_TRUE(static_cast<AzureBlobStore*>(store)->DeleteContainer().ok());
              delete store;
            });
          }};
}

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    const uint64_t value = engine();
    std::memcpy(out.data() + i, &value, std::min<size_t>(8, size - i));
  }
  return out;
}

std::string BlockId(int index) { return Base64Encode(fmt::format("block-{:06d}", index)); }

class ObjectStoreContractTest : public TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    Result<std::shared_ptr<ObjectStore>> store = GetParam().make();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  std::string Read(const std::string& name) {
    Result<std::string> data = store_->GetRange(name, 0, -1, {});
    EXPECT_TRUE(data.ok()) << data.status();
    return data.ok() ? *data : "";
  }

  std::string MustPut(const std::string& name, std::string_view data, const Metadata& md = {}) {
    Result<std::string> etag = store_->Put(name, data, md, {});
    EXPECT_TRUE(etag.ok()) << name << ": " << etag.status();
    return etag.ok() ? *etag : "";
  }

  // Every entry under `options.prefix`, following markers.
  std::vector<std::string> ListAll(ListOptions options, int* pages = nullptr) {
    std::vector<std::string> out;
    int page_count = 0;
    do {
      Result<ListPage> page = store_->List(options);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      ++page_count;
      for (const ObjectInfo& info : page->objects) out.push_back(info.name);
      for (const std::string& prefix : page->common_prefixes) out.push_back(prefix);
      options.marker = page->next_marker;
    } while (!options.marker.empty() && page_count < 1000);
    if (pages != nullptr) *pages = page_count;
    std::sort(out.begin(), out.end());  // objects and prefixes interleave in name order
    return out;
  }

  std::shared_ptr<ObjectStore> store_;
};

TEST_P(ObjectStoreContractTest, PutThenHeadAndRangeReads) {
  const std::string etag = MustPut("dir/hello.txt", "hello world");
  Result<ObjectInfo> info = store_->Head("dir/hello.txt");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name, "dir/hello.txt");
  EXPECT_EQ(info->size, 11);
  EXPECT_EQ(info->etag, etag);
  EXPECT_GT(info->last_modified_unix_ms, 1'600'000'000'000);
  ASSERT_TRUE(info->content_md5.has_value());
  EXPECT_EQ(*info->content_md5, ContentMd5("hello world"));

  EXPECT_EQ(Read("dir/hello.txt"), "hello world");
  EXPECT_EQ(*store_->GetRange("dir/hello.txt", 6, 5, {}), "world");
  EXPECT_EQ(*store_->GetRange("dir/hello.txt", 6, 100, {}), "world");
  EXPECT_EQ(*store_->GetRange("dir/hello.txt", 0, 1, {}), "h");
  EXPECT_EQ(*store_->GetRange("dir/hello.txt", 11, -1, {}), "");
  EXPECT_EQ(*store_->GetRange("dir/hello.txt", 3, 0, {}), "");
  EXPECT_EQ(store_->GetRange("dir/hello.txt", 12, -1, {}).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST_P(ObjectStoreContractTest, MissingObjectsAreNotFound) {
  EXPECT_EQ(store_->Head("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetRange("nope", 0, -1, {}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete("nope", {}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Copy("nope", "other").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(ObjectStoreContractTest, EmptyObject) {
  MustPut("empty", "");
  EXPECT_EQ(store_->Head("empty")->size, 0);
  EXPECT_EQ(Read("empty"), "");
  EXPECT_EQ(store_->GetRange("empty", 1, -1, {}).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_P(ObjectStoreContractTest, MetadataRoundTripsThroughPutHeadAndList) {
  MustPut("folder", "", {{"hdi_isfolder", "true"}});
  MustPut("link", "target/path", {{"is_symlink", "true"}, {"Owner_Id", "1000 x"}});
  EXPECT_EQ(store_->Head("folder")->metadata, (Metadata{{"hdi_isfolder", "true"}}));
  EXPECT_EQ(store_->Head("link")->metadata,
            (Metadata{{"is_symlink", "true"}, {"owner_id", "1000 x"}}));
  Result<ListPage> page = store_->List({});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].name, "folder");
  EXPECT_EQ(page->objects[0].metadata, (Metadata{{"hdi_isfolder", "true"}}));
  EXPECT_EQ(page->objects[1].metadata.at("is_symlink"), "true");
  EXPECT_EQ(page->objects[1].size, 11);

  // Replacing an object replaces its metadata.
  MustPut("folder", "", {});
  EXPECT_TRUE(store_->Head("folder")->metadata.empty());
  EXPECT_EQ(store_->Put("x", "", {{"bad-key", "v"}}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put("x", "", {{"key", " padded"}}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(ObjectStoreContractTest, EtagChangesOnEveryWrite) {
  const std::string first = MustPut("same", "bytes");
  const std::string second = MustPut("same", "bytes");
  EXPECT_FALSE(first.empty());
  EXPECT_NE(first, second);
  EXPECT_EQ(store_->Head("same")->etag, second);
}

TEST_P(ObjectStoreContractTest, ConditionalPut) {
  Result<std::string> created = store_->Put("cfg", "v1", {}, Condition::IfNotExists());
  ASSERT_TRUE(created.ok()) << created.status();
  Result<std::string> again = store_->Put("cfg", "v2", {}, Condition::IfNotExists());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();

  Result<std::string> updated = store_->Put("cfg", "v2", {}, Condition::IfMatch(*created));
  ASSERT_TRUE(updated.ok()) << updated.status();
  Result<std::string> stale = store_->Put("cfg", "v3", {}, Condition::IfMatch(*created));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.status().message().find("changed by someone else"), std::string::npos)
      << stale.status();
  EXPECT_EQ(Read("cfg"), "v2");

  EXPECT_EQ(store_->Put("absent", "x", {}, Condition::IfMatch(*updated)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Head("absent").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(ObjectStoreContractTest, ConditionalReadSeesOneVersion) {
  const std::string old_etag = MustPut("doc", "version one");
  MustPut("doc", "version two");
  EXPECT_EQ(store_->GetRange("doc", 0, 4, Condition::IfMatch(old_etag)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  const std::string etag = store_->Head("doc")->etag;
  EXPECT_EQ(*store_->GetRange("doc", 8, -1, Condition::IfMatch(etag)), "two");
}

TEST_P(ObjectStoreContractTest, ConcurrentCreateHasOneWinner) {
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      if (store_->Put("lock", fmt::format("owner {}", i), {}, Condition::IfNotExists()).ok()) {
        ++wins;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wins.load(), 1);
}

TEST_P(ObjectStoreContractTest, StagedBlocksStayInvisibleUntilCommit) {
  MustPut("blob", "old contents", {{"v", "1"}});
  ASSERT_TRUE(store_->StageBlock("blob", BlockId(0), "new ").ok());
  ASSERT_TRUE(store_->StageBlock("blob", BlockId(1), "contents").ok());
  ASSERT_TRUE(store_->StageBlock("fresh", BlockId(0), "data").ok());
  EXPECT_EQ(Read("blob"), "old contents");
  EXPECT_EQ(store_->Head("fresh").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ListAll({}), (std::vector<std::string>{"blob"}));

  const std::string stale = MustPut("other", "x");
  EXPECT_EQ(store_->CommitBlocks("blob", {BlockId(0), BlockId(1)}, {}, Condition::IfMatch(stale))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Read("blob"), "old contents");

  Result<std::string> etag =
      store_->CommitBlocks("blob", {BlockId(0), BlockId(1)}, {{"v", "2"}}, {});
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_EQ(Read("blob"), "new contents");
  EXPECT_EQ(store_->Head("blob")->etag, *etag);
  EXPECT_EQ(store_->Head("blob")->metadata, (Metadata{{"v", "2"}}));
  EXPECT_EQ(store_->CommitBlocks("fresh", {BlockId(7)}, {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->StageBlock("blob", "not base64!", "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(ObjectStoreContractTest, LargeBlockedUploadIsByteExact) {
  const std::string data = RandomBytes((40 << 20) + 12345, 42);
  UploadOptions options;
  options.single_put_max_bytes = 4 << 20;
  options.block_size_bytes = 4 << 20;
  options.parallelism = 8;
  options.metadata = {{"kind", "checkpoint"}};
  Result<std::string> etag =
      UploadObject(*store_, "models/large.bin", DataSourceFromBytes(data), options);
  ASSERT_TRUE(etag.ok()) << etag.status();
  Result<ObjectInfo> info = store_->Head("models/large.bin");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, static_cast<int64_t>(data.size()));
  EXPECT_EQ(info->metadata.at("kind"), "checkpoint");

  DownloadOptions download;
  download.chunk_bytes = 3 << 20;
  Result<std::string> whole = DownloadRange(*store_, "models/large.bin", 0, -1, download);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(*whole == data) << "downloaded bytes differ";
  Result<std::string> middle =
      DownloadRange(*store_, "models/large.bin", 5'000'001, 9'000'000, download);
  ASSERT_TRUE(middle.ok()) << middle.status();
  EXPECT_TRUE(*middle == data.substr(5'000'001, 9'000'000));
}

// Collects what ReadRange streams, placing each piece at its offset (as a file would).
struct RangeCollector {
  int64_t base = 0;
  std::string bytes;
  int pieces = 0;
  ObjectStore::RangeSink Sink() {
    return [this](int64_t offset, std::string_view piece) -> Status {
      const size_t at = static_cast<size_t>(offset - base);
      if (bytes.size() < at + piece.size()) bytes.resize(at + piece.size());
      bytes.replace(at, piece.size(), piece);
      ++pieces;
      return OkStatus();
    };
  }
};

TEST_P(ObjectStoreContractTest, ReadRangeStreamsEachPieceAtItsOffset) {
  const std::string data = RandomBytes((3 << 20) + 77, 9);
  Result<std::string> etag = store_->Put("stream.bin", data, {}, {});
  ASSERT_TRUE(etag.ok()) << etag.status();

  RangeCollector middle{1000};
  Result<int64_t> read =
      store_->ReadRange("stream.bin", 1000, 2 << 20, Condition::IfMatch(*etag), middle.Sink());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, 2 << 20);
  EXPECT_TRUE(middle.bytes == data.substr(1000, 2 << 20)) << "streamed bytes differ";

  RangeCollector tail{3 << 20};
  read = store_->ReadRange("stream.bin", 3 << 20, 1 << 20, {}, tail.Sink());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, 77);  // the object ends sooner
  EXPECT_EQ(tail.bytes, data.substr(3 << 20));

  RangeCollector none{static_cast<int64_t>(data.size())};
  EXPECT_EQ(*store_->ReadRange("stream.bin", data.size(), 10, {}, none.Sink()), 0);
  EXPECT_EQ(store_->ReadRange("stream.bin", data.size() + 1, 10, {}, none.Sink()).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(store_->ReadRange("stream.bin", 0, 10, Condition::IfMatch("\"0xold\""), none.Sink())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->ReadRange("missing", 0, 10, {}, none.Sink()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(none.pieces, 0);

  // The receiver's error stops the read and is what the caller gets.
  Result<int64_t> refused = store_->ReadRange(
      "stream.bin", 0, 1 << 20, {},
      [](int64_t, std::string_view) -> Status { return absl::DataLossError("disk full"); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss) << refused.status();
}

TEST_P(ObjectStoreContractTest, SmallUploadUsesOnePut) {
  Result<std::string> etag =
      UploadObject(*store_, "small", DataSourceFromBytes("tiny"), UploadOptions{});
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_EQ(Read("small"), "tiny");
  EXPECT_TRUE(store_->Head("small")->content_md5.has_value());  // Put records the MD5
}

TEST_P(ObjectStoreContractTest, ListWithDelimiterPrefixAndPaging) {
  for (const char* name : {"a", "a/b", "a/c/d", "a-z", "b", "b0", "ab/x"}) MustPut(name, name);
  EXPECT_EQ(ListAll({}), (std::vector<std::string>{"a", "a-z", "a/b", "a/c/d", "ab/x", "b", "b0"}));

  Result<ListPage> top = store_->List({"", "/", "", 100});
  ASSERT_TRUE(top.ok()) << top.status();
  std::vector<std::string> objects;
  for (const ObjectInfo& info : top->objects) objects.push_back(info.name);
  EXPECT_EQ(objects, (std::vector<std::string>{"a", "a-z", "b", "b0"}));
  EXPECT_EQ(top->common_prefixes, (std::vector<std::string>{"a/", "ab/"}));
  EXPECT_TRUE(top->next_marker.empty());

  Result<ListPage> inside = store_->List({"a/", "/", "", 100});
  ASSERT_TRUE(inside.ok()) << inside.status();
  ASSERT_EQ(inside->objects.size(), 1u);
  EXPECT_EQ(inside->objects[0].name, "a/b");
  EXPECT_EQ(inside->common_prefixes, (std::vector<std::string>{"a/c/"}));

  EXPECT_EQ(ListAll({"a", "", "", 100}),
            (std::vector<std::string>{"a", "a-z", "a/b", "a/c/d", "ab/x"}));
  int pages = 0;
  EXPECT_EQ(ListAll({"", "/", "", 2}, &pages),
            (std::vector<std::string>{"a", "a-z", "a/", "ab/", "b", "b0"}));
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ListAll({"", "", "", 1}, &pages).size(), 7u);
  EXPECT_EQ(pages, 7);
  EXPECT_TRUE(ListAll({"zzz", "/", "", 10}).empty());
}

TEST_P(ObjectStoreContractTest, ListPagesPastFiveThousandObjects) {
  constexpr int kObjects = 5'100;
  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kObjects; i = next++) {
        if (!store_->Put(fmt::format("many/obj-{:05d}", i), "x", {}, {}).ok()) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  MustPut("other", "not listed");

  Result<ListPage> first = store_->List({"many/", "/", "", kMaxListResults});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->objects.size(), 5'000u);
  EXPECT_FALSE(first->next_marker.empty());
  Result<ListPage> second = store_->List({"many/", "/", first->next_marker, kMaxListResults});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->objects.size(), 100u);
  EXPECT_TRUE(second->next_marker.empty());
  EXPECT_EQ(first->objects.front().name, "many/obj-00000");
  EXPECT_EQ(first->objects.back().name, "many/obj-04999");
  EXPECT_EQ(second->objects.front().name, "many/obj-05000");
  EXPECT_EQ(second->objects.back().name, "many/obj-05099");
  // A page larger than the service limit is clamped to it.
  EXPECT_EQ(store_->List({"many/", "", "", 10'000})->objects.size(), 5'000u);
}

TEST_P(ObjectStoreContractTest, DeleteHonoursConditionsAndKeepsNeighbours) {
  const std::string etag = MustPut("dir", "", {{"hdi_isfolder", "true"}});
  MustPut("dir/file", "data");
  EXPECT_EQ(store_->Delete("dir", Condition::IfMatch("\"0xstale\"")).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store_->Delete("dir/file", {}).ok());
  EXPECT_EQ(store_->Head("dir/file").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Head("dir").ok());
  ASSERT_TRUE(store_->Delete("dir", Condition::IfMatch(etag)).ok());
  EXPECT_TRUE(ListAll({}).empty());
}

TEST_P(ObjectStoreContractTest, CopyCarriesDataAndMetadata) {
  const std::string source_etag = MustPut("src/a.txt", "payload", {{"is_symlink", "true"}});
  Result<std::string> etag = store_->Copy("src/a.txt", "dst/b.txt");
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_NE(*etag, source_etag);
  EXPECT_EQ(Read("dst/b.txt"), "payload");
  EXPECT_EQ(store_->Head("dst/b.txt")->metadata, (Metadata{{"is_symlink", "true"}}));
  EXPECT_EQ(store_->Head("dst/b.txt")->etag, *etag);
  EXPECT_EQ(Read("src/a.txt"), "payload");
}

TEST_P(ObjectStoreContractTest, SetMetadataReplacesTheMapAndKeepsTheBytes) {
  const std::string data = RandomBytes(300'000, 7);
  const std::string first = MustPut("f.bin", data, {{"hdi_isfolder", "false"}, {"Keep", "1"}});
  Result<ObjectInfo> before = store_->Head("f.bin");
  ASSERT_TRUE(before.ok()) << before.status();
  Result<std::string> etag = store_->SetMetadata("f.bin", {{"keep", "1"}, {"meridian_mode", "600"}},
                                                 Condition::IfMatch(first));
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_NE(*etag, first);
  Result<ObjectInfo> after = store_->Head("f.bin");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->etag, *etag);
  EXPECT_EQ(after->size, before->size);
  EXPECT_GE(after->last_modified_unix_ms, before->last_modified_unix_ms);
  // The whole map is replaced: a key not passed back is gone.
  EXPECT_EQ(after->metadata, (Metadata{{"keep", "1"}, {"meridian_mode", "600"}}));
  EXPECT_TRUE(Read("f.bin") == data);
  // Conditional on the version: the old ETag no longer matches.
  EXPECT_EQ(store_->SetMetadata("f.bin", {}, Condition::IfMatch(first)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Head("f.bin")->etag, *etag);
  EXPECT_TRUE(store_->SetMetadata("f.bin", {}, Condition::None()).ok());
  EXPECT_TRUE(store_->Head("f.bin")->metadata.empty());
  EXPECT_EQ(store_->SetMetadata("nope", {}, {}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->SetMetadata("f.bin", {}, Condition::IfNotExists()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->SetMetadata("f.bin", {{"bad key", "x"}}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(ObjectStoreContractTest, NamesWithUnusualCharacters) {
  const std::vector<std::string> names = {"with space/x y.txt", "utf8/\xc3\xbc\xc3\xb1.bin",
                                          "sym/%2F+&=?#.txt", "dots/..x/.hidden"};
  for (const std::string& name : names) MustPut(name, name);
  for (const std::string& name : names) EXPECT_EQ(Read(name), name);
  EXPECT_EQ(store_->Put("a/../b", "x", {}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(ListAll({}), sorted);
}

INSTANTIATE_TEST_SUITE_P(Local, ObjectStoreContractTest, ::testing::Values(LocalFactory()),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Azurite, ObjectStoreContractTest,
                         ::testing::Values(AzuriteFactory(""), AzuriteFactory("root/dir/")),
                         [](const auto& info) { return info.param.name; });

// Retries against a real service: the injected failures come first, then the request
// reaches Azurite.
class AzuriteRetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<AzuriteServer*> azurite = SharedAzurite();
    ASSERT_TRUE(azurite.ok()) << azurite.status();
    AzureBlobOptions options;
    options.transport = injector_;
    options.sleep = [this](int64_t ms) { sleeps_ms_.push_back(ms); };
    Result<std::unique_ptr<AzureBlobStore>> store =
        AzureBlobStore::Create((*azurite)->ConfigFor(NewContainerName()), std::move(options));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    ASSERT_TRUE(store_->CreateContainer().ok());
  }

  std::shared_ptr<FaultInjectingTransport> injector_ =
      std::make_shared<FaultInjectingTransport>(NewHttpBlobTransport({}));
  std::unique_ptr<AzureBlobStore> store_;
  std::vector<int64_t> sleeps_ms_;
};

TEST_F(AzuriteRetryTest, ServiceUnavailableThenSuccess) {
  const int before = injector_->request_count();
  injector_->InjectResponse(503, {{"retry-after", "2"}}, "", 1, "PUT");
  injector_->InjectError(absl::DeadlineExceededError("injected timeout"), 1, "PUT");
  Result<std::string> etag = store_->Put("retried", "data", {}, {});
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_EQ(injector_->request_count() - before, 3);
  ASSERT_EQ(sleeps_ms_.size(), 2u);
  EXPECT_EQ(sleeps_ms_[0], 2'000);  // Retry-After honoured
  EXPECT_EQ(store_->Head("retried")->etag, *etag);
}

TEST_F(AzuriteRetryTest, SetMetadataIsOneMetadataRequestAndIsRetried) {
  Result<std::string> first = store_->Put("m", "data", {}, {});
  ASSERT_TRUE(first.ok()) << first.status();
  const int before = injector_->request_count();
  injector_->InjectResponse(503, {}, "", 1, "comp=metadata");
  Result<std::string> etag =
      store_->SetMetadata("m", {{"meridian_mode", "600"}}, Condition::IfMatch(*first));
  ASSERT_TRUE(etag.ok()) << etag.status();
  std::vector<net::HttpClientRequest> requests = injector_->requests();
  ASSERT_EQ(injector_->request_count() - before, 2);
  const net::HttpClientRequest& sent = requests.back();
  EXPECT_EQ(sent.method, "PUT");
  EXPECT_NE(sent.url.find("comp=metadata"), std::string::npos) << sent.url;
  EXPECT_TRUE(sent.body.empty());
  bool if_match = false;
  for (const auto& [name, value] : sent.headers)
    if_match = if_match || (name == "if-match" && value == *first);
  EXPECT_TRUE(if_match) << "Set Blob Metadata must carry the caller's If-Match";
  EXPECT_EQ(store_->Head("m")->metadata, (Metadata{{"meridian_mode", "600"}}));
  EXPECT_EQ(*store_->GetRange("m", 0, -1, {}), "data");
}

TEST_F(AzuriteRetryTest, ADownloadCutOffMidBodyIsRetriedAndRedeliveredInPlace) {
  const std::string data = RandomBytes(2 << 20, 5);
  ASSERT_TRUE(store_->Put("cut.bin", data, {}, {}).ok());
  const int before = injector_->request_count();
  injector_->InjectCutBody(300'000, 1, "GET");
  RangeCollector collected{0};
  Result<int64_t> read = store_->ReadRange("cut.bin", 0, data.size(), {}, collected.Sink());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, static_cast<int64_t>(data.size()));
  EXPECT_TRUE(collected.bytes == data) << "the retried bytes did not land where they belong";
  EXPECT_EQ(injector_->request_count() - before, 2);
  EXPECT_EQ(sleeps_ms_.size(), 1u);
}

TEST_F(AzuriteRetryTest, NotFoundIsNotRetried) {
  const int before = injector_->request_count();
  EXPECT_EQ(store_->Head("missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(injector_->request_count() - before, 1);
  EXPECT_TRUE(sleeps_ms_.empty());
}

// The way users configure it: a bucket URL from cloud_resource.yaml plus the variables
// BlobFuse2 reads, here pointing at Azurite.
TEST(AzuriteOpenTest, AbfssUrlWithEndpointAndKeyFromTheEnvironment) {
  Result<AzuriteServer*> azurite = SharedAzurite();
  ASSERT_TRUE(azurite.ok()) << azurite.status();
  const std::map<std::string, std::string> env = {
      {"AZURE_STORAGE_ACCOUNT", kDevelopmentAccount},
      {"AZURE_STORAGE_ACCESS_KEY", kDevelopmentAccountKey},
      {"AZURE_STORAGE_BLOB_ENDPOINT", (*azurite)->endpoint()}};
  const std::string container = NewContainerName();
  Result<std::unique_ptr<AzureBlobStore>> store = AzureBlobStore::Open(
      fmt::format("abfss://{}@{}.dfs.core.windows.net/datasets", container, kDevelopmentAccount),
      [&env](const std::string& name) {
        auto it = env.find(name);
        return it == env.end() ? std::string() : it->second;
      },
      {});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateContainer().ok());
  ASSERT_TRUE((*store)->Put("a.txt", "hi", {}, {}).ok());
  Result<ListPage> page = (*store)->List({});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].name, "a.txt");

  // The same container seen without the prefix shows where the object really is.
  Result<std::unique_ptr<AzureBlobStore>> root =
      AzureBlobStore::Create((*azurite)->ConfigFor(container), {});
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*(*root)->GetRange("datasets/a.txt", 0, -1, {}), "hi");

  AzureBlobConfig wrong_key = (*azurite)->ConfigFor(container);
  wrong_key.account_key = Base64Encode("not the key");
  Result<std::unique_ptr<AzureBlobStore>> intruder = AzureBlobStore::Create(wrong_key, {});
  ASSERT_TRUE(intruder.ok());
  EXPECT_FALSE((*intruder)->Head("datasets/a.txt").ok());
}

}  // namespace
}  // namespace meridian::storage
