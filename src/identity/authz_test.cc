// The role table, row by row: who may do what where.
#include "identity/authz.h"

#include <gtest/gtest.h>

namespace meridian::identity {
namespace {

constexpr char kAlice[] = "alice@example.com";
constexpr char kBob[] = "bob@example.com";

struct Case {
  const char* name;
  std::vector<RoleGrant> grants;
  Action action;
  Target target;
  bool allowed;
};

const Target kProd{"prod", "", ""};
const Target kEast{"prod", "east", ""};
const Target kWest{"prod", "west", ""};
const Target kOtherCloud{"dev", "", ""};
const Target kGlobal{"", "", ""};
const Target kAlicesJob{"prod", "east", kAlice};
const Target kBobsJob{"prod", "east", kBob};

const RoleGrant kAdminAll{Role::kAdmin, "/"};
const RoleGrant kAdminProd{Role::kAdmin, "/clouds/prod"};
const RoleGrant kDeveloperProd{Role::kDeveloper, "/clouds/prod"};
const RoleGrant kViewerProd{Role::kViewer, "/clouds/prod"};
const RoleGrant kOperatorEast{Role::kOperator, "/clouds/prod/resources/east"};

class AuthzTable : public ::testing::TestWithParam<Case> {};

TEST_P(AuthzTable, Decides) {
  const Case& c = GetParam();
  Status status = Authorize(kAlice, c.grants, c.action, c.target);
  if (c.allowed) {
    EXPECT_TRUE(status.ok()) << status;
  } else {
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_NE(std::string(status.message()).find(ActionName(c.action)), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Roles, AuthzTable,
    ::testing::Values(
        Case{"NoGrantsNothing", {}, Action::kReadCloud, kProd, false},
        Case{"AdminAllManagesIdentity", {kAdminAll}, Action::kManageIdentity, kGlobal, true},
        Case{"AdminAllReadsAudit", {kAdminAll}, Action::kReadAudit, kGlobal, true},
        Case{"AdminAllTerminatesAnyJob", {kAdminAll}, Action::kTerminateJob, kBobsJob, true},
        Case{"AdminProdManagesProd", {kAdminProd}, Action::kManageCloud, kEast, true},
        Case{"AdminProdNotOtherCloud", {kAdminProd}, Action::kManageCloud, kOtherCloud, false},
        Case{"AdminProdNotIdentity", {kAdminProd}, Action::kManageIdentity, kGlobal, false},
        Case{"AdminProdNotAudit", {kAdminProd}, Action::kReadAudit, kGlobal, false},
        Case{"DeveloperSubmits", {kDeveloperProd}, Action::kSubmitJob, kEast, true},
        Case{"DeveloperReadsClouds", {kDeveloperProd}, Action::kReadCloud, kProd, true},
        Case{"DeveloperReadsOwnJob", {kDeveloperProd}, Action::kReadJob, kAlicesJob, true},
        Case{
            "DeveloperTerminatesOwnJob", {kDeveloperProd}, Action::kTerminateJob, kAlicesJob, true},
        Case{"DeveloperNotOthersJobRead", {kDeveloperProd}, Action::kReadJob, kBobsJob, false},
        Case{"DeveloperNotOthersJobTerminate",
             {kDeveloperProd},
             Action::kTerminateJob,
             kBobsJob,
             false},
        Case{"DeveloperNotOwnerlessJob", {kDeveloperProd}, Action::kTerminateJob, kEast, false},
        Case{"DeveloperNotManage", {kDeveloperProd}, Action::kManageCloud, kEast, false},
        Case{"DeveloperNotOtherCloud", {kDeveloperProd}, Action::kSubmitJob, kOtherCloud, false},
        Case{"DeveloperNotOperator", {kDeveloperProd}, Action::kOperatorConnect, kEast, false},
        Case{"DeveloperCreatesComputeConfig",
             {kDeveloperProd},
             Action::kCreateComputeConfig,
             kProd,
             true},
        Case{"DeveloperCannotArchiveComputeConfig",
             {kDeveloperProd},
             Action::kArchiveComputeConfig,
             kProd,
             false},
        Case{"ViewerCannotCreateComputeConfig",
             {kViewerProd},
             Action::kCreateComputeConfig,
             kProd,
             false},
        Case{"AdminArchivesComputeConfig", {kAdminAll}, Action::kArchiveComputeConfig, kGlobal, true},
        Case{"ViewerReads", {kViewerProd}, Action::kReadCloud, kEast, true},
        Case{"ViewerReadsAnyJob", {kViewerProd}, Action::kReadJob, kBobsJob, true},
        Case{"ViewerCannotSubmit", {kViewerProd}, Action::kSubmitJob, kEast, false},
        Case{"ViewerCannotTerminate", {kViewerProd}, Action::kTerminateJob, kAlicesJob, false},
        Case{"ViewerNotAudit", {kViewerProd}, Action::kReadAudit, kGlobal, false},
        Case{"OperatorOwnResource", {kOperatorEast}, Action::kOperatorConnect, kEast, true},
        Case{"OperatorNotOtherResource", {kOperatorEast}, Action::kOperatorConnect, kWest, false},
        Case{"OperatorNotResourceWithoutCloud",
             {kOperatorEast},
             Action::kOperatorConnect,
             Target{"", "east", ""},
             false},
        Case{"OperatorNotCloudLevel", {kOperatorEast}, Action::kOperatorConnect, kProd, false},
        Case{"OperatorCannotRead", {kOperatorEast}, Action::kReadCloud, kEast, false},
        Case{"OperatorCannotSubmit", {kOperatorEast}, Action::kSubmitJob, kEast, false},
        Case{"UnparsableScopeIgnored",
             {{Role::kAdmin, "clouds/prod"}},
             Action::kReadCloud,
             kProd,
             false},
        Case{"AnyGrantSuffices", {kViewerProd, kDeveloperProd}, Action::kSubmitJob, kEast, true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace meridian::identity
