// Tests of private_key_jwt: the assertion a token endpoint receives, and the key-file checks.
#include <sys/stat.h>

#include <string>

#include "base/clock.h"
#include "base/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "identity/credentials/default_credential.h"
#include "identity/credentials/fake_token_endpoint.h"
#include "identity/credentials/private_key_jwt_credential.h"
#include "identity/jwt.h"
#include "nlohmann/json.hpp"

namespace meridian::identity::credentials {
namespace {

using testing::FakeHttpsServer;
using ::testing::HasSubstr;
using testing::ParseForm;
using testing::TokenResponse;

constexpr char kTenant[] = "contoso.example";
constexpr char kClientId[] = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
constexpr char kScope[] = "api://meridian/.default";
const std::string kTokenPath = std::string("/") + kTenant + "/oauth2/v2.0/token";

class PrivateKeyJwtTest : public ::testing::TestWithParam<JwtAlg> {
 protected:
  void SetUp() override {
    Result<std::shared_ptr<const SigningKey>> key = SigningKey::Generate(GetParam());
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = *key;
    key_file_ = dir_.path() + "/client.key";
    ASSERT_TRUE(base::WriteFileAtomic(key_file_, key_->PrivatePem(), 0600).ok());
  }

  PrivateKeyJwtOptions Options() {
    PrivateKeyJwtOptions options;
    options.client_id = kClientId;
    options.private_key_file = key_file_;
    options.endpoint.authority_host = server_.base_url();
    options.endpoint.tenant_id = kTenant;
    options.endpoint.http.ca_file = server_.ca_file();
    options.endpoint.clock = &clock_;
    return options;
  }

  testing::TempDir dir_;
  FakeHttpsServer server_;
  base::FakeClock clock_;
  std::shared_ptr<const SigningKey> key_;
  std::string key_file_;
};

TEST_P(PrivateKeyJwtTest, SendsAnAssertionSignedForTheTokenEndpoint) {
  server_.SetDefault(kTokenPath, TokenResponse("for-a-person", 3600));
  Result<std::unique_ptr<PrivateKeyJwtCredential>> credential =
      PrivateKeyJwtCredential::Create(Options());
  ASSERT_TRUE(credential.ok()) << credential.status();
  Result<AccessToken> token = (*credential)->GetToken(kScope);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->token, "for-a-person");

  ASSERT_EQ(server_.requests().size(), 1u);
  const auto form = ParseForm(server_.requests()[0].body);
  EXPECT_EQ(form.at("client_id"), kClientId);
  EXPECT_EQ(form.at("client_assertion_type"), kJwtBearerAssertionType);
  const std::string token_url = server_.base_url() + kTokenPath;
  const int64_t now_s = clock_.NowUnixMs() / 1000;
  Result<ParsedJwt> verified = VerifyJwt(
      form.at("client_assertion"),
      [&](std::string_view, std::string_view) -> Result<std::shared_ptr<const PublicKey>> {
        return key_->public_key();
      },
      {.issuer = kClientId, .audiences = {token_url}, .subject = kClientId, .now_unix_s = now_s});
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->alg, JwtAlgName(GetParam()));
  EXPECT_EQ(*verified->iat, now_s);
  EXPECT_EQ(*verified->nbf, now_s);
  EXPECT_EQ(*verified->exp, now_s + 600);
  EXPECT_FALSE(verified->jti.empty());
  // Every assertion has its own id.
  Result<std::string> second = (*credential)->MakeAssertion();
  ASSERT_TRUE(second.ok());
  EXPECT_NE(ParseJwt(*second)->jti, verified->jti);
}

TEST_P(PrivateKeyJwtTest, KeyFileReadableByOthersIsRefused) {
  ASSERT_EQ(chmod(key_file_.c_str(), 0644), 0);
  Result<std::unique_ptr<PrivateKeyJwtCredential>> credential =
      PrivateKeyJwtCredential::Create(Options());
  ASSERT_FALSE(credential.ok());
  EXPECT_EQ(credential.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(credential.status().message(), HasSubstr("0644"));
  EXPECT_THAT(credential.status().message(), HasSubstr("chmod 600 " + key_file_));
}

TEST_P(PrivateKeyJwtTest, CertificateAddsItsSha256Thumbprint) {
  PrivateKeyJwtOptions options = Options();
  options.certificate_file = server_.ca_file();  // any PEM certificate will do here
  Result<std::unique_ptr<PrivateKeyJwtCredential>> credential =
      PrivateKeyJwtCredential::Create(options);
  ASSERT_TRUE(credential.ok()) << credential.status();
  Result<std::string> assertion = (*credential)->MakeAssertion();
  ASSERT_TRUE(assertion.ok()) << assertion.status();
  Result<ParsedJwt> parsed = ParseJwt(*assertion);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const auto header = nlohmann::json::parse(parsed->header_json);
  ASSERT_TRUE(header.contains("x5t#S256"));
  EXPECT_EQ(Base64UrlDecode(header["x5t#S256"].get<std::string>())->size(), 32u);
}

TEST_P(PrivateKeyJwtTest, DefaultCredentialUsesTheKeyFileWithoutWorkloadIdentity) {
  server_.SetDefault(kTokenPath, TokenResponse("via-default", 3600));
  DefaultCredentialOptions options;
  options.env = [&](const std::string& name) -> std::string {
    if (name == kEnvPrivateKeyFile) return key_file_;
    if (name == "AZURE_CLIENT_ID") return kClientId;
    if (name == "AZURE_TENANT_ID") return kTenant;
    return "";
  };
  options.authority_host = server_.base_url();
  options.endpoint = Options().endpoint;
  Result<std::shared_ptr<TokenCredential>> credential = DefaultCredentialFromEnvironment(options);
  ASSERT_TRUE(credential.ok()) << credential.status();
  EXPECT_EQ((*credential)->GetToken(kScope)->token, "via-default");
}

TEST_P(PrivateKeyJwtTest, AzureClientCertificatePathHoldsKeyAndCertificate) {
  // Azure's EnvironmentCredential convention: one PEM file with the certificate and the key.
  server_.SetDefault(kTokenPath, TokenResponse("via-certificate", 3600));
  Result<std::string> certificate = base::ReadFile(server_.ca_file());
  ASSERT_TRUE(certificate.ok());
  const std::string combined = dir_.path() + "/client.pem";
  ASSERT_TRUE(base::WriteFileAtomic(combined, *certificate + key_->PrivatePem(), 0600).ok());
  DefaultCredentialOptions options;
  options.env = [&](const std::string& name) -> std::string {
    if (name == kEnvClientCertificatePath) return combined;
    if (name == "AZURE_CLIENT_ID") return kClientId;
    if (name == "AZURE_TENANT_ID") return kTenant;
    return "";
  };
  options.authority_host = server_.base_url();
  options.endpoint = Options().endpoint;
  Result<std::shared_ptr<TokenCredential>> credential = DefaultCredentialFromEnvironment(options);
  ASSERT_TRUE(credential.ok()) << credential.status();
  EXPECT_EQ((*credential)->GetToken(kScope)->token, "via-certificate");
  ASSERT_EQ(server_.requests().size(), 1u);
  Result<ParsedJwt> assertion =
      ParseJwt(ParseForm(server_.requests()[0].body).at("client_assertion"));
  ASSERT_TRUE(assertion.ok()) << assertion.status();
  EXPECT_TRUE(nlohmann::json::parse(assertion->header_json).contains("x5t#S256"));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PrivateKeyJwtTest,
                         ::testing::Values(JwtAlg::kRS256, JwtAlg::kES256),
                         [](const ::testing::TestParamInfo<JwtAlg>& info) {
                           return std::string(JwtAlgName(info.param));
                         });

}  // namespace
}  // namespace meridian::identity::credentials
