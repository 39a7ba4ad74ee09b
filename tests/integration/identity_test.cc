// Workload identity end to end, against the real `meridian` binary over HTTPS: the token
// endpoint's security checklist (each a real request, each refused with Entra's code), RBAC on
// the API, key rotation, the audit chain catching an edited and a deleted row, tokens rotating
// under running operators and jobs, and Microsoft's own client (@azure/identity).
#include <openssl/hmac.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "base/files.h"
#include "fmt/format.h"
#include "gtest/gtest.h"
#include "identity/jwt.h"
#include "tests/integration/harness.h"

namespace meridian::itest {
namespace {

using nlohmann::json;

constexpr char kJwtBearer[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
constexpr char kScope[] = "api://meridian/.default";

std::string FormEncode(const std::map<std::string, std::string>& form) {
  std::string body;
  for (const auto& [name, value] : form) {
    if (!body.empty()) body += '&';
    body += net::PercentEncode(name) + "=" + net::PercentEncode(value);
  }
  return body;
}

int64_t NowS() { return std::time(nullptr); }

std::string ReadText(const std::string& path) {
  Result<std::string> text = base::ReadFile(path);
  return text.ok() ? *text : "";
}

// A JWT from header and claims, signed with HMAC-SHA256 over `secret` (to forge one).
std::string Hs256Jwt(const json& header, const json& claims, const std::string& secret) {
  std::string input =
      identity::Base64UrlEncode(header.dump()) + "." + identity::Base64UrlEncode(claims.dump());
  unsigned char mac[32];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len);
  return input + "." +
         identity::Base64UrlEncode(std::string(reinterpret_cast<char*>(mac), mac_len));
}

// The payload of a JWT (not verified: the test reads its own tokens).
json Claims(const std::string& token) {
  size_t first = token.find('.');
  size_t second = token.find('.', first + 1);
  Result<std::string> payload =
      identity::Base64UrlDecode(token.substr(first + 1, second - first - 1));
  return payload.ok() ? json::parse(*payload, nullptr, false) : json();
}
json Header(const std::string& token) {
  Result<std::string> header = identity::Base64UrlDecode(token.substr(0, token.find('.')));
  return header.ok() ? json::parse(*header, nullptr, false) : json();
}

// Changes state.db of a stopped server with the sqlite3 program.
void Sql(const std::string& db, const std::string& statement) {
  CommandResult result = RunProcess({"/usr/bin/sqlite3", db, statement});
  ASSERT_EQ(result.exit_code, 0) << result.Describe();
}

class IdentityTest : public ::testing::Test {
 protected:
  // The harness's server, or one with `flags` on a free port (the harness's server takes
  // none of these; such a server is not restarted).
  void StartServer(const std::vector<std::string>& flags = {}) {
    if (flags.empty()) {
      Status started = p_.StartServer();
      ASSERT_TRUE(started.ok()) << started;
    } else {
      std::string ready = p_.home() + "/run/identity-server-ready";
      std::vector<std::string> args = {"--home",      p_.home(),      "server", "--listen",
                                       "127.0.0.1:0", "--ready-file", ready};
      args.insert(args.end(), flags.begin(), flags.end());
      ASSERT_TRUE(p_.StartBackground("flagged-server", args).ok());
      ASSERT_TRUE(Eventually([&] { return !ReadText(ready).empty(); },
                             std::chrono::milliseconds(kStartDeadlineMs)))
          << p_.LogTail("flagged-server");
      ASSERT_TRUE(p_.AdoptServerFromConfig().ok());
    }
    json discovery = Public("GET", "/.well-known/openid-configuration");
    token_endpoint_ = discovery.value("token_endpoint", "");
    tenant_ = discovery.value("issuer", "");
    ASSERT_FALSE(token_endpoint_.empty()) << discovery.dump();
  }

  // An unauthenticated request; the body parsed as JSON.
  json Public(const std::string& method, const std::string& path, int* status = nullptr) {
    net::HttpClient client = p_.Client();
    net::HttpClientRequest request{method, p_.url() + path, {}, "", 0};
    Result<net::HttpResponse> response = client.Send(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return json();
    if (status != nullptr) *status = response->status;
    return json::parse(response->body, nullptr, false);
  }

  // A request with `token` as bearer ("" sends none).
  net::HttpResponse Api(const std::string& method, const std::string& path,
                        const std::string& token, const json& body = json()) {
    net::HttpClient client = p_.Client();
    net::HttpClientRequest request{method, p_.url() + path, {}, "", 0};
    if (!token.empty()) request.headers.push_back({"authorization", "Bearer " + token});
    if (!body.is_null()) {
      request.headers.push_back({"content-type", "application/json"});
      request.body = body.dump();
    }
    Result<net::HttpResponse> response = client.Send(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : net::HttpResponse{599, {}, "", ""};
  }
  json ApiJson(const std::string& method, const std::string& path, const json& body = json()) {
    net::HttpResponse response = Api(method, path, p_.AccessToken(), body);
    EXPECT_LT(response.status, 300) << method << " " << path << ": " << response.body;
    return json::parse(response.body, nullptr, false);
  }

  // POSTs the form to the token endpoint; the answer's status and body.
  std::pair<int, json> Exchange(const std::map<std::string, std::string>& form,
                                const std::string& method = "POST") {
    net::HttpClient client = p_.Client();
    net::HttpClientRequest request{method, token_endpoint_, {}, "", 0};
    if (method == "POST") {
      request.headers.push_back({"content-type", "application/x-www-form-urlencoded"});
      request.body = FormEncode(form);
    }
    Result<net::HttpResponse> response = client.Send(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return {0, json()};
    return {response->status, json::parse(response->body, nullptr, false)};
  }
  std::pair<int, json> ExchangeAssertion(const std::string& client_id,
                                         const std::string& assertion) {
    return Exchange({{"grant_type", "client_credentials"},
                     {"client_id", client_id},
                     {"scope", kScope},
                     {"client_assertion_type", kJwtBearer},
                     {"client_assertion", assertion}});
  }
  // The AADSTS code of a refusal with `status`; 0 when it was not refused that way.
  static int Code(const std::pair<int, json>& answer, int status) {
    EXPECT_EQ(answer.first, status) << answer.second.dump();
    const json& codes = answer.second.value("error_codes", json::array());
    EXPECT_EQ(answer.second.value("error_description", "").rfind("AADSTS", 0), 0u)
        << answer.second.dump();
    EXPECT_TRUE(answer.second.contains("correlation_id") && answer.second.contains("trace_id"))
        << answer.second.dump();
    return codes.empty() ? 0 : codes[0].get<int>();
  }

  // An app (or user) with a fresh ES256 key registered for private_key_jwt.
  struct KeyedApp {
    std::string client_id;
    std::shared_ptr<const identity::SigningKey> key;
  };
  KeyedApp MakeKeyedApp(const std::string& name, const std::string& user_subject = "") {
    json body = {{"display_name", name}};
    if (!user_subject.empty()) {
      body["kind"] = "user";
      body["user_subject"] = user_subject;
    }
    json app = ApiJson("POST", "/api/v1/identity/apps", body);
    KeyedApp out{app.value("app_id", ""),
                 *identity::SigningKey::Generate(identity::JwtAlg::kES256)};
    ApiJson("POST", fmt::format("/api/v1/identity/apps/{}/keys", out.client_id),
            {{"public_pem", out.key->public_key()->PublicPem()}});
    return out;
  }
  json AssertionClaims(const KeyedApp& app) {
    int64_t now = NowS();
    return {{"iss", app.client_id},
            {"sub", app.client_id},
            {"aud", token_endpoint_},
            {"iat", now},
            {"nbf", now},
            {"exp", now + 300},
            {"jti", fmt::format("j{}", ++jti_)}};
  }
  std::string Sign(const KeyedApp& app, const json& claims) {
    return *identity::SignJwt(*app.key, claims.dump(), "JWT");
  }
  // Signs with any header at all (SignJwt itself refuses the hostile ones).
  static std::string SignWithHeader(const KeyedApp& app, const json& header, const json& claims) {
    std::string input =
        identity::Base64UrlEncode(header.dump()) + "." + identity::Base64UrlEncode(claims.dump());
    return input + "." + identity::Base64UrlEncode(*app.key->Sign(input));
  }
  // An access token for the app, by private_key_jwt.
  std::string TokenFor(const KeyedApp& app) {
    auto answer = ExchangeAssertion(app.client_id, Sign(app, AssertionClaims(app)));
    EXPECT_EQ(answer.first, 200) << answer.second.dump();
    return answer.second.value("access_token", "");
  }
  void Assign(const std::string& role, const std::string& principal, const std::string& scope) {
    ApiJson("POST", "/api/v1/identity/role-assignments",
            {{"role", role}, {"principal", principal}, {"scope", scope}});
  }
  json App(const std::string& display_name) {
    json apps = ApiJson("GET", "/api/v1/identity/apps");
    for (const json& app : apps["items"]) {
      if (app.value("display_name", "") == display_name) return app;
    }
    return json();
  }
  // A workload token of LOCAL resource `resource`, from its TokenRequest API (as admin),
  // naming the job attempt `attempt` ({job_id, attempt, epoch}) when given.
  std::string WorkloadToken(const std::string& resource, const json& attempt = json()) {
    json body = {{"service_account", "workload"}};
    if (attempt.is_object()) body.update(attempt);
    return ApiJson("POST", fmt::format("/api/v1/operators/{}/tokens", resource), body)
        .value("token", "");
  }
  // {job_id, attempt, epoch} of the job's newest attempt.
  json NewestAttempt(const std::string& job_id) {
    json job = p_.Job(job_id);
    if (!job.contains("attempts") || job["attempts"].empty()) return json();
    const json& newest = job["attempts"].back();
    return {{"job_id", job_id}, {"attempt", newest["number"]}, {"epoch", newest["epoch"]}};
  }
  // Submits `config` as the admin and waits until it runs; its id.
  std::string SubmitRunning(const json& config) {
    json submitted = ApiJson("POST", "/api/v1/jobs", {{"config", config}});
    std::string id = submitted.value("id", "");
    EXPECT_TRUE(Eventually([&] { return p_.Job(id).value("state", "") == "RUNNING"; }))
        << p_.Job(id).dump();
    return id;
  }
  // The access token a workload gets for its federated token.
  std::string ExchangeWorkloadToken(const std::string& resource, const std::string& token) {
    auto answer = ExchangeAssertion(App("workloads-" + resource).value("app_id", ""), token);
    EXPECT_EQ(answer.first, 200) << answer.second.dump();
    return answer.second.value("access_token", "");
  }

  Platform p_;
  std::string token_endpoint_;
  std::string tenant_;
  int jti_ = 0;
};

TEST_F(IdentityTest, PrivateKeyJwtChecklistEachRefusedWithEntrasCode) {
  StartServer();
  KeyedApp app = MakeKeyedApp("checklist");
  ASSERT_FALSE(TokenFor(app).empty()) << "a well-formed assertion is accepted";
  const json header = {{"alg", "ES256"}, {"typ", "JWT"}, {"kid", app.key->kid()}};
  const std::string good = Sign(app, AssertionClaims(app));

  // alg none, and HS256 keyed with the app's own public key.
  std::string none =
      identity::Base64UrlEncode(json{{"alg", "none"}, {"kid", app.key->kid()}}.dump()) + "." +
      identity::Base64UrlEncode(AssertionClaims(app).dump()) + ".";
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, none), 401), 700027) << "alg none";
  json hs_header = header;
  hs_header["alg"] = "HS256";
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, Hs256Jwt(hs_header, AssertionClaims(app),
                                                           app.key->public_key()->PublicPem())),
                 401),
            700027)
      << "HS256 with the public key";
  // Tampered payload (another subject's claims under the original signature), tampered
  // signature.
  json other = AssertionClaims(app);
  other["exp"] = NowS() + 3000;
  std::string tampered_payload = good.substr(0, good.find('.') + 1) +
                                 identity::Base64UrlEncode(other.dump()) +
                                 good.substr(good.rfind('.'));
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, tampered_payload), 401), 700027);
  std::string tampered_signature = good;
  tampered_signature[tampered_signature.size() - 5] =
      tampered_signature[tampered_signature.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, tampered_signature), 401), 700027);
  // Unknown kid (a key never registered), missing kid.
  KeyedApp stranger{app.client_id, *identity::SigningKey::Generate(identity::JwtAlg::kES256)};
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, Sign(stranger, AssertionClaims(app))), 401),
            700027);
  std::string no_kid = identity::Base64UrlEncode(json{{"alg", "ES256"}, {"typ", "JWT"}}.dump()) +
                       good.substr(good.find('.'));
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, no_kid), 401), 700027);
  // Headers that would point the verifier at attacker keys, and unknown critical extensions:
  // refused before any key is looked at.
  for (const json& extra : {json{{"jku", "https://attacker.example/keys"}},
                            json{{"x5u", "https://attacker.example/cert"}},
                            json{{"crit", {"exp-unknown"}}, {"exp-unknown", 1}}}) {
    json hostile = header;
    hostile.update(extra);
    EXPECT_EQ(
        Code(ExchangeAssertion(app.client_id, SignWithHeader(app, hostile, AssertionClaims(app))),
             400),
        50027)
        << extra.dump();
  }
  EXPECT_EQ(
      ExchangeAssertion(app.client_id, SignWithHeader(app, header, AssertionClaims(app))).first,
      200)
      << "the same header without them is fine";
  // Time: expired, not yet valid, and the 60 s leeway on either side.
  auto with_times = [&](int64_t nbf_offset, int64_t exp_offset) {
    json claims = AssertionClaims(app);
    claims["nbf"] = NowS() + nbf_offset;
    claims["iat"] = NowS() + std::min<int64_t>(nbf_offset, 0);
    claims["exp"] = NowS() + exp_offset;
    return Sign(app, claims);
  };
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, with_times(-600, -120)), 401), 700024);
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, with_times(120, 600)), 401), 700024);
  EXPECT_EQ(ExchangeAssertion(app.client_id, with_times(-600, -20)).first, 200)
      << "expired 20 s ago: within the leeway";
  EXPECT_EQ(ExchangeAssertion(app.client_id, with_times(20, 600)).first, 200)
      << "valid from 20 s from now: within the leeway";
  // Audience: wrong, missing.
  json wrong_aud = AssertionClaims(app);
  wrong_aud["aud"] = "https://login.microsoftonline.com/elsewhere/oauth2/v2.0/token";
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, Sign(app, wrong_aud)), 401), 700027);
  json no_aud = AssertionClaims(app);
  no_aud.erase("aud");
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, Sign(app, no_aud)), 401), 700027);
  // Oversized.
  json big = AssertionClaims(app);
  big["padding"] = std::string(20'000, 'x');
  EXPECT_EQ(Code(ExchangeAssertion(app.client_id, SignWithHeader(app, header, big)), 400), 50027);
  // The request itself: grant type, no assertion, no scope, GET.
  auto answer = Exchange({{"grant_type", "password"},
                          {"client_id", app.client_id},
                          {"scope", kScope},
                          {"client_assertion_type", kJwtBearer},
                          {"client_assertion", good}});
  EXPECT_EQ(answer.second.value("error", ""), "unsupported_grant_type");
  EXPECT_EQ(Code(answer, 400), 70003);
  EXPECT_EQ(Code(Exchange({{"grant_type", "client_credentials"},
                           {"client_id", app.client_id},
                           {"scope", kScope}}),
                 401),
            7000218);
  EXPECT_EQ(Code(Exchange({{"grant_type", "client_credentials"},
                           {"client_id", app.client_id},
                           {"client_assertion_type", kJwtBearer},
                           {"client_assertion", good}}),
                 400),
            900144);
  EXPECT_EQ(Code(Exchange({}, "GET"), 405), 900561);
  EXPECT_EQ(Code(ExchangeAssertion("00000000-0000-0000-0000-000000000000", good), 400), 700016);
}

TEST_F(IdentityTest, FederatedTokensMustMatchACredentialExactly) {
  StartServer();
  ASSERT_TRUE(p_.CreateLocalResource("east", "eastus").ok());
  ASSERT_TRUE(p_.CreateLocalResource("west", "westus").ok());
  json east = App("workloads-east");
  json west = App("workloads-west");
  ASSERT_TRUE(east.is_object() && west.is_object());
  const std::string east_token = WorkloadToken("east");
  auto ok = ExchangeAssertion(east["app_id"], east_token);
  ASSERT_EQ(ok.first, 200) << ok.second.dump();
  EXPECT_EQ(ok.second.value("token_type", ""), "Bearer");
  for (const char* field : {"expires_in", "ext_expires_in", "refresh_in", "access_token"}) {
    EXPECT_TRUE(ok.second.contains(field)) << field;
  }
  // Cluster east's token for the app that trusts cluster west only.
  EXPECT_EQ(Code(ExchangeAssertion(west["app_id"], east_token), 401), 70021);
  // An app whose credential differs only by a trailing slash on the issuer, or by case in
  // the subject.
  KeyedApp spare = MakeKeyedApp("near-misses");
  std::string issuer = Claims(east_token).value("iss", "");
  ApiJson("POST", fmt::format("/api/v1/identity/apps/{}/federated-credentials", spare.client_id),
          {{"name", "slash"},
           {"issuer", issuer + "/"},
           {"subject", "system:serviceaccount:meridian:workload"},
           {"audiences", {"api://AzureADTokenExchange"}}});
  ApiJson("POST", fmt::format("/api/v1/identity/apps/{}/federated-credentials", spare.client_id),
          {{"name", "case"},
           {"issuer", issuer},
           {"subject", "system:serviceaccount:meridian:Workload"},
           {"audiences", {"api://AzureADTokenExchange"}}});
  EXPECT_EQ(Code(ExchangeAssertion(spare.client_id, east_token), 401), 70021);
  // A token signed by another issuer's key (this test's) claiming to be cluster east.
  json forged = Claims(east_token);
  EXPECT_EQ(Code(ExchangeAssertion(east["app_id"], Sign(spare, forged)), 401), 700027);
  // This service's own access token is never an assertion.
  EXPECT_EQ(Code(ExchangeAssertion(east["app_id"], ok.second.value("access_token", "")), 401),
            70021);
}

TEST_F(IdentityTest, RolesDecideWhatEachCallerMayDo) {
  StartServer();
  ASSERT_TRUE(p_.CreateLocalResource("east", "eastus").ok());
  ASSERT_TRUE(p_.CreateLocalResource("west", "westus").ok());
  // No token, a bad token: 401 with the API's error shape.
  net::HttpResponse anonymous = Api("GET", "/api/v1/jobs", "");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(json::parse(anonymous.body).value("code", ""), "UNAUTHENTICATED");
  EXPECT_EQ(Api("GET", "/api/v1/jobs", "not-a-token").status, 401);
  EXPECT_EQ(Api("POST", "/api/v1/clouds", "", {{"name", "x"}}).status, 401);

  KeyedApp viewer = MakeKeyedApp("viewer", "viewer@example.com");
  KeyedApp alice = MakeKeyedApp("alice", "alice@example.com");
  KeyedApp bob = MakeKeyedApp("bob", "bob@example.com");
  Assign("Viewer", "viewer@example.com", "/");
  Assign("Developer", "alice@example.com", "/");
  Assign("Developer", "bob@example.com", "/");
  const json job = {{"config",
                     {{"name", "mine"},
                      {"entrypoint", "sleep 600"},
                      {"compute_config", {{"cloud_resource", "east"}}}}}};
  std::string viewer_token = TokenFor(viewer);
  EXPECT_EQ(Api("POST", "/api/v1/jobs", viewer_token, job).status, 403) << "a Viewer cannot submit";
  EXPECT_EQ(Api("GET", "/api/v1/jobs", viewer_token).status, 200);
  EXPECT_EQ(Api("POST", "/api/v1/clouds", viewer_token, {{"name", "x"}}).status, 403);
  EXPECT_EQ(Api("GET", "/api/v1/audit", viewer_token).status, 403);

  std::string alice_token = TokenFor(alice);
  std::string bob_token = TokenFor(bob);
  net::HttpResponse submitted = Api("POST", "/api/v1/jobs", alice_token, job);
  ASSERT_EQ(submitted.status, 201) << submitted.body;
  json alices_job = json::parse(submitted.body);
  EXPECT_EQ(alices_job.value("owner", ""), "alice@example.com");
  const std::string id = alices_job.value("id", "");
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + id, alice_token).status, 200);
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + id, bob_token).status, 403);
  EXPECT_EQ(Api("POST", "/api/v1/jobs/" + id + "/terminate", bob_token).status, 403);
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + id + "/logs", bob_token).status, 403);
  json bobs_list = json::parse(Api("GET", "/api/v1/jobs", bob_token).body);
  EXPECT_TRUE(bobs_list["items"].empty()) << bobs_list.dump();
  EXPECT_EQ(json::parse(Api("GET", "/api/v1/jobs", viewer_token).body)["items"].size(), 1u);
  // Job output: its owner and a Viewer who is a person, not an application holding Viewer.
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + id + "/logs", alice_token).status, 200);
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + id + "/logs", viewer_token).status, 200);
  KeyedApp script = MakeKeyedApp("viewer-script");
  Assign("Viewer", script.client_id, "/");
  std::string script_token = TokenFor(script);
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + id, script_token).status, 200);
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + id + "/logs", script_token).status, 403);
  EXPECT_EQ(Api("POST", "/api/v1/jobs/" + id + "/terminate", alice_token).status, 200);

  // The operator of east, with the token its server-kept file holds.
  json config = json::parse(ReadText(p_.home() + "/clusters/east/operator.json"));
  auto exchanged = ExchangeAssertion(config["client_id"], ReadText(config.value("token_file", "")));
  ASSERT_EQ(exchanged.first, 200) << exchanged.second.dump();
  std::string operator_token = exchanged.second.value("access_token", "");
  EXPECT_EQ(Api("GET", "/api/v1/operators/east/assignments", operator_token).status, 200);
  EXPECT_EQ(Api("GET", "/api/v1/operators/west/assignments", operator_token).status, 403);
  EXPECT_EQ(Api("POST", "/api/v1/operators/west/heartbeat", operator_token,
                {{"operator_id", "intruder"}, {"instance_types", json::array()}})
                .status,
            403);
  EXPECT_EQ(Api("POST", "/api/v1/operators/west/tokens", operator_token, json::object()).status,
            403);
  EXPECT_EQ(Api("GET", "/api/v1/jobs", operator_token).status, 403);
  EXPECT_EQ(Api("DELETE", "/api/v1/resources/west", operator_token).status, 403);

  // Every mutating call was audited, refusals included, with who and from where.
  json denied = ApiJson("GET", "/api/v1/audit?actor=bob@example.com&action=job.terminate");
  ASSERT_FALSE(denied["items"].empty());
  EXPECT_EQ(denied["items"][0].value("result", ""), "403");
  EXPECT_NE(denied["items"][0].value("source_address", ""), "");
  json submits = ApiJson("GET", "/api/v1/audit?action=job.submit");
  ASSERT_FALSE(submits["items"].empty());
  EXPECT_EQ(submits["items"][0].value("detail", ""), "id=" + id);
  // A refused read by an application is audited too; a person's reads are not.
  json refused = ApiJson("GET", "/api/v1/audit?action=job.logs&actor=" + script.client_id);
  ASSERT_EQ(refused["items"].size(), 1u) << refused.dump();
  EXPECT_EQ(refused["items"][0].value("result", ""), "403");
  EXPECT_EQ(refused["items"][0].value("target", ""), "/jobs/" + id + "/logs");
  EXPECT_TRUE(ApiJson("GET", "/api/v1/audit?action=job.&actor=bob@example.com")["items"].size() ==
              1u)
      << "bob's refused reads are not audited, only his refused terminate";
}

TEST_F(IdentityTest, AWorkloadTokenReadsItsOwnLiveJobOnly) {
  StartServer();
  ASSERT_TRUE(p_.CreateLocalResource("east", "eastus").ok());
  ASSERT_TRUE(p_.StartOperator({"east", "", {"2CPU-8GB=4"}}).ok());
  ASSERT_TRUE(p_.WaitHealth("east", "HEALTHY")) << p_.LogTail("operator-east");
  const json sleeper = {{"name", "sleeper"},
                        {"entrypoint", "echo started; sleep 600"},
                        {"max_retries", 0},
                        {"compute_config", {{"cloud_resource", "east"}}}};
  const std::string mine = SubmitRunning(sleeper);
  const std::string other = SubmitRunning(sleeper);
  const json attempt = NewestAttempt(mine);
  // A workload token without an attempt, as earlier versions minted: no role, nothing.
  std::string plain = ExchangeWorkloadToken("east", WorkloadToken("east"));
  EXPECT_EQ(Api("GET", "/api/v1/jobs", plain).status, 403);
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + mine, plain).status, 403);
  // The operator can mint only for an attempt live on its resource.
  json wrong_epoch = attempt;
  wrong_epoch["epoch"] = attempt.value("epoch", int64_t{0}) + 1;
  EXPECT_EQ(Api("POST", "/api/v1/operators/east/tokens", p_.AccessToken(), wrong_epoch).status,
            409);

  std::string token = ExchangeWorkloadToken("east", WorkloadToken("east", attempt));
  EXPECT_EQ(Claims(token)["meridian_attempt"],
            json({{"job_id", mine}, {"attempt", attempt["attempt"]}, {"epoch", attempt["epoch"]}}));
  EXPECT_TRUE(Claims(token)["roles"].empty()) << "workloads hold no role by default";
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + mine, token).status, 200);
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + mine + "/logs", token).status, 200);
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/v1/jobs"},
           {"GET", "/api/v1/jobs/" + other},
           {"GET", "/api/v1/jobs/" + other + "/logs"},
           {"POST", "/api/v1/jobs/" + other + "/terminate"},
           {"POST", "/api/v1/jobs/" + mine + "/terminate"},
           {"GET", "/api/v1/resources/east"},
           {"GET", "/api/v1/clouds"},
           {"GET", "/api/v1/identity/apps"}}) {
    EXPECT_EQ(Api(method, path, token).status, 403) << method << " " << path;
  }
  // Once the attempt has ended, its token reads nothing more.
  ApiJson("POST", "/api/v1/jobs/" + mine + "/terminate", json::object());
  EXPECT_EQ(p_.WaitJobFinal(mine).value("state", ""), "TERMINATED");
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + mine, token).status, 403);
  EXPECT_EQ(Api("GET", "/api/v1/jobs/" + mine + "/logs", token).status, 403);
  // Each refusal is on the audit record with the workload and its target.
  const std::string workloads = App("workloads-east").value("app_id", "");
  json audited = ApiJson("GET", "/api/v1/audit?limit=100&actor=" + workloads);
  std::set<std::string> seen;
  for (const json& entry : audited["items"]) {
    if (entry.value("result", "") != "403") continue;
    seen.insert(entry.value("action", "") + " " + entry.value("target", ""));
  }
  for (const std::string& expected :
       std::vector<std::string>{"job.list /jobs", "job.logs /jobs/" + other + "/logs",
                                "job.terminate /jobs/" + other + "/terminate",
                                "resource.read /resources/east", "job.read /jobs/" + mine}) {
    EXPECT_TRUE(seen.count(expected)) << expected << " not in " << audited.dump();
  }
  ApiJson("POST", "/api/v1/jobs/" + other + "/terminate", json::object());
}

// What the issue reported, tried as a job would: the job's own identity and files, from
// inside a running job on a `meridian up`-like set-up (a server and a LOCAL operator on one
// machine, one home).
TEST_F(IdentityTest, FromInsideAJobOnlyItsOwnJobAndTheClusterStorageAreReachable) {
  StartServer();
  ASSERT_TRUE(p_.CreateLocalResource("east", "eastus").ok());
  ASSERT_TRUE(p_.StartOperator({"east", "", {"2CPU-8GB=4"}}).ok());
  ASSERT_TRUE(p_.WaitHealth("east", "HEALTHY")) << p_.LogTail("operator-east");
  const std::string victim = SubmitRunning({{"name", "victim"},
                                            {"entrypoint", "echo victim-secret-output; sleep 600"},
                                            {"max_retries", 0},
                                            {"compute_config", {{"cloud_resource", "east"}}}});
  const json victim_attempt = NewestAttempt(victim);
  const std::string victim_token =
      fmt::format("{}/sandbox/east/{}.{}.{}/federated-token", p_.home(), victim,
                  victim_attempt.value("attempt", 0), victim_attempt.value("epoch", int64_t{0}));
  // Each probe prints "<name> rc=<exit code>"; the CLI exits 6 on 403. A fresh HOME, so only
  // the job's own identity (the AZURE_* variables) speaks.
  const std::string m = MeridianBinary();
  std::string probe = fmt::format(
      "export HOME=$PWD/fresh-home; mkdir -p $HOME; "
      "{m} job list; echo \"list rc=$?\"; "
      "{m} job logs {v}; echo \"logs-other rc=$?\"; "
      "{m} job terminate {v}; echo \"terminate-other rc=$?\"; "
      "{m} cloud resource describe east; echo \"resource rc=$?\"; "
      "{m} job status $MERIDIAN_JOB_ID; echo \"own-status rc=$?\"; "
      "{m} job logs $MERIDIAN_JOB_ID; echo \"own-logs rc=$?\"; "
      "cat {home}/credentials/admin.pem; echo \"admin-key rc=$?\"; "
      "cat {home}/server/state.db > /dev/null; echo \"state-db rc=$?\"; "
      "cat {token} > /dev/null; echo \"other-token rc=$?\"; "
      "echo from-$MERIDIAN_JOB_ID > $MERIDIAN_CLUSTER_STORAGE/probe-$MERIDIAN_JOB_ID && "
      "cat $MERIDIAN_CLUSTER_STORAGE/probe-$MERIDIAN_JOB_ID; echo \"storage rc=$?\"",
      fmt::arg("m", m), fmt::arg("v", victim), fmt::arg("home", p_.home()),
      fmt::arg("token", victim_token));
  json submitted = ApiJson("POST", "/api/v1/jobs",
                           {{"config",
                             {{"name", "prober"},
                              {"entrypoint", probe},
                              {"max_retries", 0},
                              {"compute_config", {{"cloud_resource", "east"}}}}}});
  const std::string prober = submitted.value("id", "");
  json final_state = p_.WaitJobFinal(prober);
  EXPECT_EQ(final_state.value("state", ""), "SUCCEEDED") << final_state.dump();
  CommandResult logs = p_.Cli({"job", "logs", prober});
  ASSERT_EQ(logs.exit_code, 0) << logs.Describe();
  const std::string& out = logs.out;
  for (const char* refused :
       {"list rc=6", "logs-other rc=6", "terminate-other rc=6", "resource rc=6"}) {
    EXPECT_NE(out.find(refused), std::string::npos) << refused << " in:\n" << out;
  }
  EXPECT_EQ(out.find("victim-secret-output"), std::string::npos) << out;
  EXPECT_NE(out.find("own-status rc=0"), std::string::npos) << out;
  EXPECT_NE(out.find("own-logs rc=0"), std::string::npos) << out;
  EXPECT_NE(out.find("storage rc=0"), std::string::npos) << out;
  EXPECT_NE(out.find("from-" + prober), std::string::npos) << out;
  EXPECT_EQ(p_.Job(victim).value("state", ""), "RUNNING") << "the victim was not terminated";
  if (::geteuid() == 0) {
    // A root operator runs the job as a user of its own (docs/operations.md); without root
    // the job is the operator's user and these files are its to read.
    for (const std::string& denied : {p_.home() + "/credentials/admin.pem: Permission denied",
                                      p_.home() + "/server/state.db: Permission denied",
                                      victim_token + ": Permission denied"}) {
      EXPECT_NE(out.find(denied), std::string::npos) << denied << " in:\n" << out;
    }
    for (const char* failed : {"admin-key rc=1", "state-db rc=1", "other-token rc=1"}) {
      EXPECT_NE(out.find(failed), std::string::npos) << failed << " in:\n" << out;
    }
    EXPECT_TRUE(base::PathExists(victim_token)) << "the victim's token is where the probe looked";
  }
  // The refusals are on the audit record, with the workload's identity and the target.
  const std::string workloads = App("workloads-east").value("app_id", "");
  json audited = ApiJson("GET", "/api/v1/audit?limit=200&actor=" + workloads);
  std::set<std::string> seen;
  for (const json& entry : audited["items"]) {
    if (entry.value("result", "") == "403") {
      seen.insert(entry.value("action", "") + " " + entry.value("target", ""));
    }
  }
  for (const std::string& expected : std::vector<std::string>{
           "job.list /jobs", "job.logs /jobs/" + victim + "/logs",
           "job.terminate /jobs/" + victim + "/terminate", "resource.read /resources/east"}) {
    EXPECT_TRUE(seen.count(expected)) << expected << " not in " << audited.dump();
  }
  ApiJson("POST", "/api/v1/jobs/" + victim + "/terminate", json::object());
}

TEST_F(IdentityTest, AnAdministratorMayStillGrantAWorkloadARole) {
  StartServer();
  ASSERT_TRUE(p_.CreateLocalResource("east", "eastus").ok());
  std::string before = ExchangeWorkloadToken("east", WorkloadToken("east"));
  EXPECT_EQ(Api("GET", "/api/v1/resources/east", before).status, 403);
  Assign("Viewer", App("workloads-east").value("app_id", ""), "/clouds/default");
  std::string after = ExchangeWorkloadToken("east", WorkloadToken("east"));
  EXPECT_EQ(Api("GET", "/api/v1/resources/east", after).status, 200);
  EXPECT_EQ(Api("GET", "/api/v1/jobs", after).status, 200);
  // A restart does not take an explicit grant away (the migration ran once, on first start).
  p_.KillServer();
  StartServer();
  p_.AccessToken(/*refresh=*/true);  // the new server listens on another port: another issuer
  json assignments = ApiJson("GET", "/api/v1/identity/role-assignments?principal=" +
                                        App("workloads-east").value("app_id", ""));
  EXPECT_EQ(assignments["items"].size(), 1u) << assignments.dump();
}

TEST_F(IdentityTest, AnUpgradeRemovesTheCloudWideViewerOfWorkloads) {
  StartServer();
  ASSERT_TRUE(p_.CreateLocalResource("east", "eastus").ok());
  const std::string workloads = App("workloads-east").value("app_id", "");
  // What an earlier version left: Viewer at the cloud for the workloads app, and no record
  // of the migration.
  Assign("Viewer", workloads, "/clouds/default");
  p_.KillServer();
  Sql(p_.home() + "/server/state.db", "DELETE FROM records WHERE kind = 'identity_migration'");
  StartServer();
  p_.AccessToken(/*refresh=*/true);  // the new server listens on another port: another issuer
  json assignments = ApiJson("GET", "/api/v1/identity/role-assignments?principal=" + workloads);
  EXPECT_TRUE(assignments["items"].empty()) << assignments.dump();
  std::string log = ReadText(p_.home() + "/logs/server.log");
  EXPECT_NE(log.find("removed Viewer at /clouds/default from workloads-east"), std::string::npos)
      << log;
}

TEST_F(IdentityTest, AuditVerifyNamesAnEditedAndADeletedEntry) {
  StartServer();
  for (const char* cloud : {"a", "b", "c", "d"})
    ApiJson("POST", "/api/v1/clouds", {{"name", cloud}});
  json verified = ApiJson("GET", "/api/v1/audit/verify");
  EXPECT_TRUE(verified.value("ok", false));
  json entries = ApiJson("GET", "/api/v1/audit?action=cloud.create");
  ASSERT_EQ(entries["items"].size(), 4u);
  const int64_t edited = entries["items"][2].value("seq", int64_t{0});   // cloud "b"
  const int64_t deleted = entries["items"][0].value("seq", int64_t{0});  // cloud "d"
  const std::string db = p_.home() + "/server/state.db";
  auto restart_and_verify = [&]() {
    StartServer();
    net::HttpResponse answer = Api("GET", "/api/v1/audit/verify", p_.AccessToken(true));
    EXPECT_EQ(answer.status, 409) << answer.body;
    return json::parse(answer.body, nullptr, false).value("message", "");
  };
  // Edit: the entry's actor is changed, its hash left alone.
  p_.KillServer();
  Sql(db, fmt::format("UPDATE records SET body = replace(body, '\"actor\":\"admin\"', "
                      "'\"actor\":\"mallory\"') WHERE kind = 'audit' AND id = '{:020d}'",
                      edited));
  std::string message = restart_and_verify();
  EXPECT_NE(message.find(fmt::format("seq {}", edited)), std::string::npos) << message;

  // Put it back, then delete a later entry instead.
  p_.KillServer();
  Sql(db, fmt::format("UPDATE records SET body = replace(body, '\"actor\":\"mallory\"', "
                      "'\"actor\":\"admin\"') WHERE kind = 'audit' AND id = '{:020d}'",
                      edited));
  Sql(db, fmt::format("DELETE FROM records WHERE kind = 'audit' AND id = '{:020d}'", deleted));
  message = restart_and_verify();
  EXPECT_NE(message.find(fmt::format("seq {}", deleted)), std::string::npos) << message;
}

TEST_F(IdentityTest, KeyRotationKeepsOldTokensValidUntilTheyExpire) {
  StartServer({"--key-publish-ahead-s", "1"});
  const std::string before = p_.AccessToken();
  const std::string old_kid = Header(before).value("kid", "");
  ASSERT_FALSE(old_kid.empty());
  json rotated = ApiJson("POST", "/api/v1/identity/keys/rotate", json::object());
  bool pending = false;
  for (const json& key : rotated["items"]) pending = pending || key.value("state", "") == "pending";
  EXPECT_TRUE(pending) << rotated.dump();
  // The new key is in the JWKS before it signs anything.
  json jwks = Public("GET", fmt::format("/{}/discovery/v2.0/keys",
                                        token_endpoint_.substr(p_.url().size() + 1, 36)));
  EXPECT_GE(jwks["keys"].size(), 3u) << jwks.dump();
  std::string after;
  ASSERT_TRUE(Eventually([&] {
    after = p_.AccessToken(/*refresh=*/true);
    return !after.empty() && Header(after).value("kid", "") != old_kid;
  })) << "tokens are signed by the new key once it is active";
  EXPECT_EQ(Api("GET", "/api/v1/clouds", before).status, 200) << "the old key still verifies";
  EXPECT_EQ(Api("GET", "/api/v1/clouds", after).status, 200);
  json keys = ApiJson("GET", "/api/v1/identity/keys");
  bool retiring = false;
  for (const json& key : keys["items"]) {
    retiring =
        retiring || (key.value("kid", "") == old_kid && key.value("state", "") == "retiring");
  }
  EXPECT_TRUE(retiring) << keys.dump();
}

TEST_F(IdentityTest, OperatorAndJobTokensRotateWhileRunning) {
  // Tokens live 20 s; the job runs for 50 s, the operator through all of it.
  StartServer({"--cluster-token-lifetime-s", "20", "--access-token-lifetime-s", "20"});
  ASSERT_TRUE(p_.CreateLocalResource("east", "eastus").ok());
  ASSERT_TRUE(p_.StartOperator({"east"}).ok());
  ASSERT_TRUE(p_.WaitHealth("east", "HEALTHY")) << p_.LogTail("operator-east");
  const std::string first_operator_token = ReadText(p_.home() + "/clusters/east/operator.jwt");
  // The job records the token file every 2 s and the variables it was given.
  std::string job = p_.WriteFile(
      "rotate.yaml",
      "name: rotate\n"
      "entrypoint: >-\n"
      "  echo client=$AZURE_CLIENT_ID tenant=$AZURE_TENANT_ID authority=$AZURE_AUTHORITY_HOST;\n"
      "  for i in $(seq 25); do echo token=$(sha256sum < $AZURE_FEDERATED_TOKEN_FILE | cut -c1-16);"
      " sleep 2; done\n"
      "compute_config:\n  cloud_resource: east\n");
  CommandResult submitted = p_.Cli({"job", "submit", "-f", job});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.Describe();
  std::string id = SubmittedJobId(submitted.out);
  json final_state = p_.WaitJobFinal(id, 180'000);
  EXPECT_EQ(final_state.value("state", ""), "SUCCEEDED") << final_state.dump();
  CommandResult logs = p_.Cli({"job", "logs", id});
  ASSERT_EQ(logs.exit_code, 0) << logs.Describe();
  std::set<std::string> tokens;
  size_t at = 0;
  while ((at = logs.out.find("token=", at)) != std::string::npos) {
    tokens.insert(logs.out.substr(at + 6, 16));
    at += 6;
  }
  EXPECT_GE(tokens.size(), 3u) << "the job's token file is rewritten at 80 % of 20 s:\n"
                               << logs.out;
  json workloads = App("workloads-east");
  EXPECT_NE(logs.out.find("client=" + workloads.value("app_id", "?")), std::string::npos)
      << logs.out;
  EXPECT_NE(logs.out.find("authority=" + p_.url() + "/"), std::string::npos) << logs.out;
  EXPECT_NE(ReadText(p_.home() + "/clusters/east/operator.jwt"), first_operator_token);
  EXPECT_EQ(p_.Resource("east").value("health", ""), "HEALTHY")
      << "the operator kept its access through several token lifetimes";
}

TEST_F(IdentityTest, MicrosoftsWorkloadIdentityCredentialGetsATokenTheApiAccepts) {
  const std::string script = SourceDir() + "/tests/node/identity_compat.mjs";
  ASSERT_TRUE(
      base::PathExists(SourceDir() + "/tests/node/node_modules/@azure/identity/package.json"))
      << "@azure/identity is not installed in tests/node: run ./scripts/test-peers.sh (`make test` "
         "runs it), which installs the npm test peers pinned in tests/node/package.json";
  StartServer();
  ASSERT_TRUE(p_.CreateLocalResource("east", "eastus").ok());
  ASSERT_TRUE(p_.StartOperator({"east"}).ok());
  ASSERT_TRUE(p_.WaitHealth("east", "HEALTHY")) << p_.LogTail("operator-east");
  // A workload token reads its own job: the token of a running attempt.
  const std::string job = SubmitRunning({{"name", "compat"},
                                         {"entrypoint", "sleep 600"},
                                         {"max_retries", 0},
                                         {"compute_config", {{"cloud_resource", "east"}}}});
  std::string token_file = p_.WriteFile("workload.jwt", WorkloadToken("east", NewestAttempt(job)));
  json workloads = App("workloads-east");
  CommandResult node =
      RunProcess({"/usr/bin/env", "node", script},
                 {{"NODE_EXTRA_CA_CERTS", p_.ca_file()},
                  {"AZURE_CLIENT_ID", workloads.value("app_id", "")},
                  {"AZURE_TENANT_ID", token_endpoint_.substr(p_.url().size() + 1, 36)},
                  {"AZURE_FEDERATED_TOKEN_FILE", token_file},
                  {"AZURE_AUTHORITY_HOST", p_.url() + "/"},
                  {"MERIDIAN_URL", p_.url()},
                  {"MERIDIAN_API_PATH", "/api/v1/jobs/" + job}});
  EXPECT_EQ(node.exit_code, 0) << node.Describe();
  EXPECT_NE(node.out.find("GET /api/v1/jobs/" + job + " -> 200"), std::string::npos)
      << node.Describe();
  ApiJson("POST", "/api/v1/jobs/" + job + "/terminate", json::object());
}

}  // namespace
}  // namespace meridian::itest
