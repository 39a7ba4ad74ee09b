// Tests of OIDC discovery of external issuers' keys against a fake issuer over real TLS.
#include "identity/credentials/oidc_issuer_keys.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "identity/credentials/fake_token_endpoint.h"
#include "identity/jwt.h"
#include "nlohmann/json.hpp"

namespace meridian::identity::credentials {
namespace {

using testing::FakeHttpsServer;
using ::testing::HasSubstr;
using testing::JsonResponse;

constexpr char kDiscoveryPath[] = "/cluster/.well-known/openid-configuration";
constexpr char kJwksPath[] = "/cluster/openid/v1/jwks";

std::shared_ptr<const SigningKey> NewKey(JwtAlg alg) {
  Result<std::shared_ptr<const SigningKey>> key = SigningKey::Generate(alg);
  EXPECT_TRUE(key.ok()) << key.status();
  return *key;
}

class OidcIssuerKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    issuer_ = server_.base_url() + "/cluster";
    ServeDiscovery(issuer_);
    rsa_ = NewKey(JwtAlg::kRS256);
    ec_ = NewKey(JwtAlg::kES256);
    ServeKeys({rsa_, ec_});
  }

  void ServeDiscovery(const std::string& claimed_issuer) {
    const nlohmann::json document = {{"issuer", claimed_issuer},
                                     {"jwks_uri", server_.base_url() + kJwksPath},
                                     {"response_types_supported", {"id_token"}},
                                     {"id_token_signing_alg_values_supported", {"RS256"}}};
    server_.SetDefault(kDiscoveryPath, JsonResponse(200, document.dump()));
  }

  void ServeKeys(const std::vector<std::shared_ptr<const SigningKey>>& keys) {
    nlohmann::json jwks = {{"keys", nlohmann::json::array()}};
    for (const auto& key : keys) {
      jwks["keys"].push_back(nlohmann::json::parse(key->public_key()->JwkJson()));
    }
    // Keys meridian does not verify with are skipped, not fatal.
    jwks["keys"].push_back({{"kty", "oct"}, {"kid", "symmetric"}, {"k", "c2VjcmV0"}});
    nlohmann::json encryption = nlohmann::json::parse(rsa_->public_key()->JwkJson());
    encryption["use"] = "enc";
    encryption["kid"] = "encryption";
    jwks["keys"].push_back(encryption);
    server_.SetDefault(kJwksPath, JsonResponse(200, jwks.dump()));
  }

  std::unique_ptr<OidcIssuerKeys> Keys() {
    Result<std::unique_ptr<OidcIssuerKeys>> keys = OidcIssuerKeys::Create(
        {.trusted_issuers = {issuer_}, .http = {.ca_file = server_.ca_file()}, .clock = &clock_});
    EXPECT_TRUE(keys.ok()) << keys.status();
    return keys.ok() ? std::move(*keys) : nullptr;
  }

  FakeHttpsServer server_;
  base::FakeClock clock_;
  std::string issuer_;
  std::shared_ptr<const SigningKey> rsa_;
  std::shared_ptr<const SigningKey> ec_;
};

TEST_F(OidcIssuerKeysTest, DiscoveryFindsRsaAndEcKeysByKid) {
  std::unique_ptr<OidcIssuerKeys> keys = Keys();
  EXPECT_TRUE(keys->Trusts(issuer_));
  for (const auto& signing : {rsa_, ec_}) {
    Result<std::shared_ptr<const PublicKey>> found = keys->Find(issuer_, signing->kid());
    ASSERT_TRUE(found.ok()) << found.status();
    ASSERT_NE(*found, nullptr);
    EXPECT_EQ((*found)->kid(), signing->kid());
    EXPECT_EQ((*found)->alg(), signing->alg());
  }
  EXPECT_EQ(*keys->Find(issuer_, "symmetric"), nullptr);
  EXPECT_EQ(*keys->Find(issuer_, "encryption"), nullptr);
  EXPECT_EQ(server_.RequestCount(kDiscoveryPath), 1);
  EXPECT_EQ(server_.RequestCount(kJwksPath), 1);
}

TEST_F(OidcIssuerKeysTest, IssuerWithATrailingSlashIsDiscoveredBelowIt) {
  // AKS OIDC issuers end in '/': discovery goes to {issuer without '/'}/.well-known/...
  issuer_ += "/";
  ServeDiscovery(issuer_);
  std::unique_ptr<OidcIssuerKeys> keys = Keys();
  Result<std::shared_ptr<const PublicKey>> found = keys->Find(issuer_, rsa_->kid());
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_NE(*found, nullptr);
  EXPECT_EQ(server_.RequestCount(kDiscoveryPath), 1);
}

TEST_F(OidcIssuerKeysTest, UntrustedIssuerHasNoKeys) {
  std::unique_ptr<OidcIssuerKeys> keys = Keys();
  EXPECT_FALSE(keys->Trusts(issuer_ + "/"));  // exact comparison: a trailing slash differs
  Result<std::shared_ptr<const PublicKey>> found = keys->Find(issuer_ + "/", rsa_->kid());
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, nullptr);
  EXPECT_EQ(server_.requests().size(), 0u);
}

TEST_F(OidcIssuerKeysTest, DiscoveryDocumentNamingAnotherIssuerIsRefused) {
  ServeDiscovery(issuer_ + "/");
  std::unique_ptr<OidcIssuerKeys> keys = Keys();
  Result<std::shared_ptr<const PublicKey>> found = keys->Find(issuer_, rsa_->kid());
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(found.status().message(), HasSubstr("not the trusted issuer"));
  EXPECT_EQ(server_.RequestCount(kJwksPath), 0);
}

TEST_F(OidcIssuerKeysTest, PlainHttpIssuerIsRefused) {
  Result<std::unique_ptr<OidcIssuerKeys>> keys =
      OidcIssuerKeys::Create({.trusted_issuers = {"http://127.0.0.1:1/cluster"}});
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(OidcIssuerKeysTest, FetchErrorIsUnavailableNamingTheUrl) {
  server_.SetDefault(kJwksPath, JsonResponse(500, "{}"));
  std::unique_ptr<OidcIssuerKeys> keys = Keys();
  Result<std::shared_ptr<const PublicKey>> found = keys->Find(issuer_, rsa_->kid());
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(found.status().message(), HasSubstr(server_.base_url() + kJwksPath));
  EXPECT_THAT(found.status().message(), HasSubstr("HTTP 500"));
}

TEST_F(OidcIssuerKeysTest, UnknownKidRefetchesAtMostOncePerMinute) {
  std::unique_ptr<OidcIssuerKeys> keys = Keys();
  ASSERT_NE(*keys->Find(issuer_, rsa_->kid()), nullptr);
  ASSERT_EQ(server_.RequestCount(kJwksPath), 1);
  // Made-up kids within the minute cost nothing.
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(*keys->Find(issuer_, "made-up-" + std::to_string(i)), nullptr);
  }
  EXPECT_EQ(server_.RequestCount(kJwksPath), 1);
  // A minute later one unknown kid fetches again, once.
  clock_.AdvanceMs(61'000);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(*keys->Find(issuer_, "made-up"), nullptr);
  EXPECT_EQ(server_.RequestCount(kJwksPath), 2);
  // A key the issuer rotated in is found on the next allowed fetch.
  std::shared_ptr<const SigningKey> rotated = NewKey(JwtAlg::kES256);
  ServeKeys({rotated});
  EXPECT_EQ(*keys->Find(issuer_, rotated->kid()), nullptr);  // still inside the minute
  clock_.AdvanceMs(61'000);
  Result<std::shared_ptr<const PublicKey>> found = keys->Find(issuer_, rotated->kid());
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_NE(*found, nullptr);
  EXPECT_EQ((*found)->kid(), rotated->kid());
  EXPECT_EQ(server_.RequestCount(kJwksPath), 3);
}

TEST_F(OidcIssuerKeysTest, ConcurrentUnknownKidsShareOneFetch) {
  server_.SetDelayMs(200);
  std::unique_ptr<OidcIssuerKeys> keys = Keys();
  std::atomic<int> found_count{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 10; ++i) {
    callers.emplace_back([&] {
      Result<std::shared_ptr<const PublicKey>> found = keys->Find(issuer_, ec_->kid());
      if (found.ok() && *found != nullptr) ++found_count;
      if (!found.ok()) ADD_FAILURE() << found.status().message();
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(found_count.load(), 10);
  EXPECT_EQ(server_.RequestCount(kJwksPath), 1);
}

TEST_F(OidcIssuerKeysTest, StaleKeysAreKeptWhenTheRefreshFails) {
  std::unique_ptr<OidcIssuerKeys> keys = Keys();
  ASSERT_NE(*keys->Find(issuer_, rsa_->kid()), nullptr);
  server_.SetDefault(kJwksPath, JsonResponse(503, "{}"));
  clock_.AdvanceMs(2 * 3600 * 1000);  // past max_key_age_s
  Result<std::shared_ptr<const PublicKey>> found = keys->Find(issuer_, rsa_->kid());
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_NE(*found, nullptr);
  EXPECT_EQ(server_.RequestCount(kJwksPath), 2);
}

TEST(ParseJwksTest, RefusesWhatIsNotAJwks) {
  EXPECT_FALSE(ParseJwks("[]", 10).ok());
  EXPECT_FALSE(ParseJwks(R"({"keys": {}})", 10).ok());
  EXPECT_FALSE(ParseJwks("not json", 10).ok());
  Result<IssuerKeyMap> empty = ParseJwks(R"({"keys": [1, "x", {"kty": "RSA"}]})", 10);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
}

}  // namespace
}  // namespace meridian::identity::credentials
