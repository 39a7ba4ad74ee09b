// The API's named compute configs (docs/api.md):
//   GET  /compute-configs[?include_archived=true]   latest version of each name
//   POST /compute-configs {name, config}             version N+1 (Developer, Admin)
//   GET  /compute-configs/NAME[:VERSION]             one version (default: the latest)
//   POST /compute-configs/NAME/archive               no new job may use it (Admin)
// The API view is built here from the stored record; the two are kept apart.
#include <memory>
#include <nlohmann/json.hpp>

#include "base/ids.h"
#include "control/api.h"
#include "control/api_internal.h"
#include "fmt/format.h"
#include "spec/spec_json.h"

namespace meridian::control {

using nlohmann::json;

namespace {

json View(const NamedComputeConfig& record, const ComputeConfigVersion& version) {
  return {{"id", fmt::format("{}:{}", record.name, version.version)},
          {"name", record.name},
          {"version", version.version},
          {"latest_version", record.latest().version},
          {"archived", record.archived},
          {"config", spec::ToJson(version.config)},
          {"created_by", version.created_by},
          {"created_at", base::FormatTimeMs(version.created_unix_ms)}};
}

// Answers a call that made or changed a record with the view of its latest version.
std::function<void(Result<NamedComputeConfig>)> ReplyLatest(net::Responder respond, int status) {
  auto shared = std::make_shared<net::Responder>(std::move(respond));
  return [shared, status](Result<NamedComputeConfig> record) {
    if (!record.ok()) return Reply(std::move(*shared))(record.status());
    (*shared)(JsonResponse(status, View(*record, record->latest())));
  };
}

Result<std::pair<std::string, spec::ComputeConfig>> ParseCreateBody(const json& body) {
  for (const auto& [key, value] : body.items()) {
    if (key != "name" && key != "config") {
      return absl::InvalidArgumentError(
          fmt::format("{}: unknown field (a compute config body has name and config)", key));
    }
  }
  if (!body.contains("name") || !body["name"].is_string()) {
    return absl::InvalidArgumentError("name: required, a string");
  }
  std::string name = body["name"].get<std::string>();
  ASSIGN_OR_RETURN(spec::ComputeConfigRef ref, spec::ParseComputeConfigRef(name));
  if (ref.version != 0) {
    return absl::InvalidArgumentError(
        fmt::format("name: '{}' has a version; versions are numbered by the server", name));
  }
  if (!body.contains("config")) return absl::InvalidArgumentError("config: required");
  Result<spec::ComputeConfig> config = spec::ComputeConfigFromJson(body["config"]);
  if (!config.ok()) {
    return absl::InvalidArgumentError(fmt::format("config.{}", config.status().message()));
  }
  return std::pair{std::move(name), *std::move(config)};
}

}  // namespace

void ApiHandler::HandleComputeConfigs(Call& call) {
  using identity::Action;
  const std::string& method = call.method();
  if (call.Is({"compute-configs"})) {
    if (method == "GET") {
      if (!AllowedSomewhere(call, Action::kReadCloud)) return;
      bool archived_too = QueryString(call.request, "include_archived") == "true";
      json items = json::array();
      for (const NamedComputeConfig& record : plane_->ListComputeConfigs()) {
        if (record.archived && !archived_too) continue;
        items.push_back(View(record, record.latest()));
      }
      return call.respond(JsonResponse(200, {{"items", std::move(items)}}));
    }
    if (method != "POST") return call.BadMethod("GET, POST");
    if (!AllowedSomewhere(call, Action::kCreateComputeConfig)) return;
    Result<json> body = ParseBody(call.request);
    if (!body.ok()) return call.Fail(body.status());
    auto parsed = ParseCreateBody(*body);
    if (!parsed.ok()) return call.Fail(parsed.status());
    return plane_->CreateComputeConfig(std::move(parsed->first), std::move(parsed->second),
                                       call.principal.subject,
                                       ReplyLatest(std::move(call.respond), 201));
  }
  if (call.Is({"compute-configs", "*"})) {
    if (method != "GET") return call.BadMethod("GET");
    if (!AllowedSomewhere(call, Action::kReadCloud)) return;
    Result<spec::ComputeConfigRef> ref = spec::ParseComputeConfigRef(call.parts[1]);
    if (!ref.ok()) return call.Fail(ref.status());
    Result<NamedComputeConfig> record = plane_->GetComputeConfig(ref->name);
    if (!record.ok()) return call.Fail(record.status());
    Result<const ComputeConfigVersion*> version = FindVersion(*record, *ref);
    if (!version.ok()) return call.Fail(version.status());
    return call.respond(JsonResponse(200, View(*record, **version)));
  }
  if (call.Is({"compute-configs", "*", "archive"})) {
    if (method != "POST") return call.BadMethod("POST");
    if (!Allowed(call, Action::kArchiveComputeConfig, {})) return;
    return plane_->ArchiveComputeConfig(call.parts[1], ReplyLatest(std::move(call.respond), 200));
  }
  NotFound(call);
}

}  // namespace meridian::control
