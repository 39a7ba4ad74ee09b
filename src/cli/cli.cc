#include "cli/cli.h"

#include <cstdio>
#include <string_view>

#include "base/log.h"
#include "cli/commands.h"
#include "operator/stacks/local/local_stack.h"

namespace meridian::cli {

Result<ApiClient> Context::Client() const {
  ASSIGN_OR_RETURN(ClientConfig config, ResolveClientConfig(home, server, ca_file));
  return ApiClient(std::move(config));
}

std::string Str(const nlohmann::json& value, const char* key) {
  if (!value.contains(key)) return "";
  const nlohmann::json& item = value[key];
  if (item.is_string()) return item.get<std::string>();
  if (item.is_null()) return "";
  return item.dump();
}

void AddOutputFlag(CLI::App* command, Context& context) {
  command->add_option("-o,--output", context.output, "Output format: table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}));
}

int Main(int argc, char** argv) {
  // The attempt shim is started for every job attempt: skip the CLI parser on that path.
  if (argc == 4 && std::string_view(argv[1]) == "operator" && std::string_view(argv[2]) == "shim") {
    return op::RunShim(argv[3]);
  }
  CLI::App app{
      "meridian runs Ray AI/ML workloads across many clusters in many regions as one pool.\n\n"
      "Start everything on this machine:   meridian up\n"
      "Submit an Anyscale job.yaml:        meridian job submit -f job.yaml --wait\n"
      "See the pool:                       meridian cloud resource list\n"
      "Sign in with a registered key:      meridian login --client-id APP_ID --key-file KEY.pem",
      "meridian"};
  app.require_subcommand(1);
  app.fallthrough();
  Context context;
  app.add_option("--home", context.home,
                 "meridian home directory (default $MERIDIAN_HOME, else ~/.meridian)");
  app.add_option("--server", context.server,
                 "control plane URL, https://HOST:PORT (default from <home>/config.yaml)");
  app.add_option("--ca-file", context.ca_file, "CA certificate to trust for the control plane");
  app.add_option("--log-level", context.log_level, "trace, debug, info, warn or error");

  AddCloudCommands(app, context);
  AddCapacityCommands(app, context);
  AddJobCommands(app, context);
  AddComputeConfigCommands(app, context);
  AddProcessCommands(app, context);
  AddStorageCommands(app, context);
  AddLoginCommands(app, context);
  AddIdentityCommands(app, context);
  AddAuditCommands(app, context);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForAllHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    std::fprintf(stderr, "error: %s\nRun with --help for usage.\n", error.what());
    return 2;
  }
  return context.exit_code;
}

}  // namespace meridian::cli
