// Digests: the one SHA-256 of the code base (OpenSSL underneath). Thread-safe, no state.
#pragma once

#include <string>
#include <string_view>

namespace meridian::base {

// The 32-byte SHA-256 digest of `data`.
std::string Sha256(std::string_view data);

// Lowercase hex SHA-256 of `data` (64 characters).
std::string Sha256Hex(std::string_view data);

// Lowercase hex of arbitrary bytes.
std::string HexEncode(std::string_view bytes);

}  // namespace meridian::base
