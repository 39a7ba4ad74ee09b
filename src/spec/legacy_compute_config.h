// Internal to spec: recognising the legacy Anyscale compute config shape (`head_node_type`,
// `worker_node_types` with `min_workers`/`max_workers`) and answering it with the fields to
// write instead, plus the converted YAML where every field maps one to one.
#pragma once

#include <string_view>

#include "base/status.h"
#include "spec/tree.h"

namespace meridian::spec {

// Whether `compute_config` (a mapping) uses head_node_type or worker_node_types.
bool IsLegacyComputeConfig(const Tree& compute_config);

// kInvalidArgument at the first legacy key under `path`, naming the current fields and, when the
// mapping is unambiguous, ending with the converted `compute_config:` block.
Status LegacyComputeConfigError(const Checker& check, const Tree& compute_config,
                                std::string_view path);

}  // namespace meridian::spec
