// The fixer's driver and its local modes (rewrite, immediate). Findings are taken in
// topological order on the model as patched so far: a fix upstream often removes a
// finding downstream, which is then reported as removed by that fix.
#include "solver/fix.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/core.h>

#include "model/onnx_loader.h"
#include "ops/op_registry.h"
#include "ops/rewrite.h"
#include "solver/fix_internal.h"

namespace nanguard {

const char* to_string(FixMode mode) {
  switch (mode) {
    case FixMode::kAuto: return "auto";
    case FixMode::kRewrite: return "rewrite";
    case FixMode::kImmediate: return "immediate";
    case FixMode::kInputs: return "inputs";
    case FixMode::kWeights: return "weights";
    case FixMode::kAll: return "all";
  }
  return "auto";
}

std::optional<FixMode> parse_fix_mode(const std::string& s) {
  for (FixMode m : {FixMode::kAuto, FixMode::kRewrite, FixMode::kImmediate, FixMode::kInputs, FixMode::kWeights, FixMode::kAll})
    if (s == to_string(m)) return m;
  return std::nullopt;
}

bool findings_removed(const std::set<std::string>& nodes, const std::vector<Finding>& before,
                      const std::vector<Finding>& after) {
  std::set<std::pair<std::string, std::string>> had;
  for (const Finding& f : before) had.insert({f.node, f.hazard});
  for (const Finding& f : after) {
    if (nodes.count(f.node) || f.node.rfind("nanguard_fix/", 0) == 0) return false;
    if (!had.count({f.node, f.hazard})) return false;
  }
  return true;
}

Result<Trial> analyze_patch(ModelPatch patch, const Graph& original, const FixOptions& options) {
  patch.prune_dead_nodes();  // a rewrite leaves the old operand's producers unread (Log(Sum(Exp)): the Exp)
  auto g = load_model_proto(patch.proto(), original.model_path, options.load);
  if (!g.ok()) return Status::Error(fmt::format("the patched model does not load: {}", g.status().message()));
  auto a = analyze(*g, options.analyze);
  if (!a.ok()) return a.status();
  return Trial{std::move(patch), std::move(*g), std::move(*a)};
}

namespace {

bool has_finding(const AnalysisResult& a, const Finding& f) {
  return std::any_of(a.findings.begin(), a.findings.end(),
                     [&](const Finding& g) { return g.node == f.node && g.hazard == f.hazard; });
}

// The meaning-preserving rewrites the hazard names, each option in turn, until the
// analyzer proves one.
std::optional<Trial> try_rewrites(const Trial& cur, const Node& node, const Finding& f, const FixOptions& options,
                                  FindingFix& out) {
  const HazardFacet* facet = find_facet(node.op_type, node.domain, f.hazard);
  if (!facet) return std::nullopt;
  for (const std::string& name : facet->rewrites) {
    const Rewrite* rw = find_rewrite(name);
    if (!rw) continue;
    for (int attempt = 0; attempt < 16; ++attempt) {
      ModelPatch p = cur.patch;
      RewriteContext ctx{cur.graph, node, [&cur](const std::string& t) { return range_in(cur.analysis, t); }, p, attempt};
      std::optional<RewriteApplied> applied = rw->apply(ctx);
      if (!applied) break;
      auto t = analyze_patch(std::move(p), cur.graph, options);
      if (!t.ok() || !findings_removed({f.node}, cur.analysis.findings, t->analysis.findings)) continue;
      out.at = "rewrite";
      out.rewrite = name;
      out.description = applied->description;
      out.hint = applied->hint;
      return std::move(*t);
    }
  }
  return std::nullopt;
}

Trial start(const onnx::ModelProto& proto, const Graph& graph, AnalysisResult analysis) {
  ModelPatch p(proto);
  p.name_nodes([&graph](const std::string& out) {
    const Node* n = graph.producer(out);
    return n ? n->name : std::string();
  });
  inline_initializers(p, graph);
  return Trial{std::move(p), graph, std::move(analysis)};
}

// One pass of one local mode over the findings still present; a fix that also
// removes other findings marks them as removed by it.
void local_pass(Trial& cur, std::vector<FindingFix>& fixes, bool rewrite, const FixOptions& options) {
  for (FindingFix& fx : fixes) {
    if (fx.status == "fixed") continue;
    const Finding& f = fx.finding;
    const Node* node = cur.graph.find_node(f.node);
    if (!node && fx.reason.empty()) fx.reason = "the node is inside a control-flow subgraph (If/Loop/Scan), which fixes do not edit";
    if (!node || !has_finding(cur.analysis, f)) continue;
    std::optional<Trial> t = rewrite ? try_rewrites(cur, *node, f, options, fx) : try_immediate(cur, *node, f, options, fx);
    if (!t) {
      if (rewrite && fx.reason.empty()) fx.reason = "no rewrite applies to this node or none is proved";
      continue;
    }
    fx.status = "fixed";
    fx.reason.clear();
    cur = std::move(*t);
    for (FindingFix& other : fixes)
      if (other.status != "fixed" && !has_finding(cur.analysis, other.finding)) {
        other.status = "fixed";
        other.at = "other";
        other.reason = "removed by the fix at " + f.node;
      }
  }
}

bool wanted(const Finding& f, const FixOptions& options) { return options.node.empty() || f.node == options.node; }

// A range mode: one narrowing of inputs / weights for all the targets together.
Status fix_by_ranges(Trial& cur, const Graph& graph, const std::vector<Finding>& targets, const FixOptions& options,
                     FixReport& report) {
  auto rf = find_safe_ranges(graph, targets, options.mode, options);
  if (!rf.ok()) return rf.status();
  if (rf->proved) {
    if (Status s = apply_range_fix(*rf, cur.patch); !s.ok()) return s;
    auto t = analyze_patch(cur.patch, graph, options);
    if (!t.ok()) return t.status();
    cur = std::move(*t);
  }
  for (FindingFix& fx : report.fixes) {
    auto u = std::find_if(rf->unremovable.begin(), rf->unremovable.end(),
                          [&](const Unremovable& u) { return u.node == fx.finding.node; });
    if (u != rf->unremovable.end()) {
      fx.unremovable = *u;
      fx.reason = u->text;
      continue;
    }
    if (!rf->proved || has_finding(cur.analysis, fx.finding)) {
      fx.reason = rf->proved && rf->reason.empty() ? "still flagged with the narrowed ranges" : rf->reason;
      continue;
    }
    fx.status = "fixed";
    fx.at = to_string(options.mode);
    fx.changes = rf->changes;
    fx.kept_all_nodes = rf->kept_all_nodes;
    size_t narrowed = std::count_if(rf->changes.begin(), rf->changes.end(), [](const RangeChange& c) {
      return c.after_lo != c.before_lo || c.after_hi != c.before_hi;
    });
    fx.description = fmt::format("Clip on {} narrowed tensor(s)", narrowed);
    fx.hint = "keep these tensors in the ranges given (clamp the inputs, or constrain the weights in training)";
  }
  report.alternatives.push_back(*rf);
  return Status::Ok();
}

// Auto with --format json: what the range modes would keep, for the report.
void add_alternatives(const Graph& graph, const std::vector<Finding>& targets, const FixOptions& options, FixReport& report) {
  for (FixMode m : {FixMode::kInputs, FixMode::kWeights, FixMode::kAll}) {
    if (m != FixMode::kInputs && options.analyze.weights != WeightMode::kFree) continue;
    auto rf = find_safe_ranges(graph, targets, m, options);
    if (rf.ok()) report.alternatives.push_back(*rf);
  }
}

bool local(FixMode m, FixMode which) { return m == FixMode::kAuto || m == which; }

// Findings left.
size_t unfixed(const std::vector<FindingFix>& fixes) {
  return std::count_if(fixes.begin(), fixes.end(), [](const FindingFix& fx) { return fx.status != "fixed"; });
}

// The local passes again from the start with divisor clamps kept 1e-6 of the
// divisor's magnitude from 0; taken when that leaves fewer findings unfixed.
void retry_with_margin(const Trial& initial, Trial& cur, std::vector<FindingFix>& fixes, const FixOptions& options) {
  FixOptions o = options;
  o.divisor_margin = 1e-6;
  Trial t = initial;
  std::vector<FindingFix> again;
  for (const FindingFix& fx : fixes) again.push_back(FindingFix{fx.finding});
  if (local(options.mode, FixMode::kRewrite)) local_pass(t, again, true, o);
  local_pass(t, again, false, o);
  if (unfixed(again) >= unfixed(fixes)) return;
  fixes = std::move(again);
  cur = std::move(t);
}


}  // namespace

Result<FixReport> fix_model(const onnx::ModelProto& proto, const Graph& graph, const FixOptions& options) {
  if (!options.node.empty() && !graph.find_node(options.node))
    return Status::Error(fmt::format("{}: no node named '{}'", graph.model_path, options.node));
  auto a = analyze(graph, options.analyze);
  if (!a.ok()) return a.status();
  FixReport report{{}, {}, ModelPatch(proto), false, {}};
  std::vector<Finding> targets;  // what a fix must remove
  for (const Finding& f : a->findings) {
    if (!wanted(f, options)) continue;
    report.fixes.push_back(FindingFix{f});
    targets.push_back(f);
  }
  Trial cur = start(proto, graph, *a);
  Trial initial = cur;
  bool range_mode = options.mode == FixMode::kInputs || options.mode == FixMode::kWeights || options.mode == FixMode::kAll;
  if (range_mode && !targets.empty()) {
    if (Status s = fix_by_ranges(cur, graph, targets, options, report); !s.ok()) return s;
  } else if (!range_mode) {
    // Rewrites first everywhere: they keep the whole range, and one downstream can
    // remove a finding upstream (Log(Sum(Exp)) -> ReduceLogSumExp drops the Exp).
    if (local(options.mode, FixMode::kRewrite)) local_pass(cur, report.fixes, true, options);
    if (local(options.mode, FixMode::kImmediate)) local_pass(cur, report.fixes, false, options);
    if (local(options.mode, FixMode::kImmediate) && options.divisor_margin == 0 && unfixed(report.fixes) > 0)
      retry_with_margin(initial, cur, report.fixes, options);
    if (options.alternatives && !targets.empty()) add_alternatives(graph, targets, options, report);
  }
  report.changed = std::any_of(report.fixes.begin(), report.fixes.end(),
                               [](const FindingFix& fx) { return fx.status == "fixed" && fx.at != "other"; });
  cur.patch.prune_dead_nodes();
  report.patched = std::move(cur.patch);
  report.remaining = cur.analysis.findings;
  return report;
}

}  // namespace nanguard
