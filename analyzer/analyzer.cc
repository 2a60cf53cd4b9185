#include "analyzer/analyzer.h"

#include <algorithm>
#include <limits>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include <fmt/core.h>

#include "analyzer/relational_facts.h"
#include "analyzer/finding_path.h"
#include "analyzer/gradient_bounds.h"
#include "analyzer/half_grid.h"
#include "analyzer/operand_types.h"
#include "analyzer/symbolic_bounds.h"
#include "ops/type_limit.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
// Back from the node through its operand at fault first (a division's divisor, not
// its numerator), then through each node's first non-constant input.
// Inside a subgraph, node names carry the scope's `prefix` ("Loop_0/body/").
std::vector<std::string> path_to(const Graph& g, const Node& node, int operand, const std::string& prefix) {
  std::vector<std::string> path{prefix + node.name};
  const Node* cur = &node;
  for (int guard = 0; guard < 10000; ++guard) {
    const Node* next = nullptr;
    std::string source;
    std::vector<std::string> order = cur->inputs;
    if (cur == &node && operand > 0 && operand < static_cast<int>(order.size()) && !order[operand].empty() &&
        !g.is_initializer(order[operand]))
      std::rotate(order.begin(), order.begin() + operand, order.end());
    for (const auto& in : order) {
      if (in.empty() || g.is_initializer(in)) continue;
      next = g.producer(in);
      source = in;
      break;
    }
    if (!next) {
      if (!source.empty()) path.push_back(source);
      break;
    }
    path.push_back(prefix + next->name);
    cur = next;
  }
  return {path.rbegin(), path.rend()};
}

namespace {

// Bounds past this magnitude downstream of an overflow are treated as its echo.
constexpr double kEchoBound = 1e30;

// Concrete inputs (all exact): the op runs for real, in the run's float type, so the
// result is the very value execution will see.
std::vector<IntervalTensor> transfer_exact(const OpDef& def, const AbstractContext& a) {
  OpContext c{a.node, a.opset, {}, a.float_type};
  for (const auto& in : a.inputs) c.inputs.push_back(in.lo.defined() ? in.value : at::Tensor());
  std::vector<IntervalTensor> out;
  for (const at::Tensor& t : def.lower(c)) out.push_back(t.defined() ? IntervalTensor::of_value(t) : IntervalTensor());
  return out;
}

// Runs the lowering on float64 bound tensors: `pick(input)` chooses lo or hi.
template <typename Pick>
std::vector<at::Tensor> lower_on(const OpDef& def, const AbstractContext& a, Pick pick, bool full) {
  OpContext c{a.node, a.opset, {}, at::kDouble};
  for (const auto& in : a.inputs) {
    if (!in.lo.defined()) { c.inputs.push_back(at::Tensor()); continue; }
    if (!in.is_float()) {
      if (!in.exact()) a.fail("an integer operand with a range is not supported by this transfer");
      c.inputs.push_back(in.value);
      continue;
    }
    at::Tensor b = pick(in);
    c.inputs.push_back(full ? b.expand(in.shape).contiguous() : b);
  }
  return def.lower(c);
}

std::vector<IntervalTensor> transfer_derived(const OpDef& def, const AbstractContext& a) {
  auto lo_of = [](const IntervalTensor& t) { return t.lo; };
  auto hi_of = [](const IntervalTensor& t) { return t.hi; };
  bool full = def.monotone == Monotone::kDataMovement;
  std::vector<at::Tensor> lo = lower_on(def, a, lo_of, full), hi = lower_on(def, a, hi_of, full);
  if (def.monotone == Monotone::kDecreasing) std::swap(lo, hi);
  std::vector<IntervalTensor> out;
  for (size_t i = 0; i < lo.size(); ++i) {
    if (!lo[i].defined()) { out.emplace_back(); continue; }
    at::ScalarType dtype = at::isFloatingType(lo[i].scalar_type()) ? a.input(0).dtype : lo[i].scalar_type();
    std::vector<int64_t> shape = def.monotone == Monotone::kDataMovement ? lo[i].sizes().vec() : a.input(0).shape;
    out.push_back(round_out(IntervalTensor::of_bounds(lo[i], hi[i], shape, dtype), def.ulps));
  }
  return out;
}

// The outputs of an op the analysis cannot follow: unbounded, with the static shape
// shape inference recorded. Without one the shape may depend on the values (Range,
// NonZero of a ranged input) and no sound bound exists, so the analysis stops there.
// A declared shape is trusted only when nothing that can set the shape (integer
// operands: shapes, axes, pads, sizes, K) is a range: node tests declare the shapes
// of their own test data, which other values would change.
std::vector<IntervalTensor> transfer_unknown(const OpDef* def, const AbstractContext& a) {
  bool shape_may_vary = def && def->value_dependent_shape;
  for (const IntervalTensor& in : a.inputs)
    shape_may_vary |= in.lo.defined() && !in.is_float() && !in.exact();
  if (shape_may_vary)
    a.fail("the analysis cannot continue past this op: its output shape depends on operand values that are ranges");
  std::vector<IntervalTensor> out;
  for (const std::string& name : a.node.outputs) {
    if (name.empty()) {
      out.emplace_back();
      continue;
    }
    const TensorType* t = a.graph.type_of(name);
    if (t && t->kind != TensorType::Kind::kTensor)
      a.fail(std::string("the analysis cannot continue past this op: '") + name + "' is a " + t->non_tensor_kind() +
             " value, which the analysis does not model");
    if (!t || !t->dims || !t->element_count())
      a.fail("the analysis cannot continue past this op: the shape of '" + name +
             "' is not known statically (it may depend on the values)");
    at::ScalarType dtype = at::kFloat;
    try {
      dtype = scalar_type_for(t->elem_type);
    } catch (const std::exception&) {
    }
    out.push_back(IntervalTensor::top(*t->dims, dtype));
  }
  return out;
}


Finding make_finding(const AbstractContext& a, const HazardReport& h, const std::string& prefix) {
  // Every hazard has its facets in ops/ (target, safe domain, rewrites): one that an
  // op reports without declaring it is a bug of that op, not a finding.
  if (!find_facet(a.node.op_type, a.node.domain, h.hazard))
    throw std::logic_error(fmt::format("internal error: {} reports hazard {} without declaring its facet", a.node.op_type, h.hazard));
  Finding f;
  f.node = prefix + a.node.name;
  f.op_type = a.node.op_type;
  f.kind = h.kind;
  f.hazard = h.hazard;
  f.condition = h.condition;
  f.status = h.definite ? "definite" : "possible";
  // The ranges that matter: every non-constant operand, and the one at fault
  // (an integer index for a crash hazard).
  for (size_t i = 0; i < a.inputs.size(); ++i)
    if (a.inputs[i].lo.defined() && (!a.inputs[i].exact() || static_cast<int>(i) == h.operand))
      f.operands.push_back({a.node.inputs[i], a.inputs[i].min(), a.inputs[i].max()});
  f.path = path_to(a.graph, a.node, h.operand, prefix);
  return f;
}

// Every float output whose bounds pass the float32 limit may overflow to INF. An op
// fed by an already unbounded tensor (unsupported op, earlier overflow) is not an
// origin: it is not reported again, only its outputs stay marked unbounded.
// The largest finite value of the type an output is declared with (float16 and
// bfloat16 overflow far below float32's limit).
double finite_limit(const AbstractContext& a, size_t output) {
  const TensorType* t = output < a.node.outputs.size() ? a.graph.type_of(a.node.outputs[output]) : nullptr;
  if (t && half_type_of(t->elem_type) != at::kFloat) return elem_type_limit(t->elem_type);
  return a.float_type == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
}

// One aminmax pass per bound, no tensor of its size allocated (isinf is abs() == inf,
// a copy of every weight each time a node reads one); a NaN falls back to isinf.
bool has_infinite(const at::Tensor& t) {
  auto [mn, mx] = at::aminmax(t);
  double lo = mn.item<double>(), hi = mx.item<double>();
  if (std::isnan(lo) || std::isnan(hi)) return t.isinf().any().item<bool>();
  return std::isinf(lo) || std::isinf(hi);
}

bool holds_infinity(const IntervalTensor& x) {
  if (!x.lo.defined() || !x.is_float() || x.numel() == 0) return false;
  return has_infinite(x.lo) || (!x.hi.is_same(x.lo) && has_infinite(x.hi));
}

// Whether some input holds a deliberate infinity: a cell that is exactly +-inf (a -inf
// mask constant, or its fill carried through Add or Where).
bool reads_infinity(const AbstractContext& a) {
  for (size_t i = 0; i < a.num_inputs(); ++i) {
    if (!a.has_input(i) || !a.inputs[i].is_float()) continue;
    const IntervalTensor& x = a.inputs[i];
    if (!holds_infinity(x)) continue;  // the cheap test first: most operands are finite
    auto b = at::broadcast_tensors({x.lo, x.hi});
    if ((b[0] == b[1]).logical_and(b[0].isinf()).any().item<bool>()) return true;
  }
  return false;
}

// Ops whose every output value is one of their inputs' values: an infinite end of
// theirs can only be an input's carried infinity (a mask fill that a ranged condition
// may select: Where(pad, -inf, scores) is [-inf, hi] there), never an overflow.
bool selects_values(const std::string& op) {
  static const std::set<std::string> ops = {"Where", "Max", "Min", "ReduceMax", "ReduceMin", "Identity",
                                            "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
                                            "Concat", "Slice", "Gather", "Expand", "Tile", "MaxPool"};
  return ops.count(op) > 0;
}

// The cells whose infinite bounds (lo, hi broadcast) are carried from the inputs:
// exactly +-inf (scores + mask), or, for an op that selects values, any infinite end.
at::Tensor carried_cells(bool selects, const at::Tensor& lo, const at::Tensor& hi) {
  if (selects) return lo.isinf().logical_or(hi.isinf());
  return (lo == hi).logical_and(lo.isinf());
}

// An output cell that is exactly +-inf where an input holds a deliberate infinity is
// that infinity carried (scores + mask), not an overflow: it is kept, not clamped.
void check_overflow(const AbstractContext& a, std::vector<IntervalTensor>& outs, AnalysisResult& result,
                    bool op_reported, bool fed_unbounded, std::unordered_set<std::string>& unbounded,
                    const std::string& prefix) {
  bool selects = selects_values(a.node.op_type);
  bool carries = reads_infinity(a) || (selects && std::any_of(a.inputs.begin(), a.inputs.end(), holds_infinity));
  for (size_t i = 0; i < outs.size(); ++i) {
    IntervalTensor& t = outs[i];
    if (!t.lo.defined() || !t.is_float() || t.exact() || t.numel() == 0) continue;
    double limit = finite_limit(a, i);
    double lo = t.min(), hi = t.max();
    if (hi <= limit && lo >= -limit) continue;
    at::Tensor carried;
    if (carries) {
      auto b = at::broadcast_tensors({t.lo, t.hi});
      carried = carried_cells(selects, b[0], b[1]);
      at::Tensor flo = at::where(carried, at::zeros_like(b[0]), b[0]), fhi = at::where(carried, at::zeros_like(b[1]), b[1]);
      lo = flo.min().item<double>();
      hi = fhi.max().item<double>();
      if (hi <= limit && lo >= -limit) continue;
      t = IntervalTensor::of_bounds(b[0], b[1], t.shape, t.dtype);
    }
    unbounded.insert(a.node.outputs[i]);
    if (!op_reported && !fed_unbounded) {
      HazardReport h{"overflow", HazardKind::kForward, 0, fmt::format("|result| > {:.7g}", limit)};
      Finding f = make_finding(a, h, prefix);
      f.result = {a.node.outputs[i], lo, hi};
      result.findings.push_back(std::move(f));
      op_reported = true;
    }
    at::Tensor keep_lo = t.lo, keep_hi = t.hi;
    t = limit == kFloat32Max || limit == std::numeric_limits<double>::max()
            ? clamp_finite(std::move(t))
            : IntervalTensor::of_bounds(t.lo.clamp(-limit, limit), t.hi.clamp(-limit, limit), t.shape, t.dtype);
    if (carried.defined()) {
      t.lo = at::where(carried, keep_lo, t.lo);
      t.hi = at::where(carried, keep_hi, t.hi);
    }
  }
}

// Adds `more` to `findings`, keeping the topological order of their nodes (a finding
// of a node not in the top graph goes last).
void merge_in_order(const Graph& graph, std::vector<Finding>& findings, std::vector<Finding> more) {
  auto index = [&](const Finding& f) {
    const Node* n = graph.find_node(f.node);
    return n ? n->index : static_cast<int>(graph.nodes.size());
  };
  for (Finding& f : more) {
    auto at = std::find_if(findings.begin(), findings.end(), [&](const Finding& g) { return index(g) > index(f); });
    findings.insert(at, std::move(f));
  }
}

// Outputs declared float16/bfloat16 hold the float32 result rounded to nearest in
// their type (each op computes in float32: ATen's opmath, and the CPU executor).
// Rounding to nearest is monotone, so rounding the bounds outward onto the type's
// grid is sound; an exact value is rounded as the run rounds it.
void round_to_declared_half(const AbstractContext& a, std::vector<IntervalTensor>& outs) {
  for (size_t i = 0; i < outs.size() && i < a.node.outputs.size(); ++i) {
    IntervalTensor& t = outs[i];
    const TensorType* type = a.graph.type_of(a.node.outputs[i]);
    if (!type || !t.lo.defined() || !t.is_float() || t.numel() == 0) continue;
    at::ScalarType half = half_type_of(type->elem_type);
    if (half == at::kFloat) continue;
    if (t.exact()) {
      at::Tensor v = t.lo.detach().to(at::kFloat).to(half).to(at::kDouble);
      t = IntervalTensor::of_bounds(v, v.clone(), t.shape, t.dtype);
      continue;
    }
    t = IntervalTensor::of_bounds(round_on_grid(t.lo, half, false), round_on_grid(t.hi, half, true), t.shape, t.dtype);
  }
}

// Ops whose outputs symbolic bounds tighten: the ones that compose neurons linearly
// (OpDef::affine).
bool affine(const OpDef* def) { return def && def->affine; }

bool affine(const Node& node) { return affine(OpRegistry::instance().find(node.op_type, node.domain)); }

// Symbolic refinement is on demand: for a tensor whose interval cannot be proved below
// the float32 limit, or is past `symbolic_above` (where deep affine stacks have lost
// the correlations between neurons and are on their way to overflow), or that feeds a
// hazard; and only while the analysis' budget of multiply-adds lasts.
bool wants_symbolic(const AnalyzeOptions& o, const IntervalTensor& t, int64_t flops_left) {
  if (o.symbolic_window <= 0 || flops_left <= 0 || !t.lo.defined() || t.exact() || !t.is_float() || t.numel() == 0)
    return false;
  return std::max(std::abs(t.min()), std::abs(t.max())) > o.symbolic_above;
}

IntervalTensor refine(const Graph& graph, const AnalyzeOptions& o, const AnalysisResult& result,
                      const std::string& name, IntervalTensor t, int64_t& flops_left) {
  SymbolicOptions so;
  so.max_nodes = o.symbolic_window;
  so.float_type = o.float_type;
  so.max_flops = std::min(so.max_flops, flops_left);
  int64_t spent = 0;
  t = refine_symbolically(graph, result.intervals, name, std::move(t), so, &spent);
  flops_left -= spent;
  return t;
}

// A hazard that intervals could not rule out: tightens the operands made by affine
// ops (in place, for the record too) and asks the op again.
void recheck_hazards(const Graph& graph, const OpDef& def, AbstractContext& a, const AnalyzeOptions& options,
                     AnalysisResult& result, std::vector<HazardReport>& reports, int64_t& flops_left) {
  bool changed = false;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    const std::string& in = a.node.inputs[i];
    const Node* p = in.empty() ? nullptr : graph.producer(in);
    if (!p || !affine(*p) || options.symbolic_window <= 0 || flops_left <= 0) continue;
    if (!a.inputs[i].lo.defined() || a.inputs[i].exact() || !a.inputs[i].is_float()) continue;
    IntervalTensor t = refine(graph, options, result, in, a.inputs[i], flops_left);
    changed |= !at::equal(t.lo, a.inputs[i].lo) || !at::equal(t.hi, a.inputs[i].hi);
    a.inputs[i] = t;
    result.intervals[in] = std::move(t);
  }
  if (!changed) return;
  reports = def.hazards(a);
  filter_hazards_with_facts(a, reports);
}


// An operand that may be +-inf (a mask fill carried here) meets an op whose transfer is
// not written for infinities (ops/op_registry.h, OpDef::infinities): reported, and the
// op analysed on the finite part of its operands. True when it was.
bool guard_infinite_operands(const OpDef* def, AbstractContext& a, AnalysisResult& result,
                             const std::string& prefix) {
  if (def && (def->infinities || def->monotone != Monotone::kNone)) return false;
  bool found = false;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    IntervalTensor& x = a.inputs[i];
    if (!holds_infinity(x)) continue;
    if (!found)
      result.findings.push_back(make_finding(a, HazardReport{"infinite-operand", HazardKind::kForward, static_cast<int>(i),
                                                             "an operand may be +-inf, which this op's semantics do not follow"},
                                                 prefix));
    found = true;
    x = IntervalTensor::of_bounds(x.lo.clamp(-kFloat32Max, kFloat32Max), x.hi.clamp(-kFloat32Max, kFloat32Max), x.shape,
                                  x.dtype);
  }
  return found;
}

// NaN bounds from carried infinities (inf - inf, 0 * inf): reported, then widened to
// the whole line. True when there were any.
bool check_nan_bounds(const AbstractContext& a, std::vector<IntervalTensor>& outs, AnalysisResult& result,
                      const std::string& prefix) {
  bool found = false;
  for (IntervalTensor& t : outs) {
    if (!t.lo.defined() || !t.is_float() || t.numel() == 0) continue;
    at::Tensor nan_lo = t.lo.isnan(), nan_hi = t.hi.isnan();
    if (!nan_lo.any().item<bool>() && !nan_hi.any().item<bool>()) continue;
    if (!found)
      result.findings.push_back(make_finding(a, HazardReport{"nan-from-infinities", HazardKind::kForward, 0,
                                                             "inf - inf or 0 * inf of operands holding +-inf"},
                                                 prefix));
    found = true;
    t = IntervalTensor::of_bounds(t.lo.masked_fill(nan_lo, -std::numeric_limits<double>::infinity()),
                                  t.hi.masked_fill(nan_hi, std::numeric_limits<double>::infinity()), t.shape, t.dtype);
  }
  return found;
}

struct Scope;
std::vector<IntervalTensor> analyze_subgraph(const Scope& scope, const Node& node, const std::string& attr,
                                             const std::vector<IntervalTensor>& inputs, bool reached);

// Where a node is analysed: its graph (the model's, or a subgraph's whose node names
// get `prefix`), and the state of that analysis.
struct Scope {
  const Graph& graph;
  const AnalyzeOptions& options;
  AnalysisResult& result;
  std::unordered_set<std::string>& unbounded;  // tensors downstream of an unbounded origin
  int64_t& flops_left;
  std::string prefix;
  int64_t& partition_left;  // output elements partitioning may still compute
};

void analyze_node(const Scope& scope, const Node& node);

// Whether some float output's bounds pass its type's finite limit.
bool exceeds_limits(const AbstractContext& a, const std::vector<IntervalTensor>& outs) {
  for (size_t i = 0; i < outs.size(); ++i) {
    const IntervalTensor& t = outs[i];
    if (!t.lo.defined() || !t.is_float() || t.exact() || t.numel() == 0) continue;
    double limit = finite_limit(a, i);
    if (t.max() > limit || t.min() < -limit) return true;
  }
  return false;
}

// `t` intersected with a partition's bound of it (a sound bound too: the cells cover).
void tighten(IntervalTensor& t, const IntervalTensor& p) {
  if (t.lo.defined() && !t.exact()) t = meet(t, p);
}

// One cell: the cone analysed again on a copy of the state, with `tensor` narrowed to
// `cell` and no symbolic or partition budget (a cell is the cheap check).
CellOutcome analyse_cell(const Scope& scope, const Node& node, const std::vector<const Node*>& cone,
                         const std::string& tensor, const IntervalTensor& cell) {
  AnalysisResult scratch;
  scratch.intervals = scope.result.intervals;
  scratch.intervals[tensor] = cell;
  std::unordered_set<std::string> unbounded = scope.unbounded;
  for (const Node* n : cone)
    for (const std::string& o : n->outputs) unbounded.erase(o);
  int64_t flops = 0, partitions = 0;
  Scope s{scope.graph, scope.options, scratch, unbounded, flops, scope.prefix, partitions};
  CellOutcome out;
  try {
    // A cone node's bound from the whole box holds in the cell too (symbolic bounds,
    // which cells skip, may have tightened it): the cell keeps the meet of both.
    for (const Node* n : cone) {
      analyze_node(s, *n);
      if (n == &node) continue;
      for (const std::string& o : n->outputs)
        if (auto it = scope.result.intervals.find(o); !o.empty() && it != scope.result.intervals.end())
          tighten(scratch.intervals.at(o), it->second);
    }
  } catch (const std::exception&) {
    return out;
  }
  out.completed = true;
  for (const Finding& f : scratch.findings)
    if (f.node == scope.prefix + node.name) out.hazards.push_back(f.hazard);
  for (const std::string& o : node.outputs) out.bounds.push_back(o.empty() ? IntervalTensor() : scratch.intervals.at(o));
  for (const std::string& i : node.inputs) out.bounds.push_back(i.empty() ? IntervalTensor() : scratch.intervals.at(i));
  return out;
}

// The hazards a partition proves absent leave `reports`; the outputs and inputs it
// bounds are intersected with what the one-cell analysis gave.
void partition(const Scope& scope, const Node& node, const AbstractContext& a, std::vector<HazardReport>& reports,
               std::vector<IntervalTensor>& outs) {
  std::vector<std::string> hazards;  // a definite one holds on every value: no cell clears it
  for (const HazardReport& h : reports)
    if (!h.definite) hazards.push_back(h.hazard);
  bool exceeded = exceeds_limits(a, outs);
  if (hazards.empty() && !exceeded) return;
  std::vector<double> limits;  // the outputs within their type, the inputs finite
  for (size_t i = 0; i < node.outputs.size(); ++i) limits.push_back(finite_limit(a, i));
  limits.resize(node.outputs.size() + node.inputs.size(), std::numeric_limits<double>::max());
  CellAnalysis analyse = [&](const std::vector<const Node*>& cone, const std::string& tensor, const IntervalTensor& cell) {
    return analyse_cell(scope, node, cone, tensor, cell);
  };
  auto proof = prove_by_partition(scope.graph, node, scope.result.intervals, hazards, limits, scope.options.partition,
                                  scope.partition_left, analyse);
  if (!proof) return;
  std::set<std::string> proved(proof->hazards.begin(), proof->hazards.end());
  reports.erase(std::remove_if(reports.begin(), reports.end(),
                               [&](const HazardReport& h) { return !h.definite && proved.count(h.hazard); }),
                reports.end());
  for (size_t i = 0; i < outs.size() && i < node.outputs.size(); ++i) tighten(outs[i], proof->bounds[i]);
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (!node.inputs[i].empty()) tighten(scope.result.intervals.at(node.inputs[i]), proof->bounds[node.outputs.size() + i]);
  // Reported where it proved something: a hazard, or outputs back within their limit.
  if (!proof->hazards.empty() || exceeded) scope.result.partitions.push_back(std::move(*proof));
}

// One node: its output intervals (concrete when every input is exact), its hazards,
// the generic float32 overflow check. Throws when the analysis cannot continue.
void analyze_node(const Scope& scope, const Node& node) {
  const Graph& graph = scope.graph;
  const AnalyzeOptions& options = scope.options;
  AnalysisResult& result = scope.result;
  std::unordered_set<std::string>& unbounded = scope.unbounded;
  int64_t& flops_left = scope.flops_left;
  const std::string& prefix = scope.prefix;
  AbstractContext a{node, graph, graph.opset, {}, options.float_type};
  bool all_exact = true;
  for (const auto& in : node.inputs) {
    // A lazy weight's bounds live as long as this node's analysis.
    a.inputs.push_back(in.empty() ? IntervalTensor() : result.intervals.at(in).with_bounds());
    if (!in.empty() && !a.inputs.back().exact()) all_exact = false;
  }
  const OpDef* def = OpRegistry::instance().find(node.op_type, node.domain);
  if (def && def->nondeterministic) all_exact = false;
  // Control flow reads outer tensors beyond its inputs: its op analyses its subgraphs.
  if (!node.subgraphs.empty()) {
    all_exact = false;
    a.analyze_subgraph = [&scope, &node](const std::string& attr, const std::vector<IntervalTensor>& inputs, bool reached) {
      return analyze_subgraph(scope, node, attr, inputs, reached);
    };
  }
  std::vector<IntervalTensor> outs;
  // Concrete evaluation when every input is known; a failure there (a random op
  // without a generator, say) falls back to the abstract transfer.
  bool exact_ok = false;
  if (def && all_exact) {
    try {
      outs = transfer_exact(*def, a);
      exact_ok = true;
    } catch (const std::exception&) {
      outs.clear();
    }
  }
  bool supported = exact_ok || (def && (def->interval || def->monotone != Monotone::kNone));
  bool infinite_in = false, guarded = false;
  if (!exact_ok) {
    for (const IntervalTensor& x : a.inputs) infinite_in = infinite_in || holds_infinity(x);
    if (infinite_in && supported) guarded = guard_infinite_operands(def, a, result, prefix);
  }
  std::string why = def ? "no abstract semantics for " + node.op_type : "unsupported ONNX op " + node.op_type;
  if (!exact_ok && supported) {
    try {
      outs = def->interval ? def->interval(a) : transfer_derived(*def, a);
    } catch (const std::exception& e) {
      supported = false;
      outs.clear();
      why = std::string("abstract semantics failed: ") + e.what();
    }
  }
  bool nan_bounds = supported && !exact_ok && check_nan_bounds(a, outs, result, prefix);
  if (supported && !exact_ok) refine_with_facts(a, result.intervals, outs);
  // Symbolic rows are real-valued: they cannot cross a carried infinity.
  if (supported && !exact_ok && !infinite_in && affine(def) && outs.size() == 1 && wants_symbolic(options, outs[0], flops_left))
    outs[0] = refine(graph, options, result, node.outputs[0], std::move(outs[0]), flops_left);
  if (supported && !exact_ok && !infinite_in && !nan_bounds) {
    double before = outs.empty() || !outs[0].lo.defined() || outs[0].numel() == 0 ? 0 : std::max(-outs[0].min(), outs[0].max());
    if (refine_with_norms(*def, a, outs, result.intervals, result.norms, options.norms) && prefix.empty())
      result.norm_tightened.push_back({node.name, node.outputs[0], result.norms.at(node.outputs[0]), before});
  }
  if (!supported) {
    std::string name = node.domain.empty() ? node.op_type : node.domain + "." + node.op_type;
    if (std::find(result.unsupported.begin(), result.unsupported.end(), name) == result.unsupported.end())
      result.unsupported.push_back(name);
    result.findings.push_back(make_finding(a, HazardReport{"unsupported", HazardKind::kForward, 0, why}, prefix));
    try {
      outs = transfer_unknown(def, a);
    } catch (const ModelError& e) {
      throw ModelError(def ? fmt::format("{} ({})", e.what(), why) : e.what());  // why the op's own transfer gave up
    }
  }
  // A forward hazard of the op itself (exp-overflow...) already names the overflow;
  // a gradient-only hazard does not.
  bool forward_reported = guarded || nan_bounds;
  // An op analysed on clamped infinite operands: its own conditions would read the clamp.
  std::vector<HazardReport> reports;
  if (def && def->hazards && supported && !guarded) {
    reports = def->hazards(a);
    filter_hazards_with_facts(a, reports);
    if (!reports.empty() && !infinite_in) recheck_hazards(graph, *def, a, options, result, reports, flops_left);
  }
  if (supported && !exact_ok && !infinite_in && !guarded && !nan_bounds && prefix.empty() && scope.partition_left > 0 &&
      (!reports.empty() || exceeds_limits(a, outs)))
    partition(scope, node, a, reports, outs);
  for (const HazardReport& h : reports) {
    result.findings.push_back(make_finding(a, h, prefix));
    forward_reported |= h.kind == HazardKind::kForward;
  }
  bool fed_unbounded = false;
  for (const auto& in : node.inputs) fed_unbounded |= unbounded.count(in) > 0;
  for (const auto& in : implicit_inputs(node)) fed_unbounded |= unbounded.count(in) > 0;
  if (!supported)
    for (const auto& o : node.outputs) unbounded.insert(o);
  check_overflow(a, outs, result, forward_reported || !supported, fed_unbounded, unbounded, prefix);
  round_to_declared_half(a, outs);
  // Downstream of an unbounded origin, outputs that stay huge are still its echo
  // (Relu of a clamped 3.4e38 bound); bounded ones (softmax, tanh, norms) are not.
  if (fed_unbounded)
    for (size_t i = 0; i < outs.size() && i < node.outputs.size(); ++i)
      if (outs[i].lo.defined() && outs[i].is_float() && !outs[i].exact() && outs[i].numel() > 0 &&
          std::max(std::abs(outs[i].min()), std::abs(outs[i].max())) > kEchoBound)
        unbounded.insert(node.outputs[i]);
  for (size_t i = 0; i < node.outputs.size() && i < outs.size(); ++i)
    if (!node.outputs[i].empty()) result.intervals[node.outputs[i]] = std::move(outs[i]);
}

// A subgraph's finding joins the analysis'; the same node and hazard met again (a
// later iteration) widens the first one's ranges. A subgraph that may not run at all
// proves no finding definite.
void merge_finding(Finding f, bool reached, AnalysisResult& result) {
  if (!reached) f.status = "possible";
  for (Finding& g : result.findings) {
    if (g.node != f.node || g.hazard != f.hazard) continue;
    if (f.status == "definite") g.status = "definite";
    for (const OperandRange& o : f.operands)
      for (OperandRange& p : g.operands)
        if (p.tensor == o.tensor) p = {p.tensor, std::min(p.lo, o.lo), std::max(p.hi, o.hi)};
    if (!f.result.tensor.empty() && g.result.tensor == f.result.tensor)
      g.result = {g.result.tensor, std::min(g.result.lo, f.result.lo), std::max(g.result.hi, f.result.hi)};
    return;
  }
  result.findings.push_back(std::move(f));
}

// An error inside a subgraph names its node with the scope's prefix.
std::string scoped_message(const std::string& msg, const Node& node, const std::string& prefix) {
  std::string head = "node '" + node.name + "'";
  if (msg.rfind(head, 0) == 0) return "node '" + prefix + node.name + "'" + msg.substr(head.size());
  return fmt::format("node '{}{}' ({}): analysis failed: {}", prefix, node.name, node.op_type, msg);
}

// A nested analysis of the subgraph: its scope holds the outer tensors it reads, as
// this analysis has them, its own constants, and the formal inputs' intervals.
std::vector<IntervalTensor> analyze_subgraph(const Scope& scope, const Node& node, const std::string& attr,
                                             const std::vector<IntervalTensor>& inputs, bool reached) {
  const Graph& body = attr_graph(node, attr);
  std::string prefix = scope.prefix + node.name + "/" + attr + "/";
  if (inputs.size() != body.inputs.size())
    throw ModelError(fmt::format("node '{}{}' ({}): '{}' takes {} inputs, given {}", scope.prefix, node.name, node.op_type,
                                 attr, body.inputs.size(), inputs.size()));
  AnalysisResult sub;
  std::unordered_set<std::string> unbounded;
  for (const std::string& r : body.outer_refs) {
    auto it = scope.result.intervals.find(r);
    if (it == scope.result.intervals.end())
      throw ModelError(fmt::format("node '{}{}' ({}): outer-scope tensor '{}' is not defined", scope.prefix, node.name,
                                   node.op_type, r));
    sub.intervals[r] = it->second;
    if (scope.unbounded.count(r)) unbounded.insert(r);
  }
  for (const auto& [name, proto] : body.initializers) sub.intervals[name] = IntervalTensor::of_value(tensor_from_proto(proto));
  for (size_t i = 0; i < inputs.size(); ++i) sub.intervals[body.inputs[i]] = inputs[i];
  Scope inner{body, scope.options, sub, unbounded, scope.flops_left, prefix, scope.partition_left};
  std::string error;
  for (const Node& n : body.nodes) {
    try {
      analyze_node(inner, n);
    } catch (const std::exception& e) {
      error = scoped_message(e.what(), n, prefix);
      break;
    }
  }
  // Findings before an error stand: the op that called this becomes unsupported.
  for (Finding& f : sub.findings) merge_finding(std::move(f), reached, scope.result);
  for (const std::string& u : sub.unsupported)
    if (std::find(scope.result.unsupported.begin(), scope.result.unsupported.end(), u) == scope.result.unsupported.end())
      scope.result.unsupported.push_back(u);
  if (!error.empty()) throw ModelError(error);
  std::vector<IntervalTensor> outs;
  for (const std::string& o : body.outputs) outs.push_back(sub.intervals.at(o));
  return outs;
}

}  // namespace

Result<AnalysisResult> analyze(const Graph& graph, const AnalyzeOptions& options) {
  auto init = initial_intervals(graph, options);
  if (!init.ok()) return init.status();
  AnalysisResult result;
  result.intervals = std::move(init.value());
  std::unordered_set<std::string> unbounded;  // tensors downstream of an unbounded origin
  int64_t flops_left = options.symbolic_budget;
  int64_t partition_left = options.partition.element_budget;
  Scope scope{graph, options, result, unbounded, flops_left, "", partition_left};
  for (const Node& node : graph.nodes) {
    try {
      analyze_node(scope, node);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
      if (msg.rfind("node '", 0) == 0) return Status::Error(fmt::format("{}: {}", graph.model_path, msg));
      return Status::Error(fmt::format("{}: node '{}' ({}): analysis failed: {}", graph.model_path, node.name, node.op_type, msg));
    }
  }
  if (chains_gradients(graph, options)) {
    for (auto& [name, t] : result.intervals) t = t.with_bounds();  // the backward bound reads them all
    try {
      merge_in_order(graph, result.findings, bound_gradients(graph, result, options).findings);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
      return Status::Error(fmt::format("{}: the backward bound failed: {}", graph.model_path, msg));
    }
  }
  return result;
}

bool chains_gradients(const Graph& graph, const AnalyzeOptions& options) {
  switch (options.gradients) {
    case GradientMode::kChain: return true;
    case GradientMode::kLocal: return false;
    // Half gradients overflow at 65504: far from float32's limit, so the op-by-op
    // gradient hazards do not cover them; a backward bound does.
    case GradientMode::kAuto: return has_half_tensors(graph);
  }
  return true;
}

std::optional<Range> range_in(const AnalysisResult& result, const std::string& tensor) {
  auto it = result.intervals.find(tensor);
  if (it == result.intervals.end() || (!it->second.lo.defined() && !it->second.lazy()) || it->second.numel() == 0)
    return std::nullopt;
  return Range{it->second.min(), it->second.max()};
}

std::vector<Range> operand_ranges(const Node& node, const AnalysisResult& result) {
  constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();
  std::vector<Range> r;
  for (const std::string& name : node.inputs) {
    if (name.empty()) {
      r.push_back({0, 0});
      continue;
    }
    r.push_back(range_in(result, name).value_or(Range{kUnknown, kUnknown}));
  }
  return r;
}

double node_type_max(const Node& node, const AnalysisResult& result) {
  double m = kFloat32Max;
  auto of = [&](const std::string& name) {
    auto it = name.empty() ? result.intervals.end() : result.intervals.find(name);
    if (it == result.intervals.end()) return;
    if (it->second.dtype == at::kHalf) m = std::min(m, kFloat16Max);
    if (it->second.dtype == at::kBFloat16) m = std::min(m, kBFloat16Max);
  };
  for (const auto& n : node.inputs) of(n);
  for (const auto& n : node.outputs) of(n);
  return m;
}

}  // namespace nanguard
