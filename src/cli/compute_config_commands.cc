// `meridian compute-config create|list|describe|archive`: named, versioned compute configs,
// as Anyscale users keep them. A job names one with `compute_config: NAME[:VERSION]`.
#include <iostream>

#include "base/files.h"
#include "cli/commands.h"
#include "fmt/format.h"
#include "net/http_types.h"
#include "spec/spec_json.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

void PrintVersion(const json& view) {
  std::cout << fmt::format("Compute config: {} (version {} of {}{})\n", Str(view, "name"),
                           Str(view, "version"), Str(view, "latest_version"),
                           view.value("archived", false) ? ", archived" : "");
  std::cout << fmt::format("Created:        {} by {}\n", Str(view, "created_at"),
                           Str(view, "created_by"));
  std::cout << ToYaml(view.value("config", json::object()));
}

void PrintList(const json& list) {
  Table table{{"NAME", "LATEST VERSION", "ARCHIVED", "CREATED BY", "CREATED"}, {}};
  for (const json& item : list["items"]) {
    table.rows.push_back({Str(item, "name"), Str(item, "latest_version"),
                          item.value("archived", false) ? "yes" : "no", Str(item, "created_by"),
                          Str(item, "created_at")});
  }
  std::cout << table.Render();
}

}  // namespace

void AddComputeConfigCommands(CLI::App& app, Context& context) {
  CLI::App* group = app.add_subcommand(
      "compute-config",
      "Named compute configs: a cluster shape registered once and used by name in job.yaml\n"
      "(`compute_config: my-gpus` for the latest version, `my-gpus:2` for version 2). Each\n"
      "create of an existing name adds a version; a submitted job keeps the copy it took.");
  group->require_subcommand(1);

  static std::string name, file, ref;
  static bool archived_too = false;
  CLI::App* create = group->add_subcommand(
      "create",
      "Register a compute config, or a new version of an existing name. The file holds what a\n"
      "job.yaml writes under compute_config (cloud_resource, head_node, worker_nodes, ...).\n\n"
      "Examples:\n"
      "  meridian compute-config create -n my-gpus -f examples/compute-configs/gpus.yaml\n"
      "  meridian compute-config create -n my-gpus -f gpus-v2.yaml -o json");
  create->add_option("-n,--name", name, "Name (letters, digits, '.', '_', '-')")->required();
  create->add_option("-f,--config-file,--file", file, "compute config YAML")->required();
  AddOutputFlag(create, context);
  create->callback([&context] {
    // The file is checked before the control plane is looked for.
    Result<spec::ComputeConfig> config = [&]() -> Result<spec::ComputeConfig> {
      ASSIGN_OR_RETURN(std::string text, base::ReadFile(file, 1 << 20));
      return spec::ParseComputeConfigYaml(text, file);
    }();
    if (!config.ok()) {
      context.exit_code = ReportError(config.status());
      return;
    }
    WithClient(context, [&](ApiClient& client, OutputFormat format) -> Status {
      json body = {{"name", name}, {"config", spec::ToJson(*config)}};
      ASSIGN_OR_RETURN(json created, client.Post("/api/v1/compute-configs", body));
      Print(format, created, [](const json& view) {
        std::cout << fmt::format(
            "Created compute config {} version {}; use it in a job as\n"
            "  compute_config: {}\n",
            Str(view, "name"), Str(view, "version"), Str(view, "id"));
      });
      return OkStatus();
    })();
  });

  CLI::App* list =
      group->add_subcommand("list",
                            "List compute configs (the latest version of each)\n\nExamples:\n"
                            "  meridian compute-config list\n"
                            "  meridian compute-config list --include-archived -o json");
  list->add_flag("--include-archived", archived_too, "Show archived names too");
  AddOutputFlag(list, context);
  list->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json listing, client.Get(std::string("/api/v1/compute-configs") +
                                              (archived_too ? "?include_archived=true" : "")));
    Print(format, listing, PrintList);
    return OkStatus();
  }));

  CLI::App* describe = group->add_subcommand(
      "describe",
      "Show one version of a compute config (default: the latest)\n\nExamples:\n"
      "  meridian compute-config describe my-gpus\n"
      "  meridian compute-config describe my-gpus:1 -o yaml");
  describe->add_option("name", ref, "NAME or NAME:VERSION")->required();
  AddOutputFlag(describe, context);
  describe->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json view, client.Get("/api/v1/compute-configs/" + net::PercentEncode(ref)));
    Print(format, view, PrintVersion);
    return OkStatus();
  }));

  CLI::App* archive = group->add_subcommand(
      "archive",
      "Archive a compute config: no new job may use any of its versions; submitted jobs keep\n"
      "their copies. Needs the Admin role.\n\nExample:\n"
      "  meridian compute-config archive my-gpus");
  archive->add_option("name", ref, "NAME")->required();
  AddOutputFlag(archive, context);
  archive->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json view,
                     client.Post("/api/v1/compute-configs/" + net::PercentEncode(ref) + "/archive",
                                 json::object()));
    Print(format, view, [](const json& value) {
      std::cout << fmt::format("Archived compute config {}\n", Str(value, "name"));
    });
    return OkStatus();
  }));
}

}  // namespace meridian::cli
