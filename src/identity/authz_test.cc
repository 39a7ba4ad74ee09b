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
  bool person = true;  // the caller is alice, a user; false: an application holding the grants
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
  Status status = Authorize(Caller{kAlice, c.person, c.grants, std::nullopt}, c.action, c.target);
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
        Case{"ViewerPersonReadsAnyJobsOutput",
             {kViewerProd},
             Action::kReadJobOutput,
             kBobsJob,
             true},
        Case{"ViewerApplicationNotJobOutput",
             {kViewerProd},
             Action::kReadJobOutput,
             kBobsJob,
             false,
             /*person=*/false},
        Case{"ViewerApplicationReadsJobState",
             {kViewerProd},
             Action::kReadJob,
             kBobsJob,
             true,
             /*person=*/false},
        Case{"DeveloperReadsOwnJobsOutput",
             {kDeveloperProd},
             Action::kReadJobOutput,
             kAlicesJob,
             true},
        Case{"DeveloperNotOthersJobOutput",
             {kDeveloperProd},
             Action::kReadJobOutput,
             kBobsJob,
             false},
        Case{"AdminApplicationReadsAnyJobsOutput",
             {kAdminProd},
             Action::kReadJobOutput,
             kBobsJob,
             true,
             /*person=*/false},
        Case{"OperatorNotJobOutput",
             {kOperatorEast},
             Action::kReadJobOutput,
             kBobsJob,
             false,
             /*person=*/false},
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

// A workload token of one attempt: its own live job, read-only, and nothing else.
const AttemptRef kRunning{"job-1", 2, 17};
Caller Workload(AttemptRef attempt, std::vector<RoleGrant> grants = {}) {
  return Caller{"workloads-east-app", false, std::move(grants), std::move(attempt)};
}
Target JobWithLiveAttempt(std::optional<AttemptRef> live) {
  return Target{"prod", "east", kBob, std::move(live)};
}

TEST(WorkloadAttemptRule, ReadsItsOwnLiveJobAndItsOutput) {
  for (Action action : {Action::kReadJob, Action::kReadJobOutput}) {
    Status status = Authorize(Workload(kRunning), action, JobWithLiveAttempt(kRunning));
    EXPECT_TRUE(status.ok()) << ActionName(action) << ": " << status;
  }
}

TEST(WorkloadAttemptRule, CannotChangeItsOwnJob) {
  Status status =
      Authorize(Workload(kRunning), Action::kTerminateJob, JobWithLiveAttempt(kRunning));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(std::string(status.message()).find("workload of job job-1 attempt 2"),
            std::string::npos)
      << status;
}

TEST(WorkloadAttemptRule, NoOtherJobNorAnythingElse) {
  const Target other_job = JobWithLiveAttempt(AttemptRef{"job-2", 2, 17});
  EXPECT_FALSE(Authorize(Workload(kRunning), Action::kReadJob, other_job).ok());
  EXPECT_FALSE(Authorize(Workload(kRunning), Action::kReadJobOutput, other_job).ok());
  EXPECT_FALSE(Authorize(Workload(kRunning), Action::kTerminateJob, other_job).ok());
  // Targets that are not jobs have no live attempt: clouds, resources, identity, audit.
  for (Action action : {Action::kReadCloud, Action::kManageCloud, Action::kSubmitJob,
                        Action::kReadIdentity, Action::kReadAudit, Action::kOperatorConnect}) {
    EXPECT_FALSE(Authorize(Workload(kRunning), action, kEast).ok()) << ActionName(action);
    EXPECT_FALSE(Authorize(Workload(kRunning), action, kGlobal).ok()) << ActionName(action);
  }
}

TEST(WorkloadAttemptRule, AnEndedAttemptIsRefused) {
  // The job's attempts have all ended: none is live.
  EXPECT_FALSE(
      Authorize(Workload(kRunning), Action::kReadJob, JobWithLiveAttempt(std::nullopt)).ok());
  EXPECT_FALSE(
      Authorize(Workload(kRunning), Action::kReadJobOutput, JobWithLiveAttempt(std::nullopt)).ok());
}

TEST(WorkloadAttemptRule, ASupersededAttemptIsRefused) {
  // The job was placed again: a later attempt, or the same attempt at a new epoch.
  for (const AttemptRef& live : {AttemptRef{"job-1", 3, 18}, AttemptRef{"job-1", 2, 18}}) {
    EXPECT_FALSE(Authorize(Workload(kRunning), Action::kReadJob, JobWithLiveAttempt(live)).ok());
    EXPECT_FALSE(
        Authorize(Workload(kRunning), Action::kReadJobOutput, JobWithLiveAttempt(live)).ok());
  }
}

TEST(WorkloadAttemptRule, ATokenWithoutAnAttemptReadsNoJob) {
  Caller no_attempt{"workloads-east-app", false, {}, std::nullopt};
  EXPECT_FALSE(Authorize(no_attempt, Action::kReadJob, JobWithLiveAttempt(kRunning)).ok());
  Caller empty_job = Workload(AttemptRef{"", 0, 0});
  EXPECT_FALSE(
      Authorize(empty_job, Action::kReadJob, JobWithLiveAttempt(AttemptRef{"", 0, 0})).ok());
}

TEST(WorkloadAttemptRule, ARoleAnAdministratorGrantsStillApplies) {
  Caller granted = Workload(kRunning, {kViewerProd});
  EXPECT_TRUE(Authorize(granted, Action::kReadJob, JobWithLiveAttempt(std::nullopt)).ok());
  EXPECT_TRUE(Authorize(granted, Action::kReadCloud, kEast).ok());
  // A workload is not a person: Viewer does not show it other jobs' output.
  EXPECT_FALSE(Authorize(granted, Action::kReadJobOutput, JobWithLiveAttempt(std::nullopt)).ok());
}

}  // namespace
}  // namespace meridian::identity
