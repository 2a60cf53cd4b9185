// Elementwise math: Abs, Neg, Exp, Log, Sqrt, Reciprocal, rounding, trigonometric
// and hyperbolic functions, Erf, Not, IsNaN, IsInf, Identity.
// Lowerings are the ATen functions of the same meaning; ATen follows IEEE (log(0) =
// -inf, log(-1) = NaN, sqrt(-1) = NaN), which is what ONNX specifies. Transfers work
// on float64 bounds; `ulps` covers the float32 rounding of the result (4 for the
// vectorised transcendental kernels, 1 for correctly rounded ops, 0 for exact ones).
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <fmt/core.h>
#include <z3++.h>

#include "ops/float_thresholds.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/type_limit.h"
#include "ops/symbolic_form.h"

namespace nanguard {
namespace {

using F = at::Tensor (*)(const at::Tensor&);
constexpr double kInf = std::numeric_limits<double>::infinity();
// The smallest positive float32: the safe state of a guarded operand.
constexpr double kTiny = kFloat32MinSubnormal;

OpDef unary(const char* op_type, F f, Monotone m = Monotone::kNone, int ulps = 0) {
  OpDef d{op_type, [f](const OpContext& ctx) { return std::vector<at::Tensor>{f(ctx.input(0))}; }};
  d.monotone = m;
  d.ulps = ulps;
  return d;
}

// An increasing function applied to the operand clamped to [lo_min, hi_max]: the
// analysis continues on the safe state once the hazard outside it is reported.
IntervalFn increasing_on(F f, double lo_min, double hi_max, int ulps, double out_lo = -kInf, double out_hi = kInf) {
  return [=](const AbstractContext& a) {
    const IntervalTensor& x = a.input(0);
    at::Tensor lo = f(x.lo.clamp(lo_min, hi_max)), hi = f(x.hi.clamp(lo_min, hi_max));
    IntervalTensor r = round_out(IntervalTensor::of_bounds(lo, hi, x.shape, x.dtype), ulps);
    r.lo = r.lo.clamp(out_lo, out_hi);
    r.hi = r.hi.clamp(out_lo, out_hi);
    return std::vector<IntervalTensor>{r};
  };
}

HazardReport report(const char* hazard, HazardKind kind, const std::string& cond, bool definite) {
  return HazardReport{hazard, kind, 0, cond, definite};
}

std::vector<HazardReport> log_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if ((x.lo <= 0).any().item<bool>())
    return {report("log-nonpositive", HazardKind::kForward, "x <= 0", (x.hi <= 0).all().item<bool>())};
  // d log(x)/dx = 1/x overflows x's type below 1/max (float32's denormals; float16
  // from 1.53e-5: its gradient has x's type).
  double limit = input_limit(a, 0);
  if ((x.lo < 1.0 / limit).any().item<bool>())
    return {report("log-gradient-overflow", HazardKind::kGradient, fmt::format("0 < x < {:.3g}", 1.0 / limit), false)};
  return {};
}

// exp rounds to exactly 0 far below the smallest subnormal's log (-103.28; from
// x <= -110 the true value, under 1.8e-48, is a thousandth of that subnormal, so
// any exp accurate to an ulp returns 0): sums of such terms are then surely 0.
std::vector<IntervalTensor> exp_interval(const AbstractContext& a) {
  auto out = increasing_on([](const at::Tensor& x) { return x.exp(); }, -kInf, kInf, 4, 0.0)(a);
  const IntervalTensor& x = a.input(0);
  out[0].hi = at::where(x.hi <= -110.0, at::zeros_like(out[0].hi), out[0].hi);
  return out;
}

std::vector<HazardReport> exp_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if ((x.hi >= kExpOverflowFloat32).any().item<bool>())
    return {report("exp-overflow", HazardKind::kForward, "x >= 88.72283935546875", (x.lo >= kExpOverflowFloat32).all().item<bool>())};
  return {};
}

std::vector<HazardReport> sqrt_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if ((x.lo < 0).any().item<bool>())
    return {report("sqrt-negative", HazardKind::kForward, "x < 0", (x.hi < 0).all().item<bool>())};
  // d sqrt(x)/dx = 0.5/sqrt(x) is infinite at x == 0: finite value, infinite gradient.
  if ((x.lo <= 0).any().item<bool>())
    return {report("sqrt-zero-gradient", HazardKind::kGradient, "x == 0", false)};
  return {};
}

// ATen's reciprocal backward is -g * y * y with y = 1/x: y * y overflows float32 once
// |x| < 1/sqrt(FLT_MAX) = 5.42e-20 (with a margin of a few ulps either way).
// The least |x| whose gradient stays finite in a type of largest value `limit`.
double recip_grad_safe(double limit) { return float32_up(1.0 / std::sqrt(limit) * (1 + 1e-6)); }

std::vector<HazardReport> reciprocal_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if (contains_zero(x).any().item<bool>())
    return {report("div-by-zero", HazardKind::kForward, "x == 0", (x.lo == 0).logical_and(x.hi == 0).all().item<bool>())};
  at::Tensor mag = at::minimum(x.lo.abs(), x.hi.abs());
  if ((mag < 1.0 / kFloat32Max).any().item<bool>())
    return {report("div-overflow", HazardKind::kForward, "|x| < 2.94e-39", false)};
  double grad_safe = recip_grad_safe(input_limit(a, 0));
  if ((mag < grad_safe).any().item<bool>())
    return {report("reciprocal-gradient-overflow", HazardKind::kGradient,
                   fmt::format("|x| < {:.3g}: the gradient -1/x^2 overflows", grad_safe), false)};
  return {};
}

std::vector<IntervalTensor> reciprocal_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if (contains_zero(x).any().item<bool>())
    return {IntervalTensor::top(x.shape, x.dtype)};
  return {round_out(IntervalTensor::of_bounds(x.hi.reciprocal(), x.lo.reciprocal(), x.shape, x.dtype), 1)};
}

// A domain [lo, hi] outside which the op returns NaN; at the ends the derivative is
// infinite (asin/acos at +-1) or the value itself is (atanh at +-1).
HazardFn domain_hazards(const char* hazard, double lo, double hi, bool open, const char* grad_hazard) {
  return [=](const AbstractContext& a) -> std::vector<HazardReport> {
    const IntervalTensor& x = a.input(0);
    at::Tensor out = open ? (x.lo <= lo).logical_or(x.hi >= hi) : (x.lo < lo).logical_or(x.hi > hi);
    if (out.any().item<bool>())
      return {report(hazard, HazardKind::kForward, fmt::format("x outside {}{}, {}{}", open ? "(" : "[", lo, hi, open ? ")" : "]"), false)};
    if (grad_hazard && (x.lo <= lo).logical_or(x.hi >= hi).any().item<bool>())
      return {report(grad_hazard, HazardKind::kGradient, fmt::format("x == {} or x == {}", lo, hi), false)};
    return {};
  };
}

// sinh and cosh overflow float32 once |x| reaches exp's threshold: ATen's float32
// kernels go through exp(|x|) (measured: sinh(89.0f) = inf though sinh(89) < FLT_MAX).
HazardFn hyperbolic_overflow(const char* hazard) {
  return [=](const AbstractContext& a) -> std::vector<HazardReport> {
    const IntervalTensor& x = a.input(0);
    at::Tensor m = at::maximum(x.lo.abs(), x.hi.abs());
    if ((m >= kExpOverflowFloat32).any().item<bool>()) return {report(hazard, HazardKind::kForward, "|x| >= 88.72283935546875", false)};
    return {};
  };
}

std::vector<IntervalTensor> abs_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  at::Tensor lo = at::where(x.lo > 0, x.lo, at::where(x.hi < 0, -x.hi, at::zeros_like(x.lo)));
  return {IntervalTensor::of_bounds(lo, at::maximum(x.lo.abs(), x.hi.abs()), x.shape, x.dtype)};
}

std::vector<IntervalTensor> cosh_interval(const AbstractContext& a) {
  std::vector<IntervalTensor> m = abs_interval(a);
  return {round_out(IntervalTensor::of_bounds(m[0].lo.cosh(), m[0].hi.cosh(), m[0].shape, m[0].dtype), 4)};
}

std::vector<IntervalTensor> bounded_interval(const AbstractContext& a, double lo, double hi) {
  return {IntervalTensor::uniform(a.input(0).shape, a.input(0).dtype, lo, hi)};
}

// tan is increasing on each branch (-pi/2, pi/2) + k*pi; outside one branch, unbounded.
std::vector<IntervalTensor> tan_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  at::Tensor k_lo = at::floor((x.lo + M_PI / 2) / M_PI), k_hi = at::floor((x.hi + M_PI / 2) / M_PI);
  at::Tensor same = k_lo == k_hi;
  at::Tensor lo = at::where(same, x.lo.tan(), at::full_like(x.lo, -kInf));
  at::Tensor hi = at::where(same, x.hi.tan(), at::full_like(x.hi, kInf));
  return {round_out(IntervalTensor::of_bounds(lo, hi, x.shape, x.dtype), 4)};
}

std::vector<IntervalTensor> not_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  return {IntervalTensor::of_bounds(1 - x.hi, 1 - x.lo, x.shape, at::kBool)};
}

// The analysis runs on the safe state (no NaN/INF upstream; any was reported), so
// IsNaN is false, and IsInf is false wherever the bounds are finite.
std::vector<IntervalTensor> isnan_interval(const AbstractContext& a) { return {IntervalTensor::uniform(a.input(0).shape, at::kBool, 0, 0)}; }
std::vector<IntervalTensor> isinf_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  at::Tensor may = x.lo.isinf().logical_or(x.hi.isinf()).to(at::kDouble);
  return {IntervalTensor::of_bounds(at::zeros_like(may), may, x.shape, at::kBool)};
}

std::vector<at::Tensor> lower_is_inf(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  bool pos = attr_int(ctx.node, "detect_positive", 1) != 0;
  bool neg = attr_int(ctx.node, "detect_negative", 1) != 0;
  at::Tensor inf = x.isinf();
  if (!pos) inf = inf.logical_and(x < 0);
  if (!neg) inf = inf.logical_and(x > 0);
  return {inf};
}

// Facets. The safe bounds are the float32 values the hazard conditions above accept:
// Log is finite with a finite gradient from 1/FLT_MAX up (wider than RANUM's 1e-37),
// Exp below its float32 overflow threshold (not RANUM's 38).
// 1/x (and log's gradient) is finite in a type of largest value `limit` from here up.
double reciprocal_safe(double limit) { return float32_up(1.0 / limit); }
const double kExpSafe = float32_below(kExpOverflowFloat32);

using R = Relation;

// In a half type the gradient 1/x overflows from x < 1/max (1.53e-5 in float16), far
// above float32's subnormals: the safe bound and the target follow the type.
std::optional<SafeDomain> log_gradient_domain(const Node&, const std::vector<Range>&, double type_max) {
  double lo = reciprocal_safe(type_max);
  return SafeDomain{0, lo, kInf, 0, fmt::format("x >= {:.9g}", lo)};
}

Result<UnitTarget> log_gradient_target(const Node& node, const std::vector<Range>& r, double type_max, at::Device d) {
  if (type_max == kFloat32Max) return threshold_target(Threshold::kLogGradient, 0, R::kAtMost, "x <= {:.9g}")(node, r, type_max, d);
  double t = float32_down(1.0 / type_max * (1 - 1e-3));
  return UnitTarget{0, R::kAtMost, t, fmt::format("x <= {:.9g}", t)};
}

std::vector<HazardFacet> log_facets() {
  return {HazardFacet{"log-nonpositive", HazardKind::kForward, domain_at_least(0, kTiny), "", {"log-softmax", "log-sigmoid", "log-one-minus-sigmoid", "log-sum-exp", "log-one-plus-exp"},
                      threshold_target(Threshold::kLogNonFinite, 0, R::kAtMost, "x <= {:.9g}")},
          HazardFacet{"log-gradient-overflow", HazardKind::kGradient, log_gradient_domain, "", {"log-softmax", "log-sigmoid", "log-one-minus-sigmoid", "log-sum-exp", "log-one-plus-exp"},
                      log_gradient_target}};
}

// sqrt's gradient is infinite at 0 only, or up to a measured magnitude where the
// backend flushes denormals.
Result<UnitTarget> sqrt_gradient_target(const Node&, const std::vector<Range>&, double, at::Device device) {
  Result<float> t = float_threshold(Threshold::kSqrtGradient, device);
  if (!t.ok()) return t.status();
  if (*t == 0) return UnitTarget{0, R::kEqual, 0, "x == 0"};
  return UnitTarget{0, R::kMagnitudeAtMost, *t, fmt::format("|x| <= {:.9g}", *t)};
}

std::vector<HazardFacet> sqrt_facets() {
  return {HazardFacet{"sqrt-negative", HazardKind::kForward, domain_at_least(0, 0.0), "", {},
                      threshold_target(Threshold::kSqrtNaN, 0, R::kAtMost, "x <= {:.9g}")},
          HazardFacet{"sqrt-zero-gradient", HazardKind::kGradient, domain_at_least(0, kTiny), "", {"sqrt-eps"}, sqrt_gradient_target}};
}

// 1/x is finite exactly when |x| >= 1/max of x's type (1/FLT_MAX in float32), and its
// gradient -1/x^2 from 1/sqrt(max) (5.42e-20; 3.91e-3 in float16).
std::optional<SafeDomain> reciprocal_domain(const Node&, const std::vector<Range>&, double type_max) {
  double m = reciprocal_safe(type_max);
  return SafeDomain{0, -kInf, kInf, m, fmt::format("|x| >= {:.9g}", m)};
}

std::optional<SafeDomain> reciprocal_gradient_domain(const Node&, const std::vector<Range>&, double type_max) {
  double m = recip_grad_safe(type_max);
  return SafeDomain{0, -kInf, kInf, m, fmt::format("|x| >= {:.9g}", m)};
}

Result<UnitTarget> reciprocal_gradient_target(const Node&, const std::vector<Range>&, double type_max, at::Device) {
  // Float32's fails within a few ulps; a half operand lands on its grid, so a wider margin.
  double t = float32_down(1.0 / std::sqrt(type_max) * (1 - (type_max == kFloat32Max ? 1e-6 : 1e-3)));
  return UnitTarget{0, R::kMagnitudeAtMost, t, fmt::format("|x| <= {:.3g}", t)};
}

std::vector<HazardFacet> reciprocal_facets() {
  return {HazardFacet{"div-by-zero", HazardKind::kForward, reciprocal_domain, "", {}, target_fixed(0, R::kEqual, 0, "x == 0")},
          HazardFacet{"div-overflow", HazardKind::kForward, reciprocal_domain, "", {},
                      threshold_target(Threshold::kReciprocalOverflow, 0, R::kMagnitudeAtMost, "|x| <= {:.9g}")},
          HazardFacet{"reciprocal-gradient-overflow", HazardKind::kGradient, reciprocal_gradient_domain, "",
                      {}, reciprocal_gradient_target}};
}

// asin/acos: NaN outside [-1, 1], an infinite derivative at +-1.
std::vector<HazardFacet> arc_facets(const char* domain, Threshold nan_from, const char* gradient, Threshold grad_from) {
  double in = float32_below(1.0);
  return {HazardFacet{domain, HazardKind::kForward, domain_within(0, -1, 1), "", {"clip-unit-interval"},
                      threshold_target(nan_from, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}")},
          HazardFacet{gradient, HazardKind::kGradient, domain_within(0, -in, in), "", {},
                      threshold_target(grad_from, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}")}};
}

std::vector<HazardFacet> acosh_facets() {
  return {HazardFacet{"acosh-domain", HazardKind::kForward, domain_at_least(0, 1), "", {},
                      threshold_target(Threshold::kAcoshDomain, 0, R::kAtMost, "x <= {:.9g}")},
          HazardFacet{"acosh-gradient", HazardKind::kGradient, domain_at_least(0, float32_above(1.0)), "", {},
                      threshold_target(Threshold::kAcoshGradient, 0, R::kAtMost, "x <= {:.9g}")}};
}

// atanh's domain is open: +-1 itself is infinite.
std::vector<HazardFacet> atanh_facets() {
  double in = float32_below(1.0);
  return {HazardFacet{"atanh-domain", HazardKind::kForward, domain_within(0, -in, in), "", {},
                      threshold_target(Threshold::kAtanhDomain, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}")}};
}

// sinh/cosh overflow where exp does, in either sign.
std::vector<HazardFacet> hyperbolic_facets(const char* hazard, Threshold from) {
  return {HazardFacet{hazard, HazardKind::kForward, domain_within(0, -kExpSafe, kExpSafe), "", {},
                      threshold_target(from, 0, R::kMagnitudeAtLeast, "|x| >= {:.9g}")}};
}

z3::expr z3_sqrt(const std::vector<z3::expr>& v) { return z3::sqrt(v[0], v[0].ctx().fpa_rounding_mode()); }
z3::expr z3_reciprocal(const std::vector<z3::expr>& v) { return v[0].ctx().fpa_val(1.0f) / v[0]; }

using T = const at::Tensor&;
const double kAtanhEdge = 1.0 - 5.960464477539063e-08;  // the float32 just below 1
const double kHalfPiUp = 1.5707963705062866;  // float32(pi/2), which is above pi/2

// Symbolic bounds pass through Identity unchanged.
bool identity_symbolic(BackSubstitution& b, const Node& n, const LinearRows& p) {
  b.pass_to(n.inputs[0], p);
  return true;
}

// ONNX Round is round-half-to-even, as is at::round.
NANGUARD_REGISTER_OPS({
    with(unary("Abs", [](T x) { return x.abs(); }), abs_interval),
    unary("Neg", [](T x) { return x.neg(); }, Monotone::kDecreasing),
    with_facets(with(unary("Exp", [](T x) { return x.exp(); }), exp_interval, exp_hazards),
                {HazardFacet{"exp-overflow", HazardKind::kForward, domain_at_most(0, kExpSafe), "", {},
                             threshold_target(Threshold::kExpOverflow, 0, R::kAtLeast, "x >= {:.9g}")}}),
    with_facets(with(unary("Log", [](T x) { return x.log(); }), increasing_on([](T x) { return x.log(); }, kTiny, kInf, 4), log_hazards),
                log_facets()),
    with_z3(with_facets(with(unary("Sqrt", [](T x) { return x.sqrt(); }), increasing_on([](T x) { return x.sqrt(); }, 0.0, kInf, 1, 0.0), sqrt_hazards),
                        sqrt_facets()), z3_sqrt),
    with_quotient(with_z3(with_facets(with(unary("Reciprocal", [](T x) { return x.reciprocal(); }), reciprocal_interval,
                                           reciprocal_hazards),
                                      reciprocal_facets()), z3_reciprocal),
                  -1, 0),  // 1 / x
    unary("Floor", [](T x) { return x.floor(); }, Monotone::kIncreasing),
    unary("Ceil", [](T x) { return x.ceil(); }, Monotone::kIncreasing),
    unary("Round", [](T x) { return x.round(); }, Monotone::kIncreasing),
    unary("Sign", [](T x) { return x.sign(); }, Monotone::kIncreasing),
    with(unary("Sin", [](T x) { return x.sin(); }), [](const AbstractContext& a) { return bounded_interval(a, -1, 1); }),
    with(unary("Cos", [](T x) { return x.cos(); }), [](const AbstractContext& a) { return bounded_interval(a, -1, 1); }),
    with(unary("Tan", [](T x) { return x.tan(); }), tan_interval),
    with_facets(with(unary("Asin", [](T x) { return x.asin(); }), increasing_on([](T x) { return x.asin(); }, -1, 1, 4, -kHalfPiUp, kHalfPiUp),
                     domain_hazards("asin-domain", -1, 1, false, "asin-gradient")),
                arc_facets("asin-domain", Threshold::kAsinDomain, "asin-gradient", Threshold::kAsinGradient)),
    with_facets(with(unary("Acos", [](T x) { return x.acos(); }), [](const AbstractContext& a) {
                  const IntervalTensor& x = a.input(0);
                  auto r = IntervalTensor::of_bounds(x.hi.clamp(-1, 1).acos(), x.lo.clamp(-1, 1).acos(), x.shape, x.dtype);
                  return std::vector<IntervalTensor>{round_out(r, 4)};
                }, domain_hazards("acos-domain", -1, 1, false, "acos-gradient")),
                arc_facets("acos-domain", Threshold::kAcosDomain, "acos-gradient", Threshold::kAcosGradient)),
    unary("Atan", [](T x) { return x.atan(); }, Monotone::kIncreasing, 4),
    with_facets(with(unary("Sinh", [](T x) { return x.sinh(); }), increasing_on([](T x) { return x.sinh(); }, -kInf, kInf, 4),
                     hyperbolic_overflow("sinh-overflow")),
                hyperbolic_facets("sinh-overflow", Threshold::kSinhOverflow)),
    with_facets(with(unary("Cosh", [](T x) { return x.cosh(); }), cosh_interval, hyperbolic_overflow("cosh-overflow")),
                hyperbolic_facets("cosh-overflow", Threshold::kCoshOverflow)),
    with(unary("Tanh", [](T x) { return x.tanh(); }), increasing_on([](T x) { return x.tanh(); }, -kInf, kInf, 4, -1, 1)),
    unary("Asinh", [](T x) { return x.asinh(); }, Monotone::kIncreasing, 4),
    with_facets(with(unary("Acosh", [](T x) { return x.acosh(); }), increasing_on([](T x) { return x.acosh(); }, 1, kInf, 4, 0.0),
                     domain_hazards("acosh-domain", 1, kInf, false, "acosh-gradient")),
                acosh_facets()),
    with_facets(with(unary("Atanh", [](T x) { return x.atanh(); }), increasing_on([](T x) { return x.atanh(); }, -kAtanhEdge, kAtanhEdge, 4),
                     domain_hazards("atanh-domain", -1, 1, true, nullptr)),
                atanh_facets()),
    with(unary("Erf", [](T x) { return x.erf(); }), increasing_on([](T x) { return x.erf(); }, -kInf, kInf, 4, -1, 1)),
    with(unary("Not", [](T x) { return x.logical_not(); }), not_interval),
    with(unary("IsNaN", [](T x) { return x.isnan(); }), isnan_interval),
    with_values(with_norm(with_symbolic(unary("Identity", [](T x) { return x; }, Monotone::kDataMovement), identity_symbolic),
                          norm_preserved),
                [](const OpContext& c) { return std::vector<OpValue>{c.value(0)}; }),
    with(OpDef{"IsInf", lower_is_inf}, isinf_interval),
});

}  // namespace
}  // namespace nanguard
