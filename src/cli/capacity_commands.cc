// `meridian capacity`: the live capacity every operator reports, by region, cloud resource
// and accelerator.
#include <iostream>

#include "cli/commands.h"
#include "fmt/format.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

// An instance type's shape is under "resources", as in the Helm values it came from.
const json& Resources(const json& type) {
  static const json kNone = json::object();
  auto it = type.find("resources");
  return it != type.end() && it->is_object() ? *it : kNone;
}

std::string Accelerator(const json& type) {
  const json& accelerators = Resources(type).value("accelerators", json::array());
  if (!accelerators.empty()) return accelerators.front().get<std::string>();
  return Resources(type).value("GPU", 0) > 0 ? "GPU" : "-";
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
                              Str(type, "name"), Accelerator(type), Str(Resources(type), "GPU"),
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

std::string Limit(const json& quota, const char* limit, const char* used) {
  if (!quota.contains(limit)) return "-";
  return fmt::format("{}/{}", Str(quota, used), Str(quota, limit));
}

void PrintQuotas(const json& list) {
  Table table{{"ID", "CLOUD", "PROJECT", "REGION", "GPUS USED/MAX", "CPUS USED/MAX",
               "JOBS RUNNING/MAX"},
              {}};
  auto any = [](const json& item, const char* key) {
    std::string value = Str(item, key);
    return value.empty() ? std::string("*") : value;
  };
  for (const json& quota : list["items"]) {
    table.rows.push_back({Str(quota, "id"), any(quota, "cloud"), any(quota, "project"),
                          any(quota, "region"), Limit(quota, "max_gpus", "used_gpus"),
                          Limit(quota, "max_cpus", "used_cpus"),
                          Limit(quota, "max_running_jobs", "running_jobs")});
  }
  std::cout << table.Render();
}

void AddQuotaCommands(CLI::App& app, Context& context) {
  CLI::App* quota = app.add_subcommand(
      "quota",
      "Quotas: limits on the GPUs, CPUs and running jobs of a cloud, a project, a region or\n"
      "any mix of them (for example GPUs per region, mirroring a cloud provider's quota).\n"
      "A job that would exceed one waits, and `meridian job status` names the quota.");
  quota->require_subcommand(1);

  static std::string cloud, project, region;
  static int64_t gpus = -1;
  static double cpus = -1;
  static int jobs = -1;
  CLI::App* set = quota->add_subcommand(
      "set",
      "Limit a scope; empty scope fields match everything\n\n"
      "Examples:\n"
      "  meridian quota set --cloud default --region eastus --gpus 8\n"
      "  meridian quota set --cloud default --project vision --gpus 4 --jobs 10");
  set->add_option("--cloud", cloud, "Cloud the quota applies to (default: every cloud)");
  set->add_option("--project", project, "Job project (job.yaml `project`; default: every project)");
  set->add_option("--region", region, "Region of the cloud resources (default: every region)");
  set->add_option("--gpus", gpus, "Most GPUs held at once")->check(CLI::NonNegativeNumber);
  set->add_option("--cpus", cpus, "Most CPUs held at once")->check(CLI::NonNegativeNumber);
  set->add_option("--jobs", jobs, "Most jobs placed or running at once")
      ->check(CLI::NonNegativeNumber);
  AddOutputFlag(set, context);
  set->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    json body = {{"cloud", cloud}, {"project", project}, {"region", region}};
    if (gpus >= 0) body["max_gpus"] = gpus;
    if (cpus >= 0) body["max_cpus"] = cpus;
    if (jobs >= 0) body["max_running_jobs"] = jobs;
    if (gpus < 0 && cpus < 0 && jobs < 0) {
      return absl::InvalidArgumentError("give at least one limit: --gpus, --cpus or --jobs");
    }
    ASSIGN_OR_RETURN(json created, client.Post("/api/v1/quotas", body));
    Print(format, created, [](const json& value) {
      std::cout << fmt::format("Created quota {}\n", Str(value, "id"));
    });
    return OkStatus();
  }));

  CLI::App* list = quota->add_subcommand(
      "list", "List quotas with what running work uses of each\n\nExample:\n  meridian quota list");
  AddOutputFlag(list, context);
  list->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json quotas, client.Get("/api/v1/quotas"));
    Print(format, quotas, PrintQuotas);
    return OkStatus();
  }));

  static std::string id;
  CLI::App* remove = quota->add_subcommand(
      "delete", "Delete a quota\n\nExample:\n  meridian quota delete quota_abc123");
  remove->add_option("id", id, "Quota id (from `meridian quota list`)")->required();
  AddOutputFlag(remove, context);
  remove->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json deleted, client.Delete("/api/v1/quotas/" + id));
    Print(format, deleted, [](const json&) { std::cout << "Deleted quota " << id << "\n"; });
    return OkStatus();
  }));
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
  AddQuotaCommands(app, context);
}

}  // namespace meridian::cli
