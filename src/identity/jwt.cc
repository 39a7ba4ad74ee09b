// JWT encoding, parsing and verification (RFC 7515/7519 compact form, RFC 8725 rules).
// Key material lives in jwt_keys.cc.
#include "identity/jwt.h"

#include <array>
#include <cmath>
#include <nlohmann/json.hpp>

#include "fmt/format.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// 0..63 for an alphabet character, -1 otherwise.
constexpr std::array<int8_t, 256> MakeDecodeTable() {
  std::array<int8_t, 256> table{};
  for (size_t i = 0; i < table.size(); ++i) table[i] = -1;
  for (int i = 0; i < 64; ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  return table;
}
constexpr std::array<int8_t, 256> kDecodeTable = MakeDecodeTable();

// The headers that let a token name its own key; trusting them is the classic JWT mistake,
// so a token carrying any of them is refused outright (RFC 8725 section 3.10).
constexpr std::array<const char*, 3> kForbiddenHeaders = {"jku", "x5u", "jwk"};

// Seconds since the epoch from a JSON NumericDate (integers; non-integral values truncate).
Result<int64_t> NumericDate(const json& value, const char* name) {
  constexpr double kLimit = 1e15;  // far past any real date, well inside int64
  if (value.is_number_integer() && !value.is_number_unsigned()) return value.get<int64_t>();
  if (value.is_number_unsigned() && value.get<uint64_t>() < static_cast<uint64_t>(kLimit)) {
    return static_cast<int64_t>(value.get<uint64_t>());
  }
  if (value.is_number_float()) {
    double number = value.get<double>();
    if (std::isfinite(number) && std::fabs(number) < kLimit) {
      return static_cast<int64_t>(std::floor(number));
    }
  }
  return absl::InvalidArgumentError(fmt::format("JWT: claim \"{}\" is not a NumericDate", name));
}

Status StringMember(const json& object, const char* name, const char* where, std::string* out) {
  auto it = object.find(name);
  if (it == object.end()) return OkStatus();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(fmt::format("JWT: {} \"{}\" is not a string", where, name));
  }
  *out = it->get<std::string>();
  return OkStatus();
}

Result<json> DecodeJsonSegment(std::string_view segment, const char* what, std::string* text) {
  Result<std::string> decoded = Base64UrlDecode(segment);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(fmt::format("JWT: {} is not base64url", what));
  }
  *text = *std::move(decoded);
  json value = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!value.is_object()) {
    return absl::InvalidArgumentError(fmt::format("JWT: {} is not a JSON object", what));
  }
  return value;
}

Status ParseHeader(const json& header, ParsedJwt* out) {
  for (const char* name : kForbiddenHeaders) {
    if (header.contains(name)) {
      return absl::InvalidArgumentError(fmt::format(
          "JWT: header \"{}\" is refused: keys come from the issuer, not the token", name));
    }
  }
  // No extension is understood, so every `crit` list names one we do not know (RFC 7515 4.1.11).
  if (header.contains("crit")) {
    return absl::InvalidArgumentError(
        "JWT: header \"crit\" names extensions meridian does not know");
  }
  RETURN_IF_ERROR(StringMember(header, "alg", "header", &out->alg));
  if (out->alg.empty()) return absl::InvalidArgumentError("JWT: header \"alg\" is required");
  RETURN_IF_ERROR(StringMember(header, "kid", "header", &out->kid));
  return StringMember(header, "typ", "header", &out->typ);
}

Status ParseClaims(const json& claims, ParsedJwt* out) {
  RETURN_IF_ERROR(StringMember(claims, "iss", "claim", &out->iss));
  RETURN_IF_ERROR(StringMember(claims, "sub", "claim", &out->sub));
  RETURN_IF_ERROR(StringMember(claims, "jti", "claim", &out->jti));
  if (auto aud = claims.find("aud"); aud != claims.end()) {
    if (aud->is_string()) {
      out->aud.push_back(aud->get<std::string>());
    } else if (aud->is_array()) {
      for (const json& one : *aud) {
        if (!one.is_string())
          return absl::InvalidArgumentError("JWT: claim \"aud\" has a non-string");
        out->aud.push_back(one.get<std::string>());
      }
    } else {
      return absl::InvalidArgumentError("JWT: claim \"aud\" is neither a string nor an array");
    }
  }
  struct DateClaim {
    const char* name;
    std::optional<int64_t>* field;
  };
  for (const DateClaim& date :
       {DateClaim{"exp", &out->exp}, DateClaim{"nbf", &out->nbf}, DateClaim{"iat", &out->iat}}) {
    if (auto it = claims.find(date.name); it != claims.end()) {
      ASSIGN_OR_RETURN(*date.field, NumericDate(*it, date.name));
    }
  }
  return OkStatus();
}

std::optional<JwtAlg> AlgFromName(std::string_view name) {
  if (name == "RS256") return JwtAlg::kRS256;
  if (name == "ES256") return JwtAlg::kES256;
  return std::nullopt;
}

Result<ParsedJwt> Refuse(JwtFailure* failure, JwtError error, std::string detail) {
  std::string message = fmt::format("token refused ({}): {}", JwtErrorName(error), detail);
  if (failure != nullptr) *failure = JwtFailure{error, std::move(detail)};
  return absl::UnauthenticatedError(message);
}

bool Contains(const std::vector<std::string>& values, std::string_view wanted) {
  for (const std::string& value : values) {
    if (value == wanted) return true;
  }
  return false;
}

// Claims checks after the signature verified: issuer, time window, audience, subject.
Result<ParsedJwt> CheckClaims(ParsedJwt parsed, const VerifyOptions& options, JwtFailure* failure) {
  if (options.issuer.empty() || parsed.iss != options.issuer) {
    return Refuse(failure, JwtError::kWrongIssuer,
                  fmt::format("issuer \"{}\" is not \"{}\"", parsed.iss, options.issuer));
  }
  if (!parsed.exp.has_value() && options.require_exp) {
    return Refuse(failure, JwtError::kExpired, "the token has no \"exp\" claim");
  }
  if (parsed.exp.has_value() && *parsed.exp + options.leeway_s <= options.now_unix_s) {
    return Refuse(failure, JwtError::kExpired,
                  fmt::format("expired at {} (now {}, leeway {} s)", *parsed.exp,
                              options.now_unix_s, options.leeway_s));
  }
  if (parsed.nbf.has_value() && *parsed.nbf - options.leeway_s > options.now_unix_s) {
    return Refuse(failure, JwtError::kNotYetValid,
                  fmt::format("not valid before {} (now {}, leeway {} s)", *parsed.nbf,
                              options.now_unix_s, options.leeway_s));
  }
  bool audience_ok = false;
  for (const std::string& audience : options.audiences) {
    if (Contains(parsed.aud, audience)) audience_ok = true;
  }
  if (!audience_ok) {
    return Refuse(failure, JwtError::kWrongAudience,
                  parsed.aud.empty() ? "the token has no \"aud\" claim"
                                     : "no audience of the token is accepted here");
  }
  if (!options.subject.empty() && parsed.sub != options.subject) {
    return Refuse(failure, JwtError::kWrongSubject,
                  fmt::format("subject \"{}\" is not \"{}\"", parsed.sub, options.subject));
  }
  return parsed;
}

}  // namespace

std::string_view JwtAlgName(JwtAlg alg) { return alg == JwtAlg::kRS256 ? "RS256" : "ES256"; }

std::string_view JwtErrorName(JwtError error) {
  switch (error) {
    case JwtError::kMalformed:
      return "malformed";
    case JwtError::kUnknownKey:
      return "unknown key";
    case JwtError::kBadSignature:
      return "bad signature";
    case JwtError::kExpired:
      return "expired";
    case JwtError::kNotYetValid:
      return "not yet valid";
    case JwtError::kWrongIssuer:
      return "wrong issuer";
    case JwtError::kWrongAudience:
      return "wrong audience";
    case JwtError::kWrongSubject:
      return "wrong subject";
  }
  return "unknown";
}

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t group = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                     uint8_t(bytes[i + 2]);
    out += kAlphabet[(group >> 18) & 63];
    out += kAlphabet[(group >> 12) & 63];
    out += kAlphabet[(group >> 6) & 63];
    out += kAlphabet[group & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t group = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) group |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(group >> 18) & 63];
    out += kAlphabet[(group >> 12) & 63];
    if (rest == 2) out += kAlphabet[(group >> 6) & 63];
  }
  return out;
}

Result<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) {
    return absl::InvalidArgumentError("base64url: impossible length");
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int8_t value = kDecodeTable[static_cast<unsigned char>(c)];
    if (value < 0) {
      return absl::InvalidArgumentError("base64url: a character outside the alphabet (or padding)");
    }
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero: otherwise two texts decode to the same bytes, and a token
  // could be altered without changing what is verified.
  if ((buffer & ((1u << bits) - 1)) != 0) {
    return absl::InvalidArgumentError("base64url: non-zero trailing bits");
  }
  return out;
}

Result<std::string> SignJwt(const SigningKey& key, std::string_view claims_json,
                            std::string_view typ, std::string_view extra_header_json) {
  json claims = json::parse(claims_json, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) return absl::InvalidArgumentError("JWT claims: not a JSON object");
  json header = json::object();
  if (!extra_header_json.empty()) {
    header = json::parse(extra_header_json, nullptr, /*allow_exceptions=*/false);
    if (!header.is_object()) return absl::InvalidArgumentError("JWT header: not a JSON object");
    for (const char* reserved : {"alg", "kid", "typ", "crit", "jku", "x5u", "jwk"}) {
      if (header.contains(reserved)) {
        return absl::InvalidArgumentError(
            fmt::format("JWT header: \"{}\" may not be set by the caller", reserved));
      }
    }
  }
  header["alg"] = std::string(JwtAlgName(key.alg()));
  header["kid"] = key.kid();
  if (!typ.empty()) header["typ"] = std::string(typ);
  std::string signing_input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims_json);
  ASSIGN_OR_RETURN(std::string signature, key.Sign(signing_input));
  std::string token = signing_input + "." + Base64UrlEncode(signature);
  if (static_cast<int64_t>(token.size()) > kMaxTokenBytes) {
    return absl::ResourceExhaustedError(fmt::format(
        "JWT: {} bytes is over the {}-byte limit verifiers apply", token.size(), kMaxTokenBytes));
  }
  return token;
}

Result<ParsedJwt> ParseJwt(std::string_view token) {
  if (static_cast<int64_t>(token.size()) > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        fmt::format("JWT: {} bytes is over the {}-byte limit", token.size(), kMaxTokenBytes));
  }
  size_t first = token.find('.');
  size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return absl::InvalidArgumentError("JWT: not three dot-separated segments (JWS compact form)");
  }
  ParsedJwt out;
  ASSIGN_OR_RETURN(json header,
                   DecodeJsonSegment(token.substr(0, first), "header", &out.header_json));
  RETURN_IF_ERROR(ParseHeader(header, &out));
  ASSIGN_OR_RETURN(json claims, DecodeJsonSegment(token.substr(first + 1, second - first - 1),
                                                  "payload", &out.claims_json));
  RETURN_IF_ERROR(ParseClaims(claims, &out));
  Result<std::string> signature = Base64UrlDecode(token.substr(second + 1));
  if (!signature.ok()) return absl::InvalidArgumentError("JWT: signature is not base64url");
  out.signature = *std::move(signature);
  out.signing_input = std::string(token.substr(0, second));
  return out;
}

Result<ParsedJwt> VerifyJwt(std::string_view token, const KeyLookup& keys,
                            const VerifyOptions& options, JwtFailure* failure) {
  Result<ParsedJwt> parsed = ParseJwt(token);
  if (!parsed.ok()) {
    return Refuse(failure, JwtError::kMalformed, std::string(parsed.status().message()));
  }
  if (parsed->kid.empty()) return Refuse(failure, JwtError::kUnknownKey, "header has no \"kid\"");
  std::optional<JwtAlg> alg = AlgFromName(parsed->alg);
  if (!alg.has_value()) {
    return Refuse(failure, JwtError::kBadSignature,
                  fmt::format("algorithm \"{}\" is not accepted (RS256, ES256 only)", parsed->alg));
  }
  Result<std::shared_ptr<const PublicKey>> key = keys(parsed->iss, parsed->kid);
  if (!key.ok() || *key == nullptr) {
    return Refuse(failure, JwtError::kUnknownKey,
                  fmt::format("no key \"{}\" for issuer \"{}\"{}", parsed->kid, parsed->iss,
                              key.ok() ? "" : fmt::format(" ({})", key.status().message())));
  }
  if ((*key)->alg() != *alg) {
    return Refuse(failure, JwtError::kBadSignature,
                  fmt::format("algorithm {} does not match the key's {}", parsed->alg,
                              JwtAlgName((*key)->alg())));
  }
  if (!(*key)->Verify(parsed->signing_input, parsed->signature)) {
    return Refuse(failure, JwtError::kBadSignature, "the signature does not verify");
  }
  return CheckClaims(*std::move(parsed), options, failure);
}

}  // namespace meridian::identity
