#include "ops/hazard.h"

namespace nanguard {

const char* to_string(HazardKind kind) {
  switch (kind) {
    case HazardKind::kForward: return "forward";
    case HazardKind::kGradient: return "gradient";
    case HazardKind::kCrash: return "crash";
  }
  return "forward";
}

}  // namespace nanguard
