#include "cli/api_client.h"

#include <cstdlib>

#include "api/errors.h"
#include "base/files.h"
#include "base/home.h"
#include "fmt/format.h"
#include "identity/credentials/caching_credential.h"
#include "identity/credentials/default_credential.h"
#include "identity/credentials/private_key_jwt_credential.h"
#include "identity/credentials/workload_identity_credential.h"
#include "yaml-cpp/yaml.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

// A request that got no answer: say which server and how to start one.
Status Unreachable(const std::string& server_url, const Status& status) {
  if (status.code() != absl::StatusCode::kUnavailable) return status;
  return absl::UnavailableError(fmt::format(
      "cannot reach the control plane at {}: {} (is `meridian up` or `meridian server` "
      "running?)",
      server_url, status.message()));
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

constexpr int64_t kMaxConfigBytes = 1 << 20;

// The top-level keys of a YAML file; an empty node when the file does not exist.
Result<YAML::Node> LoadYamlFile(const std::string& path) {
  Result<std::string> text = base::ReadFile(path, kMaxConfigBytes);
  if (!text.ok()) {
    if (text.status().code() == absl::StatusCode::kNotFound) return YAML::Node();
    return text.status();
  }
  try {
    return YAML::Load(*text);
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(fmt::format("{}: {}", path, error.what()));
  }
}

std::string YamlString(const YAML::Node& node, const char* key) {
  if (!node.IsMap() || !node[key] || !node[key].IsScalar()) return "";
  return node[key].as<std::string>();
}

}  // namespace

Status ResolveIdentity(ClientConfig& config) {
  std::string config_path = config.home + "/config.yaml";
  if (!Env("MERIDIAN_CLIENT_ID").empty()) {
    config.client_id = Env("MERIDIAN_CLIENT_ID");
    config.key_file = Env(identity::credentials::kEnvPrivateKeyFile);
    config.identity_source = "$MERIDIAN_CLIENT_ID";
    if (config.key_file.empty()) {
      return absl::InvalidArgumentError(
          "$MERIDIAN_CLIENT_ID is set without $MERIDIAN_PRIVATE_KEY_FILE (the key that proves it)");
    }
    return OkStatus();
  }
  ASSIGN_OR_RETURN(YAML::Node node, LoadYamlFile(config_path));
  if (!YamlString(node, "client_id").empty()) {
    config.client_id = YamlString(node, "client_id");
    config.key_file = YamlString(node, "key_file");
    config.identity_source = config_path;
    if (config.key_file.empty()) {
      return absl::InvalidArgumentError(fmt::format(
          "{}: client_id is set without key_file; run `meridian login` again", config_path));
    }
    return OkStatus();
  }
  namespace creds = identity::credentials;
  if (!Env(creds::kEnvClientId).empty() && !Env(creds::kEnvTenantId).empty() &&
      !Env(creds::kEnvFederatedTokenFile).empty()) {
    config.client_id = Env(creds::kEnvClientId);
    config.tenant_id = Env(creds::kEnvTenantId);
    config.federated_token_file = Env(creds::kEnvFederatedTokenFile);
    config.authority = Env(creds::kEnvAuthorityHost);
    config.identity_source = "$AZURE_FEDERATED_TOKEN_FILE (workload identity)";
    return OkStatus();
  }
  std::string admin_path = config.home + "/credentials/admin.json";
  Result<std::string> admin = base::ReadFile(admin_path, kMaxConfigBytes);
  if (!admin.ok()) {
    if (admin.status().code() == absl::StatusCode::kNotFound) return OkStatus();
    return admin.status();
  }
  json body = json::parse(*admin, nullptr, false);
  if (!body.is_object() || !body.value("client_id", json()).is_string() ||
      !body.value("key_file", json()).is_string()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: expected a JSON object with client_id and key_file", admin_path));
  }
  config.client_id = body["client_id"].get<std::string>();
  config.key_file = body["key_file"].get<std::string>();
  config.identity_source = admin_path;
  return OkStatus();
}

Result<ClientConfig> ResolveClientConfig(const std::string& home_flag,
                                         const std::string& server_flag,
                                         const std::string& ca_flag) {
  ClientConfig config;
  config.home = base::ResolveHome(home_flag);
  config.server_url = !server_flag.empty() ? server_flag : Env("MERIDIAN_SERVER");
  config.ca_file = !ca_flag.empty() ? ca_flag : Env("MERIDIAN_CA_FILE");
  std::string path = config.home + "/config.yaml";
  ASSIGN_OR_RETURN(YAML::Node node, LoadYamlFile(path));
  if (config.server_url.empty()) config.server_url = YamlString(node, "server");
  if (config.ca_file.empty()) config.ca_file = YamlString(node, "ca_file");
  if (config.server_url.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "no control plane configured: start one with `meridian up` (or `meridian server`), "
        "or pass --server https://HOST:PORT (looked in {})",
        path));
  }
  if (config.server_url.rfind("https://", 0) != 0) {
    return absl::InvalidArgumentError(fmt::format(
        "server '{}': meridian speaks HTTPS only; use an https:// URL", config.server_url));
  }
  while (config.server_url.size() > 8 && config.server_url.back() == '/') {
    config.server_url.pop_back();
  }
  RETURN_IF_ERROR(ResolveIdentity(config));
  return config;
}

Status UpdateConfigFile(const std::string& home,
                        const std::vector<std::pair<std::string, std::string>>& updates) {
  std::string path = home + "/config.yaml";
  ASSIGN_OR_RETURN(YAML::Node node, LoadYamlFile(path));
  if (!node.IsMap()) node = YAML::Node(YAML::NodeType::Map);
  for (const auto& [key, value] : updates) {
    if (value.empty()) {
      node.remove(key);
    } else {
      node[key] = value;
    }
  }
  YAML::Emitter out;
  out << node;
  RETURN_IF_ERROR(base::MakeDirs(home, 0700));
  return base::WriteFileAtomic(path, std::string(out.c_str()) + "\n", 0644);
}

Status StatusFromResponse(const net::HttpResponse& response) {
  return api::StatusFromError(response.status, response.body);
}

ApiClient::ApiClient(ClientConfig config, int timeout_ms)
    : config_(std::move(config)), http_([&] {
        net::HttpClientOptions options;
        options.ca_file = config_.ca_file;
        options.timeout_ms = timeout_ms;
        return options;
      }()) {}

Result<Discovery> ApiClient::Discover() {
  if (discovery_.has_value()) return *discovery_;
  net::HttpClientRequest request;
  request.url = config_.server_url + "/.well-known/openid-configuration";
  Result<net::HttpResponse> response = http_.Send(request);
  if (!response.ok()) return Unreachable(config_.server_url, response.status());
  Discovery discovery;
  if (response->status == 404) {
    discovery_ = discovery;  // a control plane without a token service
    return discovery;
  }
  if (response->status != 200) return StatusFromResponse(*response);
  json body = json::parse(response->body, nullptr, false);
  std::string endpoint = body.is_object() ? body.value("token_endpoint", std::string()) : "";
  // {authority}/{tenant}/oauth2/v2.0/token
  const std::string suffix = "/oauth2/v2.0/token";
  size_t suffix_at = endpoint.rfind(suffix);
  size_t tenant_at = suffix_at == std::string::npos || suffix_at == 0
                         ? std::string::npos
                         : endpoint.rfind('/', suffix_at - 1);
  if (suffix_at == std::string::npos || suffix_at + suffix.size() != endpoint.size() ||
      tenant_at == std::string::npos || tenant_at + 1 >= suffix_at) {
    return absl::InternalError(
        fmt::format("{}/.well-known/openid-configuration has no token_endpoint of the form "
                    "{{authority}}/{{tenant}}/oauth2/v2.0/token",
                    config_.server_url));
  }
  discovery.has_identity = true;
  discovery.token_endpoint = endpoint;
  discovery.authority = endpoint.substr(0, tenant_at);
  discovery.tenant_id = endpoint.substr(tenant_at + 1, suffix_at - tenant_at - 1);
  discovery_ = discovery;
  return discovery;
}

Result<std::shared_ptr<identity::credentials::TokenCredential>> ApiClient::Credential() {
  namespace creds = identity::credentials;
  if (credential_ != nullptr) return credential_;
  creds::TokenEndpointOptions endpoint;
  endpoint.http.ca_file = config_.ca_file;
  endpoint.http.timeout_ms = 30'000;
  endpoint.retry.max_attempts = 3;
  std::unique_ptr<creds::TokenCredential> inner;
  if (!config_.federated_token_file.empty() && !config_.authority.empty()) {
    endpoint.authority_host = config_.authority;
    endpoint.tenant_id = config_.tenant_id;
  } else {
    ASSIGN_OR_RETURN(Discovery discovery, Discover());
    if (!discovery.has_identity) {
      return absl::FailedPreconditionError(
          fmt::format("the control plane at {} has no token service (no "
                      "/.well-known/openid-configuration); it admits requests without a token",
                      config_.server_url));
    }
    endpoint.authority_host = discovery.authority;
    endpoint.tenant_id = config_.tenant_id.empty() ? discovery.tenant_id : config_.tenant_id;
  }
  if (!config_.federated_token_file.empty()) {
    creds::WorkloadIdentityOptions options;
    options.client_id = config_.client_id;
    options.federated_token_file = config_.federated_token_file;
    options.endpoint = std::move(endpoint);
    ASSIGN_OR_RETURN(inner, creds::WorkloadIdentityCredential::Create(std::move(options)));
  } else {
    creds::PrivateKeyJwtOptions options;
    options.client_id = config_.client_id;
    options.private_key_file = config_.key_file;
    options.endpoint = std::move(endpoint);
    Result<std::unique_ptr<creds::PrivateKeyJwtCredential>> created =
        creds::PrivateKeyJwtCredential::Create(std::move(options));
    if (!created.ok()) {
      return Status(created.status().code(),
                    fmt::format("the identity from {}: {}", config_.identity_source,
                                created.status().message()));
    }
    inner = std::move(*created);
  }
  credential_ = std::make_shared<creds::CachingCredential>(
      std::shared_ptr<creds::TokenCredential>(std::move(inner)));
  return credential_;
}

Result<identity::credentials::AccessToken> ApiClient::GetToken(const std::string& scope) {
  if (config_.client_id.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "no identity configured in {}: log in with `meridian login --client-id APP_ID "
        "--key-file KEY.pem` (`meridian login --new-key` makes a key for an admin to register)",
        config_.home));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<identity::credentials::TokenCredential> credential,
                   Credential());
  Result<identity::credentials::AccessToken> token = credential->GetToken(scope);
  if (!token.ok()) {
    return Status(
        token.status().code(),
        fmt::format("cannot obtain an access token as {} (from {}): {}", config_.client_id,
                    config_.identity_source, token.status().message()));
  }
  return token;
}

Result<std::string> ApiClient::BearerToken() {
  if (config_.client_id.empty()) return std::string();
  if (config_.federated_token_file.empty() || config_.authority.empty()) {
    ASSIGN_OR_RETURN(Discovery discovery, Discover());
    if (!discovery.has_identity) return std::string();
  }
  ASSIGN_OR_RETURN(identity::credentials::AccessToken token, GetToken(kControlPlaneScope));
  return token.token;
}

namespace {

// Which role allows what Authorize's message says was refused ("<who> may not <action> on
// <what>"), so a 403 tells the user what to ask for.
std::string RoleNeededFor(std::string_view message) {
  static const std::pair<const char*, const char*> kRoles[] = {
      {"may not submit job", "Developer (or Admin)"},
      {"may not terminate job", "Developer for your own jobs, else Admin"},
      {"may not read job", "Viewer (or Developer for your own jobs)"},
      {"may not read cloud", "Viewer"},
      {"may not manage cloud", "Admin"},
      {"may not operator connect", "Operator of that cloud resource"},
      {"may not read identity", "Admin at /"},
      {"may not manage identity", "Admin at /"},
      {"may not read audit", "Admin at /"},
  };
  for (const auto& [phrase, role] : kRoles) {
    if (message.find(phrase) != std::string_view::npos) return role;
  }
  return "";
}

}  // namespace

Status ApiClient::ExplainRefusal(const Status& status, bool sent_token) const {
  std::string message(status.message());
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    if (!sent_token) {
      return absl::UnauthenticatedError(fmt::format(
          "{}: the control plane at {} requires a token and no identity is configured in {}. "
          "Log in with `meridian login --client-id APP_ID --key-file KEY.pem` (`meridian login "
          "--new-key` makes a key for an admin to register), or use the server's own home, "
          "whose credentials/admin.json is the first admin",
          message, config_.server_url, config_.home));
    }
    return absl::UnauthenticatedError(fmt::format(
        "{}: the control plane refused the token of {} (identity from {}). Log in again with "
        "`meridian login --client-id APP_ID --key-file KEY.pem`",
        message, config_.client_id, config_.identity_source));
  }
  if (status.code() == absl::StatusCode::kPermissionDenied) {
    std::string role = RoleNeededFor(message);
    return absl::PermissionDeniedError(fmt::format(
        "{} (signed in as {} from {}). {}Ask an admin: meridian identity role assign --role "
        "ROLE --principal <you> --scope SCOPE",
        message, config_.client_id, config_.identity_source,
        role.empty() ? "" : fmt::format("This needs the {} role. ", role)));
  }
  return status;
}

Result<net::HttpResponse> ApiClient::Send(const std::string& method, const std::string& path,
                                          std::string body, const std::string& content_type,
                                          int timeout_ms) {
  ASSIGN_OR_RETURN(std::string token, BearerToken());
  net::HttpClientRequest request;
  request.method = method;
  request.url = config_.server_url + path;
  request.body = std::move(body);
  request.timeout_ms = timeout_ms;
  if (!content_type.empty()) request.headers.push_back({"content-type", content_type});
  if (!token.empty()) request.headers.push_back({"authorization", "Bearer " + token});
  Result<net::HttpResponse> response = http_.Send(request);
  if (!response.ok()) return Unreachable(config_.server_url, response.status());
  if (response->status < 200 || response->status >= 300) {
    return ExplainRefusal(StatusFromResponse(*response), !token.empty());
  }
  return response;
}

namespace {
Result<json> ParseAnswer(Result<net::HttpResponse> response) {
  if (!response.ok()) return response.status();
  json body = json::parse(response->body, nullptr, false);
  if (body.is_discarded()) {
    return absl::InternalError("the control plane answered with something that is not JSON");
  }
  return body;
}
}  // namespace

Result<json> ApiClient::Get(const std::string& path, int timeout_ms) {
  return ParseAnswer(Send("GET", path, "", "", timeout_ms));
}

Result<json> ApiClient::Post(const std::string& path, const json& body) {
  return ParseAnswer(Send("POST", path, body.dump(), "application/json"));
}

Result<json> ApiClient::Delete(const std::string& path) {
  return ParseAnswer(Send("DELETE", path, "", ""));
}

}  // namespace meridian::cli
