#include "operator/stacks/compute_stack.h"

namespace meridian::op {

std::string_view AttemptPhaseName(AttemptPhase phase) {
  switch (phase) {
    case AttemptPhase::kStarting:
      return "STARTING";
    case AttemptPhase::kRunning:
      return "RUNNING";
    case AttemptPhase::kSucceeded:
      return "SUCCEEDED";
    case AttemptPhase::kFailed:
      return "FAILED";
    case AttemptPhase::kTerminated:
      return "TERMINATED";
  }
  return "UNKNOWN";
}

bool IsFinal(AttemptPhase phase) {
  return phase == AttemptPhase::kSucceeded || phase == AttemptPhase::kFailed ||
         phase == AttemptPhase::kTerminated;
}

}  // namespace meridian::op
