#include "cli/api_client.h"

#include <cstdlib>

#include "base/files.h"
#include "base/home.h"
#include "fmt/format.h"
#include "yaml-cpp/yaml.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

}  // namespace

Result<ClientConfig> ResolveClientConfig(const std::string& home_flag,
                                         const std::string& server_flag,
                                         const std::string& ca_flag) {
  ClientConfig config;
  config.home = base::ResolveHome(home_flag);
  config.server_url = !server_flag.empty() ? server_flag : Env("MERIDIAN_SERVER");
  config.ca_file = !ca_flag.empty() ? ca_flag : Env("MERIDIAN_CA_FILE");
  std::string path = config.home + "/config.yaml";
  if (config.server_url.empty() || config.ca_file.empty()) {
    Result<std::string> text = base::ReadFile(path, 1 << 20);
    if (text.ok()) {
      try {
        YAML::Node node = YAML::Load(*text);
        if (config.server_url.empty() && node["server"]) {
          config.server_url = node["server"].as<std::string>();
        }
        if (config.ca_file.empty() && node["ca_file"]) {
          config.ca_file = node["ca_file"].as<std::string>();
        }
      } catch (const YAML::Exception& error) {
        return absl::InvalidArgumentError(fmt::format("{}: {}", path, error.what()));
      }
    }
  }
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
  return config;
}

Status StatusFromResponse(const net::HttpResponse& response) {
  json body = json::parse(response.body, nullptr, false);
  std::string message =
      body.is_object() && body.contains("message") && body["message"].is_string()
          ? body["message"].get<std::string>()
          : fmt::format("HTTP {}: {}", response.status, response.body.substr(0, 200));
  switch (response.status) {
    case 400:
    case 405:
      return absl::InvalidArgumentError(message);
    case 401:
      return absl::UnauthenticatedError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 409: {
      std::string code = body.is_object() ? body.value("code", std::string()) : "";
      if (code == "ALREADY_EXISTS") return absl::AlreadyExistsError(message);
      return absl::FailedPreconditionError(message);
    }
    case 413:
      return absl::ResourceExhaustedError(message);
    case 503:
      return absl::UnavailableError(message);
    case 504:
      return absl::DeadlineExceededError(message);
    default:
      return absl::InternalError(message);
  }
}

ApiClient::ApiClient(ClientConfig config, int timeout_ms)
    : config_(std::move(config)), http_([&] {
        net::HttpClientOptions options;
        options.ca_file = config_.ca_file;
        options.timeout_ms = timeout_ms;
        return options;
      }()) {}

Result<net::HttpResponse> ApiClient::Send(const std::string& method, const std::string& path,
                                          std::string body, const std::string& content_type,
                                          int timeout_ms) {
  net::HttpClientRequest request;
  request.method = method;
  request.url = config_.server_url + path;
  request.body = std::move(body);
  request.timeout_ms = timeout_ms;
  if (!content_type.empty()) request.headers.push_back({"content-type", content_type});
  Result<net::HttpResponse> response = http_.Send(request);
  if (!response.ok()) {
    if (response.status().code() == absl::StatusCode::kUnavailable) {
      return absl::UnavailableError(fmt::format(
          "cannot reach the control plane at {}: {} (is `meridian up` or `meridian server` "
          "running?)",
          config_.server_url, response.status().message()));
    }
    return response.status();
  }
  if (response->status < 200 || response->status >= 300) return StatusFromResponse(*response);
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
