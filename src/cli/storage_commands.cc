// `meridian storage mount|ls|cat|cp|rm`: the object-storage filesystem and script helpers.
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <iostream>
#include <mutex>

#include "base/files.h"
#include "base/home.h"
#include "base/log.h"
#include "cli/commands.h"
#include "fmt/format.h"
#include "identity/credentials/default_credential.h"
#include "spdlog/spdlog.h"
#include "storage/azure_blob_store.h"
#include "storage/fs/background_download.h"
#include "storage/fs/fs_core.h"
#include "storage/fs/fuse_adapter.h"
#include "storage/local_store.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

constexpr int64_t kProgressMinBytes = int64_t{8} << 20;

// Opens the store a URL names: file:///dir (local backend) or an Azure Blob URL.
Result<std::unique_ptr<storage::ObjectStore>> OpenStore(const std::string& url) {
  if (url.starts_with("file://")) {
    std::string path = url.substr(7);
    if (path.empty() || path[0] != '/') {
      return absl::InvalidArgumentError(fmt::format("'{}': use file:///absolute/path", url));
    }
    ASSIGN_OR_RETURN(auto store, storage::LocalStore::Open(path));
    return std::unique_ptr<storage::ObjectStore>(std::move(store));
  }
  if (storage::LooksLikeAzureBlobUrl(url)) {
    // Without a key or SAS in the environment the store asks for bearer tokens: workload
    // identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE) or a private
    // key, exactly as the Azure SDKs' DefaultAzureCredential would find them.
    storage::AzureBlobOptions options;
    Result<std::shared_ptr<identity::credentials::TokenCredential>> credential =
        identity::credentials::DefaultCredentialFromEnvironment({});
    if (credential.ok()) options.token_source = identity::credentials::AsTokenSource(*credential);
    Result<std::unique_ptr<storage::AzureBlobStore>> store =
        storage::AzureBlobStore::Open(url, storage::ProcessEnv(), std::move(options));
    if (!store.ok() && !credential.ok() && absl::IsUnauthenticated(store.status())) {
      return absl::UnauthenticatedError(fmt::format("{}; workload identity: {}",
                                                    store.status().message(),
                                                    credential.status().message()));
    }
    if (!store.ok()) return store.status();
    return std::unique_ptr<storage::ObjectStore>(*std::move(store));
  }
  return absl::InvalidArgumentError(fmt::format(
      "'{}' is not a storage URL (abfss://container@account.dfs.core.windows.net[/prefix], "
      "https://account.blob.core.windows.net/container[/prefix], "
      "http://127.0.0.1:PORT/devstoreaccount1/container, or file:///path)",
      url));
}

struct MountFlags {
  std::string url;
  std::string mountpoint;
  std::vector<std::string> fuse_options;  // -o values, each possibly comma-separated
  int64_t file_cache_timeout_s = 120;
  bool use_attr_cache = false;
  int64_t cancel_list_on_mount_s = 0;
  int64_t cache_size_mb = 1000;
  int64_t free_disk_floor_mb = 1024;
  bool block_cache = false;
  int64_t block_size_mb = 16;
  int64_t block_pool_mb = 1024;
  int prefetch_blocks = 8;
  bool read_only = false;
  std::string cache_dir;
  int64_t max_dir_rename_objects = 10'000;
};

Result<double> ParseSeconds(const std::string& option, const std::string& value) {
  char* end = nullptr;
  double seconds = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || seconds < 0 || seconds > 86'400 * 365) {
    return absl::InvalidArgumentError(fmt::format("-o {}={}: expected seconds", option, value));
  }
  return seconds;
}

// uid=N, gid=N: a number; umask=NNN: octal.
Result<uint32_t> ParseNumber(const std::string& option, const std::string& value, int base,
                             uint32_t max) {
  uint32_t number = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), number, base);
  if (value.empty() || error != std::errc() || end != value.data() + value.size() || number > max) {
    return absl::InvalidArgumentError(
        fmt::format("-o {}={}: expected {} up to {}", option, value,
                    base == 8 ? "octal" : "a number",
                    base == 8 ? fmt::format("{:o}", max) : std::to_string(max)));
  }
  return number;
}

// Applies the -o options; unknown ones are named in a warning and otherwise ignored. uid,
// gid and umask set the owner and mode bits every file and directory shows (as libfuse's
// and BlobFuse2's options of those names do), for mounts other users share (allow_other).
Status ApplyFuseOptions(const std::vector<std::string>& values, storage::fs::MountOptions& mount,
                        storage::fs::FsOptions& fs) {
  for (const std::string& value : values) {
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      std::string item =
          value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      start = comma == std::string::npos ? value.size() + 1 : comma + 1;
      if (item.empty()) continue;
      size_t equals = item.find('=');
      std::string key = item.substr(0, equals);
      std::string argument = equals == std::string::npos ? "" : item.substr(equals + 1);
      if (key == "allow_other") {
        mount.allow_other = true;
      } else if (key == "ro") {
        mount.read_only = true;
      } else if (key == "attr_timeout") {
        ASSIGN_OR_RETURN(mount.attr_timeout_s, ParseSeconds(key, argument));
      } else if (key == "entry_timeout") {
        ASSIGN_OR_RETURN(mount.entry_timeout_s, ParseSeconds(key, argument));
      } else if (key == "negative_timeout") {
        ASSIGN_OR_RETURN(mount.negative_timeout_s, ParseSeconds(key, argument));
      } else if (key == "uid") {
        ASSIGN_OR_RETURN(fs.uid, ParseNumber(key, argument, 10, 0x7ffffffe));
      } else if (key == "gid") {
        ASSIGN_OR_RETURN(fs.gid, ParseNumber(key, argument, 10, 0x7ffffffe));
      } else if (key == "umask") {
        ASSIGN_OR_RETURN(uint32_t umask, ParseNumber(key, argument, 8, 0777));
        fs.file_mode = 0666 & ~umask;
        fs.directory_mode = 0777 & ~umask;
      } else {
        spdlog::warn("ignoring mount option -o {} (not supported by meridian)", item);
      }
    }
  }
  return OkStatus();
}

std::string DefaultCacheDir(const std::string& home, const std::string& url) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : url) hash = (hash ^ c) * 1099511628211ull;
  return fmt::format("{}/storage-cache/{:016x}", home, hash);
}

Status RunMount(const MountFlags& flags, const std::vector<std::string>& extras,
                const std::string& home) {
  for (const std::string& extra : extras) {
    spdlog::warn("ignoring option {} (a BlobFuse2 option meridian does not support)", extra);
  }
  if (flags.cancel_list_on_mount_s > 0) {
    spdlog::info(
        "--cancel-list-on-mount-seconds: meridian does not list at mount; nothing to cancel");
  }
  if (flags.block_size_mb <= 0 || flags.block_size_mb > 4000 || flags.block_pool_mb <= 0 ||
      flags.free_disk_floor_mb < 0 || flags.prefetch_blocks < 0 || flags.prefetch_blocks > 256 ||
      flags.max_dir_rename_objects < 0) {
    return absl::InvalidArgumentError(
        "--block-cache-block-size must be 1..4000 MB, --block-cache-pool-size positive, "
        "--block-cache-prefetch 0..256, --cache-free-disk-floor-mb and "
        "--max-dir-rename-objects not negative");
  }
  // Block buffers are large and freed on other threads than the ones that allocate them;
  // served by mmap they go back to the system when freed, so the process's resident memory
  // follows the block pool instead of the high-water mark of every malloc arena.
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  // Smaller buffers (a 128 KiB read reply) are freed and taken again thousands of times a
  // second; giving each one back with madvise cost a page fault per 4 KiB on reuse and a TLB
  // shootdown per free. Up to this much free space stays in each arena instead.
  ::mallopt(M_TRIM_THRESHOLD, 16 << 20);
  storage::fs::MountOptions mount;
  mount.mountpoint = flags.mountpoint;
  mount.read_only = flags.read_only;
  storage::fs::FsOptions options;
  options.uid = ::getuid();
  options.gid = ::getgid();
  RETURN_IF_ERROR(ApplyFuseOptions(flags.fuse_options, mount, options));
  ASSIGN_OR_RETURN(std::unique_ptr<storage::ObjectStore> store, OpenStore(flags.url));
  options.cache_dir = flags.cache_dir.empty() ? DefaultCacheDir(home, flags.url) : flags.cache_dir;
  options.cache_size_mb = flags.cache_size_mb;
  options.free_disk_floor_bytes = flags.free_disk_floor_mb << 20;
  options.block_cache = flags.block_cache;
  options.block_size_bytes = flags.block_size_mb << 20;
  options.block_pool_bytes = flags.block_pool_mb << 20;
  options.prefetch_blocks = flags.prefetch_blocks;
  options.file_cache_timeout_s = flags.file_cache_timeout_s;
  options.use_attr_cache = flags.use_attr_cache;
  options.attr_cache_timeout_s = static_cast<int64_t>(mount.attr_timeout_s);
  options.read_only = mount.read_only;
  options.max_dir_rename_objects = flags.max_dir_rename_objects;
  ASSIGN_OR_RETURN(std::unique_ptr<storage::fs::FsCore> core,
                   storage::fs::FsCore::Create(store.get(), options));
  ASSIGN_OR_RETURN(std::unique_ptr<storage::fs::FuseMount> mounted,
                   storage::fs::FuseMount::Mount(core.get(), mount));
  spdlog::info("mounted {} at {} (cache {})", flags.url, flags.mountpoint, options.cache_dir);
  Status status = mounted->Run();
  spdlog::info("unmounted {}", flags.mountpoint);
  return status;
}

// ---- ls / cat / cp / rm ---------------------------------------------------------------------

Status List(const std::string& url, const std::string& prefix, bool recursive,
            OutputFormat format) {
  ASSIGN_OR_RETURN(auto store, OpenStore(url));
  storage::ListOptions options;
  options.prefix = prefix.empty() || prefix.ends_with('/') ? prefix : prefix + "/";
  if (!recursive) options.delimiter = "/";
  json items = json::array();
  Table table{{"NAME", "SIZE", "MODIFIED"}, {}};
  do {
    ASSIGN_OR_RETURN(storage::ListPage page, store->List(options));
    for (const std::string& common : page.common_prefixes) {
      items.push_back({{"name", common}, {"directory", true}});
      table.rows.push_back({common, "-", ""});
    }
    for (const storage::ObjectInfo& object : page.objects) {
      bool folder = object.metadata.contains("hdi_isfolder");
      items.push_back({{"name", object.name},
                       {"size", object.size},
                       {"last_modified_unix_ms", object.last_modified_unix_ms},
                       {"directory", folder}});
      if (!folder) {
        table.rows.push_back({object.name, FormatBytes(object.size),
                              std::to_string(object.last_modified_unix_ms / 1000)});
      }
    }
    options.marker = page.next_marker;
  } while (!options.marker.empty());
  Print(format, json{{"items", items}}, [&](const json&) { std::cout << table.Render(); });
  return OkStatus();
}

Status Cat(const std::string& url, const std::string& name) {
  ASSIGN_OR_RETURN(auto store, OpenStore(url));
  ASSIGN_OR_RETURN(storage::ObjectInfo info, store->Head(name));
  // Streamed in order; a retried request delivers its range again from the start, and what
  // was written already is skipped (stdout cannot seek back).
  int64_t written = 0;
  const storage::ObjectStore::RangeSink sink = [&](int64_t offset,
                                                   std::string_view bytes) -> Status {
    const int64_t end = offset + static_cast<int64_t>(bytes.size());
    if (end <= written) return OkStatus();
    bytes.remove_prefix(static_cast<size_t>(written - offset));
    std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!std::cout) return absl::DataLossError("writing to standard output failed");
    written = end;
    return OkStatus();
  };
  while (written < info.size) {
    ASSIGN_OR_RETURN(int64_t read, store->ReadRange(name, written, info.size - written,
                                                    storage::Condition::IfMatch(info.etag), sink));
    if (read == 0) break;
  }
  std::cout.flush();
  return OkStatus();
}

Status Upload(const std::string& file, const std::string& url, const std::string& name) {
  ASSIGN_OR_RETURN(auto store, OpenStore(url));
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(fmt::format("{}: {}", file, std::strerror(errno)));
  struct stat st {};
  ::fstat(fd, &st);
  Progress progress("upload " + name);
  std::mutex progress_mu;
  std::atomic<int64_t> done{0};
  storage::DataSource source;
  source.size_bytes = st.st_size;
  source.read = [&](int64_t offset, int64_t length) -> Result<std::string> {
    std::string buffer(length, '\0');
    ssize_t n = ::pread(fd, buffer.data(), length, offset);
    if (n != length) return absl::DataLossError(fmt::format("{} changed while being read", file));
    int64_t total = done += length;
    if (st.st_size >= kProgressMinBytes) {
      std::lock_guard lock(progress_mu);
      progress.Update(total, st.st_size);
    }
    return buffer;
  };
  Result<std::string> etag = storage::UploadObject(*store, name, source, {});
  ::close(fd);
  RETURN_IF_ERROR(etag.status());
  if (st.st_size >= kProgressMinBytes)
    progress.Finish(fmt::format("done, {}", FormatBytes(st.st_size)));
  return OkStatus();
}

Status Download(const std::string& url, const std::string& name, const std::string& file) {
  ASSIGN_OR_RETURN(auto store, OpenStore(url));
  ASSIGN_OR_RETURN(storage::ObjectInfo info, store->Head(name));
  std::string temp = file + ".meridian-partial";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::PermissionDeniedError(fmt::format("{}: {}", temp, std::strerror(errno)));
  Progress progress("download " + name);
  Status status;
  if (::ftruncate(fd, info.size) != 0) {
    status = absl::ResourceExhaustedError(fmt::format("{}: {}", temp, std::strerror(errno)));
  }
  // Parallel ranged reads straight into the file; progress follows the bytes in order.
  Result<std::shared_ptr<storage::fs::BackgroundDownload>> download =
      status.ok() ? storage::fs::BackgroundDownload::Start(store.get(), info, fd, {})
                  : Result<std::shared_ptr<storage::fs::BackgroundDownload>>(status);
  if (!download.ok()) status = download.status();
  constexpr int64_t kProgressStepBytes = int64_t{8} << 20;
  for (int64_t done = 0; status.ok() && done < info.size;) {
    done = std::min(info.size, done + kProgressStepBytes);
    status = (*download)->WaitFor(0, done);
    if (status.ok() && info.size >= kProgressMinBytes) progress.Update(done, info.size);
  }
  if (download.ok()) download->reset();
  ::close(fd);
  if (status.ok() && ::rename(temp.c_str(), file.c_str()) != 0) {
    status = absl::PermissionDeniedError(fmt::format("{}: {}", file, std::strerror(errno)));
  }
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  if (info.size >= kProgressMinBytes)
    progress.Finish(fmt::format("done, {}", FormatBytes(info.size)));
  return OkStatus();
}

bool IsUrl(const std::string& text) { return text.find("://") != std::string::npos; }

// Runs `action`, turning an error into the exit code.
template <typename Action>
std::function<void()> Run(Context& context, Action action) {
  return [&context, action] {
    if (Status status = base::InitLogging(context.log_level); !status.ok()) {
      context.exit_code = ReportError(status);
      return;
    }
    Status status = action();
    if (!status.ok()) context.exit_code = ReportError(status);
  };
}

void AddScriptCommands(CLI::App* storage, Context& context) {
  static std::string url;
  static std::string name;
  static bool recursive = false;
  CLI::App* ls = storage->add_subcommand("ls",
                                         "List objects under a prefix\n\nExample:\n  meridian "
                                         "storage ls file:///srv/data checkpoints/");
  ls->add_option("url", url, "Storage URL")->required();
  ls->add_option("prefix", name, "Prefix (a directory) inside it");
  ls->add_flag("-r,--recursive", recursive, "List everything below, not one level");
  AddOutputFlag(ls, context);
  ls->callback(Run(context, [&context] {
    ASSIGN_OR_RETURN(OutputFormat format, context.Format());
    return List(url, name, recursive, format);
  }));

  CLI::App* cat = storage->add_subcommand(
      "cat",
      "Write an object to stdout\n\nExample:\n  meridian storage cat file:///srv/data notes.txt");
  cat->add_option("url", url, "Storage URL")->required();
  cat->add_option("name", name, "Object name")->required();
  cat->callback(Run(context, [] { return Cat(url, name); }));

  static std::vector<std::string> cp_args;
  CLI::App* cp = storage->add_subcommand(
      "cp",
      "Copy a local file to an object or back, with progress for large copies\n\nExamples:\n"
      "  meridian storage cp model.bin https://acct.blob.core.windows.net/c models/model.bin\n"
      "  meridian storage cp https://acct.blob.core.windows.net/c models/model.bin model.bin");
  cp->add_option("args", cp_args, "FILE URL NAME (upload) or URL NAME FILE (download)")
      ->required()
      ->expected(3);
  cp->callback(Run(context, [] {
    if (IsUrl(cp_args[0])) return Download(cp_args[0], cp_args[1], cp_args[2]);
    if (IsUrl(cp_args[1])) return Upload(cp_args[0], cp_args[1], cp_args[2]);
    return absl::InvalidArgumentError("cp: give FILE URL NAME or URL NAME FILE");
  }));

  static std::vector<std::string> rm_names;
  CLI::App* rm = storage->add_subcommand(
      "rm", "Delete objects\n\nExample:\n  meridian storage rm file:///srv/data old.bin");
  rm->add_option("url", url, "Storage URL")->required();
  rm->add_option("names", rm_names, "Object names")->required();
  rm->callback(Run(context, [] {
    ASSIGN_OR_RETURN(auto store, OpenStore(url));
    for (const std::string& object : rm_names) {
      RETURN_IF_ERROR(store->Delete(object, storage::Condition::None()));
    }
    return OkStatus();
  }));
}

}  // namespace

void AddStorageCommands(CLI::App& app, Context& context) {
  CLI::App* storage = app.add_subcommand(
      "storage", "Object storage: mount it as a filesystem, or list and copy objects");
  storage->require_subcommand(1);

  static MountFlags flags;
  CLI::App* mount = storage->add_subcommand(
      "mount",
      "Mount object storage as a POSIX filesystem (FUSE) until unmounted, SIGTERM or SIGINT.\n"
      "Accepts the BlobFuse2 / blob CSI StorageClass mountOptions verbatim.\n\nExample:\n"
      "  meridian storage mount abfss://data@acct.dfs.core.windows.net /mnt/cluster_storage \\\n"
      "    -o allow_other --file-cache-timeout-in-seconds=120 --use-attr-cache=true \\\n"
      "    -o attr_timeout=120 -o entry_timeout=120 -o negative_timeout=120 \\\n"
      "    --log-level=LOG_WARNING --cache-size-mb=1000");
  mount
      ->add_option("url", flags.url,
                   "abfss://, https://, http://127.0.0.1:PORT/account/container or file:///path")
      ->required();
  mount->add_option("mountpoint", flags.mountpoint, "An existing empty directory")->required();
  mount->add_option("-o", flags.fuse_options,
                    "allow_other, ro, attr_timeout=N, entry_timeout=N, negative_timeout=N, uid=N, "
                    "gid=N, umask=NNN");
  mount
      ->add_option("--file-cache-timeout-in-seconds", flags.file_cache_timeout_s,
                   "Keep a closed file's local copy this long")
      ->capture_default_str();
  mount->add_flag("--use-attr-cache", flags.use_attr_cache,
                  "Cache file attributes for attr_timeout seconds");
  mount->add_option("--cancel-list-on-mount-seconds", flags.cancel_list_on_mount_s,
                    "Accepted for BlobFuse2 compatibility (nothing is listed at mount)");
  mount->add_option("--log-level", context.log_level, "LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR");
  mount->add_option("--cache-size-mb", flags.cache_size_mb, "Cap of the local file cache")
      ->capture_default_str();
  mount
      ->add_option("--cache-free-disk-floor-mb", flags.free_disk_floor_mb,
                   "Keep this much free on the cache disk; files that do not fit stream")
      ->capture_default_str();
  mount->add_flag("--block-cache", flags.block_cache,
                  "Streaming mode for every file: blocks in a bounded memory pool, no disk");
  mount
      ->add_option("--block-cache-block-size,--block-size-mb", flags.block_size_mb,
                   "Block size in MB for streaming and for uploads while writing")
      ->capture_default_str();
  mount
      ->add_option("--block-cache-pool-size", flags.block_pool_mb,
                   "Memory in MB for the blocks of streaming files")
      ->capture_default_str();
  mount
      ->add_option("--block-cache-prefetch", flags.prefetch_blocks,
                   "Blocks read ahead of a sequential reader in streaming mode")
      ->capture_default_str();
  mount->add_flag("--read-only", flags.read_only, "Refuse every change (EROFS)");
  mount
      ->add_option("--max-dir-rename-objects", flags.max_dir_rename_objects,
                   "Rename a non-empty directory in the store when it holds at most this many "
                   "objects (server-side copies); larger ones are EXDEV, 0 for always EXDEV")
      ->capture_default_str();
  mount->add_option("--cache-dir", flags.cache_dir,
                    "Local cache directory (default <home>/storage-cache/<hash of the URL>)");
  // Unknown BlobFuse2 options stay here (named in a warning) instead of falling through to
  // the top-level parser, which would reject them.
  mount->fallthrough(false);
  mount->allow_extras();
  mount->callback([mount, &context] {
    if (Status status = base::InitLogging(context.log_level); !status.ok()) {
      context.exit_code = ReportError(status);
      return;
    }
    Status status = RunMount(flags, mount->remaining(), base::ResolveHome(context.home));
    if (!status.ok()) context.exit_code = ReportError(status);
  });

  AddScriptCommands(storage, context);
}

}  // namespace meridian::cli
