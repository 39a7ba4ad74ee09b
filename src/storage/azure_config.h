// Where an Azure Blob container lives and how to authenticate to it, resolved from the
// URL forms users already write and the environment variables BlobFuse2 and the Azure
// tools read.
//
// URL forms:
//   abfss://container@account.dfs.core.windows.net[/prefix]  (abfs:// too; both use HTTPS
//                                                             and the matching .blob. host)
//   https://account.blob.core.windows.net/container[/prefix]  (any host "<account>.blob.*")
//   http://127.0.0.1:10000/devstoreaccount1/container[/prefix] (path style: any other host,
//                                                             the account is the first segment)
//
// Environment (read through an EnvLookup so tests pass their own):
//   AZURE_STORAGE_CONNECTION_STRING  when set, the only source of account, key, SAS and
//       endpoint: fields DefaultEndpointsProtocol, AccountName, AccountKey, BlobEndpoint,
//       EndpointSuffix, SharedAccessSignature, and UseDevelopmentStorage=true (Azurite's
//       devstoreaccount1 at http://127.0.0.1:10000 with its published development key).
//   otherwise AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_ACCESS_KEY, AZURE_STORAGE_SAS_TOKEN,
//       AZURE_STORAGE_BLOB_ENDPOINT.
// A blob endpoint from the environment replaces the URL's endpoint (so a bucket written as
// abfss://... can be served by a private endpoint or Azurite); its account must match.
// Credentials, first found wins: an account key (Shared Key), a SAS token, else none (the
// store then asks its TokenSource for a bearer token: workload identity).
//
// Errors: kInvalidArgument naming the URL, variable or field that is wrong.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace meridian::storage {

// Returns the value of an environment variable, "" when unset.
using EnvLookup = std::function<std::string(const std::string& name)>;

// The process environment.
EnvLookup ProcessEnv();

// The account name and key Azurite (and the Azure storage emulator) accept; published by
// Microsoft for local development, not a secret.
inline constexpr char kDevelopmentAccount[] = "devstoreaccount1";
inline constexpr char kDevelopmentAccountKey[] =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

struct AzureBlobConfig {
  // scheme://host[:port] plus "/<account>" when path_style; never a trailing '/'.
  std::string endpoint;
  std::string account;
  std::string container;
  std::string prefix;  // "" or a name prefix ending in '/'; object names are relative to it
  bool path_style = false;

  std::string account_key;  // base64; non-empty: Shared Key
  std::string sas_token;    // without a leading '?'; non-empty (and no key): SAS
};

// Parses one of the URL forms above (no credentials).
Result<AzureBlobConfig> ParseAzureBlobUrl(std::string_view url);

// Parses the URL and completes it from the environment.
Result<AzureBlobConfig> ResolveAzureBlobConfig(std::string_view url, const EnvLookup& env);

// True for URLs in one of the forms above (cheap check to choose a backend).
bool LooksLikeAzureBlobUrl(std::string_view url);

}  // namespace meridian::storage
