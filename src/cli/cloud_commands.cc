// `meridian cloud ...` and `meridian cloud resource ...`.
#include <iostream>

#include "base/files.h"
#include "cli/commands.h"
#include "fmt/format.h"
#include "net/http_types.h"
#include "spec/spec_json.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

void PrintClouds(const json& list) {
  Table table{{"NAME", "ID", "CLOUD RESOURCES", "CREATED"}, {}};
  for (const json& cloud : list["items"]) {
    table.rows.push_back({Str(cloud, "name"), Str(cloud, "id"), Str(cloud, "cloud_resources"),
                          Str(cloud, "created_at")});
  }
  std::cout << table.Render();
}

std::string CapacitySummary(const json& resource) {
  std::string out;
  for (const json& type : resource.value("instance_types", json::array())) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{}:{}", type.value("name", std::string()), type.value("total_nodes", 0));
  }
  return out.empty() ? "-" : out;
}

void PrintResources(const json& list) {
  Table table{{"NAME", "CLOUD", "PROVIDER", "STACK", "REGION", "HEALTH", "ACTIVE JOBS", "NODES"},
              {}};
  for (const json& resource : list["items"]) {
    table.rows.push_back({Str(resource, "name"), Str(resource, "cloud"), Str(resource, "provider"),
                          Str(resource, "compute_stack"), Str(resource, "region"),
                          Str(resource, "health"), Str(resource, "active_jobs"),
                          CapacitySummary(resource)});
  }
  std::cout << table.Render();
}

}  // namespace

void AddCloudCommands(CLI::App& app, Context& context) {
  CLI::App* cloud = app.add_subcommand("cloud", "Clouds: named groups of cloud resources");
  cloud->require_subcommand(1);

  static std::string name;
  CLI::App* create = cloud->add_subcommand(
      "create", "Create a cloud\n\nExample:\n  meridian cloud create default");
  create->add_option("name", name, "Cloud name (letters, digits, '_' and '-')")->required();
  AddOutputFlag(create, context);
  create->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json cloud, client.Post("/api/v1/clouds", {{"name", name}}));
    Print(format, cloud, [&](const json& value) {
      std::cout << fmt::format("Created cloud {} ({})\n", Str(value, "name"), Str(value, "id"));
    });
    return OkStatus();
  }));

  CLI::App* list =
      cloud->add_subcommand("list", "List clouds\n\nExample:\n  meridian cloud list -o json");
  AddOutputFlag(list, context);
  list->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json clouds, client.Get("/api/v1/clouds"));
    Print(format, clouds, PrintClouds);
    return OkStatus();
  }));

  CLI::App* describe = cloud->add_subcommand(
      "describe", "Show one cloud\n\nExample:\n  meridian cloud describe default");
  describe->add_option("name", name, "Cloud name or id")->required();
  AddOutputFlag(describe, context);
  describe->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json cloud, client.Get("/api/v1/clouds/" + net::PercentEncode(name)));
    Print(format == OutputFormat::kTable ? OutputFormat::kYaml : format, cloud, [](const json&) {});
    return OkStatus();
  }));

  CLI::App* remove = cloud->add_subcommand(
      "delete",
      "Delete a cloud that has no cloud resources\n\nExample:\n  meridian cloud delete default");
  remove->add_option("name", name, "Cloud name or id")->required();
  remove->callback(WithClient(context, [](ApiClient& client, OutputFormat) -> Status {
    ASSIGN_OR_RETURN(json cloud, client.Delete("/api/v1/clouds/" + net::PercentEncode(name)));
    std::cout << fmt::format("Deleted cloud {}\n", Str(cloud, "name"));
    return OkStatus();
  }));

  // ---- cloud resource ----
  CLI::App* resource = cloud->add_subcommand(
      "resource", "Cloud resources: one cluster in one region, each served by an operator");
  resource->require_subcommand(1);
  static std::string cloud_name;
  static std::string file;
  CLI::App* rcreate = resource->add_subcommand(
      "create",
      "Register a cloud resource from an Anyscale cloud_resource.yaml (accepted verbatim;\n"
      "$VAR and ${VAR} expand from the environment)\n\nExample:\n"
      "  meridian cloud resource create --cloud default -f examples/cloud_resource.yaml");
  rcreate->add_option("--cloud", cloud_name, "Cloud to add it to")->required();
  rcreate->add_option("-f,--file", file, "cloud_resource.yaml")->required();
  AddOutputFlag(rcreate, context);
  rcreate->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(std::string text, base::ReadFile(file, 1 << 20));
    ASSIGN_OR_RETURN(spec::CloudResourceSpec spec,
                     spec::ParseCloudResourceYaml(text, file, spec::ProcessEnv()));
    ASSIGN_OR_RETURN(json created, client.Post(fmt::format("/api/v1/clouds/{}/resources",
                                                           net::PercentEncode(cloud_name)),
                                               spec::ToJson(spec)));
    Print(format, created, [&](const json& value) {
      std::cout << fmt::format(
          "Created cloud resource {} in cloud {} ({} {} in {}).\n"
          "It stays UNKNOWN until its operator connects:\n"
          "  meridian operator --cloud-resource {} --instance-types <helm values.yaml>\n",
          Str(value, "name"), Str(value, "cloud"), Str(value, "provider"),
          Str(value, "compute_stack"), Str(value, "region"), Str(value, "name"));
    });
    return OkStatus();
  }));

  CLI::App* rlist =
      resource->add_subcommand("list",
                               "List cloud resources with their health and nodes\n\nExample:\n  "
                               "meridian cloud resource list --cloud default");
  rlist->add_option("--cloud", cloud_name, "Only this cloud");
  AddOutputFlag(rlist, context);
  rlist->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    std::string path = "/api/v1/resources";
    if (!cloud_name.empty()) path += "?cloud=" + net::PercentEncode(cloud_name);
    ASSIGN_OR_RETURN(json resources, client.Get(path));
    Print(format, resources, PrintResources);
    return OkStatus();
  }));

  CLI::App* rdescribe = resource->add_subcommand(
      "describe",
      "Show one cloud resource\n\nExample:\n  meridian cloud resource describe local-eastus");
  rdescribe->add_option("name", name, "Cloud resource name or id")->required();
  AddOutputFlag(rdescribe, context);
  rdescribe->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json item, client.Get("/api/v1/resources/" + net::PercentEncode(name)));
    Print(format == OutputFormat::kTable ? OutputFormat::kYaml : format, item, [](const json&) {});
    return OkStatus();
  }));

  CLI::App* rdelete = resource->add_subcommand(
      "delete",
      "Delete a cloud resource (refused while it runs workloads)\n\nExample:\n  meridian cloud "
      "resource delete local-eastus");
  rdelete->add_option("name", name, "Cloud resource name or id")->required();
  rdelete->callback(WithClient(context, [](ApiClient& client, OutputFormat) -> Status {
    ASSIGN_OR_RETURN(json item, client.Delete("/api/v1/resources/" + net::PercentEncode(name)));
    std::cout << fmt::format("Deleted cloud resource {}\n", Str(item, "name"));
    return OkStatus();
  }));
}

}  // namespace meridian::cli
