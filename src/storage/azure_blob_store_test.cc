// The Azure Blob client against a scripted transport: signing, authorization, retries and
// parsing, with no network. The same client runs against Azurite in the contract suite.
#include "storage/azure_blob_store.h"

#include <gtest/gtest.h>

#include "storage/azure_shared_key.h"
#include "storage/azure_xml.h"
#include "storage/blob_fault_injector.h"

namespace meridian::storage {
namespace {

constexpr char kDate[] = "Tue, 14 Nov 2023 22:13:20 GMT";  // FakeClock's default start

std::string Header(const net::HttpClientRequest& request, std::string_view name) {
  for (const auto& [key, value] : request.headers) {
    if (key == name) return value;
  }
  return "";
}

TEST(SharedKeyTest, StringToSignFollowsTheDocumentedLayout) {
  const net::HeaderList headers = {{"content-type", "application/octet-stream"},
                                   {"content-length", "5"},
                                   {"if-match", "\"0x1\""},
                                   {"x-ms-version", "2021-08-06"},
                                   {"x-ms-date", kDate},
                                   {"x-ms-meta-owner", " a  b "},
                                   {"x-ms-blob-type", "BlockBlob"}};
  const std::string to_sign =
      SharedKeyStringToSign("PUT", "devstoreaccount1", "/devstoreaccount1/container/dir/a%20b.txt",
                            {{"timeout", "30"}, {"COMP", "block"}}, headers);
  EXPECT_EQ(to_sign,
            "PUT\n\n\n5\n\napplication/octet-stream\n\n\n\"0x1\"\n\n\n\n"
            "x-ms-blob-type:BlockBlob\nx-ms-date:Tue, 14 Nov 2023 22:13:20 GMT\n"
            "x-ms-meta-owner:a  b\nx-ms-version:2021-08-06\n"
            "/devstoreaccount1/devstoreaccount1/container/dir/a%20b.txt\ncomp:block\ntimeout:30");
  // HMAC-SHA256 with the development key, computed independently.
  Result<std::string> authorization =
      SharedKeyAuthorization("devstoreaccount1", kDevelopmentAccountKey, to_sign);
  ASSERT_TRUE(authorization.ok());
  EXPECT_EQ(*authorization,
            "SharedKey devstoreaccount1:C4kJ0nNTS/0AtStXDUdvqjdLDBE0ikrTvysyVj99bn0=");
  EXPECT_FALSE(SharedKeyAuthorization("a", "not base64!", to_sign).ok());
}

TEST(SharedKeyTest, ZeroContentLengthIsSignedAsEmpty) {
  const std::string to_sign = SharedKeyStringToSign("PUT", "acct", "/c", {{"restype", "container"}},
                                                    {{"content-length", "0"}});
  EXPECT_EQ(to_sign, "PUT\n\n\n\n\n\n\n\n\n\n\n\n/acct/c\nrestype:container");
}

TEST(HttpDateTest, FormatsAndParses) {
  EXPECT_EQ(FormatHttpDate(1'700'000'000'000), kDate);
  EXPECT_EQ(*ParseHttpDate(kDate), 1'700'000'000'000);
  EXPECT_FALSE(ParseHttpDate("Tue, 14 Nov 2023 22:13:20").ok());
  EXPECT_FALSE(ParseHttpDate("Tue, 14 Foo 2023 22:13:20 GMT").ok());
}

class AzureBlobStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<AzureBlobStore> MakeStore(AzureBlobConfig config) {
    AzureBlobOptions options;
    options.transport = transport_;
    options.sleep = [this](int64_t ms) {
      sleeps_ms_.push_back(ms);
      clock_.AdvanceMs(ms);
    };
    options.clock = &clock_;
    options.jitter_seed = 7;
    options.retry.max_attempts = 4;
    options.token_source = token_source_;
    Result<std::unique_ptr<AzureBlobStore>> store =
        AzureBlobStore::Create(std::move(config), std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  static AzureBlobConfig KeyConfig(std::string prefix = "") {
    AzureBlobConfig config;
    config.endpoint = "http://127.0.0.1:1/devstoreaccount1";
    config.account = "devstoreaccount1";
    config.container = "container";
    config.prefix = std::move(prefix);
    config.path_style = true;
    config.account_key = kDevelopmentAccountKey;
    return config;
  }

  void SetUp() override { store_ = MakeStore(KeyConfig()); }

  std::shared_ptr<FaultInjectingTransport> transport_ =
      std::make_shared<FaultInjectingTransport>();  // every answer is scripted
  base::FakeClock clock_;
  std::vector<int64_t> sleeps_ms_;
  TokenSource token_source_;
  std::unique_ptr<AzureBlobStore> store_;
};

TEST_F(AzureBlobStoreTest, PutSendsASignedVersionedRequest) {
  transport_->InjectResponse(201, {{"etag", "\"0x8D1\""}});
  Result<std::string> etag =
      store_->Put("dir/a b.txt", "hello", {{"hdi_isfolder", "true"}}, Condition::IfNotExists());
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_EQ(*etag, "\"0x8D1\"");
  ASSERT_EQ(transport_->request_count(), 1);
  const net::HttpClientRequest request = transport_->requests()[0];
  EXPECT_EQ(request.method, "PUT");
  EXPECT_EQ(request.url, "http://127.0.0.1:1/devstoreaccount1/container/dir/a%20b.txt");
  EXPECT_EQ(request.body, "hello");
  EXPECT_EQ(Header(request, "x-ms-version"), "2021-08-06");
  EXPECT_EQ(Header(request, "x-ms-date"), kDate);
  EXPECT_EQ(Header(request, "x-ms-blob-type"), "BlockBlob");
  EXPECT_EQ(Header(request, "x-ms-meta-hdi_isfolder"), "true");
  EXPECT_EQ(Header(request, "if-none-match"), "*");
  EXPECT_EQ(Header(request, "content-md5"), ContentMd5("hello"));
  EXPECT_TRUE(Header(request, "authorization").starts_with("SharedKey devstoreaccount1:"));
}

TEST_F(AzureBlobStoreTest, SasTokenGoesOnTheUrlInsteadOfAnAuthorizationHeader) {
  AzureBlobConfig config = KeyConfig("root/");
  config.account_key.clear();
  config.sas_token = "sv=2021-08-06&sig=abc%3D";
  store_ = MakeStore(config);
  transport_->InjectResponse(201, {{"etag", "\"0x1\""}});
  ASSERT_TRUE(store_->StageBlock("f", Base64Encode("id-1"), "data").ok());
  const net::HttpClientRequest request = transport_->requests()[0];
  EXPECT_EQ(request.url,
            "http://127.0.0.1:1/devstoreaccount1/container/root/f?comp=block&blockid=aWQtMQ%3D%3D&"
            "sv=2021-08-06&sig=abc%3D");
  EXPECT_EQ(Header(request, "authorization"), "");
}

TEST_F(AzureBlobStoreTest, BearerTokensComeFromTheTokenSource) {
  std::string asked_scope;
  token_source_ = [&](const std::string& scope) -> Result<std::string> {
    asked_scope = scope;
    return std::string("token-123");
  };
  AzureBlobConfig config = KeyConfig();
  config.account_key.clear();
  store_ = MakeStore(config);
  transport_->InjectResponse(202);
  ASSERT_TRUE(store_->Delete("x", {}).ok());
  EXPECT_EQ(asked_scope, "https://storage.azure.com/.default");
  EXPECT_EQ(Header(transport_->requests()[0], "authorization"), "Bearer token-123");

  config.endpoint = "http://storage.example.com/devstoreaccount1";
  AzureBlobOptions options;
  options.token_source = token_source_;
  EXPECT_EQ(AzureBlobStore::Create(config, options).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AzureBlobStore::Create(config, {}).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(AzureBlobStoreTest, ServiceUnavailableIsRetriedWithBackoff) {
  transport_->InjectResponse(503, {}, "<Error><Code>ServerBusy</Code></Error>");
  transport_->InjectResponse(201, {{"etag", "\"0x2\""}});
  Result<std::string> etag = store_->Put("x", "data", {}, {});
  ASSERT_TRUE(etag.ok()) << etag.status();
  EXPECT_EQ(transport_->request_count(), 2);
  ASSERT_EQ(sleeps_ms_.size(), 1u);
  EXPECT_GE(sleeps_ms_[0], 200);  // initial backoff 400 ms, half of it jitter
  EXPECT_LE(sleeps_ms_[0], 400);
}

TEST_F(AzureBlobStoreTest, RetryAfterIsHonoured) {
  transport_->InjectResponse(429, {{"retry-after", "7"}});
  transport_->InjectResponse(503, {{"retry-after", FormatHttpDate(clock_.NowUnixMs() + 12'000)}});
  transport_->InjectResponse(202);
  ASSERT_TRUE(store_->Delete("x", {}).ok());
  EXPECT_EQ(sleeps_ms_, (std::vector<int64_t>{7'000, 5'000}));  // the date is 12 s after start
}

TEST_F(AzureBlobStoreTest, TimeoutsAreRetriedThenReported) {
  transport_->InjectError(absl::DeadlineExceededError("timed out"), 4);
  Result<ObjectInfo> info = store_->Head("x");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(info.status().message().find("gave up after 4 attempts"), std::string::npos)
      << info.status();
  EXPECT_EQ(transport_->request_count(), 4);
  ASSERT_EQ(sleeps_ms_.size(), 3u);
  EXPECT_LT(sleeps_ms_[0], sleeps_ms_[2]);  // exponential
}

TEST_F(AzureBlobStoreTest, ServerErrorsThatPersistBecomeUnavailable) {
  transport_->InjectResponse(500, {}, "", 4);
  EXPECT_EQ(store_->Put("x", "d", {}, {}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(transport_->request_count(), 4);
}

TEST_F(AzureBlobStoreTest, ClientErrorsAreNotRetried) {
  struct Case {
    int status;
    std::string code;
    Condition condition;
    absl::StatusCode expected;
  };
  const std::vector<Case> cases = {
      {404, "BlobNotFound", {}, absl::StatusCode::kNotFound},
      {400, "InvalidHeaderValue", {}, absl::StatusCode::kInvalidArgument},
      {403, "AuthenticationFailed", {}, absl::StatusCode::kUnauthenticated},
      {403, "AuthorizationPermissionMismatch", {}, absl::StatusCode::kPermissionDenied},
      {412, "ConditionNotMet", Condition::IfMatch("\"0x1\""),
       absl::StatusCode::kFailedPrecondition},
      {409, "BlobAlreadyExists", Condition::IfNotExists(), absl::StatusCode::kFailedPrecondition},
      {409, "LeaseIdMissing", {}, absl::StatusCode::kAborted},
  };
  for (const Case& c : cases) {
    const int before = transport_->request_count();
    transport_->InjectResponse(c.status, {{"x-ms-error-code", c.code}},
                               "<?xml version=\"1.0\"?><Error><Code>" + c.code +
                                   "</Code><Message>msg\nRequestId:1</Message></Error>");
    Result<std::string> etag = store_->Put("x", "d", {}, c.condition);
    EXPECT_EQ(etag.status().code(), c.expected) << c.status << " " << c.code;
    EXPECT_EQ(transport_->request_count() - before, 1) << c.code;
  }
  EXPECT_TRUE(sleeps_ms_.empty());
}

TEST_F(AzureBlobStoreTest, ReadingAtTheEndGivesEmpty) {
  transport_->InjectResponse(416, {{"x-ms-error-code", "InvalidRange"}});
  transport_->InjectResponse(
      200, {{"content-length", "5"}, {"etag", "\"0x1\""}, {"last-modified", kDate}});
  Result<std::string> data = store_->GetRange("x", 5, -1, {});
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, "");
  EXPECT_EQ(Header(transport_->requests()[0], "x-ms-range"), "bytes=5-");
}

TEST_F(AzureBlobStoreTest, HeadChecksEveryHeader) {
  transport_->InjectResponse(200, {{"content-length", "12"},
                                   {"etag", "\"0x1\""},
                                   {"last-modified", kDate},
                                   {"x-ms-meta-hdi_isfolder", "true"}});
  Result<ObjectInfo> info = store_->Head("d");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, 12);
  EXPECT_EQ(info->last_modified_unix_ms, 1'700'000'000'000);
  EXPECT_EQ(info->metadata, (Metadata{{"hdi_isfolder", "true"}}));

  transport_->InjectResponse(200, {{"etag", "\"0x1\""}, {"last-modified", kDate}});
  EXPECT_EQ(store_->Head("d").status().code(), absl::StatusCode::kInternal);
  transport_->InjectResponse(
      200, {{"content-length", "1"}, {"etag", "\"0x1\""}, {"last-modified", "yesterday"}});
  info = store_->Head("d");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(info.status().message().find("last-modified"), std::string::npos);
}

constexpr char kListing[] = R"(<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1/devstoreaccount1" ContainerName="container">
  <Prefix>root/</Prefix><MaxResults>2</MaxResults>
  <Blobs>
    <Blob><Name>root/a</Name><Properties><Last-Modified>Tue, 14 Nov 2023 22:13:20 GMT</Last-Modified>
      <Etag>0x8DB</Etag><Content-Length>3</Content-Length><Content-MD5>abc=</Content-MD5></Properties>
      <Metadata><HDI_ISFOLDER>true</HDI_ISFOLDER></Metadata></Blob>
    <BlobPrefix><Name>root/dir/</Name></BlobPrefix>
    <Blob><Name Encoded="true">root/%EF%BF%BE</Name><Properties><Last-Modified>Tue, 14 Nov 2023 22:13:20 GMT</Last-Modified>
      <Etag>"0x8DC"</Etag><Content-Length>0</Content-Length></Properties></Blob>
  </Blobs>
  <NextMarker>2!marker</NextMarker>
</EnumerationResults>)";

TEST(ListBlobsXmlTest, ParsesObjectsPrefixesAndMarker) {
  Result<ListPage> page = ParseListBlobsXml(kListing, "root/");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].name, "a");
  EXPECT_EQ(page->objects[0].etag, "\"0x8DB\"");
  EXPECT_EQ(page->objects[0].size, 3);
  EXPECT_EQ(page->objects[0].content_md5, "abc=");
  EXPECT_EQ(page->objects[0].metadata, (Metadata{{"hdi_isfolder", "true"}}));
  EXPECT_EQ(page->objects[1].name, "\xEF\xBF\xBE");
  EXPECT_EQ(page->objects[1].etag, "\"0x8DC\"");
  EXPECT_EQ(page->common_prefixes, (std::vector<std::string>{"dir/"}));
  EXPECT_EQ(page->next_marker, "2!marker");
}

TEST(ListBlobsXmlTest, MalformedListingsNameTheField) {
  const std::string good = kListing;
  const auto replace = [&](std::string_view from, std::string_view to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {good.substr(0, good.size() / 2), "not XML"},
      {replace("<Etag>0x8DB</Etag>", ""), "Blobs/Blob[0]/Properties/Etag"},
      {replace("<Content-Length>3<", "<Content-Length>-3<"), "Content-Length"},
      {replace("<Content-Length>3</Content-Length>", ""), "Content-Length is missing"},
      {replace("Tue, 14 Nov 2023 22:13:20 GMT", "soon"), "Last-Modified"},
      {replace("<Name>root/dir/</Name>", ""), "BlobPrefix[0]/Name"},
      {replace("<Name>root/a</Name>", "<Name>elsewhere/a</Name>"), "outside prefix"},
      {replace("<Blobs>", "<Blobz>"), "not XML"},
      {"<?xml version=\"1.0\"?><Other/>", "EnumerationResults is missing"},
  };
  for (const auto& [xml, expected] : cases) {
    Result<ListPage> page = ParseListBlobsXml(xml, "root/");
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInternal) << expected;
    EXPECT_NE(page.status().message().find(expected), std::string::npos) << page.status();
  }
}

TEST_F(AzureBlobStoreTest, MalformedListingIsAClearErrorNotARetry) {
  transport_->InjectResponse(200, {}, "<EnumerationResults><Blobs><Blob><Name>x</Name>");
  Result<ListPage> page = store_->List({});
  EXPECT_EQ(page.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(page.status().message().find("List Blobs"), std::string::npos) << page.status();
  EXPECT_EQ(transport_->request_count(), 1);
  const std::string url = transport_->requests()[0].url;
  EXPECT_NE(url.find("restype=container&comp=list&include=metadata&maxresults=5000"),
            std::string::npos)
      << url;
}

}  // namespace
}  // namespace meridian::storage
