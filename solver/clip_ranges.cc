// The range modes (inputs, weights, all): the widest sub-ranges of graph inputs and
// free float initializers with which the analyzer proves the findings gone. The
// candidates, in turn: one tensor alone for every finding; one tensor per finding (a
// divisor here, a log's operand there); all together. Each moves along the gradient of
// the hazards' violation through the analysis' differentiable bounds
// (AnalyzeOptions::range_tensors), towards 0 or away from it; a bisection on how far to
// move finds the least narrowing the full analysis proves, then each endpoint is given
// back as far as the proof still holds.
#include <algorithm>
#include <climits>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include <fmt/core.h>

#include "analyzer/operand_types.h"
#include "ops/op_registry.h"
#include "solver/fix_internal.h"

namespace nanguard {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

std::vector<Knob> knobs_of(const Graph& graph, FixMode mode, const AnalyzeOptions& opt) {
  std::vector<Knob> out;
  auto init = initial_intervals(graph, opt);
  if (!init.ok()) return out;
  bool inputs = mode == FixMode::kInputs || mode == FixMode::kAll;
  bool weights = (mode == FixMode::kWeights || mode == FixMode::kAll) && opt.weights == WeightMode::kFree;
  auto add = [&](const std::string& name, bool weight) {
    auto it = init->find(name);
    if (it == init->end() || !it->second.is_float() || it->second.exact() || it->second.numel() == 0) return;
    double lo = it->second.min(), hi = it->second.max();
    if (hi > lo && std::isfinite(lo) && std::isfinite(hi)) out.push_back(Knob{name, weight, lo, hi});
  };
  if (inputs)
    for (const auto& name : graph.inputs) add(name, false);
  if (weights) {
    std::vector<std::string> names;
    for (const auto& [name, t] : graph.initializers) names.push_back(name);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) add(name, true);
  }
  return out;
}

namespace {

AnalyzeOptions with_ranges(const AnalyzeOptions& base, const std::vector<Knob>& knobs, const std::vector<Range>& r) {
  AnalyzeOptions o = base;
  for (size_t i = 0; i < knobs.size(); ++i) {
    if (knobs[i].weight) o.weight_ranges[knobs[i].name] = r[i];
    else o.ranges[knobs[i].name] = r[i];
  }
  return o;
}

// Float32 ends inside [lo, hi] (the Clip's constants), never crossing.
Range float32_inside(double lo, double hi) {
  double l = float32_up(lo), h = float32_down(hi);
  return h >= l ? Range{l, h} : Range{l, l};
}

// A direction: per knob, the shares of its base width that its low and high ends
// move by at t = 1.
using Direction = std::vector<std::pair<double, double>>;

// The ranges with each knob's ends moved t of the way along `dir` from `base`.
std::vector<Range> at_t(const std::vector<Range>& base, const Direction& dir, double t) {
  std::vector<Range> r;
  for (size_t i = 0; i < base.size(); ++i) {
    double w = base[i].hi - base[i].lo;
    r.push_back(float32_inside(base[i].lo + t * dir[i].first * w, base[i].hi - t * dir[i].second * w));
  }
  return r;
}

struct Search {
  const Graph& graph;
  const std::vector<Finding>& targets;
  const std::vector<Finding>& original;
  const FixOptions& options;
  std::set<std::string> target_nodes;
  std::vector<Knob> knobs;
  Clock::time_point deadline;
  int analyses = 0;

  double analysis_seconds = 0;  // one plain analysis of the model, measured
  std::map<std::string, std::set<std::string>> upstream;  // per target node: the tensors it reads, transitively

  // Whether knob i feeds every target: only such a tensor can fix them all alone.
  bool feeds_all(size_t i) const {
    return std::all_of(upstream.begin(), upstream.end(), [&](const auto& u) { return u.second.count(knobs[i].name) > 0; });
  }
  // Bisection steps: fewer where one analysis takes seconds (the budget would end first).
  int steps() const { return analysis_seconds > 1 ? 6 : 10; }

  bool out_of_time() const { return Clock::now() > deadline; }
  double seconds_left() const { return std::chrono::duration<double>(deadline - Clock::now()).count(); }

  std::vector<Range> whole() const {
    std::vector<Range> r;
    for (const Knob& k : knobs) r.push_back(float32_inside(k.lo, k.hi));
    return r;
  }

  // Proved: the findings at `nodes` gone and none new.
  bool proves(const std::vector<Range>& r, const std::set<std::string>& nodes) {
    ++analyses;
    auto a = analyze(graph, with_ranges(options.analyze, knobs, r));
    bool ok = a.ok() && findings_removed(nodes, original, a->findings);
    if (std::getenv("NANGUARD_TRACE_FIX")) {
      std::string s;
      for (const Range& x : r) s += fmt::format(" [{:.4g}, {:.4g}]", x.lo, x.hi);
      std::fprintf(stderr, "fix: analysis %d %s:%s\n", analyses, ok ? "proved" : "not proved", s.c_str());
    }
    return ok;
  }
  bool proves(const std::vector<Range>& r) { return proves(r, target_nodes); }
};

// The violation of each target's safe domain by its operand's bounds, summed: its
// gradient with respect to the knobs' ends says which end to move, and how much.
std::optional<Direction> gradient_direction(Search& s) {
  AnalyzeOptions o = s.options.analyze;
  std::vector<std::pair<at::Tensor, at::Tensor>> ends;
  for (const Knob& k : s.knobs) {
    at::Tensor lo = at::full({}, k.lo, at::kDouble).requires_grad_(true), hi = at::full({}, k.hi, at::kDouble).requires_grad_(true);
    o.range_tensors[k.name] = {lo, hi};
    ends.push_back({lo, hi});
  }
  try {
    auto a = analyze(s.graph, o);
    if (!a.ok()) return std::nullopt;
    at::Tensor v = at::zeros({}, at::kDouble);
    for (const Finding& f : s.targets) {
      const Node* n = s.graph.find_node(f.node);
      const HazardFacet* facet = n ? find_facet(n->op_type, n->domain, f.hazard) : nullptr;
      if (!facet || !facet->safe_domain) continue;
      auto d = facet->safe_domain(*n, operand_ranges(*n, *a), node_type_max(*n, *a));
      auto it = d ? a->intervals.find(n->inputs[d->operand]) : a->intervals.end();
      if (it == a->intervals.end() || !it->second.lo.defined() || !it->second.lo.requires_grad()) continue;
      const IntervalTensor& x = it->second;
      double scale = 1.0 / (1.0 + std::max(std::abs(x.min()), std::abs(x.max())));
      if (std::isfinite(d->lo)) v = v + (d->lo - x.lo).relu().sum() * scale;
      if (std::isfinite(d->hi)) v = v + (x.hi - d->hi).relu().sum() * scale;
      if (d->min_magnitude > 0) v = v + at::minimum((d->min_magnitude - x.lo).relu(), (x.hi + d->min_magnitude).relu()).sum() * scale;
    }
    if (!v.requires_grad()) return std::nullopt;
    v.backward();
  } catch (const std::exception&) {
    return std::nullopt;
  }
  double best = 0;
  Direction a(s.knobs.size());
  for (size_t i = 0; i < s.knobs.size(); ++i) {
    at::Tensor glo = ends[i].first.grad(), ghi = ends[i].second.grad();
    double w = s.knobs[i].hi - s.knobs[i].lo;
    double l = glo.defined() ? std::max(0.0, -glo.item<double>()) * w : 0, h = ghi.defined() ? std::max(0.0, ghi.item<double>()) * w : 0;
    a[i] = {std::isfinite(l) ? l : 0, std::isfinite(h) ? h : 0};
    best = std::max({best, a[i].first, a[i].second});
  }
  if (!(best > 0)) return std::nullopt;
  for (auto& [l, h] : a) {
    l /= best;
    h /= best;
    if (double sum = l + h; sum > 1) { l /= sum; h /= sum; }
  }
  return a;
}

// Shares of the ends that bring [lo, hi] to 0 at t = 1 when it holds 0 (a weight at 0
// silences its products), else to its middle.
std::pair<double, double> towards_zero(const Range& r) {
  if (r.lo > 0 || r.hi < 0) return {0.5, 0.5};
  double w = r.hi - r.lo;
  return {-r.lo / w, r.hi / w};
}

// Shares that keep the larger side of 0 and move its near end to half its far end at
// t = 1: a divisor, a log's operand, a norm need their range off 0, not around it.
std::pair<double, double> away_from_zero(const Range& r) {
  if (r.lo > 0 || r.hi < 0) return {0, 0};
  double w = r.hi - r.lo;
  if (r.hi >= -r.lo) return {(r.hi / 2 - r.lo) / w, 0};
  return {0, (r.hi - r.lo / 2) / w};
}

// Gives each moved end back as far as the proof holds: its old place first, then 0
// when it crossed 0 (a clamp off 0 keeps no more by going back past it), then halves.
void give_back(Search& s, std::vector<Range>& r) {
  for (size_t i = 0; i < s.knobs.size(); ++i)
    for (bool low : {true, false}) {
      double orig = low ? s.knobs[i].lo : s.knobs[i].hi;
      double& end = low ? r[i].lo : r[i].hi;
      if (end == orig) continue;
      double good = end, bad = orig;
      for (int step = 0; step < 6 && !s.out_of_time(); ++step) {
        bool crossed = (good > 0 && bad < 0) || (good < 0 && bad > 0);
        double mid = step == 0 ? bad : step == 1 && crossed ? 0.0 : (good + bad) / 2;
        std::vector<Range> trial = r;
        (low ? trial[i].lo : trial[i].hi) = mid;
        trial[i] = float32_inside(trial[i].lo, trial[i].hi);
        if (s.proves(trial)) {
          good = mid;
          if (step == 0) break;
        } else {
          bad = mid;
        }
      }
      end = good;
      r[i] = float32_inside(r[i].lo, r[i].hi);
    }
}

// The ranges at the least t in (0, 1] that proves `nodes`, given that t = 1 does.
std::vector<Range> bisect(Search& s, const std::vector<Range>& base, const Direction& dir, const std::set<std::string>& nodes) {
  double good = 1, bad = 0;
  for (int step = 0; step < s.steps() && !s.out_of_time(); ++step) {
    double mid = (good + bad) / 2;
    (s.proves(at_t(base, dir, mid), nodes) ? good : bad) = mid;
  }
  return at_t(base, dir, good);
}

double mean_kept(const Search& s, const std::vector<Range>& r) {
  double kept = 0;
  for (size_t i = 0; i < s.knobs.size(); ++i) kept += kept_share(s.knobs[i].lo, s.knobs[i].hi, r[i].lo, r[i].hi);
  return kept / s.knobs.size();
}

// The ways to narrow knob i alone from `base`: along the gradient (or towards 0
// without one), then towards 0 and away from 0 where those differ.
std::vector<Direction> single_moves(const Search& s, const std::vector<Range>& base, size_t i, const Direction* grad) {
  std::vector<Direction> out;
  Direction d(s.knobs.size(), {0, 0});
  double l = grad ? (*grad)[i].first : 0, h = grad ? (*grad)[i].second : 0;
  d[i] = l + h > 0 ? std::make_pair(l / (l + h), h / (l + h)) : towards_zero(base[i]);
  out.push_back(d);
  for (auto other : {towards_zero(base[i]), away_from_zero(base[i])}) {
    bool known = std::any_of(out.begin(), out.end(), [&](const Direction& o) { return o[i] == other; });
    if (other == std::make_pair(0.0, 0.0) || known) continue;
    d[i] = other;
    out.push_back(d);
  }
  return out;
}

// Knob i narrowed alone from `base` until `nodes` are proved, the least such move.
std::optional<std::vector<Range>> narrow_one(Search& s, const std::vector<Range>& base, size_t i, const Direction* grad,
                                             const std::set<std::string>& nodes) {
  for (const Direction& d : single_moves(s, base, i, grad)) {
    if (s.out_of_time()) break;
    if (s.proves(at_t(base, d, 1.0), nodes)) return bisect(s, base, d, nodes);
  }
  return std::nullopt;
}

// The tensors upstream of a node: only those can decide its finding.
std::set<std::string> upstream_of(const Graph& g, const std::string& node) {
  std::set<std::string> seen;
  std::vector<const Node*> todo;
  if (const Node* n = g.find_node(node)) todo.push_back(n);
  while (!todo.empty()) {
    const Node* n = todo.back();
    todo.pop_back();
    for (const std::string& t : n->inputs)
      if (!t.empty() && seen.insert(t).second)
        if (const Node* p = g.producer(t)) todo.push_back(p);
  }
  return seen;
}

// The knobs in the order to try them alone: the gradient's strongest first; without
// one, the tensors read last first (nearest the hazards, they decide them most
// directly: a classifier's last weights against its input).
std::vector<size_t> knob_order(const Search& s, const Direction* grad) {
  std::vector<int> first_use(s.knobs.size(), 0);
  for (size_t i = 0; i < s.knobs.size(); ++i)
    for (const Node& n : s.graph.nodes)
      if (std::find(n.inputs.begin(), n.inputs.end(), s.knobs[i].name) != n.inputs.end()) {
        first_use[i] = n.index;
        break;
      }
  std::vector<size_t> order(s.knobs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    double ga = grad ? (*grad)[a].first + (*grad)[a].second : 0, gb = grad ? (*grad)[b].first + (*grad)[b].second : 0;
    return ga != gb ? ga > gb : first_use[a] > first_use[b];
  });
  return order;
}

// One tensor alone for every target (at most three that prove): narrowing one layer
// keeps every other whole, which the mean kept share rewards.
std::optional<std::vector<Range>> best_single(Search& s, const std::vector<size_t>& order, const Direction* grad) {
  std::optional<std::vector<Range>> best;
  int proved = 0, tried = 0;
  for (size_t i : order) {
    if (proved >= 3 || tried >= 8 || s.out_of_time()) break;
    if (!s.feeds_all(i)) continue;
    ++tried;
    auto r = narrow_one(s, s.whole(), i, grad, s.target_nodes);
    if (!r) continue;
    ++proved;
    if (!best || mean_kept(s, *r) > mean_kept(s, *best)) best = r;
  }
  return best;
}

// A finding at a time, each by the first tensor upstream of it that proves it alone,
// on top of the narrowings before: findings with separate causes (a divisor here, a
// log's operand there) each get their own tensor.
std::optional<std::vector<Range>> one_per_finding(Search& s, const std::vector<size_t>& order, const Direction* grad) {
  std::vector<Range> r = s.whole();
  std::vector<std::string> nodes(s.target_nodes.begin(), s.target_nodes.end());
  std::sort(nodes.begin(), nodes.end(), [&](const std::string& a, const std::string& b) {
    // A finding inside a subgraph names no node of this graph: last.
    auto index = [&](const std::string& n) { const Node* p = s.graph.find_node(n); return p ? p->index : INT_MAX; };
    return index(a) < index(b);
  });
  for (const std::string& node : nodes) {
    if (s.out_of_time()) return std::nullopt;
    if (s.proves(r, {node})) continue;
    const std::set<std::string>& up = s.upstream.at(node);
    bool done = false;
    int tried = 0;
    for (size_t i : order) {
      if (!up.count(s.knobs[i].name)) continue;
      if (tried++ >= 4 || s.out_of_time()) break;
      if (auto n = narrow_one(s, r, i, grad, {node})) {
        r = *n;
        done = true;
        break;
      }
    }
    if (!done) return std::nullopt;
  }
  if (!s.proves(r)) return std::nullopt;
  give_back(s, r);
  return r;
}

// All knobs together along each direction in turn, each end then given back as far as
// the proof holds; the one keeping the most wins.
std::optional<std::vector<Range>> best_joint(Search& s, const Direction* grad) {
  std::vector<Range> base = s.whole();
  std::vector<Direction> dirs;
  if (grad) dirs.push_back(*grad);
  Direction away, zero;
  for (const Range& b : base) {
    away.push_back(away_from_zero(b));
    zero.push_back(towards_zero(b));
  }
  dirs.push_back(away);
  dirs.push_back(zero);
  dirs.push_back(Direction(base.size(), {0.5, 0.5}));
  std::optional<std::vector<Range>> best;
  for (const Direction& d : dirs) {
    if (s.out_of_time()) break;
    if (!s.proves(at_t(base, d, 1.0))) continue;
    std::vector<Range> r = bisect(s, base, d, s.target_nodes);
    give_back(s, r);
    if (!best || mean_kept(s, r) > mean_kept(s, *best)) best = r;
  }
  return best;
}

// Candidates in turn: one tensor alone, one tensor per finding, all together.
bool narrowest_proof(Search& s, std::vector<Range>& best) {
  // The differentiable analysis costs several plain ones: only where it leaves most
  // of the budget to the proofs.
  std::optional<Direction> grad;
  if (s.analysis_seconds * 8 < s.seconds_left()) grad = gradient_direction(s);
  const Direction* g = grad ? &*grad : nullptr;
  std::vector<size_t> order = knob_order(s, g);
  std::optional<std::vector<Range>> r = best_single(s, order, g);
  if (!r && s.target_nodes.size() > 1) r = one_per_finding(s, order, g);
  if (!r) r = best_joint(s, g);
  if (r) best = *r;
  return r.has_value();
}

// RANUM's measure: the mean kept share over every input and weight with a range, those
// the mode may not narrow counting as kept whole.
double kept_over_all_nodes(const Graph& graph, const AnalyzeOptions& opt, const std::vector<RangeChange>& changes) {
  std::vector<Knob> all = knobs_of(graph, FixMode::kAll, opt);
  if (all.empty()) return 1;
  double kept = 0;
  for (const Knob& k : all) {
    auto c = std::find_if(changes.begin(), changes.end(), [&](const RangeChange& c) { return c.tensor == k.name; });
    kept += c == changes.end() ? 1.0 : c->kept;
  }
  return kept / all.size();
}

}  // namespace

namespace {

// The narrowing for `targets` that keeps most, searched until `deadline`; the reason
// when none is proved.
std::optional<std::vector<Range>> search_ranges(const Graph& graph, const std::vector<Finding>& targets,
                                                const std::vector<Finding>& original, FixMode mode,
                                                const FixOptions& options, Clock::time_point deadline,
                                                std::vector<Knob>& knobs, std::string& reason) {
  auto start = Clock::now();
  std::set<std::string> nodes;
  for (const Finding& f : targets) nodes.insert(f.node);
  Search s{graph, targets, original, options, nodes, knobs_of(graph, mode, options.analyze), deadline};
  s.analysis_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const std::string& n : nodes) s.upstream[n] = upstream_of(graph, n);
  knobs = s.knobs;
  std::vector<Range> r;
  if (!narrowest_proof(s, r)) {
    reason = "no sub-range of these tensors was proved safe (the analyzer still flags the findings when they are narrowed to a point)";
    return std::nullopt;
  }
  if (!s.proves(r)) {
    reason = "the narrowed ranges failed the final proof";
    return std::nullopt;
  }
  return r;
}

void record_changes(const Graph& graph, const FixOptions& options, const std::vector<Knob>& knobs,
                    const std::vector<Range>& r, RangeFix& fix) {
  double kept = 0;
  for (size_t i = 0; i < knobs.size(); ++i) {
    const Knob& k = knobs[i];
    Range whole = float32_inside(k.lo, k.hi);  // an end left where it was needs no Clip
    double lo = r[i].lo == whole.lo ? k.lo : r[i].lo, hi = r[i].hi == whole.hi ? k.hi : r[i].hi;
    RangeChange c{k.name, k.lo, k.hi, lo, hi, kept_share(k.lo, k.hi, lo, hi)};
    kept += c.kept;
    fix.changes.push_back(c);
  }
  fix.kept = kept / knobs.size();
  fix.min_kept = 1;
  for (const RangeChange& c : fix.changes) fix.min_kept = std::min(fix.min_kept, c.kept);
  fix.kept_all_nodes = kept_over_all_nodes(graph, options.analyze, fix.changes);
  fix.proved = true;
}

}  // namespace

// When no narrowing removes every finding left: those that one removes alone, then
// together (the first alone when they conflict). True when some are removed; the
// others stay flagged in the patched model.
bool fix_some(const Graph& graph, const std::vector<Finding>& rest, const std::vector<Finding>& original, FixMode mode,
              const FixOptions& options, Clock::time_point deadline, RangeFix& fix, std::string& reason) {
  std::vector<Finding> alone;
  std::optional<std::vector<Range>> first;
  std::vector<Knob> knobs;
  std::string why, failed_alone;
  size_t i = 0;
  for (; i < rest.size() && Clock::now() < deadline; ++i) {
    Clock::time_point own = Clock::now() + (deadline - Clock::now()) / static_cast<int64_t>(rest.size() - i + 1);
    auto r = search_ranges(graph, {rest[i]}, original, mode, options, own, knobs, why);
    if (!r) {
      failed_alone = why;
      continue;
    }
    if (!first) first = r;
    alone.push_back(rest[i]);
  }
  if (!first) return false;
  std::optional<std::vector<Range>> together;
  if (alone.size() > 1) together = search_ranges(graph, alone, original, mode, options, deadline, knobs, why);
  record_changes(graph, options, knobs, together ? *together : *first, fix);
  bool conflict = alone.size() > 1 && !together;
  reason = failed_alone.empty() ? "" : "no narrowing removes it even alone: " + failed_alone;
  if (conflict) reason += std::string(reason.empty() ? "" : "; or ") + "removed alone, but no narrowing found removes it together with the findings fixed here";
  if (i < rest.size()) reason += std::string(reason.empty() ? "" : "; or ") + "not searched alone before the deadline";
  return true;
}

namespace {

// Whether the analysis still flags some target with every tensor the mode narrows held
// at a point, at the low ends of their ranges and at their middles: then the tensors it
// may not narrow likely decide.
bool flagged_at_points(const Graph& graph, const std::vector<Finding>& targets, FixMode mode, const FixOptions& options) {
  std::vector<Knob> knobs = knobs_of(graph, mode, options.analyze);
  for (double share : {0.0, 0.5}) {
    std::vector<Range> point;
    for (const Knob& k : knobs) {
      double v = float32_up(k.lo + (k.hi - k.lo) * share);
      point.push_back(Range{v, v});
    }
    auto a = analyze(graph, with_ranges(options.analyze, knobs, point));
    if (!a.ok()) return false;
    bool flagged = false;
    for (const Finding& f : a->findings)
      for (const Finding& t : targets) flagged = flagged || (f.node == t.node && f.hazard == t.hazard);
    if (!flagged) return false;
  }
  return true;
}

}  // namespace

// The search has the budget, and when it fails, proofs that some findings cannot be
// removed by this mode get what it left, or 15% more. Where the analysis still flags a
// target with the mode's tensors at points (flagged_at_points), the proofs come first, with 60% of the
// budget (on a large model a proof's step takes seconds, and the search would spend
// the budget on a finding no narrowing removes); the search then has what is left, or
// 15%. Where proofs leave findings, the search runs again for those with 15% more, and
// where that fails, it fixes the ones it can (fix_some) with 15% more.
Result<RangeFix> find_safe_ranges(const Graph& graph, const std::vector<Finding>& targets, FixMode mode,
                                  const FixOptions& options) {
  auto start = Clock::now();
  auto after = [&](Clock::time_point from, double share) {
    return from + std::chrono::milliseconds(static_cast<int64_t>(options.range_budget_seconds * 1000 * share));
  };
  RangeFix fix;
  fix.mode = mode;
  auto finish = [&](std::string reason) {
    fix.reason = std::move(reason);
    fix.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return fix;
  };
  auto original = analyze(graph, options.analyze);
  if (!original.ok()) return original.status();
  if (knobs_of(graph, mode, options.analyze).empty())
    return finish(mode == FixMode::kInputs ? "no float input with a range to narrow"
                                           : "no free float weight to narrow (weights are narrowed under --weights free)");
  auto not_proved = [&](const std::vector<Finding>& of) {
    std::vector<Finding> rest;
    for (const Finding& f : of)
      if (std::none_of(fix.unremovable.begin(), fix.unremovable.end(), [&](const Unremovable& u) { return u.node == f.node; }))
        rest.push_back(f);
    return rest;
  };
  std::vector<Finding> unfinished = targets;  // the proofs not yet tried to the end
  if (flagged_at_points(graph, targets, mode, options)) {
    unfinished.clear();
    fix.unremovable = prove_unremovable(graph, targets, mode, options, after(start, 0.6), &unfinished);
  }
  std::vector<Finding> rest = not_proved(targets);
  if (rest.empty()) return finish(fix.unremovable.front().text);
  std::vector<Knob> knobs;
  std::string reason;
  auto r = search_ranges(graph, rest, original->findings, mode, options,
                         std::max(after(start, 1.0), after(Clock::now(), 0.15)), knobs, reason);
  if (r) {
    record_changes(graph, options, knobs, *r, fix);
    return finish("");
  }
  if (!unfinished.empty()) {
    size_t before = fix.unremovable.size();
    auto more = prove_unremovable(graph, unfinished, mode, options, std::max(after(start, 1.0), after(Clock::now(), 0.15)));
    fix.unremovable.insert(fix.unremovable.end(), more.begin(), more.end());
    rest = not_proved(rest);
    if (rest.empty()) return finish(fix.unremovable.front().text);
    if (fix.unremovable.size() > before) {
      r = search_ranges(graph, rest, original->findings, mode, options, after(Clock::now(), 0.15), knobs, reason);
      if (r) {
        record_changes(graph, options, knobs, *r, fix);
        return finish("");
      }
    }
  }
  std::string partial;
  if (rest.size() > 1 && fix_some(graph, rest, original->findings, mode, options, after(Clock::now(), 0.15), fix, partial))
    return finish(partial);
  return finish(reason);
}

}  // namespace nanguard
