// A small stand-in for libFuzzer's main(), so that every fuzz target also runs as a quick,
// deterministic test with any compiler ("smoke fuzzing"):
//
//   <target>_fuzz [--runs N] [--seed S] [--max-len BYTES] [--timeout-s S] CORPUS_DIR_OR_FILE...
//
// It feeds every seed file to LLVMFuzzerTestOneInput, then N mutants of the seeds (bit flips,
// byte changes, insertions, deletions, duplicated ranges, splices of two seeds), drawn from a
// fixed-seed generator so that a failure reproduces exactly. It finds shallow bugs only; real
// coverage-guided fuzzing uses libFuzzer itself (see docs/operations.md, "Fuzzing").
//
// On a crash, an uncaught exception (std::terminate aborts) or an input that runs longer than
// --timeout-s, it prints the input in hex and writes it to ./fuzz-failure-<pid>, so that the
// failure can be replayed by passing that file as the only argument.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr int kDefaultRuns = 2000;
constexpr size_t kDefaultMaxLenBytes = 64 << 10;
constexpr int kDefaultTimeoutS = 20;
// Bytes that tend to matter to the formats fuzzed here (YAML, JSON, XML, tar headers).
using std::string_view_literals::operator""sv;
constexpr std::string_view kInterestingBytes = "\0\n\r\t :-{}[]<>/&*!|\"'$%#=,.0179\xff\x80"sv;

// The input being run, for the failure handler. Written only by the main thread.
const uint8_t* current_data = nullptr;
size_t current_size = 0;

// SplitMix64: tiny and fully specified, so runs are identical on every platform (the
// standard distributions are not).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, bound); bound must be > 0.
  size_t Below(size_t bound) { return static_cast<size_t>(Next() % bound); }

 private:
  uint64_t state_;
};

// Async-signal-safe: only write(2) and open(2).
void WriteAll(int fd, const char* text, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, text, size);
    if (n <= 0) return;
    text += n;
    size -= static_cast<size_t>(n);
  }
}

void WriteText(int fd, const char* text) { WriteAll(fd, text, std::strlen(text)); }

constexpr int kFailureSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGALRM};

void OnFailure(int signal_number) {
  static const char kHex[] = "0123456789abcdef";
  // Once only: the abort() that ends a timeout must not come back here.
  for (int handled : kFailureSignals) ::signal(handled, SIG_DFL);
  WriteText(2, signal_number == SIGALRM ? "\n==fuzz== input timed out\n"
                                        : "\n==fuzz== crash (signal) while running an input\n");
  if (current_data != nullptr) {
    char name[64] = "fuzz-failure-";
    char digits[24];
    int count = 0;
    for (long pid = ::getpid(); pid > 0 && count < 20; pid /= 10) digits[count++] = '0' + pid % 10;
    size_t at = std::strlen(name);
    while (count > 0) name[at++] = digits[--count];
    name[at] = '\0';
    int fd = ::open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      WriteAll(fd, reinterpret_cast<const char*>(current_data), current_size);
      ::close(fd);
      WriteText(2, "==fuzz== input written to ./");
      WriteText(2, name);
      WriteText(2, "\n");
    }
    WriteText(2, "==fuzz== input (hex): ");
    const size_t shown = current_size < 8192 ? current_size : 8192;
    for (size_t i = 0; i < shown; ++i) {
      char pair[2] = {kHex[current_data[i] >> 4], kHex[current_data[i] & 15]};
      WriteAll(2, pair, 2);
    }
    WriteText(2, shown < current_size ? "...\n" : "\n");
  }
  ::raise(signal_number == SIGALRM ? SIGABRT : signal_number);
}

void InstallFailureHandlers() {
  for (int signal_number : kFailureSignals) ::signal(signal_number, OnFailure);
}

bool ReadFile(const std::filesystem::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// Seeds in a stable order (sorted paths), so the mutants are the same on every machine.
bool LoadSeeds(const std::vector<std::string>& paths, std::vector<std::string>* seeds) {
  std::vector<std::filesystem::path> files;
  for (const std::string& path : paths) {
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) {
      for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else if (std::filesystem::is_regular_file(path, error)) {
      files.emplace_back(path);
    } else {
      std::fprintf(stderr, "fuzz: %s is neither a file nor a directory\n", path.c_str());
      return false;
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::string data;
    if (!ReadFile(file, &data)) {
      std::fprintf(stderr, "fuzz: cannot read %s\n", file.c_str());
      return false;
    }
    seeds->push_back(std::move(data));
  }
  return true;
}

void MutateOnce(Random& random, const std::vector<std::string>& seeds, std::string& data) {
  const size_t size = data.size();
  switch (random.Below(7)) {
    case 0:  // flip one bit
      if (size > 0) data[random.Below(size)] ^= static_cast<char>(1u << random.Below(8));
      break;
    case 1:  // set one byte to an interesting one
      if (size > 0) {
        data[random.Below(size)] = kInterestingBytes[random.Below(kInterestingBytes.size())];
      }
      break;
    case 2:  // insert a few random or interesting bytes
    {
      std::string insert(1 + random.Below(4), '\0');
      for (char& c : insert) {
        c = random.Below(2) ? static_cast<char>(random.Next())
                            : kInterestingBytes[random.Below(kInterestingBytes.size())];
      }
      data.insert(random.Below(size + 1), insert);
      break;
    }
    case 3:  // delete a range
      if (size > 0) {
        size_t at = random.Below(size);
        data.erase(at, 1 + random.Below(std::min<size_t>(size - at, 16)));
      }
      break;
    case 4:  // duplicate a range somewhere else
      if (size > 0) {
        size_t at = random.Below(size);
        std::string piece = data.substr(at, 1 + random.Below(std::min<size_t>(size - at, 64)));
        data.insert(random.Below(size + 1), piece);
      }
      break;
    case 5:  // splice: a prefix of this one and a suffix of another seed
    {
      const std::string& other = seeds[random.Below(seeds.size())];
      data = data.substr(0, random.Below(size + 1)) + other.substr(random.Below(other.size() + 1));
      break;
    }
    default:  // truncate
      data.resize(random.Below(size + 1));
      break;
  }
}

void RunOne(std::string_view input, int timeout_s) {
  // A buffer of exactly the input's size, so an over-read is caught by a sanitizer when one
  // is on; it also keeps the target from depending on the caller's storage.
  std::vector<uint8_t> copy(input.begin(), input.end());
  current_data = copy.data();
  current_size = copy.size();
  ::alarm(static_cast<unsigned>(timeout_s));
  LLVMFuzzerTestOneInput(copy.empty() ? nullptr : copy.data(), copy.size());
  ::alarm(0);
  current_data = nullptr;
  current_size = 0;
}

bool ParseCount(const char* text, long long min, long long* out) {
  char* end = nullptr;
  long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < min) return false;
  *out = value;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  long long runs = kDefaultRuns;
  long long seed = 1;
  long long max_len_bytes = kDefaultMaxLenBytes;
  long long timeout_s = kDefaultTimeoutS;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    long long* target = arg == "--runs"        ? &runs
                        : arg == "--seed"      ? &seed
                        : arg == "--max-len"   ? &max_len_bytes
                        : arg == "--timeout-s" ? &timeout_s
                                               : nullptr;
    if (target != nullptr) {
      if (i + 1 >= argc || !ParseCount(argv[++i], 0, target)) {
        std::fprintf(stderr, "fuzz: %s needs a number >= 0\n", argv[i - 1]);
        return 2;
      }
    } else if (arg.starts_with("--")) {
      std::fprintf(stderr, "fuzz: unknown flag %s\n", argv[i]);
      return 2;
    } else {
      paths.emplace_back(arg);
    }
  }
  std::vector<std::string> seeds;
  if (paths.empty() || !LoadSeeds(paths, &seeds) || seeds.empty()) {
    std::fprintf(stderr,
                 "usage: %s [--runs N] [--seed S] [--max-len BYTES] [--timeout-s S] "
                 "CORPUS_DIR_OR_FILE...\n(at least one seed file is needed)\n",
                 argv[0]);
    return 2;
  }
  InstallFailureHandlers();
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& input : seeds) RunOne(input, static_cast<int>(timeout_s));

  Random random(static_cast<uint64_t>(seed));
  for (long long run = 0; run < runs; ++run) {
    std::string data = seeds[random.Below(seeds.size())];
    // Stacked mutations reach further from the seeds than single ones.
    for (size_t count = 1 + random.Below(4); count > 0; --count) MutateOnce(random, seeds, data);
    if (data.size() > static_cast<size_t>(max_len_bytes)) data.resize(max_len_bytes);
    RunOne(data, static_cast<int>(timeout_s));
  }
  const double elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz: %zu seeds and %lld mutants ran without failure in %.2f s\n", seeds.size(),
              runs, elapsed_s);
  return 0;
}
