// The token endpoint as a client sees it: real request maps in, Entra-shaped answers out.
// Both assertion kinds (a federated token from meridian's cluster issuer or an external
// issuer, and private_key_jwt), every error code, and the access tokens it issues.
#include "identity/token_service.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "identity/audit.h"
#include "identity/cluster_issuer.h"
#include "identity/guid.h"

namespace meridian::identity {
namespace {

using json = nlohmann::json;

constexpr char kAuthority[] = "https://meridian.test:8443";
constexpr char kExternalIssuer[] = "https://oidc.external.example/cluster-1";
constexpr char kOperatorSubject[] = "system:serviceaccount:meridian:operator";
constexpr char kResource[] = "api://meridian";

class TokenServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/token_service_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    store_ = *state::OpenSqliteStore(dir_ + "/state.db");
    keys_ = *KeyManager::Open(store_.get(), &clock_);
    directory_ = *Directory::Open(store_.get(), &clock_);
    cluster_ =
        std::make_unique<ClusterIssuer>(keys_.get(), &clock_, ClusterIssuerOptions{kAuthority});
    external_key_ = *SigningKey::Generate(JwtAlg::kES256);
    external_.Add(kExternalIssuer, external_key_->public_key());
    tenant_ = NewGuid();
    TokenServiceOptions options{kAuthority, tenant_, 600};
    options.resources = {kResource};
    audit_ = *AuditLog::Open(store_.get(), &clock_);
    service_ = std::make_unique<TokenService>(
        options, keys_.get(), directory_.get(),
        std::vector<IssuerKeySource*>{cluster_.get(), &external_}, audit_.get());

    app_id_ = directory_->CreateApplication({"operator-east"})->app_id;
    ASSERT_TRUE(
        directory_
            ->AddFederatedCredential(
                app_id_, {"east-operator", cluster_->IssuerFor("east"), kOperatorSubject, {}, ""})
            .ok());
    ASSERT_TRUE(
        directory_
            ->AddFederatedCredential(app_id_, {"external", kExternalIssuer, "repo:ml/x", {}, ""})
            .ok());
    ASSERT_TRUE(
        directory_->AssignRole(Role::kOperator, app_id_, "/clouds/prod/resources/east").ok());

    user_key_ = *SigningKey::Generate(JwtAlg::kES256);
    user_id_ =
        directory_->CreateApplication({"Alice", PrincipalKind::kUser, "alice@example.com"})->app_id;
    ASSERT_TRUE(directory_->AddKey(user_id_, user_key_->public_key()->PublicPem()).ok());
    ASSERT_TRUE(directory_->AssignRole(Role::kDeveloper, "alice@example.com", "/clouds/prod").ok());
  }
  void TearDown() override {
    service_.reset();
    audit_.reset();
    directory_.reset();
    keys_.reset();
    store_.reset();
    (void)base::RemoveAll(dir_);
  }

  int64_t NowS() const { return clock_.NowUnixMs() / 1000; }

  std::string ClusterToken(std::string_view subject_name = "operator",
                           std::string_view audience = kDefaultFederatedAudience) {
    return *cluster_->MintServiceAccountToken("east", "meridian", subject_name, audience, 600);
  }
  std::string UserAssertion(std::string audience = "") {
    if (audience.empty()) audience = service_->TokenEndpoint();
    json claims = {{"iss", user_id_}, {"sub", user_id_}, {"aud", audience},    {"jti", NewGuid()},
                   {"iat", NowS()},   {"nbf", NowS()},   {"exp", NowS() + 300}};
    return *SignJwt(*user_key_, claims.dump());
  }

  TokenRequest Request(std::string client_id, std::string assertion) {
    TokenRequest request;
    request.tenant = tenant_;
    request.now_unix_ms = clock_.NowUnixMs();
    request.source_address = "127.0.0.1";
    request.form = {{"grant_type", "client_credentials"},
                    {"client_id", std::move(client_id)},
                    {"scope", std::string(kResource) + "/.default"},
                    {"client_assertion_type", kJwtBearerAssertionType},
                    {"client_assertion", std::move(assertion)},
                    {"client_info", "1"},  // MSAL's extras are ignored
                    {"x-client-SKU", "MSAL.JS"}};
    return request;
  }

  // The AADSTS code of the answer (0 on success), checking Entra's error shape.
  int Code(const TokenRequest& request, int expected_http = 0) {
    TokenResponse response = service_->HandleTokenRequest(request);
    json body = json::parse(response.body);
    if (response.http_status == 200) {
      EXPECT_EQ(body["token_type"], "Bearer");
      return 0;
    }
    if (expected_http != 0) {
      EXPECT_EQ(response.http_status, expected_http);
    }
    EXPECT_TRUE(body["error"].is_string());
    EXPECT_EQ(body["error_codes"], json::array({response.error_code}));
    EXPECT_EQ(body["error_description"].get<std::string>().rfind(
                  fmt::format("AADSTS{}: ", response.error_code), 0),
              0u)
        << body["error_description"];
    EXPECT_TRUE(IsGuid(body["trace_id"].get<std::string>()));
    EXPECT_TRUE(body["timestamp"].is_string());
    EXPECT_EQ(body["correlation_id"], response.correlation_id);
    description_ = body["error_description"];
    return response.error_code;
  }
  std::string AccessToken(const TokenRequest& request) {
    TokenResponse response = service_->HandleTokenRequest(request);
    EXPECT_EQ(response.http_status, 200) << response.body;
    return json::parse(response.body).value("access_token", "");
  }

  std::string dir_;
  base::FakeClock clock_;
  std::unique_ptr<state::StateStore> store_;
  std::unique_ptr<KeyManager> keys_;
  std::unique_ptr<Directory> directory_;
  std::unique_ptr<ClusterIssuer> cluster_;
  std::shared_ptr<const SigningKey> external_key_;
  StaticIssuerKeys external_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<TokenService> service_;
  std::shared_ptr<const SigningKey> user_key_;
  std::string tenant_;
  std::string app_id_;
  std::string user_id_;
  std::string description_;
};

TEST_F(TokenServiceTest, ExchangesAClusterIssuedTokenForAnAccessToken) {
  TokenResponse response = service_->HandleTokenRequest(Request(app_id_, ClusterToken()));
  ASSERT_EQ(response.http_status, 200) << response.body;
  json body = json::parse(response.body);
  EXPECT_EQ(body["token_type"], "Bearer");
  EXPECT_EQ(body["expires_in"], 600);
  EXPECT_EQ(body["ext_expires_in"], 600);
  EXPECT_EQ(body["refresh_in"], 300);
  EXPECT_EQ(response.subject, kOperatorSubject);
  EXPECT_FALSE(response.jti.empty());

  std::string token = body["access_token"];
  ParsedJwt parsed = *ParseJwt(token);
  json claims = json::parse(parsed.claims_json);
  EXPECT_EQ(parsed.typ, "at+jwt");
  EXPECT_EQ(claims["iss"], fmt::format("{}/{}/v2.0", kAuthority, tenant_));
  EXPECT_EQ(claims["aud"], kResource);
  EXPECT_EQ(claims["sub"], app_id_);
  EXPECT_EQ(claims["oid"], app_id_);
  EXPECT_EQ(claims["azp"], app_id_);
  EXPECT_EQ(claims["appid"], app_id_);
  EXPECT_EQ(claims["tid"], tenant_);
  EXPECT_EQ(claims["ver"], "2.0");
  EXPECT_EQ(claims["roles"], json::array({"Operator"}));
  EXPECT_EQ(claims["exp"].get<int64_t>() - claims["iat"].get<int64_t>(), 600);
  EXPECT_EQ(claims["jti"], response.jti);

  Result<AccessPrincipal> principal = service_->ValidateAccessToken(token, kResource, NowS());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, app_id_);
  EXPECT_EQ(principal->app_id, app_id_);
  EXPECT_EQ(principal->roles, std::vector<std::string>{"Operator"});
  EXPECT_EQ(principal->grants,
            (std::vector<RoleGrant>{{Role::kOperator, "/clouds/prod/resources/east"}}));
}

TEST_F(TokenServiceTest, ExchangesATokenFromATrustedExternalIssuer) {
  json claims = {{"iss", kExternalIssuer},
                 {"sub", "repo:ml/x"},
                 {"aud", kDefaultFederatedAudience},
                 {"iat", NowS()},
                 {"exp", NowS() + 300}};
  EXPECT_EQ(Code(Request(app_id_, *SignJwt(*external_key_, claims.dump()))), 0);
}

TEST_F(TokenServiceTest, PrivateKeyJwtForAUserWithTheEndpointOrIssuerAsAudience) {
  std::string token = AccessToken(Request(user_id_, UserAssertion()));
  Result<AccessPrincipal> principal = service_->ValidateAccessToken(token, kResource, NowS());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->subject, "alice@example.com");
  EXPECT_EQ(principal->app_id, user_id_);
  EXPECT_EQ(principal->grants, (std::vector<RoleGrant>{{Role::kDeveloper, "/clouds/prod"}}));
  EXPECT_EQ(Code(Request(user_id_, UserAssertion(service_->AccessTokenIssuer()))), 0);
  EXPECT_EQ(Code(Request(user_id_, UserAssertion("https://elsewhere.example/token")), 401), 700027);
  // A key registered for another app does not sign for this one.
  std::shared_ptr<const SigningKey> stranger = *SigningKey::Generate(JwtAlg::kES256);
  json claims = json::parse(ParseJwt(UserAssertion())->claims_json);
  EXPECT_EQ(Code(Request(user_id_, *SignJwt(*stranger, claims.dump())), 401), 700027);
}

TEST_F(TokenServiceTest, RequestErrorsAnswerWithEntrasCodes) {
  TokenRequest request = Request(app_id_, ClusterToken());
  request.tenant = NewGuid();
  EXPECT_EQ(Code(request, 400), 90002);
  for (const char* name : {"grant_type", "client_id", "scope", "client_assertion_type"}) {
    request = Request(app_id_, ClusterToken());
    request.form.erase(name);
    EXPECT_EQ(Code(request, 400), 900144) << name;
    EXPECT_NE(description_.find(fmt::format("'{}'", name)), std::string::npos) << description_;
  }
  request = Request(app_id_, ClusterToken());
  request.form["grant_type"] = "authorization_code";
  TokenResponse response = service_->HandleTokenRequest(request);
  EXPECT_EQ(json::parse(response.body)["error"], "unsupported_grant_type");
  EXPECT_EQ(response.error_code, 70003);
  request.form["grant_type"] = "client_credentials";
  request.form["scope"] = "api://meridian/.default api://other/.default";
  EXPECT_EQ(Code(request, 400), 700022);
  request.form["scope"] = "api://meridian/.default api://meridian/.default";
  EXPECT_EQ(Code(request), 0) << "the same resource twice is one resource";
  request.form["scope"] = "api://meridian/jobs.read";
  EXPECT_EQ(Code(request, 400), 1002012);
  request.form["scope"] = "api://unknown/.default";
  EXPECT_EQ(Code(request, 400), 500011);
  EXPECT_EQ(Code(Request(NewGuid(), ClusterToken()), 400), 700016);
  request = Request(app_id_, "");
  EXPECT_EQ(Code(request, 401), 7000218);
  request.form.erase("client_assertion");
  request.form["client_secret"] = "hunter2";
  EXPECT_EQ(Code(request, 401), 7000218) << "no secrets, ever";
  request = Request(app_id_, ClusterToken());
  request.form["client_assertion_type"] =
      "urn:ietf:params:oauth:client-assertion-type:saml2-bearer";
  EXPECT_EQ(Code(request, 400), 50027);
}

TEST_F(TokenServiceTest, FederatedTokensMustMatchACredentialExactly) {
  EXPECT_EQ(Code(Request(app_id_, ClusterToken("Operator")), 401), 70021) << "sub case";
  EXPECT_EQ(Code(Request(app_id_, ClusterToken("operator", "api://AzureADTokenExchange/")), 401),
            70021)
      << "aud must contain the credential's audience";
  std::string other_cluster = *cluster_->MintServiceAccountToken("west", "meridian", "operator",
                                                                 kDefaultFederatedAudience, 600);
  EXPECT_EQ(Code(Request(app_id_, other_cluster), 401), 70021) << "another cluster's issuer";
  EXPECT_NE(description_.find(cluster_->IssuerFor("west")), std::string::npos);

  // A credential naming an issuer with a trailing slash matches no token of the real issuer,
  // and tokens claiming the slashed issuer have no trusted keys.
  ASSERT_TRUE(directory_
                  ->AddFederatedCredential(
                      app_id_, {"slash", std::string(kExternalIssuer) + "/", "repo:ml/y", {}, ""})
                  .ok());
  json claims = {{"iss", std::string(kExternalIssuer) + "/"},
                 {"sub", "repo:ml/y"},
                 {"aud", kDefaultFederatedAudience},
                 {"exp", NowS() + 300}};
  EXPECT_EQ(Code(Request(app_id_, *SignJwt(*external_key_, claims.dump())), 401), 70021);
  EXPECT_NE(description_.find("not trusted"), std::string::npos) << description_;
  claims["iss"] = kExternalIssuer;
  EXPECT_EQ(Code(Request(app_id_, *SignJwt(*external_key_, claims.dump())), 401), 70021);
}

TEST_F(TokenServiceTest, AssertionsWithBadSignaturesOrKeysAreRefused) {
  std::string token = ClusterToken();
  std::string tampered = token;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Code(Request(app_id_, tampered), 401), 700027);
  // Signed by a key the cluster issuer never published.
  json claims = json::parse(ParseJwt(token)->claims_json);
  std::shared_ptr<const SigningKey> rogue = *SigningKey::Generate(JwtAlg::kES256);
  EXPECT_EQ(Code(Request(app_id_, *SignJwt(*rogue, claims.dump())), 401), 700027);
  // Issuer A's key (external) claiming issuer B (the cluster issuer).
  EXPECT_EQ(Code(Request(app_id_, *SignJwt(*external_key_, claims.dump())), 401), 700027);
  json none_header = {{"alg", "none"}, {"kid", keys_->Keys()[0].kid}};
  std::string unsigned_token =
      Base64UrlEncode(none_header.dump()) + "." + Base64UrlEncode(claims.dump()) + ".";
  EXPECT_EQ(Code(Request(app_id_, unsigned_token), 401), 700027);
  EXPECT_EQ(Code(Request(app_id_, "not-a-jwt"), 400), 50027);
  json jku_header = {{"alg", "RS256"}, {"kid", "k"}, {"jku", "https://attacker.example/keys"}};
  EXPECT_EQ(Code(Request(app_id_, Base64UrlEncode(jku_header.dump()) + "." +
                                      Base64UrlEncode(claims.dump()) + ".c2ln"),
                 400),
            50027);
  EXPECT_EQ(Code(Request(app_id_, std::string(kMaxTokenBytes + 1, 'a')), 400), 50027);
}

TEST_F(TokenServiceTest, AssertionsOutsideTheirValidTimeAreRefused) {
  TokenRequest request = Request(app_id_, ClusterToken());
  request.now_unix_ms += (600 + 60) * 1000;
  EXPECT_EQ(Code(request, 401), 700024);
  request.now_unix_ms -= 1000;
  EXPECT_EQ(Code(request), 0) << "inside the 60 s leeway";
  request.now_unix_ms = clock_.NowUnixMs() - 61 * 1000;
  EXPECT_EQ(Code(request, 401), 700024) << "nbf in the future";
}

TEST_F(TokenServiceTest, AnAccessTokenOfThisServiceIsNeverAnAssertion) {
  std::string access_token = AccessToken(Request(app_id_, ClusterToken()));
  // Even with a federated credential naming this service's own issuer and the token's subject.
  ASSERT_TRUE(directory_
                  ->AddFederatedCredential(
                      app_id_, {"self", service_->AccessTokenIssuer(), app_id_, {kResource}, ""})
                  .ok());
  EXPECT_EQ(Code(Request(app_id_, access_token), 401), 70021);
  EXPECT_NE(description_.find("never accepted"), std::string::npos) << description_;
}

TEST_F(TokenServiceTest, GetAndOtherMethodsAreRefused) {
  TokenResponse response = service_->MethodNotAllowed("GET", clock_.NowUnixMs(), "corr-1");
  EXPECT_EQ(response.http_status, 405);
  EXPECT_EQ(response.error_code, 900561);
  json body = json::parse(response.body);
  EXPECT_EQ(body["error"], "invalid_request");
  EXPECT_EQ(body["correlation_id"], "corr-1");
  EXPECT_NE(body["error_description"].get<std::string>().find("GET"), std::string::npos);
}

TEST_F(TokenServiceTest, ValidateAccessTokenRefusesWhatIsNotAnAccessTokenForThisAudience) {
  std::string token = AccessToken(Request(app_id_, ClusterToken()));
  EXPECT_TRUE(service_->ValidateAccessToken(token, kResource, NowS()).ok());
  EXPECT_FALSE(service_->ValidateAccessToken(token, "api://other", NowS()).ok());
  EXPECT_FALSE(service_->ValidateAccessToken(token, kResource, NowS() + 600 + 60).ok());
  EXPECT_TRUE(service_->ValidateAccessToken(token, kResource, NowS() + 600 + 59).ok());
  // A service-account token, signed by the same keys and even aimed at the API, is refused.
  std::string sa = ClusterToken("operator", kResource);
  Result<AccessPrincipal> refused = service_->ValidateAccessToken(sa, kResource, NowS());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_FALSE(service_->ValidateAccessToken("garbage", kResource, NowS()).ok());
}

TEST_F(TokenServiceTest, DiscoveryDocumentsHaveEntrasShape) {
  json config = json::parse(*service_->OpenIdConfiguration(tenant_));
  std::string base = fmt::format("{}/{}", kAuthority, tenant_);
  EXPECT_EQ(config["issuer"], base + "/v2.0");
  EXPECT_EQ(config["token_endpoint"], base + "/oauth2/v2.0/token");
  EXPECT_EQ(config["authorization_endpoint"], base + "/oauth2/v2.0/authorize");
  EXPECT_EQ(config["jwks_uri"], base + "/discovery/v2.0/keys");
  EXPECT_EQ(json::parse(*service_->OpenIdConfiguration())["issuer"], base + "/v2.0");
  EXPECT_EQ(service_->OpenIdConfiguration(NewGuid()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(json::parse(service_->JwksJson())["keys"].size(), 2u);
}

TEST_F(TokenServiceTest, EveryTokenIssuedOrRefusedIsAuditedWithoutTheToken) {
  TokenRequest request = Request(app_id_, ClusterToken());
  request.correlation_id = "corr-42";
  std::string token = AccessToken(request);
  EXPECT_EQ(Code(Request(NewGuid(), ClusterToken()), 400), 700016);
  auto entries = audit_->List({});
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 2u);
  const AuditEntry& issued = (*entries)[1];
  EXPECT_EQ(issued.action, "token.issue");
  EXPECT_EQ(issued.actor, app_id_);
  EXPECT_EQ(issued.result, "ok");
  EXPECT_EQ(issued.correlation_id, "corr-42");
  EXPECT_EQ(issued.source_address, "127.0.0.1");
  EXPECT_NE(issued.detail.find(kOperatorSubject), std::string::npos);
  EXPECT_EQ((*entries)[0].action, "token.refuse");
  EXPECT_EQ((*entries)[0].result, "AADSTS700016");
  for (const AuditEntry& entry : *entries) {
    for (const std::string& field : {entry.detail, entry.target, entry.actor}) {
      EXPECT_EQ(field.find(token.substr(0, 40)), std::string::npos);
      EXPECT_EQ(field.find(request.form["client_assertion"].substr(0, 40)), std::string::npos);
    }
  }
  EXPECT_TRUE(audit_->Verify().ok());
}

TEST_F(TokenServiceTest, ClusterIssuerMintsKubernetesShapedTokensWithinLimits) {
  ParsedJwt parsed = *ParseJwt(ClusterToken());
  json claims = json::parse(parsed.claims_json);
  EXPECT_EQ(parsed.iss, std::string(kAuthority) + "/clusters/east");
  EXPECT_EQ(parsed.sub, kOperatorSubject);
  EXPECT_EQ(parsed.aud, std::vector<std::string>{kDefaultFederatedAudience});
  EXPECT_EQ(parsed.alg, "RS256");
  EXPECT_EQ(claims["kubernetes.io"]["namespace"], "meridian");
  EXPECT_FALSE(claims.contains("meridian_token_use"));
  EXPECT_FALSE(
      cluster_->MintServiceAccountToken("east", "ns", "sa", kDefaultFederatedAudience, 3601).ok());
  EXPECT_FALSE(
      cluster_->MintServiceAccountToken("east", "ns", "sa", kDefaultFederatedAudience, 0).ok());
  EXPECT_FALSE(cluster_->MintServiceAccountToken("east", "n s", "sa").ok());
  EXPECT_FALSE(cluster_->MintServiceAccountToken("", "ns", "sa").ok());
  EXPECT_TRUE(cluster_->Trusts(cluster_->IssuerFor("east")));
  EXPECT_FALSE(cluster_->Trusts(std::string(kAuthority) + "/clusters/"));
  EXPECT_FALSE(cluster_->Trusts(std::string(kAuthority) + "/clusters/east/x"));
  EXPECT_FALSE(cluster_->Trusts(service_->AccessTokenIssuer()));
  json config = json::parse(cluster_->OpenIdConfigurationJson("east"));
  EXPECT_EQ(config["issuer"], cluster_->IssuerFor("east"));
  EXPECT_EQ(config["jwks_uri"], cluster_->IssuerFor("east") + "/openid/v1/jwks");
}

TEST_F(TokenServiceTest, AJobAttemptsClaimFlowsFromTheClusterTokenIntoTheAccessToken) {
  const AttemptRef attempt{"job-7", 2, 41};
  std::string assertion = *cluster_->MintServiceAccountToken(
      "east", "meridian", "operator", kDefaultFederatedAudience, 600, attempt);
  std::string token = AccessToken(Request(app_id_, assertion));
  Result<AccessPrincipal> principal = service_->ValidateAccessToken(token, kResource, NowS());
  ASSERT_TRUE(principal.ok()) << principal.status();
  ASSERT_TRUE(principal->attempt.has_value());
  EXPECT_EQ(*principal->attempt, attempt);
  EXPECT_FALSE(principal->person);
  // Without the claim, none.
  principal = service_->ValidateAccessToken(AccessToken(Request(app_id_, ClusterToken())),
                                            kResource, NowS());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_FALSE(principal->attempt.has_value());
}

TEST_F(TokenServiceTest, AnExternalIssuerCannotNameAJobAttempt) {
  json claims = {{"iss", kExternalIssuer},
                 {"sub", "repo:ml/x"},
                 {"aud", kDefaultFederatedAudience},
                 {"exp", NowS() + 300},
                 {kAttemptClaim, AttemptClaimValue({"job-7", 2, 41})}};
  std::string token = AccessToken(Request(app_id_, *SignJwt(*external_key_, claims.dump())));
  Result<AccessPrincipal> principal = service_->ValidateAccessToken(token, kResource, NowS());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_FALSE(principal->attempt.has_value()) << "only meridian's cluster issuer vouches";
}

TEST_F(TokenServiceTest, APersonsTokenSaysSo) {
  Result<AccessPrincipal> principal = service_->ValidateAccessToken(
      AccessToken(Request(user_id_, UserAssertion())), kResource, NowS());
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_TRUE(principal->person);
  EXPECT_FALSE(principal->attempt.has_value());
}

TEST(AttemptClaim, MalformedClaimsNameNoAttempt) {
  EXPECT_EQ(ReadAttemptClaim(json{{kAttemptClaim, AttemptClaimValue({"j", 1, 2})}}),
            (AttemptRef{"j", 1, 2}));
  for (const json& bad :
       {json{{"job_id", ""}, {"attempt", 1}, {"epoch", 2}},
        json{{"job_id", "j"}, {"attempt", "1"}, {"epoch", 2}},
        json{{"job_id", "j"}, {"attempt", -1}, {"epoch", 2}}, json{{"job_id", "j"}, {"attempt", 1}},
        json{{"job_id", 5}, {"attempt", 1}, {"epoch", 2}}, json("j.1.2")}) {
    EXPECT_FALSE(ReadAttemptClaim(json{{kAttemptClaim, bad}}).has_value()) << bad.dump();
  }
  EXPECT_FALSE(ReadAttemptClaim(json::object()).has_value());
  EXPECT_FALSE(ReadAttemptClaim(json::array()).has_value());
}

}  // namespace
}  // namespace meridian::identity
