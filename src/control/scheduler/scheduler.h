// The placement core: which cloud resource runs a job now, and in what order waiting jobs get
// capacity. Pure functions over a Snapshot: no I/O, no clock (the time comes in Options), no
// randomness. The same inputs always give the same decision, down to the text of its reasons.
//
//   Place(request, snapshot, options)      -> Decision: placed | pending(reason) | infeasible
//   PlanQueue(requests, snapshot, options) -> a Decision per job, in queue order, and the
//                                              snapshot with the placed jobs' nodes taken
//
// Assumptions (the rules, in full, are in docs/scheduling.md):
//  - A job is a gang: its head node and every worker group's min_nodes run in ONE cloud resource
//    (a Ray cluster does not span clusters). max_nodes is room to grow and is not reserved.
//  - Only HEALTHY, trusted resources receive work. A job that some resource could hold when empty
//    (or once it is healthy, trusted or has reported) is pending; one that no resource could ever
//    hold is infeasible, and fails at once unless the request asks to wait.
//  - Which resources a job may use is decided by one policy per job (policy.h): pinned
//    (compute_config.cloud_resource), input_order (compute_config.configs) or capacity-aware
//    (everything else). All of them rank fitting resources the same way (evaluate.h).
//
// Thread safety: the functions are reentrant; they read their arguments only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/scheduler/snapshot.h"
#include "spec/specs.h"

namespace meridian::control::scheduler {

// Since when a job has been waiting on (or starting on) one compute_config.configs entry. The
// control plane records it the first time a Decision names that config_index, and keeps it.
struct ConfigTry {
  int config_index = 0;
  int64_t since_unix_ms = 0;
};

struct Request {
  std::string job_id;
  const spec::JobConfig* config = nullptr;  // not owned; must outlive the call. Required.
  std::string cloud;    // the job's cloud (its resources only); "" = every resource
  std::string project;  // for quotas
  int priority = spec::kDefaultJobPriority;  // 0 is the highest
  int64_t submit_order = 0;                  // FIFO order within a priority; unique per job
  // Region of the job's object storage (where its data and checkpoints are); resources there rank
  // first when the job lists no regions of its own. "" when not known.
  std::string data_region;
  std::vector<ConfigTry> config_tries;  // input_order only
  // The user asked to wait when no resource could ever hold the job (instead of failing it).
  bool wait_if_infeasible = false;
};

// A request with cloud, project and priority taken from the job config.
Request RequestFor(std::string job_id, const spec::JobConfig& config, int64_t submit_order);

struct Options {
  int64_t now_unix_ms = 0;  // for cloud_resource_starting_timeout
  // input_order's timeout when the job sets none.
  int64_t default_starting_timeout_s = 600;
  // At most this many resources that can take a job now are ranked against each other (0: all).
  // They are found in ranking order (region preference, then tightest fit of the job's most
  // selective shape), so the bound rarely changes the choice; it bounds the time one decision
  // takes on a large, idle fleet.
  size_t max_fits_compared = 16;
  // How many resources a Decision explains by name; the rest are counted.
  size_t max_reasons = 5;
  // PlanQueue: at most this many waiting jobs hold nodes for themselves (see PlanQueue).
  size_t max_holds = 100;
};

enum class Outcome { kPlaced, kPending, kInfeasible };
std::string_view OutcomeName(Outcome outcome);  // "placed", "pending", "infeasible"

struct NodeAssignment {
  std::string group;  // "head" or the worker group's name ("auto" when auto-selected)
  std::string instance_type;
  Market market = Market::kOnDemand;
  int count = 0;
  size_t shape_index = 0;  // index into the resource's ResourceState::shapes
};

// Why one resource did not take the job (or, for a placed job, why a resource preferred to the
// chosen one did not).
struct WhyNot {
  std::string resource;
  std::string reason;  // e.g. "0 of 2 free 1xT4 (2 allocated), needs 1", "UNHEALTHY"
};

struct Decision {
  Outcome outcome = Outcome::kPending;
  // kPlaced: where, and the nodes to take there.
  std::string cloud_resource;
  std::string region;
  size_t resource_index = 0;  // into the Snapshot
  std::vector<NodeAssignment> nodes;
  int64_t gpus = 0;  // what the placed gang holds, for quota usage
  double cpus = 0;
  // input_order: the compute_config.configs entry this decision is about; -1 for the single form
  // and once every config has had its timeout (then all are tried in order).
  int config_index = -1;
  // input_order: decide again at this time even if no capacity changes (a timeout runs out).
  std::optional<int64_t> reconsider_at_unix_ms;
  // No resource could ever hold the job. Outcome is kInfeasible, or kPending when the request
  // asks to wait.
  bool infeasible = false;
  // The resources that did not take it, most relevant first: at most Options::max_reasons, with
  // the count of those left out.
  std::vector<WhyNot> why;
  size_t why_omitted = 0;
  // One line for the job's events and message, e.g.
  //   "placed on local-westus (westus); local-eastus: 0 of 2 free 1xT4 (2 allocated), needs 1"
  //   "waiting for capacity: local-eastus: 0 of 2 free 1xT4 (2 allocated), needs 1"
  //   "infeasible: local-eastus: has no instance type 8xA100"
  std::string summary;
};

// Decides for one job against the snapshot as it is. Does not change the snapshot.
Decision Place(const Request& request, const Snapshot& snapshot, const Options& options);

struct QueueDecision {
  size_t request_index = 0;  // into the requests given to PlanQueue
  std::string job_id;
  Decision decision;
  // Pending jobs that hold nodes: where, and how many (see PlanQueue).
  std::string held_on;
  int held_nodes = 0;
};

struct QueuePlan {
  std::vector<QueueDecision> decisions;  // in queue order
  Snapshot snapshot;                     // with the placed jobs' nodes and quota usage taken
};

// Walks the queue in order: priority (0 first), then submit_order, then job id. Each job is
// placed on the snapshot as the jobs before it left it.
//
// Head of line: a job that waits for capacity (it would fit some HEALTHY resource it may use,
// were enough nodes free, and no quota stops it) holds the free nodes it needs on the resource
// closest to fitting it, so no job behind it in the queue can take them; those jobs may still use
// any other nodes (backfill). A big job therefore never starves behind a stream of small ones:
// nodes freed on its resource go to it. Only the first Options::max_holds such jobs in queue order
// hold (a job counts even when none of its nodes is free yet: it is first in line there). Jobs
// waiting for a quota, or for a resource to recover, hold nothing.
QueuePlan PlanQueue(const std::vector<Request>& requests, Snapshot snapshot,
                    const Options& options);

}  // namespace meridian::control::scheduler
