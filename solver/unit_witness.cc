// Unit witnesses. A target is the float32 condition on one tensor of the node under
// which it fails; a witness puts one element meeting it (the others at a safe value
// of their range) into operands of the node's real shapes, found by Z3's float32
// theory for ops inside it and from measured thresholds for the others, then runs
// the op's lowering alone to confirm.
#include "solver/unit_witness.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <fmt/core.h>
#include <z3++.h>

#include "analyzer/half_grid.h"
#include "analyzer/operand_types.h"
#include "oracle/half_run.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

constexpr float kMaxF = std::numeric_limits<float>::max();
constexpr unsigned kZ3TimeoutMs = 10000;

// ---- targets ------------------------------------------------------------------

Status no_target(const Finding& f, const Node& node, const std::string& why) {
  return Status::Error(fmt::format("no unit target for hazard {} of {} node {}: {}", f.hazard, node.op_type, f.node, why));
}

// The target is the facet's of the op that reported the hazard (ops/), given the
// ranges of the node's inputs.
Result<UnitTarget> target_of(const Finding& f, const Node& node, const std::vector<Range>& operands, double type_max,
                             at::Device d) {
  const HazardFacet* facet = find_facet(node.op_type, node.domain, f.hazard);
  if (!facet) return no_target(f, node, "the op declares no such hazard");
  if (!facet->target) return no_target(f, node, facet->no_target);
  Result<UnitTarget> t = facet->target(node, operands, type_max, d);
  if (!t.ok()) return no_target(f, node, t.status().message());
  return t;
}

constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();

// The node inputs' ranges from the finding alone, which lists non-constant operands and the one at
// fault; the others are unknown.
std::vector<Range> ranges_of(const Node& node, const Finding& f) {
  std::vector<Range> r;
  for (const std::string& name : node.inputs) {
    Range v{name.empty() ? 0 : kUnknown, name.empty() ? 0 : kUnknown};
    for (const auto& o : f.operands)
      if (o.tensor == name) v = {o.lo, o.hi};
    r.push_back(v);
  }
  return r;
}

// ---- operands -----------------------------------------------------------------

// Inward float32 bounds of a tensor's range, finite (upstream values are finite in
// the safe state); for integer tensors the bounds themselves.
struct Bounds32 {
  at::Tensor lo, hi;  // float64 holding float32 values, the tensor's real shape
};

// For a float16/bfloat16 tensor (`half`), the bounds are then rounded inward onto
// its grid: its values are grid values.
Bounds32 on_half_grid(Bounds32 b, at::ScalarType half) {
  at::Tensor lo = round_on_grid(b.lo, half, true), hi = round_on_grid(b.hi, half, false);
  at::Tensor empty = (lo > hi).logical_or(lo.isinf()).logical_or(hi.isinf());  // no grid value inside
  double top = half_grid(half).max().item<double>();
  at::Tensor near = round_on_grid(b.lo, half, false).clamp(-top, top);
  lo = at::where(empty, near, lo);
  hi = at::where(empty, near, hi);
  return {lo, hi};
}

Bounds32 bounds32(const IntervalTensor& t, at::ScalarType half = at::kFloat) {
  if (half != at::kFloat && t.is_float()) return on_half_grid(bounds32(t), half);
  at::Tensor lo = t.full_lo().contiguous(), hi = t.full_hi().contiguous();
  if (!t.is_float()) return {lo, hi};
  at::Tensor l32 = lo.to(at::kFloat), h32 = hi.to(at::kFloat);
  at::Tensor inf = at::full_like(l32, std::numeric_limits<float>::infinity());
  l32 = at::where(l32.to(at::kDouble) < lo, at::nextafter(l32, inf), l32).clamp(-kMaxF, kMaxF);
  h32 = at::where(h32.to(at::kDouble) > hi, at::nextafter(h32, -inf), h32).clamp(-kMaxF, kMaxF);
  at::Tensor empty = l32 > h32;  // no float32 inside: the nearest one stands for it
  l32 = at::where(empty, lo.to(at::kFloat).clamp(-kMaxF, kMaxF), l32);
  h32 = at::where(empty, l32, h32);
  return {l32.to(at::kDouble), h32.to(at::kDouble)};
}


at::Tensor clamp_into(const Bounds32& b, double c) { return at::maximum(at::minimum(at::full_like(b.lo, c), b.hi), b.lo); }

// A value of each element's range away from the target: the far side of a threshold,
// near 0 for a magnitude to stay small, the largest magnitude to stay away from 0;
// near 1 for operands the target does not name.
at::Tensor safe_fill(const Bounds32& b, const UnitTarget* t) {
  if (!t) return clamp_into(b, 1.0);
  switch (t->relation) {
    case Relation::kAtMost: return b.hi;
    case Relation::kAtLeast: return b.lo;
    case Relation::kMagnitudeAtLeast: return clamp_into(b, 0.0);
    default: return at::where(b.hi.abs() >= b.lo.abs(), b.hi, b.lo);
  }
}

// Where a range holds a value meeting the target.
at::Tensor can_meet(const Bounds32& b, const UnitTarget& t) {
  double v = t.value;
  switch (t.relation) {
    case Relation::kAtMost: return b.lo <= v;
    case Relation::kAtLeast: return b.hi >= v;
    case Relation::kEqual: return (b.lo <= v).logical_and(b.hi >= v);
    case Relation::kMagnitudeAtLeast: return (b.lo <= -v).logical_or(b.hi >= v);
    case Relation::kMagnitudeAtMost: return (b.lo <= v).logical_and(b.hi >= -v);
  }
  return at::zeros_like(b.lo, at::kBool);
}

// The value of [lo, hi] meeting the target closest to its threshold (the range
// holds one: see can_meet).
double pick(double lo, double hi, const UnitTarget& t) {
  double v = t.value;
  switch (t.relation) {
    case Relation::kAtMost: return std::min(hi, v);
    case Relation::kAtLeast: return std::max(lo, v);
    case Relation::kEqual: return v;
    case Relation::kMagnitudeAtLeast: return hi >= v ? std::max(lo, v) : std::min(hi, -v);
    case Relation::kMagnitudeAtMost: return std::max(lo, std::min(hi, 0.0));
  }
  return v;
}

// The flat index in a tensor of shape `own` of the element that broadcasts to flat
// position p of `space` (shapes right-aligned, size-1 dimensions repeated).
int64_t own_index(int64_t p, const std::vector<int64_t>& space, const std::vector<int64_t>& own) {
  int64_t idx = 0, stride = 1;
  int64_t offset = static_cast<int64_t>(space.size()) - static_cast<int64_t>(own.size());
  for (int64_t d = static_cast<int64_t>(space.size()) - 1; d >= 0; --d) {
    int64_t coord = p % space[d];
    p /= space[d];
    int64_t od = d - offset;
    if (od < 0) continue;
    idx += (own[od] == 1 ? 0 : coord) * stride;
    stride *= own[od];
  }
  return idx;
}

struct Problem {
  const Graph& graph;
  const Node& node;
  const Finding& finding;
  const OpDef& def;
  const HazardFacet& facet;
  UnitTarget target;
  at::Device device;
  std::vector<const IntervalTensor*> in;  // per node input; null for omitted ones
  std::vector<Bounds32> bounds;
  std::vector<int64_t> space;  // the positions: the broadcast shape, or the target operand's shape
  at::ScalarType half = at::kFloat;  // kHalf / kBFloat16 when the node computes in one
};

// The 16-bit float type the node's float operands are declared with, else kFloat.
at::ScalarType half_of(const Graph& graph, const Node& node) {
  for (const std::string& name : node.inputs) {
    const TensorType* t = name.empty() ? nullptr : graph.type_of(name);
    if (!t) continue;
    at::ScalarType h = half_type_of(t->elem_type);
    if (h != at::kFloat) return h;
  }
  return at::kFloat;
}

double at_flat(const at::Tensor& t, int64_t i) { return t.reshape({-1})[i].item<double>(); }

// Scalar bounds of operand i at position p.
std::pair<double, double> scalar_range(const Problem& pb, size_t i, int64_t p) {
  int64_t j = own_index(p, pb.space, pb.in[i]->shape);
  return {at_flat(pb.bounds[i].lo, j), at_flat(pb.bounds[i].hi, j)};
}

bool tied(const Problem& pb, size_t i) {
  return pb.in[i] && (pb.def.elementwise_broadcast || static_cast<int>(i) == pb.target.operand);
}

// The first position whose target operand can meet the target, or, for a target on
// the output, the position with the largest output bound.
Result<int64_t> pick_position(const Problem& pb, const AnalysisResult& analysis) {
  int64_t n = 1;
  for (int64_t d : pb.space) n *= d;
  if (n == 0) return Status::Error("the node's operands are empty");
  if (pb.target.operand < 0) {
    auto it = analysis.intervals.find(pb.node.outputs.empty() ? "" : pb.node.outputs[0]);
    if (it == analysis.intervals.end() || it->second.shape != pb.space) return int64_t{0};
    at::Tensor mag = at::maximum(it->second.full_lo().abs(), it->second.full_hi().abs());
    return mag.reshape({-1}).argmax().item<int64_t>();
  }
  const Bounds32& b = pb.bounds[pb.target.operand];
  at::Tensor ok = can_meet(b, pb.target).expand(pb.space).reshape({-1});
  if (!ok.any().item<bool>())
    return Status::Error(fmt::format("no value of {} in [{:.9g}, {:.9g}] meets the target {}", pb.node.inputs[pb.target.operand],
                                     b.lo.min().item<double>(), b.hi.max().item<double>(), pb.target.text));
  return ok.to(at::kInt).argmax().item<int64_t>();
}

// ---- solving one position ------------------------------------------------------

using Assignment = std::vector<std::optional<double>>;  // per node input: the witness element

z3::expr z3_relation(const z3::expr& x, const UnitTarget& t) {
  z3::expr v = x.ctx().fpa_val(static_cast<float>(t.value));
  switch (t.relation) {
    case Relation::kAtMost: return x <= v;
    case Relation::kAtLeast: return x >= v;
    case Relation::kEqual: return z3::fp_eq(x, v);
    case Relation::kMagnitudeAtLeast: return z3::abs(x) >= v;
    case Relation::kMagnitudeAtMost: return z3::abs(x) <= v;
  }
  return x.ctx().bool_val(true);
}

float float_of_bits(uint64_t bits) {
  uint32_t b = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// Float32 operands within their ranges (finite, as upstream values are in the safe
// state) that meet the target and make the op's RNE result NaN or INF.
Result<Assignment> solve_z3(const Problem& pb, int64_t p) {
  size_t arity = pb.in.size();
  for (const IntervalTensor* t : pb.in)
    if (!t) return Status::Error("missing operands");
  z3::context c;
  c.set_rounding_mode(z3::RNE);
  z3::solver s(c);
  z3::params params(c);
  params.set("timeout", kZ3TimeoutMs);
  s.set(params);
  // A half node's operands are values of its type; the op computes in float32 on them
  // and rounds its result to the type (oracle/half_run.h), as Z3 is told here.
  bool half = pb.half != at::kFloat;
  z3::sort own = pb.half == at::kHalf ? c.fpa_sort(5, 11) : pb.half == at::kBFloat16 ? c.fpa_sort(8, 8) : c.fpa_sort<32>();
  std::vector<z3::expr> x, v;
  for (size_t i = 0; i < arity; ++i) {
    auto [lo, hi] = scalar_range(pb, i, p);
    x.push_back(c.constant(fmt::format("x{}", i).c_str(), own));
    s.add(!x[i].mk_is_nan() && !x[i].mk_is_inf());
    z3::expr l = c.fpa_val(static_cast<float>(lo)), h = c.fpa_val(static_cast<float>(hi));
    v.push_back(half ? z3::fpa_to_fpa(x[i], c.fpa_sort<32>()) : x[i]);  // exact: a widening
    s.add(v[i] >= l && v[i] <= h);
  }
  z3::expr y = pb.def.z3_encoding(v);
  if (half) y = z3::fpa_to_fpa(y, own);
  s.add(y.mk_is_inf() || y.mk_is_nan());
  if (pb.target.operand >= 0) s.add(z3_relation(v[pb.target.operand], pb.target));
  z3::check_result r = s.check();
  const char* type = pb.half == at::kHalf ? "float16" : pb.half == at::kBFloat16 ? "bfloat16" : "float32";
  if (r == z3::unsat) return Status::Error(fmt::format("Z3: no {} operands in range make {} fail with {}", type, pb.node.op_type, pb.target.text));
  if (r == z3::unknown) return Status::Error("Z3: unknown (" + s.reason_unknown() + ")");
  z3::model m = s.get_model();
  Assignment a(pb.in.size());
  for (size_t i = 0; i < arity; ++i) {
    uint64_t bits = m.eval(x[i].mk_to_ieee_bv(), true).get_numeral_uint64();
    if (pb.half == at::kHalf) a[i] = static_cast<float>(c10::Half(static_cast<uint16_t>(bits), c10::Half::from_bits()));
    else if (pb.half == at::kBFloat16) a[i] = static_cast<float>(c10::BFloat16(static_cast<uint16_t>(bits), c10::BFloat16::from_bits()));
    else a[i] = float_of_bits(bits);
  }
  return a;
}

// The target operand at the value of its range closest to the threshold; for a
// condition on two operands (Pow), the other one as the facet completes it.
Result<Assignment> solve_threshold(const Problem& pb, int64_t p) {
  Assignment a(pb.in.size());
  auto [lo, hi] = scalar_range(pb, pb.target.operand, p);
  a[pb.target.operand] = pick(lo, hi, pb.target);
  int k = pb.facet.completing_operand;
  if (pb.facet.complete && k >= 0 && k < static_cast<int>(pb.in.size()) && pb.in[k]) {
    auto [ylo, yhi] = scalar_range(pb, k, p);
    std::optional<double> y = pb.facet.complete(ylo, yhi);
    if (!y) return Status::Error(fmt::format("no {} in [{:.9g}, {:.9g}] completes {}", pb.node.inputs[k], ylo, yhi, pb.finding.condition));
    a[k] = *y;
  }
  return a;
}

// ---- running the op alone -----------------------------------------------------

struct OpRun {
  std::vector<at::Tensor> outputs;
  std::string error;  // what the lowering threw
};

OpRun run_op(const Problem& pb, const std::vector<at::Tensor>& operands) {
  OpContext ctx{pb.node, pb.graph.opset, operands};
  ctx.device = pb.device;
  try {
    bool half = widen_half_inputs(ctx);  // as the executor runs it
    std::vector<at::Tensor> outs = pb.def.lower(ctx);
    if (half) round_half_outputs(pb.graph, pb.node, outs);
    return {outs, ""};
  } catch (const std::exception& e) {
    return {{}, e.what()};
  }
}

bool any_not_finite(const std::vector<at::Tensor>& outs) {
  for (const at::Tensor& t : outs)
    if (t.defined() && at::isFloatingType(t.scalar_type()) && t.isfinite().logical_not().any().item<bool>()) return true;
  return false;
}

// Backward through the op alone: the value finite, the gradient of the sum of its
// outputs with respect to operand k not.
bool gradient_fails(const Problem& pb, std::vector<at::Tensor> operands, int k) {
  if (k < 0 || !operands[k].defined() || !at::isFloatingType(operands[k].scalar_type())) return false;
  at::AutoGradMode grad_mode(true);
  operands[k] = operands[k].detach().requires_grad_(true);
  OpRun r = run_op(pb, operands);
  if (!r.error.empty() || any_not_finite(r.outputs)) return false;
  at::Tensor total;
  for (const at::Tensor& t : r.outputs)
    if (t.defined() && t.requires_grad()) total = total.defined() ? total + t.sum() : t.sum();
  if (!total.defined()) return false;
  total.backward();
  at::Tensor g = operands[k].grad();
  return g.defined() && g.isfinite().logical_not().any().item<bool>();
}

bool confirm(const Problem& pb, const std::vector<at::Tensor>& operands) {
  switch (pb.finding.kind) {
    case HazardKind::kForward: {
      at::NoGradGuard no_grad;
      OpRun r = run_op(pb, operands);
      return r.error.empty() && any_not_finite(r.outputs);
    }
    case HazardKind::kGradient: return gradient_fails(pb, operands, pb.target.operand);
    case HazardKind::kCrash: {
      at::NoGradGuard no_grad;
      return !run_op(pb, operands).error.empty();
    }
  }
  return false;
}

// ---- building the witness -----------------------------------------------------

// Float operands run as float32, except those of a 16-bit float type, in their own.
at::ScalarType run_type(const IntervalTensor& t) {
  if (t.dtype == at::kHalf || t.dtype == at::kBFloat16) return t.dtype;
  return t.is_float() ? at::kFloat : t.dtype;
}

// Operand tensors of the real shapes: constants as they are, the others at their
// safe fill with the assigned element (at position p) set.
std::vector<at::Tensor> build_operands(const Problem& pb, const Assignment& a, int64_t p) {
  std::vector<at::Tensor> out(pb.in.size());
  for (size_t i = 0; i < pb.in.size(); ++i) {
    if (!pb.in[i]) continue;
    if (pb.in[i]->exact()) {
      out[i] = pb.in[i]->value.to(pb.device);
      continue;
    }
    bool is_target = static_cast<int>(i) == pb.target.operand;
    at::Tensor t = safe_fill(pb.bounds[i], is_target ? &pb.target : nullptr).clone();
    if (a[i] && tied(pb, i)) t.reshape({-1})[own_index(p, pb.space, pb.in[i]->shape)].fill_(*a[i]);
    out[i] = t.to(run_type(*pb.in[i])).to(pb.device);
  }
  return out;
}

std::string describe(const Problem& pb, const Assignment& a, int64_t p) {
  std::string text;
  for (size_t i = 0; i < pb.in.size(); ++i) {
    if (!a[i] || !pb.in[i] || pb.in[i]->exact()) continue;
    std::string name = pb.node.inputs[i];
    if (pb.in[i]->numel() > 1) name += fmt::format("[{}]", own_index(p, pb.space, pb.in[i]->shape));
    text += fmt::format("{}{} = {:.9g}", text.empty() ? "" : ", ", name, *a[i]);
  }
  return text;
}

// The corners of the ranges, whole tensors at once (each non-constant operand at its
// low end, high end or nearest 0): for output hazards of ops outside Z3's theory
// (a sum, a matrix product, a window), the first corner that makes the op fail.
Result<UnitWitness> corner_witness(const Problem& pb) {
  std::vector<size_t> free;
  for (size_t i = 0; i < pb.in.size(); ++i)
    if (pb.in[i] && !pb.in[i]->exact() && free.size() < 4) free.push_back(i);
  static const char* kNames[] = {"low end", "high end", "nearest 0"};
  int64_t combos = 1;
  for (size_t n = 0; n < free.size(); ++n) combos *= 3;
  for (int64_t c = 0; c < combos; ++c) {
    std::vector<at::Tensor> ops = build_operands(pb, Assignment(pb.in.size()), 0);
    std::string text;
    for (size_t n = 0, code = c; n < free.size(); ++n, code /= 3) {
      const Bounds32& b = pb.bounds[free[n]];
      at::Tensor v = code % 3 == 0 ? b.lo : code % 3 == 1 ? b.hi : clamp_into(b, 0.0);
      ops[free[n]] = v.to(run_type(*pb.in[free[n]])).to(pb.device);
      text += fmt::format("{}{} at its {}", text.empty() ? "" : ", ", pb.node.inputs[free[n]], kNames[code % 3]);
    }
    if (confirm(pb, ops)) return UnitWitness{ops, "corners", text, true};
  }
  return Status::Error(fmt::format("no corner of the operand ranges makes {} node {} fail", pb.node.op_type, pb.node.name));
}

Result<Problem> make_problem(const Graph& graph, const Node& node, const Finding& finding, const AnalysisResult& analysis,
                             at::Device device) {
  const OpDef* def = OpRegistry::instance().find(node.op_type, node.domain);
  const HazardFacet* facet = find_facet(node.op_type, node.domain, finding.hazard);
  if (!def || !facet) return Status::Error(fmt::format("no semantics for hazard {} of {}", finding.hazard, node.op_type));
  Result<UnitTarget> t = unit_target(finding, node, analysis, device);
  if (!t.ok()) return t.status();
  Problem pb{graph, node, finding, *def, *facet, *t, device, {}, {}, {}, half_of(graph, node)};
  for (const std::string& name : node.inputs) {
    auto it = name.empty() ? analysis.intervals.end() : analysis.intervals.find(name);
    if (!name.empty() && it == analysis.intervals.end()) return Status::Error("no interval for tensor " + name);
    pb.in.push_back(name.empty() ? nullptr : &it->second);
    const TensorType* type = name.empty() ? nullptr : graph.type_of(name);
    pb.bounds.push_back(name.empty() ? Bounds32{} : bounds32(it->second, type ? half_type_of(type->elem_type) : at::kFloat));
  }
  int k = pb.target.operand;
  if (k >= static_cast<int>(pb.in.size()) || (k >= 0 && !pb.in[k]))
    return Status::Error(fmt::format("node {} has no operand {}", node.name, k));
  if (def->elementwise_broadcast) {
    for (const IntervalTensor* in : pb.in)
      if (in) pb.space = broadcast_shape(pb.space, in->shape);
  } else if (k >= 0) {
    pb.space = pb.in[k]->shape;
  } else if (!pb.in.empty() && pb.in[0]) {
    pb.space = pb.in[0]->shape;
  }
  return pb;
}

}  // namespace

Result<UnitTarget> unit_target(const Finding& finding, const Node& node, at::Device device) {
  return target_of(finding, node, ranges_of(node, finding), kFloat32Max, device);
}

Result<UnitTarget> unit_target(const Finding& finding, const Node& node, const AnalysisResult& analysis, at::Device device) {
  return target_of(finding, node, operand_ranges(node, analysis), node_type_max(node, analysis), device);
}

bool meets(const UnitTarget& target, double v) {
  float f = static_cast<float>(v);  // the float32 number (v already is one)
  float t = static_cast<float>(target.value);
  switch (target.relation) {
    case Relation::kAtMost: return f <= t;
    case Relation::kAtLeast: return f >= t;
    case Relation::kEqual: return f == t;
    case Relation::kMagnitudeAtLeast: return std::isinf(t) ? !std::isfinite(f) : std::abs(f) >= t;
    case Relation::kMagnitudeAtMost: return std::abs(f) <= t;
  }
  return false;
}

Result<UnitWitness> find_unit_witness(const Graph& graph, const Node& node, const Finding& finding,
                                      const AnalysisResult& analysis, at::Device device) {
  Result<Problem> made = make_problem(graph, node, finding, analysis, device);
  if (!made.ok()) return made.status();
  const Problem& pb = *made;
  bool z3 = pb.def.z3_encoding && finding.kind == HazardKind::kForward;
  for (const IntervalTensor* t : pb.in) z3 = z3 && (!t || t->dtype == at::kFloat || t->dtype == pb.half);
  if (pb.target.operand < 0 && !z3) return corner_witness(pb);
  Result<int64_t> p = pick_position(pb, analysis);
  if (!p.ok()) return p.status();
  Result<Assignment> a = z3 ? solve_z3(pb, *p) : solve_threshold(pb, *p);
  if (!a.ok()) return a.status();
  std::vector<at::Tensor> operands = build_operands(pb, *a, *p);
  bool ok = confirm(pb, operands);
  const char* solver = pb.half == at::kHalf ? "z3-fp16" : pb.half == at::kBFloat16 ? "z3-bf16" : "z3-fp32";
  return UnitWitness{operands, z3 ? solver : "threshold", describe(pb, *a, *p), ok};
}

}  // namespace nanguard
