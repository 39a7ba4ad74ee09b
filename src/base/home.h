// The meridian home directory: where the server keeps its state and TLS material and
// where clients find the server address and the CA to trust.
//
// Layout (all created on demand):
//   <home>/config.yaml          client config: `server: https://127.0.0.1:PORT`
//   <home>/tls/ca.pem           the CA clients trust
//   <home>/tls/ca.key           the CA private key (0600, server only)
//   <home>/tls/server.pem/.key  the server certificate (key 0600)
//   <home>/server/state.db      the SQLite state store
//   <home>/server/blobs/        content-addressed working_dir packages
//   <home>/operators/<name>/    one operator's attempts, logs and shim files
#pragma once

#include <string>

#include "base/status.h"

namespace meridian::base {

// `flag` when non-empty, else $MERIDIAN_HOME, else $HOME/.meridian. Not created here.
std::string ResolveHome(const std::string& flag);

}  // namespace meridian::base
