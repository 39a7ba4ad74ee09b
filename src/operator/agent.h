// Agent: the operator's loop for one cloud resource.
//
// It connects outbound to the control plane (HTTPS only), reports capacity and the state of
// its attempts in heartbeats, watches its assignments with a long-poll (no busy polling),
// and reconciles: assigned attempts that are not running are started, running attempts
// that are no longer assigned (moved, terminated, unknown) are stopped. Output is shipped
// in order from the stack's log files; an attempt's final state is reported only after all
// of its output has been shipped, so a finished job's logs are complete.
//
// Workload identity: when an assignment carries {"workload_identity": {client_id, tenant_id,
// authority, token_lifetime_s}}, the attempt gets a federated token file kept fresh by a
// TokenFileWriter (tokens minted by POST /api/v1/operators/<resource>/tokens for that one
// attempt, so the workload may read its own job) and the variables the Azure
// workload-identity webhook injects: AZURE_CLIENT_ID, AZURE_TENANT_ID,
// AZURE_FEDERATED_TOKEN_FILE (the stack decides where the attempt reads it), and
// AZURE_AUTHORITY_HOST. The writer stops when the attempt ends. Every attempt also gets
// MERIDIAN_SERVER and, with a CA file, MERIDIAN_CA_FILE, so the CLI works inside a job.
//
// Restart: the agent keeps no state of its own. The stack finds its attempts again, the
// attempt key carries the epoch, and the next heartbeat re-reports everything.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "identity/credentials/credential.h"
#include "operator/stacks/compute_stack.h"
#include "spec/specs.h"

namespace meridian::op {

struct AgentOptions {
  std::string server_url;      // https://host:port
  std::string ca_file;         // CA that signed the server certificate ("" = system store)
  std::string cloud_resource;  // the resource this operator serves
  struct NodePool {
    spec::InstanceType type;
    int nodes = 0;
    bool spot = false;
    double price_per_hour = 0;  // 0: not reported
  };
  std::vector<NodePool> capacity;
  std::string work_dir;                                      // package cache
  // Exported to attempts as MERIDIAN_CLUSTER_STORAGE when the resource has no
  // object_storage.bucket_name; with one, the bucket is mounted under work_dir/cluster-storage
  // and that mount is exported instead (cluster_storage.h).
  std::string cluster_storage;
  // Set when the stack runs attempts as other users (run_as.h): the bucket is then mounted
  // at <sandbox_dir>/.cluster-storage, where they can reach it, shared through storage_gid.
  std::string sandbox_dir;
  std::optional<gid_t> storage_gid;
  ComputeStack* stack = nullptr;
  std::vector<int> gpus;  // real GPU indices to hand out with CUDA_VISIBLE_DEVICES
  int64_t watch_wait_ms = 30'000;
  int64_t terminate_grace_ms = 10'000;
  int64_t log_chunk_bytes = 512 << 10;
  size_t keep_finished_attempts = 200;  // finished attempts whose files stay on disk
  std::string version = "dev";
  // Access tokens for the control plane (scope api://meridian/.default), sent as Bearer on
  // every request; a CachingCredential refreshes them ahead of expiry. nullptr: none sent.
  std::shared_ptr<identity::credentials::TokenCredential> credential;
};

// Runs until `stop` becomes true. Fails at once when the control plane answers that the
// cloud resource does not exist, refuses the registration (an incompatible protocol version,
// a role that may not serve the resource), or, at any time, when the token endpoint refuses
// the credential itself (api::IsRefusedCredential); keeps retrying (with a logged reason)
// while the control plane or the token endpoint is unreachable or overloaded, and on a 401.
Status RunAgent(const AgentOptions& options, const std::atomic<bool>& stop);

// Attempt keys: "<job id>.<attempt>.<epoch>", safe as file names.
std::string AttemptKey(const std::string& job_id, int attempt, int64_t epoch);
bool ParseAttemptKey(const std::string& key, std::string* job_id, int* attempt, int64_t* epoch);

}  // namespace meridian::op
