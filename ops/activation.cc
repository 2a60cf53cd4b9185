// Activations: Relu, LeakyRelu, Elu, Selu, Celu, Sigmoid, HardSigmoid, HardSwish,
// Softplus, Softsign, ThresholdedRelu, Mish, Clip, Shrink.
// Each lowering writes the ONNX formula with differentiable ATen ops. Where ONNX's
// reference implementation (numpy) and a fused ATen kernel differ at NaN/INF, the
// reference wins; the decision is written next to the op. Gelu (opset 20) is not here.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <utility>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/float_thresholds.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/symbolic_form.h"

namespace nanguard {
namespace {

using Tensors = std::vector<at::Tensor>;

float fattr(const OpContext& ctx, const char* name, float fallback) {
  return attr_float(ctx.node, name, fallback);
}

// NaN stays NaN (at::relu is clamp_min, which propagates NaN like np.maximum).
// Integer Relu (opset 14) stays integer.
Tensors lower_relu(const OpContext& ctx) { return {at::relu(ctx.input(0))}; }

Tensors lower_leaky_relu(const OpContext& ctx) {
  return {at::leaky_relu(ctx.input(0), fattr(ctx, "alpha", 0.01f))};
}

// Elu: x for x >= 0, alpha * (exp(x) - 1) otherwise; at::elu uses expm1 (more
// accurate near 0, the same float32 value elsewhere).
Tensors lower_elu(const OpContext& ctx) { return {at::elu(ctx.input(0), fattr(ctx, "alpha", 1.f))}; }

// Selu: gamma * x for x > 0, gamma * alpha * (exp(x) - 1) otherwise.
Tensors lower_selu(const OpContext& ctx) {
  float alpha = fattr(ctx, "alpha", 1.67326319217681884765625f);
  float gamma = fattr(ctx, "gamma", 1.05070102214813232421875f);
  return {at::elu(ctx.input(0), alpha, gamma)};
}

// Celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1)). alpha = 0 divides by zero
// in the spec's formula; at::celu would do the same, so it is passed through.
Tensors lower_celu(const OpContext& ctx) { return {at::celu(ctx.input(0), fattr(ctx, "alpha", 1.f))}; }

Tensors lower_sigmoid(const OpContext& ctx) { return {at::sigmoid(ctx.input(0))}; }

// max(0, min(1, alpha * x + beta)); clamp keeps NaN as NaN, as np.clip does.
Tensors lower_hard_sigmoid(const OpContext& ctx) {
  float alpha = fattr(ctx, "alpha", 0.2f), beta = fattr(ctx, "beta", 0.5f);
  return {at::clamp(ctx.input(0) * alpha + beta, 0.0, 1.0)};
}

// HardSwish = x * HardSigmoid<alpha = 1/6, beta = 0.5>(x), written as ONNX defines
// it rather than at::hardswish's x * relu6(x + 3) / 6 (a different rounding).
Tensors lower_hard_swish(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  return {x * at::clamp(x * (1.0f / 6.0f) + 0.5f, 0.0, 1.0)};
}

// Softplus computes ln(exp(x) + 1) the stable way, max(x, 0) + log1p(exp(-|x|)), as
// PyTorch's F.softplus (whose export this node is) and ONNX Runtime do: the ONNX op is
// the developers' fix for a hand-written log(1 + exp(x)), which exports as Exp, Add,
// Log nodes and is caught at its Exp. It never overflows for finite x.
Tensors lower_softplus(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  return {x.clamp_min(0) + at::log1p(at::exp(-x.abs()))};
}

Tensors lower_softsign(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  return {x / (x.abs() + 1)};
}

// x for x > alpha, else 0. NaN stays NaN: ONNX's reference is np.clip(x, alpha, inf)
// with alpha mapped to 0, and at::threshold (torch.nn.Threshold) also keeps NaN.
Tensors lower_thresholded_relu(const OpContext& ctx) {
  return {at::threshold(ctx.input(0), fattr(ctx, "alpha", 1.f), 0)};
}

// Mish (opset 18): x * tanh(softplus(x)). Its output is bounded for every finite x,
// so the stable at::mish is used (the naive softplus would give a NaN gradient that
// the exporters' Mish never has).
Tensors lower_mish(const OpContext& ctx) { return {at::mish(ctx.input(0))}; }

// Clip: before opset 11 min/max are attributes (defaulting to no bound),
// from 11 optional scalar inputs (any numeric type from 12). NaN stays NaN and
// min > max gives max everywhere, as np.clip does; at::clamp does both.
Tensors lower_clip(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  if (ctx.opset < 11) {
    // An absent bound is the type's own limit (not float's, which would clip doubles).
    c10::optional<at::Scalar> lo, hi;
    if (has_attr(ctx.node, "min")) lo = attr_float(ctx.node, "min");
    if (has_attr(ctx.node, "max")) hi = attr_float(ctx.node, "max");
    if (!lo && !hi) return {x};
    return {at::clamp(x, lo, hi)};
  }
  c10::optional<at::Tensor> lo, hi;
  if (ctx.has_input(1)) lo = ctx.input(1).to(x.scalar_type()).reshape({});
  if (ctx.has_input(2)) hi = ctx.input(2).to(x.scalar_type()).reshape({});
  if (!lo && !hi) return {x};
  return {at::clamp(x, lo, hi)};
}

// Shrink: x + bias for x < -lambd, x - bias for x > lambd, 0 otherwise. NaN gives 0,
// as in ONNX's reference (np.where on false comparisons). Integer inputs compute in
// double and cast back (the output type is the input type).
Tensors lower_shrink(const OpContext& ctx) {
  const at::Tensor& in = ctx.input(0);
  double lambd = fattr(ctx, "lambd", 0.5f), bias = fattr(ctx, "bias", 0.f);
  bool integral = !at::isFloatingType(in.scalar_type());
  at::Tensor x = integral ? in.to(at::kDouble) : in;
  at::Tensor y = at::where(x < -lambd, x + bias, at::where(x > lambd, x - bias, at::zeros_like(x)));
  return {integral ? y.to(in.scalar_type()) : y};
}

// ---- abstract semantics ------------------------------------------------------
// Transfers evaluate each function in float64 on the bounds (clamped to the finite
// values the input type holds: the analysis runs on the safe state), take the
// extremes at the ends and at the critical points where a function turns, then widen
// by the float32 rounding of the kernel: `rel` ulps of the result plus an absolute
// term where the kernel's error is not relative to its result (cancellation, a
// result flushed to 0, log(1 + tiny) = 0).

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kU = 5.9604644775390625e-08;  // 2^-24: float32 unit roundoff
constexpr double kTiny = kFloat32MinSubnormal;
using Fn = std::function<at::Tensor(const at::Tensor&)>;
using Intervals = std::vector<IntervalTensor>;

double finite_max(at::ScalarType t) { return t == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max; }

// lo and hi broadcast to one cell shape, each within the type's finite values.
std::pair<at::Tensor, at::Tensor> finite_bounds(const IntervalTensor& x) {
  double m = finite_max(x.dtype);
  auto b = at::broadcast_tensors({x.lo, x.hi});
  return {b[0].clamp(-m, m), b[1].clamp(-m, m)};
}

// lo - |lo| * rel - abs, hi + |hi| * rel + abs (abs may be a tensor).
IntervalTensor widen(IntervalTensor t, double rel, const at::Tensor& abs) {
  t.lo = t.lo - t.lo.abs() * rel - abs;
  t.hi = t.hi + t.hi.abs() * rel + abs;
  return t;
}
IntervalTensor widen(IntervalTensor t, double rel, double abs) {
  return widen(std::move(t), rel, at::scalar_tensor(abs, at::kDouble));
}

IntervalTensor clamp_bounds(IntervalTensor t, double lo, double hi) {
  t.lo = t.lo.clamp(lo, hi);
  t.hi = t.hi.clamp(lo, hi);
  return t;
}

// f is monotone between consecutive `turns`: its range on [lo, hi] is spanned by
// f(lo), f(hi) and f(c) at every turning point c inside. Real-arithmetic bounds.
IntervalTensor piecewise(const IntervalTensor& x, const Fn& f, const std::vector<double>& turns) {
  auto [lo, hi] = finite_bounds(x);
  at::Tensor a = f(lo), b = f(hi);
  at::Tensor out_lo = at::minimum(a, b), out_hi = at::maximum(a, b);
  for (double c : turns) {
    at::Tensor inside = (lo <= c).logical_and(hi >= c);
    at::Tensor fc = f(at::full_like(lo, c));
    out_lo = at::where(inside, at::minimum(out_lo, fc), out_lo);
    out_hi = at::where(inside, at::maximum(out_hi, fc), out_hi);
  }
  return IntervalTensor::of_bounds(out_lo, out_hi, x.shape, x.dtype);
}

HazardReport hazard(const char* name, const std::string& cond, bool definite) {
  return HazardReport{name, HazardKind::kForward, 0, cond, definite};
}

double attr_or(const AbstractContext& a, const char* name, float fallback) { return attr_float(a.node, name, fallback); }

Intervals relu_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  return {IntervalTensor::of_bounds(x.lo.clamp_min(0.0), x.hi.clamp_min(0.0), x.shape, x.dtype)};
}

Intervals leaky_relu_interval(const AbstractContext& a) {
  double alpha = attr_or(a, "alpha", 0.01f);
  Fn f = [alpha](const at::Tensor& t) { return at::where(t >= 0, t, t * alpha); };
  return {round_out(piecewise(a.input(0), f, {0.0}), 1)};
}

// alpha * (exp(x) - 1) * scale below 0. ATen's kernels may compute exp(x) - 1 rather
// than expm1 (measured: celu(-0.001, alpha=-2) is 1.7e-4 relative off), so besides a
// few ulps of the result the error is absolute: 6 ulps of |alpha scale| max(1, e^z).
Intervals elu_like(const AbstractContext& a, double alpha, double scale, int ulps) {
  Fn f = [=](const at::Tensor& t) { return at::where(t > 0, t * scale, at::expm1(t) * (alpha * scale)); };
  return {widen(piecewise(a.input(0), f, {0.0}), ulps * kFloat32Ulp, std::abs(alpha * scale) * 6 * kFloat32Ulp + kTiny)};
}

Intervals elu_interval(const AbstractContext& a) { return elu_like(a, attr_or(a, "alpha", 1.f), 1.0, 5); }
Intervals selu_interval(const AbstractContext& a) {
  return elu_like(a, attr_or(a, "alpha", 1.67326319217681884765625f), attr_or(a, "gamma", 1.05070102214813232421875f), 7);
}

// Celu = elu(x, alpha, input_scale = 1/alpha): increasing for alpha != 0. alpha == 0
// cannot run (a crash hazard); relu bounds stand in. alpha < 0 puts x / alpha > 0
// into exp, which overflows: the safe state keeps x / alpha < 88.72.
Intervals celu_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  double alpha = attr_or(a, "alpha", 1.f);
  if (alpha == 0) return relu_interval(a);
  IntervalTensor xs = x;
  double rel = 7 * kFloat32Ulp;
  if (alpha < 0) {
    xs.lo = x.lo.clamp_min(alpha * kExpOverflowFloat32);
    xs.hi = x.hi.clamp_min(alpha * kExpOverflowFloat32);
    // The rounded argument x * (1/alpha) carries 2u relative error into exp.
    rel += 2 * kU * std::min(1e4, std::max(xs.min() < 0 ? -xs.min() : 0.0, 0.0) / -alpha);
  }
  Fn f = [alpha](const at::Tensor& t) { return t.clamp_min(0.0) + (at::expm1(t / alpha) * alpha).clamp_max(0.0); };
  // exp(z) - 1 in the kernel: absolute error 6 ulps of |alpha| max(1, e^z).
  double z_max = alpha < 0 ? std::max(0.0, -xs.min()) / -alpha : 0.0;
  double abs = std::abs(alpha) * 6 * kFloat32Ulp * std::max(1.0, std::exp(std::min(z_max, kExpOverflowFloat32))) + 7 * kTiny;
  return {widen(piecewise(xs, f, {0.0}), rel, abs)};
}

std::vector<HazardReport> celu_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  double alpha = attr_or(a, "alpha", 1.f);
  // ONNX's formula divides by alpha; ATen refuses alpha == 0 outright (it raises).
  if (alpha == 0) return {HazardReport{"celu-zero-alpha", HazardKind::kCrash, 0, "alpha == 0 (x / alpha)", true}};
  // exp(x / alpha) overflows from 88.72; the rounded quotient may reach it a little early.
  double edge = alpha * kExpOverflowFloat32 * (1 - 4 * kU);
  if (alpha < 0 && (x.lo <= edge).any().item<bool>())
    return {hazard("exp-overflow", "x / alpha >= 88.72283935546875", (x.hi <= alpha * kExpOverflowFloat32 * (1 + 4 * kU)).all().item<bool>())};
  return {};
}

// exp(x / alpha) overflows for x at most a measured T (alpha < 0).
Result<UnitTarget> celu_exp_target(const Node& node, const std::vector<Range>&, double, at::Device device) {
  float alpha = attr_float(node, "alpha", 1.f);
  auto pred = [&](float x) { return fails_everywhere([alpha](const at::Tensor& t) { return at::celu(t, alpha); }, x, device); };
  Result<float> t = last_true(pred, -std::numeric_limits<float>::max(), 0.f);
  if (!t.ok()) return Status::Error(fmt::format("celu with alpha {} does not overflow", alpha));
  return UnitTarget{0, Relation::kAtMost, *t, fmt::format("x <= {:.9g}", *t)};
}

// Above celu_hazards' edge alpha * 88.72 * (1 - 4u), as that condition reads.
std::optional<SafeDomain> celu_exp_domain(const Node& node, const std::vector<Range>&, double) {
  double alpha = attr_float(node, "alpha", 1.f);
  if (alpha >= 0) return std::nullopt;
  double lo = float32_above(alpha * kExpOverflowFloat32 * (1 - 4 * kU));
  SafeDomain d{0, lo, std::numeric_limits<double>::infinity(), 0, ""};
  d.text = describe(d);
  return d;
}

std::vector<HazardFacet> celu_facets() {
  return {opaque_facet("celu-zero-alpha", HazardKind::kCrash, "the condition is on the alpha attribute, not on an operand value"),
          HazardFacet{"exp-overflow", HazardKind::kForward, celu_exp_domain, "", {}, celu_exp_target}};
}

// float32 sigmoid is 1 / (1 + exp(-x)): it rounds to exactly 1 from x ~ 16.6 (the
// 4-ulp widening reaches 1 from x ~ 14.5 and stays below 1 under it), and to 0
// once exp(-x) overflows (x <= -88.72); below -80 the lower bound is 0. The exact
// ends hold whatever exp's error: from x >= 20, exp(-x) < 2.1e-9 is under half an
// ulp of 1, so 1 + exp(-x) is 1; from x <= -89, exp(-x) is past FLT_MAX, so inf.
Intervals sigmoid_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  IntervalTensor r = round_out(piecewise(x, [](const at::Tensor& t) { return at::sigmoid(t); }, {}), 4);
  r.lo = at::where(x.lo < -80.0, at::zeros_like(r.lo), r.lo);
  r.lo = at::where(x.lo >= 20.0, at::ones_like(r.lo), r.lo);
  r.hi = at::where(x.hi <= -89.0, at::zeros_like(r.hi), r.hi);
  return {clamp_bounds(std::move(r), 0.0, 1.0)};
}

// clamp(alpha * x + beta, 0, 1): the sum's rounding is relative to alpha * x,
// not to the (possibly cancelling) result.
Intervals hard_sigmoid_interval(const AbstractContext& a) {
  double alpha = attr_or(a, "alpha", 0.2f), beta = attr_or(a, "beta", 0.5f);
  IntervalTensor r = piecewise(a.input(0), [=](const at::Tensor& t) { return t * alpha + beta; }, {});
  auto [lo, hi] = finite_bounds(a.input(0));
  at::Tensor m = at::maximum(lo.abs(), hi.abs()) * std::abs(alpha);
  at::Tensor err = (m + m + std::abs(beta)) * kU + kTiny;
  r.lo = r.lo - err;
  r.hi = r.hi + err;
  return {clamp_bounds(std::move(r), 0.0, 1.0)};
}

// x * clamp(x * c + 0.5, 0, 1), c = float32(1/6): minimum -0.375 at x = -0.25/c.
// The clamp's argument cancels near x = -3, so its error is absolute: at most
// u * (|x| c + 1) per rounding, times |x|; outside [-3, 3] the clamp is exact.
Intervals hard_swish_interval(const AbstractContext& a) {
  const double c = static_cast<double>(1.0f / 6.0f);
  Fn f = [c](const at::Tensor& t) { return t * (t * c + 0.5).clamp(0.0, 1.0); };
  IntervalTensor r = piecewise(a.input(0), f, {-0.25 / c});
  auto [lo, hi] = finite_bounds(a.input(0));
  at::Tensor m = at::maximum(lo.abs(), hi.abs()).clamp_max(3.5);
  return {widen(std::move(r), 2 * kU, m * (m * c + 1) * (2 * kU) + kTiny)};
}

// max(x, 0) + log1p(exp(-|x|)): increasing; exp, log1p and the final add each round
// (a few ulps relative, plus an absolute term for the tiny log1p values).
Intervals softplus_interval(const AbstractContext& a) {
  IntervalTensor x = a.input(0);
  Fn f = [](const at::Tensor& t) { return t.clamp_min(0.0) + at::log1p(at::exp(-t.abs())); };
  IntervalTensor r = widen(piecewise(x, f, {}), 9 * kFloat32Ulp, 2 * kU + kTiny);
  return {clamp_bounds(std::move(r), 0.0, kInf)};
}

Intervals softsign_interval(const AbstractContext& a) {
  Fn f = [](const at::Tensor& t) { return t / (t.abs() + 1); };
  return {clamp_bounds(round_out(piecewise(a.input(0), f, {}), 3), -1.0, 1.0)};
}

// x where x > alpha, else 0: the zero branch and the pass-through branch, hulled.
Intervals thresholded_relu_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  double alpha = attr_or(a, "alpha", 1.f);
  auto b = at::broadcast_tensors({x.lo, x.hi});
  const at::Tensor &lo = b[0], &hi = b[1];
  at::Tensor zero = lo <= alpha, pass = hi > alpha, both = zero.logical_and(pass);
  at::Tensor pass_lo = lo.clamp_min(alpha), z = at::zeros_like(lo);
  at::Tensor out_lo = at::where(both, at::minimum(z, pass_lo), at::where(zero, z, pass_lo));
  at::Tensor out_hi = at::where(both, at::maximum(z, hi), at::where(zero, z, hi));
  return {IntervalTensor::of_bounds(out_lo, out_hi, x.shape, x.dtype)};
}

// x * tanh(softplus(x)), minimum -0.30884 at x = -1.19237. Relative errors pass
// through log1p and tanh without growing; below -20 exp(x) nears the subnormals,
// whose error is absolute: there the result lies in [f(lo) - 1e-30, 0].
Intervals mish_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  Fn f = [](const at::Tensor& t) {
    at::Tensor sp = t.clamp_min(0.0) + at::log1p(at::exp(-t.abs()));
    return t * sp.tanh();
  };
  IntervalTensor r = widen(piecewise(x, f, {-1.1923736493}), 16 * kFloat32Ulp, 16 * kTiny);
  auto [lo, hi] = finite_bounds(x);
  r.lo = at::where(lo < -20.0, r.lo - 1e-30, r.lo);
  r.hi = at::where(hi < -20.0, r.hi.clamp_min(0.0), r.hi);
  return {r};
}

// clamp(x, min, max) = min(max(x, min), max) is non-decreasing in all three, so the
// bounds map through it exactly (min > max gives max, as the lowering does).
Intervals clip_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  at::Tensor lo = x.lo, hi = x.hi;
  auto apply = [&](bool present, double lo_b, double hi_b, bool is_min) {
    if (!present) return;
    lo = is_min ? lo.clamp_min(lo_b) : lo.clamp_max(lo_b);
    hi = is_min ? hi.clamp_min(hi_b) : hi.clamp_max(hi_b);
  };
  if (a.opset < 11) {
    if (has_attr(a.node, "min")) { double v = attr_float(a.node, "min"); apply(true, v, v, true); }
    if (has_attr(a.node, "max")) { double v = attr_float(a.node, "max"); apply(true, v, v, false); }
  } else {
    for (size_t i : {size_t{1}, size_t{2}}) {
      if (!a.has_input(i)) continue;
      const IntervalTensor& b = a.input(i);
      if (b.numel() != 1) a.fail("Clip's min and max must be scalars");
      apply(true, b.lo.reshape({}).item<double>(), b.hi.reshape({}).item<double>(), i == 1);
    }
  }
  return {IntervalTensor::of_bounds(lo, hi, x.shape, x.dtype)};
}

// x + bias below -lambd, x - bias above lambd, 0 between: the reachable branches,
// hulled (each sum rounds once; integer results truncate, which round_out covers).
Intervals shrink_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  double lambd = attr_or(a, "lambd", 0.5f), bias = attr_or(a, "bias", 0.f);
  auto [lo, hi] = finite_bounds(x);
  at::Tensor below = lo < -lambd, above = hi > lambd, middle = (hi >= -lambd).logical_and(lo <= lambd);
  at::Tensor out_lo = at::full_like(lo, kInf), out_hi = at::full_like(lo, -kInf);
  auto join = [&](const at::Tensor& reach, const at::Tensor& l, const at::Tensor& h) {
    out_lo = at::where(reach, at::minimum(out_lo, l), out_lo);
    out_hi = at::where(reach, at::maximum(out_hi, h), out_hi);
  };
  IntervalTensor neg = round_out(IntervalTensor::of_bounds(lo + bias, hi.clamp_max(-lambd) + bias, x.shape, at::kFloat), 1);
  IntervalTensor pos = round_out(IntervalTensor::of_bounds(lo.clamp_min(lambd) - bias, hi - bias, x.shape, at::kFloat), 1);
  join(below, neg.lo, neg.hi);
  join(above, pos.lo, pos.hi);
  join(middle, at::zeros_like(lo), at::zeros_like(lo));
  return {round_out(IntervalTensor::of_bounds(out_lo, out_hi, x.shape, x.dtype), 0)};
}

// Symbolic bounds through ReLU, per channel on the input's hull [l, u]: exact where
// stable; where unstable, y <= u (x - l) / (u - l) above and y >= lambda x below
// (lambda = 1 when u > -l).
bool relu_symbolic(BackSubstitution& b, const Node& n, const LinearRows& p) {
  const IntervalTensor* x = b.interval(n.inputs[0]);
  if (!x || x->shape.size() < 2) return false;
  auto [l, u] = channel_hull(*x);
  if (!at::isfinite(l).all().item<bool>() || !at::isfinite(u).all().item<bool>()) return false;
  at::Tensor on = l >= 0, off = u <= 0, unstable = on.logical_or(off).logical_not();
  at::Tensor slope = at::where(unstable, u / (u - l).clamp_min(1e-300), on.to(at::kDouble));
  at::Tensor lambda = at::where(unstable, (u > -l).to(at::kDouble), on.to(at::kDouble));
  at::Tensor intercept = at::where(unstable, -slope * l, at::zeros_like(l));
  at::Tensor up = p.A > 0;
  b.add_constant(p, p.A * up, intercept);
  b.add_error(p, p.A, at::maximum(l.abs(), u.abs()) * 0x1p-50);  // the float64 slope products
  std::vector<int64_t> shape(p.A.dim(), 1);
  shape[1] = -1;
  b.pass_to(n.inputs[0], p.with_coefficients(p.A * at::where(up, slope.view(shape), lambda.view(shape))));
  return true;
}

// |leaky_relu(x)| <= max(1, |alpha|) |x|, the product rounded once.
double leaky_relu_norm(const NormContext& c) {
  double alpha = std::abs(attr_float(c.a.node, "alpha", 0.01f));
  return c.input(0) * std::max(1.0, alpha) * (1 + 0x1p-23);
}

NANGUARD_REGISTER_OPS({
    with_norm(with_symbolic(with(OpDef{"Relu", lower_relu}, relu_interval), relu_symbolic), norm_preserved),
    with_norm(with(OpDef{"LeakyRelu", lower_leaky_relu}, leaky_relu_interval), leaky_relu_norm),
    with(OpDef{"Elu", lower_elu}, elu_interval),
    with(OpDef{"Selu", lower_selu}, selu_interval),
    with_facets(with(OpDef{"Celu", lower_celu}, celu_interval, celu_hazards), celu_facets()),
    with(OpDef{"Sigmoid", lower_sigmoid}, sigmoid_interval),
    with(OpDef{"HardSigmoid", lower_hard_sigmoid}, hard_sigmoid_interval),
    with(OpDef{"HardSwish", lower_hard_swish}, hard_swish_interval),
    with(OpDef{"Softplus", lower_softplus}, softplus_interval),
    with(OpDef{"Softsign", lower_softsign}, softsign_interval),
    with(OpDef{"ThresholdedRelu", lower_thresholded_relu}, thresholded_relu_interval),
    with(OpDef{"Mish", lower_mish}, mish_interval),
    takes_infinities(with(OpDef{"Clip", lower_clip}, clip_interval)),
    with(OpDef{"Shrink", lower_shrink}, shrink_interval),
});

}  // namespace
}  // namespace nanguard
