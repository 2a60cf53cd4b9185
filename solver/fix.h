// Fix synthesis: for each finding, a change to the model that the analyzer proves
// removes it in float32, written into a patched copy of the ONNX model.
//   rewrite    meaning-preserving replacements named by the hazard's facet (ops/rewrite.h)
//   immediate  a Clip of the faulty operand to the hazard's exact float32 safe domain
//              (a sign-preserving clamp away from 0 for a divisor)
//   inputs / weights / all   the widest sub-ranges of graph inputs / free float
//              initializers with which the analyzer proves every finding gone,
//              written as Clip nodes on those tensors (RANUM's modes)
//   auto       a rewrite where one applies, else immediate
// A fix the analyzer cannot prove is never reported as fixed.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "analyzer/analyzer.h"
#include "model/graph.h"
#include "model/onnx_loader.h"
#include "model/patch.h"
#include "model/status.h"

namespace nanguard {

enum class FixMode { kAuto, kRewrite, kImmediate, kInputs, kWeights, kAll };
const char* to_string(FixMode mode);
std::optional<FixMode> parse_fix_mode(const std::string& s);

// One tensor's range before and after a fix; kept = new width / old width (1 when
// the old range is a point).
struct RangeChange {
  std::string tensor;
  double before_lo = 0, before_hi = 0, after_lo = 0, after_hi = 0;
  double kept = 1;
};

// A proof that a range mode cannot remove a finding (solver/unremovable.cc): the
// tensors the mode may not narrow pinned to values inside their ranges, under which the
// analysis bounds some element of the hazard's operand inside its unit target for every
// value of the tensors it may narrow; sampled real runs at those values confirm it.
struct Unremovable {
  std::string node;
  std::vector<RangeChange> pinned;  // per pinned tensor: its range, and the span of its values
  int runs = 0;                     // sampled real runs, each failing at the node
  std::string text;
};

struct FindingFix {
  Finding finding;
  std::string status = "not-fixed";  // or "fixed"
  std::string at;                    // the mode that fixed it ("rewrite", "immediate", ...)
  std::string rewrite;               // the rewrite's name, for at == "rewrite"
  std::string description;           // the graph change
  std::vector<RangeChange> changes;
  double kept_all_nodes = -1;        // range modes: RangeFix::kept_all_nodes
  std::string hint;                  // the source-level change
  std::string reason;                // why not fixed, or "removed by the fix of NODE"
  std::optional<Unremovable> unremovable;  // range modes: the proof that none can fix it
};

// A range mode's result for the whole model (inputs, weights, all).
struct RangeFix {
  FixMode mode = FixMode::kInputs;
  // The narrowing proved for every target not in `unremovable`, or, with a `reason`,
  // for those it removes (no narrowing was found that removes them all).
  bool proved = false;
  double kept = 0;      // mean kept width over the tensors the mode may narrow
  double min_kept = 0;  // the least kept by any one of them (1: none narrowed)
  // RANUM's published measure: the mean over every input and weight with a range,
  // those the mode may not narrow counted as kept whole.
  double kept_all_nodes = 0;
  std::vector<RangeChange> changes;
  std::string reason;  // when not proved
  // Findings no narrowing of this mode's tensors can remove, with the proof; when some
  // are, the others are fixed without them where a narrowing proves it.
  std::vector<Unremovable> unremovable;
  double seconds = 0;
};

struct FixOptions {
  AnalyzeOptions analyze;
  LoadOptions load;             // how patched models are loaded again (--dim)
  FixMode mode = FixMode::kAuto;
  std::string node;             // only this node's findings; empty: all
  bool alternatives = false;    // auto: also run the range modes, for the report
  double range_budget_seconds = 30;  // per range mode
  // Divisor clamps keep |y| >= this share of the divisor's largest magnitude (0: the
  // widest proved set). The fixer retries with 1e-6 when findings remain: a clamp at
  // 1e-36 proves its own op but lets a quotient of 1e37 overflow what follows.
  double divisor_margin = 0;
};

struct FixReport {
  std::vector<FindingFix> fixes;   // the original findings, in order
  std::vector<RangeFix> alternatives;
  ModelPatch patched;              // the fixed model (the original when nothing changed)
  bool changed = false;
  std::vector<Finding> remaining;  // findings of the patched model's analysis
};

// `proto` is the model `graph` was loaded from (the patch keeps its names, opset
// and metadata).
Result<FixReport> fix_model(const onnx::ModelProto& proto, const Graph& graph, const FixOptions& options);

// The range modes alone (also used by fix_model for kInputs/kWeights/kAll).
Result<RangeFix> find_safe_ranges(const Graph& graph, const std::vector<Finding>& targets, FixMode mode,
                                  const FixOptions& options);
// Writes a range fix into `patch` as Clip nodes on the narrowed tensors. The bounds
// written (moved inwards onto a float16/bfloat16 tensor's grid) replace the searched
// ones in `fix`, so the report says what the model holds.
Status apply_range_fix(RangeFix& fix, ModelPatch& patch);

// True when `after` (the fixed model's analysis) has no finding at `nodes`, none at a
// "nanguard_fix/" node, and none that `before` did not have.
bool findings_removed(const std::set<std::string>& nodes, const std::vector<Finding>& before,
                      const std::vector<Finding>& after);

}  // namespace nanguard
