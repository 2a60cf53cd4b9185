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
#include <set>

#include <fmt/core.h>
#include <z3++.h>

#include "model/attributes.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"
#include "solver/float_thresholds.h"

namespace nanguard {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kMaxF = std::numeric_limits<float>::max();
constexpr float kMinSubF = std::numeric_limits<float>::denorm_min();
constexpr unsigned kZ3TimeoutMs = 10000;

// ---- targets ------------------------------------------------------------------

UnitTarget make_target(int operand, Relation r, double value, std::string text) {
  return UnitTarget{operand, r, value, std::move(text)};
}

// Any non-finite output: the representation `meets` reads as "not finite".
UnitTarget output_not_finite() { return make_target(-1, Relation::kMagnitudeAtLeast, kInf, "y is not finite"); }

Status no_target(const Finding& f, const std::string& why) {
  return Status::Error(fmt::format("no unit target for hazard {} of {} node {}: {}", f.hazard, f.op_type, f.node, why));
}

// The smallest float32 >= d and the largest <= d (inward rounding of a range).
float f32_up(double d) {
  float f = static_cast<float>(d);
  return static_cast<double>(f) < d ? std::nextafter(f, std::numeric_limits<float>::infinity()) : f;
}
float f32_down(double d) {
  float f = static_cast<float>(d);
  return static_cast<double>(f) > d ? std::nextafter(f, -std::numeric_limits<float>::infinity()) : f;
}

Result<UnitTarget> threshold_target(Threshold t, at::Device device, int operand, Relation r, const char* what) {
  Result<float> v = float_threshold(t, device);
  if (!v.ok()) return v.status();
  return make_target(operand, r, *v, fmt::format(what, *v));
}

const OperandRange* range_of(const Finding& f, const std::string& tensor) {
  for (const auto& o : f.operands)
    if (o.tensor == tensor) return &o;
  return nullptr;
}

// Div: |x / y| overflows for |y| <= T, T measured with the largest numerator |x| in
// range (the quotient's rounding decides, so it is bisected through at::div).
Result<UnitTarget> div_overflow_target(const Finding& f, const Node& node, at::Device device) {
  const OperandRange* x = node.inputs.empty() ? nullptr : range_of(f, node.inputs[0]);
  if (!x) return output_not_finite();  // a constant numerator: no range to read m from
  float m = std::min(f32_down(std::max(std::abs(x->lo), std::abs(x->hi))), kMaxF);
  auto pred = [&](float y) {
    return fails_everywhere([m](const at::Tensor& t) { return at::div(at::full_like(t, m), t); }, y, device);
  };
  Result<float> t = last_true(pred, kMinSubF, kMaxF);
  if (!t.ok()) return no_target(f, fmt::format("no divisor overflows a numerator of magnitude {:.9g}", m));
  return make_target(1, Relation::kMagnitudeAtMost, *t, fmt::format("|y| <= {:.9g} (with |x| = {:.9g})", *t, m));
}

// Celu with alpha < 0: exp(x / alpha) overflows for x at most a measured T.
Result<UnitTarget> celu_exp_target(const Finding& f, const Node& node, at::Device device) {
  float alpha = attr_float(node, "alpha", 1.f);
  auto pred = [&](float x) { return fails_everywhere([alpha](const at::Tensor& t) { return at::celu(t, alpha); }, x, device); };
  Result<float> t = last_true(pred, -kMaxF, 0.f);
  if (!t.ok()) return no_target(f, fmt::format("celu with alpha {} does not overflow", alpha));
  return make_target(0, Relation::kAtMost, *t, fmt::format("x <= {:.9g}", *t));
}

// Cast to an integer: undefined outside (min - 1, max + 1); the side the finding's
// range reaches. To float16/bfloat16: |x| from the measured INF threshold.
Result<UnitTarget> cast_target(const Finding& f, const Node& node, at::Device device) {
  at::ScalarType to = scalar_type_for(static_cast<int32_t>(attr_int(node, "to")));
  if (to == at::kHalf) return threshold_target(Threshold::kHalfOverflow, device, 0, Relation::kMagnitudeAtLeast, "|x| >= {:.9g}");
  if (to == at::kBFloat16) return threshold_target(Threshold::kBFloat16Overflow, device, 0, Relation::kMagnitudeAtLeast, "|x| >= {:.9g}");
  if (!at::isIntegralType(to, false)) return no_target(f, "a cast to a floating type that cannot overflow");
  auto [lo, hi] = integer_range(to);
  const OperandRange* x = node.inputs.empty() ? nullptr : range_of(f, node.inputs[0]);
  if (x && x->hi >= hi + 1) return make_target(0, Relation::kAtLeast, f32_up(hi + 1), fmt::format("x >= {:.9g}", f32_up(hi + 1)));
  return make_target(0, Relation::kAtMost, f32_down(lo - 1), fmt::format("x <= {:.9g}", f32_down(lo - 1)));
}

Result<UnitTarget> bernoulli_target(const Finding& f, const Node& node) {
  const OperandRange* p = node.inputs.empty() ? nullptr : range_of(f, node.inputs[0]);
  if (p && p->hi > 1) return make_target(0, Relation::kAtLeast, std::nextafter(1.f, 2.f), "p > 1");
  return make_target(0, Relation::kAtMost, -kMinSubF, "p < 0");
}

Result<UnitTarget> sqrt_gradient_target(at::Device device) {
  Result<float> t = float_threshold(Threshold::kSqrtGradient, device);
  if (!t.ok()) return t.status();
  if (*t == 0) return make_target(0, Relation::kEqual, 0, "x == 0");
  return make_target(0, Relation::kMagnitudeAtMost, *t, fmt::format("|x| <= {:.9g}", *t));  // denormals flushed
}

// The elementwise unary hazards, each a measured threshold on operand 0.
std::optional<Result<UnitTarget>> unary_target(const std::string& h, at::Device d) {
  using R = Relation;
  if (h == "exp-overflow") return threshold_target(Threshold::kExpOverflow, d, 0, R::kAtLeast, "x >= {:.9g}");
  if (h == "cosh-overflow") return threshold_target(Threshold::kCoshOverflow, d, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}");
  if (h == "sinh-overflow") return threshold_target(Threshold::kSinhOverflow, d, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}");
  if (h == "sqrt-negative") return threshold_target(Threshold::kSqrtNaN, d, 0, R::kAtMost, "x <= {:.9g}");
  if (h == "sqrt-zero-gradient") return sqrt_gradient_target(d);
  if (h == "asin-domain") return threshold_target(Threshold::kAsinDomain, d, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}");
  if (h == "acos-domain") return threshold_target(Threshold::kAcosDomain, d, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}");
  if (h == "asin-gradient") return threshold_target(Threshold::kAsinGradient, d, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}");
  if (h == "acos-gradient") return threshold_target(Threshold::kAcosGradient, d, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}");
  if (h == "acosh-domain") return threshold_target(Threshold::kAcoshDomain, d, 0, R::kAtMost, "x <= {:.9g}");
  if (h == "acosh-gradient") return threshold_target(Threshold::kAcoshGradient, d, 0, R::kAtMost, "x <= {:.9g}");
  if (h == "atanh-domain") return threshold_target(Threshold::kAtanhDomain, d, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}");
  return std::nullopt;
}

// Hazards whose failure is the output itself (a sum, a window, a whole slice): no
// single operand element decides them.
bool output_hazard(const std::string& h) {
  static const std::set<std::string> kOutput = {"overflow", "reduce-empty", "lppool-overflow", "avgpool-empty-window",
                                                "lrn-nonpositive-denominator", "norm-zero-variance", "loss-zero-weight"};
  return kOutput.count(h) > 0;
}

// Gradient and crash hazards whose condition spans a slice or the data's shape.
const char* unsupported_reason(const std::string& h) {
  if (h == "lppool-zero-gradient" || h == "norm-zero-gradient")
    return "the condition is on the sum over a window or slice, not on one element";
  if (h == "celu-zero-alpha") return "the condition is on an attribute, not on an operand value";
  if (h == "gather-index-out-of-range" || h == "scatter-index-out-of-range" || h == "index-out-of-range")
    return "an index bound depends on the data's shape, which the target does not carry";
  if (h == "unsupported") return "the op has no abstract semantics";
  return nullptr;
}

Result<UnitTarget> target_of(const Finding& f, const Node& node, at::Device d) {
  const std::string& h = f.hazard;
  const std::string& op = node.op_type;
  if (h == "log-nonpositive" && op == "Log") return threshold_target(Threshold::kLogNonFinite, d, 0, Relation::kAtMost, "x <= {:.9g}");
  if (h == "log-nonpositive") return output_not_finite();  // log of a sum (ReduceLogSum)
  if (h == "log-gradient-overflow" && op == "Log") return threshold_target(Threshold::kLogGradient, d, 0, Relation::kAtMost, "x <= {:.9g}");
  if (h == "exp-overflow" && op == "Celu") return celu_exp_target(f, node, d);
  if (auto t = unary_target(h, d)) return *t;
  int divisor = op == "Reciprocal" ? 0 : 1;
  if (h == "div-by-zero" || h == "mod-by-zero" || h == "int-div-by-zero" || h == "int-mod-by-zero")
    return make_target(divisor, Relation::kEqual, 0, divisor ? "y == 0" : "x == 0");
  if (h == "div-overflow" && op == "Reciprocal")
    return threshold_target(Threshold::kReciprocalOverflow, d, 0, Relation::kMagnitudeAtMost, "|x| <= {:.9g}");
  if (h == "div-overflow") return div_overflow_target(f, node, d);
  if (h == "pow-negative-base") return make_target(0, Relation::kAtMost, -kMinSubF, "x < 0");
  if (h == "pow-zero-negative-exponent" || h == "pow-zero-gradient") return make_target(0, Relation::kEqual, 0, "x == 0");
  if (h == "batchnorm-nonpositive-variance") {
    float eps = attr_float(node, "epsilon", 1e-5f);  // float32 var + eps <= 0 exactly when var <= -eps
    return make_target(4, Relation::kAtMost, -eps, fmt::format("var <= {:.9g}", -eps));
  }
  if (h == "lpnorm-zero-norm" && f.kind == HazardKind::kForward) return output_not_finite();
  if (h == "cast-overflow") return cast_target(f, node, d);
  if (h == "bernoulli-probability-out-of-range") return bernoulli_target(f, node);
  if (output_hazard(h) && f.kind == HazardKind::kForward) return output_not_finite();
  if (const char* why = unsupported_reason(h)) return no_target(f, why);
  return no_target(f, "no condition on one tensor element is known for it");
}

// ---- operands -----------------------------------------------------------------

// Inward float32 bounds of a tensor's range, finite (upstream values are finite in
// the safe state); for integer tensors the bounds themselves.
struct Bounds32 {
  at::Tensor lo, hi;  // float64 holding float32 values, the tensor's real shape
};

Bounds32 bounds32(const IntervalTensor& t) {
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

// Ops whose operands broadcast elementwise into one output: the witness element of
// each operand is the one under the same output position.
bool elementwise(const std::string& op) {
  static const std::set<std::string> kOps = {"Add", "Sub", "Mul", "Div", "Pow", "Mod"};
  return kOps.count(op) > 0;
}

// Ops whose float32 semantics Z3's floating-point theory states exactly (IEEE
// correctly rounded): Div, Reciprocal, Sqrt, Add, Sub, Mul.
bool in_z3_theory(const std::string& op) {
  static const std::set<std::string> kOps = {"Div", "Reciprocal", "Sqrt", "Add", "Sub", "Mul"};
  return kOps.count(op) > 0;
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
  UnitTarget target;
  at::Device device;
  std::vector<const IntervalTensor*> in;  // per node input; null for omitted ones
  std::vector<Bounds32> bounds;
  std::vector<int64_t> space;  // the positions: the broadcast shape, or the target operand's shape
};

double at_flat(const at::Tensor& t, int64_t i) { return t.reshape({-1})[i].item<double>(); }

// Scalar bounds of operand i at position p.
std::pair<double, double> scalar_range(const Problem& pb, size_t i, int64_t p) {
  int64_t j = own_index(p, pb.space, pb.in[i]->shape);
  return {at_flat(pb.bounds[i].lo, j), at_flat(pb.bounds[i].hi, j)};
}

bool tied(const Problem& pb, size_t i) {
  return pb.in[i] && (elementwise(pb.node.op_type) || static_cast<int>(i) == pb.target.operand);
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

z3::expr z3_op(const std::string& op, const std::vector<z3::expr>& v) {
  z3::context& c = v[0].ctx();
  if (op == "Reciprocal") return c.fpa_val(1.0f) / v[0];
  if (op == "Sqrt") return z3::sqrt(v[0], c.fpa_rounding_mode());
  if (op == "Div") return v[0] / v[1];
  if (op == "Add") return v[0] + v[1];
  if (op == "Sub") return v[0] - v[1];
  return v[0] * v[1];
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
  size_t arity = (pb.node.op_type == "Reciprocal" || pb.node.op_type == "Sqrt") ? 1 : 2;
  if (pb.in.size() < arity) return Status::Error("missing operands");
  z3::context c;
  c.set_rounding_mode(z3::RNE);
  z3::solver s(c);
  z3::params params(c);
  params.set("timeout", kZ3TimeoutMs);
  s.set(params);
  std::vector<z3::expr> v;
  for (size_t i = 0; i < arity; ++i) {
    auto [lo, hi] = scalar_range(pb, i, p);
    v.push_back(c.constant(fmt::format("x{}", i).c_str(), c.fpa_sort<32>()));
    s.add(!v[i].mk_is_nan() && !v[i].mk_is_inf());
    s.add(v[i] >= c.fpa_val(static_cast<float>(lo)) && v[i] <= c.fpa_val(static_cast<float>(hi)));
  }
  z3::expr y = z3_op(pb.node.op_type, v);
  s.add(y.mk_is_inf() || y.mk_is_nan());
  if (pb.target.operand >= 0) s.add(z3_relation(v[pb.target.operand], pb.target));
  z3::check_result r = s.check();
  if (r == z3::unsat) return Status::Error(fmt::format("Z3: no float32 operands in range make {} fail with {}", pb.node.op_type, pb.target.text));
  if (r == z3::unknown) return Status::Error("Z3: unknown (" + s.reason_unknown() + ")");
  z3::model m = s.get_model();
  Assignment a(pb.in.size());
  for (size_t i = 0; i < arity; ++i) a[i] = float_of_bits(m.eval(v[i].mk_to_ieee_bv(), true).get_numeral_uint64());
  return a;
}

// Pow's exponent for the base hazards: not an integer (negative base), negative (0
// to a negative power), in (0, 1) (the gradient at 0).
std::optional<double> pick_exponent(const std::string& hazard, double lo, double hi) {
  auto fits = [&](float y) {
    if (!(y >= lo && y <= hi)) return false;
    bool integer = std::floor(y) == y;
    if (hazard == "pow-negative-base") return !integer;
    if (hazard == "pow-zero-negative-exponent") return y < 0;
    if (hazard == "pow-zero-gradient") return y > 0 && y < 1;
    return true;
  };
  const float inf = std::numeric_limits<float>::infinity();
  float mid = static_cast<float>(lo / 2 + hi / 2);
  for (float y : {0.5f, -1.f, -0.5f, mid, std::nextafter(mid, inf), std::nextafter(mid, -inf), static_cast<float>(lo),
                  static_cast<float>(hi), std::nextafter(static_cast<float>(lo), inf), std::nextafter(static_cast<float>(hi), -inf),
                  static_cast<float>(lo + 0.5), static_cast<float>(hi - 0.5)})
    if (fits(y)) return y;
  return std::nullopt;
}

// The target operand at the value of its range closest to the threshold; Pow's
// exponent chosen to keep the hazard's other half true.
Result<Assignment> solve_threshold(const Problem& pb, int64_t p) {
  Assignment a(pb.in.size());
  auto [lo, hi] = scalar_range(pb, pb.target.operand, p);
  a[pb.target.operand] = pick(lo, hi, pb.target);
  if (pb.node.op_type == "Pow" && pb.in.size() > 1 && pb.in[1]) {
    auto [ylo, yhi] = scalar_range(pb, 1, p);
    std::optional<double> y = pick_exponent(pb.finding.hazard, ylo, yhi);
    if (!y) return Status::Error(fmt::format("no exponent in [{:.9g}, {:.9g}] completes {}", ylo, yhi, pb.finding.condition));
    a[1] = *y;
  }
  return a;
}

// ---- running the op alone -----------------------------------------------------

struct OpRun {
  std::vector<at::Tensor> outputs;
  std::string error;  // what the lowering threw
};

OpRun run_op(const Problem& pb, const std::vector<at::Tensor>& operands) {
  const OpDef* def = OpRegistry::instance().find(pb.node.op_type, pb.node.domain);
  if (!def) return {{}, "no lowering for " + pb.node.op_type};
  OpContext ctx{pb.node, pb.graph.opset, operands};
  ctx.device = pb.device;
  try {
    return {def->lower(ctx), ""};
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

at::ScalarType run_type(const IntervalTensor& t) { return t.is_float() ? at::kFloat : t.dtype; }

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
  Result<UnitTarget> t = unit_target(finding, node, device);
  if (!t.ok()) return t.status();
  Problem pb{graph, node, finding, *t, device, {}, {}, {}};
  for (const std::string& name : node.inputs) {
    auto it = name.empty() ? analysis.intervals.end() : analysis.intervals.find(name);
    if (!name.empty() && it == analysis.intervals.end()) return Status::Error("no interval for tensor " + name);
    pb.in.push_back(name.empty() ? nullptr : &it->second);
    pb.bounds.push_back(name.empty() ? Bounds32{} : bounds32(it->second));
  }
  int k = pb.target.operand;
  if (k >= static_cast<int>(pb.in.size()) || (k >= 0 && !pb.in[k]))
    return Status::Error(fmt::format("node {} has no operand {}", node.name, k));
  if (elementwise(node.op_type)) {
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
  return target_of(finding, node, device);
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
  bool z3 = in_z3_theory(node.op_type) && finding.kind == HazardKind::kForward;
  for (const IntervalTensor* t : pb.in) z3 = z3 && (!t || t->dtype == at::kFloat);
  if (pb.target.operand < 0 && !z3) return corner_witness(pb);
  Result<int64_t> p = pick_position(pb, analysis);
  if (!p.ok()) return p.status();
  Result<Assignment> a = z3 ? solve_z3(pb, *p) : solve_threshold(pb, *p);
  if (!a.ok()) return a.status();
  std::vector<at::Tensor> operands = build_operands(pb, *a, *p);
  bool ok = confirm(pb, operands);
  return UnitWitness{operands, z3 ? "z3-fp32" : "threshold", describe(pb, *a, *p), ok};
}

}  // namespace nanguard
