// Every route the API serves, asked by every kind of caller: no token and a bad token are
// 401, a caller whose role does not allow the route is 403, and one whose role does gets past
// authorisation (whatever the route then answers). The expectations are docs/identity.md's
// role table, route by route; a new route, or a new kind of caller, is one more row or column.
//
// The callers are principals as the authenticator would yield them from tokens the identity
// plane issued (the token exchange itself is tested in identity/ and tests/integration); the
// API, the control plane and the identity plane under them are the real ones, over a
// temporary SQLite store.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/hash.h"
#include "control/api.h"
#include "control/auth.h"
#include "control/control_plane.h"
#include "control/identity_plane.h"
#include "fmt/format.h"
#include "spec/spec_json.h"
#include "state/state_store.h"

namespace meridian::control {
namespace {

using nlohmann::json;

// Who asks. Each is a column of the route table below, in this order (after the two that are
// never authenticated).
enum class Caller {
  kNoToken,
  kBadToken,
  kAdmin,              // Admin at "/"
  kDeveloper,          // Developer at /clouds/c1; owns the job "mine"
  kViewer,             // Viewer at /clouds/c1, a person
  kViewerApplication,  // Viewer at /clouds/c1, an application (a script or a workload)
  kOperatorOfAnother,  // Operator at /clouds/c1/resources/r2
  kOperatorOwn,        // Operator at /clouds/c1/resources/r1, the resource the routes name
};
constexpr Caller kAuthenticatedCallers[] = {Caller::kAdmin, Caller::kDeveloper, Caller::kViewer,
                                            Caller::kOperatorOfAnother, Caller::kOperatorOwn};

std::string CallerName(Caller caller) {
  switch (caller) {
    case Caller::kNoToken:
      return "NoToken";
    case Caller::kBadToken:
      return "BadToken";
    case Caller::kAdmin:
      return "Admin";
    case Caller::kDeveloper:
      return "Developer";
    case Caller::kViewer:
      return "Viewer";
    case Caller::kViewerApplication:
      return "ViewerApplication";
    case Caller::kOperatorOfAnother:
      return "OperatorOfAnotherResource";
    case Caller::kOperatorOwn:
      return "OperatorOfTheResource";
  }
  return "Unknown";
}

std::string BearerFor(Caller caller) {
  switch (caller) {
    case Caller::kNoToken:
      return "";
    case Caller::kBadToken:
      return "Bearer not-a-token-this-server-issued";
    case Caller::kAdmin:
      return "Bearer admin";
    case Caller::kDeveloper:
      return "Bearer developer";
    case Caller::kViewer:
      return "Bearer viewer";
    case Caller::kViewerApplication:
      return "Bearer viewer-app";
    case Caller::kOperatorOfAnother:
      return "Bearer operator-r2";
    case Caller::kOperatorOwn:
      return "Bearer operator-r1";
  }
  return "";
}

// The authenticator's contract with principals as the token service puts them in access
// tokens: a known bearer is its principal, anything else kUnauthenticated.
class PrincipalsAuthenticator final : public Authenticator {
 public:
  PrincipalsAuthenticator() {
    using identity::Role;
    Add("admin", "admin", Role::kAdmin, "/");
    Add("developer", "dev@example.com", Role::kDeveloper, "/clouds/c1");
    Add("other-developer", "other@example.com", Role::kDeveloper, "/clouds/c1");
    Add("viewer", "viewer@example.com", Role::kViewer, "/clouds/c1");
    Add("viewer-app", "viewer-app", Role::kViewer, "/clouds/c1");
    Add("operator-r1", "operator-r1", Role::kOperator, "/clouds/c1/resources/r1");
    Add("operator-r2", "operator-r2", Role::kOperator, "/clouds/c1/resources/r2");
  }

  Result<Principal> Authenticate(const net::HttpRequest& request) override {
    std::string header = request.Header("authorization");
    if (header.empty()) return absl::UnauthenticatedError("no Authorization header");
    if (header.rfind("Bearer ", 0) != 0) return absl::UnauthenticatedError("not a bearer token");
    auto it = principals_.find(header.substr(7));
    if (it == principals_.end()) return absl::UnauthenticatedError("token not issued here");
    return it->second;
  }

 private:
  void Add(const std::string& token, const std::string& subject, identity::Role role,
           const std::string& scope) {
    Principal principal;
    principal.subject = subject;
    principal.app_id = subject;
    principal.roles = {std::string(identity::RoleName(role))};
    principal.grants = {{role, scope}};
    principal.person = subject.find('@') != std::string::npos;  // users; the rest are apps
    principals_[token] = std::move(principal);
  }

  std::map<std::string, Principal> principals_;
};

// The outcome the table expects for one caller: 'A' allowed (neither 401 nor 403), 'F'
// forbidden (403).
struct Route {
  std::string name;  // the test's name
  std::string method;
  std::string path;  // {mine}, {theirs}, {app}, {assignment}, {quota}, {package} are filled in
  json body;         // null: no body
  // One letter per caller of kAuthenticatedCallers: Admin, Developer, Viewer,
  // OperatorOfAnother, OperatorOwn.
  std::string expected;
};

const std::vector<Route>& Routes() {
  static const auto* routes = new std::vector<Route>{
      // name, method, path, body, expected for Admin Developer Viewer OperatorOfAnother OperatorOwn
      {"Metrics", "GET", "/metrics", nullptr, "AAAFF"},
      {"Capacity", "GET", "/api/v1/capacity", nullptr, "AAAFF"},
      {"ListClouds", "GET", "/api/v1/clouds", nullptr, "AAAFF"},
      {"CreateCloud", "POST", "/api/v1/clouds", {{"name", "c2"}}, "AFFFF"},
      {"GetCloud", "GET", "/api/v1/clouds/c1", nullptr, "AAAFF"},
      {"DeleteCloud", "DELETE", "/api/v1/clouds/c1", nullptr, "AFFFF"},
      {"ListCloudResources", "GET", "/api/v1/clouds/c1/resources", nullptr, "AAAFF"},
      {"CreateCloudResource",
       "POST",
       "/api/v1/clouds/c1/resources",
       {{"name", "r3"}, {"provider", "LOCAL"}, {"compute_stack", "LOCAL"}, {"region", "westus"}},
       "AFFFF"},
      {"ListResources", "GET", "/api/v1/resources", nullptr, "AAAFF"},
      {"GetResource", "GET", "/api/v1/resources/r1", nullptr, "AAAFF"},
      {"DeleteResource", "DELETE", "/api/v1/resources/r2", nullptr, "AFFFF"},
      {"ListJobs", "GET", "/api/v1/jobs", nullptr, "AAAFF"},
      {"SubmitJob",
       "POST",
       "/api/v1/jobs",
       {{"config",
         {{"name", "new"},
          {"entrypoint", "true"},
          {"compute_config", {{"cloud_resource", "r1"}}}}}},
       "AAFFF"},
      {"GetOwnJob", "GET", "/api/v1/jobs/{mine}", nullptr, "AAAFF"},
      {"GetSomeoneElsesJob", "GET", "/api/v1/jobs/{theirs}", nullptr, "AFAFF"},
      {"TerminateOwnJob", "POST", "/api/v1/jobs/{mine}/terminate", nullptr, "AAFFF"},
      {"TerminateSomeoneElsesJob", "POST", "/api/v1/jobs/{theirs}/terminate", nullptr, "AFFFF"},
      {"ReadOwnJobLog", "GET", "/api/v1/jobs/{mine}/logs", nullptr, "AAAFF"},
      {"ReadSomeoneElsesJobLog", "GET", "/api/v1/jobs/{theirs}/logs", nullptr, "AFAFF"},
      {"UploadPackage", "PUT", "/api/v1/packages/{package}", nullptr, "AAFFF"},
      // Operators download the packages of the attempts they run (operator/agent.cc). Any
      // operator may fetch any package: packages are not scoped to a resource.
      {"DownloadPackage", "GET", "/api/v1/packages/{package}", nullptr, "AAAAA"},
      {"ListQuotas", "GET", "/api/v1/quotas", nullptr, "AAAFF"},
      {"CreateQuota", "POST", "/api/v1/quotas", {{"cloud", "c1"}, {"max_gpus", 8}}, "AFFFF"},
      {"DeleteQuota", "DELETE", "/api/v1/quotas/{quota}", nullptr, "AFFFF"},
      {"ListComputeConfigs", "GET", "/api/v1/compute-configs", nullptr, "AAAFF"},
      {"CreateComputeConfig",
       "POST",
       "/api/v1/compute-configs",
       {{"name", "cc2"}, {"config", {{"cloud_resource", "r1"}}}},
       "AAFFF"},
      {"GetComputeConfig", "GET", "/api/v1/compute-configs/cc1", nullptr, "AAAFF"},
      {"ArchiveComputeConfig", "POST", "/api/v1/compute-configs/cc1/archive", nullptr, "AFFFF"},
      {"OperatorHeartbeat",
       "POST",
       "/api/v1/operators/r1/heartbeat",
       {{"operator_id", "op"}, {"version", "test"}},
       "AFFFA"},
      {"OperatorWatch", "GET", "/api/v1/operators/r1/assignments", nullptr, "AFFFA"},
      {"OperatorLogs", "POST", "/api/v1/operators/r1/logs", nullptr, "AFFFA"},
      // docs/api.md says "Operator of that resource only"; an Admin may do everything
      // (docs/identity.md), so it may mint a job attempt's token too.
      {"OperatorTokens", "POST", "/api/v1/operators/r1/tokens", json::object(), "AFFFA"},
      {"IdentityTenant", "GET", "/api/v1/identity/tenant", nullptr, "AAAAA"},
      {"ListApps", "GET", "/api/v1/identity/apps", nullptr, "AFFFF"},
      {"CreateApp", "POST", "/api/v1/identity/apps", {{"display_name", "new-app"}}, "AFFFF"},
      {"GetApp", "GET", "/api/v1/identity/apps/{app}", nullptr, "AFFFF"},
      {"DeleteApp", "DELETE", "/api/v1/identity/apps/{app}", nullptr, "AFFFF"},
      {"ListFederatedCredentials", "GET", "/api/v1/identity/apps/{app}/federated-credentials",
       nullptr, "AFFFF"},
      {"CreateFederatedCredential",
       "POST",
       "/api/v1/identity/apps/{app}/federated-credentials",
       {{"name", "fic2"}, {"issuer", "https://issuer.example.com"}, {"subject", "other"}},
       "AFFFF"},
      {"DeleteFederatedCredential", "DELETE",
       "/api/v1/identity/apps/{app}/federated-credentials/fic1", nullptr, "AFFFF"},
      {"AddKey", "POST", "/api/v1/identity/apps/{app}/keys", {{"public_pem", "x"}}, "AFFFF"},
      {"ListRoleAssignments", "GET", "/api/v1/identity/role-assignments", nullptr, "AFFFF"},
      {"AssignRole",
       "POST",
       "/api/v1/identity/role-assignments",
       {{"role", "Admin"}, {"principal", "viewer@example.com"}, {"scope", "/"}},
       "AFFFF"},
      {"RevokeRoleAssignment", "DELETE", "/api/v1/identity/role-assignments/{assignment}", nullptr,
       "AFFFF"},
      {"ListSigningKeys", "GET", "/api/v1/identity/keys", nullptr, "AFFFF"},
      {"RotateSigningKey", "POST", "/api/v1/identity/keys/rotate", json::object(), "AFFFF"},
      {"ReadAudit", "GET", "/api/v1/audit", nullptr, "AFFFF"},
      {"VerifyAudit", "GET", "/api/v1/audit/verify", nullptr, "AFFFF"},
  };
  return *routes;
}

constexpr char kPackageBody[] = "not really a tar.gz, but packages are opaque bytes";

// The services under test over the state in `dir` (made there when absent).
struct Services {
  explicit Services(const std::string& dir, Authenticator* auth) {
    store = state::OpenSqliteStore(dir + "/state.db").value();
    plane = ControlPlane::Open(store.get(), ControlPlaneOptions{}).value();
    IdentityPlaneOptions identity_options;
    identity_options.home = dir + "/home";
    identity_options.authority = "https://127.0.0.1:1";
    identity = IdentityPlane::Open(store.get(), identity_options).value();
    ApiOptions options;
    options.package_dir = dir + "/packages";
    options.blocking_threads = 2;
    std::filesystem::create_directories(options.package_dir);
    api = std::make_unique<ApiHandler>(plane.get(), auth, options, identity.get());
  }
  ~Services() {
    api.reset();  // waits for audit appends in flight
    identity.reset();
    plane.reset();
    store.reset();
  }

  // Sends one request ("" authorization: none) and waits for its one answer.
  net::HttpResponse Send(const std::string& authorization, const std::string& method,
                         const std::string& path, const json& body,
                         const std::string& raw_body = "") {
    net::HttpRequest request;
    request.method = method;
    request.path = path;
    request.target = path;
    if (!authorization.empty()) request.headers.push_back({"authorization", authorization});
    request.body = body.is_null() ? raw_body : body.dump();
    request.remote_address = "127.0.0.1:1";
    auto answer = std::make_shared<std::promise<net::HttpResponse>>();
    std::future<net::HttpResponse> answered = answer->get_future();
    api->Handle(std::move(request),
                [answer](net::HttpResponse response) { answer->set_value(std::move(response)); });
    // Generous: it only stops a broken handler (one that never answers) from hanging the run.
    if (answered.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      ADD_FAILURE() << method << " " << path << ": no answer within 60 s";
      return net::HttpResponse{.status = 0};
    }
    return answered.get();
  }

  net::HttpResponse Ask(const std::string& token, const std::string& method,
                        const std::string& path, const json& body = nullptr,
                        const std::string& raw_body = "") {
    return Send("Bearer " + token, method, path, body, raw_body);
  }

  std::unique_ptr<state::StateStore> store;
  std::unique_ptr<ControlPlane> plane;
  std::unique_ptr<IdentityPlane> identity;
  std::unique_ptr<ApiHandler> api;
};

// What the routes name, made once by the administrator (see World()).
struct Fixture {
  std::string dir;  // the state every case starts from a copy of
  std::string mine, theirs, quota, app, assignment, package;
};

std::string MakeTempDir(const char* name) {
  std::string pattern =
      fmt::format("{}/{}.XXXXXX", std::filesystem::temp_directory_path().string(), name);
  return mkdtemp(pattern.data()) != nullptr ? pattern : "";
}

// Made through the API as the administrator: one cloud c1 of two LOCAL resources r1 and r2
// (r1 offering capacity), a job "mine" of the Developer's and one "theirs" of another
// developer's (both placed on r1), a quota, a compute config cc1, an uploaded package, and an
// application with a federated credential fic1 and a role assignment. Empty ids mean the
// set-up failed (and said why).
Fixture MakeFixture(Authenticator* auth) {
  Fixture fixture;
  fixture.dir = MakeTempDir("api_routes_test_world");
  Services services(fixture.dir, auth);
  auto expect = [](const net::HttpResponse& response, int status, const char* what) {
    EXPECT_EQ(response.status, status) << what << ": " << response.body;
    json body = json::parse(response.body, nullptr, false);
    return body.is_object() ? body : json::object();
  };
  expect(services.Ask("admin", "POST", "/api/v1/clouds", {{"name", "c1"}}), 201, "cloud c1");
  for (const char* resource : {"r1", "r2"}) {
    expect(services.Ask("admin", "POST", "/api/v1/clouds/c1/resources",
                        {{"name", resource},
                         {"provider", "LOCAL"},
                         {"compute_stack", "LOCAL"},
                         {"region", "eastus"}}),
           201, resource);
  }
  spec::InstanceType cpu4;
  cpu4.name = "cpu4";
  cpu4.cpu = 4;
  cpu4.memory_bytes = int64_t{8} << 30;
  json offered = spec::ToJson(cpu4);
  offered["total_nodes"] = 4;
  json heartbeat = {
      {"operator_id", "op-r1"}, {"version", "test"}, {"instance_types", json::array({offered})}};
  expect(services.Ask("admin", "POST", "/api/v1/operators/r1/heartbeat", heartbeat), 200,
         "r1's heartbeat");
  for (auto [token, id] :
       {std::pair{"developer", &fixture.mine}, std::pair{"other-developer", &fixture.theirs}}) {
    json job = expect(services.Ask(token, "POST", "/api/v1/jobs",
                                   {{"config",
                                     {{"name", token},
                                      {"entrypoint", "true"},
                                      {"compute_config", {{"cloud_resource", "r1"}}}}}}),
                      201, token);
    EXPECT_FALSE(job.value("attempts", json::array()).empty())
        << "the job must be placed on r1 for its target to name the cloud: " << job.dump();
    *id = job.value("id", "");
  }
  fixture.quota = expect(services.Ask("admin", "POST", "/api/v1/quotas",
                                      {{"cloud", "c1"}, {"max_running_jobs", 10}}),
                         201, "quota")
                      .value("id", "");
  expect(services.Ask("admin", "POST", "/api/v1/compute-configs",
                      {{"name", "cc1"}, {"config", {{"cloud_resource", "r1"}}}}),
         201, "compute config cc1");
  fixture.package = "sha256:" + base::Sha256Hex(kPackageBody);
  expect(services.Ask("admin", "PUT", "/api/v1/packages/" + fixture.package, nullptr, kPackageBody),
         201, "package");
  fixture.app =
      expect(services.Ask("admin", "POST", "/api/v1/identity/apps", {{"display_name", "fixture"}}),
             201, "app")
          .value("app_id", "");
  expect(services.Ask(
             "admin", "POST", "/api/v1/identity/apps/" + fixture.app + "/federated-credentials",
             {{"name", "fic1"}, {"issuer", "https://issuer.example.com"}, {"subject", "fixture"}}),
         201, "federated credential fic1");
  fixture.assignment =
      expect(
          services.Ask("admin", "POST", "/api/v1/identity/role-assignments",
                       {{"role", "Viewer"}, {"principal", fixture.app}, {"scope", "/clouds/c1"}}),
          201, "role assignment")
          .value("id", "");
  return fixture;
}

// Every case starts from a copy of the same world, so that a mutating route one caller was
// allowed finds the same state as the next caller. The world is made once (making signing
// keys is slow) and copied: the services reopen the copy as a restarted server would.
class ApiRoutesTest : public ::testing::TestWithParam<std::tuple<size_t, Caller>> {
 protected:
  static void SetUpTestSuite() {
    static PrincipalsAuthenticator* auth = new PrincipalsAuthenticator;
    world_ = new Fixture(MakeFixture(auth));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(world_->dir);
    delete world_;
    world_ = nullptr;
  }

  void SetUp() override {
    ASSERT_FALSE(world_->mine.empty() || world_->theirs.empty() || world_->quota.empty() ||
                 world_->app.empty() || world_->assignment.empty())
        << "the world every case starts from could not be made (see the first failure)";
    dir_ = MakeTempDir("api_routes_test");
    ASSERT_FALSE(dir_.empty());
    std::filesystem::copy(world_->dir, dir_, std::filesystem::copy_options::recursive);
    services_ = std::make_unique<Services>(dir_, &auth_);
  }

  void TearDown() override {
    services_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string Fill(std::string path) const {
    const std::pair<const char*, const std::string*> kHoles[] = {
        {"{mine}", &world_->mine},       {"{theirs}", &world_->theirs},
        {"{app}", &world_->app},         {"{quota}", &world_->quota},
        {"{package}", &world_->package}, {"{assignment}", &world_->assignment}};
    for (const auto& [hole, value] : kHoles) {
      size_t at = path.find(hole);
      if (at != std::string::npos) path.replace(at, std::string_view(hole).size(), *value);
    }
    return path;
  }

  static Fixture* world_;
  std::string dir_;
  PrincipalsAuthenticator auth_;
  std::unique_ptr<Services> services_;
};

Fixture* ApiRoutesTest::world_ = nullptr;

TEST_P(ApiRoutesTest, AnswersAsTheCallersRoleAllows) {
  const Route& route = Routes()[std::get<0>(GetParam())];
  const Caller caller = std::get<1>(GetParam());
  ASSERT_EQ(route.expected.size(), std::size(kAuthenticatedCallers)) << route.name;
  char expected = 'U';  // unauthenticated: 401
  for (size_t i = 0; i < std::size(kAuthenticatedCallers); ++i) {
    if (kAuthenticatedCallers[i] == caller) expected = route.expected[i];
  }
  // An application holding Viewer reads what a Viewer reads, except what jobs printed: job
  // output is for owners, Admins and Viewers who are people (docs/identity.md).
  if (caller == Caller::kViewerApplication) {
    expected = route.expected[2];
    if (route.path.rfind("/api/v1/jobs/", 0) == 0 && route.path.ends_with("/logs")) expected = 'F';
  }
  const std::string path = Fill(route.path);
  std::string raw_body = route.method == "PUT" ? kPackageBody : "";
  net::HttpResponse response =
      services_->Send(BearerFor(caller), route.method, path, route.body, raw_body);
  std::string what = route.method + " " + path + " as " + CallerName(caller) + " answered " +
                     std::to_string(response.status) + " " + response.body;
  switch (expected) {
    case 'U':
      EXPECT_EQ(response.status, 401) << what;
      break;
    case 'F':
      EXPECT_EQ(response.status, 403) << what;
      break;
    case 'A':
      EXPECT_NE(response.status, 401) << what;
      EXPECT_NE(response.status, 403) << what;
      EXPECT_NE(response.status, 0) << what;
      EXPECT_EQ(response.body.find("no such API path"), std::string::npos)
          << what << " (the route is not served)";
      break;
    default:
      FAIL() << route.name << ": expectation '" << expected << "' is not A or F";
  }
}

std::vector<size_t> RouteIndexes() {
  std::vector<size_t> indexes;
  for (size_t i = 0; i < Routes().size(); ++i) indexes.push_back(i);
  return indexes;
}

INSTANTIATE_TEST_SUITE_P(
    EveryRouteAndCaller, ApiRoutesTest,
    ::testing::Combine(::testing::ValuesIn(RouteIndexes()),
                       ::testing::Values(Caller::kNoToken, Caller::kBadToken, Caller::kAdmin,
                                         Caller::kDeveloper, Caller::kViewer,
                                         Caller::kViewerApplication, Caller::kOperatorOfAnother,
                                         Caller::kOperatorOwn)),
    [](const ::testing::TestParamInfo<ApiRoutesTest::ParamType>& info) {
      return Routes()[std::get<0>(info.param)].name + "_" + CallerName(std::get<1>(info.param));
    });

// The unauthenticated routes answer without a token: probes, discovery and the keys a
// verifier needs, the token endpoint itself.
TEST(ApiPublicRoutesTest, AnswerWithoutAToken) {
  PrincipalsAuthenticator auth;
  const std::string dir = MakeTempDir("api_public_routes_test");
  ASSERT_FALSE(dir.empty());
  auto services = std::make_unique<Services>(dir, &auth);
  net::HttpResponse created = services->Ask("admin", "POST", "/api/v1/clouds", {{"name", "c1"}});
  ASSERT_EQ(created.status, 201) << created.body;
  created = services->Ask(
      "admin", "POST", "/api/v1/clouds/c1/resources",
      {{"name", "r1"}, {"provider", "LOCAL"}, {"compute_stack", "LOCAL"}, {"region", "eastus"}});
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string tenant = services->identity->tenant_id();
  for (const std::string& path :
       {std::string("/healthz"), std::string("/readyz"),
        std::string("/.well-known/openid-configuration"),
        "/" + tenant + "/v2.0/.well-known/openid-configuration",
        "/" + tenant + "/discovery/v2.0/keys", std::string("/clusters/r1/openid/v1/jwks")}) {
    net::HttpResponse response = services->Send("", "GET", path, nullptr);
    EXPECT_EQ(response.status, 200) << path << ": " << response.body;
  }
  net::HttpResponse token =
      services->Send("", "POST", "/" + tenant + "/oauth2/v2.0/token", nullptr);
  EXPECT_NE(token.status, 401) << "the token endpoint answers its own errors: " << token.body;
  EXPECT_NE(token.status, 404) << token.body;
  services.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace meridian::control
