// BackgroundDownload over the local backend behind a gate that holds chosen ranged reads:
// the bytes land where they belong, a reader waits only for its own bytes (and its chunk is
// fetched next), a version replaced mid-download fails the download instead of mixing two
// versions, and cancelling releases waiting readers.
#include "storage/fs/background_download.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "base/files.h"
#include "base/testing/eventually.h"
#include "fmt/format.h"
#include "storage/forwarding_store.h"
#include "storage/local_store.h"

namespace meridian::storage::fs {
namespace {

constexpr int64_t kChunk = 64 << 10;

// Forwards to a LocalStore; ranged reads of offsets not released yet wait for the test.
class GatedStore final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::string> GetRange(const std::string& name, int64_t offset, int64_t length,
                               const Condition& condition) override {
    {
      std::unique_lock lock(mu_);
      requested_.push_back(offset);
      changed_.notify_all();
      changed_.wait(lock, [&] { return open_ || released_.contains(offset); });
    }
    return inner()->GetRange(name, offset, length, condition);
  }
  // ObjectStore's default (through GetRange above), then a pause before returning when
  // asked: the bytes are delivered but the read has not returned yet.
  Result<int64_t> ReadRange(const std::string& name, int64_t offset, int64_t length,
                            const Condition& condition, const RangeSink& sink) override {
    Result<int64_t> read = ObjectStore::ReadRange(name, offset, length, condition, sink);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_after_read_ms_.load()));
    return read;
  }
  void PauseAfterEachRead(int64_t milliseconds) { pause_after_read_ms_ = milliseconds; }

  void Release(int64_t offset) {
    std::lock_guard lock(mu_);
    released_.insert(offset);
    changed_.notify_all();
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  // Waits (30 s at most, so a broken build cannot hang) until `offset` was requested.
  bool WaitRequested(int64_t offset) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(30), [&] {
      return std::find(requested_.begin(), requested_.end(), offset) != requested_.end();
    });
  }
  std::vector<int64_t> requested() {
    std::lock_guard lock(mu_);
    return requested_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::set<int64_t> released_;
  std::vector<int64_t> requested_;
  bool open_ = false;
  std::atomic<int64_t> pause_after_read_ms_{0};
};

std::string RandomBytes(size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

class BackgroundDownloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/background-download-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    LocalStoreOptions options;
    options.fsync = false;
    auto store = LocalStore::Open(dir_ + "/store", options);
    ASSERT_TRUE(store.ok()) << store.status();
    local_ = *std::move(store);
    gated_ = std::make_unique<GatedStore>(local_.get());
    fd_ = ::open((dir_ + "/copy").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    ::close(fd_);
    (void)base::RemoveAll(dir_);
  }

  ObjectInfo PutObject(const std::string& data) {
    Result<std::string> etag = local_->Put("big.bin", data, {}, {});
    EXPECT_TRUE(etag.ok()) << etag.status();
    Result<ObjectInfo> info = local_->Head("big.bin");
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : ObjectInfo{};
  }
  std::string Copy(int64_t offset, int64_t length) {
    std::string bytes(length, '\0');
    EXPECT_EQ(::pread(fd_, bytes.data(), length, offset), length);
    return bytes;
  }

  std::string dir_;
  std::unique_ptr<LocalStore> local_;
  std::unique_ptr<GatedStore> gated_;
  int fd_ = -1;
};

TEST_F(BackgroundDownloadTest, FillsTheFileInParallelChunks) {
  const std::string data = RandomBytes(20 * kChunk + 123, 1);
  const ObjectInfo info = PutObject(data);
  ASSERT_EQ(::ftruncate(fd_, info.size), 0);
  gated_->Open();
  // Each read returns a while after its last bytes are in: WaitAll must still wait for it
  // (it once returned when the bytes were in, before the download counted itself finished).
  gated_->PauseAfterEachRead(50);
  auto download = BackgroundDownload::Start(gated_.get(), info, fd_, {kChunk, 4});
  ASSERT_TRUE(download.ok()) << download.status();
  ASSERT_TRUE((*download)->WaitAll().ok());
  std::optional<Status> finished = (*download)->Finished();
  ASSERT_TRUE(finished.has_value()) << "WaitAll returned before the download finished";
  EXPECT_TRUE(finished->ok()) << *finished;
  EXPECT_TRUE(Copy(0, info.size) == data) << "the copy differs from the object";
  EXPECT_EQ(gated_->requested().size(), 21u);  // one ranged read per chunk
}

TEST_F(BackgroundDownloadTest, AReaderWaitsOnlyForItsBytesWhichAreFetchedNext) {
  const std::string data = RandomBytes(8 * kChunk, 2);
  const ObjectInfo info = PutObject(data);
  ASSERT_EQ(::ftruncate(fd_, info.size), 0);
  auto started = BackgroundDownload::Start(gated_.get(), info, fd_, {kChunk, 2});
  ASSERT_TRUE(started.ok()) << started.status();
  std::shared_ptr<BackgroundDownload> download = *started;
  ASSERT_TRUE(gated_->WaitRequested(0));  // both workers are held on chunks 0 and 1
  ASSERT_TRUE(gated_->WaitRequested(kChunk));

  // A reader of the last chunk (a seek to the end) waits...
  std::future<Status> reader =
      std::async(std::launch::async, [&] { return download->WaitFor(7 * kChunk + 10, 100); });
  ASSERT_TRUE(Eventually([&] { return download->waiting_readers() > 0; }));
  ASSERT_EQ(download->waiting_readers(), 1);
  // ...and the first worker to be free fetches its chunk before chunks 2..6.
  gated_->Release(0);
  ASSERT_TRUE(gated_->WaitRequested(7 * kChunk));
  const std::vector<int64_t> order = gated_->requested();
  EXPECT_EQ(order.at(2), 7 * kChunk) << "the reader's chunk was not fetched next";
  gated_->Release(7 * kChunk);
  ASSERT_TRUE(reader.get().ok());
  EXPECT_EQ(Copy(7 * kChunk + 10, 100), data.substr(7 * kChunk + 10, 100));
  EXPECT_FALSE(download->Has(0, info.size)) << "chunk 1 is still held";
  EXPECT_FALSE(download->Finished().has_value());

  gated_->Open();
  ASSERT_TRUE(download->WaitAll().ok());
  EXPECT_TRUE(Copy(0, info.size) == data);
}

TEST_F(BackgroundDownloadTest, AVersionReplacedMidDownloadFailsItInsteadOfMixingVersions) {
  const ObjectInfo info = PutObject(RandomBytes(4 * kChunk, 3));
  ASSERT_EQ(::ftruncate(fd_, info.size), 0);
  auto started = BackgroundDownload::Start(gated_.get(), info, fd_, {kChunk, 1});
  ASSERT_TRUE(started.ok()) << started.status();
  std::shared_ptr<BackgroundDownload> download = *started;
  gated_->Release(0);
  ASSERT_TRUE(download->WaitFor(0, kChunk).ok());
  PutObject(RandomBytes(4 * kChunk, 4));  // written elsewhere meanwhile
  gated_->Open();
  Status status = download->WaitAll();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(download->WaitFor(3 * kChunk, 1).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(download->Finished().has_value());
  EXPECT_FALSE(download->Finished()->ok());
}

TEST_F(BackgroundDownloadTest, CancellingReleasesWaitingReaders) {
  const ObjectInfo info = PutObject(RandomBytes(4 * kChunk, 5));
  ASSERT_EQ(::ftruncate(fd_, info.size), 0);
  auto started = BackgroundDownload::Start(gated_.get(), info, fd_, {kChunk, 2});
  ASSERT_TRUE(started.ok()) << started.status();
  std::shared_ptr<BackgroundDownload> download = *started;
  std::future<Status> reader =
      std::async(std::launch::async, [&] { return download->WaitFor(0, info.size); });
  download->Cancel();
  EXPECT_EQ(reader.get().code(), absl::StatusCode::kCancelled);
  gated_->Open();
  download.reset();  // joins the workers, which stop at once
}

TEST_F(BackgroundDownloadTest, DownloadsShareAThreadBudgetButEachGetsOne) {
  const std::string data = RandomBytes(4 * kChunk, 7);
  const ObjectInfo info = PutObject(data);
  ASSERT_EQ(::ftruncate(fd_, info.size), 0);
  auto budget = std::make_shared<DownloadThreadBudget>(3);
  auto first = BackgroundDownload::Start(gated_.get(), info, fd_, {kChunk, 2, budget});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = BackgroundDownload::Start(gated_.get(), info, fd_, {kChunk, 2, budget});
  ASSERT_TRUE(second.ok()) << second.status();
  auto third = BackgroundDownload::Start(gated_.get(), info, fd_, {kChunk, 2, budget});
  ASSERT_TRUE(third.ok()) << third.status();
  // 2 + 1 from the budget of 3, and the third download still gets its one thread.
  EXPECT_EQ(budget->available(), -1);
  Eventually([&] { return gated_->requested().size() >= 4; });
  EXPECT_EQ(gated_->requested().size(), 4u) << "one ranged read per running thread";
  gated_->Open();
  ASSERT_TRUE((*first)->WaitAll().ok());
  ASSERT_TRUE((*second)->WaitAll().ok());
  ASSERT_TRUE((*third)->WaitAll().ok());
  first->reset();
  second->reset();
  third->reset();  // joined: every thread has given its share back
  EXPECT_EQ(budget->available(), 3);
  EXPECT_TRUE(Copy(0, info.size) == data);
}

TEST_F(BackgroundDownloadTest, RunInlineDownloadsOnTheCallingThread) {
  const std::string data = RandomBytes(kChunk / 2, 6);
  const ObjectInfo info = PutObject(data);
  gated_->Open();
  ASSERT_TRUE(BackgroundDownload::RunInline(gated_.get(), info, fd_, {kChunk, 4}).ok());
  EXPECT_EQ(Copy(0, info.size), data);
}

}  // namespace
}  // namespace meridian::storage::fs
