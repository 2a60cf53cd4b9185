// Proofs that a range mode cannot remove a finding. The tensors the mode may not
// narrow (the free weights for `inputs`, the inputs for `weights`) are pinned to values
// inside their ranges, one per element, chosen by signed gradient steps through the
// differentiable analysis; the pinned values are a proof when the analysis then bounds
// some element of the hazard's operand wholly inside its unit target (log's x <= 0,
// exp's x >= 88.72...) for every value of the tensors the mode may narrow. Every
// sub-range of those tensors then still fails, so no narrowing removes the finding.
// Sampled real runs at the pinned values must fail at the node too, or there is no proof.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include <fmt/core.h>

#include "oracle/input_source.h"
#include "oracle/nonfinite.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"
#include "solver/fix_internal.h"
#include "solver/unit_witness.h"

namespace nanguard {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kSteps = 16;
constexpr int kRuns = 8;

struct Pin {
  Knob knob;
  std::vector<int64_t> shape;
  at::Tensor value;  // float64 of `shape`, float32 values inside [lo, hi]
  bool frozen = false;  // held at its value: the steps do not move it
};

// Per cell, how far the operand's bounds are from lying wholly inside the target
// (<= 0 where they do). Its least value is what the pins drive down.
at::Tensor target_margin(const UnitTarget& t, const IntervalTensor& x) {
  double v = t.value;
  switch (t.relation) {
    case Relation::kAtMost: return x.hi - v;
    case Relation::kAtLeast: return v - x.lo;
    case Relation::kEqual: return at::maximum(x.hi - v, v - x.lo);
    case Relation::kMagnitudeAtMost: return at::maximum(x.hi - v, -v - x.lo);
    case Relation::kMagnitudeAtLeast: return at::minimum(v - x.lo, x.hi + v);
  }
  return x.hi * 0 + 1;
}

// What the pins drive down: the bounds' margin and the midpoint's, averaged. Where a
// bound is held (a Relu's 0, a softmax's 1) the bounds' margin has no gradient but
// the midpoint's still moves; the cell chosen is then one whose value is alive.
at::Tensor driven_margin(const UnitTarget& t, const IntervalTensor& x) {
  IntervalTensor mid = x;
  mid.lo = mid.hi = x.lo * 0.5 + x.hi * 0.5;
  return (target_margin(t, x) + target_margin(t, mid)) * 0.5;
}

// Whether some cell's bounds lie wholly inside the target, as the run compares
// (float32): the target sets are intervals, or |x| >= v on one side of 0.
bool some_cell_inside(const UnitTarget& t, const IntervalTensor& x) {
  at::Tensor lo = x.full_lo().reshape({-1}).contiguous(), hi = x.full_hi().reshape({-1}).contiguous();
  const double *l = lo.data_ptr<double>(), *h = hi.data_ptr<double>();
  for (int64_t i = 0; i < lo.numel(); ++i)
    if (meets(t, l[i]) && meets(t, h[i]) && (t.relation != Relation::kMagnitudeAtLeast || l[i] >= 0 || h[i] <= 0))
      return true;
  return false;
}

bool multiplies(const std::string& op) {
  return op == "MatMul" || op == "Gemm" || op == "Conv" || op == "ConvTranspose" || op == "Mul";
}

// The pins that first multiply a value the mode's own tensors reach (a MatMul, Gemm,
// Conv or Mul operand whose other operand they reach), with 0 in their range. Held at
// 0, they cut every path: all after them is a function of the pins alone, so the
// analysis bounds it as tightly as a single run and the steps search constants.
std::set<std::string> first_multipliers(const Graph& graph, const std::vector<Knob>& own,
                                        const std::vector<Pin>& pins) {
  std::set<std::string> reached, zeroable, cut;
  for (const Knob& k : own) reached.insert(k.name);
  for (const Pin& p : pins)
    if (p.knob.lo <= 0 && p.knob.hi >= 0) zeroable.insert(p.knob.name);
  for (const Node& n : graph.nodes) {
    bool any = false, pin = false;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      any = any || reached.count(n.inputs[i]);
      pin = pin || (i < 2 && zeroable.count(n.inputs[i]));
    }
    if (!any) continue;
    if (multiplies(n.op_type) && pin) {
      // Only the two factors: a Conv's or Gemm's bias (input 2) is added, and held
      // at 0 it would only erase the constants the steps search.
      for (size_t i = 0; i < n.inputs.size() && i < 2; ++i)
        if (zeroable.count(n.inputs[i])) cut.insert(n.inputs[i]);
      continue;  // its output no longer depends on the mode's tensors
    }
    for (const std::string& out : n.outputs) reached.insert(out);
  }
  return cut;
}

std::vector<Pin> pins_of(const Graph& graph, FixMode mode, const AnalyzeOptions& opt, bool decouple) {
  std::vector<Pin> pins;
  auto init = initial_intervals(graph, opt);
  if (!init.ok()) return pins;
  FixMode other = mode == FixMode::kInputs ? FixMode::kWeights : FixMode::kInputs;
  AnalyzeOptions o = opt;
  if (other == FixMode::kWeights && opt.weights != WeightMode::kFree) return pins;
  at::Generator gen = at::detail::createCPUGenerator(7);
  for (Knob& k : knobs_of(graph, other, o)) {
    const IntervalTensor& t = init->at(k.name);
    // Near the middle, off it at random: at the exact middle a symmetric model (equal
    // logits) has no gradient to follow.
    at::Tensor v = at::empty(t.shape, at::kDouble).uniform_(0.45, 0.55, gen) * (k.hi - k.lo) + k.lo;
    pins.push_back(Pin{k, t.shape, v.to(at::kFloat).to(at::kDouble)});
  }
  if (!decouple) return pins;
  std::set<std::string> cut = first_multipliers(graph, knobs_of(graph, mode, o), pins);
  if (cut.empty()) return {};
  for (Pin& p : pins)
    if (cut.count(p.knob.name)) {
      p.value = at::zeros(p.shape, at::kDouble);
      p.frozen = true;
    }
  return pins;
}

AnalyzeOptions pinned(const AnalyzeOptions& base, std::vector<Pin>& pins, bool grad) {
  AnalyzeOptions o = base;
  for (Pin& p : pins) {
    at::Tensor v = grad && !p.frozen ? p.value.clone().requires_grad_(true) : p.value;
    o.range_tensors[p.knob.name] = {v, v};
  }
  return o;
}

// The operand's interval under the pins, or none.
const IntervalTensor* operand_of(const AnalysisResult& a, const Node& node, const UnitTarget& t) {
  if (t.operand < 0 || t.operand >= static_cast<int>(node.inputs.size())) return nullptr;
  auto it = a.intervals.find(node.inputs[t.operand]);
  return it == a.intervals.end() || !it->second.lo.defined() ? nullptr : &it->second;
}

// A pin's gradient from the last backward pass; undefined for a held pin.
at::Tensor gradient(const Pin& p, const AnalyzeOptions& o) {
  return p.frozen ? at::Tensor() : o.range_tensors.at(p.knob.name).first.grad();
}

// Moves a pin to `next`, kept inside its range and rounded to float32; whether it moved.
bool move_to(Pin& p, at::Tensor next) {
  next = next.clamp(p.knob.lo, p.knob.hi).to(at::kFloat).to(at::kDouble).clamp(float32_up(p.knob.lo), float32_down(p.knob.hi));
  bool moved = !at::equal(next, p.value);
  p.value = next;
  return moved;
}

// Integer inputs no mode narrows (indices, labels, positions) are held at one value
// each, like a pin: the finding then only has to fail there. Their low ends first,
// then their high ends; none when the model has no ranged integer input.
using IntegerPins = std::map<std::string, int64_t>;

std::vector<IntegerPins> integer_pin_choices(const Graph& graph, const AnalyzeOptions& opt) {
  IntegerPins low, high;
  for (const std::string& name : graph.inputs) {
    const TensorType* type = graph.type_of(name);
    if (!type || !type->dims) continue;
    at::ScalarType st;
    try {
      st = scalar_type_for(type->elem_type);
    } catch (const std::exception&) {
      continue;
    }
    if (at::isFloatingType(st) || st == at::kBool) continue;
    auto it = opt.ranges.find(name);
    Range r = it != opt.ranges.end() ? it->second : kDefaultIntRange;
    int64_t lo = static_cast<int64_t>(std::ceil(r.lo)), hi = static_cast<int64_t>(std::floor(r.hi));
    if (hi <= lo) continue;
    low[name] = lo;
    high[name] = hi;
  }
  if (low.empty()) return {IntegerPins{}};
  return {low, high};
}

AnalyzeOptions with_integer_pins(AnalyzeOptions o, const IntegerPins& pins) {
  for (const auto& [name, v] : pins) o.ranges[name] = Range{static_cast<double>(v), static_cast<double>(v)};
  return o;
}

// One step of each pin against the gradient of the margin, up to `share` of its range:
// the whole share where the gradient is at least a tenth of its largest entry, less
// where it is smaller (a pure sign step would let the rounding terms' tiny gradients
// throw weights across 0). Rounded to float32 and kept inside the range. False when
// nothing moves.
bool step(std::vector<Pin>& pins, const AnalyzeOptions& o, double share) {
  double top = 0;
  for (Pin& p : pins)
    if (at::Tensor g = gradient(p, o); g.defined()) top = std::max(top, g.abs().max().item<double>());
  if (!(top > 0) || !std::isfinite(top)) return false;
  bool moved = false;
  for (Pin& p : pins) {
    at::Tensor g = gradient(p, o);
    if (!g.defined()) continue;
    if (std::getenv("NANGUARD_TRACE_FIX"))
      std::fprintf(stderr, "fix:   pin %s: %lld up, %lld down, %lld still\n", p.knob.name.c_str(),
                   static_cast<long long>((g < 0).sum().item<int64_t>()), static_cast<long long>((g > 0).sum().item<int64_t>()),
                   static_cast<long long>((g == 0).sum().item<int64_t>()));
    at::Tensor move = (g / (0.1 * top)).clamp(-1.0, 1.0) * (share * (p.knob.hi - p.knob.lo));
    moved = move_to(p, p.value - move) || moved;
  }
  return moved;
}

// A Newton step on the margin `m` (an equality target, y == 0, is met only exactly:
// a divisor w + 1e-7 is 0 at one float32 w, which shares of the range never hit;
// an exponential reaching 0 is the shares' work, one unit of its argument a step here).
// False when nothing moves.
bool newton_step(std::vector<Pin>& pins, const AnalyzeOptions& o, double m) {
  double norm2 = 0;
  for (Pin& p : pins)
    if (at::Tensor g = gradient(p, o); g.defined()) norm2 += g.pow(2).sum().item<double>();
  if (!(norm2 > 0) || !std::isfinite(norm2)) return false;
  bool moved = false;
  for (Pin& p : pins)
    if (at::Tensor g = gradient(p, o); g.defined()) moved = move_to(p, p.value - g * (m / norm2)) || moved;
  return moved;
}

// Pins that put the target's operand inside it for every value of the mode's tensors:
// the cell nearest at the start is the one driven (one element failing is enough, and
// chasing whichever cell is nearest undoes each step).
// `share`: the first step's share of each range, shrinking; 0: Newton steps.
bool drive_pins(const Graph& graph, const Node& node, const UnitTarget& t, std::vector<Pin>& pins,
                const FixOptions& options, Clock::time_point deadline, double share) {
  int64_t cell = -1, cells = 0;
  for (int i = 0; i < kSteps && Clock::now() < deadline; ++i) {
    AnalyzeOptions o = pinned(options.analyze, pins, true);
    double margin = 0;
    try {
      auto a = analyze(graph, o);
      if (!a.ok()) return false;
      const IntervalTensor* x = operand_of(*a, node, t);
      if (!x) return false;
      if (some_cell_inside(t, *x)) return true;
      at::Tensor all = driven_margin(t, *x).reshape({-1});
      if (cell < 0 || all.numel() != cells) {
        cell = all.argmin().item<int64_t>();
        cells = all.numel();
      }
      at::Tensor m = all[cell];
      if (std::getenv("NANGUARD_TRACE_FIX"))
        std::fprintf(stderr, "fix: pins step %d: margin %g at cell %lld of %lld to `%s` (operand %s)\n", i,
                     m.item<double>(), static_cast<long long>(cell),
                     static_cast<long long>(all.numel()), t.text.c_str(), x->str().c_str());
      if (!m.requires_grad()) return false;
      m.backward();
      margin = m.item<double>();
    } catch (const std::exception&) {
      return false;
    }
    if (!(share > 0 ? step(pins, o, share) : newton_step(pins, o, margin))) return false;
    if (share > 0) share = std::max(share * 0.8, 1.0 / 256);
  }
  return false;
}

// Whether the run fails at the node itself: its inputs finite, and its output not
// (forward hazards) or its operand inside the target (gradient hazards).
bool fails_here(const OracleRun& run, const Node& node, const Finding& f, const UnitTarget& t) {
  NodeCounts c = count_at(node, run.exec.values);
  if (!c.finite_in()) return false;
  if (f.kind == HazardKind::kForward) return c.birth() != nullptr;
  auto it = run.exec.values.find(node.inputs[t.operand]);
  if (it == run.exec.values.end()) return false;
  at::Tensor v = it->second.to(at::kDouble).reshape({-1}).contiguous();
  for (int64_t i = 0; i < v.numel(); ++i)
    if (meets(t, v.data_ptr<double>()[i])) return true;
  return false;
}

// The mode's own tensors drawn in their ranges, the pins at their values: each run
// must fail at the node (forward) or meet the target there (gradient hazards).
int confirming_runs(const Graph& graph, const Node& node, const Finding& f, const UnitTarget& t,
                    const std::vector<Pin>& pins, const IntegerPins& ints, FixMode mode, const FixOptions& options) {
  auto ex = Executor::create(graph);
  if (!ex.ok()) return 0;
  std::vector<Knob> free = knobs_of(graph, mode, options.analyze);
  for (int r = 0; r < kRuns; ++r) {
    TensorMap given;
    for (const Pin& p : pins) given[p.knob.name] = p.value.to(at::kFloat);
    for (const auto& [name, v] : ints) {
      const TensorType* type = graph.type_of(name);
      given[name] = at::full(*type->dims, v, at::TensorOptions(scalar_type_for(type->elem_type)));
    }
    auto feeds = random_inputs(graph, options.analyze.ranges, 1000 + r, given);
    if (!feeds.ok()) return r;
    at::Generator gen = at::detail::createCPUGenerator(77 + r);
    for (const Knob& k : free)
      if (k.weight)
        (*feeds)[k.name] = at::empty(ex->weights().at(k.name).sizes(), at::kDouble)
                               .uniform_(k.lo, k.hi, gen)
                               .clamp(float32_up(k.lo), float32_down(k.hi))
                               .to(at::kFloat);
    auto run = run_with_oracle(*ex, *feeds);
    if (!run.ok() || !fails_here(*run, node, f, t)) return r;
  }
  return kRuns;
}

// The starts in turn, for each choice of the integer inputs' values: first with the
// first multipliers held at 0 (with every path from the mode's tensors cut, the bounds
// are as tight as one run's and only constants are searched), then without; from the
// middles, a first step to the ends (a shallow model's weights decide at their ends),
// then small steps (a step to the ends saturates the layers after it); Newton steps
// last for an equality target (a divisor == 0 is met only exactly). True with the pins
// and the integer values that put the target's operand inside it.
bool find_pins(const Graph& graph, const Node& node, const Finding& f, const UnitTarget& t, FixMode mode,
               const FixOptions& options, Clock::time_point deadline, std::vector<Pin>& pins, IntegerPins& ints) {
  std::vector<double> firsts{0.5, 0.125};
  if (t.relation == Relation::kEqual) firsts.push_back(0);
  for (const IntegerPins& choice : integer_pin_choices(graph, options.analyze))
    for (double first : firsts)
      for (bool decouple : {true, false}) {
        FixOptions held = options;
        held.analyze = with_integer_pins(options.analyze, choice);
        pins = pins_of(graph, mode, held.analyze, decouple);
        if (std::getenv("NANGUARD_TRACE_FIX")) {
          std::string zero;
          for (const Pin& p : pins)
            if (p.frozen) zero += " " + p.knob.name;
          std::fprintf(stderr, "fix: unremovable start %s: first share %g, %zu pins, %zu integer inputs held, at 0:%s\n",
                       f.node.c_str(), first, pins.size(), choice.size(), zero.c_str());
        }
        if (!pins.empty() && drive_pins(graph, node, t, pins, held, deadline, first)) {
          ints = choice;
          return true;
        }
      }
  return false;
}

std::string describe(const Unremovable& u, FixMode mode, const UnitTarget& t, const std::vector<Pin>& pins,
                     const IntegerPins& ints) {
  std::string names;
  for (size_t i = 0; i < pins.size() && i < 3; ++i) names += (i ? ", " : "") + pins[i].knob.name;
  if (pins.size() > 3) names += fmt::format(" and {} more", pins.size() - 3);
  std::string zeros;
  for (const Pin& p : pins)
    if (p.frozen) zeros += (zeros.empty() ? "" : ", ") + p.knob.name;
  bool inputs = mode == FixMode::kInputs;
  if (!zeros.empty()) zeros = fmt::format(" ({} at 0, which cuts every path from the {})", zeros, inputs ? "inputs" : "weights");
  std::string held;
  for (const auto& [name, v] : ints) held += fmt::format("{}{} = {}", held.empty() ? "" : ", ", name, v);
  if (!held.empty()) held = fmt::format(" and the integer inputs {}", held);
  return fmt::format("no {} range can remove it: with the {} {} at values inside their ranges{}{}, the analysis bounds "
                     "this node's operand inside `{}` for every {} in range, and {} sampled runs fail here",
                     inputs ? "input" : "weight", inputs ? "free weights" : "inputs", names, zeros, held, t.text,
                     inputs ? "input" : "weight", u.runs);
}

}  // namespace

std::vector<Unremovable> prove_unremovable(const Graph& graph, const std::vector<Finding>& targets, FixMode mode,
                                           const FixOptions& options, Clock::time_point deadline,
                                           std::vector<Finding>* unfinished) {
  std::vector<Unremovable> out;
  if (mode != FixMode::kInputs && mode != FixMode::kWeights) return out;
  auto base = analyze(graph, options.analyze);
  if (!base.ok()) return out;
  for (size_t i = 0; i < targets.size(); ++i) {
    const Finding& f = targets[i];
    const Node* node = graph.find_node(f.node);
    const HazardFacet* facet = node ? find_facet(node->op_type, node->domain, f.hazard) : nullptr;
    if (!facet || facet->completing_operand >= 0) continue;
    if (Clock::now() > deadline) {
      if (unfinished) unfinished->push_back(f);
      continue;
    }
    // A fair share of what is left, so that the first finding cannot spend it all.
    Clock::time_point own = Clock::now() + (deadline - Clock::now()) / static_cast<int64_t>(targets.size() - i);
    auto t = unit_target(f, *node, *base, at::kCPU);
    if (!t.ok()) continue;
    std::vector<Pin> pins;
    IntegerPins ints;
    if (!find_pins(graph, *node, f, *t, mode, options, own, pins, ints)) {
      if (unfinished && Clock::now() >= own) unfinished->push_back(f);
      continue;
    }
    FixOptions held = options;
    held.analyze = with_integer_pins(options.analyze, ints);
    Unremovable u{f.node, {}, 0, ""};
    u.runs = confirming_runs(graph, *node, f, *t, pins, ints, mode, held);
    if (u.runs < kRuns) continue;
    for (const Pin& p : pins)
      u.pinned.push_back(RangeChange{p.knob.name, p.knob.lo, p.knob.hi, p.value.min().item<double>(),
                                     p.value.max().item<double>(), 1});
    for (const auto& [name, v] : ints) {
      Range r = options.analyze.ranges.count(name) ? options.analyze.ranges.at(name) : kDefaultIntRange;
      u.pinned.push_back(RangeChange{name, r.lo, r.hi, static_cast<double>(v), static_cast<double>(v), 1});
    }
    u.text = describe(u, mode, *t, pins, ints);
    out.push_back(u);
  }
  return out;
}

}  // namespace nanguard
