// The directory against a real SQLite store: every federated-credential rule Entra applies,
// applications and users, registered keys, role assignments, and that all of it survives a
// restart.
#include "identity/directory.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "base/files.h"
#include "identity/guid.h"

namespace meridian::identity {
namespace {

using ::absl::StatusCode;

class DirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/directory_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto store = state::OpenSqliteStore(dir_ + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    Reopen();
    auto app = directory_->CreateApplication({"trainer"});
    ASSERT_TRUE(app.ok()) << app.status();
    app_id_ = app->app_id;
  }
  void TearDown() override {
    directory_.reset();
    store_.reset();
    (void)base::RemoveAll(dir_);
  }
  void Reopen() {
    directory_.reset();
    auto directory = Directory::Open(store_.get(), &clock_);
    ASSERT_TRUE(directory.ok()) << directory.status();
    directory_ = *std::move(directory);
  }

  static FederatedCredential Fic(std::string name,
                                 std::string subject = "system:serviceaccount:ml:a") {
    return FederatedCredential{
        std::move(name), "https://meridian.test/clusters/c/east", std::move(subject), {}, "test"};
  }
  // The status of adding `credential`, asserting that a refusal names `field`.
  Status Add(FederatedCredential credential, std::string_view field = "") {
    Result<FederatedCredential> result = directory_->AddFederatedCredential(app_id_, credential);
    if (!result.ok() && !field.empty()) {
      EXPECT_NE(std::string(result.status().message()).find(field), std::string::npos)
          << result.status();
    }
    return result.status();
  }

  std::string dir_;
  base::FakeClock clock_;
  std::unique_ptr<state::StateStore> store_;
  std::unique_ptr<Directory> directory_;
  std::string app_id_;
};

TEST_F(DirectoryTest, ApplicationsGetGuidsAndSurviveARestart) {
  EXPECT_TRUE(IsGuid(app_id_));
  auto second =
      directory_->CreateApplication({"other", PrincipalKind::kApplication, "", {"Reader"}});
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->app_id, app_id_);
  ASSERT_TRUE(directory_->AddFederatedCredential(app_id_, Fic("east-trainer")).ok());
  Reopen();
  auto app = directory_->GetApplication(app_id_);
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_EQ(app->display_name, "trainer");
  EXPECT_EQ(app->created_ms, clock_.NowUnixMs());
  ASSERT_EQ(app->federated_credentials.size(), 1u);
  EXPECT_EQ(app->federated_credentials[0].audiences,
            std::vector<std::string>{kDefaultFederatedAudience});
  EXPECT_EQ(directory_->ListApplications().size(), 2u);
  EXPECT_EQ(directory_->GetApplication(second->app_id)->app_roles,
            std::vector<std::string>{"Reader"});
  EXPECT_EQ(directory_->GetApplication("nope").status().code(), StatusCode::kNotFound);
}

TEST_F(DirectoryTest, RefusesBadApplicationSpecsNamingTheField) {
  EXPECT_EQ(directory_->CreateApplication({""}).status().code(), StatusCode::kInvalidArgument);
  auto long_name = directory_->CreateApplication({std::string(257, 'a')});
  EXPECT_NE(long_name.status().message().find("display_name"), absl::string_view::npos);
  auto user_without_subject = directory_->CreateApplication({"alice", PrincipalKind::kUser});
  EXPECT_NE(user_without_subject.status().message().find("user_subject"), absl::string_view::npos);
  EXPECT_FALSE(directory_->CreateApplication({"x", PrincipalKind::kUser, NewGuid()}).ok());
}

TEST_F(DirectoryTest, FederatedCredentialNamesFollowEntrasRules) {
  EXPECT_EQ(Add(Fic("ab"), "name").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Add(Fic("abc", "s1")).ok());
  EXPECT_TRUE(Add(Fic(std::string(120, 'n'), "s2")).ok());
  EXPECT_EQ(Add(Fic(std::string(121, 'n'), "s3"), "name").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Add(Fic("A-b_9", "s4")).ok());
  for (const char* bad : {"has space", "dot.ted", "slash/x", "-leading", "_leading", "ünï"}) {
    EXPECT_EQ(Add(Fic(bad, "s5"), "name").code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(DirectoryTest, IssuerAndSubjectAreRequiredAndBounded) {
  FederatedCredential credential = Fic("no-issuer");
  credential.issuer = "";
  EXPECT_EQ(Add(credential, "issuer").code(), StatusCode::kInvalidArgument);
  credential.issuer = "https://x/" + std::string(590, 'i');
  EXPECT_EQ(credential.issuer.size(), 600u);
  EXPECT_TRUE(Add(credential).ok());
  credential.name = "long-issuer";
  credential.issuer += "i";
  EXPECT_EQ(Add(credential, "issuer").code(), StatusCode::kInvalidArgument);

  credential = Fic("no-subject", "");
  EXPECT_EQ(Add(credential, "subject").code(), StatusCode::kInvalidArgument);
  credential = Fic("max-subject", std::string(600, 's'));
  EXPECT_TRUE(Add(credential).ok());
  credential = Fic("long-subject", std::string(601, 's'));
  EXPECT_EQ(Add(credential, "subject").code(), StatusCode::kInvalidArgument);
}

TEST_F(DirectoryTest, ExactlyOneAudienceWithEntrasDefault) {
  FederatedCredential two = Fic("two-audiences");
  two.audiences = {"api://AzureADTokenExchange", "api://other"};
  EXPECT_EQ(Add(two, "audiences").code(), StatusCode::kInvalidArgument);
  FederatedCredential custom = Fic("custom-audience", "s-custom");
  custom.audiences = {"api://meridian-exchange"};
  auto stored = directory_->AddFederatedCredential(app_id_, custom);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->audiences, std::vector<std::string>{"api://meridian-exchange"});
  auto defaulted = directory_->AddFederatedCredential(app_id_, Fic("default-audience", "s-def"));
  ASSERT_TRUE(defaulted.ok());
  EXPECT_EQ(defaulted->audiences, std::vector<std::string>{"api://AzureADTokenExchange"});
}

TEST_F(DirectoryTest, NameAndIssuerSubjectPairAreUniquePerAppButCaseSensitive) {
  ASSERT_TRUE(Add(Fic("first", "system:serviceaccount:ml:a")).ok());
  EXPECT_EQ(Add(Fic("first", "system:serviceaccount:ml:b")).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Add(Fic("second", "system:serviceaccount:ml:a")).code(), StatusCode::kAlreadyExists);
  // Matching is exact and case-sensitive, so a subject differing in case is another subject.
  EXPECT_TRUE(Add(Fic("third", "system:serviceaccount:ML:a")).ok());
  FederatedCredential slash = Fic("fourth", "system:serviceaccount:ml:a");
  slash.issuer += "/";
  EXPECT_TRUE(Add(slash).ok()) << "an issuer with a trailing slash is another issuer";
  // Another application may federate the same issuer and subject.
  auto other = directory_->CreateApplication({"other"});
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(directory_->AddFederatedCredential(other->app_id, Fic("first")).ok());
}

TEST_F(DirectoryTest, AtMostTwentyFederatedCredentialsPerApp) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Add(Fic("fic-" + std::to_string(i), "sub-" + std::to_string(i))).ok()) << i;
  }
  EXPECT_EQ(Add(Fic("fic-20", "sub-20")).code(), StatusCode::kResourceExhausted);
  ASSERT_TRUE(directory_->DeleteFederatedCredential(app_id_, "fic-3").ok());
  EXPECT_TRUE(Add(Fic("fic-20", "sub-20")).ok());
  EXPECT_EQ(directory_->DeleteFederatedCredential(app_id_, "fic-3").code(), StatusCode::kNotFound);
  EXPECT_EQ(Add(Fic("fic-21", "sub-21")).code(), StatusCode::kResourceExhausted);
}

TEST_F(DirectoryTest, CredentialsOfAnUnknownAppAreNotFound) {
  EXPECT_EQ(directory_->AddFederatedCredential(NewGuid(), Fic("abc")).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(directory_->ListFederatedCredentials(NewGuid()).status().code(), StatusCode::kNotFound);
}

TEST_F(DirectoryTest, RegisteredKeysAreParsedOnceAndSurviveARestart) {
  auto signing = SigningKey::Generate(JwtAlg::kES256);
  ASSERT_TRUE(signing.ok());
  auto key = directory_->AddKey(app_id_, (*signing)->public_key()->PublicPem());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->kid, (*signing)->kid());
  EXPECT_EQ(directory_->AddKey(app_id_, (*signing)->public_key()->PublicPem()).status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(directory_->AddKey(app_id_, "garbage").status().code(), StatusCode::kInvalidArgument);
  Reopen();
  auto found = directory_->FindKey(app_id_, key->kid);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->kid(), key->kid);
  ASSERT_TRUE(directory_->RemoveKey(app_id_, key->kid).ok());
  EXPECT_EQ(directory_->FindKey(app_id_, key->kid), nullptr);
}

TEST_F(DirectoryTest, RoleAssignmentsNameExistingPrincipalsAndValidScopes) {
  auto user = directory_->CreateApplication({"Alice", PrincipalKind::kUser, "alice@example.com"});
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->subject(), "alice@example.com");
  EXPECT_EQ(directory_->CreateApplication({"Alice 2", PrincipalKind::kUser, "alice@example.com"})
                .status()
                .code(),
            StatusCode::kAlreadyExists);

  ASSERT_TRUE(directory_->AssignRole(Role::kAdmin, app_id_, "/").ok());
  ASSERT_TRUE(directory_->AssignRole(Role::kDeveloper, "alice@example.com", "/clouds/prod").ok());
  ASSERT_TRUE(
      directory_->AssignRole(Role::kViewer, user->app_id, "/clouds/prod/resources/east").ok());
  EXPECT_EQ(directory_->AssignRole(Role::kAdmin, app_id_, "/").status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(directory_->AssignRole(Role::kAdmin, "bob@example.com", "/").status().code(),
            StatusCode::kNotFound);
  for (const char* bad : {"", "clouds/x", "/clouds/", "/clouds/a b", "/clouds/x/jobs/y",
                          "/clouds/x/resources/", "/clouds/x/resources/y/z"}) {
    auto refused = directory_->AssignRole(Role::kViewer, app_id_, bad);
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(refused.status().message().find("scope"), absl::string_view::npos);
  }

  Reopen();
  std::vector<RoleGrant> grants = directory_->GrantsFor(*directory_->FindApplication(user->app_id));
  ASSERT_EQ(grants.size(), 2u);
  EXPECT_EQ(directory_->ListRoleAssignments(app_id_).size(), 1u);
  EXPECT_EQ(directory_->ListRoleAssignments().size(), 3u);

  std::string id = directory_->ListRoleAssignments(app_id_)[0].id;
  ASSERT_TRUE(directory_->RevokeRoleAssignment(id).ok());
  EXPECT_EQ(directory_->RevokeRoleAssignment(id).code(), StatusCode::kNotFound);
  EXPECT_TRUE(directory_->GrantsFor(*directory_->FindApplication(app_id_)).empty());

  ASSERT_TRUE(directory_->DeleteApplication(user->app_id).ok());
  EXPECT_TRUE(directory_->ListRoleAssignments().empty()) << "a deleted user's roles go with it";
  Reopen();
  EXPECT_TRUE(directory_->ListRoleAssignments().empty());
  EXPECT_EQ(directory_->FindApplication(user->app_id), nullptr);
}

}  // namespace
}  // namespace meridian::identity
