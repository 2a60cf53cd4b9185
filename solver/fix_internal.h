// Pieces shared by the fixer's files (solver/fix*.cc): a patched model with its
// analysis, and the graph edits that clip a tensor.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "analyzer/analyzer.h"
#include "model/patch.h"
#include "ops/hazard.h"
#include "solver/fix.h"

namespace nanguard {

// A tensor a range mode may narrow: a graph input, or a free float weight.
struct Knob {
  std::string name;
  bool weight = false;
  double lo = 0, hi = 0;  // its whole range
};

// The tensors `mode` may narrow (kInputs: float inputs with a range; kWeights: free
// float weights; kAll: both), in a fixed order.
std::vector<Knob> knobs_of(const Graph& graph, FixMode mode, const AnalyzeOptions& opt);

// Tries to prove each target unremovable by `mode` (kInputs or kWeights) before
// `deadline`; the proofs found. `unfinished`, when given, gets the targets whose
// attempt the deadline cut short (a later call with more time may prove them).
std::vector<Unremovable> prove_unremovable(const Graph& graph, const std::vector<Finding>& targets, FixMode mode,
                                           const FixOptions& options, std::chrono::steady_clock::time_point deadline,
                                           std::vector<Finding>* unfinished = nullptr);

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
