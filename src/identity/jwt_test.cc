// The JWT security checklist (RFC 8725), one refusal per test, each a token an attacker could
// really send, plus the round trips the token service and clients rely on.
#include "identity/jwt.h"

#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <map>
#include <nlohmann/json.hpp>

namespace meridian::identity {
namespace {

using json = nlohmann::json;

constexpr int64_t kNow = 1'700'000'000;
constexpr char kIssuerA[] = "https://issuer-a.example/tenant/v2.0";
constexpr char kIssuerB[] = "https://issuer-b.example/tenant/v2.0";
constexpr char kAudience[] = "api://AzureADTokenExchange";

std::shared_ptr<const SigningKey> NewKey(JwtAlg alg) {
  Result<std::shared_ptr<const SigningKey>> key = SigningKey::Generate(alg);
  EXPECT_TRUE(key.ok()) << key.status();
  return *key;
}

json Claims(const std::string& issuer = kIssuerA) {
  return {{"iss", issuer},    {"sub", "system:serviceaccount:ml:trainer"},
          {"aud", kAudience}, {"iat", kNow - 10},
          {"nbf", kNow - 10}, {"exp", kNow + 600},
          {"jti", "one"}};
}

// Signs an arbitrary header, so tests can craft what SignJwt never would.
std::string SignRaw(const SigningKey& key, const json& header, const json& claims) {
  std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump());
  return input + "." + Base64UrlEncode(*key.Sign(input));
}

json Header(const SigningKey& key) {
  return {{"alg", std::string(JwtAlgName(key.alg()))}, {"kid", key.kid()}, {"typ", "JWT"}};
}

class JwtTest : public ::testing::TestWithParam<JwtAlg> {
 protected:
  void SetUp() override {
    key_a_ = NewKey(GetParam());
    key_b_ = NewKey(GetParam());
    keys_[kIssuerA] = {key_a_->public_key()};
    keys_[kIssuerB] = {key_b_->public_key()};
  }

  // Keys by issuer, as a token service with several trusted issuers holds them.
  KeyLookup Lookup() {
    return [this](std::string_view iss,
                  std::string_view kid) -> Result<std::shared_ptr<const PublicKey>> {
      auto it = keys_.find(std::string(iss));
      if (it == keys_.end()) return std::shared_ptr<const PublicKey>();
      for (const auto& key : it->second) {
        if (key->kid() == kid) return key;
      }
      return std::shared_ptr<const PublicKey>();
    };
  }

  VerifyOptions Options(const std::string& issuer = kIssuerA) {
    VerifyOptions options;
    options.issuer = issuer;
    options.audiences = {kAudience};
    options.now_unix_s = kNow;
    return options;
  }

  // The error VerifyJwt reports, or nullopt when it accepts the token.
  std::optional<JwtError> Check(const std::string& token, const VerifyOptions& options) {
    JwtFailure failure;
    Result<ParsedJwt> result = VerifyJwt(token, Lookup(), options, &failure);
    if (result.ok()) return std::nullopt;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(result.status().message().find(token), absl::string_view::npos)
        << "the error must not echo the token";
    return failure.error;
  }
  std::optional<JwtError> Check(const std::string& token) { return Check(token, Options()); }

  std::string Sign(const json& claims) { return *SignJwt(*key_a_, claims.dump()); }

  std::shared_ptr<const SigningKey> key_a_;
  std::shared_ptr<const SigningKey> key_b_;
  std::map<std::string, std::vector<std::shared_ptr<const PublicKey>>> keys_;
};

INSTANTIATE_TEST_SUITE_P(Algorithms, JwtTest, ::testing::Values(JwtAlg::kRS256, JwtAlg::kES256),
                         [](const auto& info) { return std::string(JwtAlgName(info.param)); });

TEST_P(JwtTest, AcceptsAGoodTokenAndReturnsItsClaims) {
  Result<ParsedJwt> parsed = VerifyJwt(Sign(Claims()), Lookup(), Options());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->iss, kIssuerA);
  EXPECT_EQ(parsed->sub, "system:serviceaccount:ml:trainer");
  EXPECT_EQ(parsed->aud, std::vector<std::string>{kAudience});
  EXPECT_EQ(parsed->exp, kNow + 600);
  EXPECT_EQ(parsed->kid, key_a_->kid());
  EXPECT_EQ(parsed->alg, JwtAlgName(GetParam()));
  EXPECT_EQ(parsed->jti, "one");
}

TEST_P(JwtTest, RefusesAlgNone) {
  json header = {{"alg", "none"}, {"kid", key_a_->kid()}};
  std::string token = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(Claims().dump()) + ".";
  EXPECT_EQ(Check(token), JwtError::kBadSignature);
}

TEST_P(JwtTest, RefusesHs256SignedWithThePublicKeyAsSecret) {
  // The classic confusion attack: the verifier's public key (which anyone may fetch) used
  // as an HMAC secret. Try both forms a library might feed its HMAC with.
  std::string pem_like = key_a_->public_key()->JwkJson();
  for (const std::string& secret : {pem_like, key_a_->kid()}) {
    json header = {{"alg", "HS256"}, {"kid", key_a_->kid()}, {"typ", "JWT"}};
    std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(Claims().dump());
    unsigned char mac[32];
    unsigned int mac_length = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_length);
    std::string token =
        input + "." + Base64UrlEncode(std::string(reinterpret_cast<char*>(mac), mac_length));
    EXPECT_EQ(Check(token), JwtError::kBadSignature);
  }
}

TEST_P(JwtTest, RefusesAnAlgorithmThatDiffersFromTheKeys) {
  json header = Header(*key_a_);
  header["alg"] = GetParam() == JwtAlg::kRS256 ? "ES256" : "RS256";
  EXPECT_EQ(Check(SignRaw(*key_a_, header, Claims())), JwtError::kBadSignature);
}

TEST_P(JwtTest, RefusesATamperedPayload) {
  std::string token = Sign(Claims());
  json forged = Claims();
  forged["sub"] = "system:serviceaccount:kube-system:admin";
  size_t first = token.find('.');
  size_t second = token.find('.', first + 1);
  std::string tampered =
      token.substr(0, first + 1) + Base64UrlEncode(forged.dump()) + token.substr(second);
  EXPECT_EQ(Check(tampered), JwtError::kBadSignature);
}

TEST_P(JwtTest, RefusesATamperedSignature) {
  std::string token = Sign(Claims());
  size_t dot = token.rfind('.');
  std::string signature = *Base64UrlDecode(token.substr(dot + 1));
  for (size_t index : {size_t{0}, signature.size() / 2, signature.size() - 1}) {
    std::string bad = signature;
    bad[index] = static_cast<char>(bad[index] ^ 0x01);
    EXPECT_EQ(Check(token.substr(0, dot + 1) + Base64UrlEncode(bad)), JwtError::kBadSignature);
  }
  EXPECT_EQ(Check(token.substr(0, dot + 1)), JwtError::kBadSignature) << "empty signature";
  EXPECT_EQ(Check(token.substr(0, dot + 1) + Base64UrlEncode(signature.substr(1))),
            JwtError::kBadSignature)
      << "truncated signature";
}

TEST_P(JwtTest, RefusesAnUnknownOrMissingKid) {
  std::shared_ptr<const SigningKey> stranger = NewKey(GetParam());
  EXPECT_EQ(Check(*SignJwt(*stranger, Claims().dump())), JwtError::kUnknownKey);
  json header = Header(*key_a_);
  header.erase("kid");
  EXPECT_EQ(Check(SignRaw(*key_a_, header, Claims())), JwtError::kUnknownKey);
  header["kid"] = "";
  EXPECT_EQ(Check(SignRaw(*key_a_, header, Claims())), JwtError::kUnknownKey);
}

TEST_P(JwtTest, RefusesHeadersThatCarryTheirOwnKey) {
  for (const char* name : {"jku", "x5u", "jwk"}) {
    json header = Header(*key_a_);
    header[name] = name == std::string("jwk") ? json::parse(key_a_->public_key()->JwkJson())
                                              : json("https://attacker.example/keys");
    EXPECT_EQ(Check(SignRaw(*key_a_, header, Claims())), JwtError::kMalformed) << name;
  }
}

TEST_P(JwtTest, RefusesUnknownCrit) {
  json header = Header(*key_a_);
  header["crit"] = {"exp-extension"};
  header["exp-extension"] = true;
  EXPECT_EQ(Check(SignRaw(*key_a_, header, Claims())), JwtError::kMalformed);
}

TEST_P(JwtTest, RefusesExpiredAndNotYetValidTokens) {
  json expired = Claims();
  expired["exp"] = kNow - 3600;
  EXPECT_EQ(Check(Sign(expired)), JwtError::kExpired);
  json early = Claims();
  early["nbf"] = kNow + 3600;
  EXPECT_EQ(Check(Sign(early)), JwtError::kNotYetValid);
  json no_exp = Claims();
  no_exp.erase("exp");
  EXPECT_EQ(Check(Sign(no_exp)), JwtError::kExpired);
  VerifyOptions lenient = Options();
  lenient.require_exp = false;
  EXPECT_EQ(Check(Sign(no_exp), lenient), std::nullopt);
}

TEST_P(JwtTest, LeewayBoundariesAreExactlySixtySeconds) {
  auto with = [&](const char* claim, int64_t value) {
    json claims = Claims();
    claims[claim] = value;
    return Check(Sign(claims));
  };
  // Valid while now < exp + 60 (RFC 7519 4.1.4 plus leeway).
  EXPECT_EQ(with("exp", kNow - 59), std::nullopt);
  EXPECT_EQ(with("exp", kNow - 60), JwtError::kExpired);
  EXPECT_EQ(with("exp", kNow - 61), JwtError::kExpired);
  // Valid once now >= nbf - 60.
  EXPECT_EQ(with("nbf", kNow + 59), std::nullopt);
  EXPECT_EQ(with("nbf", kNow + 60), std::nullopt);
  EXPECT_EQ(with("nbf", kNow + 61), JwtError::kNotYetValid);
}

TEST_P(JwtTest, RefusesAWrongOrMissingAudience) {
  json wrong = Claims();
  wrong["aud"] = "api://AzureADTokenExchange/";
  EXPECT_EQ(Check(Sign(wrong)), JwtError::kWrongAudience);
  json missing = Claims();
  missing.erase("aud");
  EXPECT_EQ(Check(Sign(missing)), JwtError::kWrongAudience);
  json several = Claims();
  several["aud"] = {"api://other", kAudience};
  EXPECT_EQ(Check(Sign(several)), std::nullopt) << "one accepted audience among several";
  VerifyOptions none = Options();
  none.audiences.clear();
  EXPECT_EQ(Check(Sign(Claims()), none), JwtError::kWrongAudience) << "no audience configured";
}

TEST_P(JwtTest, RefusesAnIssuerThatDiffersByATrailingSlash) {
  keys_[std::string(kIssuerA) + "/"] = {key_a_->public_key()};
  EXPECT_EQ(Check(Sign(Claims(std::string(kIssuerA) + "/"))), JwtError::kWrongIssuer);
  EXPECT_EQ(Check(Sign(Claims()), Options(std::string(kIssuerA) + "/")), JwtError::kWrongIssuer);
}

TEST_P(JwtTest, RefusesASubjectThatDiffersOnlyInCase) {
  VerifyOptions options = Options();
  options.subject = "system:serviceaccount:ml:trainer";
  EXPECT_EQ(Check(Sign(Claims()), options), std::nullopt);
  options.subject = "system:serviceaccount:ML:trainer";
  EXPECT_EQ(Check(Sign(Claims()), options), JwtError::kWrongSubject);
}

TEST_P(JwtTest, RefusesATokenSignedByIssuerAClaimingIssuerB) {
  std::string token = Sign(Claims(kIssuerB));  // key A, iss B
  EXPECT_EQ(Check(token, Options(kIssuerB)), JwtError::kUnknownKey);
}

TEST_P(JwtTest, RefusesAnOversizedTokenBeforeParsing) {
  json claims = Claims();
  claims["padding"] = std::string(kMaxTokenBytes, 'x');
  std::string input =
      Base64UrlEncode(Header(*key_a_).dump()) + "." + Base64UrlEncode(claims.dump());
  std::string token = input + "." + Base64UrlEncode(*key_a_->Sign(input));
  EXPECT_EQ(Check(token), JwtError::kMalformed);
  EXPECT_FALSE(SignJwt(*key_a_, claims.dump()).ok()) << "SignJwt refuses what verifiers would";
}

TEST_P(JwtTest, PublicKeysRoundTripThroughJwkAndKeepTheirKid) {
  std::shared_ptr<const PublicKey> original = key_a_->public_key();
  Result<std::shared_ptr<const PublicKey>> again = PublicKey::FromJwk(original->JwkJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->kid(), original->kid());
  EXPECT_EQ((*again)->alg(), GetParam());
  json jwk = json::parse(original->JwkJson());
  EXPECT_EQ(jwk["kid"], original->kid());
  EXPECT_EQ(jwk["use"], "sig");
  EXPECT_FALSE(jwk.contains("d")) << "no private part in a JWK";
  keys_[kIssuerA] = {*again};
  EXPECT_EQ(Check(Sign(Claims())), std::nullopt);
  jwk["alg"] = GetParam() == JwtAlg::kRS256 ? "ES256" : "RS256";
  EXPECT_FALSE(PublicKey::FromJwk(jwk.dump()).ok()) << "alg must match the key type";
}

TEST_P(JwtTest, SigningKeysRoundTripThroughPem) {
  std::string pem = key_a_->PrivatePem();
  EXPECT_NE(pem.find("BEGIN PRIVATE KEY"), std::string::npos) << "PKCS#8";
  Result<std::shared_ptr<const SigningKey>> again = SigningKey::FromPem(pem);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->kid(), key_a_->kid());
  EXPECT_EQ(Check(*SignJwt(**again, Claims().dump())), std::nullopt);
}

TEST(JwtKeys, RefusesAnEcPointOffTheCurve) {
  std::shared_ptr<const SigningKey> key = NewKey(JwtAlg::kES256);
  json jwk = json::parse(key->public_key()->JwkJson());
  std::string y = *Base64UrlDecode(jwk["y"].get<std::string>());
  y[31] = static_cast<char>(y[31] ^ 1);
  jwk["y"] = Base64UrlEncode(y);
  EXPECT_FALSE(PublicKey::FromJwk(jwk.dump()).ok());
}

TEST(JwtKeys, PublicPemRoundTripsWithTheSameKid) {
  for (JwtAlg alg : {JwtAlg::kRS256, JwtAlg::kES256}) {
    std::shared_ptr<const SigningKey> key = NewKey(alg);
    // The public PEM is what a person registers for private_key_jwt.
    std::string pem = key->public_key()->PublicPem();
    EXPECT_NE(pem.find("BEGIN PUBLIC KEY"), std::string::npos);
    Result<std::shared_ptr<const PublicKey>> again = PublicKey::FromPem(pem);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ((*again)->kid(), key->kid());
    EXPECT_EQ((*again)->alg(), alg);
  }
  EXPECT_FALSE(PublicKey::FromPem("not a pem").ok());
}

TEST(Base64Url, EncodesAndDecodesRfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
  for (const auto& [bytes, text] : vectors) {
    EXPECT_EQ(Base64UrlEncode(bytes), text);
    EXPECT_EQ(*Base64UrlDecode(text), bytes);
  }
}

TEST(Base64Url, RefusesPaddingForeignCharactersAndNonCanonicalText) {
  EXPECT_FALSE(Base64UrlDecode("Zg==").ok());
  EXPECT_FALSE(Base64UrlDecode("Zm9v+/").ok());
  EXPECT_FALSE(Base64UrlDecode("Zm9 v").ok());
  EXPECT_FALSE(Base64UrlDecode("Z").ok());
  EXPECT_FALSE(Base64UrlDecode("Zh").ok()) << "same bytes as Zg: trailing bits must be zero";
}

TEST(ParseJwt, RefusesMalformedTokensNamingWhatIsWrong) {
  std::string header = Base64UrlEncode(R"({"alg":"ES256","kid":"k"})");
  std::string claims = Base64UrlEncode(R"({"iss":"i","exp":1})");
  EXPECT_FALSE(ParseJwt(header + "." + claims).ok());
  EXPECT_FALSE(ParseJwt(header + "." + claims + ".." + "x.y").ok()) << "JWE has five segments";
  EXPECT_FALSE(ParseJwt("%%%." + claims + ".").ok());
  EXPECT_FALSE(ParseJwt(Base64UrlEncode("[1]") + "." + claims + ".").ok());
  EXPECT_FALSE(ParseJwt(Base64UrlEncode(R"({"kid":"k"})") + "." + claims + ".").ok())
      << "alg required";
  EXPECT_FALSE(ParseJwt(header + "." + Base64UrlEncode(R"({"exp":"tomorrow"})") + ".").ok());
  EXPECT_FALSE(ParseJwt(header + "." + Base64UrlEncode(R"({"aud":[1]})") + ".").ok());
  EXPECT_FALSE(ParseJwt(header + "." + Base64UrlEncode(R"({"iss":7})") + ".").ok());
  Result<ParsedJwt> parsed =
      ParseJwt(header + "." + Base64UrlEncode(R"({"aud":["a","b"],"exp":1.9e9})") + ".");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->aud, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(parsed->exp, 1'900'000'000);
}

}  // namespace
}  // namespace meridian::identity
