#include "api/operator_protocol.h"

#include <gtest/gtest.h>

namespace meridian::api {
namespace {

OperatorHeartbeat SampleHeartbeat() {
  OperatorHeartbeat body;
  body.operator_id = "op-1";
  body.version = "1.2.3";
  body.protocol_version = OperatorProtocolVersion();
  body.real_gpus = 2;
  ReportedInstanceType type;
  type.type.name = "gpu-small";
  type.type.cpu = 4;
  type.type.gpu = 1;
  type.type.memory_bytes = int64_t{16} << 30;
  type.type.accelerators = {"T4"};
  type.total_nodes = 3;
  type.spot = true;
  type.price_per_hour = 0.5;
  body.instance_types.push_back(type);
  for (int i = 1; i <= 3; ++i) {
    ReportedAttempt attempt;
    attempt.job_id = "job-" + std::to_string(i);
    attempt.attempt = i;
    attempt.epoch = 10 + i;
    attempt.state = "RUNNING";
    attempt.exit_code = -1;
    attempt.started_unix_ms = 1000;
    body.attempts.push_back(attempt);
  }
  return body;
}

// Replaces the first occurrence of `from` in `text`.
std::string Replace(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from << " in " << text;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(OperatorHeartbeatTest, RoundTrips) {
  OperatorHeartbeat body = SampleHeartbeat();
  Result<OperatorHeartbeat> back = OperatorHeartbeatFromJson(ToJson(body));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, body);
}

TEST(OperatorHeartbeatTest, AWrongTypeNamesItsPath) {
  std::string text = ToJson(SampleHeartbeat());
  text = Replace(text, R"("epoch":13)", R"("epoch":"13")");
  Result<OperatorHeartbeat> back = OperatorHeartbeatFromJson(text);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(back.status().message(), "attempts[2].epoch: expected an integer");

  Result<OperatorHeartbeat> market = OperatorHeartbeatFromJson(
      Replace(ToJson(SampleHeartbeat()), R"("market_type":"SPOT")", R"("market_type":"CHEAP")"));
  ASSERT_FALSE(market.ok());
  EXPECT_EQ(market.status().message(),
            "instance_types[0].market_type: 'CHEAP' is not ON_DEMAND or SPOT");

  Result<OperatorHeartbeat> attempts =
      OperatorHeartbeatFromJson(R"({"attempts": {"job_id": "j"}})");
  EXPECT_EQ(attempts.status().message(), "attempts: expected an array");
  Result<OperatorHeartbeat> missing = OperatorHeartbeatFromJson(
      R"({"attempts": [{"attempt": 1, "epoch": 1, "state": "RUNNING"}]})");
  EXPECT_EQ(missing.status().message(), "attempts[0].job_id: required");
  EXPECT_FALSE(OperatorHeartbeatFromJson("[1, 2]").ok());
  EXPECT_FALSE(OperatorHeartbeatFromJson("{").ok());
}

TEST(OperatorHeartbeatTest, AnUnknownFieldFromANewerOperatorIsIgnored) {
  std::string text = ToJson(SampleHeartbeat());
  text = Replace(text, R"({"attempts")", R"({"ray_version":"2.9","attempts")");
  text = Replace(text, R"("job_id":"job-1")", R"("job_id":"job-1","node_ips":["10.0.0.1"])");
  Result<OperatorHeartbeat> back = OperatorHeartbeatFromJson(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, SampleHeartbeat());
}

TEST(OperatorHeartbeatTest, AnIncompatibleProtocolVersionIsRefusedNamingBoth) {
  OperatorHeartbeat body = SampleHeartbeat();
  body.protocol_version = "2.0";
  Result<OperatorHeartbeat> back = OperatorHeartbeatFromJson(ToJson(body));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(back.status().message().find("protocol 2.0"), std::string::npos) << back.status();
  EXPECT_NE(back.status().message().find(OperatorProtocolVersion()), std::string::npos);
  EXPECT_FALSE(CheckOperatorProtocol("one").ok());
  EXPECT_FALSE(CheckOperatorProtocol("1.").ok());
}

TEST(OperatorHeartbeatTest, ANewerMinorVersionAndAnUnversionedOperatorAreAccepted) {
  EXPECT_TRUE(CheckOperatorProtocol("1.7").ok());
  EXPECT_TRUE(CheckOperatorProtocol("1").ok());
  EXPECT_TRUE(CheckOperatorProtocol("").ok());
  Result<OperatorHeartbeat> old = OperatorHeartbeatFromJson(R"({"operator_id": "op-1"})");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->operator_id, "op-1");
}

TEST(HeartbeatAnswerTest, RoundTripsAndNamesAWrongType) {
  HeartbeatAnswer answer{500, 10'000, "17.3"};
  Result<HeartbeatAnswer> back = HeartbeatAnswerFromJson(ToJson(answer));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, answer);
  EXPECT_EQ(HeartbeatAnswerFromJson(R"({"heartbeat_interval_ms": 1.5})").status().message(),
            "heartbeat_interval_ms: expected an integer");
  EXPECT_TRUE(HeartbeatAnswerFromJson(R"({"assignments_version": "1", "new": {}})").ok());
}

AssignmentList SampleAssignments() {
  AssignmentList list;
  list.version = "1700000000000.4";
  list.cloud_resource = "east";
  list.region = "eastus";
  list.object_storage = "https://acct.blob.core.windows.net/bucket";
  list.workload_identity = WorkloadIdentity{"client", "tenant", "https://cp:8443", 600};
  Assignment a;
  a.job_id = "job-1";
  a.job_name = "train";
  a.attempt = 2;
  a.epoch = 7;
  a.entrypoint = "python train.py";
  a.env_vars = {{"A", "1"}};
  a.package = "sha256:00";
  a.timeout_s = 60;
  a.nodes = {{"gpu-small", 2}};
  a.gpus = 2;
  a.terminate = true;
  a.workload_identity = list.workload_identity;
  list.assignments.push_back(a);
  a.job_id = "job-2";
  a.workload_identity.reset();
  a.terminate = false;
  list.assignments.push_back(a);
  return list;
}

TEST(AssignmentListTest, RoundTrips) {
  AssignmentList list = SampleAssignments();
  Result<AssignmentList> back = AssignmentListFromJson(ToJson(list));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, list);
}

TEST(AssignmentListTest, AWrongTypeNamesItsPath) {
  std::string text = ToJson(SampleAssignments());
  Result<AssignmentList> count =
      AssignmentListFromJson(Replace(text, R"("count":2)", R"("count":true)"));
  EXPECT_EQ(count.status().message(), "assignments[0].nodes[0].count: expected an integer");
  Result<AssignmentList> env = AssignmentListFromJson(Replace(text, R"("A":"1")", R"("A":1)"));
  EXPECT_EQ(env.status().message(), "assignments[0].env_vars.A: expected a string");
  Result<AssignmentList> lifetime = AssignmentListFromJson(
      Replace(text, R"("token_lifetime_s":600)", R"("token_lifetime_s":"600")"));
  EXPECT_EQ(lifetime.status().message(),
            "assignments[0].workload_identity.token_lifetime_s: expected an integer");
}

TEST(AssignmentListTest, AnUnknownFieldIsIgnored) {
  std::string text = ToJson(SampleAssignments());
  text = Replace(text, R"("gpus":2)", R"("gpus":2,"ray_version":"2.9")");
  text = Replace(text, R"({"assignments")", R"({"priority_classes":[1],"assignments")");
  Result<AssignmentList> back = AssignmentListFromJson(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, SampleAssignments());
}

TEST(WorkloadTokenTest, RequestRoundTripsAndTheAttemptComesWhole) {
  WorkloadTokenRequest request{"workload", 600, AttemptRef{"job-1", 2, 7}};
  Result<WorkloadTokenRequest> back = WorkloadTokenRequestFromJson(ToJson(request));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, request);
  WorkloadTokenRequest bare{"", std::nullopt, std::nullopt};
  EXPECT_EQ(*WorkloadTokenRequestFromJson(ToJson(bare)), bare);
  Result<WorkloadTokenRequest> partial =
      WorkloadTokenRequestFromJson(R"({"job_id": "job-1", "attempt": 2})");
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("epoch: required"), std::string::npos);
  EXPECT_EQ(WorkloadTokenRequestFromJson(R"({"lifetime_s": "1h"})").status().message(),
            "lifetime_s: expected an integer");
  EXPECT_TRUE(WorkloadTokenRequestFromJson(R"({"audience": "x"})").ok());
}

TEST(WorkloadTokenTest, AnswerRoundTrips) {
  WorkloadToken token{"eyJ.x.y", 1700000600, 600};
  EXPECT_EQ(*WorkloadTokenFromJson(ToJson(token)), token);
  EXPECT_EQ(WorkloadTokenFromJson(R"({"lifetime_s": 5})").status().message(), "token: required");
}

TEST(LogChunkRefTest, QueryRoundTripsAndAnOffsetIsRequired) {
  LogChunkRef chunk{"job-1", 2, 7, 4096};
  EXPECT_EQ(*LogChunkRefFromQuery(ToQuery(chunk)), chunk);
  EXPECT_EQ(LogChunkRefFromQuery({{"job_id", "j"}}).status().message(),
            "query parameter offset: required");
  EXPECT_EQ(LogChunkRefFromQuery({{"offset", "0"}, {"epoch", "x"}}).status().message(),
            "query parameter epoch: expected an integer, got 'x'");
}

}  // namespace
}  // namespace meridian::api
