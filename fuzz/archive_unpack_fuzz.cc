// Fuzzes the working-dir package unpacker (what an operator does with a package uploaded by
// any API caller). Each input unpacks into a fresh directory beside an empty "canary"
// directory; afterwards nothing may have appeared outside the destination, the destination
// may hold only regular files, directories and symlinks without setuid/setgid/sticky bits,
// and the destination is removed again.
//
// Inputs that do not start with the gzip magic are gzip-compressed first, so that mutations
// reach the tar reader instead of mostly failing gzip's checksum.
#include <sys/stat.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "package/tar_reader.h"
#include "base/files.h"
#include "fuzz_check.h"

namespace {

namespace fs = std::filesystem;

// Small, so that a run never writes much to disk; archives above it are refused early.
constexpr int64_t kMaxUnpackedBytes = int64_t{1} << 20;

std::string Gzip(std::string_view data) {
  z_stream stream{};
  FUZZ_CHECK(deflateInit2(&stream, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK,
             "zlib initializes");
  std::string out(deflateBound(&stream, data.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  FUZZ_CHECK(result == Z_STREAM_END, "zlib compresses in one call");
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// The per-process root: <tmp>/meridian-archive-fuzz-XXXXXX/{canary,dest}. Never destroyed,
// so that the exit handler that removes it can still read it.
const std::string& Root() {
  static const std::string* const root = [] {
    std::string pattern = (fs::temp_directory_path() / "meridian-archive-fuzz-XXXXXX").string();
    FUZZ_CHECK(::mkdtemp(pattern.data()) != nullptr, "a temp dir can be made");
    FUZZ_CHECK(::mkdir((pattern + "/canary").c_str(), 0755) == 0, "the canary dir can be made");
    return new std::string(pattern);
  }();
  // Best effort: a clean exit removes the root (a crash leaves it for inspection).
  static const bool cleanup_registered =
      std::atexit([] { meridian::base::RemoveAll(Root()).IgnoreError(); }) == 0;
  (void)cleanup_registered;
  return *root;
}

void CheckNothingEscaped(const std::string& root) {
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(root, error)) {
    const std::string name = entry.path().filename().string();
    FUZZ_CHECK(name == "canary" || name == "dest", "nothing is written beside the destination");
  }
  FUZZ_CHECK(!error, "the temp root can be listed");
  FUZZ_CHECK(fs::is_empty(root + "/canary", error) && !error, "the canary dir stays empty");
}

void CheckOnlyPlainEntries(const std::string& dest) {
  std::error_code error;
  if (!fs::exists(fs::symlink_status(dest, error))) return;  // failed before creating it
  for (auto it = fs::recursive_directory_iterator(dest, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    struct stat info;
    FUZZ_CHECK(::lstat(it->path().c_str(), &info) == 0, "an unpacked entry can be stat'ed");
    FUZZ_CHECK(S_ISREG(info.st_mode) || S_ISDIR(info.st_mode) || S_ISLNK(info.st_mode),
               "only regular files, directories and symlinks are unpacked");
    FUZZ_CHECK((info.st_mode & (S_ISUID | S_ISGID | S_ISVTX)) == 0,
               "no setuid, setgid or sticky bit is unpacked");
  }
  FUZZ_CHECK(!error, "the destination can be walked");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& root = Root();
  const std::string dest = root + "/dest";
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string compressed;
  if (!input.starts_with("\x1f\x8b")) {
    compressed = Gzip(input);
    input = compressed;
  }
  meridian::package::UnpackArchiveData(input, dest, kMaxUnpackedBytes).IgnoreError();
  CheckNothingEscaped(root);
  CheckOnlyPlainEntries(dest);
  FUZZ_CHECK(meridian::base::RemoveAll(dest).ok(), "the destination can be removed");
  return 0;
}
