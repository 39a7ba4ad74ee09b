// `meridian capacity`: the live capacity every operator reports, by region, cloud resource
// and accelerator.
#include <iostream>

#include "cli/commands.h"
#include "fmt/format.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

std::string Accelerator(const json& type) {
  const json& accelerators = type.value("accelerators", json::array());
  if (!accelerators.empty()) return accelerators.front().get<std::string>();
  return type.value("GPU", 0) > 0 ? "GPU" : "-";
}

std::string Price(const json& type) {
  return type.contains("price_per_hour") ? fmt::format("{:.2f}", type["price_per_hour"].get<double>())
                                         : "-";
}

void PrintCapacity(const json& capacity, const std::string& region_filter) {
  Table table{{"REGION", "CLOUD RESOURCE", "HEALTH", "INSTANCE TYPE", "ACCELERATOR", "GPUS/NODE",
               "MARKET", "TOTAL", "ALLOCATED", "FREE", "PRICE/H"},
              {}};
  for (const json& region : capacity["regions"]) {
    if (!region_filter.empty() && region["region"] != region_filter) continue;
    for (const json& resource : region["cloud_resources"]) {
      std::string health = resource["health"].get<std::string>();
      if (!resource.value("trusted", true)) health += " (probation)";
      const json& types = resource["instance_types"];
      if (types.empty()) {
        table.rows.push_back({Str(region, "region"), Str(resource, "name"), health,
                              "(not reported)", "", "", "", "", "", "", ""});
      }
      for (const json& type : types) {
        table.rows.push_back({Str(region, "region"), Str(resource, "name"), health,
                              Str(type, "name"), Accelerator(type), Str(type, "GPU"),
                              Str(type, "market_type"), Str(type, "total_nodes"),
                              Str(type, "allocated_nodes"), Str(type, "free_nodes"), Price(type)});
      }
    }
  }
  std::cout << table.Render();
  std::cout << "\n";
  Table totals{{"REGION", "NODES FREE/TOTAL", "GPUS FREE/TOTAL", "CPUS FREE/TOTAL"}, {}};
  for (const json& region : capacity["regions"]) {
    if (!region_filter.empty() && region["region"] != region_filter) continue;
    totals.rows.push_back(
        {Str(region, "region"), fmt::format("{}/{}", Str(region, "nodes_free"), Str(region, "nodes_total")),
         fmt::format("{}/{}", Str(region, "gpus_free"), Str(region, "gpus_total")),
         fmt::format("{:g}/{:g}", region["cpus_free"].get<double>(),
                     region["cpus_total"].get<double>())});
  }
  std::cout << totals.Render();
  if (!capacity["accelerators"].empty()) {
    std::cout << "\n";
    Table accelerators{{"ACCELERATOR", "GPUS FREE/TOTAL"}, {}};
    for (const json& item : capacity["accelerators"]) {
      accelerators.rows.push_back(
          {Str(item, "accelerator"),
           fmt::format("{}/{}", Str(item, "gpus_free"), Str(item, "gpus_total"))});
    }
    std::cout << accelerators.Render();
  }
}

}  // namespace

void AddCapacityCommands(CLI::App& app, Context& context) {
  static std::string region;
  CLI::App* capacity = app.add_subcommand(
      "capacity",
      "Show live capacity: every cloud resource's instance types with total, allocated and\n"
      "free nodes, by region, with totals per region and per accelerator. Free nodes of a\n"
      "resource that is not HEALTHY (or is on probation after flapping) count as not free.\n\n"
      "Examples:\n"
      "  meridian capacity\n"
      "  meridian capacity --region westus\n"
      "  meridian capacity -o json | jq '.accelerators'");
  capacity->add_option("--region", region, "Only this region (the table; JSON is always whole)");
  AddOutputFlag(capacity, context);
  capacity->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json result, client.Get("/api/v1/capacity"));
    Print(format, result, [](const json& value) { PrintCapacity(value, region); });
    return OkStatus();
  }));
}

}  // namespace meridian::cli
