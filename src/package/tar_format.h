// Internal to package: the ustar/pax layout the tar writer produces and the tar reader accepts,
// and the limits both keep.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace meridian::package::tar {

inline constexpr size_t kBlockBytes = 512;
inline constexpr size_t kChunkBytes = 64 * 1024;
inline constexpr int64_t kMaxEntries = 1'000'000;
inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr int kMaxDepth = 256;
inline constexpr int64_t kMaxPaxBytes = 1 << 20;
// ustar's 12-byte size field holds 11 octal digits; larger files carry a pax "size".
inline constexpr uint64_t kMaxUstarSize = 077777777777ULL;
inline constexpr int64_t kMiB = 1 << 20;

// Zero bytes that fill `size` up to a whole block.
inline std::string Padding(uint64_t size) {
  return std::string((kBlockBytes - size % kBlockBytes) % kBlockBytes, '\0');
}

inline std::string JoinPath(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  return a + "/" + b;
}

}  // namespace meridian::package::tar
