// AzuriteServer: starts Azurite's blob service (the npm test peer pinned in
// tests/node/package.json) on a free loopback port with a temporary data directory, for
// tests of the Azure Blob client. Test support; not linked into the product.
//
// Azurite runs with --disableTelemetry --loose --skipApiVersionCheck --silent and listens
// on 127.0.0.1 only. Start() waits (up to 60 s) until it accepts connections. The
// destructor stops it (SIGTERM, then SIGKILL) and removes the data directory; if the test
// process dies first, the kernel kills Azurite too (PR_SET_PDEATHSIG).
//
// When tests/node/node_modules is missing, Start() fails with kFailedPrecondition telling
// the reader to run `make test` (which installs the test peers); it never skips.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "base/status.h"
#include "storage/azure_config.h"

namespace meridian::storage {

class AzuriteServer {
 public:
  static Result<std::unique_ptr<AzuriteServer>> Start();
  ~AzuriteServer();
  AzuriteServer(const AzuriteServer&) = delete;
  AzuriteServer& operator=(const AzuriteServer&) = delete;

  int port() const { return port_; }
  // http://127.0.0.1:<port>/devstoreaccount1
  std::string endpoint() const;
  // A Shared Key config for `container` on this server (the container is not created).
  AzureBlobConfig ConfigFor(const std::string& container, const std::string& prefix = "") const;

 private:
  AzuriteServer(pid_t pid, int port, std::string data_dir)
      : pid_(pid), port_(port), data_dir_(std::move(data_dir)) {}
  static Result<std::unique_ptr<AzuriteServer>> StartOnce(const std::string& main_js);

  pid_t pid_;
  int port_;
  std::string data_dir_;
};

}  // namespace meridian::storage
