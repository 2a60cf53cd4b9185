// Hazards: the conditions under which an op produces NaN/INF (or crashes), as the
// op's own interval predicate reports them. The analyzer turns them into findings.
#pragma once

#include <string>
#include <vector>

namespace nanguard {

// forward: the value itself becomes NaN/INF; gradient: the value is finite but a
// derivative is not (sqrt at 0); crash: the op cannot run (index out of range...).
enum class HazardKind { kForward, kGradient, kCrash };

const char* to_string(HazardKind kind);

struct HazardReport {
  std::string hazard;   // e.g. "log-nonpositive", "exp-overflow", "div-by-zero"
  HazardKind kind = HazardKind::kForward;
  int operand = 0;      // index of the input whose range is at fault
  std::string condition;  // the exact float32 condition, e.g. "x <= 0"
  // True when the hazard holds for every value in range (e.g. a constant 0 divisor).
  bool definite = false;
};

}  // namespace nanguard
