// The storage mount (`meridian storage mount`) against `rclone mount --vfs-cache-mode full`,
// both over one Azurite and one container, measured in the same run:
//  - cold sequential read of a large file (fresh mount, empty cache directory);
//  - sequential write of a large file until it is durable in the store (meridian: fsync and
//    close return after the commit; rclone uploads after close, so the clock runs until
//    Get Blob Properties shows the blob at full size);
//  - creating many small files until every one is durable in the store;
//  - `ls -l` of a directory of many blobs made directly in the store (fresh mount; readdir
//    plus lstat of every entry);
//  - warm re-read of the large file, also compared with reading the same bytes from a
//    file on the cache directory's filesystem with the page cache warm;
//  - peak memory (VmHWM) of each mount process;
//  - `chmod -R` of a directory of large files (fresh mount; rclone does not keep modes and
//    is shown for reference);
//  - renaming a directory of many files (fresh mount; the clock stops when List Blobs shows
//    every object under the new name and none under the old);
//  - the cold read against the floor the server allows: the same blob read by `curl` in
//    16 MiB ranges, 1, 4 and 8 at once, the best of the three.
// Each figure is the median of --repeats runs. Needs /dev/fuse and the right to mount, the
// npm test peers (Azurite) and, for the peer, rclone (scripts/deps.sh --bench).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include "base/files.h"
#include "bench_util.h"
#include "curl_floor.h"
#include "fmt/format.h"
#include "storage/azure_blob_store.h"
#include "storage/azurite_fixture.h"

namespace meridian::bench {
namespace {

using storage::AzureBlobStore;
using storage::AzuriteServer;

constexpr char kContainer[] = "bench";
constexpr char kLargeBlob[] = "large/data.bin";
constexpr char kListPrefix[] = "listing";
constexpr char kChmodPrefix[] = "modes";
constexpr char kRenameParent[] = "renames";
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int kIoBufferBytes = 1 << 20;
constexpr int kMountTimeoutMs = 30'000;
constexpr int kDurableTimeoutMs = 300'000;
constexpr int kStopGraceMs = 60'000;

struct Options {
  std::string meridian = MERIDIAN_BINARY;
  int64_t large_file_mib = 1024;
  int repeats = 3;
  int small_files = 1000;
  int small_file_bytes = 4096;
  int list_files = 10'000;
  int chmod_files = 100;
  int64_t chmod_file_mib = 20;
  int rename_files = 1000;
  int64_t rename_file_mib = 1;
  std::string out = "build/bench/storage.json";
};

// The renamed directory's name after `generation` renames.
std::string RenamedDirectory(int generation) {
  return fmt::format("{}/dir-{}", kRenameParent, generation);
}

enum class Tool { kMeridian, kRclone };

const char* ToolName(Tool tool) { return tool == Tool::kMeridian ? "meridian" : "rclone"; }

// The options a user of each tool would pick for this workload, said in the table notes.
// meridian: the blob CSI StorageClass options (attribute cache on, 120 s kernel timeouts)
// with a cache large enough for the large file.
std::vector<std::string> MeridianMountOptions(const std::string& cache_dir) {
  return {"--use-attr-cache=true",
          "-o",
          "attr_timeout=120",
          "-o",
          "entry_timeout=120",
          "-o",
          "negative_timeout=120",
          "--cache-size-mb=4096",
          "--log-level=LOG_WARNING",
          "--file-cache-timeout-in-seconds=120",
          "--cache-dir",
          cache_dir};
}

// rclone: full VFS cache, uploads start as soon as a file is closed (the default waits 5 s),
// the same 120 s attribute and directory cache times, and more parallel transfers.
std::vector<std::string> RcloneMountOptions(const std::string& cache_dir,
                                            const std::string& config) {
  return {"--config",         config,    "--vfs-cache-mode", "full",  "--vfs-write-back", "0s",
          "--dir-cache-time", "120s",    "--attr-timeout",   "120s",  "--transfers",      "8",
          "--cache-dir",      cache_dir, "--log-level",      "NOTICE"};
}

std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = fmt::format("{}/{}", dirs.substr(start, end - start), program);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// Peak resident memory of a live process in MiB (0 when unknown).
double PeakMemoryMib(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return 0;
}

// The bytes of the large file: deterministic, not compressible, made block by block so the
// benchmark never holds the whole file.
void FillBlock(int64_t offset, char* out, int64_t length) {
  uint64_t state = static_cast<uint64_t>(offset) * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i + 8 <= length; i += 8) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    std::memcpy(out + i, &state, 8);
  }
}

// Everything one run shares: the store, the rclone config, a scratch directory.
struct Bench {
  Options options;
  std::string dir;
  std::string rclone;  // "" when rclone is not installed
  std::string rclone_config;
  std::string url;  // the container, as meridian takes it
  std::unique_ptr<AzureBlobStore> store;
  int mount_count = 0;
  std::map<std::string, double> peak_mib;  // "<tool> <case>" -> largest VmHWM seen
  std::string account_key;                 // for curl's signed requests
  std::string endpoint;
  // The renamed directory's current name under kRenameParent: each rename moves it on.
  int rename_generation = 0;
};

// One mount process of either tool on a fresh mount point with an empty cache directory.
class MountProcess {
 public:
  static std::unique_ptr<MountProcess> Start(Bench& bench, Tool tool, const std::string& label) {
    auto mount = std::unique_ptr<MountProcess>(new MountProcess);
    std::string base =
        fmt::format("{}/mount-{}-{}", bench.dir, ToolName(tool), ++bench.mount_count);
    mount->mountpoint_ = base + "/mnt";
    mount->cache_dir_ = base + "/cache";
    mount->label_ = fmt::format("{} {}", ToolName(tool), label);
    (void)base::MakeDirs(mount->mountpoint_);
    (void)base::MakeDirs(mount->cache_dir_);
    std::vector<std::string> argv;
    if (tool == Tool::kMeridian) {
      argv = {bench.options.meridian, "storage", "mount", bench.url, mount->mountpoint_};
      for (auto& option : MeridianMountOptions(mount->cache_dir_)) argv.push_back(option);
    } else {
      argv = {bench.rclone, "mount", fmt::format("bench:{}", kContainer), mount->mountpoint_};
      for (auto& option : RcloneMountOptions(mount->cache_dir_, bench.rclone_config)) {
        argv.push_back(option);
      }
    }
    mount->bench_ = &bench;
    mount->pid_ = Spawn(argv, base + ".log");
    for (int waited = 0; !base::IsMounted(mount->mountpoint_); waited += 10) {
      const bool exited = ::waitpid(mount->pid_, nullptr, WNOHANG) == mount->pid_;
      if (exited) mount->pid_ = -1;
      if (exited || waited > kMountTimeoutMs) {
        std::fprintf(stderr, "%s did not mount; see %s.log\n", mount->label_.c_str(), base.c_str());
        return nullptr;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return mount;
  }

  ~MountProcess() {
    if (pid_ > 0) {
      double& peak = bench_->peak_mib[label_];
      peak = std::max(peak, PeakMemoryMib(pid_));
      StopProcess(pid_, kStopGraceMs);
    }
    if (base::IsMounted(mountpoint_)) {
      Shell(fmt::format("fusermount3 -u -z '{}' 2>/dev/null", mountpoint_));
    }
    (void)base::RemoveAll(cache_dir_);  // the bench writes GiBs; keep the disk free
  }

  std::string Path(const std::string& name) const { return mountpoint_ + "/" + name; }
  const std::string& cache_dir() const { return cache_dir_; }

 private:
  MountProcess() = default;
  Bench* bench_ = nullptr;
  pid_t pid_ = -1;
  std::string mountpoint_;
  std::string cache_dir_;
  std::string label_;
};

// Reads `path` to the end with 1 MiB reads; returns MiB/s, or nullopt when it is short.
std::optional<double> ReadWholeFile(const std::string& path, int64_t expected_bytes) {
  std::vector<char> buffer(kIoBufferBytes);
  int64_t start = NowUs();
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    std::fprintf(stderr, "open %s: %s\n", path.c_str(), std::strerror(errno));
    return std::nullopt;
  }
  int64_t total = 0;
  while (true) {
    ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got <= 0) break;
    total += got;
  }
  ::close(fd);
  double seconds = static_cast<double>(NowUs() - start) / 1e6;
  if (total != expected_bytes) {
    std::fprintf(stderr, "read %lld of %lld bytes from %s\n", static_cast<long long>(total),
                 static_cast<long long>(expected_bytes), path.c_str());
    return std::nullopt;
  }
  return static_cast<double>(total) / static_cast<double>(kMiB) / seconds;
}

// Writes the large file's bytes to `path` in 1 MiB writes, then fsync and close.
bool WriteWholeFile(const std::string& path, int64_t bytes) {
  std::vector<char> buffer(kIoBufferBytes);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    std::fprintf(stderr, "open %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  bool ok = true;
  for (int64_t offset = 0; ok && offset < bytes; offset += kIoBufferBytes) {
    int64_t length = std::min<int64_t>(kIoBufferBytes, bytes - offset);
    FillBlock(offset, buffer.data(), length);
    ok = ::write(fd, buffer.data(), length) == length;
  }
  ok = ok && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok) std::fprintf(stderr, "writing %s: %s\n", path.c_str(), std::strerror(errno));
  return ok;
}

// Polls the store until `name` exists with `size` bytes; false on a deadline or an error
// other than "not there yet".
bool WaitForBlob(AzureBlobStore& store, const std::string& name, int64_t size) {
  const int64_t deadline_us = NowUs() + int64_t{kDurableTimeoutMs} * 1000;
  while (NowUs() < deadline_us) {
    auto info = store.Head(name);
    if (info.ok() && info->size == size) return true;
    if (!info.ok() && info.status().code() != absl::StatusCode::kNotFound) {
      std::fprintf(stderr, "Get Blob Properties of %s: %s\n", name.c_str(),
                   info.status().ToString().c_str());
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::fprintf(stderr, "%s did not reach %lld bytes in the store within %d ms\n", name.c_str(),
               static_cast<long long>(size), kDurableTimeoutMs);
  return false;
}

// Polls the store until `count` objects of `size` bytes exist under `prefix`.
bool WaitForObjects(AzureBlobStore& store, const std::string& prefix, int count, int64_t size) {
  const int64_t deadline_us = NowUs() + int64_t{kDurableTimeoutMs} * 1000;
  while (NowUs() < deadline_us) {
    int complete = 0;
    storage::ListOptions list;
    list.prefix = prefix;
    do {
      auto page = store.List(list);
      if (!page.ok()) {
        std::fprintf(stderr, "List Blobs %s: %s\n", prefix.c_str(),
                     page.status().ToString().c_str());
        return false;
      }
      for (const auto& object : page->objects) complete += object.size == size ? 1 : 0;
      list.marker = page->next_marker;
    } while (!list.marker.empty());
    if (complete == count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "%d objects under %s did not all become durable within %d ms\n", count,
               prefix.c_str(), kDurableTimeoutMs);
  return false;
}

std::optional<double> Median(std::vector<double> values) {
  if (values.empty()) return std::nullopt;
  return Percentile(std::move(values), 0.5);
}

struct ReadResult {
  std::vector<double> cold_mib_s;
  std::vector<double> warm_mib_s;
};

// Per repeat: a fresh mount reads the large file (cold), then reads it again (warm).
ReadResult MeasureReads(Bench& bench, Tool tool) {
  ReadResult result;
  const int64_t bytes = bench.options.large_file_mib * kMiB;
  for (int i = 0; i < bench.options.repeats; ++i) {
    auto mount = MountProcess::Start(bench, tool, "read");
    if (mount == nullptr) break;
    std::optional<double> cold = ReadWholeFile(mount->Path(kLargeBlob), bytes);
    std::optional<double> warm = ReadWholeFile(mount->Path(kLargeBlob), bytes);
    if (!cold || !warm) break;
    result.cold_mib_s.push_back(*cold);
    result.warm_mib_s.push_back(*warm);
  }
  return result;
}

// Per repeat: a fresh mount writes a new large file; the clock stops once it is durable.
std::vector<double> MeasureWrites(Bench& bench, Tool tool) {
  std::vector<double> mib_s;
  const int64_t bytes = bench.options.large_file_mib * kMiB;
  for (int i = 0; i < bench.options.repeats; ++i) {
    auto mount = MountProcess::Start(bench, tool, "write");
    if (mount == nullptr) break;
    std::string name = fmt::format("written-{}-{}.bin", ToolName(tool), i);
    int64_t start = NowUs();
    if (!WriteWholeFile(mount->Path(name), bytes) || !WaitForBlob(*bench.store, name, bytes)) {
      break;
    }
    double seconds = static_cast<double>(NowUs() - start) / 1e6;
    mib_s.push_back(static_cast<double>(bytes) / static_cast<double>(kMiB) / seconds);
    mount.reset();
    (void)bench.store->Delete(name, {});  // Azurite keeps every byte on disk
  }
  return mib_s;
}

// Per repeat: a fresh mount creates a directory of small files; the clock stops once the
// store holds all of them.
std::vector<double> MeasureSmallFiles(Bench& bench, Tool tool) {
  std::vector<double> seconds;
  std::string data(bench.options.small_file_bytes, 'x');
  for (int i = 0; i < bench.options.repeats; ++i) {
    auto mount = MountProcess::Start(bench, tool, "small files");
    if (mount == nullptr) break;
    std::string directory = fmt::format("small-{}-{}", ToolName(tool), i);
    int64_t start = NowUs();
    bool ok = ::mkdir(mount->Path(directory).c_str(), 0755) == 0;
    for (int file = 0; ok && file < bench.options.small_files; ++file) {
      std::string path = mount->Path(fmt::format("{}/file-{:05}", directory, file));
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ok = fd >= 0 && ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
      ok = fd >= 0 && ::close(fd) == 0 && ok;
    }
    if (!ok) {
      std::fprintf(stderr, "%s: creating small files failed: %s\n", ToolName(tool),
                   std::strerror(errno));
      break;
    }
    if (!WaitForObjects(*bench.store, directory + "/", bench.options.small_files,
                        bench.options.small_file_bytes)) {
      break;
    }
    seconds.push_back(static_cast<double>(NowUs() - start) / 1e6);
  }
  return seconds;
}

// Per repeat: a fresh mount lists the directory and lstat()s every entry, as `ls -l` does.
std::vector<double> MeasureListing(Bench& bench, Tool tool) {
  std::vector<double> seconds;
  for (int i = 0; i < bench.options.repeats; ++i) {
    auto mount = MountProcess::Start(bench, tool, "listing");
    if (mount == nullptr) break;
    int64_t start = NowUs();
    DIR* dir = ::opendir(mount->Path(kListPrefix).c_str());
    if (dir == nullptr) break;
    int entries = 0;
    while (dirent* entry = ::readdir(dir)) {
      if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
      struct stat st {};
      if (::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) ++entries;
    }
    ::closedir(dir);
    double elapsed = static_cast<double>(NowUs() - start) / 1e6;
    if (entries != bench.options.list_files) {
      std::fprintf(stderr, "%s listed %d of %d entries\n", ToolName(tool), entries,
                   bench.options.list_files);
      break;
    }
    seconds.push_back(elapsed);
  }
  return seconds;
}

// Objects under `prefix` in the store, -1 when listing fails.
int CountObjects(AzureBlobStore& store, const std::string& prefix) {
  int count = 0;
  storage::ListOptions list;
  list.prefix = prefix;
  do {
    auto page = store.List(list);
    if (!page.ok()) return -1;
    count += static_cast<int>(page->objects.size());
    list.marker = page->next_marker;
  } while (!list.marker.empty());
  return count;
}

// Per repeat: a fresh mount runs `chmod -R` over the directory of large files, alternating
// between two modes so that every run changes every file.
std::vector<double> MeasureChmod(Bench& bench, Tool tool) {
  std::vector<double> seconds;
  for (int i = 0; i < bench.options.repeats; ++i) {
    auto mount = MountProcess::Start(bench, tool, "chmod");
    if (mount == nullptr) break;
    int64_t start = NowUs();
    int status = Shell(
        fmt::format("chmod -R {} '{}'", i % 2 == 0 ? "go-r" : "go+r", mount->Path(kChmodPrefix)));
    if (status != 0) {
      std::fprintf(stderr, "%s: chmod -R exited %d\n", ToolName(tool), status);
      break;
    }
    seconds.push_back(static_cast<double>(NowUs() - start) / 1e6);
  }
  return seconds;
}

// Per repeat: a fresh mount renames the directory of many files to its next name; the clock
// stops when the store shows every object under the new name and none under the old.
std::vector<double> MeasureRename(Bench& bench, Tool tool) {
  std::vector<double> seconds;
  const int files = bench.options.rename_files;
  for (int i = 0; i < bench.options.repeats; ++i) {
    auto mount = MountProcess::Start(bench, tool, "rename");
    if (mount == nullptr) break;
    const std::string from = RenamedDirectory(bench.rename_generation);
    const std::string to = RenamedDirectory(bench.rename_generation + 1);
    int64_t start = NowUs();
    if (::rename(mount->Path(from).c_str(), mount->Path(to).c_str()) != 0) {
      std::fprintf(stderr, "%s: rename %s: %s\n", ToolName(tool), from.c_str(),
                   std::strerror(errno));
      break;
    }
    ++bench.rename_generation;
    const int64_t deadline_us = NowUs() + int64_t{kDurableTimeoutMs} * 1000;
    bool moved = false;
    while (!moved && NowUs() < deadline_us) {
      moved = CountObjects(*bench.store, to + "/") == files &&
              CountObjects(*bench.store, from + "/") == 0;
      if (!moved) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!moved) {
      std::fprintf(stderr, "%s: %s did not show all %d objects within %d ms\n", ToolName(tool),
                   to.c_str(), files, kDurableTimeoutMs);
      break;
    }
    seconds.push_back(static_cast<double>(NowUs() - start) / 1e6);
  }
  return seconds;
}

// The best of curl reading the large blob in 16 MiB ranges, 1, 4 and 8 at once.
std::optional<double> MeasureCurlFloor(Bench& bench) {
  std::optional<double> best;
  for (int parallel : {1, 4, 8}) {
    CurlRead read;
    read.endpoint = bench.endpoint;
    read.account = storage::kDevelopmentAccount;
    read.account_key = bench.account_key;
    read.container = kContainer;
    read.blob = kLargeBlob;
    read.size_bytes = bench.options.large_file_mib * kMiB;
    read.parallel = parallel;
    std::optional<double> mib_s = CurlReadMibPerSecond(read);
    if (!mib_s) return std::nullopt;
    std::fprintf(stderr, "curl, %d at once: %.0f MiB/s\n", parallel, *mib_s);
    best = std::max(best.value_or(0), *mib_s);
  }
  return best;
}

// The same bytes from a file on the cache directories' filesystem, read once to warm the
// page cache and then timed.
std::vector<double> MeasureLocalDisk(Bench& bench) {
  std::vector<double> mib_s;
  const int64_t bytes = bench.options.large_file_mib * kMiB;
  std::string path = bench.dir + "/local-copy.bin";
  if (!WriteWholeFile(path, bytes) || !ReadWholeFile(path, bytes)) return mib_s;
  for (int i = 0; i < bench.options.repeats; ++i) {
    if (auto speed = ReadWholeFile(path, bytes)) mib_s.push_back(*speed);
  }
  (void)base::RemoveAll(path);
  return mib_s;
}

// The large file's bytes at [offset, offset + length), both 1 MiB-aligned but for the end.
std::string LargeFileBytes(int64_t offset, int64_t length) {
  std::string bytes(length, '\0');
  for (int64_t done = 0; done < length; done += kIoBufferBytes) {
    FillBlock(offset + done, bytes.data() + done, std::min<int64_t>(kIoBufferBytes, length - done));
  }
  return bytes;
}

// `count` objects of `bytes` each (the large file's first bytes) as `prefix`/file-NNNNN,
// written straight to the store, 16 at once.
bool PutFiles(Bench& bench, const std::string& prefix, int count, int64_t bytes) {
  const std::string data = LargeFileBytes(0, bytes);
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < count && !failed; i = next++) {
        std::string name = fmt::format("{}/file-{:05}", prefix, i);
        if (!storage::UploadObject(*bench.store, name, storage::DataSourceFromBytes(data), {})
                 .ok()) {
          failed = true;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  if (failed) std::fprintf(stderr, "creating the blobs under %s/ failed\n", prefix.c_str());
  return !failed;
}

// The large blob and the directories of many blobs, written straight to the store.
bool FillStore(Bench& bench) {
  storage::DataSource source;
  source.size_bytes = bench.options.large_file_mib * kMiB;
  source.read = [](int64_t offset, int64_t length) -> Result<std::string> {
    return LargeFileBytes(offset, length);
  };
  auto uploaded = storage::UploadObject(*bench.store, kLargeBlob, source, {});
  if (!uploaded.ok()) {
    std::fprintf(stderr, "uploading %s: %s\n", kLargeBlob, uploaded.status().ToString().c_str());
    return false;
  }
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < bench.options.list_files && !failed; i = next++) {
        std::string name = fmt::format("{}/entry-{:05}.txt", kListPrefix, i);
        if (!bench.store->Put(name, fmt::format("entry {}\n", i), {}, {}).ok()) failed = true;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  if (failed) std::fprintf(stderr, "creating the blobs under %s/ failed\n", kListPrefix);
  return !failed &&
         PutFiles(bench, kChmodPrefix, bench.options.chmod_files,
                  bench.options.chmod_file_mib * kMiB) &&
         PutFiles(bench, RenamedDirectory(0), bench.options.rename_files,
                  bench.options.rename_file_mib * kMiB);
}

struct Measured {
  std::optional<double> cold_mib_s, warm_mib_s, write_mib_s, small_files_per_s, list_s;
  std::optional<double> chmod_s, rename_s;
  double peak_mib = 0;
};

Measured MeasureTool(Bench& bench, Tool tool) {
  std::fprintf(stderr, "measuring %s ...\n", ToolName(tool));
  Measured measured;
  ReadResult reads = MeasureReads(bench, tool);
  measured.cold_mib_s = Median(reads.cold_mib_s);
  measured.warm_mib_s = Median(reads.warm_mib_s);
  measured.write_mib_s = Median(MeasureWrites(bench, tool));
  if (auto seconds = Median(MeasureSmallFiles(bench, tool))) {
    measured.small_files_per_s = bench.options.small_files / *seconds;
  }
  measured.list_s = Median(MeasureListing(bench, tool));
  measured.chmod_s = Median(MeasureChmod(bench, tool));
  measured.rename_s = Median(MeasureRename(bench, tool));
  for (const auto& [label, peak] : bench.peak_mib) {
    if (label.rfind(ToolName(tool), 0) == 0) measured.peak_mib = std::max(measured.peak_mib, peak);
  }
  return measured;
}

std::string Goal(const Figure& figure, double goal_ratio) {
  if (figure.value <= 0 || figure.peer_value <= 0) return "n/a";
  double ratio =
      figure.lower_is_better ? figure.peer_value / figure.value : figure.value / figure.peer_value;
  return ratio >= goal_ratio ? "met" : "NOT met";
}

// `goals[i]` is figure i's goal as a ratio to its peer (0: none); `max_seconds` are goals
// on a figure's own value in seconds, by index.
void PrintGoals(const std::vector<Figure>& figures, const std::vector<double>& goals,
                const std::map<size_t, double>& max_seconds) {
  std::printf("\n| %-50s | %-14s | %-7s |\n", "figure", "goal", "");
  std::printf("|%s|%s|%s|\n", std::string(52, '-').c_str(), std::string(16, '-').c_str(),
              std::string(9, '-').c_str());
  for (size_t i = 0; i < figures.size(); ++i) {
    if (auto limit = max_seconds.find(i); limit != max_seconds.end()) {
      const char* met = figures[i].value <= 0               ? "n/a"
                        : figures[i].value <= limit->second ? "met"
                                                            : "NOT met";
      std::printf("| %-50s | %-14s | %-7s |\n", figures[i].name.c_str(),
                  fmt::format("<= {:g} s", limit->second).c_str(), met);
    }
    if (i >= goals.size() || goals[i] <= 0) continue;
    std::string goal = goals[i] < 1 ? fmt::format(">= {:.0f}% of peer", goals[i] * 100)
                                    : fmt::format(">= {:.0f}x peer", goals[i]);
    std::printf("| %-50s | %-14s | %-7s |\n", figures[i].name.c_str(), goal.c_str(),
                Goal(figures[i], goals[i]).c_str());
  }
}

void ReportAll(const Bench& bench, const Measured& meridian, const Measured& rclone,
               const std::vector<double>& local_mib_s, std::optional<double> curl_mib_s) {
  const Options& o = bench.options;
  std::string peer = bench.rclone.empty() ? "rclone: not installed" : "rclone mount, same run";
  auto value = [](const std::optional<double>& v) { return v.value_or(0); };
  double local = value(Median(local_mib_s));
  std::vector<Figure> figures = {
      {fmt::format("cold sequential read, {} MiB file", o.large_file_mib),
       value(meridian.cold_mib_s), "MiB/s", peer, value(rclone.cold_mib_s), false},
      {fmt::format("sequential write of {} MiB until durable", o.large_file_mib),
       value(meridian.write_mib_s), "MiB/s", peer, value(rclone.write_mib_s), false},
      {fmt::format("create {} files of {} B until durable", o.small_files, o.small_file_bytes),
       value(meridian.small_files_per_s), "files/s", peer, value(rclone.small_files_per_s), false},
      {fmt::format("ls -l of {} files, fresh mount", o.list_files), value(meridian.list_s), "s",
       peer, value(rclone.list_s), true},
      {"warm re-read of the large file", value(meridian.warm_mib_s), "MiB/s", peer,
       value(rclone.warm_mib_s), false},
      {"warm re-read vs local disk (page cache)", value(meridian.warm_mib_s), "MiB/s",
       "the same bytes read from local disk", local, false},
      {"peak memory of the mount (VmHWM)", meridian.peak_mib, "MiB", peer, rclone.peak_mib, true},
      {fmt::format("chmod -R of {} files of {} MiB, fresh mount", o.chmod_files, o.chmod_file_mib),
       value(meridian.chmod_s), "s", peer + " (keeps no modes)", value(rclone.chmod_s), true},
      {fmt::format("rename a directory of {} files of {} MiB", o.rename_files, o.rename_file_mib),
       value(meridian.rename_s), "s", peer, value(rclone.rename_s), true},
      {"cold sequential read vs the server's floor", value(meridian.cold_mib_s), "MiB/s",
       "curl, 16 MiB ranges, best of 1/4/8 at once", value(curl_mib_s), false},
  };
  std::vector<std::string> notes = {
      fmt::format("medians of {} runs; Azurite 3.35.0 on 127.0.0.1, one container.", o.repeats),
      "meridian: " + fmt::format("{}", fmt::join(MeridianMountOptions("DIR"), " ")),
      "rclone: " + fmt::format("{}", fmt::join(RcloneMountOptions("DIR", "CONF"), " ")),
      "cold read: fresh mount and empty cache directory each run; warm: the same file again on "
      "that mount.",
      "write/small files: the clock stops when Get Blob Properties / List Blobs show every blob "
      "at full size (meridian commits before fsync/close return; rclone uploads after close).",
      "ls -l: readdir plus lstat of each entry; the blobs were made directly in the store.",
      "chmod -R: alternately go-r and go+r over blobs made directly in the store.",
      "rename: rename(2) of the directory; the clock stops when List Blobs shows every object "
      "under the new name and none under the old.",
      "curl floor: Get Blob with x-ms-range, signed with Shared Key, output to /dev/null.",
  };
  if (rclone.warm_mib_s && local > 0) {
    notes.push_back(fmt::format("rclone warm re-read is {:.0f}% of local disk.",
                                100 * *rclone.warm_mib_s / local));
  }
  for (const auto& [label, peak] : bench.peak_mib) {
    notes.push_back(fmt::format("peak memory, {}: {:.0f} MiB", label, peak));
  }
  if (bench.rclone.empty()) {
    notes.push_back(
        "rclone is NOT installed (scripts/deps.sh --bench installs it): only meridian "
        "was measured.");
  }
  Report("storage: meridian storage mount vs rclone mount --vfs-cache-mode full", figures, o.out,
         notes);
  std::printf("\nGoals (issue): ratio as in the table above, > 1 = meridian better.\n");
  PrintGoals(figures, {2, 2, 2, 2, 0, 0.8, 0, 0, 0, 0.9}, {{7, 1.0}});
}

int Run(const Options& options) {
  Bench bench;
  bench.options = options;
  char templ[] = "/tmp/meridian-storage-bench-XXXXXX";
  if (::mkdtemp(templ) == nullptr) return 1;
  bench.dir = templ;
  auto azurite = AzuriteServer::Start();
  if (!azurite.ok()) {
    std::fprintf(stderr, "Azurite: %s\n", azurite.status().ToString().c_str());
    return 1;
  }
  // The bench itself reads properties of blobs larger than the client's default response
  // limit.
  storage::AzureBlobOptions store_options;
  store_options.http.max_response_bytes = options.large_file_mib * kMiB * 2;
  auto store = AzureBlobStore::Create((*azurite)->ConfigFor(kContainer), store_options);
  if (!store.ok() || !(*store)->CreateContainer().ok()) {
    std::fprintf(stderr, "cannot create the container on Azurite\n");
    return 1;
  }
  bench.store = std::move(*store);
  bench.url = fmt::format("{}/{}", (*azurite)->endpoint(), kContainer);
  ::setenv("AZURE_STORAGE_ACCOUNT", storage::kDevelopmentAccount, 1);
  ::setenv("AZURE_STORAGE_ACCESS_KEY", storage::kDevelopmentAccountKey, 1);
  bench.endpoint = (*azurite)->endpoint();
  bench.account_key = storage::kDevelopmentAccountKey;
  bench.rclone = FindOnPath("rclone");
  if (bench.rclone.empty()) {
    std::fprintf(stderr,
                 "rclone is NOT installed: measuring meridian only "
                 "(scripts/deps.sh --bench installs it)\n");
  }
  // rclone's emulator mode uses the same well-known development account and key.
  bench.rclone_config = bench.dir + "/rclone.conf";
  (void)base::WriteFileAtomic(bench.rclone_config,
                              fmt::format("[bench]\ntype = azureblob\nuse_emulator = true\n"
                                          "endpoint = {}\n",
                                          (*azurite)->endpoint()));
  std::fprintf(stderr, "filling the store ...\n");
  if (!FillStore(bench)) return 1;

  std::vector<double> local = MeasureLocalDisk(bench);
  std::optional<double> curl = MeasureCurlFloor(bench);
  Measured meridian = MeasureTool(bench, Tool::kMeridian);
  Measured rclone;
  if (!bench.rclone.empty()) rclone = MeasureTool(bench, Tool::kRclone);
  ReportAll(bench, meridian, rclone, local, curl);
  bench.store.reset();
  azurite->reset();
  (void)base::RemoveAll(bench.dir);
  return 0;
}

}  // namespace
}  // namespace meridian::bench

int main(int argc, char** argv) {
  meridian::bench::Options options;
  meridian::bench::Flags flags(
      "storage_bench", "meridian storage mount vs rclone mount on one Azurite (docs/storage.md)");
  flags.Add("out", &options.out, "JSON file for the figures");
  flags.Add("meridian", &options.meridian, "the meridian binary to mount with");
  flags.Add("large-file-mib", &options.large_file_mib, 1, 1 << 20,
            "size of the file read and written, MiB");
  flags.Add("repeats", &options.repeats, 1, 100, "runs per figure (the median is shown)");
  flags.Add("small-files", &options.small_files, 1, 1'000'000, "files of 4 KiB to create");
  flags.Add("list-files", &options.list_files, 1, 10'000'000, "files in the listed directory");
  flags.Add("chmod-files", &options.chmod_files, 1, 100'000, "files chmod -R changes");
  flags.Add("chmod-file-mib", &options.chmod_file_mib, 1, 4096, "size of each of them, MiB");
  flags.Add("rename-files", &options.rename_files, 1, 100'000, "files in the renamed directory");
  flags.Add("rename-file-mib", &options.rename_file_mib, 1, 4096, "size of each of them, MiB");
  if (int exit_code = flags.Parse(argc, argv); exit_code >= 0) return exit_code;
  return meridian::bench::Run(options);
}
