// Key rotation end to end with a fake clock and a real SQLite store: a new key is published
// before it signs, the old one verifies until every token it signed has expired, then goes.
#include "identity/keys.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>

#include "base/files.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;

constexpr int64_t kSecondMs = 1000;

class KeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/keys_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    OpenStore();
    options_.rotation_period_s = 1000;
    options_.publish_ahead_s = 100;
    options_.max_token_lifetime_s = 300;
    options_.leeway_s = 60;
  }
  void TearDown() override {
    manager_.reset();
    store_.reset();
    (void)base::RemoveAll(dir_);
  }
  void OpenStore() {
    auto store = state::OpenSqliteStore(dir_ + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void OpenManager() {
    auto manager = KeyManager::Open(store_.get(), &clock_, options_);
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = *std::move(manager);
  }

  std::vector<std::string> JwksKids() {
    std::vector<std::string> kids;
    const json jwks = json::parse(manager_->JwksJson());
    for (const json& key : jwks["keys"]) {
      kids.push_back(key["kid"]);
    }
    return kids;
  }
  bool Published(const std::string& kid) {
    auto kids = JwksKids();
    return std::find(kids.begin(), kids.end(), kid) != kids.end();
  }
  std::string SignerKid(JwtAlg alg = JwtAlg::kES256) {
    auto signer = manager_->ActiveSigner(alg);
    EXPECT_TRUE(signer.ok()) << signer.status();
    return signer.ok() ? (*signer)->kid() : "";
  }
  // A token signed now by the active ES256 key, valid for the longest allowed lifetime.
  std::string SignNow() {
    int64_t now_s = clock_.NowUnixMs() / kSecondMs;
    json claims = {{"iss", "https://meridian.test/t/v2.0"},
                   {"aud", "api://meridian"},
                   {"iat", now_s},
                   {"exp", now_s + options_.max_token_lifetime_s}};
    return *SignJwt(**manager_->ActiveSigner(JwtAlg::kES256), claims.dump());
  }
  bool Verifies(const std::string& token) {
    VerifyOptions options;
    options.issuer = "https://meridian.test/t/v2.0";
    options.audiences = {"api://meridian"};
    options.now_unix_s = clock_.NowUnixMs() / kSecondMs;
    options.leeway_s = options_.leeway_s;
    KeyLookup lookup = [this](std::string_view,
                              std::string_view kid) -> Result<std::shared_ptr<const PublicKey>> {
      return manager_->Lookup(kid);
    };
    return VerifyJwt(token, lookup, options).ok();
  }

  std::string dir_;
  base::FakeClock clock_;
  KeyManagerOptions options_;
  std::unique_ptr<state::StateStore> store_;
  std::unique_ptr<KeyManager> manager_;
};

TEST_F(KeysTest, AFreshStoreGetsOneActiveKeyPerAlgorithmThatSurvivesRestart) {
  OpenManager();
  std::string rs = SignerKid(JwtAlg::kRS256);
  std::string es = SignerKid(JwtAlg::kES256);
  EXPECT_NE(rs, es);
  EXPECT_EQ(JwksKids().size(), 2u);
  auto records = store_->List(kKeyRecordKind);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  EXPECT_NE(
      json::parse(records->front().body)["private_pem"].get<std::string>().find("PRIVATE KEY"),
      std::string::npos);
  manager_.reset();
  OpenManager();
  EXPECT_EQ(SignerKid(JwtAlg::kRS256), rs);
  EXPECT_EQ(SignerKid(JwtAlg::kES256), es);
  json jwk = json::parse(manager_->JwksJson())["keys"][0];
  EXPECT_FALSE(jwk.contains("d")) << "the JWKS carries no private part";
}

TEST_F(KeysTest, RotationPublishesAheadAndKeepsTheOldKeyUntilItsTokensExpire) {
  OpenManager();
  const std::string old_kid = SignerKid();
  ASSERT_FALSE(*manager_->MaybeRotate()) << "too young to rotate";

  clock_.AdvanceMs(1000 * kSecondMs);
  ASSERT_TRUE(*manager_->MaybeRotate());
  EXPECT_FALSE(*manager_->MaybeRotate()) << "a rotation in flight is not repeated";
  std::string new_kid;
  for (const KeyInfo& info : manager_->Keys()) {
    if (info.alg == JwtAlg::kES256 && info.state == KeyState::kPending) new_kid = info.kid;
  }
  ASSERT_FALSE(new_kid.empty());
  EXPECT_TRUE(Published(new_kid)) << "published before it signs";
  EXPECT_EQ(SignerKid(), old_kid);

  // The last token the old key signs, just before the new key takes over.
  clock_.AdvanceMs(100 * kSecondMs - 1);
  EXPECT_EQ(SignerKid(), old_kid);
  const std::string last_old_token = SignNow();
  clock_.AdvanceMs(1);
  EXPECT_EQ(SignerKid(), new_kid) << "the new key signs after publish_ahead_s";
  EXPECT_TRUE(Published(old_kid));
  EXPECT_TRUE(Verifies(last_old_token));
  EXPECT_TRUE(Verifies(SignNow()));

  // The old token stays verifiable through its lifetime plus leeway; then the key is gone.
  clock_.AdvanceMs((options_.max_token_lifetime_s + options_.leeway_s) * kSecondMs - 1);
  EXPECT_TRUE(Published(old_kid));
  EXPECT_NE(manager_->Lookup(old_kid), nullptr);
  clock_.AdvanceMs(1);
  EXPECT_FALSE(Published(old_kid));
  EXPECT_EQ(manager_->Lookup(old_kid), nullptr);
  EXPECT_FALSE(Verifies(last_old_token));

  // MaybeRotate deletes the retired key's record; a restart does not bring it back.
  ASSERT_TRUE(manager_->MaybeRotate().ok());
  EXPECT_FALSE(store_->Get(kKeyRecordKind, old_kid)->has_value());
  manager_.reset();
  OpenManager();
  EXPECT_EQ(SignerKid(), new_kid);
  EXPECT_FALSE(Published(old_kid));
}

TEST_F(KeysTest, ARestartMidRotationKeepsEveryKeysState) {
  OpenManager();
  const std::string old_kid = SignerKid();
  ASSERT_TRUE(manager_->Rotate(JwtAlg::kES256).ok());
  manager_.reset();
  OpenManager();
  EXPECT_EQ(SignerKid(), old_kid) << "the pending key does not sign early after a restart";
  EXPECT_EQ(JwksKids().size(), 3u);
  clock_.AdvanceMs(options_.publish_ahead_s * kSecondMs);
  EXPECT_NE(SignerKid(), old_kid);
  EXPECT_NE(manager_->Lookup(old_kid), nullptr);
}

TEST_F(KeysTest, RefusesNonsenseOptions) {
  options_.max_token_lifetime_s = 0;
  EXPECT_FALSE(KeyManager::Open(store_.get(), &clock_, options_).ok());
}

}  // namespace
}  // namespace meridian::identity
