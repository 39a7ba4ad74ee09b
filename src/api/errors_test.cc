#include "api/errors.h"

#include <gtest/gtest.h>

namespace meridian::api {
namespace {

TEST(ErrorsTest, EveryCodeTheServerWritesComesBackFromItsBody) {
  for (absl::StatusCode code :
       {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
        absl::StatusCode::kAlreadyExists, absl::StatusCode::kFailedPrecondition,
        absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded,
        absl::StatusCode::kAborted, absl::StatusCode::kResourceExhausted,
        absl::StatusCode::kUnauthenticated, absl::StatusCode::kPermissionDenied,
        absl::StatusCode::kUnimplemented, absl::StatusCode::kOutOfRange,
        absl::StatusCode::kInternal}) {
    Status sent(code, "what went wrong");
    Status back = StatusFromError(HttpStatusFor(sent), ErrorJson(sent));
    EXPECT_EQ(back.code(), code) << CodeName(code);
    EXPECT_EQ(back.message(), "what went wrong");
  }
}

TEST(ErrorsTest, AlreadyExistsAndFailedPreconditionShareAStatusButNotACode) {
  EXPECT_EQ(HttpStatusFor(absl::AlreadyExistsError("x")), 409);
  EXPECT_EQ(HttpStatusFor(absl::FailedPreconditionError("x")), 409);
  EXPECT_EQ(StatusFromError(409, ErrorJson(absl::AlreadyExistsError("x"))).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(ErrorsTest, AnAnswerWithoutABodyIsMappedFromItsHttpStatus) {
  EXPECT_EQ(StatusFromError(401, "").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(StatusFromError(403, "<html>").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromError(429, "").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromError(502, "bad gateway").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromError(503, "").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromError(504, "").code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(StatusFromError(500, "").code(), absl::StatusCode::kInternal);
  Status text = StatusFromError(502, "bad gateway");
  EXPECT_EQ(text.message(), "HTTP 502: bad gateway");
}

TEST(ErrorsTest, ErrorBodyRoundTripsAndNamesAWrongType) {
  ErrorBody body{"NOT_FOUND", "no job j-1", {{"job_id", "j-1"}}};
  Result<ErrorBody> back = ErrorBodyFromJson(ToJson(body));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, body);
  Result<ErrorBody> wrong = ErrorBodyFromJson(R"({"code": 5, "message": "x"})");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message(), "code: expected a string");
  Result<ErrorBody> detail = ErrorBodyFromJson(R"({"code": "X", "details": {"a": 1}})");
  EXPECT_EQ(detail.status().message(), "details.a: expected a string");
}

TEST(ErrorsTest, AnUnknownFieldInAnErrorBodyIsIgnored) {
  Result<ErrorBody> back =
      ErrorBodyFromJson(R"({"code": "NOT_FOUND", "message": "m", "trace_id": "abc"})");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->code, "NOT_FOUND");
}

TEST(ErrorsTest, OnlyTheThreeRefusalsOfTheCredentialItselfAreFatal) {
  EXPECT_TRUE(
      IsRefusedCredential("token endpoint: HTTP 400: AADSTS700016: Application with "
                          "identifier 'x' was not found"));
  EXPECT_TRUE(IsRefusedCredential("AADSTS70021: No matching federated identity record found"));
  EXPECT_TRUE(IsRefusedCredential("invalid_client: AADSTS700027: bad"));
  EXPECT_FALSE(IsRefusedCredential("token endpoint: HTTP 503: service unavailable"));
  EXPECT_FALSE(IsRefusedCredential("AADSTS700211: No matching federated identity record"));
  EXPECT_FALSE(IsRefusedCredential("AADSTS50058: silent sign-in failed"));
}

}  // namespace
}  // namespace meridian::api
