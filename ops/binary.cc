// Elementwise ops with numpy broadcasting: arithmetic (Add, Sub, Mul, Div, Pow, Mod),
// variadic Max/Min/Sum/Mean, comparisons, logic, BitShift, Where, PRelu.
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <z3++.h>

#include "ops/bilinear_bounds.h"
#include "ops/type_limit.h"
#include "ops/float_thresholds.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/symbolic_form.h"

namespace nanguard {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

OpDef binary(const char* op_type, at::Tensor (*f)(const at::Tensor&, const at::Tensor&)) {
  return OpDef{op_type, [f](const OpContext& ctx) {
                 return std::vector<at::Tensor>{f(ctx.input(0), ctx.input(1))};
               }};
}

// ONNX Div on integers truncates toward zero (C semantics); on floats it is IEEE.
at::Tensor divide(const at::Tensor& a, const at::Tensor& b) {
  if (at::isIntegralType(a.scalar_type(), /*includeBool=*/false))
    return at::div(a, b, "trunc");
  return at::div(a, b);
}

// Pow keeps the base's type (ONNX: output type = type of X).
at::Tensor power(const at::Tensor& x, const at::Tensor& y) {
  if (at::isIntegralType(x.scalar_type(), false) && at::isFloatingType(y.scalar_type()))
    return at::pow(x.to(y.scalar_type()), y).to(x.scalar_type());
  if (at::isFloatingType(x.scalar_type())) return at::pow(x, y.to(x.scalar_type()));
  return at::pow(x, y).to(x.scalar_type());
}

// fmod=1 is C fmod (sign of the dividend); fmod=0 is Python's mod (sign of the divisor).
std::vector<at::Tensor> lower_mod(const OpContext& ctx) {
  bool fmod = attr_int(ctx.node, "fmod", 0) != 0;
  const at::Tensor &a = ctx.input(0), &b = ctx.input(1);
  return {fmod ? at::fmod(a, b) : at::remainder(a, b)};
}

// Variadic ops fold pairwise with broadcasting.
OpDef variadic(const char* op_type, at::Tensor (*f)(const at::Tensor&, const at::Tensor&), bool mean) {
  return OpDef{op_type, [f, mean](const OpContext& ctx) {
                 at::Tensor acc = ctx.input(0);
                 for (size_t i = 1; i < ctx.num_inputs(); ++i) acc = f(acc, ctx.input(i));
                 if (mean) acc = acc / static_cast<double>(ctx.num_inputs());
                 return std::vector<at::Tensor>{acc};
               }};
}

std::vector<at::Tensor> lower_bitshift(const OpContext& ctx) {
  std::string dir = attr_string(ctx.node, "direction", "");
  const at::Tensor &x = ctx.input(0), &s = ctx.input(1);
  if (dir == "LEFT") return {at::bitwise_left_shift(x, s)};
  if (dir == "RIGHT") return {at::bitwise_right_shift(x, s)};
  ctx.fail("direction must be LEFT or RIGHT");
}

std::vector<at::Tensor> lower_where(const OpContext& ctx) {
  return {at::where(ctx.input(0).to(at::kBool), ctx.input(1), ctx.input(2))};
}

// PRelu: slope broadcasts unidirectionally to X.
std::vector<at::Tensor> lower_prelu(const OpContext& ctx) {
  const at::Tensor &x = ctx.input(0), &slope = ctx.input(1);
  return {at::where(x < 0, x * slope, x)};
}

// ---- abstract semantics ----------------------------------------------------

std::vector<int64_t> out_shape(const AbstractContext& a) {
  std::vector<int64_t> s = a.input(0).shape;
  for (size_t i = 1; i < a.num_inputs(); ++i) s = broadcast_shape(s, a.input(i).shape);
  return s;
}

at::ScalarType out_dtype(const AbstractContext& a) { return a.input(0).dtype; }

bool same_tensor(const AbstractContext& a) { return a.node.inputs.size() >= 2 && a.node.inputs[0] == a.node.inputs[1]; }

std::vector<IntervalTensor> add_interval(const AbstractContext& a) {
  return {make_interval(bounds_add(bounds_of(a.input(0)), bounds_of(a.input(1))), out_shape(a), out_dtype(a), 1)};
}

// x - ReduceMax(x) <= 0 (stable softmax), and x - x == 0 exactly for finite x.
bool subtracts_own_max(const AbstractContext& a) {
  const Node* p = a.producer(1);
  return p && p->op_type == "ReduceMax" && !p->inputs.empty() && p->inputs[0] == a.node.inputs[0];
}

std::vector<IntervalTensor> sub_interval(const AbstractContext& a) {
  // x - x is 0 for finite x only (inf - inf is NaN, which the bounds below then hold).
  if (same_tensor(a) && std::isfinite(a.input(0).min()) && std::isfinite(a.input(0).max())) return {IntervalTensor::uniform(a.input(0).shape, out_dtype(a), 0, 0)};
  Bounds b = bounds_sub(bounds_of(a.input(0)), bounds_of(a.input(1)));
  IntervalTensor r = make_interval(b, out_shape(a), out_dtype(a), 1);
  if (subtracts_own_max(a)) r.hi = r.hi.clamp_max(0.0);  // exact: x - max(x) rounds to <= 0
  return {r};
}

std::vector<IntervalTensor> mul_interval(const AbstractContext& a) {
  if (same_tensor(a)) {  // x * x >= 0
    Bounds b = bounds_mul(bounds_of(a.input(0)), bounds_of(a.input(1)));
    const IntervalTensor& x = a.input(0);
    at::Tensor lo = at::where(contains_zero(x), at::zeros_like(b.lo), at::minimum(x.lo * x.lo, x.hi * x.hi));
    return {make_interval({lo, b.hi}, out_shape(a), out_dtype(a), 1)};
  }
  Bounds b = bounds_mul(bounds_of(a.input(0)), bounds_of(a.input(1)));
  // 0 * +-inf is NaN, not the 0 real interval products take it for: a mask fill times a
  // factor that may be 0 ((1 - m) * -inf at m = 1). NaN bounds report it.
  auto infinite = [](const IntervalTensor& t) { return t.lo.isinf().logical_or(t.hi.isinf()); };
  const IntervalTensor &x = a.input(0), &y = a.input(1);
  if (x.is_float() && y.is_float()) {
    at::Tensor nan = contains_zero(x).logical_and(infinite(y)).logical_or(contains_zero(y).logical_and(infinite(x)));
    if (nan.any().item<bool>()) b = {b.lo.masked_fill(nan, NAN), b.hi.masked_fill(nan, NAN)};
  }
  return {make_interval(b, out_shape(a), out_dtype(a), 1)};
}

std::vector<IntervalTensor> div_interval(const AbstractContext& a) {
  const IntervalTensor &x = a.input(0), &y = a.input(1);
  if (contains_zero(y).any().item<bool>()) return {IntervalTensor::top(out_shape(a), out_dtype(a))};
  if (!x.is_float()) return {IntervalTensor::top(out_shape(a), out_dtype(a))};
  return {make_interval(bounds_div_nonzero(bounds_of(x), bounds_of(y)), out_shape(a), out_dtype(a), 1)};
}

HazardReport hazard(const char* name, HazardKind kind, int operand, const char* cond, bool definite = false) {
  return HazardReport{name, kind, operand, cond, definite};
}

bool all_zero(const IntervalTensor& t) { return (t.lo == 0).logical_and(t.hi == 0).all().item<bool>(); }

// The divisor magnitude below which the backward pass overflows, with |x| <= xmax
// and an output gradient of 1: ATen's dx = g / y passes FLT_MAX for |y| < 1/FLT_MAX,
// dy = -g * ((x / y) / y) for y^2 < |x| / FLT_MAX.
// The limit is the operands' type's (float16's 65504: their gradients have it too).
double div_gradient_threshold(double xmax, bool x_grad, bool y_grad, double limit = kFloat32Max) {
  double t = 0;
  if (x_grad) t = 1 / limit;
  if (y_grad) t = std::max(t, std::sqrt(xmax / limit));
  return t;
}

std::vector<HazardReport> div_hazards(const AbstractContext& a) {
  const IntervalTensor &x = a.input(0), &y = a.input(1);
  if (contains_zero(y).any().item<bool>()) {
    if (!y.is_float()) return {hazard("int-div-by-zero", HazardKind::kCrash, 1, "y == 0", all_zero(y))};
    return {hazard("div-by-zero", HazardKind::kForward, 1, "y == 0", all_zero(y))};
  }
  if (!x.is_float()) return {};
  Bounds q = bounds_div_nonzero(bounds_of(x), bounds_of(y));
  if ((q.hi > kFloat32Max).logical_or(q.lo < -kFloat32Max).any().item<bool>())
    return {hazard("div-overflow", HazardKind::kForward, 1, "|x / y| > 3.4028235e38")};
  // Constants (exact operands) get no gradient.
  double xmax = at::maximum(x.lo.abs(), x.hi.abs()).max().item<double>();
  double ymin = at::minimum(y.lo.abs(), y.hi.abs()).min().item<double>();
  double t = div_gradient_threshold(xmax, !x.exact(), !y.exact(), std::min(input_limit(a, 0), input_limit(a, 1)));
  if (ymin < t * (1 + 1e-6))
    return {HazardReport{"div-gradient-overflow", HazardKind::kGradient, 1,
                         fmt::format("|y| < {:.3g}: the gradient 1 / y or x / y^2 overflows", t), false}};
  return {};
}

// True when the analysis proves |x / y| <= type_max for |x| <= xmax and y = m: the
// hazard condition and the generic overflow check on the rounded-out quotient (a
// half quotient is the float32 one rounded to the type, INF past its largest value).
bool quotient_proved(double xmax, double m, double type_max) {
  auto t = [](double v) { return at::full({1}, v, at::kDouble); };
  IntervalTensor q = make_interval(bounds_div_nonzero({t(-xmax), t(xmax)}, {t(m), t(m)}), {1}, at::kFloat, 1);
  return q.hi.item<double>() <= type_max && q.lo.item<double>() >= -type_max;
}

// A divisor is safe when |y| >= m, the smallest float32 with which the analysis
// proves the quotient finite for the largest |x|, and at least the smallest float32
// away from 0: fixed by a sign-preserving clamp.
std::optional<SafeDomain> divisor_domain(const Node&, const std::vector<Range>& r, double type_max) {
  if (r.size() < 2) return std::nullopt;
  double x = std::max(std::abs(r[0].lo), std::abs(r[0].hi));
  if (!std::isfinite(x)) return std::nullopt;
  double m = std::max(float32_up(x / type_max), kFloat32MinSubnormal);
  for (int step = 0; step < 64 && !quotient_proved(x, m, type_max); ++step) m = float32_above(m);
  double inf = std::numeric_limits<double>::infinity();
  return SafeDomain{1, -inf, inf, m, fmt::format("|y| >= {:.9g} (|x| <= {:.9g})", m, x)};
}

// |x / y| overflows for |y| <= T, T measured with the largest numerator |x| in range
// (the quotient's rounding decides, so it is bisected through at::div). A numerator
// of unknown range leaves only "the output is not finite".
Result<UnitTarget> div_overflow_target(const Node& node, const std::vector<Range>& r, double type_max, at::Device device) {
  double x = r.empty() ? NAN : std::max(std::abs(r[0].lo), std::abs(r[0].hi));
  if (!std::isfinite(x)) return target_output_not_finite()(node, r, type_max, device);
  float m = std::min(static_cast<float>(float32_down(x)), std::numeric_limits<float>::max());
  auto pred = [&](float y) {
    return fails_everywhere([m](const at::Tensor& t) { return at::div(at::full_like(t, m), t); }, y, device);
  };
  Result<float> t = last_true(pred, std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max());
  if (!t.ok()) return Status::Error(fmt::format("no divisor overflows a numerator of magnitude {:.9g}", m));
  return UnitTarget{1, Relation::kMagnitudeAtMost, *t, fmt::format("|y| <= {:.9g} (with |x| = {:.9g})", *t, m)};
}

UnitTargetFn divisor_zero() { return target_fixed(1, Relation::kEqual, 0, "y == 0"); }

double largest_numerator(const std::vector<Range>& r) {
  return r.empty() ? NAN : std::max(std::abs(r[0].lo), std::abs(r[0].hi));
}

// The backward pass is finite for |y| at least the threshold (with both operands
// taking gradients: the fixer does not know which do), a little above it.
std::optional<SafeDomain> div_gradient_domain(const Node&, const std::vector<Range>& r, double type_max) {
  double x = largest_numerator(r);
  if (!std::isfinite(x)) return std::nullopt;
  double m = float32_up(div_gradient_threshold(x, true, true, type_max) * (1 + 1e-5));
  double inf = std::numeric_limits<double>::infinity();
  return SafeDomain{1, -inf, inf, m, fmt::format("|y| >= {:.9g} (|x| <= {:.9g})", m, x)};
}

// Meeting |y| <= T with |x| at its largest makes the gradient overflow.
Result<UnitTarget> div_gradient_target(const Node&, const std::vector<Range>& r, double type_max, at::Device) {
  double x = largest_numerator(r);
  if (!std::isfinite(x)) x = 0;
  double t = float32_down(div_gradient_threshold(x, true, true, type_max) * (1 - 1e-5));
  return UnitTarget{1, Relation::kMagnitudeAtMost, t, fmt::format("|y| <= {:.9g} (with |x| = {:.9g})", t, x)};
}

std::vector<HazardFacet> div_facets() {
  return {HazardFacet{"div-by-zero", HazardKind::kForward, divisor_domain, "", {"count-divisor", "sqrt-eps"}, divisor_zero()},
          HazardFacet{"div-overflow", HazardKind::kForward, divisor_domain, "", {"sqrt-eps"}, div_overflow_target},
          HazardFacet{"div-gradient-overflow", HazardKind::kGradient, div_gradient_domain, "", {"sqrt-eps"},
                      div_gradient_target},
          HazardFacet{"int-div-by-zero", HazardKind::kCrash, domain_away_from_zero(1, 1), "", {"count-divisor"}, divisor_zero()}};
}

// fmod and Python mod are finite for any nonzero divisor (the condition is y == 0).
std::vector<HazardFacet> mod_facets() {
  return {HazardFacet{"mod-by-zero", HazardKind::kForward, domain_away_from_zero(1, kFloat32MinSubnormal), "", {}, divisor_zero()},
          HazardFacet{"int-mod-by-zero", HazardKind::kCrash, domain_away_from_zero(1, 1), "", {}, divisor_zero()}};
}

std::vector<HazardReport> mod_hazards(const AbstractContext& a) {
  const IntervalTensor& y = a.input(1);
  if (!contains_zero(y).any().item<bool>()) return {};
  if (!y.is_float()) return {hazard("int-mod-by-zero", HazardKind::kCrash, 1, "y == 0", all_zero(y))};
  return {hazard("mod-by-zero", HazardKind::kForward, 1, "y == 0", all_zero(y))};
}

// |x mod y| < |y|; fmod keeps the dividend's sign, Python mod the divisor's.
std::vector<IntervalTensor> mod_interval(const AbstractContext& a) {
  const IntervalTensor &x = a.input(0), &y = a.input(1);
  at::Tensor m = at::maximum(y.lo.abs(), y.hi.abs());
  bool fmod = attr_int(a.node, "fmod", 0) != 0;
  at::Tensor sign_lo = fmod ? x.lo : y.lo, sign_hi = fmod ? x.hi : y.hi;
  at::Tensor lo = at::where(sign_lo >= 0, at::zeros_like(m), -m), hi = at::where(sign_hi <= 0, at::zeros_like(m), m);
  if (fmod) { lo = at::maximum(lo, at::minimum(x.lo, at::zeros_like(x.lo))); hi = at::minimum(hi, at::maximum(x.hi, at::zeros_like(x.hi))); }
  return {make_interval({lo, hi}, out_shape(a), out_dtype(a), 1)};
}

// Pow with a known scalar exponent (the common x**2, x**0.5, x**-1); otherwise
// exp(y * log(x)) on the safe state x > 0.
std::vector<IntervalTensor> pow_interval_real(const AbstractContext& a) {
  const IntervalTensor &x = a.input(0), &y = a.input(1);
  std::vector<int64_t> shape = out_shape(a);
  if (y.exact() && y.value.numel() == 1) {
    double e = y.value.to(at::kDouble).item<double>();
    bool integer = std::floor(e) == e;
    Bounds base = bounds_of(x);
    if (!integer) base = {x.lo.clamp_min(0.0), x.hi.clamp_min(0.0)};
    bool even = integer && std::fmod(std::abs(e), 2.0) == 0;
    if (even) base = {at::where(contains_zero(x), at::zeros_like(x.lo), at::minimum(x.lo.abs(), x.hi.abs())), at::maximum(x.lo.abs(), x.hi.abs())};
    if (e < 0 && contains_zero(x).any().item<bool>()) return {IntervalTensor::top(shape, out_dtype(a))};
    at::Tensor p1 = base.lo.pow(e), p2 = base.hi.pow(e);
    return {make_interval({at::minimum(p1, p2), at::maximum(p1, p2)}, shape, out_dtype(a), 4)};
  }
  // |x|^y = exp(y * log|x|); a negative base with an integral y gives either sign.
  at::Tensor zero = at::zeros_like(x.lo);
  Bounds ax{at::where(contains_zero(x), zero, at::minimum(x.lo.abs(), x.hi.abs())), at::maximum(x.lo.abs(), x.hi.abs())};
  Bounds lx{ax.lo.clamp_min(kFloat32MinSubnormal).log(), ax.hi.clamp_min(kFloat32MinSubnormal).log()};
  Bounds p = bounds_mul(lx, bounds_of(y));
  at::Tensor m_lo = at::where(ax.lo == 0, zero, p.lo.exp()), m_hi = p.hi.exp();
  at::Tensor neg = x.lo < 0;
  return {make_interval({at::where(neg, -m_hi, m_lo), m_hi}, shape, out_dtype(a), 8)};
}

// An integer base keeps its type: the float power is truncated back, and an INF or
// out-of-range power (0 to a negative power) becomes whatever the cast gives, so such
// results get the type's whole range.
std::vector<IntervalTensor> pow_interval(const AbstractContext& a) {
  std::vector<IntervalTensor> r = pow_interval_real(a);
  at::ScalarType t = out_dtype(a);
  if (at::isFloatingType(t) || t == at::kBool) return r;
  double lo = static_cast<double>(std::numeric_limits<int64_t>::min()), hi = static_cast<double>(std::numeric_limits<int64_t>::max());
  if (t == at::kInt) lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max();
  if (t == at::kShort) lo = std::numeric_limits<int16_t>::min(), hi = std::numeric_limits<int16_t>::max();
  if (t == at::kChar) lo = std::numeric_limits<int8_t>::min(), hi = std::numeric_limits<int8_t>::max();
  if (t == at::kByte) lo = 0, hi = 255;
  at::Tensor wild = (r[0].lo < lo).logical_or(r[0].hi > hi).logical_or(r[0].lo.isnan()).logical_or(r[0].hi.isnan());
  r[0].lo = at::where(wild, at::full_like(r[0].lo, lo), r[0].lo);
  r[0].hi = at::where(wild, at::full_like(r[0].hi, hi), r[0].hi);
  return r;
}

std::vector<HazardReport> pow_hazards(const AbstractContext& a) {
  const IntervalTensor &x = a.input(0), &y = a.input(1);
  bool y_integer = y.exact() && at::equal(y.value.to(at::kDouble).floor(), y.value.to(at::kDouble));
  if (!y_integer && (x.lo < 0).any().item<bool>())
    return {hazard("pow-negative-base", HazardKind::kForward, 0, "x < 0 and y not an integer")};
  if ((y.lo < 0).any().item<bool>() && contains_zero(x).any().item<bool>())
    return {hazard("pow-zero-negative-exponent", HazardKind::kForward, 0, "x == 0 and y < 0")};
  if ((y.lo < 1).logical_and(y.hi > 0).any().item<bool>() && contains_zero(x).any().item<bool>() && !y_integer)
    return {hazard("pow-zero-gradient", HazardKind::kGradient, 0, "x == 0 and 0 < y < 1")};
  return {};
}

// An exponent in [lo, hi] keeping `fits` (the exponent half of a Pow hazard): a few
// typical values, then the middle and the ends of the range.
std::optional<double> pick_exponent(double lo, double hi, bool (*fits)(float)) {
  const float inf = std::numeric_limits<float>::infinity();
  float mid = static_cast<float>(lo / 2 + hi / 2);
  for (float y : {0.5f, -1.f, -0.5f, mid, std::nextafter(mid, inf), std::nextafter(mid, -inf), static_cast<float>(lo),
                  static_cast<float>(hi), std::nextafter(static_cast<float>(lo), inf), std::nextafter(static_cast<float>(hi), -inf),
                  static_cast<float>(lo + 0.5), static_cast<float>(hi - 0.5)})
    if (y >= lo && y <= hi && fits(y)) return y;
  return std::nullopt;
}

CompleteFn exponent_where(bool (*fits)(float)) {
  return [fits](double lo, double hi) { return pick_exponent(lo, hi, fits); };
}

// The base's safe sets are the widest pow_hazards accepts: x >= 0 (a non-integer
// exponent), x away from 0 (a negative one), x > 0 (one in (0, 1)); |x|^y itself is
// the generic overflow check's.
std::vector<HazardFacet> pow_facets() {
  auto facet = [](const char* h, HazardKind k, SafeDomainFn safe, UnitTargetFn target, bool (*fits)(float)) {
    HazardFacet f{h, k, std::move(safe), "", {}, std::move(target)};
    f.completing_operand = 1;
    f.complete = exponent_where(fits);
    return f;
  };
  return {facet("pow-negative-base", HazardKind::kForward, domain_at_least(0, 0.0),
                target_fixed(0, Relation::kAtMost, -kFloat32MinSubnormal, "x < 0"), [](float y) { return std::floor(y) != y; }),
          facet("pow-zero-negative-exponent", HazardKind::kForward, domain_away_from_zero(0, kFloat32MinSubnormal),
                target_fixed(0, Relation::kEqual, 0, "x == 0"), [](float y) { return y < 0; }),
          facet("pow-zero-gradient", HazardKind::kGradient, domain_at_least(0, kFloat32MinSubnormal),
                target_fixed(0, Relation::kEqual, 0, "x == 0"), [](float y) { return y > 0 && y < 1 && std::floor(y) != y; })};
}

// Z3's IEEE operations in the context's rounding mode (the solver sets RNE).
z3::expr z3_add(const std::vector<z3::expr>& v) { return v[0] + v[1]; }
z3::expr z3_sub(const std::vector<z3::expr>& v) { return v[0] - v[1]; }
z3::expr z3_mul(const std::vector<z3::expr>& v) { return v[0] * v[1]; }
z3::expr z3_div(const std::vector<z3::expr>& v) { return v[0] / v[1]; }

std::vector<IntervalTensor> extremum_interval(const AbstractContext& a, bool is_max) {
  Bounds acc = bounds_of(a.input(0));
  for (size_t i = 1; i < a.num_inputs(); ++i) {
    Bounds b = bounds_of(a.input(i));
    acc = is_max ? Bounds{at::maximum(acc.lo, b.lo), at::maximum(acc.hi, b.hi)}
                 : Bounds{at::minimum(acc.lo, b.lo), at::minimum(acc.hi, b.hi)};
  }
  return {make_interval(acc, out_shape(a), out_dtype(a), 0)};
}

std::vector<IntervalTensor> sum_interval(const AbstractContext& a, bool mean) {
  Bounds acc = bounds_of(a.input(0));
  for (size_t i = 1; i < a.num_inputs(); ++i) acc = bounds_add(acc, bounds_of(a.input(i)));
  double n = static_cast<double>(a.num_inputs());
  if (mean) acc = {acc.lo / n, acc.hi / n};
  return {make_interval(acc, out_shape(a), out_dtype(a), static_cast<int>(a.num_inputs()) + (mean ? 1 : 0))};
}

// Comparisons decide where the ranges do not overlap, else {0, 1}.
IntervalFn compare(int which) {
  return [which](const AbstractContext& a) {
    const IntervalTensor &x = a.input(0), &y = a.input(1);
    at::Tensor sure, maybe;
    switch (which) {
      case 0: sure = (x.hi < y.lo); maybe = (x.lo < y.hi); break;             // Less
      case 1: sure = (x.hi <= y.lo); maybe = (x.lo <= y.hi); break;           // LessOrEqual
      case 2: sure = (x.lo > y.hi); maybe = (x.hi > y.lo); break;             // Greater
      case 3: sure = (x.lo >= y.hi); maybe = (x.hi >= y.lo); break;           // GreaterOrEqual
      default: sure = (x.lo == x.hi).logical_and(y.lo == y.hi).logical_and(x.lo == y.lo);  // Equal
               maybe = (x.lo <= y.hi).logical_and(y.lo <= x.hi);
    }
    return std::vector<IntervalTensor>{make_interval({sure.to(at::kDouble), maybe.to(at::kDouble)}, out_shape(a), at::kBool, 0)};
  };
}

std::vector<IntervalTensor> logic_interval(const AbstractContext& a, int which) {
  const IntervalTensor &x = a.input(0), &y = a.input(1);
  Bounds b;
  if (which == 0) b = {x.lo * y.lo, x.hi * y.hi};                                // And
  else if (which == 1) b = {at::maximum(x.lo, y.lo), at::maximum(x.hi, y.hi)};   // Or
  else b = {at::zeros_like(x.lo * y.lo), at::ones_like(x.lo * y.lo)};           // Xor
  return {make_interval(b, out_shape(a), at::kBool, 0)};
}

std::vector<IntervalTensor> where_interval(const AbstractContext& a) {
  const IntervalTensor &c = a.input(0), &x = a.input(1), &y = a.input(2);
  at::Tensor pick_x = c.lo >= 1, pick_y = c.hi <= 0;
  at::Tensor lo = at::where(pick_x, x.lo, at::where(pick_y, y.lo, at::minimum(x.lo, y.lo)));
  at::Tensor hi = at::where(pick_x, x.hi, at::where(pick_y, y.hi, at::maximum(x.hi, y.hi)));
  std::vector<int64_t> shape = broadcast_shape(c.shape, broadcast_shape(x.shape, y.shape));
  return {make_interval({lo, hi}, shape, x.dtype, 0)};
}

std::vector<IntervalTensor> prelu_interval(const AbstractContext& a) {
  const IntervalTensor &x = a.input(0), &s = a.input(1);
  at::Tensor zero = at::zeros_like(x.lo);
  Bounds neg = bounds_mul({at::minimum(x.lo, zero), at::minimum(x.hi, zero)}, bounds_of(s));
  Bounds pos{at::maximum(x.lo, zero), at::maximum(x.hi, zero)};
  at::Tensor lo = at::where(x.lo >= 0, pos.lo, at::where(x.hi <= 0, neg.lo, at::minimum(neg.lo, pos.lo)));
  at::Tensor hi = at::where(x.lo >= 0, pos.hi, at::where(x.hi <= 0, neg.hi, at::maximum(neg.hi, pos.hi)));
  return {make_interval({lo, hi}, x.shape, x.dtype, 1)};
}

// Symbolic bounds through Add, or Sub (`subtracts`: the second operand's rows negated),
// of two tensors of the output's shape, or of a per-channel constant.
SymbolicFn sum_symbolic(bool subtracts) {
  return [subtracts](BackSubstitution& b, const Node& n, const LinearRows& p) {
    if (n.inputs.size() != 2) return false;
    const IntervalTensor* out = b.interval(n.outputs[0]);
    if (!out) return false;
    int64_t channels = out->shape[1], rank = static_cast<int64_t>(out->shape.size());
    at::Tensor err = at::zeros({channels}, at::kDouble);
    std::vector<std::pair<std::string, LinearRows>> moves;
    std::vector<std::pair<at::Tensor, at::Tensor>> constants;  // added only once nothing can refuse
    for (int i = 0; i < 2; ++i) {
      const IntervalTensor* t = b.interval(n.inputs[i]);
      if (!t) return false;
      at::Tensor A = (i == 1 && subtracts) ? -p.A : p.A;
      if (t->exact()) {
        auto c = per_channel(*t, channels, rank);
        if (!c) return false;
        constants.emplace_back(A, *c);
        err = err + c->abs();
      } else {
        if (t->shape != out->shape) return false;
        moves.emplace_back(n.inputs[i], p.with_coefficients(A));
        err = err + channel_magnitude(*t);
      }
    }
    if (b.may_overflow(err)) return false;
    // A refusal above leaves the rows to be evaluated on the output: a constant added
    // before it would be counted twice.
    for (const auto& [A, c] : constants) b.add_constant(p, A, c);
    b.add_error(p, p.A, err * kFloat32UnitRoundoff + kFloat32MinSubnormal);
    for (auto& [name, q] : moves) b.pass_to(name, std::move(q));
    return true;
  };
}

// Symbolic bounds through Mul, or Div (`divides`: by its second operand only), by a
// per-channel (or scalar) constant.
SymbolicFn scale_symbolic(bool divides) {
  return [divides](BackSubstitution& b, const Node& n, const LinearRows& p) {
    if (n.inputs.size() != 2) return false;
    const IntervalTensor* out = b.interval(n.outputs[0]);
    int var = -1;
    for (int i = 0; i < 2; ++i)
      if (const IntervalTensor* t = b.interval(n.inputs[i]); t && !t->exact()) var = var < 0 ? i : 2;
    if (!out || var < 0 || var > 1 || (divides && var != 0)) return false;
    const IntervalTensor* x = b.interval(n.inputs[var]);
    if (x->shape != out->shape) return false;
    auto k = per_channel(*b.interval(n.inputs[1 - var]), out->shape[1], static_cast<int64_t>(out->shape.size()));
    if (!k || (divides && (*k == 0).any().item<bool>())) return false;
    at::Tensor f = divides ? 1.0 / *k : *k;
    if (b.may_overflow(f.abs() * channel_magnitude(*x))) return false;
    b.add_error(p, p.A, f.abs() * channel_magnitude(*x) * (2 * kFloat32UnitRoundoff + 0x1p-50) + kFloat32MinSubnormal);
    b.pass_to(n.inputs[var], p.with_coefficients(scale_channels(p.A, f)));
    return true;
  };
}

// Operand i's norm broadcast to the output: each of its elements repeats out / own times.
double broadcast_input_norm(const NormContext& c, size_t i) {
  if (!c.a.has_input(i) || c.outputs.empty() || !c.outputs[0].lo.defined()) return kNoNormBound;
  int64_t own = c.a.input(i).numel(), out = c.outputs[0].numel();
  if (out == 0) return 0;
  return own == 0 ? kNoNormBound : c.input(i) * std::sqrt(static_cast<double>(out) / static_cast<double>(own));
}

// ||x +- y|| <= ||x|| + ||y|| (broadcast), the sum rounded once.
double sum_norm(const NormContext& c) {
  return (broadcast_input_norm(c, 0) + broadcast_input_norm(c, 1)) * (1 + unit_roundoff(c.a.float_type));
}

// ||x * y|| <= ||x|| max|y| (either way round), the product rounded once; a product
// that underflows loses at most a smallest subnormal per element.
double product_norm(const NormContext& c) {
  double best = kNoNormBound;
  for (size_t i = 0; i < 2; ++i) {
    if (!c.a.has_input(1 - i) || !c.a.input(1 - i).is_float()) return kNoNormBound;
    const IntervalTensor& other = c.a.input(1 - i);
    double m = other.numel() == 0 ? 0 : std::max(std::abs(other.min()), std::abs(other.max()));
    double n = broadcast_input_norm(c, i) * m;
    if (!std::isnan(n)) best = std::min(best, n);
  }
  double tiny = kFloat32MinSubnormal * std::sqrt(static_cast<double>(c.outputs.empty() ? 0 : c.outputs[0].numel()));
  return best * (1 + unit_roundoff(c.a.float_type)) + tiny;
}

OpDef add_op() {
  OpDef d = with(binary("Add", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }), add_interval);
  d = with_norm(std::move(d), sum_norm);
  return takes_infinities(affine_op(with_symbolic(broadcasting(with_z3(std::move(d), z3_add)), sum_symbolic(false))));
}

OpDef sub_op() {
  OpDef d = with(binary("Sub", [](const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }), sub_interval);
  d = with_norm(std::move(d), sum_norm);
  return takes_infinities(affine_op(with_symbolic(broadcasting(with_z3(std::move(d), z3_sub)), sum_symbolic(true))));
}

OpDef mul_op() {
  OpDef d = with(binary("Mul", [](const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }), mul_interval);
  d = with_norm(std::move(d), product_norm);
  return takes_infinities(with_symbolic(broadcasting(with_z3(std::move(d), z3_mul)), scale_symbolic(false)));
}

// x / y: the divisor is input 1.
OpDef div_op() {
  OpDef d = with_z3(with_facets(with(binary("Div", divide), div_interval, div_hazards), div_facets()), z3_div);
  return with_quotient(with_symbolic(broadcasting(std::move(d)), scale_symbolic(true)), 0, 1);
}

NANGUARD_REGISTER_OPS({
    add_op(),
    sub_op(),
    mul_op(),
    div_op(),
    broadcasting(with_facets(with(binary("Pow", power), pow_interval, pow_hazards), pow_facets())),
    broadcasting(with_facets(with(OpDef{"Mod", lower_mod}, mod_interval, mod_hazards), mod_facets())),
    takes_infinities(with(variadic("Max", [](const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); }, false),
                          [](const AbstractContext& a) { return extremum_interval(a, true); })),
    takes_infinities(with(variadic("Min", [](const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); }, false),
                          [](const AbstractContext& a) { return extremum_interval(a, false); })),
    with(variadic("Sum", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }, false),
         [](const AbstractContext& a) { return sum_interval(a, false); }),
    with(variadic("Mean", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }, true),
         [](const AbstractContext& a) { return sum_interval(a, true); }),
    with(binary("Equal", [](const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }), compare(4)),
    with(binary("Less", [](const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }), compare(0)),
    with(binary("LessOrEqual", [](const at::Tensor& a, const at::Tensor& b) { return at::le(a, b); }), compare(1)),
    with(binary("Greater", [](const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }), compare(2)),
    with(binary("GreaterOrEqual", [](const at::Tensor& a, const at::Tensor& b) { return at::ge(a, b); }), compare(3)),
    with(binary("And", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); }),
         [](const AbstractContext& a) { return logic_interval(a, 0); }),
    with(binary("Or", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_or(a, b); }),
         [](const AbstractContext& a) { return logic_interval(a, 1); }),
    with(binary("Xor", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_xor(a, b); }),
         [](const AbstractContext& a) { return logic_interval(a, 2); }),
    OpDef{"BitShift", lower_bitshift},
    takes_infinities(with(OpDef{"Where", lower_where}, where_interval)),
    with(OpDef{"PRelu", lower_prelu}, prelu_interval),
});

}  // namespace
}  // namespace nanguard
