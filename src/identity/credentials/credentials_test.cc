// Tests of the token-endpoint client, the credentials and the token cache against a fake
// token endpoint over real TLS on 127.0.0.1.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "identity/credentials/caching_credential.h"
#include "identity/credentials/credential.h"
#include "identity/credentials/default_credential.h"
#include "identity/credentials/fake_token_endpoint.h"
#include "identity/credentials/token_endpoint.h"
#include "identity/credentials/workload_identity_credential.h"

namespace meridian::identity::credentials {
namespace {

using ::testing::ElementsAre;
using testing::EntraError;
using testing::FakeHttpsServer;
using ::testing::HasSubstr;
using testing::JsonResponse;
using testing::ParseForm;
using testing::TokenResponse;

constexpr char kTenant[] = "72f988bf-86f1-41af-91ab-2d7cd011db47";
constexpr char kClientId[] = "11111111-2222-3333-4444-555555555555";
constexpr char kScope[] = "api://meridian/.default";
const std::string kTokenPath = std::string("/") + kTenant + "/oauth2/v2.0/token";

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_file_ = dir_.path() + "/federated-token";
    ASSERT_TRUE(base::WriteFileAtomic(token_file_, "federated-token-1\n", 0600).ok());
  }

  TokenEndpointOptions Endpoint() {
    TokenEndpointOptions options;
    options.authority_host = server_.base_url() + "/";
    options.tenant_id = kTenant;
    options.http.ca_file = server_.ca_file();
    options.clock = &clock_;
    options.sleep = [this](int64_t ms) {
      std::lock_guard lock(mu_);
      sleeps_ms_.push_back(ms);
    };
    options.jitter_seed = 7;
    return options;
  }

  std::shared_ptr<WorkloadIdentityCredential> Workload(TokenEndpointOptions endpoint) {
    Result<std::unique_ptr<WorkloadIdentityCredential>> credential =
        WorkloadIdentityCredential::Create({.client_id = kClientId,
                                            .federated_token_file = token_file_,
                                            .endpoint = std::move(endpoint)});
    EXPECT_TRUE(credential.ok()) << credential.status();
    return credential.ok() ? std::move(*credential) : nullptr;
  }
  std::shared_ptr<WorkloadIdentityCredential> Workload() { return Workload(Endpoint()); }

  std::shared_ptr<CachingCredential> Cached() {
    return std::make_shared<CachingCredential>(Workload(), CachingOptions{.clock = &clock_});
  }

  std::vector<int64_t> Sleeps() {
    std::lock_guard lock(mu_);
    return sleeps_ms_;
  }

  int64_t NowS() const { return clock_.NowUnixMs() / 1000; }

  testing::TempDir dir_;
  FakeHttpsServer server_;
  base::FakeClock clock_;
  std::string token_file_;
  std::mutex mu_;
  std::vector<int64_t> sleeps_ms_;  // guarded by mu_
};

TEST_F(CredentialsTest, ExchangeSendsEntraFormAndParsesTheToken) {
  server_.Enqueue(kTokenPath, TokenResponse("access-1", 3600, 1800));
  Result<AccessToken> token = Workload()->GetToken(kScope);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->token, "access-1");
  EXPECT_EQ(token->expires_on_unix_s, NowS() + 3600);
  EXPECT_EQ(token->refresh_on_unix_s, NowS() + 1800);

  const std::vector<net::HttpRequest> requests = server_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, kTokenPath);
  EXPECT_EQ(requests[0].Header("content-type"), "application/x-www-form-urlencoded");
  const auto form = ParseForm(requests[0].body);
  EXPECT_EQ(form.at("grant_type"), "client_credentials");
  EXPECT_EQ(form.at("client_id"), kClientId);
  EXPECT_EQ(form.at("scope"), kScope);
  EXPECT_EQ(form.at("client_assertion_type"),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
  EXPECT_EQ(form.at("client_assertion"), "federated-token-1");
}

TEST_F(CredentialsTest, ExpiresInAsStringIsAccepted) {
  server_.Enqueue(kTokenPath, JsonResponse(200, R"({"token_type":"Bearer","expires_in":"600",
                                                   "access_token":"a"})"));
  Result<AccessToken> token = Workload()->GetToken(kScope);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->expires_on_unix_s, NowS() + 600);
}

TEST_F(CredentialsTest, MalformedSuccessBodyIsAnError) {
  server_.Enqueue(kTokenPath, JsonResponse(200, R"({"token_type":"Bearer","expires_in":600})"));
  Result<AccessToken> token = Workload()->GetToken(kScope);
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr("no access_token"));
}

TEST_F(CredentialsTest, RefreshOnFollowsRefreshInElseFiveMinutesElseHalfLife) {
  EXPECT_EQ(RefreshOnUnixS(1000, 3600, 1800), 1000 + 1800);
  EXPECT_EQ(RefreshOnUnixS(1000, 3600, std::nullopt), 1000 + 3600 - 300);
  EXPECT_EQ(RefreshOnUnixS(1000, 3600, 7200), 1000 + 3600 - 300);  // refresh_in past expiry
  EXPECT_EQ(RefreshOnUnixS(1000, 120, std::nullopt), 1000 + 60);   // too short for 5 min
}

TEST_F(CredentialsTest, EntraErrorIsSurfacedWithItsAadstsTextAndNotRetried) {
  server_.Enqueue(kTokenPath,
                  EntraError(400, "invalid_client",
                             "AADSTS700016: Application with identifier 'x' was not found in "
                             "the directory 'meridian'.",
                             700016));
  Result<AccessToken> token = Workload()->GetToken(kScope);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(token.status().message(), HasSubstr("invalid_client"));
  EXPECT_THAT(token.status().message(),
              HasSubstr("AADSTS700016: Application with identifier 'x' was not found"));
  EXPECT_THAT(token.status().message(), HasSubstr(kTokenPath));
  EXPECT_EQ(server_.RequestCount(kTokenPath), 1);
  EXPECT_TRUE(Sleeps().empty());
}

TEST_F(CredentialsTest, PlainHttpAuthorityIsRefused) {
  TokenEndpointOptions endpoint = Endpoint();
  endpoint.authority_host = "http://127.0.0.1:1/";
  Result<std::unique_ptr<WorkloadIdentityCredential>> credential =
      WorkloadIdentityCredential::Create(
          {.client_id = kClientId, .federated_token_file = token_file_, .endpoint = endpoint});
  ASSERT_FALSE(credential.ok());
  EXPECT_EQ(credential.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(credential.status().message(), HasSubstr("https"));

  const EnvLookup env = [&](const std::string& name) -> std::string {
    if (name == kEnvClientId) return kClientId;
    if (name == kEnvTenantId) return kTenant;
    if (name == kEnvFederatedTokenFile) return token_file_;
    if (name == kEnvAuthorityHost) return "http://login.example.test/";
    return "";
  };
  EXPECT_EQ(WorkloadIdentityCredential::FromEnvironment(env, Endpoint()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server_.requests().size(), 0u);
}

TEST_F(CredentialsTest, ServerErrorIsRetriedUntilSuccess) {
  server_.Enqueue(kTokenPath, JsonResponse(503, "{}"));
  server_.Enqueue(kTokenPath, JsonResponse(500, "{}"));
  server_.Enqueue(kTokenPath, TokenResponse("after-retries", 3600));
  Result<AccessToken> token = Workload()->GetToken(kScope);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->token, "after-retries");
  EXPECT_EQ(server_.RequestCount(kTokenPath), 3);
  const std::vector<int64_t> sleeps = Sleeps();
  ASSERT_EQ(sleeps.size(), 2u);
  // Exponential backoff, half of it jitter: 500 ms then 1000 ms nominal.
  EXPECT_GE(sleeps[0], 250);
  EXPECT_LE(sleeps[0], 500);
  EXPECT_GE(sleeps[1], 500);
  EXPECT_LE(sleeps[1], 1000);
}

TEST_F(CredentialsTest, RetryAfterIsHonoured) {
  net::HttpResponse throttled = EntraError(429, "temporarily_unavailable", "slow down", 0);
  throttled.headers = {{"retry-after", "7"}};
  server_.Enqueue(kTokenPath, throttled);
  server_.Enqueue(kTokenPath, TokenResponse("after-throttle", 3600));
  Result<AccessToken> token = Workload()->GetToken(kScope);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_THAT(Sleeps(), ElementsAre(7000));
}

TEST_F(CredentialsTest, ServerErrorsExhaustTheAttempts) {
  server_.SetDefault(kTokenPath, JsonResponse(503, R"({"error":"temporarily_unavailable"})"));
  TokenEndpointOptions endpoint = Endpoint();
  endpoint.retry.max_attempts = 3;
  Result<AccessToken> token = Workload(endpoint)->GetToken(kScope);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(token.status().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(server_.RequestCount(kTokenPath), 3);
}

TEST_F(CredentialsTest, ClientErrorIsNotRetried) {
  server_.SetDefault(kTokenPath,
                     EntraError(400, "invalid_request",
                                "AADSTS70021: No matching federated identity record found for "
                                "presented assertion.",
                                70021));
  Result<AccessToken> token = Workload()->GetToken(kScope);
  ASSERT_FALSE(token.ok());
  EXPECT_THAT(token.status().message(), HasSubstr("AADSTS70021"));
  EXPECT_EQ(server_.RequestCount(kTokenPath), 1);
  EXPECT_TRUE(Sleeps().empty());
}

TEST_F(CredentialsTest, ConnectionFailureIsRetriedThenUnavailable) {
  TokenEndpointOptions endpoint = Endpoint();
  endpoint.authority_host = "https://127.0.0.1:1";  // nothing listens on port 1
  endpoint.retry.max_attempts = 3;
  Result<AccessToken> token = Workload(endpoint)->GetToken(kScope);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Sleeps().size(), 2u);
}

TEST_F(CredentialsTest, WorkloadIdentityRereadsARewrittenTokenFile) {
  server_.SetDefault(kTokenPath, TokenResponse("access", 3600));
  std::shared_ptr<WorkloadIdentityCredential> credential = Workload();
  ASSERT_TRUE(credential->GetToken(kScope).ok());
  ASSERT_TRUE(base::WriteFileAtomic(token_file_, "federated-token-2", 0600).ok());
  ASSERT_TRUE(credential->GetToken(kScope).ok());
  const std::vector<net::HttpRequest> requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(ParseForm(requests[0].body).at("client_assertion"), "federated-token-1");
  EXPECT_EQ(ParseForm(requests[1].body).at("client_assertion"), "federated-token-2");
}

TEST_F(CredentialsTest, MissingTokenFileNamesTheFile) {
  ASSERT_TRUE(base::RemoveAll(token_file_).ok());
  Result<AccessToken> token = Workload()->GetToken(kScope);
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(token.status().message(), HasSubstr(token_file_));
  EXPECT_EQ(server_.requests().size(), 0u);
}

TEST_F(CredentialsTest, CachedTokenNeedsNoSecondRequest) {
  server_.SetDefault(kTokenPath, TokenResponse("cached", 3600));
  std::shared_ptr<CachingCredential> credential = Cached();
  ASSERT_EQ(credential->GetToken(kScope)->token, "cached");
  ASSERT_EQ(credential->GetToken(kScope)->token, "cached");
  EXPECT_EQ(server_.RequestCount(kTokenPath), 1);
  // Another scope is another cache entry.
  ASSERT_TRUE(credential->GetToken("https://storage.azure.com/.default").ok());
  EXPECT_EQ(server_.RequestCount(kTokenPath), 2);
}

TEST_F(CredentialsTest, TokenIsRefreshedAtRefreshOn) {
  server_.Enqueue(kTokenPath, TokenResponse("first", 3600, 1800));
  server_.Enqueue(kTokenPath, TokenResponse("second", 3600, 1800));
  std::shared_ptr<CachingCredential> credential = Cached();
  ASSERT_EQ(credential->GetToken(kScope)->token, "first");
  clock_.AdvanceMs(1799 * 1000);
  EXPECT_EQ(credential->GetToken(kScope)->token, "first");
  EXPECT_EQ(server_.RequestCount(kTokenPath), 1);
  clock_.AdvanceMs(2 * 1000);
  EXPECT_EQ(credential->GetToken(kScope)->token, "second");
  EXPECT_EQ(server_.RequestCount(kTokenPath), 2);
}

TEST_F(CredentialsTest, WithoutRefreshInTheTokenIsRefreshedFiveMinutesBeforeExpiry) {
  server_.Enqueue(kTokenPath, TokenResponse("first", 3600));
  server_.Enqueue(kTokenPath, TokenResponse("second", 3600));
  std::shared_ptr<CachingCredential> credential = Cached();
  ASSERT_EQ(credential->GetToken(kScope)->token, "first");
  clock_.AdvanceMs((3600 - 300 - 1) * 1000);
  EXPECT_EQ(credential->GetToken(kScope)->token, "first");
  clock_.AdvanceMs(2 * 1000);
  EXPECT_EQ(credential->GetToken(kScope)->token, "second");
}

TEST_F(CredentialsTest, ConcurrentCallersShareOneRequest) {
  server_.SetDefault(kTokenPath, TokenResponse("shared", 3600));
  server_.SetDelayMs(300);  // keeps the first request in flight while the others arrive
  std::shared_ptr<CachingCredential> credential = Cached();
  constexpr int kCallers = 20;
  std::atomic<int> ok_count{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] {
      Result<AccessToken> token = credential->GetToken(kScope);
      if (token.ok() && token->token == "shared") ++ok_count;
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(ok_count.load(), kCallers);
  EXPECT_EQ(server_.RequestCount(kTokenPath), 1);
}

TEST_F(CredentialsTest, ConcurrentCallersShareOneFailure) {
  server_.SetDefault(kTokenPath, EntraError(401, "invalid_client", "AADSTS700027: bad", 700027));
  server_.SetDelayMs(300);
  std::shared_ptr<CachingCredential> credential = Cached();
  std::atomic<int> refused{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 10; ++i) {
    callers.emplace_back([&] {
      Result<AccessToken> token = credential->GetToken(kScope);
      if (!token.ok() &&
          std::string(token.status().message()).find("AADSTS700027") != std::string::npos) {
        ++refused;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(refused.load(), 10);
  // Callers that arrived while the first request was in flight took its answer.
  EXPECT_LT(server_.RequestCount(kTokenPath), 10);
}

TEST_F(CredentialsTest, FailedRefreshKeepsTheStillValidToken) {
  server_.Enqueue(kTokenPath, TokenResponse("valid", 3600, 1800));
  server_.SetDefault(kTokenPath, JsonResponse(503, "{}"));
  TokenEndpointOptions endpoint = Endpoint();
  endpoint.retry.max_attempts = 2;
  auto credential =
      std::make_shared<CachingCredential>(Workload(endpoint), CachingOptions{.clock = &clock_});
  ASSERT_EQ(credential->GetToken(kScope)->token, "valid");
  clock_.AdvanceMs(1900 * 1000);  // past refresh_on, well before expiry
  Result<AccessToken> kept = credential->GetToken(kScope);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->token, "valid");
  EXPECT_EQ(server_.RequestCount(kTokenPath), 3);  // 1 + the refresh's 2 attempts
  // The failed refresh is not tried again on every call.
  ASSERT_TRUE(credential->GetToken(kScope).ok());
  EXPECT_EQ(server_.RequestCount(kTokenPath), 3);
  // Once the token has expired, the failure reaches the caller.
  clock_.AdvanceMs(1700 * 1000);
  Result<AccessToken> expired = credential->GetToken(kScope);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(CredentialsTest, ChainReturnsTheFirstTokenAndListsEveryFailure) {
  auto failing = std::make_shared<CachingCredential>(Workload(), CachingOptions{.clock = &clock_});
  ASSERT_TRUE(base::RemoveAll(token_file_).ok());
  auto fixed = std::make_shared<StaticTokenCredential>(
      AccessToken{.token = "static", .expires_on_unix_s = NowS() + 600});
  ChainedTokenCredential chain({failing, fixed}, {"workload identity", "static"});
  Result<AccessToken> token = chain.GetToken(kScope);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->token, "static");

  ChainedTokenCredential all_fail({failing, failing}, {"first", "second"});
  Result<AccessToken> none = all_fail.GetToken(kScope);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(none.status().message(), HasSubstr("first: cannot read the federated token file"));
  EXPECT_THAT(none.status().message(), HasSubstr("second: "));
}

TEST_F(CredentialsTest, DefaultCredentialPicksWorkloadIdentityFromTheEnvironment) {
  server_.SetDefault(kTokenPath, TokenResponse("from-env", 3600));
  DefaultCredentialOptions options;
  options.env = [&](const std::string& name) -> std::string {
    if (name == kEnvClientId) return kClientId;
    if (name == kEnvTenantId) return kTenant;
    if (name == kEnvFederatedTokenFile) return token_file_;
    if (name == kEnvAuthorityHost) return server_.base_url() + "/";
    return "";
  };
  options.endpoint = Endpoint();
  Result<std::shared_ptr<TokenCredential>> credential = DefaultCredentialFromEnvironment(options);
  ASSERT_TRUE(credential.ok()) << credential.status();
  EXPECT_EQ((*credential)->GetToken(kScope)->token, "from-env");
  EXPECT_EQ((*credential)->GetToken(kScope)->token, "from-env");
  EXPECT_EQ(server_.RequestCount(kTokenPath), 1);  // cached
}

TEST_F(CredentialsTest, DefaultCredentialSaysWhatItLookedFor) {
  DefaultCredentialOptions options;
  options.env = [](const std::string& name) -> std::string {
    return name == kEnvClientId ? kClientId : "";
  };
  Result<std::shared_ptr<TokenCredential>> credential = DefaultCredentialFromEnvironment(options);
  ASSERT_FALSE(credential.ok());
  EXPECT_EQ(credential.status().code(), absl::StatusCode::kFailedPrecondition);
  for (const char* name : {kEnvClientId, kEnvTenantId, kEnvFederatedTokenFile, kEnvPrivateKeyFile,
                           kEnvClientCertificatePath}) {
    EXPECT_THAT(credential.status().message(), HasSubstr(name));
  }
}

TEST_F(CredentialsTest, AsTokenSourceYieldsTheBearerToken) {
  auto fixed = std::make_shared<StaticTokenCredential>(
      AccessToken{.token = "bearer-value", .expires_on_unix_s = NowS() + 600});
  auto source = AsTokenSource(fixed);
  EXPECT_EQ(*source(kScope), "bearer-value");
}

}  // namespace
}  // namespace meridian::identity::credentials
