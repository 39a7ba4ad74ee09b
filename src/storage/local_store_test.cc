// What the local backend promises beyond the shared contract: a root shared by several
// stores (processes), damaged files reported rather than crashed on, its own name limits.
#include "storage/local_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <thread>

#include "base/files.h"
#include "fmt/format.h"

namespace meridian::storage {
namespace {

class LocalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    root_ = fmt::format("{}/local-store-XXXXXX", tmp != nullptr && *tmp ? tmp : "/tmp");
    ASSERT_NE(::mkdtemp(root_.data()), nullptr);
  }
  void TearDown() override { EXPECT_TRUE(base::RemoveAll(root_).ok()); }

  std::unique_ptr<LocalStore> Open() {
    Result<std::unique_ptr<LocalStore>> store = LocalStore::Open(root_, {});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::string root_;
};

TEST_F(LocalStoreTest, StoresSharingARootSeeOneHistory) {
  std::vector<std::unique_ptr<LocalStore>> stores;
  for (int i = 0; i < 4; ++i) stores.push_back(Open());
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 20; ++round) {
        if (stores[i]
                ->Put(fmt::format("lease-{}", round), "x", {}, Condition::IfNotExists())
                .ok()) {
          ++wins;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wins.load(), 20);  // one winner per name across all stores
  EXPECT_EQ(stores[3]->List({})->objects.size(), 20u);
}

TEST_F(LocalStoreTest, ADamagedObjectFileIsDataLossNamingTheFile) {
  std::unique_ptr<LocalStore> store = Open();
  ASSERT_TRUE(store->Put("x", "data", {}, {}).ok());
  ASSERT_TRUE(base::WriteFileAtomic(root_ + "/objects/x~o", "garbage").ok());
  Result<ObjectInfo> info = store->Head("x");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(info.status().message().find("objects/x~o"), std::string::npos) << info.status();
  EXPECT_EQ(store->List({}).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LocalStoreTest, UncommittedBlocksSurviveNeitherListingNorReopen) {
  std::unique_ptr<LocalStore> store = Open();
  ASSERT_TRUE(store->StageBlock("big", Base64Encode("b1"), "part").ok());
  store = Open();
  EXPECT_TRUE(store->List({})->objects.empty());
  EXPECT_EQ(store->Head("big").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store->CommitBlocks("big", {Base64Encode("b1")}, {}, {}).ok());
  EXPECT_EQ(*store->GetRange("big", 0, -1, {}), "part");
}

TEST_F(LocalStoreTest, NameComponentsMustFitAFileName) {
  std::unique_ptr<LocalStore> store = Open();
  EXPECT_TRUE(store->Put(std::string(200, 'a') + "/" + std::string(200, 'b'), "", {}, {}).ok());
  EXPECT_EQ(store->Put(std::string(300, 'a'), "", {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace meridian::storage
