// `meridian job ...`: submit Anyscale job configs, watch them, read their logs.
#include <sys/stat.h>

#include <filesystem>
#include <iostream>

#include "base/files.h"
#include "base/hash.h"
#include "cli/commands.h"
#include "fmt/format.h"
#include "net/http_types.h"
#include "package/tar_writer.h"
#include "spec/spec_json.h"

namespace meridian::cli {

using nlohmann::json;

namespace {

bool IsRemoteUri(const std::string& value) { return value.find("://") != std::string::npos; }

// The local directory working_dir names (relative to the job file's directory), checked to
// exist; empty when the job has none.
Result<std::filesystem::path> WorkingDirOf(const spec::JobConfig& config,
                                           const std::string& job_file) {
  if (config.working_dir.empty()) return std::filesystem::path();
  if (IsRemoteUri(config.working_dir)) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: working_dir: remote working directories ({}) are not supported yet; use a local "
        "directory",
        job_file, config.working_dir));
  }
  std::filesystem::path dir(config.working_dir);
  if (dir.is_relative()) dir = std::filesystem::path(job_file).parent_path() / dir;
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: working_dir: {} is not a directory (relative paths are taken from the job file's "
        "directory)",
        job_file, dir.string()));
  }
  return dir;
}

// Packs and uploads working_dir; returns the package digest ("" when there is none).
Result<std::string> UploadWorkingDir(ApiClient& client, const spec::JobConfig& config,
                                     const std::string& job_file, bool quiet) {
  ASSIGN_OR_RETURN(std::filesystem::path dir, WorkingDirOf(config, job_file));
  if (dir.empty()) return std::string();
  package::PackOptions options;
  options.excludes = config.excludes;
  Progress packing(fmt::format("Packing {}", dir.string()));
  if (!quiet)
    options.progress = [&packing](int64_t done, int64_t total) { packing.Update(done, total); };
  ASSIGN_OR_RETURN(std::string archive, package::PackDirectory(dir.string(), options));
  std::string digest = "sha256:" + base::Sha256Hex(archive);
  ASSIGN_OR_RETURN(json stat, client.Get("/api/v1/packages/" + digest + "?stat=1"));
  if (stat.value("exists", false)) {
    if (!quiet) packing.Finish(fmt::format("{} (already uploaded)", FormatBytes(archive.size())));
    return digest;
  }
  if (!quiet) packing.Finish(fmt::format("packed to {}, uploading", FormatBytes(archive.size())));
  RETURN_IF_ERROR(client
                      .Send("PUT", "/api/v1/packages/" + digest, std::move(archive),
                            "application/gzip", 600'000)
                      .status());
  return digest;
}

void PrintJobList(const json& list) {
  Table table{{"ID", "NAME", "STATE", "ATTEMPTS", "CLOUD RESOURCE", "CREATED", "MESSAGE"}, {}};
  for (const json& job : list["items"]) {
    std::string message = Str(job, "message");
    if (message.size() > 60) message = message.substr(0, 57) + "...";
    table.rows.push_back({Str(job, "id"), Str(job, "name"), Str(job, "state"), Str(job, "attempts"),
                          Str(job, "cloud_resource"), Str(job, "created_at"), message});
  }
  std::cout << table.Render();
}

void PrintJobStatus(const json& job) {
  std::cout << fmt::format("Job:         {} ({})\n", Str(job, "id"), Str(job, "name"));
  std::cout << fmt::format("State:       {}\n", Str(job, "state"));
  std::cout << fmt::format("Message:     {}\n", Str(job, "message"));
  std::cout << fmt::format("Entrypoint:  {}\n", Str(job["config"], "entrypoint"));
  std::cout << fmt::format("Created:     {}\n", Str(job, "created_at"));
  if (!Str(job, "ended_at").empty())
    std::cout << fmt::format("Ended:       {}\n", Str(job, "ended_at"));
  Table attempts{
      {"#", "STATE", "CLOUD RESOURCE", "REGION", "NODES", "STARTED", "ENDED", "EXIT", "MESSAGE"},
      {}};
  for (const json& attempt : job["attempts"]) {
    std::string nodes;
    for (const json& node : attempt["nodes"]) {
      if (!nodes.empty()) nodes += ",";
      nodes +=
          fmt::format("{}:{}", node.value("instance_type", std::string()), node.value("count", 0));
    }
    int exit_code = attempt.value("exit_code", -1);
    attempts.rows.push_back(
        {Str(attempt, "number"), Str(attempt, "state"), Str(attempt, "cloud_resource"),
         Str(attempt, "region"), nodes, Str(attempt, "started_at"), Str(attempt, "ended_at"),
         exit_code >= 0 ? std::to_string(exit_code) : "", Str(attempt, "message")});
  }
  std::cout << "\nAttempts:\n" << attempts.Render();
  const json& why = job.value("why_pending", json::array());
  if (!why.empty()) {
    std::string state = Str(job, "state");
    std::cout << (state == "FAILED" ? "\nWhy no cloud resource can hold it:\n"
                                    : "\nWhy it is waiting, per cloud resource:\n");
    Table reasons{{"CLOUD RESOURCE", "REASON"}, {}};
    for (const json& item : why) {
      reasons.rows.push_back({Str(item, "cloud_resource"), Str(item, "reason")});
    }
    std::cout << reasons.Render();
  }
  std::cout << "\nEvents:\n";
  for (const json& event : job["events"]) {
    std::cout << fmt::format("  {}  {}\n", Str(event, "time"), Str(event, "message"));
  }
}

int OutcomeExitCode(const std::string& state) {
  if (state == "SUCCEEDED") return 0;
  if (state == "TERMINATED") return kExitJobTerminated;
  return kExitJobFailed;
}

bool IsFinalState(const std::string& state) {
  return state == "SUCCEEDED" || state == "FAILED" || state == "TERMINATED";
}

// Reads the next chunk of an attempt's output; prints it; returns whether it is complete.
Result<bool> PumpLogs(ApiClient& client, const std::string& job_id, int attempt, int64_t& offset,
                      int wait_ms) {
  ASSIGN_OR_RETURN(net::HttpResponse response,
                   client.Send("GET",
                               fmt::format("/api/v1/jobs/{}/logs?attempt={}&offset={}&wait_ms={}",
                                           net::PercentEncode(job_id), attempt, offset, wait_ms),
                               "", "", wait_ms + 30'000));
  std::string start = response.Header("x-meridian-start-offset");
  if (!start.empty() && std::stoll(start) > offset) {
    // The control plane keeps only the newest output of each attempt: say so, on stderr so
    // that the output itself stays as the job wrote it.
    std::cerr << fmt::format(
        "[meridian: {} bytes of older output were dropped; the control plane keeps the newest "
        "output of each attempt]\n",
        std::stoll(start) - offset);
  }
  std::cout << response.body << std::flush;
  std::string next = response.Header("x-meridian-next-offset");
  if (!next.empty()) offset = std::stoll(next);
  return response.Header("x-meridian-complete") == "true";
}

}  // namespace

Result<spec::JobConfig> LoadJobFile(const std::string& file, const std::string& name_override) {
  ASSIGN_OR_RETURN(std::string text, base::ReadFile(file, 1 << 20));
  ASSIGN_OR_RETURN(spec::JobConfig config, spec::ParseJobConfigYaml(text, file));
  if (!name_override.empty()) config.name = name_override;
  RETURN_IF_ERROR(WorkingDirOf(config, file).status());
  for (const std::string& field : spec::IgnoredJobFields(config)) {
    std::cerr << fmt::format(
        "notice: {} is kept with the job but not acted on yet (the LOCAL "
        "stack runs the entrypoint directly on the operator's machine)\n",
        field);
  }
  return config;
}

Result<std::string> SubmitJobFile(ApiClient& client, const std::string& file,
                                  const std::string& name_override, bool quiet) {
  ASSIGN_OR_RETURN(spec::JobConfig config, LoadJobFile(file, name_override));
  ASSIGN_OR_RETURN(std::string package, UploadWorkingDir(client, config, file, quiet));
  json body = {{"config", spec::ToJson(config)}, {"package", package}};
  ASSIGN_OR_RETURN(json job, client.Post("/api/v1/jobs", body));
  return Str(job, "id");
}

Result<int> FollowJob(ApiClient& client, const std::string& job_id, bool logs) {
  std::string path = "/api/v1/jobs/" + net::PercentEncode(job_id);
  int64_t version = -1;
  size_t events_seen = 0;
  int attempt = 0;
  int64_t offset = 0;
  while (true) {
    int wait_ms = logs ? 0 : 30'000;
    ASSIGN_OR_RETURN(
        json job, client.Get(fmt::format("{}?wait_version={}&wait_ms={}", path, version, wait_ms),
                             wait_ms + 30'000));
    version = job.value("version", int64_t{0});
    const json& events = job["events"];
    if (events.size() < events_seen) events_seen = 0;
    for (size_t i = events_seen; i < events.size(); ++i) {
      std::cerr << fmt::format("[{}] {}\n", Str(events[i], "time"), Str(events[i], "message"));
    }
    events_seen = events.size();
    std::string state = Str(job, "state");
    int newest = static_cast<int>(job["attempts"].size());
    if (logs && newest > 0) {
      if (newest != attempt) {
        attempt = newest;
        offset = 0;
      }
      ASSIGN_OR_RETURN(bool complete,
                       PumpLogs(client, job_id, attempt, offset, IsFinalState(state) ? 0 : 1'000));
      if (IsFinalState(state) && !complete) continue;  // drain the rest of the output
    }
    if (IsFinalState(state)) {
      std::cerr << fmt::format("Job {} {}: {}\n", job_id, state, Str(job, "message"));
      return OutcomeExitCode(state);
    }
  }
}

void AddJobCommands(CLI::App& app, Context& context) {
  CLI::App* job = app.add_subcommand("job", "Jobs: submit Anyscale job configs and follow them");
  job->require_subcommand(1);

  static std::string file;
  static std::string name;
  static std::string id;
  static bool wait = false;
  CLI::App* submit = job->add_subcommand(
      "submit",
      "Submit a job from an Anyscale job.yaml. working_dir is packed (honouring excludes)\n"
      "and uploaded; the job is acknowledged once it is durable.\n\nExamples:\n"
      "  meridian job submit -f examples/jobs/hello.yaml\n"
      "  meridian job submit -f examples/jobs/train.yaml --wait");
  submit->add_option("-f,--config-file,--file", file, "job.yaml")->required();
  submit->add_option("--name", name, "Override the job's name");
  submit->add_flag("--wait", wait,
                   "Follow the job's state and logs until it ends; exit with its outcome");
  AddOutputFlag(submit, context);
  // The file is checked before the control plane is looked for, so a bad file is reported as
  // such even where no control plane is configured.
  submit->callback([&context] {
    Result<spec::JobConfig> config = LoadJobFile(file, name);
    if (!config.ok()) {
      context.exit_code = ReportError(config.status());
      return;
    }
    WithClient(context, [&context](ApiClient& client, OutputFormat format) -> Status {
        ASSIGN_OR_RETURN(std::string job_id,
                         SubmitJobFile(client, file, name, format != OutputFormat::kTable));
        if (format != OutputFormat::kTable) {
          ASSIGN_OR_RETURN(json job, client.Get("/api/v1/jobs/" + job_id));
          Print(format, job, [](const json&) {});
        } else {
          std::cout << fmt::format("Submitted job {}\n", job_id);
        }
        if (wait) {
          ASSIGN_OR_RETURN(context.exit_code,
                           FollowJob(client, job_id, format == OutputFormat::kTable));
        } else if (format == OutputFormat::kTable) {
          std::cout << fmt::format("Follow it with: meridian job logs {} --follow\n", job_id);
        }
        return OkStatus();
      })();
  });

  CLI::App* validate = job->add_subcommand(
      "validate",
      "Check a job.yaml without submitting it; needs no control plane. Checks every field and\n"
      "that working_dir exists; a compute_config given by name (my-gpus:2) is resolved only at\n"
      "submit.\n\nExamples:\n"
      "  meridian job validate -f examples/jobs/train.yaml\n"
      "  meridian job validate -f job.yaml -o json   # the job as the server would store it");
  validate->add_option("-f,--config-file,--file", file, "job.yaml")->required();
  AddOutputFlag(validate, context);
  validate->callback([&context] {
    Result<OutputFormat> format = context.Format();
    Result<spec::JobConfig> config =
        format.ok() ? LoadJobFile(file, "") : Result<spec::JobConfig>(format.status());
    if (!config.ok()) {
      context.exit_code = ReportError(config.status());
      return;
    }
    Print(*format, spec::ToJson(*config), [&](const json&) {
      std::cout << fmt::format("{}: valid job '{}'\n", file,
                               config->name.empty() ? "(no name)" : config->name);
      if (!config->compute_config.named.empty()) {
        std::cout << fmt::format(
            "compute_config '{}' names a registered compute config: it is resolved when the job "
            "is submitted\n",
            config->compute_config.named);
      }
    });
  });

  static std::string state;
  static int limit = 50;
  CLI::App* list = job->add_subcommand("list",
                                       "List jobs, newest first\n\nExamples:\n  meridian job "
                                       "list\n  meridian job list --state RUNNING -o json");
  list->add_option("--state", state, "Only jobs in this state")
      ->check(
          CLI::IsMember({"STARTING", "RUNNING", "SUCCEEDED", "FAILED", "TERMINATED", "UNKNOWN"}));
  list->add_option("--limit", limit, "At most this many (1-10000)")->check(CLI::Range(1, 10'000));
  AddOutputFlag(list, context);
  list->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    std::string path = fmt::format("/api/v1/jobs?limit={}", limit);
    if (!state.empty()) path += "&state=" + state;
    ASSIGN_OR_RETURN(json jobs, client.Get(path));
    Print(format, jobs, PrintJobList);
    return OkStatus();
  }));

  CLI::App* status =
      job->add_subcommand("status",
                          "Show a job: state, attempts, placement, times, exit codes, "
                          "events\n\nExample:\n  meridian job status job_abc123");
  status->add_option("id", id, "Job id")->required();
  AddOutputFlag(status, context);
  status->callback(WithClient(context, [](ApiClient& client, OutputFormat format) -> Status {
    ASSIGN_OR_RETURN(json job, client.Get("/api/v1/jobs/" + net::PercentEncode(id)));
    Print(format, job, PrintJobStatus);
    return OkStatus();
  }));

  static bool follow = false;
  static int attempt = 0;
  CLI::App* logs = job->add_subcommand(
      "logs",
      "Print a job's output (stdout and stderr)\n\nExamples:\n  meridian job logs job_abc123\n  "
      "meridian job logs job_abc123 --follow\n  meridian job logs job_abc123 --attempt 1");
  logs->add_option("id", id, "Job id")->required();
  logs->add_flag("-f,--follow", follow, "Keep printing new output until the job ends");
  logs->add_option("--attempt", attempt, "Attempt number (default: the newest)");
  logs->callback(WithClient(context, [&context](ApiClient& client, OutputFormat) -> Status {
    if (follow && attempt == 0) {
      ASSIGN_OR_RETURN(context.exit_code, FollowJob(client, id, true));
      return OkStatus();
    }
    int64_t offset = 0;
    while (true) {
      int64_t before = offset;
      ASSIGN_OR_RETURN(bool complete, PumpLogs(client, id, attempt, offset, follow ? 1'000 : 0));
      // Without --follow, print what is there now and stop when nothing more comes.
      if (complete || (!follow && offset == before)) break;
    }
    return OkStatus();
  }));

  CLI::App* terminate =
      job->add_subcommand("terminate",
                          "Stop a job: SIGTERM, then SIGKILL after a grace period\n\nExample:\n  "
                          "meridian job terminate job_abc123 --wait");
  terminate->add_option("id", id, "Job id")->required();
  terminate->add_flag("--wait", wait, "Wait until it has stopped");
  terminate->callback(WithClient(context, [](ApiClient& client, OutputFormat) -> Status {
    ASSIGN_OR_RETURN(json job, client.Post("/api/v1/jobs/" + net::PercentEncode(id) + "/terminate",
                                           json::object()));
    std::cout << fmt::format("Job {} is {}: {}\n", id, Str(job, "state"), Str(job, "message"));
    if (wait && !IsFinalState(Str(job, "state"))) {
      RETURN_IF_ERROR(FollowJob(client, id, false).status());
    }
    return OkStatus();
  }));

  CLI::App* wait_command =
      job->add_subcommand("wait",
                          "Wait for a job to end; exit 0 if it SUCCEEDED, 1 if it FAILED, 8 if "
                          "TERMINATED\n\nExample:\n  meridian job wait job_abc123 && echo done");
  wait_command->add_option("id", id, "Job id")->required();
  wait_command->callback(WithClient(context, [&context](ApiClient& client, OutputFormat) -> Status {
    ASSIGN_OR_RETURN(context.exit_code, FollowJob(client, id, false));
    return OkStatus();
  }));
}

}  // namespace meridian::cli
