// Normalizations: BatchNormalization, LayerNormalization, InstanceNormalization,
// LpNormalization, MeanVarianceNormalization, LRN.
// Each is written as the spec's formula with elementwise ATen ops (not the fused
// at::batch_norm / at::layer_norm kernels), so the float32 rounding and the NaN/INF
// cases (a zero variance with epsilon 0, a zero vector in LpNormalization) are the
// spec's, and autograd reaches every input, variance included.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/bilinear_bounds.h"
#include "ops/type_limit.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/symbolic_form.h"

namespace nanguard {
namespace {

using Tensors = std::vector<at::Tensor>;

// Reshapes a per-channel [C] parameter to broadcast over [N, C, D1, ...].
at::Tensor per_channel(const at::Tensor& p, int64_t rank) {
  std::vector<int64_t> shape(std::max<int64_t>(rank, 2), 1);
  shape[1] = -1;
  return p.reshape(shape);
}

// All axes but 1 (the channel axis).
std::vector<int64_t> non_channel_axes(int64_t rank) {
  std::vector<int64_t> axes{0};
  for (int64_t d = 2; d < rank; ++d) axes.push_back(d);
  return axes;
}

// Training mode (opset 14+): the batch's own mean and population variance normalise X,
// and the running statistics are blended with `momentum`.
Tensors batch_norm_training(const OpContext& ctx, const at::Tensor& x, float eps) {
  float momentum = attr_float(ctx.node, "momentum", 0.9f);
  int64_t rank = x.dim();
  std::vector<int64_t> axes = non_channel_axes(rank);
  at::Tensor mean = x.mean(axes, /*keepdim=*/true);
  at::Tensor var = (x - mean).square().mean(axes, true);
  at::Tensor y = (x - mean) / (var + eps).sqrt() * per_channel(ctx.input(1), rank) +
                 per_channel(ctx.input(2), rank);
  at::Tensor running_mean = ctx.input(3) * momentum + mean.reshape({-1}) * (1 - momentum);
  at::Tensor running_var = ctx.input(4) * momentum + var.reshape({-1}) * (1 - momentum);
  return {y, running_mean, running_var};
}

// Y = (X - mean) / sqrt(var + epsilon) * scale + B with the given statistics.
// Before opset 14 the extra outputs mean training; their saved_mean/saved_var
// meaning is not pinned down by the spec, so that mode is refused. spatial = 0
// (opsets 6-8) gives parameters shaped like X without its batch axis.
Tensors lower_batch_norm(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  float eps = attr_float(ctx.node, "epsilon", 1e-5f);
  if (ctx.opset >= 14 && attr_int(ctx.node, "training_mode", 0) != 0) return batch_norm_training(ctx, x, eps);
  size_t used_outputs = 0;
  for (const auto& o : ctx.node.outputs) used_outputs += o.empty() ? 0 : 1;
  if (ctx.opset < 14 && used_outputs > 1) ctx.fail("training mode before opset 14 is not supported");
  bool spatial = ctx.opset >= 9 || attr_int(ctx.node, "spatial", 1) != 0;
  auto param = [&](size_t i) {
    return spatial ? per_channel(ctx.input(i), x.dim()) : ctx.input(i).unsqueeze(0);
  };
  return {(x - param(3)) / (param(4) + eps).sqrt() * param(1) + param(2)};
}

// y = scale * (x - mean) / sqrt(variance + epsilon) + B, statistics per instance and
// channel over the spatial axes (population variance).
Tensors lower_instance_norm(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  float eps = attr_float(ctx.node, "epsilon", 1e-5f);
  std::vector<int64_t> axes;
  for (int64_t d = 2; d < x.dim(); ++d) axes.push_back(d);
  if (axes.empty()) ctx.fail("input must have rank 3 or more");
  at::Tensor mean = x.mean(axes, true);
  at::Tensor var = (x - mean).square().mean(axes, true);
  return {per_channel(ctx.input(1), x.dim()) * (x - mean) / (var + eps).sqrt() +
          per_channel(ctx.input(2), x.dim())};
}

// LayerNormalization (opset 17), the spec's function body. stash_type 1 asks for at
// least float32 in stage one: float16/bfloat16 inputs are widened to float32, while a
// float64 input (or a float64 run) keeps float64 rather than being narrowed.
Tensors lower_layer_norm(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t rank = x.dim();
  int64_t axis = attr_int(ctx.node, "axis", -1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) ctx.fail("axis is out of range");
  float eps = attr_float(ctx.node, "epsilon", 1e-5f);
  bool narrow = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  at::Tensor xs = narrow ? x.to(at::kFloat) : x;
  std::vector<int64_t> axes;
  for (int64_t d = axis; d < rank; ++d) axes.push_back(d);
  at::Tensor mean = axes.empty() ? xs : xs.mean(axes, true);
  at::Tensor diff = xs - mean;
  at::Tensor var = axes.empty() ? diff * diff : (diff * diff).mean(axes, true);
  at::Tensor inv_std = (var + eps).sqrt().reciprocal();
  at::Tensor y = (diff * inv_std).to(x.scalar_type()) * ctx.input(1);
  if (ctx.has_input(2)) y = y + ctx.input(2);
  return {y, mean, inv_std};
}

// x / ||x||_p along `axis`; a zero vector gives 0/0 = NaN, as ONNX's reference does.
// The 2-norm is Sqrt(sum of squares), as ReduceL2 (its gradient at 0 is NaN too).
Tensors lower_lp_norm(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t axis = normalize_axis(ctx, attr_int(ctx.node, "axis", -1), x.dim());
  int64_t p = attr_int(ctx.node, "p", 2);
  at::Tensor norm;
  if (p == 1) norm = x.abs().sum(axis, true);
  else if (p == 2) norm = (x * x).sum(axis, true).sqrt();
  else ctx.fail("p = " + std::to_string(p) + " is invalid: ONNX allows 1 or 2");
  return {x / norm};
}

// The spec's function body: (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9). Rounding
// can make E[X^2] - E[X]^2 slightly negative for a constant slice, and then the
// sqrt is NaN; that is what the spec computes, so it is kept.
Tensors lower_mvn(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  std::vector<int64_t> axes;
  for (int64_t a : attr_ints_opt(ctx.node, "axes").value_or(std::vector<int64_t>{0, 2, 3}))
    axes.push_back(normalize_axis(ctx, a, x.dim()));
  at::Tensor mean = x.mean(axes, true);
  at::Tensor var = (x * x).mean(axes, true) - mean * mean;
  return {(x - mean) / (var.sqrt() + 1e-9f)};
}

// LRN: square_sum over channels [c - floor((size-1)/2), c + ceil((size-1)/2)] (zero
// padded), Y = X / (bias + alpha / size * square_sum) ^ beta.
Tensors lower_lrn(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t size = attr_int(ctx.node, "size");
  if (size < 1 || x.dim() < 2) ctx.fail("size must be positive and the input of rank 2 or more");
  float alpha = attr_float(ctx.node, "alpha", 1e-4f), beta = attr_float(ctx.node, "beta", 0.75f);
  float bias = attr_float(ctx.node, "bias", 1.f);
  int64_t front = (size - 1) / 2, back = size - 1 - front, channels = x.size(1);
  std::vector<int64_t> pad_shape = x.sizes().vec();
  at::Tensor sq = x * x;
  pad_shape[1] = front;
  at::Tensor lead = at::zeros(pad_shape, x.options());
  pad_shape[1] = back;
  at::Tensor padded = at::cat({lead, sq, at::zeros(pad_shape, x.options())}, 1);
  at::Tensor square_sum = padded.narrow(1, 0, channels);
  for (int64_t i = 1; i < size; ++i) square_sum = square_sum + padded.narrow(1, i, channels);
  return {x / (square_sum * (alpha / static_cast<float>(size)) + bias).pow(beta)};
}

// ---- abstract semantics ------------------------------------------------------

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kU = 5.9604644775390625e-08;  // 2^-24: float32 unit roundoff
constexpr double kTiny = kFloat32MinSubnormal;
using Intervals = std::vector<IntervalTensor>;

double gamma(double n) { return n * kU / (1 - n * kU); }

// One float32 rounding of a real result: u relative plus a subnormal.
Bounds rnd(const Bounds& b, double ulps = 1) {
  return {b.lo - b.lo.abs() * (ulps * kU * 2) - kTiny, b.hi + b.hi.abs() * (ulps * kU * 2) + kTiny};
}

// lo and hi of one cell shape with the tensor's rank, finite (the safe state).
Bounds cells(const IntervalTensor& x) {
  auto b = at::broadcast_tensors({x.lo, x.hi});
  at::Tensor lo = b[0], hi = b[1];
  while (lo.dim() < static_cast<int64_t>(x.shape.size())) { lo = lo.unsqueeze(0); hi = hi.unsqueeze(0); }
  return {lo.clamp(-kFloat32Max, kFloat32Max), hi.clamp(-kFloat32Max, kFloat32Max)};
}

Bounds param(const AbstractContext& a, size_t i, int64_t rank, bool spatial) {
  Bounds b = cells(a.input(i));
  if (spatial) return {per_channel(b.lo.reshape({-1}), rank), per_channel(b.hi.reshape({-1}), rank)};
  return {b.lo.unsqueeze(0), b.hi.unsqueeze(0)};
}

// z = (x - mean) / sqrt(var + eps), one rounding per step; the safe state has
// var + eps > 0 in float32 (>= the smallest subnormal).
Bounds batch_norm_z(const AbstractContext& a, int64_t rank, bool spatial) {
  const IntervalTensor& x = a.input(0);
  double eps = attr_float(a.node, "epsilon", 1e-5f);
  Bounds v = param(a, 4, rank, spatial);
  Bounds q = rnd({(v.lo + eps).clamp_min(kTiny), (v.hi + eps).clamp_min(kTiny)});
  q = {q.lo.clamp_min(kTiny), q.hi.clamp_min(kTiny)};
  Bounds sd = rnd({q.lo.sqrt(), q.hi.sqrt()});
  sd.lo = sd.lo.clamp_min(std::sqrt(kTiny) * (1 - 4 * kU));
  Bounds d = rnd(bounds_sub(cells(x), param(a, 3, rank, spatial)));
  return rnd(bounds_div_nonzero(d, sd));
}

// y = z * scale + B.
Intervals batch_norm_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if (a.opset >= 14 && attr_int(a.node, "training_mode", 0) != 0) a.fail("training mode has no interval transfer");
  int64_t rank = static_cast<int64_t>(x.shape.size());
  bool spatial = a.opset >= 9 || attr_int(a.node, "spatial", 1) != 0;
  Bounds z = batch_norm_z(a, rank, spatial);
  Bounds y = rnd(bounds_add(rnd(bounds_mul(z, param(a, 1, rank, spatial))), param(a, 2, rank, spatial)));
  return {make_interval(y, x.shape, x.dtype, 0)};
}

std::vector<HazardReport> batch_norm_hazards(const AbstractContext& a) {
  if (a.opset >= 14 && attr_int(a.node, "training_mode", 0) != 0) return {};
  double eps = attr_float(a.node, "epsilon", 1e-5f);
  const IntervalTensor& v = a.input(4);
  // float32 var + eps is exact near 0 (sums of floats that small are representable).
  if ((v.lo + eps <= 0).any().item<bool>())
    return {HazardReport{"batchnorm-nonpositive-variance", HazardKind::kForward, 4, "var + epsilon <= 0 (sqrt of a negative or division by 0)",
                         (v.hi + eps <= 0).all().item<bool>()}};
  // The lowering scales after normalising: a z past float32's range is INF before
  // the scale can shrink it (and INF * 0 is NaN).
  int64_t rank = static_cast<int64_t>(a.input(0).shape.size());
  Bounds z = batch_norm_z(a, rank, a.opset >= 9 || attr_int(a.node, "spatial", 1) != 0);
  if ((z.lo <= -kFloat32Max).logical_or(z.hi >= kFloat32Max).any().item<bool>())
    return {HazardReport{"overflow", HazardKind::kForward, 0, "(x - mean) / sqrt(var + epsilon) exceeds 3.4028235e38", false}};
  return {};
}

// Statistics of the groups a normalisation reduces over `axes`.
struct Groups {
  double n = 1;
  at::Tensor lo_min, hi_max, mag, common, spread;  // keepdim over axes
};

Groups groups_of(const Bounds& c, const std::vector<int64_t>& shape, const std::vector<int64_t>& axes) {
  Groups g;
  for (int64_t d : axes) g.n *= static_cast<double>(shape[d]);
  if (axes.empty()) {
    g.lo_min = c.lo;
    g.hi_max = c.hi;
    g.common = at::ones_like(c.lo, at::kBool);
  } else {
    g.lo_min = c.lo.amin(axes, true);
    g.hi_max = c.hi.amax(axes, true);
    g.common = c.lo.amax(axes, true) <= c.hi.amin(axes, true);
  }
  g.mag = at::maximum(g.lo_min.abs(), g.hi_max.abs());
  g.spread = g.hi_max - g.lo_min;
  return g;
}

// Bounds of z = (x - mean) / sqrt(var + eps) with the population variance: by
// Samuelson's inequality |x_i - mean| <= sqrt(n - 1) sigma; a float32 mean off by e
// adds at most min(1, e / sqrt(eps)). Per element also (x_i - mean) / sigma with
// sigma in [sqrt(eps), sqrt(var_max + eps)]. Widened by (n + 8) u for the roundings.
Bounds normalized(const Bounds& c, const Groups& g, double eps) {
  double e_rel = gamma(g.n) + kU;
  at::Tensor e = g.mag * e_rel;
  at::Tensor extra = eps > 0 ? (e / std::sqrt(eps)).clamp_max(1.0) : at::ones_like(e);
  at::Tensor r = eps < 0 ? at::full_like(e, kInf) : std::sqrt(std::max(g.n - 1, 0.0)) + extra;
  at::Tensor d_lo = c.lo - g.hi_max - e, d_hi = c.hi - g.lo_min + e;  // x_i - mean
  at::Tensor var_max = (g.spread + e).square() * 0.25 + e.square();
  at::Tensor s_lo = eps > 0 ? at::full_like(e, std::sqrt(eps)) : at::zeros_like(e), s_hi = (var_max + std::max(eps, 0.0)).sqrt();
  at::Tensor z_lo = at::where(d_lo < 0, d_lo / s_lo, d_lo / s_hi), z_hi = at::where(d_hi > 0, d_hi / s_lo, d_hi / s_hi);
  z_lo = at::nan_to_num(at::maximum(z_lo, -r), -kInf);
  z_hi = at::nan_to_num(at::minimum(z_hi, r), kInf);
  double f = (g.n + 8) * kU;
  return {z_lo - z_lo.abs() * f - kTiny, z_hi + z_hi.abs() * f + kTiny};
}

// eps <= 0 lets a constant group reach 0 / 0 (0 * inf in LayerNormalization).
std::vector<HazardReport> zero_variance_hazard(const AbstractContext& a, const std::vector<int64_t>& axes, double eps) {
  if (eps > 0) return {};
  const IntervalTensor& x = a.input(0);
  Groups g = groups_of(cells(x), x.shape, axes);
  if (g.common.any().item<bool>() || eps < 0)
    return {HazardReport{"norm-zero-variance", HazardKind::kForward, 0, "epsilon <= 0 and a constant group (var + epsilon == 0)", false}};
  return {};
}

Bounds affine(const Bounds& z, const Bounds& scale, const Bounds* bias) {
  Bounds y = rnd(bounds_mul(z, scale));
  return bias ? rnd(bounds_add(y, *bias)) : y;
}

// Where the float32 sum of (x - mean)^2 may pass float32's largest value: the variance
// is then INF, InvStdDev 0, and Y = (x - mean) * 0 NaN where x - mean is INF too.
at::Tensor variance_may_overflow(const Groups& g) {
  return (g.spread + g.mag * (gamma(g.n) + kU)).square() * g.n >= kFloat32Max;
}

std::vector<int64_t> layer_axes(const AbstractContext& a) {
  int64_t rank = static_cast<int64_t>(a.input(0).shape.size());
  int64_t axis = attr_int(a.node, "axis", -1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) a.fail("axis is out of range");
  std::vector<int64_t> axes;
  for (int64_t d = axis; d < rank; ++d) axes.push_back(d);
  return axes;
}

Intervals layer_norm_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  std::vector<int64_t> axes = layer_axes(a);
  double eps = attr_float(a.node, "epsilon", 1e-5f);
  Bounds c = cells(x);
  Groups g = groups_of(c, x.shape, axes);
  Bounds z = axes.empty() ? Bounds{at::zeros_like(c.lo), at::zeros_like(c.lo)} : normalized(c, g, eps);
  Bounds scale = cells(a.input(1)), bias;
  if (a.has_input(2)) bias = cells(a.input(2));
  Intervals out{make_interval(affine(z, scale, a.has_input(2) ? &bias : nullptr), x.shape, x.dtype, 0)};
  std::vector<int64_t> stat_shape = x.shape;
  for (int64_t d : axes) stat_shape[d] = 1;
  at::Tensor e = g.mag * (gamma(g.n) + kU) + kTiny;
  out.push_back(IntervalTensor::of_bounds(g.lo_min - e, g.hi_max + e, stat_shape, x.dtype));
  // 1 / sqrt(var + eps) for var in [0, spread^2 / 4 + e^2] (with its own roundings).
  at::Tensor var_max = ((g.spread + e).square() * 0.25 + e.square()) * (1 + gamma(g.n + 2));
  at::Tensor inv_lo = (var_max + std::max(eps, 0.0)).rsqrt() * (1 - 4 * kU);
  inv_lo = at::where(variance_may_overflow(g), at::zeros_like(inv_lo), inv_lo);  // 1 / sqrt(INF)
  at::Tensor inv_hi = eps > 0 ? at::full_like(inv_lo, 1 / std::sqrt(eps) * (1 + 4 * kU)) : at::full_like(inv_lo, kInf);
  out.push_back(IntervalTensor::of_bounds(inv_lo, inv_hi, stat_shape, x.dtype));
  out.resize(a.node.outputs.size());
  return out;
}

std::vector<HazardReport> layer_norm_hazards(const AbstractContext& a) {
  auto out = zero_variance_hazard(a, layer_axes(a), attr_float(a.node, "epsilon", 1e-5f));
  const IntervalTensor& x = a.input(0);
  if (variance_may_overflow(groups_of(cells(x), x.shape, layer_axes(a))).any().item<bool>())
    out.push_back(HazardReport{"overflow", HazardKind::kForward, 0,
                               "the float32 variance overflows (sum of (x - mean)^2 > 3.4028235e38)", false});
  return out;
}

std::vector<int64_t> spatial_axes(const AbstractContext& a) {
  std::vector<int64_t> axes;
  for (size_t d = 2; d < a.input(0).shape.size(); ++d) axes.push_back(static_cast<int64_t>(d));
  if (axes.empty()) a.fail("input must have rank 3 or more");
  return axes;
}

Intervals instance_norm_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  std::vector<int64_t> axes = spatial_axes(a);
  double eps = attr_float(a.node, "epsilon", 1e-5f);
  Bounds c = cells(x);
  Bounds z = normalized(c, groups_of(c, x.shape, axes), eps);
  int64_t rank = static_cast<int64_t>(x.shape.size());
  Bounds scale = param(a, 1, rank, true), bias = param(a, 2, rank, true);
  return {make_interval(affine(z, scale, &bias), x.shape, x.dtype, 0)};
}

std::vector<HazardReport> instance_norm_hazards(const AbstractContext& a) {
  return zero_variance_hazard(a, spatial_axes(a), attr_float(a.node, "epsilon", 1e-5f));
}

std::vector<int64_t> mvn_axes(const AbstractContext& a) {
  int64_t rank = static_cast<int64_t>(a.input(0).shape.size());
  std::vector<int64_t> axes;
  for (int64_t ax : attr_ints_opt(a.node, "axes").value_or(std::vector<int64_t>{0, 2, 3})) {
    int64_t v = ax < 0 ? ax + rank : ax;
    if (v < 0 || v >= rank) a.fail("axis is out of range");
    axes.push_back(v);
  }
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  return axes;
}

// MVN's variance E[x^2] - E[x]^2 cancels: its float32 error reaches
// err = (4 gamma_n + 10 u) M^2. A group whose true variance can be below err may
// round it negative (sqrt: NaN); the true variance is >= gap^2 / (2n) when the cells
// leave a gap (max lo - min hi > 0), else it can be 0.
struct MvnVar {
  at::Tensor var_lo, err;
};

MvnVar mvn_var(const Bounds& c, const Groups& g, const std::vector<int64_t>& axes) {
  at::Tensor gap = axes.empty() ? at::zeros_like(c.lo) : (c.lo.amax(axes, true) - c.hi.amin(axes, true)).clamp_min(0.0);
  return {gap.square() / (2 * g.n), g.mag.square() * ((4 * gamma(g.n) + 10 * kU) * 2)};
}

Intervals mvn_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  std::vector<int64_t> axes = mvn_axes(a);
  Bounds c = cells(x);
  Groups g = groups_of(c, x.shape, axes);
  MvnVar v = mvn_var(c, g, axes);
  at::Tensor e = g.mag * (gamma(g.n) + kU);
  // Where the variance stays clear of its error: Samuelson with var >= var_lo - err;
  // always: |x_i - mean| / (sqrt(var) + 1e-9) <= (spread + e) / 1e-9.
  at::Tensor room = (v.var_lo - v.err).clamp_min(0.0);
  at::Tensor r_tight = std::sqrt(std::max(g.n - 1, 0.0)) * (v.var_lo / room).sqrt() + e / room.sqrt();
  at::Tensor r_any = (g.spread + e) / static_cast<double>(1e-9f);
  at::Tensor r = at::where(room > 0, at::minimum(r_tight, r_any), r_any) * (1 + (g.n + 8) * kU) + kTiny;
  return {make_interval({-r, r}, x.shape, x.dtype, 0)};
}

std::vector<HazardReport> mvn_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  std::vector<int64_t> axes = mvn_axes(a);
  Bounds c = cells(x);
  MvnVar v = mvn_var(c, groups_of(c, x.shape, axes), axes);
  if ((v.var_lo <= v.err).any().item<bool>())
    return {HazardReport{"norm-zero-variance", HazardKind::kForward, 0,
                         "a near-constant group: E[x^2] - E[x]^2 rounds below 0 (sqrt of a negative)", false}};
  return {};
}

// x / ||x||_p along the axis: |y| <= 1 (p = 2 with subnormal squares: <= 1.23),
// and x / [norm_lo, norm_hi] where the norm stays clear of 0.
struct LpNorms {
  int64_t axis = 0, p = 2;
  at::Tensor lo, hi;  // the float32 norm's bounds, keepdim along the axis
  Bounds c;
  double n = 1;
};

LpNorms lp_norms(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  LpNorms r;
  int64_t rank = static_cast<int64_t>(x.shape.size());
  r.axis = attr_int(a.node, "axis", -1);
  if (r.axis < 0) r.axis += rank;
  if (r.axis < 0 || r.axis >= rank) a.fail("axis is out of range");
  r.p = attr_int(a.node, "p", 2);
  if (r.p != 1 && r.p != 2) a.fail("p must be 1 or 2");
  r.c = cells(x);
  std::vector<int64_t> sizes = r.c.lo.sizes().vec();
  sizes[r.axis] = x.shape[r.axis];
  r.c = {r.c.lo.expand(sizes), r.c.hi.expand(sizes)};
  r.n = static_cast<double>(x.shape[r.axis]);
  at::Tensor m_lo = at::where(contains_zero(IntervalTensor::of_bounds(r.c.lo, r.c.hi, x.shape, x.dtype)), at::zeros_like(r.c.lo),
                              at::minimum(r.c.lo.abs(), r.c.hi.abs()));
  at::Tensor m_hi = at::maximum(r.c.lo.abs(), r.c.hi.abs());
  double g = gamma(r.n + 2);
  if (r.p == 1) {
    r.lo = m_lo.sum(r.axis, true) * (1 - g);
    r.hi = m_hi.sum(r.axis, true) * (1 + g);
  } else {
    r.lo = (m_lo.square().sum(r.axis, true) * (1 - g) - r.n * kTiny).clamp_min(0.0).sqrt() * (1 - 2 * kU);
    r.hi = (m_hi.square().sum(r.axis, true) * (1 + g) + r.n * kTiny).sqrt() * (1 + 2 * kU);
  }
  return r;
}

Intervals lp_norm_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  LpNorms nm = lp_norms(a);
  double cap = (nm.p == 2 ? 1.23 : 1.0) * (1 + 2 * gamma(nm.n + 2) + 4 * kU);
  at::Tensor floor_norm = at::full_like(nm.lo, nm.p == 2 ? std::sqrt(kTiny) * (1 - 4 * kU) : kTiny);
  Bounds q = rnd(bounds_div_nonzero(nm.c, {at::maximum(nm.lo, floor_norm), nm.hi}));
  return {make_interval({q.lo.clamp(-cap, cap), q.hi.clamp(-cap, cap)}, x.shape, x.dtype, 0)};
}

// The float32 norm is 0 when every element is 0 (p = 1) or squares to 0 (p = 2:
// |x| <= 2.65e-23); for p = 1 a norm under 2.94e-39 also overflows the gradient
// (x / n / n).
std::vector<HazardReport> lp_norm_hazards(const AbstractContext& a) {
  LpNorms nm = lp_norms(a);
  at::Tensor m_lo = at::where((nm.c.lo <= 0).logical_and(nm.c.hi >= 0), at::zeros_like(nm.c.lo), at::minimum(nm.c.lo.abs(), nm.c.hi.abs()));
  double zero_below = nm.p == 1 ? 0.0 : 2.6469779601696886e-23;
  if ((m_lo.amax(nm.axis, true) <= zero_below).any().item<bool>())
    return {HazardReport{"lpnorm-zero-norm", HazardKind::kForward, 0, "a slice with norm 0 (0 / 0)", false}};
  double limit = input_limit(a, 0);  // the gradient has x's type
  if (nm.p == 1 && (m_lo.sum(nm.axis, true) < 1.0 / limit).any().item<bool>())
    return {HazardReport{"lpnorm-zero-gradient", HazardKind::kGradient, 0,
                         fmt::format("0 < norm < {:.3g} (the gradient x / n^2 overflows)", 1.0 / limit), false}};
  return {};
}

// LRN: X / (bias + alpha / size * square_sum) ^ beta; the window sum is monotone in
// the squares, so it maps their bounds. A square sum past FLT_MAX makes the
// denominator inf and the result 0.
struct LrnDen {
  Bounds base, pw;
  at::Tensor may_inf;
  Bounds c;
};

LrnDen lrn_den(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  int64_t size = attr_int(a.node, "size");
  if (size < 1 || x.shape.size() < 2) a.fail("size must be positive and the input of rank 2 or more");
  float alpha = attr_float(a.node, "alpha", 1e-4f), beta = attr_float(a.node, "beta", 0.75f), bias = attr_float(a.node, "bias", 1.f);
  double coef = static_cast<double>(alpha / static_cast<float>(size));
  LrnDen d;
  d.c = cells(x);
  std::vector<int64_t> sizes = d.c.lo.sizes().vec();
  sizes[1] = x.shape[1];
  d.c = {d.c.lo.expand(sizes).contiguous(), d.c.hi.expand(sizes).contiguous()};
  at::Tensor zero = at::zeros_like(d.c.lo);
  at::Tensor m_lo = at::where((d.c.lo <= 0).logical_and(d.c.hi >= 0), zero, at::minimum(d.c.lo.abs(), d.c.hi.abs()));
  at::Tensor m_hi = at::maximum(d.c.lo.abs(), d.c.hi.abs());
  int64_t front = (size - 1) / 2, back = size - 1 - front, channels = x.shape[1];
  auto window = [&](const at::Tensor& sq) {
    std::vector<int64_t> pad = sq.sizes().vec();
    pad[1] = front;
    at::Tensor lead = at::zeros(pad, sq.options());
    pad[1] = back;
    at::Tensor padded = at::cat({lead, sq, at::zeros(pad, sq.options())}, 1);
    at::Tensor s = padded.narrow(1, 0, channels);
    for (int64_t i = 1; i < size; ++i) s = s + padded.narrow(1, i, channels);
    return s;
  };
  double g = gamma(static_cast<double>(size) + 1);
  at::Tensor s_lo = (window(m_lo.square()) * (1 - g) - size * kTiny).clamp_min(0.0), s_hi = window(m_hi.square()) * (1 + g);
  d.base = rnd(bounds_add(bounds_mul({s_lo, s_hi}, {at::full_like(s_lo, coef), at::full_like(s_lo, coef)}),
                          {at::full_like(s_lo, bias), at::full_like(s_lo, bias)}), 2);
  at::Tensor b_lo = d.base.lo.clamp_min(kTiny), b_hi = d.base.hi.clamp_min(kTiny);
  at::Tensor p1 = b_lo.pow(beta), p2 = b_hi.pow(beta);
  d.pw = rnd({at::minimum(p1, p2), at::maximum(p1, p2)}, 4);
  d.may_inf = (m_hi.square() * size >= kFloat32Max).logical_or(d.base.hi >= kFloat32Max).logical_or(d.pw.hi >= kFloat32Max);
  return d;
}

Intervals lrn_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  LrnDen d = lrn_den(a);
  Bounds y = rnd(bounds_div_nonzero(d.c, {d.pw.lo.clamp_min(kTiny), d.pw.hi}));
  at::Tensor zero = at::zeros_like(y.lo);
  y = {at::where(d.may_inf, at::minimum(y.lo, zero), y.lo), at::where(d.may_inf, at::maximum(y.hi, zero), y.hi)};
  return {make_interval(y, x.shape, x.dtype, 0)};
}

std::vector<HazardReport> lrn_hazards(const AbstractContext& a) {
  LrnDen d = lrn_den(a);
  if ((d.base.lo <= 0).any().item<bool>())
    return {HazardReport{"lrn-nonpositive-denominator", HazardKind::kForward, 0, "bias + alpha / size * square_sum <= 0", false}};
  return {};
}

// BatchNormalization is safe where var + eps > 0 as batch_norm_hazards reads it (in
// double, exact for float32 values this close): var from the float32 above -eps.
std::optional<SafeDomain> variance_domain(const Node& node, const std::vector<Range>&, double) {
  double lo = float32_above(-static_cast<double>(attr_float(node, "epsilon", 1e-5f)));
  return SafeDomain{4, lo, std::numeric_limits<double>::infinity(), 0, fmt::format("var >= {:.9g}", lo)};
}

// float32 var + eps <= 0 exactly when var <= -eps.
Result<UnitTarget> variance_target(const Node& node, const std::vector<Range>&, double, at::Device) {
  float eps = attr_float(node, "epsilon", 1e-5f);
  return UnitTarget{4, Relation::kAtMost, -eps, fmt::format("var <= {:.9g}", -eps)};
}

std::vector<HazardFacet> batch_norm_facets() {
  return {HazardFacet{"batchnorm-nonpositive-variance", HazardKind::kForward, variance_domain, "", {}, variance_target}};
}

std::vector<HazardFacet> zero_variance_facets() {
  return {slice_facet("norm-zero-variance", HazardKind::kForward, "the variance of a group, not one element")};
}

std::vector<HazardFacet> lp_norm_facets() {
  return {slice_facet("lpnorm-zero-norm", HazardKind::kForward, "the norm of a slice, not one element"),
          slice_facet("lpnorm-zero-gradient", HazardKind::kGradient, "the norm of a slice, not one element")};
}

// Symbolic bounds through inference BatchNormalization: y = g x + h per channel, in a
// few float32 roundings.
bool batch_norm_symbolic(BackSubstitution& b, const Node& n, const LinearRows& p) {
  if (n.inputs.size() < 5 || attr_int(n, "training_mode", 0) != 0 || n.outputs.size() > 1) return false;
  const IntervalTensor* x = b.interval(n.inputs[0]);
  std::vector<at::Tensor> v;
  for (int i = 1; i < 5; ++i) {
    const IntervalTensor* t = b.interval(n.inputs[i]);
    if (!t || !t->exact()) return false;
    v.push_back(t->lo.reshape({-1}));
  }
  if (!x || x->shape.size() < 2) return false;
  double eps = attr_float(n, "epsilon", 1e-5f);
  at::Tensor g = v[0] / at::sqrt(v[3] + eps), h = v[1] - v[2] * g;
  if (!at::isfinite(g).all().item<bool>() || !at::isfinite(h).all().item<bool>()) return false;
  at::Tensor scale = g.abs() * (channel_magnitude(*x) + v[2].abs()) + h.abs() + v[1].abs();
  if (b.may_overflow(scale)) return false;
  at::Tensor err = scale * (8 * kFloat32UnitRoundoff) + 4 * kFloat32MinSubnormal;
  b.add_error(p, p.A, err);
  b.add_constant(p, p.A, h);
  b.pass_to(n.inputs[0], p.with_coefficients(scale_channels(p.A, g)));
  return true;
}

// Inference BatchNormalization is g x + h per channel (g = scale / sqrt(var + eps),
// h = B - mean g): ||y|| <= max|g| ||x|| + ||h||, and its four roundings and square root
// err by at most 8u (|g| (|x| + |mean|) + |B|) per element.
double batch_norm_norm(const NormContext& c) {
  const AbstractContext& a = c.a;
  bool spatial = a.opset >= 9 || attr_int(a.node, "spatial", 1) != 0;
  if (!spatial || (a.opset >= 14 && attr_int(a.node, "training_mode", 0) != 0) || a.num_inputs() < 5 ||
      c.outputs.empty() || !c.outputs[0].lo.defined())
    return kNoNormBound;
  std::vector<at::Tensor> v;
  for (size_t i = 1; i < 5; ++i) {
    if (!a.has_input(i) || !a.input(i).exact() || !a.input(i).is_float()) return kNoNormBound;
    v.push_back(a.input(i).value.to(at::kDouble).reshape({-1}));
  }
  double eps = attr_float(a.node, "epsilon", 1e-5f);
  at::Tensor g = v[0] / at::sqrt(v[3] + eps), h = v[1] - v[2] * g;
  if (!at::isfinite(g).all().item<bool>() || !at::isfinite(h).all().item<bool>()) return kNoNormBound;
  int64_t out = c.outputs[0].numel();
  double scaled = (g.numel() == 0 ? 0 : g.abs().max().item<double>()) * c.input(0);
  double error = 8 * unit_roundoff(a.float_type) * (scaled + broadcast_norm(g.abs() * v[2].abs() + v[1].abs(), out));
  return scaled + broadcast_norm(h, out) + error + 4 * kFloat32MinSubnormal * std::sqrt(static_cast<double>(out));
}

OpDef batch_norm() {
  OpDef d = with_facets(with(OpDef{"BatchNormalization", lower_batch_norm}, batch_norm_interval, batch_norm_hazards),
                        batch_norm_facets());
  // X, scale, B, mean, var: a free variance stays a variance (>= 0).
  using R = InputRole;
  d = with_input_roles(std::move(d), {R::kValue, R::kValue, R::kValue, R::kValue, R::kNonnegative});
  return with_norm(affine_op(with_symbolic(std::move(d), batch_norm_symbolic)), batch_norm_norm);
}

NANGUARD_REGISTER_OPS({
    batch_norm(),
    with_facets(with(OpDef{"InstanceNormalization", lower_instance_norm}, instance_norm_interval, instance_norm_hazards),
                zero_variance_facets()),
    with_facets(with(OpDef{"LayerNormalization", lower_layer_norm}, layer_norm_interval, layer_norm_hazards), zero_variance_facets()),
    with_facets(with(OpDef{"LpNormalization", lower_lp_norm}, lp_norm_interval, lp_norm_hazards), lp_norm_facets()),
    with_facets(with(OpDef{"MeanVarianceNormalization", lower_mvn}, mvn_interval, mvn_hazards), zero_variance_facets()),
    with_facets(with(OpDef{"LRN", lower_lrn}, lrn_interval, lrn_hazards),
                {slice_facet("lrn-nonpositive-denominator", HazardKind::kForward, "a sum of squares over a window plus the bias attribute")}),
});

}  // namespace
}  // namespace nanguard
