// Local TLS material: a CA and a server certificate made on first start, so that every
// connection is HTTPS from the first run with nothing to configure.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace meridian::net {

struct TlsFiles {
  std::string ca_cert;      // <dir>/ca.pem, what clients trust
  std::string ca_key;       // <dir>/ca.key (0600)
  std::string server_cert;  // <dir>/server.pem (leaf, then the CA)
  std::string server_key;   // <dir>/server.key (0600)
};

// Makes `dir` (0700) and, when missing, an EC P-256 CA valid 10 years and a server
// certificate signed by it valid 1 year for `hosts` (DNS names or IP addresses as
// subjectAltName; "localhost" and "127.0.0.1" are always included). Existing files are
// reused; a server certificate that expires within 30 days or lacks one of `hosts` is
// made again with the same CA. Files are written atomically.
Result<TlsFiles> EnsureLocalTls(const std::string& dir, const std::vector<std::string>& hosts);

}  // namespace meridian::net
