// The HTTPS half of identity_bench: token exchanges per second through the real token
// endpoint (`meridian server`'s handler in an in-process HTTPS server on 127.0.0.1), from
// concurrent keep-alive clients; peer: GET /healthz through the same server and clients
// (the TLS + HTTP floor every request pays).
#pragma once

#include <string>

#include "base/status.h"

namespace meridian::bench {

struct HttpsExchangeResult {
  double exchanges_per_s = 0;
  double healthz_per_s = 0;
};

Result<HttpsExchangeResult> MeasureHttpsExchanges(int clients, int seconds);

}  // namespace meridian::bench
