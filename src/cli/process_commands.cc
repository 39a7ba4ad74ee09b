// `meridian server`, `meridian operator` and `meridian up`: the long-running processes.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <variant>

#include "base/hash.h"
#include "base/files.h"
#include "base/home.h"
#include "base/log.h"
#include "cli/commands.h"
#include "cli/up.h"
#include "control/server.h"
#include "fmt/format.h"
#include "identity/credentials/caching_credential.h"
#include "identity/credentials/workload_identity_credential.h"
#include "operator/agent.h"
#include "operator/cluster_storage.h"
#include "operator/stacks/local/local_stack.h"
#include "spdlog/spdlog.h"

namespace meridian::cli {
namespace {

namespace creds = identity::credentials;

// The operator's credential: workload identity from AZURE_CLIENT_ID, AZURE_TENANT_ID,
// AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST when set (a Kubernetes pod, a
// workload-identity webhook), else from <home>/clusters/<resource>/operator.json, which the
// server writes for its LOCAL resources. nullptr when neither exists.
Result<std::shared_ptr<creds::TokenCredential>> OperatorCredential(const ClientConfig& client,
                                                                   const std::string& resource) {
  creds::TokenEndpointOptions endpoint;
  endpoint.http.ca_file = client.ca_file;
  creds::EnvLookup env = creds::ProcessEnvironment();
  std::unique_ptr<creds::WorkloadIdentityCredential> credential;
  if (!env(creds::kEnvFederatedTokenFile).empty()) {
    ASSIGN_OR_RETURN(credential, creds::WorkloadIdentityCredential::FromEnvironment(env, endpoint));
  } else {
    std::string path = fmt::format("{}/clusters/{}/operator.json", client.home, resource);
    if (!base::PathExists(path)) return std::shared_ptr<creds::TokenCredential>();
    ASSIGN_OR_RETURN(std::string text, base::ReadFile(path, 1 << 20));
    nlohmann::json config = nlohmann::json::parse(text, nullptr, false);
    if (!config.is_object()) {
      return absl::InvalidArgumentError(fmt::format("{}: not a JSON object", path));
    }
    creds::WorkloadIdentityOptions options;
    options.client_id = config.value("client_id", "");
    options.federated_token_file = config.value("token_file", "");
    options.endpoint = endpoint;
    // The address this operator reaches the server at (it may differ from the server's own
    // idea of itself, e.g. from another network namespace); the token endpoint is there too.
    options.endpoint.authority_host = client.server_url;
    options.endpoint.tenant_id = config.value("tenant_id", "");
    ASSIGN_OR_RETURN(credential, creds::WorkloadIdentityCredential::Create(std::move(options)));
  }
  return std::shared_ptr<creds::TokenCredential>(
      std::make_shared<creds::CachingCredential>(std::move(credential)));
}

// Parses "TYPE=N" flags into node counts.
Result<std::map<std::string, int>> ParseNodeCounts(const std::vector<std::string>& flags) {
  std::map<std::string, int> counts;
  for (const std::string& flag : flags) {
    size_t equals = flag.find('=');
    int count = -1;
    if (equals != std::string::npos) {
      try {
        count = std::stoi(flag.substr(equals + 1));
      } catch (const std::exception&) {
      }
    }
    if (equals == std::string::npos || equals == 0 || count < 0) {
      return absl::InvalidArgumentError(
          fmt::format("--nodes {}: expected INSTANCE_TYPE=COUNT, e.g. --nodes 1xT4=2", flag));
    }
    counts[flag.substr(0, equals)] = count;
  }
  return counts;
}

// Parses "TYPE=USD" flags into prices per node-hour.
Result<std::map<std::string, double>> ParsePrices(const std::vector<std::string>& flags) {
  std::map<std::string, double> prices;
  for (const std::string& flag : flags) {
    size_t equals = flag.find('=');
    double price = -1;
    if (equals != std::string::npos) {
      try {
        size_t used = 0;
        price = std::stod(flag.substr(equals + 1), &used);
        if (used != flag.size() - equals - 1) price = -1;
      } catch (const std::exception&) {
      }
    }
    if (equals == std::string::npos || equals == 0 || !(price >= 0)) {
      return absl::InvalidArgumentError(fmt::format(
          "--price {}: expected INSTANCE_TYPE=PRICE_PER_NODE_HOUR, e.g. --price 1xT4=0.53", flag));
    }
    prices[flag.substr(0, equals)] = price;
  }
  return prices;
}

struct OperatorFlags {
  std::string cloud_resource;
  std::string instance_types;
  std::vector<std::string> nodes;
  std::vector<std::string> spot;
  std::vector<std::string> prices;
  int default_nodes = 1;
  std::string work_dir;
  std::string cluster_storage;
  std::string run_as;  // "" = op::DefaultRunAs()
  std::string sandbox_dir;
};

// Where attempts run as other users find their directories: <home>/sandbox/<resource> when
// others can reach the home, else (a home under a private /root) a directory of their own in
// /var/lib/meridian, one per work dir.
std::string DefaultSandboxDir(const std::string& home, const std::string& resource,
                              const std::string& work_dir) {
  if (op::SearchableByOthers(home).ok()) return fmt::format("{}/sandbox/{}", home, resource);
  return fmt::format("/var/lib/meridian/sandbox/{}-{}", resource,
                     base::Sha256Hex(work_dir).substr(0, 12));
}

Status RunOperator(const Context& context, const OperatorFlags& flags) {
  if (flags.cloud_resource.empty())
    return absl::InvalidArgumentError("--cloud-resource is required");
  if (flags.instance_types.empty()) {
    return absl::InvalidArgumentError(
        "--instance-types is required: a Helm values file with "
        "workloads.instanceTypes.additional (see examples/instance-types.yaml)");
  }
  ASSIGN_OR_RETURN(ClientConfig client,
                   ResolveClientConfig(context.home, context.server, context.ca_file));
  ASSIGN_OR_RETURN(std::string text, base::ReadFile(flags.instance_types, 4 << 20));
  ASSIGN_OR_RETURN(std::vector<spec::InstanceType> types,
                   spec::ParseInstanceTypes(text, flags.instance_types));
  ASSIGN_OR_RETURN(auto counts, ParseNodeCounts(flags.nodes));
  ASSIGN_OR_RETURN(auto prices, ParsePrices(flags.prices));
  std::set<std::string> spot(flags.spot.begin(), flags.spot.end());
  op::AgentOptions options;
  for (const spec::InstanceType& type : types) {
    op::AgentOptions::NodePool pool;
    pool.type = type;
    auto count = counts.find(type.name);
    pool.nodes = count == counts.end() ? flags.default_nodes : count->second;
    if (count != counts.end()) counts.erase(count);
    pool.spot = spot.erase(type.name) > 0;
    if (auto price = prices.find(type.name); price != prices.end()) {
      pool.price_per_hour = price->second;
      prices.erase(price);
    }
    options.capacity.push_back(std::move(pool));
  }
  for (const auto& [flag, unknown] :
       {std::pair{"--nodes", counts.empty() ? "" : counts.begin()->first},
        std::pair{"--spot", spot.empty() ? "" : *spot.begin()},
        std::pair{"--price", prices.empty() ? "" : prices.begin()->first}}) {
    if (!unknown.empty()) {
      return absl::InvalidArgumentError(fmt::format("{} {}: {} has no instance type of that name",
                                                    flag, unknown, flags.instance_types));
    }
  }
  options.server_url = client.server_url;
  options.ca_file = client.ca_file;
  options.cloud_resource = flags.cloud_resource;
  options.work_dir = !flags.work_dir.empty()
                         ? flags.work_dir
                         : fmt::format("{}/operators/{}", client.home, flags.cloud_resource);
  options.cluster_storage =
      !flags.cluster_storage.empty() ? flags.cluster_storage : client.home + "/cluster-storage";
  RETURN_IF_ERROR(base::MakeDirs(options.work_dir, 0700));
  RETURN_IF_ERROR(base::MakeDirs(options.cluster_storage, 0755));
  options.gpus = op::DetectGpus();
  ASSIGN_OR_RETURN(options.credential, OperatorCredential(client, flags.cloud_resource));
  if (options.credential == nullptr) {
    // The server writes operator.json when the resource is created: without it (and without
    // workload identity variables) the control plane would refuse every call.
    return absl::NotFoundError(fmt::format(
        "cloud resource '{}' does not exist or has no workload identity here: no "
        "{}/clusters/{}/operator.json and no AZURE_FEDERATED_TOKEN_FILE; create it first with "
        "`meridian cloud resource create`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and "
        "AZURE_FEDERATED_TOKEN_FILE",
        flags.cloud_resource, client.home, flags.cloud_resource));
  }

  op::LocalStackOptions stack_options;
  stack_options.root = options.work_dir + "/attempts";
  ASSIGN_OR_RETURN(stack_options.run_as,
                   flags.run_as.empty() ? op::DefaultRunAs() : op::ParseRunAs(flags.run_as));
  if (!std::holds_alternative<op::RunAsOperator>(stack_options.run_as)) {
    stack_options.sandbox_root =
        !flags.sandbox_dir.empty()
            ? flags.sandbox_dir
            : DefaultSandboxDir(client.home, flags.cloud_resource, options.work_dir);
    options.sandbox_dir = stack_options.sandbox_root;
    options.storage_gid = std::holds_alternative<op::RunAsUser>(stack_options.run_as)
                              ? std::get<op::RunAsUser>(stack_options.run_as).gid
                              : std::get<op::RunAsUidRange>(stack_options.run_as).gid;
    RETURN_IF_ERROR(op::ShareWithGroup(options.cluster_storage, *options.storage_gid));
    if (Status reachable = op::SearchableByOthers(options.cluster_storage); !reachable.ok()) {
      spdlog::warn("attempts cannot reach the cluster storage directory {}: {}",
                   options.cluster_storage, reachable.message());
    }
  }
  spdlog::info("attempts run as {}{}", op::DescribeRunAs(stack_options.run_as),
               stack_options.sandbox_root.empty() ? "" : " in " + stack_options.sandbox_root);
  ASSIGN_OR_RETURN(std::unique_ptr<op::ComputeStack> stack, op::OpenLocalStack(stack_options));
  options.stack = stack.get();

  // Signals end the loop; running attempts are left running (a restart picks them up).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<bool> agent_ended{false};
  std::thread waiter([&] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    if (agent_ended) return;  // woken below only to end this thread: no signal came
    spdlog::info("received {}, stopping the operator (attempts keep running)",
                 strsignal(signal_number));
    stop = true;
  });
  Status result = op::RunAgent(options, stop);
  if (!stop) {
    // The agent ended by itself (an error): release the signal thread.
    agent_ended = true;
    pthread_kill(waiter.native_handle(), SIGTERM);
  }
  waiter.join();
  return result;
}

}  // namespace

void AddProcessCommands(CLI::App& app, Context& context) {
  static control::ServerOptions server_options;
  CLI::App* server = app.add_subcommand(
      "server",
      "Run the control plane: HTTPS REST API, scheduler, state store.\n"
      "Creates a local CA and server certificate in <home>/tls on first start and writes\n"
      "<home>/config.yaml so that clients find it.\n\nExample:\n"
      "  meridian server --listen 127.0.0.1:8443");
  server
      ->add_option("--listen", server_options.listen,
                   "host:port to listen on (port 0: any free port)")
      ->capture_default_str();
  server->add_option("--cert", server_options.cert_file,
                     "PEM certificate (default: made by the local CA)");
  server->add_option("--key", server_options.key_file, "PEM private key for --cert");
  server->add_option("--tls-host", server_options.tls_hosts,
                     "Extra name or address for the local certificate");
  server
      ->add_option("--heartbeat-timeout-ms", server_options.heartbeat_timeout_ms,
                   "Operator silence after which its cloud resource is UNHEALTHY")
      ->capture_default_str();
  server->add_option("--threads", server_options.threads, "I/O threads")->capture_default_str();
  server
      ->add_option("--access-token-lifetime-s", server_options.access_token_lifetime_s,
                   "Lifetime of the access tokens the token service issues (10..3600)")
      ->capture_default_str();
  server
      ->add_option("--cluster-token-lifetime-s", server_options.cluster_token_lifetime_s,
                   "Lifetime of LOCAL operators' and job attempts' federated tokens (10..3600)")
      ->capture_default_str();
  server
      ->add_option("--key-publish-ahead-s", server_options.key_publish_ahead_s,
                   "How long a rotated signing key is published before it signs")
      ->capture_default_str();
  server->add_option("--trusted-issuer", server_options.trusted_issuers,
                     "An external OIDC issuer (https URL, e.g. an AKS cluster's "
                     "oidcIssuerProfile.issuerUrl) whose tokens federated credentials may name; "
                     "repeatable");
  server->add_option("--trusted-issuer-ca", server_options.trusted_issuers_ca_file,
                     "CA bundle for reaching trusted issuers (default: the system's)");
  server->add_option("--ready-file", server_options.ready_file,
                     "Write the URL here once listening");
  server->callback([&context] {
    if (Status status = base::InitLogging(context.log_level); !status.ok()) {
      context.exit_code = ReportError(status);
      return;
    }
    server_options.home = base::ResolveHome(context.home);
    context.exit_code = control::RunServer(server_options);
  });

  static OperatorFlags operator_flags;
  CLI::App* operator_command = app.add_subcommand(
      "operator",
      "Run the operator of one cloud resource: connects out to the control plane, reports\n"
      "capacity, runs the attempts assigned to it (LOCAL stack: processes on this machine).\n\n"
      "Example:\n"
      "  meridian operator --cloud-resource local-eastus \\\n"
      "      --instance-types examples/instance-types.yaml --nodes 1xT4=2");
  operator_command->add_option("--cloud-resource", operator_flags.cloud_resource,
                               "Cloud resource name");
  operator_command->add_option("--instance-types", operator_flags.instance_types,
                               "Helm values file (workloads.instanceTypes.additional)");
  operator_command->add_option("--nodes", operator_flags.nodes, "INSTANCE_TYPE=COUNT, repeatable");
  operator_command->add_option("--spot", operator_flags.spot,
                               "INSTANCE_TYPE whose nodes are spot (preemptible), repeatable");
  operator_command->add_option("--price", operator_flags.prices,
                               "INSTANCE_TYPE=PRICE per node-hour, repeatable (used to break ties)");
  operator_command
      ->add_option("--default-nodes", operator_flags.default_nodes,
                   "Nodes of each type not named by --nodes")
      ->capture_default_str();
  operator_command->add_option("--work-dir", operator_flags.work_dir,
                               "Attempts and packages (default <home>/operators/<resource>)");
  operator_command->add_option("--cluster-storage", operator_flags.cluster_storage,
                               "Directory shared by every job (default <home>/cluster-storage)");
  operator_command->add_option(
      "--run-as", operator_flags.run_as,
      "Who attempts run as: 'operator' (this process's user), a user name, or a uid range "
      "FIRST-LAST giving each attempt its own uid (default, and only possible, as root: "
      "20000-29999; otherwise 'operator')");
  operator_command->add_option("--sandbox-dir", operator_flags.sandbox_dir,
                               "Where attempts run as other users get their directories (default "
                               "<home>/sandbox/<resource>, or under /var/lib/meridian/sandbox "
                               "when others cannot reach the home)");
  operator_command->callback([&context] {
    if (Status status = base::InitLogging(context.log_level); !status.ok()) {
      context.exit_code = ReportError(status);
      return;
    }
    Status status = RunOperator(context, operator_flags);
    if (!status.ok()) context.exit_code = ReportError(status);
  });

  static UpOptions up_options;
  CLI::App* up = app.add_subcommand(
      "up",
      "Run everything on this machine: a control plane, two LOCAL cloud resources in two\n"
      "regions (local-eastus, CPU shapes; local-westus, CPU and GPU shapes) with their\n"
      "operators, then an example job. Ctrl-C stops it all; the next run reuses the home\n"
      "directory and its state.\n\nExample:\n"
      "  meridian up --example examples/jobs/hello.yaml");
  up->add_option("--example", up_options.example_job, "Job file to submit once everything is up");
  up->add_option("--port", up_options.port, "Control plane port (0: any free port)")
      ->capture_default_str();
  up->add_flag("--exit-after-example", up_options.exit_after_example,
               "Stop everything after the example job (for scripts and tests)");
  up->callback([&context] {
    if (Status status = base::InitLogging(context.log_level); !status.ok()) {
      context.exit_code = ReportError(status);
      return;
    }
    up_options.home = base::ResolveHome(context.home);
    context.exit_code = RunUp(up_options);
  });
}

}  // namespace meridian::cli
