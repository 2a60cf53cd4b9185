// Unit witnesses: for one finding, the float32 condition on one tensor of the faulty
// node that makes it fail (its target, with thresholds measured on the backend in
// use), and concrete operand values within the analyzer's ranges that meet it,
// found with Z3's float32 theory where the op is in it, and confirmed by running
// the op alone.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "analyzer/analyzer.h"
#include "analyzer/finding.h"
#include "model/graph.h"
#include "model/status.h"
#include "ops/hazard.h"

namespace nanguard {

// The target for the finding's hazard on `device`, as the facet of the op that
// reported it builds it (ops/hazard.h; Relation and UnitTarget live there too); an
// error for a hazard without one. The ranges are the analysis' when given, else
// the finding's.
Result<UnitTarget> unit_target(const Finding& finding, const Node& node, at::Device device);
Result<UnitTarget> unit_target(const Finding& finding, const Node& node, const AnalysisResult& analysis, at::Device device);

// True when the float32 number `v` meets the target, compared in float32 (`v` is
// rounded to float32 first: 3.5e38 is INF). NaN meets no target except "not finite":
// kMagnitudeAtLeast with value +inf, the target on the output (operand -1) of
// hazards that no single operand element decides (the generic "overflow", a sum or
// window gone non-finite), is met by +-inf and NaN alike. kEqual 0 is met by -0.
bool meets(const UnitTarget& target, double v);

struct UnitWitness {
  std::vector<at::Tensor> operands;  // one per node input (undefined for omitted ones)
  // "z3-fp32", "threshold", or "corners" (output hazards of ops outside Z3's theory:
  // whole operands at the ends of their ranges)
  std::string method;
  std::string text;                  // readable, e.g. "x = 3, y = 0"
  bool confirmed = false;            // the op alone, run on `operands`, failed
};

// Operand values within the analyzer's ranges (`analysis.intervals`) that make the
// op alone produce NaN/INF (forward), a NaN/INF gradient (gradient) or fail (crash).
Result<UnitWitness> find_unit_witness(const Graph& graph, const Node& node, const Finding& finding,
                                      const AnalysisResult& analysis, at::Device device);

}  // namespace nanguard
