// A finding: an op that may produce NaN/INF (or crash) for some input in range,
// with the evidence (operand ranges, the path from the inputs).
#pragma once

#include <string>
#include <vector>

#include "ops/hazard.h"

namespace nanguard {

struct OperandRange {
  std::string tensor;
  double lo = 0, hi = 0;
};

struct Finding {
  std::string node;
  std::string op_type;
  HazardKind kind = HazardKind::kForward;
  std::string hazard;
  std::string condition;
  std::string status = "possible";     // after analyze; "definite" when it holds everywhere
  std::vector<OperandRange> operands;  // ranges of the node's inputs
  OperandRange result;                 // the output's range before clamping (overflow)
  std::vector<std::string> path;       // node names from an input to this node
};

}  // namespace nanguard
