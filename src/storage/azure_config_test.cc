#include "storage/azure_config.h"

#include <gtest/gtest.h>

#include <map>

namespace meridian::storage {
namespace {

EnvLookup Env(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const std::string& name) {
    auto it = values.find(name);
    return it == values.end() ? std::string() : it->second;
  };
}

TEST(AzureConfigTest, AbfssUrl) {
  Result<AzureBlobConfig> config =
      ParseAzureBlobUrl("abfss://data@myaccount.dfs.core.windows.net/team/run%201");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->endpoint, "https://myaccount.blob.core.windows.net");
  EXPECT_EQ(config->account, "myaccount");
  EXPECT_EQ(config->container, "data");
  EXPECT_EQ(config->prefix, "team/run 1/");
  EXPECT_FALSE(config->path_style);
}

TEST(AzureConfigTest, BlobHttpsUrlWithAndWithoutPrefix) {
  Result<AzureBlobConfig> config =
      ParseAzureBlobUrl("https://myaccount.blob.core.windows.net/data/");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->endpoint, "https://myaccount.blob.core.windows.net");
  EXPECT_EQ(config->container, "data");
  EXPECT_EQ(config->prefix, "");
  config = ParseAzureBlobUrl("https://myaccount.blob.core.windows.net/data/a/b?sv=1&sig=x");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->prefix, "a/b/");
  EXPECT_EQ(config->sas_token, "sv=1&sig=x");
}

TEST(AzureConfigTest, PathStyleEndpointForAzurite) {
  Result<AzureBlobConfig> config =
      ParseAzureBlobUrl("http://127.0.0.1:10000/devstoreaccount1/container/prefix");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  EXPECT_EQ(config->account, "devstoreaccount1");
  EXPECT_EQ(config->container, "container");
  EXPECT_EQ(config->prefix, "prefix/");
  EXPECT_TRUE(config->path_style);
}

TEST(AzureConfigTest, BadUrlsNameTheProblem) {
  for (const char* url : {"s3://bucket/x", "abfss://data@myaccount.blob.core.windows.net",
                          "https://myaccount.blob.core.windows.net",
                          "https://myaccount.blob."
                          "core.windows.net/Upper",
                          "http://127.0.0.1:1/devstoreaccount1",
                          "abfss://data@MY_ACCOUNT.dfs.core.windows.net", "no-scheme"}) {
    Result<AzureBlobConfig> config = ParseAzureBlobUrl(url);
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << url;
  }
}

TEST(AzureConfigTest, DevelopmentStorageConnectionString) {
  Result<AzureBlobConfig> config = ResolveAzureBlobConfig(
      "abfss://data@devstoreaccount1.dfs.core.windows.net",
      Env({{"AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  EXPECT_TRUE(config->path_style);
  EXPECT_EQ(config->account_key, kDevelopmentAccountKey);
}

TEST(AzureConfigTest, ConnectionStringFields) {
  const std::string connection =
      "DefaultEndpointsProtocol=https;AccountName=myaccount;AccountKey=a2V5a2V5;"
      "EndpointSuffix=core.chinacloudapi.cn";
  Result<AzureBlobConfig> config =
      ResolveAzureBlobConfig("https://myaccount.blob.core.chinacloudapi.cn/data",
                             Env({{"AZURE_STORAGE_CONNECTION_STRING", connection}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->endpoint, "https://myaccount.blob.core.chinacloudapi.cn");
  EXPECT_EQ(config->account_key, "a2V5a2V5");

  config = ResolveAzureBlobConfig("abfss://data@myaccount.dfs.core.windows.net",
                                  Env({{"AZURE_STORAGE_CONNECTION_STRING",
                                        "BlobEndpoint=http://127.0.0.1:4000/"
                                        "myaccount;SharedAccessSignature=sv=2&sig=abc%3D"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->endpoint, "http://127.0.0.1:4000/myaccount");
  EXPECT_EQ(config->sas_token, "sv=2&sig=abc%3D");
  EXPECT_TRUE(config->account_key.empty());
}

TEST(AzureConfigTest, BlobFuseVariables) {
  Result<AzureBlobConfig> config = ResolveAzureBlobConfig(
      "abfss://data@myaccount.dfs.core.windows.net/p",
      Env({{"AZURE_STORAGE_ACCOUNT", "myaccount"},
           {"AZURE_STORAGE_SAS_TOKEN", "?sv=2&sig=x"},
           {"AZURE_STORAGE_BLOB_ENDPOINT", "https://myaccount.blob.core.windows.net/"}}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->sas_token, "sv=2&sig=x");
  EXPECT_EQ(config->endpoint, "https://myaccount.blob.core.windows.net");
  EXPECT_EQ(config->prefix, "p/");
}

TEST(AzureConfigTest, MismatchedOrBrokenEnvironmentIsRejected) {
  const std::string url = "abfss://data@myaccount.dfs.core.windows.net";
  Result<AzureBlobConfig> config =
      ResolveAzureBlobConfig(url, Env({{"AZURE_STORAGE_ACCOUNT", "other"}}));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("other"), std::string::npos);
  config = ResolveAzureBlobConfig(
      url, Env({{"AZURE_STORAGE_BLOB_ENDPOINT", "http://127.0.0.1:1/devstoreaccount1"}}));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  config = ResolveAzureBlobConfig(url, Env({{"AZURE_STORAGE_ACCESS_KEY", "not base64!"}}));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  config = ResolveAzureBlobConfig(url, Env({{"AZURE_STORAGE_CONNECTION_STRING", "garbage"}}));
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AzureConfigTest, NoCredentialsLeavesBearerTokens) {
  Result<AzureBlobConfig> config =
      ResolveAzureBlobConfig("abfss://data@myaccount.dfs.core.windows.net", Env({}));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->account_key.empty());
  EXPECT_TRUE(config->sas_token.empty());
}

}  // namespace
}  // namespace meridian::storage
