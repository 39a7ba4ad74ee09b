#include "operator/agent.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "api/errors.h"
#include "api/operator_protocol.h"
#include "base/clock.h"
#include "base/files.h"
#include "base/hash.h"
#include "base/ids.h"
#include "fmt/format.h"
#include "identity/credentials/token_file_writer.h"
#include "net/http_client.h"
#include "operator/cluster_storage.h"
#include "spdlog/spdlog.h"

namespace meridian::op {

std::string AttemptKey(const std::string& job_id, int attempt, int64_t epoch) {
  return fmt::format("{}.{}.{}", job_id, attempt, epoch);
}

bool ParseAttemptKey(const std::string& key, std::string* job_id, int* attempt, int64_t* epoch) {
  size_t second = key.rfind('.');
  if (second == std::string::npos || second == 0) return false;
  size_t first = key.rfind('.', second - 1);
  if (first == std::string::npos || first == 0) return false;
  try {
    *job_id = key.substr(0, first);
    *attempt = std::stoi(key.substr(first + 1, second - first - 1));
    *epoch = std::stoll(key.substr(second + 1));
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

namespace {

constexpr char kControlPlaneScope[] = "api://meridian/.default";

std::string KeyOf(const api::Assignment& assignment) {
  return AttemptKey(assignment.job_id, assignment.attempt, assignment.epoch);
}

// Interprets an API answer: 2xx gives the body, anything else the server's error
// (api::StatusFromError, the one mapping).
Result<std::string> ApiResult(Result<net::HttpResponse> response, std::string_view what) {
  if (!response.ok()) return response.status();
  if (response->status >= 200 && response->status < 300) return std::move(response->body);
  Status error = api::StatusFromError(response->status, response->body);
  return Status(error.code(),
                fmt::format("{}: HTTP {}: {}", what, response->status, error.message()));
}

// A 2xx answer the typed parser refuses: the control plane is broken, not this call.
Status InvalidAnswer(std::string_view what, const Status& parsed) {
  return absl::InternalError(fmt::format("{}: the control plane answered with an invalid body: {}",
                                         what, parsed.message()));
}

class Agent {
 public:
  Agent(const AgentOptions& options, const std::atomic<bool>& stop)
      : options_(options), stop_(stop), operator_id_(base::NewId("op")) {
    for (size_t i = 0; i < options_.gpus.size(); ++i) free_gpus_.insert(options_.gpus[i]);
  }

  Status Run() {
    net::HttpClient client(ClientOptions(20'000));
    // Register: the first heartbeat. A missing resource is a configuration error: stop.
    int64_t backoff_ms = 500;
    while (!stop_) {
      Status sent = SendHeartbeat(client, /*attempts=*/{});
      if (sent.ok()) break;
      // Configuration errors: the resource does not exist, the body (or the protocol version)
      // is refused, or this identity may not serve the resource. A 401 is not one of them:
      // the token may be refreshed.
      if (sent.code() == absl::StatusCode::kNotFound ||
          sent.code() == absl::StatusCode::kInvalidArgument ||
          sent.code() == absl::StatusCode::kPermissionDenied ||
          api::IsRefusedCredential(sent)) {
        return sent;
      }
      spdlog::warn("cannot reach the control plane at {}: {}; retrying in {} ms",
                   options_.server_url, sent.message(), backoff_ms);
      Sleep(backoff_ms);
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 5'000);
    }
    spdlog::info("operator {} connected to {} for cloud resource {}", operator_id_,
                 options_.server_url, options_.cloud_resource);
    std::thread watcher([this] { WatchLoop(); });
    Status ended = MainLoop(client);
    {
      std::lock_guard lock(mu_);
      wake_ = true;
    }
    cv_.notify_all();
    watcher.join();
    return ended;
  }

 private:
  net::HttpClientOptions ClientOptions(int timeout_ms) const {
    net::HttpClientOptions client_options;
    client_options.ca_file = options_.ca_file;
    client_options.timeout_ms = timeout_ms;
    return client_options;
  }

  // Adds the bearer token. A transient failure (the token endpoint overloaded, unreachable)
  // is logged and the request goes without one (and gets the server's 401, retried later);
  // a refused credential (api::IsRefusedCredential) is returned, since no retry can help.
  Status Authorize(net::HttpClientRequest& request) {
    if (options_.credential == nullptr) return OkStatus();
    Result<identity::credentials::AccessToken> token =
        options_.credential->GetToken(kControlPlaneScope);
    if (!token.ok()) {
      if (api::IsRefusedCredential(token.status())) {
        return absl::UnauthenticatedError(
            fmt::format("the operator's credential is refused, fix its configuration: {}",
                        token.status().message()));
      }
      spdlog::warn("no access token for the control plane: {}", token.status().message());
      return OkStatus();
    }
    request.headers.push_back({"authorization", "Bearer " + token->token});
    return OkStatus();
  }

  std::string Url(std::string_view tail) const {
    return fmt::format("{}/api/v1/operators/{}/{}", options_.server_url,
                       net::PercentEncode(options_.cloud_resource), tail);
  }

  void Sleep(int64_t ms) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_ || ended_; });
  }

  // ---- watch ----
  void WatchLoop() {
    net::HttpClient client(ClientOptions(static_cast<int>(options_.watch_wait_ms + 15'000)));
    std::string version;
    int64_t backoff_ms = 250;
    while (!stop_ && !ended_) {
      // Short waits let the loop notice `stop` promptly; the server answers at once on change.
      int64_t wait_ms = std::min<int64_t>(options_.watch_wait_ms, 1'000);
      net::HttpClientRequest request;
      request.url = Url(
          fmt::format("assignments?version={}&wait_ms={}", net::PercentEncode(version), wait_ms));
      Authorize(request).IgnoreError();  // the heartbeat reports a refused credential
      Result<std::string> answer = ApiResult(client.Send(request), "watching assignments");
      if (!answer.ok()) {
        spdlog::warn("{}; retrying in {} ms", answer.status().message(), backoff_ms);
        Sleep(backoff_ms);
        backoff_ms = std::min<int64_t>(backoff_ms * 2, 5'000);
        continue;
      }
      backoff_ms = 250;
      Result<api::AssignmentList> listing = api::AssignmentListFromJson(*answer);
      if (!listing.ok()) {
        spdlog::error("ignoring a malformed assignment list: {}", listing.status().message());
        continue;
      }
      if (listing->version == version) continue;
      version = listing->version;
      std::lock_guard lock(mu_);
      region_ = listing->region;
      object_storage_ = listing->object_storage;
      desired_.clear();
      for (api::Assignment& a : listing->assignments) desired_[KeyOf(a)] = std::move(a);
      have_desired_ = true;
      wake_ = true;
      cv_.notify_all();
    }
  }

  // ---- main loop: reconcile, ship logs, report ----
  // Runs until `stop`, or until the credential is refused (returned).
  Status MainLoop(net::HttpClient& client) {
    int64_t last_heartbeat_ms = 0;
    int64_t heartbeat_interval_ms = 2'000;
    while (!stop_) {
      Reconcile(client);
      std::vector<AttemptStatus> statuses = options_.stack->List();
      StopFinishedWriters(statuses);
      ShipLogs(client, statuses);
      std::vector<api::ReportedAttempt> attempts;
      bool any_starting = false;
      std::string fingerprint;
      for (const AttemptStatus& status : statuses) {
        std::string job_id;
        int attempt = 0;
        int64_t epoch = 0;
        if (!ParseAttemptKey(status.key, &job_id, &attempt, &epoch)) continue;
        any_starting = any_starting || status.phase == AttemptPhase::kStarting;
        bool final = IsFinal(status.phase);
        // A final state goes out only once every byte of output has been shipped.
        if (final && shipped_[status.key] < status.log_bytes && !dropped_.count(status.key))
          continue;
        attempts.push_back({job_id, attempt, epoch, std::string(AttemptPhaseName(status.phase)),
                            status.exit_code, status.message, status.started_unix_ms,
                            status.ended_unix_ms});
        fingerprint += fmt::format("{}={};", status.key, AttemptPhaseName(status.phase));
      }
      for (auto it = failed_to_start_.begin(); it != failed_to_start_.end();) {
        std::string job_id;
        int attempt = 0;
        int64_t epoch = 0;
        bool still_assigned;
        {
          std::lock_guard lock(mu_);
          still_assigned = desired_.count(it->first) > 0;
        }
        if (!still_assigned || !ParseAttemptKey(it->first, &job_id, &attempt, &epoch)) {
          it = failed_to_start_.erase(it);
          continue;
        }
        bool terminated = it->second == "terminated before it started";
        attempts.push_back({job_id, attempt, epoch, terminated ? "TERMINATED" : "FAILED",
                            /*exit_code=*/-1,
                            terminated ? it->second : "could not start: " + it->second});
        fingerprint += fmt::format("{}=NOSTART;", it->first);
        ++it;
      }
      int64_t now = base::SystemClock::Get()->MonotonicMs();
      if (fingerprint != last_fingerprint_ || now - last_heartbeat_ms >= heartbeat_interval_ms) {
        Status sent = SendHeartbeat(client, attempts, &heartbeat_interval_ms);
        if (sent.ok()) {
          last_fingerprint_ = fingerprint;
          last_heartbeat_ms = now;
          ForgetReported(statuses);
        } else if (api::IsRefusedCredential(sent)) {
          ended_ = true;  // the watch thread stops too
          return sent;
        } else {
          spdlog::warn("heartbeat failed: {}", sent.message());
          last_heartbeat_ms = now;  // retry at the next interval, not in a tight loop
        }
      }
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(any_starting ? 10 : 100),
                   [this] { return wake_ || stop_; });
      wake_ = false;
    }
    return OkStatus();
  }

  Status SendHeartbeat(net::HttpClient& client, std::vector<api::ReportedAttempt> attempts,
                       int64_t* interval_ms = nullptr) {
    api::OperatorHeartbeat body;
    body.operator_id = operator_id_;
    body.version = options_.version;
    body.protocol_version = api::OperatorProtocolVersion();
    for (const AgentOptions::NodePool& pool : options_.capacity) {
      body.instance_types.push_back({pool.type, pool.nodes, pool.spot, pool.price_per_hour});
    }
    body.real_gpus = static_cast<int>(options_.gpus.size());
    body.attempts = std::move(attempts);
    net::HttpClientRequest request;
    request.method = "POST";
    request.url = Url("heartbeat");
    request.headers = {{"content-type", "application/json"}};
    request.body = api::ToJson(body);
    RETURN_IF_ERROR(Authorize(request));
    ASSIGN_OR_RETURN(std::string answer, ApiResult(client.Send(request), "heartbeat"));
    Result<api::HeartbeatAnswer> parsed = api::HeartbeatAnswerFromJson(answer);
    if (!parsed.ok()) return InvalidAnswer("heartbeat", parsed.status());
    if (interval_ms != nullptr) {
      *interval_ms = std::max<int64_t>(100, parsed->heartbeat_interval_ms);
    }
    return OkStatus();
  }

  void Reconcile(net::HttpClient& client) {
    std::map<std::string, api::Assignment> desired;
    std::string region;
    {
      std::lock_guard lock(mu_);
      if (!have_desired_) return;  // never stop anything before the first assignment list
      desired = desired_;
      region = region_;
    }
    std::map<std::string, AttemptStatus> known;
    for (AttemptStatus& status : options_.stack->List()) known[status.key] = std::move(status);

    for (const auto& [key, assignment] : desired) {
      auto it = known.find(key);
      if (assignment.terminate) {
        if (it != known.end() && !IsFinal(it->second.phase) && !terminating_.count(key)) {
          Status stopped = options_.stack->Terminate(key, options_.terminate_grace_ms);
          if (stopped.ok()) terminating_.insert(key);
        } else if (it == known.end() && !failed_to_start_.count(key)) {
          // Asked to stop before it started here: report it terminated without running it.
          failed_to_start_[key] = "terminated before it started";
        }
        continue;
      }
      if (it != known.end() || failed_to_start_.count(key)) continue;
      Status started = Start(client, assignment, region);
      if (!started.ok() && started.code() != absl::StatusCode::kAlreadyExists) {
        spdlog::error("cannot start attempt {}: {}", key, started.message());
        failed_to_start_[key] = std::string(started.message());
      }
    }
    for (const auto& [key, status] : known) {
      if (IsFinal(status.phase) || desired.count(key) || terminating_.count(key)) continue;
      spdlog::info("stopping attempt {}: it is no longer assigned to this operator", key);
      if (options_.stack->Terminate(key, options_.terminate_grace_ms).ok())
        terminating_.insert(key);
    }
  }

  Status Start(net::HttpClient& client, const api::Assignment& assignment,
               const std::string& region) {
    AttemptLaunch launch;
    launch.key = KeyOf(assignment);
    launch.entrypoint = assignment.entrypoint;
    launch.env = assignment.env_vars;
    launch.env["MERIDIAN_JOB_ID"] = assignment.job_id;
    launch.env["MERIDIAN_JOB_NAME"] = assignment.job_name;
    launch.env["MERIDIAN_ATTEMPT"] = std::to_string(assignment.attempt);
    launch.env["MERIDIAN_CLOUD_RESOURCE"] = options_.cloud_resource;
    launch.env["MERIDIAN_REGION"] = region;
    launch.env["MERIDIAN_SERVER"] = options_.server_url;
    launch.ca_file = options_.ca_file;
    ASSIGN_OR_RETURN(launch.env["MERIDIAN_CLUSTER_STORAGE"], ClusterStoragePath());
    launch.timeout_s = assignment.timeout_s;
    if (assignment.gpus > 0 && static_cast<int>(free_gpus_.size()) >= assignment.gpus) {
      for (int i = 0; i < assignment.gpus; ++i) {
        launch.gpu_indices.push_back(*free_gpus_.begin());
        free_gpus_.erase(free_gpus_.begin());
      }
      gpus_by_attempt_[launch.key] = launch.gpu_indices;
    }
    if (!assignment.package.empty()) {
      ASSIGN_OR_RETURN(launch.working_dir_archive, FetchPackage(client, assignment.package));
    }
    RETURN_IF_ERROR(StartWorkloadIdentity(assignment, launch));
    spdlog::info("starting attempt {} of job {} ({})", assignment.attempt, assignment.job_id,
                 assignment.job_name);
    return options_.stack->Start(launch);
  }

  // The attempt's federated token file and AZURE_* variables (see agent.h).
  Status StartWorkloadIdentity(const api::Assignment& assignment, AttemptLaunch& launch) {
    if (!assignment.workload_identity.has_value()) return OkStatus();
    const api::WorkloadIdentity& workload = *assignment.workload_identity;
    if (workload.client_id.empty()) return OkStatus();
    RETURN_IF_ERROR(base::MakeDirs(options_.work_dir + "/tokens", 0700));
    identity::credentials::TokenFileWriterOptions writer_options;
    writer_options.path = fmt::format("{}/tokens/{}.jwt", options_.work_dir, launch.key);
    int64_t lifetime_s = workload.token_lifetime_s;
    writer_options.token_lifetime_ms = lifetime_s * 1000;
    writer_options.mint = [this, lifetime_s, job_id = assignment.job_id,
                           attempt = assignment.attempt, epoch = assignment.epoch]() {
      return MintWorkloadToken(lifetime_s, job_id, attempt, epoch);
    };
    ASSIGN_OR_RETURN(std::unique_ptr<identity::credentials::TokenFileWriter> writer,
                     identity::credentials::TokenFileWriter::Start(std::move(writer_options)));
    // The address this operator reaches the control plane at, which the attempt shares.
    std::string authority = options_.server_url;
    launch.env["AZURE_CLIENT_ID"] = workload.client_id;
    launch.env["AZURE_TENANT_ID"] = workload.tenant_id;
    launch.federated_token_file = writer->path();
    launch.env["AZURE_AUTHORITY_HOST"] = authority.empty() ? "" : authority + "/";
    token_writers_[launch.key] = std::move(writer);
    return OkStatus();
  }

  // MERIDIAN_CLUSTER_STORAGE: the mounted bucket, or options_.cluster_storage without one.
  Result<std::string> ClusterStoragePath() {
    std::string bucket;
    {
      std::lock_guard lock(mu_);
      bucket = object_storage_;
    }
    if (bucket.empty()) return options_.cluster_storage;
    if (bucket != storage_bucket_) {
      storage_.reset();  // a changed bucket: unmount the old one first
      storage_bucket_ = bucket;
      ClusterStorageOptions storage_options;
      storage_options.bucket_url = bucket;
      storage_options.mount_dir = options_.sandbox_dir.empty()
                                      ? options_.work_dir + "/cluster-storage/mnt"
                                      : options_.sandbox_dir + "/.cluster-storage";
      storage_options.shared_gid = options_.storage_gid;
      storage_options.cache_dir = options_.work_dir + "/cluster-storage/cache";
      storage_options.log_file = options_.work_dir + "/cluster-storage/mount.log";
      Result<std::unique_ptr<ClusterStorage>> opened = ClusterStorage::Open(storage_options);
      storage_status_ = opened.status();
      if (opened.ok()) storage_ = std::move(*opened);
      if (!opened.ok()) spdlog::error("{}", opened.status().message());
    }
    RETURN_IF_ERROR(storage_status_);
    return storage_->path();
  }

  // The TokenRequest API: a workload token for one attempt on this resource, naming it.
  // Runs on a writer's thread.
  Result<std::string> MintWorkloadToken(int64_t lifetime_s, const std::string& job_id, int attempt,
                                        int64_t epoch) {
    net::HttpClient client(ClientOptions(20'000));
    net::HttpClientRequest request;
    request.method = "POST";
    request.url = Url("tokens");
    request.headers = {{"content-type", "application/json"}};
    const api::WorkloadTokenRequest body{"workload", lifetime_s,
                                         api::AttemptRef{job_id, attempt, epoch}};
    request.body = api::ToJson(body);
    Authorize(request).IgnoreError();  // the heartbeat reports a refused credential
    constexpr std::string_view kWhat = "minting a workload token";
    ASSIGN_OR_RETURN(std::string answer, ApiResult(client.Send(request), kWhat));
    Result<api::WorkloadToken> token = api::WorkloadTokenFromJson(answer);
    if (!token.ok()) return InvalidAnswer(kWhat, token.status());
    return std::move(token->token);
  }

  // Stops the token writers of attempts that ended or are gone.
  void StopFinishedWriters(const std::vector<AttemptStatus>& statuses) {
    std::set<std::string> running;
    for (const AttemptStatus& status : statuses) {
      if (!IsFinal(status.phase)) running.insert(status.key);
    }
    for (auto it = token_writers_.begin(); it != token_writers_.end();) {
      if (running.count(it->first)) {
        ++it;
        continue;
      }
      it->second->Stop();
      it = token_writers_.erase(it);
    }
  }

  Result<std::string> FetchPackage(net::HttpClient& client, const std::string& package) {
    std::string hex = package.substr(package.find(':') + 1);
    std::string path = fmt::format("{}/packages/{}.tar.gz", options_.work_dir, hex);
    if (base::PathExists(path)) return path;
    net::HttpClientRequest request;
    request.url = fmt::format("{}/api/v1/packages/{}", options_.server_url, package);
    Authorize(request).IgnoreError();  // the heartbeat reports a refused credential
    Result<net::HttpResponse> response = client.Send(request);
    if (!response.ok()) return response.status();
    if (response->status != 200) {
      return absl::UnavailableError(
          fmt::format("downloading package {}: HTTP {}", package, response->status));
    }
    if (base::Sha256Hex(response->body) != hex) {
      return absl::DataLossError(fmt::format("package {} arrived corrupted", package));
    }
    RETURN_IF_ERROR(base::MakeDirs(options_.work_dir + "/packages"));
    RETURN_IF_ERROR(base::WriteFileAtomic(path, response->body));
    return path;
  }

  void ShipLogs(net::HttpClient& client, const std::vector<AttemptStatus>& statuses) {
    for (const AttemptStatus& status : statuses) {
      if (dropped_.count(status.key)) continue;
      std::string job_id;
      int attempt = 0;
      int64_t epoch = 0;
      if (!ParseAttemptKey(status.key, &job_id, &attempt, &epoch)) continue;
      int64_t& shipped = shipped_[status.key];
      while (shipped < status.log_bytes && !stop_) {
        Result<LogChunk> chunk =
            options_.stack->ReadLog(status.key, shipped, options_.log_chunk_bytes);
        if (!chunk.ok() || chunk->data.empty()) break;
        net::HttpClientRequest request;
        request.method = "POST";
        std::string query;
        for (const auto& [name, value] :
             api::ToQuery(api::LogChunkRef{job_id, attempt, epoch, shipped})) {
          query +=
              fmt::format("{}{}={}", query.empty() ? "?" : "&", name, net::PercentEncode(value));
        }
        request.url = Url("logs" + query);
        request.headers = {{"content-type", "application/octet-stream"}};
        request.body = std::move(chunk->data);
        Authorize(request).IgnoreError();  // the heartbeat reports a refused credential
        Result<std::string> answer = ApiResult(client.Send(request), "shipping output");
        if (!answer.ok()) {
          if (answer.status().code() == absl::StatusCode::kFailedPrecondition ||
              answer.status().code() == absl::StatusCode::kNotFound) {
            dropped_.insert(status.key);  // no longer ours: the control plane will not take it
          } else {
            spdlog::warn("{}", answer.status().message());
          }
          break;
        }
        shipped = chunk->next_offset;
      }
    }
  }

  // Finished attempts that were reported and are no longer assigned: release their GPUs and,
  // beyond the retention count, their files.
  void ForgetReported(const std::vector<AttemptStatus>& statuses) {
    std::set<std::string> desired_keys;
    {
      std::lock_guard lock(mu_);
      if (!have_desired_) return;
      for (const auto& [key, assignment] : desired_) desired_keys.insert(key);
    }
    std::vector<const AttemptStatus*> finished;
    for (const AttemptStatus& status : statuses) {
      if (!IsFinal(status.phase) || desired_keys.count(status.key)) continue;
      auto gpus = gpus_by_attempt_.find(status.key);
      if (gpus != gpus_by_attempt_.end()) {
        free_gpus_.insert(gpus->second.begin(), gpus->second.end());
        gpus_by_attempt_.erase(gpus);
      }
      terminating_.erase(status.key);
      finished.push_back(&status);
    }
    if (finished.size() <= options_.keep_finished_attempts) return;
    std::sort(finished.begin(), finished.end(),
              [](const auto* a, const auto* b) { return a->ended_unix_ms < b->ended_unix_ms; });
    for (size_t i = 0; i + options_.keep_finished_attempts < finished.size(); ++i) {
      if (options_.stack->Forget(finished[i]->key).ok()) {
        shipped_.erase(finished[i]->key);
        dropped_.erase(finished[i]->key);
      }
    }
  }

  // Constant after construction.
  const AgentOptions& options_;
  const std::atomic<bool>& stop_;
  const std::string operator_id_;
  // Set by the main loop when it ends on its own (a refused credential).
  std::atomic<bool> ended_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  // Protected by mu_ (written by the watch thread, read by the main loop).
  std::map<std::string, api::Assignment> desired_;
  std::string region_;
  std::string object_storage_;  // the resource's object_storage.bucket_name ("": none)
  bool have_desired_ = false;
  bool wake_ = false;

  // Owned by the main loop thread.
  std::map<std::string, int64_t> shipped_;  // attempt key -> bytes of output shipped
  std::set<std::string> dropped_;           // attempts the control plane refuses output for
  std::set<std::string> terminating_;
  std::map<std::string, std::string> failed_to_start_;
  std::set<int> free_gpus_;
  std::map<std::string, std::vector<int>> gpus_by_attempt_;
  std::string last_fingerprint_;
  // Attempt key -> the writer keeping its federated token file fresh.
  std::map<std::string, std::unique_ptr<identity::credentials::TokenFileWriter>> token_writers_;
  // The mount of object_storage_ (see cluster_storage.h), made before the first attempt that
  // needs it; unmounted when the agent ends. A failure is kept and given to every attempt.
  std::string storage_bucket_;
  std::unique_ptr<ClusterStorage> storage_;
  Status storage_status_;
};

}  // namespace

Status RunAgent(const AgentOptions& options, const std::atomic<bool>& stop) {
  if (options.stack == nullptr)
    return absl::InvalidArgumentError("the agent needs a compute stack");
  Agent agent(options, stop);
  return agent.Run();
}

}  // namespace meridian::op
