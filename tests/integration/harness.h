// A test harness that runs the real `meridian` binary: a control plane, LOCAL operators and
// CLI commands, as separate processes on 127.0.0.1, in a temporary home directory.
//
// Ownership: a Platform owns its home directory and every process it starts. Its destructor
// kills them all (server, operators, attempt shims and the entrypoints they started, found
// by the home path they carry in their command line, working directory or environment) and
// removes the home, so a failed test leaves no process behind.
//
// Thread safety: RunCli may be called from several threads at once; everything else is for
// the test's main thread.
//
// Waits: every wait has a generous deadline that only keeps a broken test from hanging; no
// test asserts on how long something took.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/testing/eventually.h"
#include "net/http_client.h"

namespace meridian::itest {

// Generous deadlines, only there so that a broken test ends instead of hanging.
inline constexpr int64_t kStartDeadlineMs = 60'000;
inline constexpr int64_t kWaitDeadlineMs = 90'000;
inline constexpr int64_t kCliDeadlineMs = 180'000;

struct CommandResult {
  int exit_code = -1;  // -1: killed at the deadline or by a signal
  std::string out;
  std::string err;
  // "exit N\n--- stdout ---\n...\n--- stderr ---\n..." for assertion messages.
  std::string Describe() const;
};

// An `env` value that removes the variable from the child's environment.
inline constexpr char kUnsetEnv[] = "\x01unset";

// Runs argv[0] with `argv`, stdin from /dev/null, the environment of this process without
// any MERIDIAN_* variable plus `env` (a kUnsetEnv value removes that variable).
// Captures stdout and stderr. Kills the process group at `deadline_ms`.
CommandResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         int64_t deadline_ms = kCliDeadlineMs);

// The job id from `job submit`'s "Submitted job <id>" line, or "".
std::string SubmittedJobId(const std::string& out);

// The meridian binary under test and the source tree (for examples/).
std::string MeridianBinary();
std::string SourceDir();

// A process started in the background with its output appended to a log file.
struct BackgroundProcess {
  std::string name;
  std::vector<std::string> argv;
  std::string log_file;
  pid_t pid = -1;
};

struct OperatorSpec {
  std::string cloud_resource;
  std::string instance_types_file;  // Helm values; default: a small CPU + 1xT4 file
  std::vector<std::string> nodes;   // "TYPE=N"
  std::vector<std::string> extra_args;  // e.g. {"--spot", "1xT4"}
  std::string netns;       // run inside this network namespace (`ip netns exec`)
  std::string server_url;  // default: the server's URL
};

class Platform {
 public:
  Platform();
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  const std::string& home() const { return home_; }
  const std::string& url() const { return url_; }
  std::string ca_file() const { return home_ + "/tls/ca.pem"; }

  // Starts `meridian server` on 127.0.0.1:`port` (0: a free one) and waits for its ready
  // file. Later calls after a kill start a fresh server process on the same home (and state);
  // pass port() to keep the address that operators already use.
  // `listen_host` other than 127.0.0.1 (e.g. 0.0.0.0 for operators in network namespaces)
  // needs `tls_hosts`: the addresses operators dial, for the server certificate.
  Status StartServer(int64_t heartbeat_timeout_ms = 10'000, int port = 0,
                     const std::string& listen_host = "127.0.0.1",
                     const std::vector<std::string>& tls_hosts = {});
  int port() const;
  // Takes the server URL from <home>/config.yaml (for a server started by `meridian up`).
  Status AdoptServerFromConfig();
  void KillServer();  // SIGKILL, then reaps it
  bool ServerAlive();

  // Starts `meridian operator` for a cloud resource (which must exist).
  Status StartOperator(const OperatorSpec& spec);
  void KillOperator(const std::string& cloud_resource);  // SIGKILL, then reaps it

  // Creates cloud `cloud` (once) and a LOCAL resource `name` in `region` through the API.
  Status CreateLocalResource(const std::string& name, const std::string& region,
                             const std::string& cloud = "default");

  // Starts `meridian args...` in the background (output in logs/<name>.log); it is killed,
  // with everything else, at teardown.
  Status StartBackground(const std::string& name, const std::vector<std::string>& args);

  // Runs `meridian --home <home> args...` (prepend_home false: no --home).
  CommandResult Cli(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env = {},
                    bool prepend_home = true) const;

  // Writes `contents` at home/relative (parents created); returns the absolute path.
  std::string WriteFile(const std::string& relative, const std::string& contents) const;

  // HTTPS to the server, trusting the home's CA. Not shared between threads.
  net::HttpClient Client(int timeout_ms = 30'000) const;
  // An access token of the home's identity (the first admin the server wrote, or who
  // `meridian login` names), from `meridian identity token -o json`, obtained once and again
  // when `refresh`; "" when the home has none (a server without token authentication).
  std::string AccessToken(bool refresh = false) const;
  // Sends `Authorization: Bearer AccessToken()` when there is one, and on a 401 refreshes the
  // token and tries once more.
  Result<net::HttpResponse> Request(const std::string& method, const std::string& path,
                                    const std::string& body = "",
                                    const std::string& content_type = "application/json") const;
  // GET path and parse the JSON answer (any HTTP status: the body must be JSON).
  nlohmann::json GetJson(const std::string& path) const;
  nlohmann::json Job(const std::string& job_id) const;
  nlohmann::json Resource(const std::string& name) const;

  // Waits until the job reaches one of SUCCEEDED, FAILED, TERMINATED; returns its JSON.
  nlohmann::json WaitJobFinal(const std::string& job_id, int64_t deadline_ms = kWaitDeadlineMs);
  // Waits until the resource reports `health`.
  bool WaitHealth(const std::string& name, const std::string& health);

  // Processes (other than this test) whose command line, working directory or environment
  // mention the home directory; with `argument`, only those with that exact argv element.
  std::vector<pid_t> ProcessesOfHome(const std::string& argument = "") const;
  // The tail of a background process's log, for failure messages.
  std::string LogTail(const std::string& name) const;

 private:
  Status Spawn(BackgroundProcess& process);
  void Kill(BackgroundProcess& process, int signal);
  void KillEverything();

  std::string home_;
  std::string url_;
  int server_starts_ = 0;
  BackgroundProcess server_;
  std::map<std::string, BackgroundProcess> operators_;
  std::map<std::string, BackgroundProcess> background_;
  bool default_cloud_created_ = false;

  mutable std::mutex token_mu_;
  mutable bool token_fetched_ = false;  // guarded by token_mu_
  mutable std::string token_;           // guarded by token_mu_
};

}  // namespace meridian::itest
