// The range modes (inputs, weights, all): the widest sub-ranges of graph inputs and
// free float initializers with which the analyzer proves the findings gone. The
// direction comes from the gradient of the hazards' violation through the analysis'
// differentiable bounds (AnalyzeOptions::range_tensors); a bisection on how far to
// move finds the least narrowing the full analysis proves, then each endpoint is
// given back as far as the proof still holds.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/core.h>

#include "ops/op_registry.h"
#include "solver/fix_internal.h"

namespace nanguard {
namespace {

using Clock = std::chrono::steady_clock;

struct Knob {
  std::string name;
  bool weight = false;
  double lo = 0, hi = 0;
  double f_lo = 0, f_hi = 0;  // the share of the width each end moves at t = 1
};

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

std::vector<Range> at_t(const std::vector<Knob>& knobs, double t) {
  std::vector<Range> r;
  for (const Knob& k : knobs) {
    double w = k.hi - k.lo;
    r.push_back(float32_inside(k.lo + t * k.f_lo * w, k.hi - t * k.f_hi * w));
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

  bool out_of_time() const { return Clock::now() > deadline; }
  double seconds_left() const { return std::chrono::duration<double>(deadline - Clock::now()).count(); }

  bool proves(const std::vector<Range>& r) {
    ++analyses;
    auto a = analyze(graph, with_ranges(options.analyze, knobs, r));
    bool ok = a.ok() && findings_removed(target_nodes, original, a->findings);
    if (std::getenv("NANGUARD_TRACE_FIX")) {
      std::string s;
      for (const Range& x : r) s += fmt::format(" [{:.4g}, {:.4g}]", x.lo, x.hi);
      std::fprintf(stderr, "fix: analysis %d %s:%s\n", analyses, ok ? "proved" : "not proved", s.c_str());
    }
    return ok;
  }
};

// The violation of each target's safe domain by its operand's bounds, summed: its
// gradient with respect to the knobs' ends says which end to move.
bool gradient_direction(Search& s) {
  AnalyzeOptions o = s.options.analyze;
  std::vector<std::pair<at::Tensor, at::Tensor>> ends;
  for (const Knob& k : s.knobs) {
    at::Tensor lo = at::full({}, k.lo, at::kDouble).requires_grad_(true), hi = at::full({}, k.hi, at::kDouble).requires_grad_(true);
    o.range_tensors[k.name] = {lo, hi};
    ends.push_back({lo, hi});
  }
  try {
    auto a = analyze(s.graph, o);
    if (!a.ok()) return false;
    at::Tensor v = at::zeros({}, at::kDouble);
    for (const Finding& f : s.targets) {
      const Node* n = s.graph.find_node(f.node);
      const HazardFacet* facet = n ? find_facet(n->op_type, n->domain, f.hazard) : nullptr;
      if (!facet || !facet->safe_domain) continue;
      auto d = facet->safe_domain(*n, operand_ranges(*n, *a));
      auto it = d ? a->intervals.find(n->inputs[d->operand]) : a->intervals.end();
      if (it == a->intervals.end() || !it->second.lo.defined() || !it->second.lo.requires_grad()) continue;
      const IntervalTensor& x = it->second;
      double scale = 1.0 / (1.0 + std::max(std::abs(x.min()), std::abs(x.max())));
      if (std::isfinite(d->lo)) v = v + (d->lo - x.lo).relu().sum() * scale;
      if (std::isfinite(d->hi)) v = v + (x.hi - d->hi).relu().sum() * scale;
      if (d->min_magnitude > 0) v = v + at::minimum((d->min_magnitude - x.lo).relu(), (x.hi + d->min_magnitude).relu()).sum() * scale;
    }
    if (!v.requires_grad()) return false;
    v.backward();
  } catch (const std::exception&) {
    return false;
  }
  double best = 0;
  std::vector<std::pair<double, double>> a(s.knobs.size());
  for (size_t i = 0; i < s.knobs.size(); ++i) {
    at::Tensor glo = ends[i].first.grad(), ghi = ends[i].second.grad();
    double w = s.knobs[i].hi - s.knobs[i].lo;
    double l = glo.defined() ? std::max(0.0, -glo.item<double>()) * w : 0, h = ghi.defined() ? std::max(0.0, ghi.item<double>()) * w : 0;
    a[i] = {std::isfinite(l) ? l : 0, std::isfinite(h) ? h : 0};
    best = std::max({best, a[i].first, a[i].second});
  }
  if (!(best > 0)) return false;
  for (size_t i = 0; i < s.knobs.size(); ++i) {
    double l = a[i].first / best, h = a[i].second / best, sum = l + h;
    if (sum > 1) { l /= sum; h /= sum; }
    s.knobs[i].f_lo = l;
    s.knobs[i].f_hi = h;
  }
  return true;
}

void set_direction(std::vector<Knob>& knobs, const std::vector<std::pair<double, double>>& f) {
  for (size_t i = 0; i < knobs.size(); ++i) std::tie(knobs[i].f_lo, knobs[i].f_hi) = f[i];
}

// Gives each moved end back as far as the proof holds (a few bisection steps each).
void give_back(Search& s, std::vector<Range>& r) {
  for (size_t i = 0; i < s.knobs.size(); ++i)
    for (bool low : {true, false}) {
      double orig = low ? s.knobs[i].lo : s.knobs[i].hi;
      double& end = low ? r[i].lo : r[i].hi;
      if (end == orig) continue;
      double good = end, bad = orig;
      for (int step = 0; step < 6 && !s.out_of_time(); ++step) {
        double mid = step == 0 ? bad : (good + bad) / 2;
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

// Shares of the ends that bring [lo, hi] to 0 at t = 1 when it holds 0 (a weight at 0
// silences its products), else to its middle.
std::pair<double, double> towards_zero(const Knob& k) {
  if (k.lo > 0 || k.hi < 0) return {0.5, 0.5};
  double w = k.hi - k.lo;
  return {-k.lo / w, k.hi / w};
}

// The ranges at the least t in (0, 1] that still proves, given that t = 1 does.
std::vector<Range> bisect(Search& s) {
  double good = 1, bad = 0;
  for (int step = 0; step < 12 && !s.out_of_time(); ++step) {
    double mid = (good + bad) / 2;
    (s.proves(at_t(s.knobs, mid)) ? good : bad) = mid;
  }
  return at_t(s.knobs, good);
}

double mean_kept(const Search& s, const std::vector<Range>& r) {
  double kept = 0;
  for (size_t i = 0; i < s.knobs.size(); ++i) kept += kept_share(s.knobs[i].lo, s.knobs[i].hi, r[i].lo, r[i].hi);
  return kept / s.knobs.size();
}

// Candidates in turn, the one keeping the most range wins:
//  - one tensor alone (at most three that prove, the gradient's strongest first), along
//    the gradient or towards 0: narrowing one layer keeps every other whole, which the
//    mean kept share rewards;
//  - all together along the gradient, towards 0, or to their middles, each end then
//    given back as far as the proof holds.
bool narrowest_proof(Search& s, std::vector<Range>& best) {
  std::vector<std::pair<double, double>> grad(s.knobs.size(), {0.5, 0.5});
  // The differentiable analysis costs several plain ones: only where it leaves most
  // of the budget to the proofs.
  bool has_grad = s.analysis_seconds * 8 < s.seconds_left() && gradient_direction(s);
  if (has_grad)
    for (size_t i = 0; i < s.knobs.size(); ++i) grad[i] = {s.knobs[i].f_lo, s.knobs[i].f_hi};
  // Without a gradient, the tensors read last first: nearest the hazards, they decide
  // them most directly (a classifier's last weights against its input).
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
    double ga = grad[a].first + grad[a].second, gb = grad[b].first + grad[b].second;
    return has_grad && ga != gb ? ga > gb : first_use[a] > first_use[b];
  });
  double best_kept = -1;
  int singles = 0;
  for (size_t i : order) {
    if (singles >= 3 || s.out_of_time()) break;
    std::vector<std::pair<double, double>> alone(s.knobs.size(), {0, 0});
    double l = grad[i].first, h = grad[i].second;
    alone[i] = has_grad && l + h > 0 ? std::make_pair(l / (l + h), h / (l + h)) : towards_zero(s.knobs[i]);
    set_direction(s.knobs, alone);
    if (!s.proves(at_t(s.knobs, 1.0))) continue;
    ++singles;
    std::vector<Range> r = bisect(s);
    if (double k = mean_kept(s, r); k > best_kept) {
      best_kept = k;
      best = r;
    }
  }
  if (singles > 0) return true;
  std::vector<std::vector<std::pair<double, double>>> joint;
  if (has_grad) joint.push_back(grad);
  std::vector<std::pair<double, double>> zero;
  for (const Knob& k : s.knobs) zero.push_back(towards_zero(k));
  joint.push_back(zero);
  joint.push_back(std::vector<std::pair<double, double>>(s.knobs.size(), {0.5, 0.5}));
  for (const auto& dir : joint) {
    if (s.out_of_time()) break;
    set_direction(s.knobs, dir);
    if (!s.proves(at_t(s.knobs, 1.0))) continue;
    best = bisect(s);
    give_back(s, best);
    return true;
  }
  return false;
}

}  // namespace

Result<RangeFix> find_safe_ranges(const Graph& graph, const std::vector<Finding>& targets, FixMode mode,
                                  const FixOptions& options) {
  auto start = Clock::now();
  RangeFix fix;
  fix.mode = mode;
  auto original = analyze(graph, options.analyze);
  if (!original.ok()) return original.status();
  std::set<std::string> nodes;
  for (const Finding& f : targets) nodes.insert(f.node);
  Search s{graph, targets, original->findings, options, nodes, knobs_of(graph, mode, options.analyze),
           start + std::chrono::milliseconds(static_cast<int64_t>(options.range_budget_seconds * 1000))};
  s.analysis_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  auto finish = [&](std::string reason) {
    fix.reason = std::move(reason);
    fix.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return fix;
  };
  if (s.knobs.empty())
    return finish(mode == FixMode::kInputs ? "no float input with a range to narrow"
                                           : "no free float weight to narrow (weights are narrowed under --weights free)");
  std::vector<Range> r;
  if (!narrowest_proof(s, r)) return finish("no sub-range of these tensors was proved safe (the analyzer still flags the findings when they are narrowed to a point)");
  if (!s.proves(r)) return finish("the narrowed ranges failed the final proof");
  double kept = 0;
  for (size_t i = 0; i < s.knobs.size(); ++i) {
    const Knob& k = s.knobs[i];
    Range whole = float32_inside(k.lo, k.hi);  // an end left where it was needs no Clip
    double lo = r[i].lo == whole.lo ? k.lo : r[i].lo, hi = r[i].hi == whole.hi ? k.hi : r[i].hi;
    RangeChange c{k.name, k.lo, k.hi, lo, hi, kept_share(k.lo, k.hi, lo, hi)};
    kept += c.kept;
    fix.changes.push_back(c);
  }
  fix.kept = kept / s.knobs.size();
  fix.min_kept = 1;
  for (const RangeChange& c : fix.changes) fix.min_kept = std::min(fix.min_kept, c.kept);
  fix.proved = true;
  return finish("");
}

}  // namespace nanguard
