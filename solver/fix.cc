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

bool finding_removed(const std::string& node, const std::vector<Finding>& before, const std::vector<Finding>& after) {
  std::set<std::pair<std::string, std::string>> had;
  for (const Finding& f : before) had.insert({f.node, f.hazard});
  for (const Finding& f : after) {
    if (f.node == node || f.node.rfind("nanguard_fix/", 0) == 0) return false;
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

std::string describe_domain(const SafeDomain& d) {
  std::vector<std::string> parts;
  if (std::isfinite(d.lo)) parts.push_back(fmt::format("x >= {:.9g}", d.lo));
  if (std::isfinite(d.hi)) parts.push_back(fmt::format("x <= {:.9g}", d.hi));
  if (d.min_magnitude > 0) parts.push_back(fmt::format("|x| >= {:.9g}", d.min_magnitude));
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : " and ") + p;
  return s.empty() ? "any x" : s;
}

bool has_finding(const AnalysisResult& a, const Finding& f) {
  return std::any_of(a.findings.begin(), a.findings.end(),
                     [&](const Finding& g) { return g.node == f.node && g.hazard == f.hazard; });
}

std::function<std::optional<Range>(const std::string&)> ranges_of(const AnalysisResult& a) {
  return [&a](const std::string& t) -> std::optional<Range> {
    auto it = a.intervals.find(t);
    if (it == a.intervals.end() || !it->second.lo.defined() || it->second.numel() == 0) return std::nullopt;
    return Range{it->second.min(), it->second.max()};
  };
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
      RewriteContext ctx{cur.graph, node, ranges_of(cur.analysis), p, attempt};
      std::optional<RewriteApplied> applied = rw->apply(ctx);
      if (!applied) break;
      auto t = analyze_patch(std::move(p), cur.graph, options);
      if (!t.ok() || !finding_removed(f.node, cur.analysis.findings, t->analysis.findings)) continue;
      out.at = "rewrite";
      out.rewrite = name;
      out.description = applied->description;
      out.hint = applied->hint;
      return std::move(*t);
    }
  }
  return std::nullopt;
}

}  // namespace

std::vector<Range> operand_ranges(const Node& node, const AnalysisResult& a) {
  std::vector<Range> out;
  for (const auto& in : node.inputs) {
    auto it = a.intervals.find(in);
    bool known = !in.empty() && it != a.intervals.end() && it->second.lo.defined() && it->second.numel() > 0;
    out.push_back(known ? Range{it->second.min(), it->second.max()} : Range{0, 0});
  }
  return out;
}

namespace {

std::string describe_domain(const SafeDomain& d);

Result<Trial> clip_trial(const Trial& cur, const Node& node, const SafeDomain& d, const Range& r, const FixOptions& options,
                         RangeChange& change) {
  ModelPatch p = cur.patch;
  auto c = clip_operand(p, cur.graph, node, d, r);
  if (!c.ok()) return c.status();
  change = *c;
  return analyze_patch(std::move(p), cur.graph, options);
}

std::optional<Trial> narrower_clip(const Trial& cur, const Node& node, const Finding& f, const SafeDomain& d, const Range& r,
                                   const FixOptions& options, FindingFix& out) {
  if (d.min_magnitude > 0) return std::nullopt;
  bool hi_side = r.hi > d.hi, lo_side = r.lo < d.lo;
  if (hi_side == lo_side) return std::nullopt;
  double edge = hi_side ? d.hi : d.lo;
  double inner = hi_side ? std::min(std::max(0.0, r.lo), d.hi) : std::max(std::min(1.0, r.hi), d.lo);
  auto at = [&](double t) {
    SafeDomain n = d;
    double v = edge + t * (inner - edge);
    (hi_side ? n.hi : n.lo) = hi_side ? float32_down(v) : float32_up(v);
    n.text = describe_domain(n);
    return n;
  };
  RangeChange change;
  auto proved = [&](double t, std::optional<Trial>& keep) {
    auto tr = clip_trial(cur, node, at(t), r, options, change);
    if (!tr.ok() || !finding_removed(f.node, cur.analysis.findings, tr->analysis.findings)) return false;
    keep = std::move(*tr);
    return true;
  };
  std::optional<Trial> best;
  if (!proved(1.0, best)) return std::nullopt;
  double good = 1, bad = 0;
  for (int step = 0; step < 12; ++step) {
    double mid = (good + bad) / 2;
    std::optional<Trial> t;
    if (proved(mid, t)) {
      good = mid;
      best = std::move(t);
    } else {
      bad = mid;
    }
  }
  SafeDomain n = at(good);
  clip_trial(cur, node, n, r, options, change);  // the change record of the bound kept
  out.at = "immediate";
  out.description = fmt::format("Clip {} of {} to {} (narrower than the op's own safe domain {}, so that what follows is proved too)",
                                node.inputs[d.operand], node.name, n.text, d.text);
  out.changes = {change};
  out.hint = fmt::format("clamp the operand before the op ({}), e.g. torch.clamp(x, max=...)", n.text);
  return best;
}

}  // namespace

// The faulty operand clipped to the hazard's safe domain, tightened by the domains of
// the hazards the clip uncovers at the same node (Log: x >= the smallest subnormal
// keeps the value finite, then x >= 1/FLT_MAX its gradient), until proved.
std::optional<Trial> try_immediate(const Trial& cur, const Node& node, const Finding& f, const FixOptions& options,
                                   FindingFix& out) {
  const HazardFacet* facet = find_facet(node.op_type, node.domain, f.hazard);
  if (!facet || !facet->safe_domain) {
    out.reason = facet ? "no safe operand domain: " + facet->no_safe_domain : "the hazard has no facets";
    return std::nullopt;
  }
  std::vector<Range> ranges = operand_ranges(node, cur.analysis);
  std::optional<SafeDomain> d = facet->safe_domain(node, ranges);
  if (!d) {
    out.reason = "no safe operand domain for these operand ranges";
    return std::nullopt;
  }
  for (int round = 0; round < 4; ++round) {
    ModelPatch p = cur.patch;
    auto change = clip_operand(p, cur.graph, node, *d, ranges[d->operand]);
    if (!change.ok()) {
      out.reason = change.status().message();
      return std::nullopt;
    }
    auto t = analyze_patch(std::move(p), cur.graph, options);
    if (!t.ok()) {
      out.reason = t.status().message();
      return std::nullopt;
    }
    if (finding_removed(f.node, cur.analysis.findings, t->analysis.findings)) {
      out.at = "immediate";
      out.description = fmt::format("Clip {} of {} to {}", node.inputs[d->operand], node.name, d->text);
      out.changes = {*change};
      out.hint = fmt::format("clamp the operand before the op to its safe domain ({}), e.g. torch.clamp(x, min=..., max=...)", d->text);
      return std::move(*t);
    }
    // A new hazard of the same operand at the same node: intersect its domain.
    bool tightened = false;
    for (const Finding& g : t->analysis.findings) {
      if (g.node != f.node) continue;
      const HazardFacet* gf = find_facet(node.op_type, node.domain, g.hazard);
      std::optional<SafeDomain> gd = gf && gf->safe_domain ? gf->safe_domain(node, ranges) : std::nullopt;
      if (!gd || gd->operand != d->operand) continue;
      SafeDomain n{d->operand, std::max(d->lo, gd->lo), std::min(d->hi, gd->hi), std::max(d->min_magnitude, gd->min_magnitude), ""};
      n.text = describe_domain(n);
      tightened = n.lo != d->lo || n.hi != d->hi || n.min_magnitude != d->min_magnitude;
      *d = n;
    }
    if (!tightened) break;
  }
  // The op is safe but what follows is not (exp clipped at 88.72 still overflows a
  // sum of ten): move the bound inwards, towards 0 (1 for a lower bound), as little
  // as the proof of the whole path allows.
  if (auto t = narrower_clip(cur, node, f, *d, ranges[d->operand], options, out)) return t;
  out.reason = fmt::format("a Clip to {} is not proved by the analyzer (nor any narrower one tried)", d->text);
  return std::nullopt;
}

namespace {

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

}  // namespace

Result<FixReport> fix_model(const onnx::ModelProto& proto, const Graph& graph, const FixOptions& options) {
  auto a = analyze(graph, options.analyze);
  if (!a.ok()) return a.status();
  FixReport report{{}, {}, ModelPatch(proto), false, {}};
  std::vector<Finding> targets;
  for (const Finding& f : a->findings)
    if (wanted(f, options)) targets.push_back(f);
  if (!options.node.empty() && !graph.find_node(options.node))
    return Status::Error(fmt::format("{}: no node named '{}'", graph.model_path, options.node));
  for (const Finding& f : targets) report.fixes.push_back(FindingFix{f});
  Trial cur = start(proto, graph, *a);
  bool range_mode = options.mode == FixMode::kInputs || options.mode == FixMode::kWeights || options.mode == FixMode::kAll;
  if (range_mode && !targets.empty()) {
    auto rf = find_safe_ranges(graph, targets, options.mode, options);
    if (!rf.ok()) return rf.status();
    if (rf->proved) {
      if (Status s = apply_range_fix(*rf, cur.patch); !s.ok()) return s;
      auto t = analyze_patch(cur.patch, graph, options);
      if (!t.ok()) return t.status();
      cur = std::move(*t);
    }
    for (FindingFix& fx : report.fixes) {
      bool gone = rf->proved && !has_finding(cur.analysis, fx.finding);
      fx.status = gone ? "fixed" : "not-fixed";
      fx.at = gone ? to_string(options.mode) : "";
      fx.changes = gone ? rf->changes : std::vector<RangeChange>{};
      fx.description = gone ? fmt::format("Clip {} narrowed range(s)", rf->changes.size()) : "";
      fx.hint = gone ? "keep these tensors in the ranges given (clamp the inputs, or constrain the weights in training)" : "";
      fx.reason = gone ? "" : rf->reason;
    }
    report.alternatives.push_back(*rf);
  } else {
    // Rewrites first everywhere: they keep the whole range, and one downstream can
    // remove a finding upstream (Log(Sum(Exp)) -> ReduceLogSumExp drops the Exp).
    if (options.mode == FixMode::kAuto || options.mode == FixMode::kRewrite) local_pass(cur, report.fixes, true, options);
    if (options.mode == FixMode::kAuto || options.mode == FixMode::kImmediate) local_pass(cur, report.fixes, false, options);
    if (options.alternatives && !targets.empty())
      for (FixMode m : {FixMode::kInputs, FixMode::kWeights, FixMode::kAll}) {
        if (m != FixMode::kInputs && options.analyze.weights != WeightMode::kFree) continue;
        auto rf = find_safe_ranges(graph, targets, m, options);
        if (rf.ok()) report.alternatives.push_back(*rf);
      }
  }
  report.changed = std::any_of(report.fixes.begin(), report.fixes.end(),
                               [](const FindingFix& fx) { return fx.status == "fixed" && fx.at != "other"; });
  cur.patch.prune_dead_nodes();
  report.patched = std::move(cur.patch);
  report.remaining = cur.analysis.findings;
  return report;
}

}  // namespace nanguard
