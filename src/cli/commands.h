// Registration of the CLI's subcommands (CLI11). Internal to the cli component.
#pragma once

#include <functional>
#include <string>

#include "CLI/CLI.hpp"
#include "base/status.h"
#include "cli/api_client.h"
#include "cli/output.h"

namespace meridian::cli {

// Flags every client command accepts, and the exit code the chosen command sets.
struct Context {
  std::string home;
  std::string server;
  std::string ca_file;
  std::string output = "table";
  std::string log_level = "info";
  int exit_code = 0;

  Result<ApiClient> Client() const;
  Result<OutputFormat> Format() const { return ParseOutputFormat(output); }
};

// Adds `-o/--output` to a command that prints data.
void AddOutputFlag(CLI::App* command, Context& context);

void AddCloudCommands(CLI::App& app, Context& context);
void AddJobCommands(CLI::App& app, Context& context);
void AddComputeConfigCommands(CLI::App& app, Context& context);
void AddCapacityCommands(CLI::App& app, Context& context);
void AddProcessCommands(CLI::App& app, Context& context);  // server, operator, up
void AddStorageCommands(CLI::App& app, Context& context);  // storage mount|ls|cat|cp|rm
void AddLoginCommands(CLI::App& app, Context& context);    // login, logout
void AddIdentityCommands(CLI::App& app, Context& context);  // identity app|fic|key|role|token
void AddAuditCommands(CLI::App& app, Context& context);     // audit list|verify

// The text of value[key]: strings as they are, other values as JSON, missing as "".
std::string Str(const nlohmann::json& value, const char* key);

// Runs `action` with a client and the output format, turning errors into the exit code.
template <typename Action>
std::function<void()> WithClient(Context& context, Action action) {
  return [&context, action] {
    Result<OutputFormat> format = context.Format();
    if (!format.ok()) {
      context.exit_code = ReportError(format.status());
      return;
    }
    Result<ApiClient> client = context.Client();
    if (!client.ok()) {
      context.exit_code = ReportError(client.status());
      return;
    }
    Status status = action(*client, *format);
    if (!status.ok()) context.exit_code = ReportError(status);
  };
}

// Shared by `job submit` and `meridian up`: submits the job file, returns the job id.
Result<std::string> SubmitJobFile(ApiClient& client, const std::string& file,
                                  const std::string& name_override, bool quiet);
// Follows a job until it ends, printing state changes and (when `logs`) its output.
// Returns the exit code for the job's outcome.
Result<int> FollowJob(ApiClient& client, const std::string& job_id, bool logs);

}  // namespace meridian::cli
