// Spatial resampling and rearrangement: Resize (opset 10, 11, 13), Upsample (7, 9),
// GridSample (16), DepthToSpace, SpaceToDepth.
// Resize is computed the way the spec defines it, one axis at a time: each output
// position maps to an input coordinate (coordinate_transformation_mode), then to 1, 2
// or 4 input taps with weights (nearest / linear / cubic), taps beyond the edge
// clamped onto it. Taps and weights depend only on shapes and scales, so they are
// built on the CPU; the data only goes through index_select, mul and add, which
// keeps the lowering exact and differentiable.
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/overflow_facet.h"

namespace nanguard {
namespace {

struct ResizeAttrs {
  std::string mode = "nearest";
  std::string coord = "half_pixel";
  std::string nearest_mode = "round_prefer_floor";
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
  bool legacy = false;  // Upsample and Resize-10: asymmetric, nearest by truncation
};

// One axis: out_len output positions, each a weighted sum of taps.
struct AxisPlan {
  int64_t in_len = 0, out_len = 0;
  double scale = 1.0;
  double resized_len = 0.0;  // length_resized of the spec, fractional when from scales
  double roi_start = 0.0, roi_end = 1.0;
  std::vector<std::vector<int64_t>> index;  // [tap][out]
  std::vector<std::vector<double>> weight;  // [tap][out]
  std::vector<bool> outside;                // [out]: tf_crop_and_resize extrapolates
};

std::vector<double> input_doubles(const OpContext& ctx, size_t i) {
  at::Tensor t = ctx.input(i).detach().to(at::kCPU).to(at::kDouble).contiguous().reshape({-1});
  const double* p = t.data_ptr<double>();
  return {p, p + t.numel()};
}

// The input coordinate of output position x. Decision: align_corners divides by
// length_resized - 1 with length_resized = input length * scale when scales are
// given (fractional), as the ONNX backend tests' reference does.
double original_coordinate(const OpContext& ctx, const ResizeAttrs& a, const AxisPlan& p, int64_t x) {
  const std::string& c = a.coord;
  double xr = static_cast<double>(x), in = static_cast<double>(p.in_len);
  if (c == "half_pixel") return (xr + 0.5) / p.scale - 0.5;
  if (c == "pytorch_half_pixel") return p.out_len > 1 ? (xr + 0.5) / p.scale - 0.5 : 0.0;
  if (c == "asymmetric") return xr / p.scale;
  if (c == "tf_half_pixel_for_nn") return (xr + 0.5) / p.scale;
  if (c == "align_corners") return p.resized_len == 1.0 ? 0.0 : xr * (in - 1) / (p.resized_len - 1);
  if (c == "tf_crop_and_resize") {
    double span = p.roi_end - p.roi_start;
    if (p.out_len == 1) return 0.5 * (p.roi_start + p.roi_end) * (in - 1);
    // Here length_resized is the output length, as the spec writes it.
    return p.roi_start * (in - 1) + xr * span * (in - 1) / static_cast<double>(p.out_len - 1);
  }
  ctx.fail("coordinate_transformation_mode '" + c + "' is not supported");
}

// The index nearest to x_ori. `left` = ceil(x) - 1 and ratio = x - left lie in (0, 1]:
// the spec's reference prefers the left pixel, and an integral x is itself.
int64_t nearest_index(const OpContext& ctx, const ResizeAttrs& a, const AxisPlan& p, double x) {
  if (a.legacy) return static_cast<int64_t>(p.scale < 1.0 ? std::ceil(x) : std::floor(x));
  double left = std::ceil(x) - 1, ratio = x - left;
  if (ratio == 1.0) return static_cast<int64_t>(x);
  const std::string& m = a.nearest_mode;
  bool right = false;
  if (m == "round_prefer_floor") right = ratio > 0.5;
  else if (m == "round_prefer_ceil") right = ratio >= 0.5;
  else if (m == "floor") right = false;
  else if (m == "ceil") right = true;
  else ctx.fail("nearest_mode '" + m + "' is not supported");
  return static_cast<int64_t>(left) + (right ? 1 : 0);
}

// Interpolation weights of the taps left-1 .. left+2 (cubic) or left .. left+1 (linear).
std::vector<double> tap_weights(const ResizeAttrs& a, double r) {
  if (a.mode == "linear") return {1 - r, r};
  double A = a.cubic_a, s = 1 - r;
  return {((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A,
          ((A + 2) * r - (A + 3)) * r * r + 1,
          ((A + 2) * s - (A + 3)) * s * s + 1,
          ((A * (s + 1) - 5 * A) * (s + 1) + 8 * A) * (s + 1) - 4 * A};
}

void plan_position(const OpContext& ctx, const ResizeAttrs& a, AxisPlan& p, int64_t x) {
  double xo = original_coordinate(ctx, a, p, x);
  auto clamp = [&](int64_t i) { return std::min(std::max<int64_t>(i, 0), p.in_len - 1); };
  p.outside[x] = a.coord == "tf_crop_and_resize" && (xo < 0 || xo > static_cast<double>(p.in_len - 1));
  if (a.mode == "nearest") {
    p.index[0][x] = clamp(nearest_index(ctx, a, p, xo));
    p.weight[0][x] = 1.0;
    return;
  }
  double left = std::ceil(xo) - 1;
  std::vector<double> w = tap_weights(a, xo - left);
  int64_t first = static_cast<int64_t>(left) - (w.size() == 4 ? 1 : 0);
  double total = 0;
  for (size_t k = 0; k < w.size(); ++k) {
    int64_t i = first + static_cast<int64_t>(k);
    if (a.exclude_outside && (i < 0 || i >= p.in_len)) w[k] = 0;
    total += w[k];
  }
  for (size_t k = 0; k < w.size(); ++k) {
    p.index[k][x] = clamp(first + static_cast<int64_t>(k));
    p.weight[k][x] = a.exclude_outside ? w[k] / total : w[k];
  }
}

void plan_axis(const OpContext& ctx, const ResizeAttrs& a, AxisPlan& p) {
  size_t taps = a.mode == "nearest" ? 1 : a.mode == "linear" ? 2 : 4;
  p.index.assign(taps, std::vector<int64_t>(p.out_len));
  p.weight.assign(taps, std::vector<double>(p.out_len));
  p.outside.assign(p.out_len, false);
  for (int64_t x = 0; x < p.out_len; ++x) plan_position(ctx, a, p, x);
}

// How the abstract transfer reuses the lowering: |weights| (the radius of a cubic
// resize) and 0 where tf_crop_and_resize extrapolates (a constant has no radius).
struct ResampleMode {
  bool abs_weights = false;
  bool zero_extrapolation = false;
};

// Resamples `x` along `axis` by its plan: sum over taps of weight * x[index].
at::Tensor apply_axis(const at::Tensor& x, int64_t axis, const AxisPlan& p, bool abs_weights) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[axis] = p.out_len;
  at::Tensor y;
  for (size_t k = 0; k < p.index.size(); ++k) {
    at::Tensor idx = at::tensor(p.index[k], at::kLong).to(x.device());
    at::Tensor g = x.index_select(axis, idx);
    if (p.index.size() == 1) return g;
    at::Tensor w = at::tensor(p.weight[k], at::kDouble).to(x.device(), x.scalar_type()).reshape(shape);
    if (abs_weights) w = w.abs();
    y = y.defined() ? y + g * w : g * w;
  }
  return y;
}

// Resamples every axis whose plan is not the identity, then writes the extrapolation
// value where tf_crop_and_resize samples outside the input.
at::Tensor resample(const OpContext& ctx, const at::Tensor& x, const ResizeAttrs& a, std::vector<AxisPlan>& plans,
                    ResampleMode mode = {}) {
  if (a.mode != "nearest" && a.mode != "linear" && a.mode != "cubic")
    ctx.fail("mode '" + a.mode + "' is not supported");
  if (a.mode != "nearest" && !at::isFloatingType(x.scalar_type()))
    ctx.fail("mode '" + a.mode + "' on integer tensors is not supported");
  int64_t numel = 1;
  for (const auto& p : plans) numel *= p.out_len;
  ctx.check_size(numel, x.scalar_type());
  at::Tensor y = x, outside;
  for (int64_t d = 0; d < x.dim(); ++d) {
    AxisPlan& p = plans[d];
    bool identity = p.out_len == p.in_len && p.scale == 1.0 && a.coord != "tf_crop_and_resize";
    if (identity) continue;
    plan_axis(ctx, a, p);
    y = apply_axis(y, d, p, mode.abs_weights);
    std::vector<uint8_t> out_flags(p.outside.begin(), p.outside.end());
    std::vector<int64_t> shape(x.dim(), 1);
    shape[d] = p.out_len;
    at::Tensor m = at::tensor(out_flags, at::kByte).to(at::kBool).reshape(shape).to(x.device());
    outside = outside.defined() ? outside.logical_or(m) : m;
  }
  if (outside.defined() && a.coord == "tf_crop_and_resize")
    y = at::where(outside, at::scalar_tensor(mode.zero_extrapolation ? 0.0 : a.extrapolation, y.options()), y);
  return y;
}

// Axis plans from scales (output = floor(in * scale), or with tf_crop_and_resize
// floor(in * (roi_end - roi_start) * scale)) or from sizes (scale = size / in).
std::vector<AxisPlan> axis_plans(const OpContext& ctx, const at::Tensor& x, const std::vector<double>& scales,
                                 const std::vector<int64_t>& sizes, const std::vector<double>& roi) {
  int64_t rank = x.dim();
  bool by_scales = !scales.empty();
  if ((by_scales ? scales.size() : sizes.size()) != static_cast<size_t>(rank))
    ctx.fail(fmt::format("{} has {} values for an input of rank {}", by_scales ? "scales" : "sizes",
                         by_scales ? scales.size() : sizes.size(), rank));
  bool with_roi = roi.size() == static_cast<size_t>(2 * rank);
  std::vector<AxisPlan> plans(rank);
  for (int64_t d = 0; d < rank; ++d) {
    AxisPlan& p = plans[d];
    p.in_len = x.size(d);
    if (with_roi) p.roi_start = roi[d], p.roi_end = roi[rank + d];
    if (by_scales) {
      if (scales[d] <= 0) ctx.fail("scales must be positive");
      p.scale = scales[d];
      p.resized_len = static_cast<double>(p.in_len) * p.scale;
      p.out_len = static_cast<int64_t>(std::floor(p.resized_len * (p.roi_end - p.roi_start)));
    } else {
      p.out_len = sizes[d];
      p.resized_len = static_cast<double>(p.out_len);
      p.scale = p.in_len > 0 ? p.resized_len / static_cast<double>(p.in_len) : 1.0;
    }
    if (p.out_len < 0) ctx.fail("the output size is negative");
  }
  return plans;
}

ResizeAttrs resize_attrs(const OpContext& ctx) {
  ResizeAttrs a;
  a.mode = attr_string(ctx.node, "mode", "nearest");
  if (ctx.node.op_type == "Upsample" || ctx.opset < 11) {
    if (a.mode == "bilinear") a.mode = "linear";  // Upsample-7's name for it
    a.coord = "asymmetric";
    a.legacy = true;
    return a;
  }
  a.coord = attr_string(ctx.node, "coordinate_transformation_mode", "half_pixel");
  a.nearest_mode = attr_string(ctx.node, "nearest_mode", "round_prefer_floor");
  a.cubic_a = attr_float(ctx.node, "cubic_coeff_a", -0.75f);
  a.exclude_outside = attr_int(ctx.node, "exclude_outside", 0) != 0;
  a.extrapolation = attr_float(ctx.node, "extrapolation_value", 0.0f);
  return a;
}

// Resize-10 and Upsample: (X, scales); nearest truncates when upsampling and rounds
// up when downsampling (ONNX Runtime's rule; the Resize-10 backend test expects it).
// Upsample-7 reads scales from its attribute.
at::Tensor resize_with(const OpContext& ctx, const at::Tensor& x, ResampleMode mode) {
  ResizeAttrs a = resize_attrs(ctx);
  std::vector<double> scales, roi;
  std::vector<int64_t> sizes;
  if (ctx.node.op_type == "Upsample" && ctx.opset < 9) {
    for (float s : attr_floats(ctx.node, "scales")) scales.push_back(s);
  } else if (a.legacy) {
    scales = input_doubles(ctx, 1);
  } else {
    if (ctx.has_input(1)) roi = input_doubles(ctx, 1);
    if (ctx.has_input(2)) scales = input_doubles(ctx, 2);
    if (scales.empty() && ctx.has_input(3)) sizes = ctx.input_ints(3);
    if (scales.empty() && sizes.empty()) ctx.fail("one of scales and sizes must be given");
  }
  std::vector<AxisPlan> plans = axis_plans(ctx, x, scales, sizes, a.coord == "tf_crop_and_resize" ? roi : std::vector<double>{});
  return resample(ctx, x, a, plans, mode);
}

std::vector<at::Tensor> lower_resize(const OpContext& ctx) { return {resize_with(ctx, ctx.input(0), {})}; }

// GridSample-16 maps onto ATen's grid_sampler (4-D input, grid of (x, y) in [-1, 1]).
std::vector<at::Tensor> lower_grid_sample(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  if (!at::isFloatingType(x.scalar_type())) ctx.fail("GridSample on integer tensors is not supported");
  if (x.dim() != 4) ctx.fail(fmt::format("GridSample of a rank-{} input is not supported", x.dim()));
  std::string mode = attr_string(ctx.node, "mode", "bilinear");
  std::string padding = attr_string(ctx.node, "padding_mode", "zeros");
  int64_t m = mode == "bilinear" ? 0 : mode == "nearest" ? 1 : mode == "bicubic" ? 2 : -1;
  int64_t pm = padding == "zeros" ? 0 : padding == "border" ? 1 : padding == "reflection" ? 2 : -1;
  if (m < 0) ctx.fail("mode '" + mode + "' is not supported");
  if (pm < 0) ctx.fail("padding_mode '" + padding + "' is not supported");
  bool align = attr_int(ctx.node, "align_corners", 0) != 0;
  return {at::grid_sampler(x, ctx.input(1).to(x.scalar_type()), m, pm, align)};
}

int64_t block_size(const OpContext& ctx, const at::Tensor& x) {
  if (x.dim() != 4) ctx.fail(fmt::format("input must be 4-D, not rank {}", x.dim()));
  int64_t b = attr_int(ctx.node, "blocksize");
  if (b < 1) ctx.fail("blocksize must be positive");
  return b;
}

// DCR: depth is read as (block_h, block_w, C'); CRD: as (C', block_h, block_w).
std::vector<at::Tensor> lower_depth_to_space(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t b = block_size(ctx, x);
  int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (c % (b * b) != 0) ctx.fail("the channel count is not a multiple of blocksize^2");
  bool crd = attr_string(ctx.node, "mode", "DCR") == "CRD";
  at::Tensor y = crd ? x.reshape({n, c / (b * b), b, b, h, w}).permute({0, 1, 4, 2, 5, 3})
                     : x.reshape({n, b, b, c / (b * b), h, w}).permute({0, 3, 4, 1, 5, 2});
  return {y.reshape({n, c / (b * b), h * b, w * b})};
}

std::vector<at::Tensor> lower_space_to_depth(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t b = block_size(ctx, x);
  int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (h % b != 0 || w % b != 0) ctx.fail("the spatial size is not a multiple of blocksize");
  at::Tensor y = x.reshape({n, c, h / b, b, w / b, b}).permute({0, 3, 5, 1, 2, 4});
  return {y.reshape({n, c * b * b, h / b, w / b})};
}

// ---- abstract semantics ----------------------------------------------------

// The lowering's context on float64 tensors: input 0 replaced by `x`, the other
// inputs (roi, scales, sizes, grid) their exact values.
OpContext abstract_ctx(const AbstractContext& a, const at::Tensor& x) {
  OpContext c{a.node, a.opset, {x}, at::kDouble};
  for (size_t i = 1; i < a.num_inputs(); ++i) {
    if (!a.has_input(i)) { c.inputs.emplace_back(); continue; }
    if (!a.input(i).exact()) a.fail(fmt::format("input {} must be known exactly", i));
    c.inputs.push_back(a.input(i).value);
  }
  return c;
}

double limit_of(const AbstractContext& a) {
  return a.float_type == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
}

double gamma_n(const AbstractContext& a, double n) {
  double nu = (n + 2) * (a.float_type == at::kDouble ? 0x1p-53 : 0x1p-24);
  return nu >= 1 ? std::numeric_limits<double>::infinity() : nu / (1 - nu);
}

struct FullBounds {
  at::Tensor lo, hi;
};

FullBounds full_bounds(const AbstractContext& a, const IntervalTensor& x) {
  double m = limit_of(a);
  return {x.lo.clamp(-m, m).expand(x.shape).contiguous(), x.hi.clamp(-m, m).expand(x.shape).contiguous()};
}

IntervalTensor finite_interval(at::Tensor lo, at::Tensor hi, at::ScalarType dtype) {
  double inf = std::numeric_limits<double>::infinity();
  lo = at::nan_to_num(lo, -inf, inf, -inf);
  hi = at::nan_to_num(hi, inf, inf, -inf);
  std::vector<int64_t> shape = lo.sizes().vec();
  return round_out(IntervalTensor::of_bounds(lo, hi, shape, dtype), 0);
}

// Resize is linear in X with per-axis taps. Nearest moves values (exact); linear has
// weights >= 0 summing to 1, so it is monotone: R(lo), R(hi) widened by the float32
// error ((1+g)^d - 1) R(|x|max) of d axes of (taps + 1)-term sums (weights rounded);
// cubic has negative weights: R(c) +- (|R|(r) + g |R|(|c| + r)). On subnormal
// values each product and sum may also round by half the smallest subnormal, which
// later axes' weights carry on (their |sum| is at most 2 for cubic, 1 for linear).
std::vector<IntervalTensor> resize_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  ResizeAttrs attrs = resize_attrs(abstract_ctx(a, at::Tensor()));
  FullBounds b = full_bounds(a, x);
  auto R = [&](const at::Tensor& t, ResampleMode m) { return resize_with(abstract_ctx(a, t), t, m); };
  if (attrs.mode == "nearest") return {finite_interval(R(b.lo, {}), R(b.hi, {}), x.dtype)};
  double taps = attrs.mode == "linear" ? 2 : 4;
  double g = gamma_n(a, static_cast<double>(x.shape.size()) * (taps + 1) + 1);
  at::Tensor mag = at::maximum(b.lo.abs(), b.hi.abs());
  double axes = static_cast<double>(x.shape.size());
  double tiny = axes * 2 * taps * (attrs.mode == "cubic" ? std::pow(2.0, axes) : 1.0) * kFloat32MinSubnormal;
  if (attrs.mode == "linear") {
    at::Tensor err = R(mag, {false, true}) * g + tiny;
    return {finite_interval(R(b.lo, {}) - err, R(b.hi, {}) + err, x.dtype)};
  }
  at::Tensor c = b.lo * 0.5 + b.hi * 0.5, r = at::maximum(b.hi - c, c - b.lo);
  at::Tensor rad = R(r, {true, true}) + R(c.abs() + r, {true, true}) * g + tiny;
  at::Tensor yc = R(c, {});
  return {finite_interval(yc - rad, yc + rad, x.dtype)};
}

// GridSample. Coordinates computed in float32 differ from ours (float64) by a few
// ulps, which may move a tap by one pixel near a boundary; so value hulls are taken
// over 3x3 neighbourhoods (pads count as 0 under padding_mode zeros), sampled at our
// nearest tap. Exact grid: nearest lies in that hull; bilinear is monotone in X
// (weights >= 0): G(lo), G(hi) widened by the rounding of 4 products and the
// coordinate error (Lipschitz 2 M per pixel). Grid not exact: the hull of X (and 0
// under zeros padding). Bicubic: |y| <= 2 max|x| (sum of |weights| <= 1.890625).
std::vector<IntervalTensor> grid_sample_interval(const AbstractContext& a) {
  const IntervalTensor &x = a.input(0), &grid = a.input(1);
  if (!x.is_float() || x.shape.size() != 4) a.fail("GridSample needs a 4-D float input");
  if (grid.shape.size() != 4) a.fail("GridSample needs a 4-D grid");  // read below (fuzz_loader)
  std::string mode = attr_string(a.node, "mode", "bilinear");
  std::string padding = attr_string(a.node, "padding_mode", "zeros");
  bool align = attr_int(a.node, "align_corners", 0) != 0;
  bool zeros = padding == "zeros";
  int64_t pm = zeros ? 0 : padding == "border" ? 1 : padding == "reflection" ? 2 : -1;
  if (pm < 0 || (mode != "bilinear" && mode != "nearest" && mode != "bicubic")) a.fail("unsupported GridSample mode");
  FullBounds b = full_bounds(a, x);
  std::vector<int64_t> out_shape{x.shape[0], x.shape[1], grid.shape[1], grid.shape[2]};
  at::Tensor mag = at::maximum(b.lo.abs(), b.hi.abs());
  if (mode == "bicubic") {
    at::Tensor m = mag.amax({2, 3}, true) * (2.0 * (1 + gamma_n(a, 20)));
    return {make_interval({-m, m}, out_shape, x.dtype, 0)};
  }
  if (!grid.exact()) {
    at::Tensor lo = b.lo.amin({2, 3}, true), hi = b.hi.amax({2, 3}, true);
    if (zeros) lo = lo.clamp_max(0.0), hi = hi.clamp_min(0.0);
    return {make_interval({lo, hi}, out_shape, x.dtype, 8)};
  }
  at::Tensor g = grid.value.to(at::kDouble);
  // Neighbourhood hulls; under zeros padding the border pixels' hull holds 0, and
  // sampling with border padding maps any outside tap onto such a pixel.
  auto pool = [](const at::Tensor& t) { return at::max_pool2d(t, {3, 3}, {1, 1}, {1, 1}); };
  at::Tensor hn = pool(b.hi), ln = -pool(-b.lo), mn = pool(mag);
  if (zeros) {
    at::Tensor border = at::ones({1, 1, x.shape[2], x.shape[3]}, at::kDouble);
    border.slice(2, 1, -1).slice(3, 1, -1).zero_();
    at::Tensor on = border > 0;
    hn = at::where(on, hn.clamp_min(0.0), hn);
    ln = at::where(on, ln.clamp_max(0.0), ln);
  }
  int64_t spm = zeros ? 1 : pm;
  auto nearest = [&](const at::Tensor& t) { return at::grid_sampler(t, g, 1, spm, align); };
  if (mode == "nearest") return {make_interval({nearest(ln), nearest(hn)}, out_shape, x.dtype, 0)};
  double gmax = g.abs().max().item<double>();
  double size = static_cast<double>(std::max(x.shape[2], x.shape[3]));
  double delta = 16 * (a.float_type == at::kDouble ? 0x1p-53 : 0x1p-24) * ((gmax + 1) * size + 2);
  at::Tensor err = nearest(mn) * (2 * delta + gamma_n(a, 8)) + kFloat32MinSubnormal;
  at::Tensor ylo = at::grid_sampler(b.lo, g, 0, pm, align), yhi = at::grid_sampler(b.hi, g, 0, pm, align);
  return {finite_interval(ylo - err, yhi + err, x.dtype)};
}

OpDef moving(OpDef d) {
  d.monotone = Monotone::kDataMovement;
  return d;
}

// Resize's roi, scales and sizes (Upsample's scales) shape the computation: free
// weights keep them fixed.
OpDef resizing(OpDef d, size_t inputs) {
  std::vector<InputRole> roles(inputs, InputRole::kStructural);
  roles[0] = InputRole::kValue;
  return with_input_roles(std::move(d), std::move(roles));
}

// The grid's coordinates are unnormalised in float32, (g + 1) * size (halved): past
// FLT_MAX they are INF, and the sampling weights INF - INF = NaN (found by
// fuzz_soundness on test_gridsample with a grid near -2.3e38).
std::vector<HazardReport> grid_sample_hazards(const AbstractContext& a) {
  const IntervalTensor &x = a.input(0), &grid = a.input(1);
  if (x.shape.size() != 4 || !grid.is_float() || grid.numel() == 0) return {};
  double g = at::maximum(grid.lo.abs(), grid.hi.abs()).max().item<double>();
  double size = static_cast<double>(std::max(x.shape[2], x.shape[3]));
  if (!((g + 1) * size > kFloat32Max / 2)) return {};
  return {HazardReport{"overflow", HazardKind::kForward, 1,
                       "a grid coordinate times the input's size exceeds 3.4028235e38: NaN sampling weights", false}};
}

NANGUARD_REGISTER_OPS({
    resizing(with(OpDef{"Resize", lower_resize}, resize_interval), 4),
    resizing(with(OpDef{"Upsample", lower_resize}, resize_interval), 2),
    with_facets(with(OpDef{"GridSample", lower_grid_sample}, grid_sample_interval, grid_sample_hazards),
                {bounded_overflow_facet("the unnormalised coordinate depends on the grid and the shape")}),
    moving(OpDef{"DepthToSpace", lower_depth_to_space}),
    moving(OpDef{"SpaceToDepth", lower_space_to_depth}),
});

}  // namespace
}  // namespace nanguard
