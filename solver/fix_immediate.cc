// The immediate fix: the faulty operand clipped to its hazard's exact float32 safe
// domain (ops/ facets), tightened by the domains of the hazards the clip uncovers at
// the same node (Log: x >= the smallest subnormal keeps the value finite, then
// x >= 1/FLT_MAX its gradient), and moved inwards by bisection when the op is safe
// but what follows is not (exp clipped at 88.72 still overflows a sum of ten).
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "analyzer/operand_types.h"
#include "ops/op_registry.h"
#include "solver/fix_internal.h"

namespace nanguard {
namespace {

struct ClipTrial {
  Trial trial;
  RangeChange change;
};

// The model with `node`'s operand clipped into `d`, analysed.
Result<ClipTrial> clipped(const Trial& cur, const Node& node, const SafeDomain& d, const Range& r, const FixOptions& options) {
  ModelPatch p = cur.patch;
  auto change = clip_operand(p, cur.graph, node, d, r);
  if (!change.ok()) return change.status();
  auto t = analyze_patch(std::move(p), cur.graph, options);
  if (!t.ok()) return t.status();
  return ClipTrial{std::move(*t), *change};
}

bool removes(const ClipTrial& t, const Trial& cur, const Finding& f) {
  return findings_removed({f.node}, cur.analysis.findings, t.trial.analysis.findings);
}

// `d` intersected with the domains of the same operand's hazards that `after`
// reports at the node, or at the node that now computes its output (a sign-preserving
// clamp's quotient, whose divisor is the clamped one); false when nothing new
// narrowed it.
bool tighten(SafeDomain& d, const Node& node, const std::vector<Range>& ranges, const Trial& after) {
  bool tightened = false;
  const Node* now = after.graph.producer(node.outputs[0]);
  for (const Finding& g : after.analysis.findings) {
    if (g.node != node.name && !(now && g.node == now->name && now->op_type == node.op_type)) continue;
    const HazardFacet* gf = find_facet(node.op_type, node.domain, g.hazard);
    std::optional<SafeDomain> gd = gf && gf->safe_domain ? gf->safe_domain(node, ranges, node_type_max(node, after.analysis)) : std::nullopt;
    if (!gd || gd->operand != d.operand) continue;
    SafeDomain n{d.operand, std::max(d.lo, gd->lo), std::min(d.hi, gd->hi), std::max(d.min_magnitude, gd->min_magnitude), ""};
    tightened = tightened || n.lo != d.lo || n.hi != d.hi || n.min_magnitude != d.min_magnitude;
    n.text = describe(n);
    d = n;
  }
  return tightened;
}

// The bound of `d` moved inwards by the least share the proof of the whole path
// allows (12 bisection steps): a one-sided bound towards 0 (1 for a lower bound), a
// divisor's magnitude geometrically towards 1 (a quotient up to FLT_MAX overflows
// whatever it feeds).
std::optional<ClipTrial> narrower_clip(const Trial& cur, const Node& node, const Finding& f, const SafeDomain& d,
                                       const Range& r, const FixOptions& options, SafeDomain& kept) {
  bool magnitude = d.min_magnitude > 0, hi_side = r.hi > d.hi, lo_side = r.lo < d.lo;
  if (!magnitude && hi_side == lo_side) return std::nullopt;
  double inner_m = std::max(d.min_magnitude, std::min(1.0, std::max(std::abs(r.lo), std::abs(r.hi))));
  auto at = [&](double t) {
    SafeDomain n = d;
    if (magnitude) {
      n.min_magnitude = float32_up(std::exp(std::log(d.min_magnitude) + t * (std::log(inner_m) - std::log(d.min_magnitude))));
    } else {
      double edge = hi_side ? d.hi : d.lo;
      double inner = hi_side ? std::min(std::max(0.0, r.lo), d.hi) : std::max(std::min(1.0, r.hi), d.lo);
      double v = edge + t * (inner - edge);
      (hi_side ? n.hi : n.lo) = hi_side ? float32_down(v) : float32_up(v);
    }
    n.text = describe(n);
    return n;
  };
  auto best = clipped(cur, node, at(1.0), r, options);
  if (!best.ok() || !removes(*best, cur, f)) return std::nullopt;
  double good = 1, bad = 0;
  for (int step = 0; step < 12; ++step) {
    double mid = (good + bad) / 2;
    auto t = clipped(cur, node, at(mid), r, options);
    if (t.ok() && removes(*t, cur, f)) {
      good = mid;
      best = std::move(t);
    } else {
      bad = mid;
    }
  }
  kept = at(good);
  return std::move(*best);
}

void describe_fix(FindingFix& out, const Node& node, const SafeDomain& d, RangeChange change, const std::string& note) {
  const std::string& x = node.inputs[d.operand];
  bool crosses = d.min_magnitude > 0 && change.before_lo < 0 && change.before_hi > 0;
  out.at = "immediate";
  out.description = crosses ? fmt::format("{} of {} kept away from 0 with its sign: |{}| >= {:.9g}{}", x, node.name, x, d.min_magnitude, note)
                            : fmt::format("Clip {} of {} to {}{}", x, node.name, d.text, note);
  out.changes = {std::move(change)};
  out.hint = crosses ? fmt::format("keep the divisor away from 0 with its sign: torch.where(y < 0, y.clamp(max=-{0:.9g}), "
                                   "y.clamp(min={0:.9g}))", d.min_magnitude)
                     : fmt::format("clamp the operand before the op ({}), e.g. torch.clamp(x, min=..., max=...)", d.text);
}

// The model with every unbounded float operand of `node` clipped to [-m, m].
Result<ClipTrial> bounded(const Trial& cur, const Node& node, const std::vector<int>& operands,
                          const std::vector<Range>& ranges, double m, const FixOptions& options,
                          std::vector<RangeChange>& changes) {
  ModelPatch p = cur.patch;
  changes.clear();
  for (int i : operands) {
    SafeDomain d{i, -m, m, 0, ""};
    d.text = describe(d);
    auto c = clip_operand(p, cur.graph, node, d, ranges[i]);
    if (!c.ok()) return c.status();
    changes.push_back(*c);
  }
  auto t = analyze_patch(std::move(p), cur.graph, options);
  if (!t.ok()) return t.status();
  return ClipTrial{std::move(*t), changes.empty() ? RangeChange{} : changes.front()};
}

// For a hazard no one operand decides (an overflowing sum or product): every float
// operand whose range reaches past m clipped to [-m, m], with the largest m (float32,
// 16 geometric bisection steps between 1 and the widest bound) that the analyzer
// proves. Values that large are already useless, so normal outputs do not change.
std::optional<Trial> try_bounded_operands(const Trial& cur, const Node& node, const Finding& f,
                                          const FixOptions& options, FindingFix& out) {
  std::vector<Range> ranges = operand_ranges(node, cur.analysis);
  double top = 1;
  for (const Range& r : ranges)
    if (std::isfinite(r.lo) && std::isfinite(r.hi)) top = std::max({top, std::abs(r.lo), std::abs(r.hi)});
  top = std::min(top, static_cast<double>(std::numeric_limits<float>::max()));
  auto operands_past = [&](double m) {
    std::vector<int> v;
    for (size_t i = 0; i < ranges.size(); ++i) {
      const Range& r = ranges[i];
      const TensorType* t = node.inputs[i].empty() ? nullptr : cur.graph.type_of(node.inputs[i]);
      if (!t || !is_float_elem_type(t->elem_type) || cur.graph.folded_constants.count(node.inputs[i])) continue;
      if (cur.graph.is_initializer(node.inputs[i]) && options.analyze.weights != WeightMode::kFree) continue;  // a constant
      if (!(r.lo >= -m) || !(r.hi <= m)) v.push_back(static_cast<int>(i));  // NaN bounds: unknown, clip too
    }
    return v;
  };
  auto at = [&](double t) { return float32_down(std::exp(t * std::log(top))); };
  std::vector<RangeChange> changes, best_changes;
  auto proves = [&](double m, std::optional<ClipTrial>& best) {
    std::vector<int> ops = operands_past(m);
    if (ops.empty()) return false;
    auto t = bounded(cur, node, ops, ranges, m, options, changes);
    if (!t.ok() || !removes(*t, cur, f)) return false;
    best = std::move(*t);
    best_changes = changes;
    return true;
  };
  std::optional<ClipTrial> best;
  if (!proves(1.0, best)) {
    out.reason = "bounding every operand of the node by 1 is not proved either: the fault is upstream";
    return std::nullopt;
  }
  double good = 0, bad = 1, m = 1;
  for (int step = 0; step < 16; ++step) {
    double mid = (good + bad) / 2;
    if (proves(at(mid), best)) {
      good = mid;
      m = at(mid);
    } else {
      bad = mid;
    }
  }
  out.at = "immediate";
  std::vector<std::string> names;
  for (const RangeChange& c : best_changes) names.push_back(c.tensor);
  double shown = best_changes.empty() ? m : std::max(std::abs(best_changes.front().after_lo), std::abs(best_changes.front().after_hi));
  out.description = fmt::format("Clip {} of {} to [-{:.9g}, {:.9g}]", fmt::join(names, ", "), node.name, std::min(m, shown),
                                std::min(m, shown));
  out.changes = best_changes;
  const TensorType* t = node.outputs.empty() ? nullptr : cur.graph.type_of(node.outputs[0]);
  const char* type = t && t->elem_type == onnx::TensorProto::FLOAT16    ? "float16"
                     : t && t->elem_type == onnx::TensorProto::BFLOAT16 ? "bfloat16"
                                                                         : "float32";
  out.hint = fmt::format("bound what the op combines before it: torch.clamp(x, -{0:.3g}, {0:.3g}); values past that "
                         "overflow {1} here anyway", m, type);
  return std::move(best->trial);
}

}  // namespace

std::optional<Trial> try_immediate(const Trial& cur, const Node& node, const Finding& f, const FixOptions& options,
                                   FindingFix& out) {
  const HazardFacet* facet = find_facet(node.op_type, node.domain, f.hazard);
  if (facet && !facet->safe_domain && facet->bounded_operands) return try_bounded_operands(cur, node, f, options, out);
  if (!facet || !facet->safe_domain) {
    out.reason = facet ? "no safe operand domain: " + facet->no_safe_domain : "the hazard has no facets";
    return std::nullopt;
  }
  std::vector<Range> ranges = operand_ranges(node, cur.analysis);
  std::optional<SafeDomain> d = facet->safe_domain(node, ranges, node_type_max(node, cur.analysis));
  if (!d) {
    out.reason = "no safe operand domain for these operand ranges";
    return std::nullopt;
  }
  const Range& r = ranges[d->operand];
  double margin = options.divisor_margin * std::max(std::abs(r.lo), std::abs(r.hi));
  if (d->min_magnitude > 0 && std::isfinite(margin) && margin > d->min_magnitude) {
    d->min_magnitude = float32_up(margin);
    d->text = describe(*d);
  }
  for (int round = 0; round < 4; ++round) {
    auto t = clipped(cur, node, *d, r, options);
    if (!t.ok()) {
      out.reason = t.status().message();
      return std::nullopt;
    }
    if (removes(*t, cur, f)) {
      describe_fix(out, node, *d, t->change, "");
      return std::move(t->trial);
    }
    if (!tighten(*d, node, ranges, t->trial)) break;  // else: what follows the op fails
  }
  SafeDomain kept;
  if (auto t = narrower_clip(cur, node, f, *d, r, options, kept)) {
    describe_fix(out, node, kept, t->change,
                 fmt::format(" (narrower than the op's own safe domain {}, so that what follows is proved too)", d->text));
    return std::move(t->trial);
  }
  out.reason = fmt::format("a Clip to {} is not proved by the analyzer (nor any narrower one tried)", d->text);
  return std::nullopt;
}

}  // namespace nanguard
