// The identity commands end to end: the real `meridian` binary as the server and as the CLI
// of an admin (the server's own home, whose first admin the server wrote) and of a second
// user in a home of their own who logs in with a key the admin registered.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "fmt/format.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace meridian::itest {
namespace {

using nlohmann::json;

json ParseOut(const CommandResult& result) {
  json value = json::parse(result.out, nullptr, false);
  EXPECT_FALSE(value.is_discarded()) << result.Describe();
  return value.is_discarded() ? json::object() : value;
}

class IdentityCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(platform_.StartServer().ok()) << platform_.LogTail("server");
    // Every server has a token service and bootstraps its admin: one without is broken.
    ASSERT_FALSE(platform_.AccessToken().empty())
        << "the server issued no admin access token (no admin identity in its home): "
        << platform_.LogTail("server");
    user_home_ = platform_.home() + "/user-home";
    std::filesystem::create_directories(user_home_);
  }

  // `meridian` as the admin (the server's home).
  CommandResult Admin(const std::vector<std::string>& args) { return platform_.Cli(args); }

  // `meridian` as the second user, in their own home, told where the server is.
  CommandResult User(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"--home",        user_home_,  "--server",
                                     platform_.url(), "--ca-file", platform_.ca_file()};
    argv.insert(argv.end(), args.begin(), args.end());
    return platform_.Cli(argv, {}, /*prepend_home=*/false);
  }

  // Makes a user with a fresh key registered by the admin, holding `role` at "/"; returns
  // {app_id, key_file}.
  std::pair<std::string, std::string> RegisterUser(const std::string& subject,
                                                   const std::string& role) {
    CommandResult key = User({"login", "--new-key", "-o", "json"});
    EXPECT_EQ(key.exit_code, 0) << key.Describe();
    json key_json = ParseOut(key);
    CommandResult app =
        Admin({"identity", "app", "create", "--name", subject, "--user", subject, "-o", "json"});
    EXPECT_EQ(app.exit_code, 0) << app.Describe();
    std::string app_id = ParseOut(app).value("app_id", "");
    CommandResult added = Admin({"identity", "key", "add", "--app", subject, "--public-key",
                                 key_json.value("public_key_file", "")});
    EXPECT_EQ(added.exit_code, 0) << added.Describe();
    CommandResult assigned = Admin(
        {"identity", "role", "assign", "--role", role, "--principal", subject, "--scope", "/"});
    EXPECT_EQ(assigned.exit_code, 0) << assigned.Describe();
    return {app_id, key_json.value("key_file", "")};
  }

  Platform platform_;
  std::string user_home_;
};

TEST_F(IdentityCliTest, NewKeyIsPrivateAndPrintsThePublicKeyForAnAdmin) {
  CommandResult key = User({"login", "--new-key"});
  ASSERT_EQ(key.exit_code, 0) << key.Describe();
  std::string key_file = user_home_ + "/credentials/login.pem";
  struct stat info {};
  ASSERT_EQ(::stat(key_file.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_NE(key.out.find("BEGIN PUBLIC KEY"), std::string::npos) << key.out;
  EXPECT_EQ(key.out.find("PRIVATE KEY"), std::string::npos) << key.out;
  EXPECT_NE(key.out.find("meridian identity key add"), std::string::npos) << key.out;

  // A second --new-key does not overwrite the first.
  CommandResult again = User({"login", "--new-key"});
  EXPECT_NE(again.exit_code, 0) << again.Describe();
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
}

TEST_F(IdentityCliTest, LoginWithARegisteredKeyAndAViewerCannotSubmit) {
  auto [app_id, key_file] = RegisterUser("viewer@example.com", "Viewer");
  ASSERT_FALSE(app_id.empty());

  // Before login the user's home has no identity: the server says 401 and the CLI says how
  // to log in.
  CommandResult anonymous = User({"cloud", "list"});
  EXPECT_EQ(anonymous.exit_code, 6) << anonymous.Describe();
  EXPECT_NE(anonymous.err.find("meridian login"), std::string::npos) << anonymous.err;

  // A key that others can read is refused before anything is sent.
  ASSERT_EQ(::chmod(key_file.c_str(), 0644), 0);
  CommandResult loose = User({"login", "--client-id", app_id, "--key-file", key_file});
  EXPECT_NE(loose.exit_code, 0) << loose.Describe();
  EXPECT_NE(loose.err.find("600"), std::string::npos) << loose.err;
  ASSERT_EQ(::chmod(key_file.c_str(), 0600), 0);

  CommandResult login = User({"login", "--client-id", app_id, "--key-file", key_file});
  ASSERT_EQ(login.exit_code, 0) << login.Describe();
  EXPECT_NE(login.out.find("viewer@example.com"), std::string::npos) << login.out;
  EXPECT_NE(login.out.find("Viewer"), std::string::npos) << login.out;

  // The login is kept: later commands need no flags but the home.
  CommandResult list = platform_.Cli({"--home", user_home_, "cloud", "list"}, {}, false);
  EXPECT_EQ(list.exit_code, 0) << list.Describe();

  std::string job_file = platform_.WriteFile(
      "viewer-job.yaml", "name: not-allowed\nentrypoint: echo hello\nmax_retries: 0\n");
  CommandResult submit =
      platform_.Cli({"--home", user_home_, "job", "submit", "-f", job_file}, {}, false);
  EXPECT_EQ(submit.exit_code, 6) << submit.Describe();
  EXPECT_NE(submit.err.find("Developer"), std::string::npos) << submit.err;

  // A key registered for nobody (or for another app) cannot log in.
  CommandResult wrong = User(
      {"login", "--client-id", "00000000-0000-4000-8000-000000000000", "--key-file", key_file});
  EXPECT_EQ(wrong.exit_code, 6) << wrong.Describe();
}

TEST_F(IdentityCliTest, RoleAssignListRevokeRoundTrip) {
  CommandResult app = Admin({"identity", "app", "create", "--name", "nightly-eval", "-o", "json"});
  ASSERT_EQ(app.exit_code, 0) << app.Describe();
  std::string app_id = ParseOut(app).value("app_id", "");

  CommandResult assign = Admin({"identity", "role", "assign", "--role", "Developer", "--principal",
                                app_id, "--scope", "/clouds/default", "-o", "json"});
  ASSERT_EQ(assign.exit_code, 0) << assign.Describe();
  std::string first_id = ParseOut(assign).value("id", "");
  CommandResult second = Admin(
      {"identity", "role", "assign", "--role", "Viewer", "--principal", app_id, "--scope", "/"});
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  CommandResult duplicate = Admin(
      {"identity", "role", "assign", "--role", "Viewer", "--principal", app_id, "--scope", "/"});
  EXPECT_EQ(duplicate.exit_code, 4) << duplicate.Describe();
  CommandResult bad_role =
      Admin({"identity", "role", "assign", "--role", "Owner", "--principal", app_id});
  EXPECT_EQ(bad_role.exit_code, 2) << bad_role.Describe();

  CommandResult list = Admin({"identity", "role", "list", "--principal", app_id, "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  json items = ParseOut(list).value("items", json::array());
  ASSERT_EQ(items.size(), 2u) << list.out;

  CommandResult table = Admin({"identity", "role", "list", "--principal", app_id});
  EXPECT_NE(table.out.find("/clouds/default"), std::string::npos) << table.out;

  CommandResult by_id = Admin({"identity", "role", "revoke", first_id});
  EXPECT_EQ(by_id.exit_code, 0) << by_id.Describe();
  CommandResult by_grant = Admin(
      {"identity", "role", "revoke", "--role", "Viewer", "--principal", app_id, "--scope", "/"});
  EXPECT_EQ(by_grant.exit_code, 0) << by_grant.Describe();
  CommandResult gone = Admin(
      {"identity", "role", "revoke", "--role", "Viewer", "--principal", app_id, "--scope", "/"});
  EXPECT_EQ(gone.exit_code, 3) << gone.Describe();

  CommandResult empty = Admin({"identity", "role", "list", "--principal", app_id, "-o", "json"});
  EXPECT_TRUE(ParseOut(empty).value("items", json::array()).empty()) << empty.out;
}

TEST_F(IdentityCliTest, FederatedCredentialRulesGiveClearErrors) {
  CommandResult app = Admin({"identity", "app", "create", "--name", "trainer"});
  ASSERT_EQ(app.exit_code, 0) << app.Describe();
  const std::string issuer = "https://issuer.example/cluster-a";
  auto create = [&](const std::string& name, const std::string& issuer_value,
                    const std::string& subject) {
    return Admin({"identity", "fic", "create", "--app", "trainer", "--name", name, "--issuer",
                  issuer_value, "--subject", subject});
  };
  CommandResult ok = create("cluster-a", issuer, "system:serviceaccount:ml:trainer");
  ASSERT_EQ(ok.exit_code, 0) << ok.Describe();

  struct Case {
    const char* what;
    CommandResult result;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back({"name too short", create("ab", issuer, "s1"), "name"});
  cases.push_back({"name with a space", create("bad name", issuer, "s2"), "name"});
  cases.push_back({"name too long", create(std::string(121, 'n'), issuer, "s3"), "name"});
  cases.push_back(
      {"issuer over 600", create("long-issuer", std::string(601, 'i'), "s4"), "issuer"});
  cases.push_back(
      {"subject over 600", create("long-subject", issuer, std::string(601, 's')), "subject"});
  cases.push_back({"issuer+subject twice",
                   create("cluster-a-again", issuer, "system:serviceaccount:ml:trainer"),
                   "issuer"});
  cases.push_back({"name twice", create("cluster-a", issuer, "other"), "already exists"});
  for (const Case& item : cases) {
    EXPECT_NE(item.result.exit_code, 0) << item.what << "\n" << item.result.Describe();
    EXPECT_NE(item.result.err.find(item.message), std::string::npos) << item.what << "\n"
                                                                     << item.result.err;
  }

  // At most 20 per app: 19 more fit, the 21st does not.
  for (int i = 0; i < 19; ++i) {
    CommandResult more = create(fmt::format("extra-{}", i), issuer, fmt::format("sub-{}", i));
    ASSERT_EQ(more.exit_code, 0) << more.Describe();
  }
  CommandResult over = create("one-too-many", issuer, "sub-20");
  EXPECT_NE(over.exit_code, 0) << over.Describe();
  EXPECT_NE(over.err.find("20"), std::string::npos) << over.err;

  CommandResult list = Admin({"identity", "fic", "list", "--app", "trainer", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  json items = ParseOut(list).value("items", json::array());
  ASSERT_EQ(items.size(), 20u);
  EXPECT_EQ(items[0].value("audiences", json::array()),
            json::array({"api://AzureADTokenExchange"}));

  CommandResult removed =
      Admin({"identity", "fic", "delete", "--app", "trainer", "--name", "cluster-a"});
  EXPECT_EQ(removed.exit_code, 0) << removed.Describe();
  CommandResult listed = Admin({"identity", "fic", "list", "--app", "trainer", "-o", "json"});
  EXPECT_EQ(ParseOut(listed).value("items", json::array()).size(), 19u);
}

TEST_F(IdentityCliTest, AuditListShowsTheCallsMadeAndVerifyPasses) {
  CommandResult cloud = Admin({"cloud", "create", "audited"});
  ASSERT_EQ(cloud.exit_code, 0) << cloud.Describe();
  CommandResult app = Admin({"identity", "app", "create", "--name", "audited-app"});
  ASSERT_EQ(app.exit_code, 0) << app.Describe();

  CommandResult list = Admin({"audit", "list", "--limit", "1000", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  json items = ParseOut(list).value("items", json::array());
  bool saw_cloud = false;
  bool saw_app = false;
  bool saw_token = false;
  for (const json& entry : items) {
    std::string action = entry.value("action", "");
    // The admin's calls are recorded under its subject, with their outcome.
    if (action == "cloud.create" && entry.value("actor", "") == "admin" &&
        entry.value("result", "") == "201") {
      saw_cloud = true;
    }
    if (action == "identity.app.create" && entry.value("actor", "") == "admin") saw_app = true;
    if (action == "token.issue") saw_token = true;
    EXPECT_EQ(entry.dump().find(platform_.AccessToken()), std::string::npos)
        << "an audit entry holds a token";
  }
  EXPECT_TRUE(saw_cloud) << list.out;
  EXPECT_TRUE(saw_app) << list.out;
  EXPECT_TRUE(saw_token) << list.out;

  CommandResult tokens = Admin({"audit", "list", "--action", "token.", "--since", "1h"});
  ASSERT_EQ(tokens.exit_code, 0) << tokens.Describe();
  EXPECT_NE(tokens.out.find("token.issue"), std::string::npos) << tokens.out;
  EXPECT_EQ(tokens.out.find("cloud.create"), std::string::npos) << tokens.out;

  CommandResult verify = Admin({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.Describe();
  EXPECT_NE(verify.out.find("intact"), std::string::npos) << verify.out;
}

TEST_F(IdentityCliTest, IdentityTokenPrintsATokenTheApiAccepts) {
  CommandResult token = Admin({"identity", "token", "-o", "json"});
  ASSERT_EQ(token.exit_code, 0) << token.Describe();
  json value = ParseOut(token);
  std::string access_token = value.value("accessToken", "");
  ASSERT_FALSE(access_token.empty()) << token.out;
  int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  EXPECT_GT(value.value("expires_on", int64_t{0}), now_s) << token.out;
  EXPECT_EQ(value.value("tokenType", ""), "Bearer");

  CommandResult tenant = Admin({"identity", "tenant", "-o", "json"});
  ASSERT_EQ(tenant.exit_code, 0) << tenant.Describe();
  EXPECT_EQ(value.value("tenant", ""), ParseOut(tenant).value("tenant_id", "")) << tenant.out;

  // The plain form prints just the token, for $(...).
  CommandResult plain = Admin({"identity", "token"});
  ASSERT_EQ(plain.exit_code, 0) << plain.Describe();
  EXPECT_EQ(plain.out.find(' '), std::string::npos) << plain.out;

  net::HttpClient client = platform_.Client();
  net::HttpClientRequest request;
  request.url = platform_.url() + "/api/v1/clouds";
  request.headers.push_back({"authorization", "Bearer " + access_token});
  Result<net::HttpResponse> with_token = client.Send(request);
  ASSERT_TRUE(with_token.ok()) << with_token.status();
  EXPECT_EQ(with_token->status, 200) << with_token->body;

  // With no identity anywhere, `identity token` says how to log in.
  CommandResult none = User({"identity", "token"});
  EXPECT_NE(none.exit_code, 0) << none.Describe();
  EXPECT_NE(none.err.find("meridian login"), std::string::npos) << none.err;
}

TEST_F(IdentityCliTest, SigningKeyRotationPublishesANewKeyAndTokensKeepWorking) {
  CommandResult before = Admin({"identity", "signing-key", "list", "-o", "json"});
  ASSERT_EQ(before.exit_code, 0) << before.Describe();
  size_t keys_before = ParseOut(before).value("items", json::array()).size();
  ASSERT_GT(keys_before, 0u) << before.out;

  CommandResult rotate = Admin({"identity", "signing-key", "rotate"});
  ASSERT_EQ(rotate.exit_code, 0) << rotate.Describe();
  CommandResult after = Admin({"identity", "signing-key", "list", "-o", "json"});
  ASSERT_EQ(after.exit_code, 0) << after.Describe();
  EXPECT_GT(ParseOut(after).value("items", json::array()).size(), keys_before) << after.out;

  // The admin's calls keep working across the rotation.
  CommandResult list = Admin({"cloud", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.Describe();
}

}  // namespace
}  // namespace meridian::itest
