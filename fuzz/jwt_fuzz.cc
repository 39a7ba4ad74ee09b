// Fuzzes the JWT parser and verifier (tokens arrive from anyone who can reach the token
// endpoint or the API), base64url, and JWK parsing (keys arrive from external issuers'
// JWKS). Properties: parsing never crashes and refuses with kInvalidArgument only; what
// parses re-encodes to the same text; nothing verifies unless it was signed by the fixed key
// below (the seeds include such tokens, so mutants reach the claim checks).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "identity/jwt.h"

namespace {

using namespace meridian::identity;

// A throwaway P-256 key used only here, so that seeds can carry valid signatures.
constexpr char kFuzzKeyPem[] = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWJq8Q928MXCb3BP4
NnQ2lZ4Od87i4+2jiLzkEyvTV3KhRANCAATMojrHcR5nfpA/OP4E/sryFdiGGjc3
XxS2uLGIA1CjOrcKh8x7MQoODhDqAspeG2ntiiKiHZtpNwdrzyAsS8hJ
-----END PRIVATE KEY-----
)";
constexpr char kIssuer[] = "https://issuer.fuzz";
constexpr int64_t kNow = 1'700'000'000;

const SigningKey& FuzzKey() {
  static const std::shared_ptr<const SigningKey> key = *SigningKey::FromPem(kFuzzKeyPem);
  return *key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  meridian::Result<std::string> decoded = Base64UrlDecode(input);
  if (decoded.ok()) FUZZ_CHECK(Base64UrlEncode(*decoded) == input, "base64url round trip");

  meridian::Result<ParsedJwt> parsed = ParseJwt(input);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument, "parse refusal code");
  } else {
    FUZZ_CHECK(parsed->signing_input + "." + Base64UrlEncode(parsed->signature) == input,
               "a parsed token is exactly its segments");
  }

  const std::shared_ptr<const PublicKey> public_key = FuzzKey().public_key();
  KeyLookup lookup =
      [&](std::string_view iss,
          std::string_view kid) -> meridian::Result<std::shared_ptr<const PublicKey>> {
    if (iss == kIssuer && kid == public_key->kid()) return public_key;
    return std::shared_ptr<const PublicKey>();
  };
  VerifyOptions options;
  options.issuer = kIssuer;
  options.audiences = {"api://AzureADTokenExchange"};
  options.now_unix_s = kNow;
  JwtFailure failure;
  meridian::Result<ParsedJwt> verified = VerifyJwt(input, lookup, options, &failure);
  if (verified.ok()) {
    FUZZ_CHECK(parsed.ok(), "what verifies also parses");
    FUZZ_CHECK(verified->iss == kIssuer && verified->kid == public_key->kid(), "verified claims");
    FUZZ_CHECK(public_key->Verify(verified->signing_input, verified->signature), "signature");
  } else {
    FUZZ_CHECK(verified.status().code() == absl::StatusCode::kUnauthenticated, "refusal code");
  }

  meridian::Result<std::shared_ptr<const PublicKey>> jwk = PublicKey::FromJwk(input);
  if (jwk.ok()) {
    meridian::Result<std::shared_ptr<const PublicKey>> again =
        PublicKey::FromJwk((*jwk)->JwkJson());
    FUZZ_CHECK(again.ok() && (*again)->kid() == (*jwk)->kid(), "JWK round trip keeps the kid");
  }
  return 0;
}
