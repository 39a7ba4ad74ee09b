// JSON Web Tokens: keys, signing and verification (RS256 and ES256 only).
//
// Verification follows RFC 8725: the algorithm comes from the key, never from the token
// (a token whose `alg` differs from its key's is refused, so `none` and HS* cannot be
// smuggled in); `kid` is required; `jku`, `x5u`, `jwk` and any `crit` header are refused;
// issuer, audience and subject are compared exactly (case-sensitive, no normalisation);
// `exp`/`nbf` are checked with a leeway; tokens over a size limit are refused before any
// parsing. OpenSSL stays inside jwt.cc; nlohmann/json does not appear in this header.
//
// Thread safety: SigningKey and PublicKey are immutable after creation and may be shared
// across threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace meridian::identity {

inline constexpr int64_t kMaxTokenBytes = 16 * 1024;
inline constexpr int64_t kDefaultLeewaySeconds = 60;

enum class JwtAlg { kRS256, kES256 };
std::string_view JwtAlgName(JwtAlg alg);  // "RS256", "ES256"

std::string Base64UrlEncode(std::string_view bytes);
// kInvalidArgument on a character outside the base64url alphabet or padding.
Result<std::string> Base64UrlDecode(std::string_view text);

// A public key that verifies signatures.
class PublicKey {
 public:
  virtual ~PublicKey() = default;
  virtual JwtAlg alg() const = 0;
  // base64url(SHA-256(DER SubjectPublicKeyInfo)).
  virtual const std::string& kid() const = 0;
  // The key as one JWK object (JSON text): kty, use "sig", alg, kid and n/e or crv/x/y.
  virtual std::string JwkJson() const = 0;
  virtual bool Verify(std::string_view signing_input, std::string_view signature) const = 0;
  // The key as a PEM SubjectPublicKeyInfo ("" where an implementation has none), e.g. for a
  // person to register for private_key_jwt.
  virtual std::string PublicPem() const { return ""; }

  // From one JWK object (JSON text). The `alg` member, when present, must match the key type.
  static Result<std::shared_ptr<const PublicKey>> FromJwk(std::string_view jwk_json);
  // From a PEM public key (SubjectPublicKeyInfo) or certificate.
  static Result<std::shared_ptr<const PublicKey>> FromPem(std::string_view pem);
};

// A private key that signs. Private parts never leave the process except through
// PrivatePem() (for storing the key in the state store or a 0600 file).
class SigningKey {
 public:
  virtual ~SigningKey() = default;
  // RS256: a 2048-bit RSA key; ES256: a P-256 key.
  static Result<std::shared_ptr<const SigningKey>> Generate(JwtAlg alg);
  // PKCS#8 or traditional PEM; the algorithm follows the key type.
  static Result<std::shared_ptr<const SigningKey>> FromPem(std::string_view pem);

  virtual JwtAlg alg() const = 0;
  virtual const std::string& kid() const = 0;  // same as public_key()->kid()
  virtual std::shared_ptr<const PublicKey> public_key() const = 0;
  virtual std::string PrivatePem() const = 0;  // PKCS#8
  virtual Result<std::string> Sign(std::string_view signing_input) const = 0;
};

// Signs `claims_json` (a JSON object as text) with header {"alg", "typ", "kid"} plus
// `extra_header_json` members (a JSON object as text, e.g. {"x5t#S256": "..."}; may be "").
Result<std::string> SignJwt(const SigningKey& key, std::string_view claims_json,
                            std::string_view typ = "JWT", std::string_view extra_header_json = "");

// A token split and decoded, not yet trusted.
struct ParsedJwt {
  std::string header_json;
  std::string claims_json;
  std::string signing_input;  // "<header b64>.<payload b64>"
  std::string signature;      // raw bytes
  std::string alg;            // header "alg"
  std::string kid;            // header "kid", "" when absent
  std::string typ;
  std::string iss;  // claims, "" when absent
  std::string sub;
  std::vector<std::string> aud;  // a string `aud` becomes one element
  std::optional<int64_t> exp;    // seconds since the epoch
  std::optional<int64_t> nbf;
  std::optional<int64_t> iat;
  std::string jti;
};

// Splits and decodes without checking the signature. kInvalidArgument naming what is wrong
// (size, segment count, base64url, JSON, claim types); refuses jku/x5u/jwk/crit headers.
Result<ParsedJwt> ParseJwt(std::string_view token);

// Finds the key for (issuer, kid). nullptr: no such key (the verifier reports it).
using KeyLookup = std::function<Result<std::shared_ptr<const PublicKey>>(std::string_view iss,
                                                                         std::string_view kid)>;

struct VerifyOptions {
  std::string issuer;                  // required, exact
  std::vector<std::string> audiences;  // one of these must be in `aud`, exact
  std::string subject;                 // "" : any
  int64_t now_unix_s = 0;
  int64_t leeway_s = kDefaultLeewaySeconds;
  bool require_exp = true;
};

// Why a token was refused, so the token service can answer with Entra's code.
enum class JwtError {
  kMalformed,     // size, segments, base64url, JSON, forbidden header
  kUnknownKey,    // no kid, or no key for (iss, kid)
  kBadSignature,  // signature does not verify, or alg differs from the key's
  kExpired,       // exp + leeway <= now
  kNotYetValid,   // nbf - leeway > now
  kWrongIssuer,
  kWrongAudience,
  kWrongSubject,
};
std::string_view JwtErrorName(JwtError error);

struct JwtFailure {
  JwtError error;
  std::string detail;  // human-readable, never contains the token
};

// Parses, finds the key, checks the signature and then the claims, in that order.
// Returns the parsed token on success; every refusal is kUnauthenticated (a bad credential),
// with `failure` (when given) saying why.
Result<ParsedJwt> VerifyJwt(std::string_view token, const KeyLookup& keys,
                            const VerifyOptions& options, JwtFailure* failure = nullptr);

}  // namespace meridian::identity
