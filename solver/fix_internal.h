// Pieces shared by the fixer's files (solver/fix*.cc): a patched model with its
// analysis, and the graph edits that clip a tensor.
#pragma once

#include <vector>

#include "analyzer/analyzer.h"
#include "model/patch.h"
#include "ops/hazard.h"
#include "solver/fix.h"

namespace nanguard {

// A patched model, loaded again and analysed.
struct Trial {
  ModelPatch patch;
  Graph graph;
  AnalysisResult analysis;
};

Result<Trial> analyze_patch(ModelPatch patch, const Graph& original, const FixOptions& options);

// The immediate mode for one finding (fix_immediate.cc): the patched model when
// proved, with `out` describing the fix (or saying why not).
std::optional<Trial> try_immediate(const Trial& cur, const Node& node, const Finding& f, const FixOptions& options,
                                   FindingFix& out);

// Makes `node` read its operand d.operand clipped into the safe domain `d` (a Clip,
// or for a divisor whose range crosses 0, the sign moved to the numerator and the
// magnitude clamped); returns the operand's range change.
Result<RangeChange> clip_operand(ModelPatch& patch, const Graph& graph, const Node& node, const SafeDomain& d,
                                 const Range& range);

// Every initializer with its values inline (external data read by the loader), so
// the patched model can be written anywhere.
void inline_initializers(ModelPatch& patch, const Graph& graph);

// The share of [lo, hi] a narrower [nlo, nhi] keeps (1 for a point range).
double kept_share(double lo, double hi, double nlo, double nhi);

}  // namespace nanguard
