// Pooling: MaxPool (with its optional Indices output), AveragePool, LpPool and the
// global pools, over 1-D, 2-D and 3-D inputs (N, C, spatial...).
// ONNX pads may be asymmetric and ATen's are not, so every pool pads explicitly
// (-inf for MaxPool, 0 for the sums) and runs ATen's kernel with zero padding.
// NaN: a NaN in a window makes the max NaN (ATen's rule); the ONNX backend-test
// reference drops NaNs from a window instead, which would hide them.
#include <cmath>
#include <algorithm>
#include <limits>
#include <optional>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/bilinear_bounds.h"
#include "ops/collapsed_bounds.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/overflow_facet.h"
#include "ops/spatial_pads.h"

namespace nanguard {
namespace {

struct PoolWindow {
  size_t rank = 0;  // spatial axes
  std::vector<int64_t> in, kernel, strides, dilations, extent;  // extent: dilated kernel
  SpatialPads pads;
  bool ceil_mode = false;
};

PoolWindow pool_window(const OpContext& ctx, const at::Tensor& x) {
  PoolWindow w;
  if (x.dim() < 3 || x.dim() > 5) ctx.fail(fmt::format("input of rank {} is not supported", x.dim()));
  w.rank = static_cast<size_t>(x.dim() - 2);
  w.in.assign(x.sizes().begin() + 2, x.sizes().end());
  w.kernel = attr_ints(ctx.node, "kernel_shape");
  if (w.kernel.size() != w.rank) ctx.fail("attribute 'kernel_shape' does not match the input rank");
  w.strides = spatial_attr(ctx, "strides", w.rank, 1);
  w.dilations = spatial_attr(ctx, "dilations", w.rank, 1);
  for (size_t i = 0; i < w.rank; ++i) w.extent.push_back((w.kernel[i] - 1) * w.dilations[i] + 1);
  w.pads = spatial_pads(ctx, w.in, w.extent, w.strides);
  // With auto_pad SAME the output is ceil(in / stride) whatever ceil_mode says; the
  // SAME pads already give that size with floor rounding.
  bool same = attr_string(ctx.node, "auto_pad", "NOTSET").rfind("SAME", 0) == 0;
  w.ceil_mode = !same && attr_int(ctx.node, "ceil_mode", 0) != 0;
  return w;
}

// The sum of each window of an already padded `x`. In ceil mode the last window may
// run past the end; it sums what it covers (PyTorch's rule, ONNX's backend tests).
at::Tensor window_sum(const at::Tensor& x, const PoolWindow& w) {
  if (w.rank == 1) {
    at::Tensor y = at::avg_pool2d(x.unsqueeze(-2), {1, w.kernel[0]}, {1, w.strides[0]}, {0, 0}, w.ceil_mode,
                                  false, /*divisor_override=*/1);
    return y.squeeze(-2);
  }
  std::vector<int64_t> zero(w.rank, 0);
  if (w.rank == 2) return at::avg_pool2d(x, w.kernel, w.strides, zero, w.ceil_mode, false, 1);
  return at::avg_pool3d(x, w.kernel, w.strides, zero, w.ceil_mode, false, 1);
}

// The element count of `dims`: 0 beside a 0, else saturating at int64's largest (a
// size check then fails).
int64_t elements(const std::vector<int64_t>& dims) {
  if (std::find(dims.begin(), dims.end(), 0) != dims.end()) return 0;
  int64_t n = 1;
  for (int64_t d : dims)
    if (__builtin_mul_overflow(n, d, &n)) return std::numeric_limits<int64_t>::max();
  return n;
}

// Averages divide by the number of input elements in the window, plus the pads when
// count_include_pad = 1. A window made only of pads averages 0/0 = NaN, as the
// ONNX reference's mean of an empty window does.
std::vector<at::Tensor> lower_average_pool(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  PoolWindow w = pool_window(ctx, x);
  for (int64_t d : w.dilations)
    if (d != 1) ctx.fail("AveragePool dilations are not supported");
  bool include_pad = attr_int(ctx.node, "count_include_pad", 0) != 0;
  at::Tensor sums = window_sum(pad_spatial(x, w.pads, 0.0), w);
  std::vector<int64_t> mask_shape{1, 1};
  mask_shape.insert(mask_shape.end(), w.in.begin(), w.in.end());
  // The count mask spans the spatial plane even when the batch is empty (an input of
  // [0, 4, 2, 2^31] asked for 17 GB; found by fuzz_loader): it is held to the cap.
  ctx.check_size(elements(w.in), x.scalar_type());
  at::Tensor mask = pad_spatial(at::ones(mask_shape, x.options().requires_grad(false)), w.pads, include_pad ? 1.0 : 0.0);
  return {sums / window_sum(mask, w)};
}

// LpPool (opset 11: no ceil_mode, no dilations): (sum over the window of |x|^p)^(1/p).
std::vector<at::Tensor> lower_lp_pool(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  PoolWindow w = pool_window(ctx, x);
  double p = static_cast<double>(attr_int(ctx.node, "p", 2));
  if (p <= 0) ctx.fail("attribute 'p' must be positive");
  at::Tensor sums = window_sum(pad_spatial(x.abs().pow(p), w.pads, 0.0), w);
  return {sums.pow(1.0 / p)};
}

// Converts ATen's indices (flat within one padded spatial plane) to ONNX's: flat over
// the unpadded N x C x spatial tensor, row major, or column major (storage_order 1, 2-D).
at::Tensor onnx_indices(const OpContext& ctx, const at::Tensor& idx, const PoolWindow& w, bool column_major) {
  if (column_major && w.rank != 2) ctx.fail("storage_order 1 is not supported beyond 2-D");
  at::Tensor rest = idx, flat = at::zeros_like(idx);
  int64_t plane = 1, stride = 1;
  std::vector<at::Tensor> coords(w.rank);
  for (size_t i = w.rank; i-- > 0;) {
    int64_t padded = w.in[i] + w.pads.begin[i] + w.pads.end[i];
    // A window of only -inf may report a pad position; clamp it onto the input.
    coords[i] = (rest.remainder(padded) - w.pads.begin[i]).clamp(0, w.in[i] - 1);
    rest = rest.div(padded, "floor");
    plane *= w.in[i];
  }
  for (size_t i = w.rank; i-- > 0;) {
    size_t axis = column_major ? w.rank - 1 - i : i;
    flat = flat + coords[axis] * stride;
    stride *= w.in[axis];
  }
  int64_t planes = idx.size(0) * idx.size(1);
  at::Tensor offset = at::arange(planes, idx.options()).reshape(idx.sizes().slice(0, 2)) * plane;
  std::vector<int64_t> shape{idx.size(0), idx.size(1)};
  shape.resize(idx.dim(), 1);
  return flat + offset.reshape(shape);
}

// int8/uint8 MaxPool runs in float32, which holds every such value exactly.
std::vector<at::Tensor> lower_max_pool(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  PoolWindow w = pool_window(ctx, x);
  bool integral = at::isIntegralType(x.scalar_type(), /*includeBool=*/false);
  at::Tensor xf = integral ? x.to(at::kFloat) : x;
  at::Tensor xp = pad_spatial(xf, w.pads, -std::numeric_limits<double>::infinity());
  std::vector<int64_t> zero(w.rank, 0);
  bool want_indices = ctx.num_outputs() > 1 && !ctx.node.outputs[1].empty();
  at::Tensor y, idx;
  if (!want_indices) {
    if (w.rank == 1) y = at::max_pool1d(xp, w.kernel, w.strides, zero, w.dilations, w.ceil_mode);
    if (w.rank == 2) y = at::max_pool2d(xp, w.kernel, w.strides, zero, w.dilations, w.ceil_mode);
    if (w.rank == 3) y = at::max_pool3d(xp, w.kernel, w.strides, zero, w.dilations, w.ceil_mode);
    return {integral ? y.to(x.scalar_type()) : y};
  }
  if (w.rank == 1) {
    std::tie(y, idx) = at::max_pool1d_with_indices(xp, w.kernel, w.strides, zero, w.dilations, w.ceil_mode);
  } else if (w.rank == 2) {
    std::tie(y, idx) = at::max_pool2d_with_indices(xp, w.kernel, w.strides, zero, w.dilations, w.ceil_mode);
  } else {
    std::tie(y, idx) = at::max_pool3d_with_indices(xp, w.kernel, w.strides, zero, w.dilations, w.ceil_mode);
  }
  if (integral) y = y.to(x.scalar_type());
  bool column_major = attr_int(ctx.node, "storage_order", 0) != 0;
  return {y, onnx_indices(ctx, idx, w, column_major)};
}

std::vector<int64_t> spatial_dims(const OpContext& ctx, const at::Tensor& x) {
  if (x.dim() < 3) ctx.fail(fmt::format("input of rank {} has no spatial axes", x.dim()));
  std::vector<int64_t> dims;
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

std::vector<at::Tensor> lower_global_average_pool(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  return {x.mean(spatial_dims(ctx, x), /*keepdim=*/true)};
}

std::vector<at::Tensor> lower_global_max_pool(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  return {x.amax(spatial_dims(ctx, x), /*keepdim=*/true)};
}

std::vector<at::Tensor> lower_global_lp_pool(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  double p = static_cast<double>(attr_int(ctx.node, "p", 2));
  if (p <= 0) ctx.fail("attribute 'p' must be positive");
  return {x.abs().pow(p).sum(spatial_dims(ctx, x), /*keepdim=*/true).pow(1.0 / p)};
}

// ---- abstract semantics ----------------------------------------------------
// The pools are non-decreasing in every input element (MaxPool, AveragePool) or in
// every |x| (LpPool), so the lowering runs on the bound tensors (float64). Averages
// add the float32 error of a k-term sum and a division: gamma_{k+2} * avg(|x|max),
// with avg(|x|max) from the same lowering. MaxPool's Indices lie in
// [0, N*C*prod(spatial) - 1].

using LowerPool = std::vector<at::Tensor> (*)(const OpContext&);

at::Tensor run_pool(const AbstractContext& a, LowerPool lower, const at::Tensor& x) {
  OpContext c{a.node, a.opset, {x}, at::kDouble};
  return lower(c)[0];
}

double unit(const AbstractContext& a) { return a.float_type == at::kDouble ? 0x1p-53 : 0x1p-24; }

double gamma_of(const AbstractContext& a, double n) {
  double nu = (n + 2) * unit(a);
  return nu >= 1 ? std::numeric_limits<double>::infinity() : nu / (1 - nu);
}

// Float bounds clipped to finite values (an unbounded input gives huge bounds, not NaN).
std::pair<at::Tensor, at::Tensor> full_bounds(const AbstractContext& a, const IntervalTensor& x) {
  double m = a.float_type == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
  return {x.lo.clamp(-m, m).expand(x.shape).contiguous(), x.hi.clamp(-m, m).expand(x.shape).contiguous()};
}

IntervalTensor with_dtype(IntervalTensor t, at::ScalarType dtype) {
  t.dtype = dtype;
  return t;
}

// A per-channel collapsed input pools to the same per-channel cells: a max of values
// in [l, u] is in [l, u] (-inf padding never wins); an average is too, or within the
// hull with 0 when padded zeros are counted. Returns nothing when it does not apply.
std::optional<std::vector<IntervalTensor>> pool_collapsed(const AbstractContext& a, bool average) {
  const IntervalTensor& x = a.input(0);
  auto shape = inferred_shape(a, 0);
  bool indices = a.node.outputs.size() > 1 && !a.node.outputs[1].empty();
  if (!spatially_collapsed(x) || !shape || shape->size() != x.shape.size() || indices) return std::nullopt;
  auto [lo, hi] = channel_bounds(x, a.float_type == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max);
  if (average) {
    if (attr_int(a.node, "count_include_pad", 0) != 0 && may_pad(a.node)) {
      lo = lo.clamp_max(0.0);
      hi = hi.clamp_min(0.0);
    }
    double k = 1;
    for (int64_t v : attr_ints(a.node, "kernel_shape")) k *= static_cast<double>(v);
    at::Tensor mag = at::maximum(lo.abs(), hi.abs()) * gamma_of(a, k + 1) + kFloat32MinSubnormal;
    lo = lo - mag;
    hi = hi + mag;
  }
  std::vector<int64_t> cell = channel_cell(x.shape[1], shape->size());
  return std::vector<IntervalTensor>{make_interval({lo.view(cell), hi.view(cell)}, *shape, x.dtype, 0)};
}

std::vector<IntervalTensor> max_pool_interval(const AbstractContext& a) {
  if (auto fast = pool_collapsed(a, false)) return *fast;
  const IntervalTensor& x = a.input(0);
  auto [lo, hi] = full_bounds(a, x);
  at::Tensor ylo = run_pool(a, lower_max_pool, lo), yhi = run_pool(a, lower_max_pool, hi);
  std::vector<IntervalTensor> out{make_interval({ylo, yhi}, ylo.sizes().vec(), x.dtype, 0)};
  if (a.node.outputs.size() > 1 && !a.node.outputs[1].empty())
    out.push_back(IntervalTensor::uniform(ylo.sizes().vec(), at::kLong, 0, static_cast<double>(std::max<int64_t>(x.numel(), 1) - 1)));
  return out;
}

std::vector<IntervalTensor> global_max_pool_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if (x.shape.size() < 3) a.fail("input has no spatial axes");
  std::vector<int64_t> dims, shape = x.shape;
  for (int64_t d = 2; d < static_cast<int64_t>(x.shape.size()); ++d) dims.push_back(d), shape[d] = 1;
  return {make_interval({x.lo.amax(dims, true), x.hi.amax(dims, true)}, shape, x.dtype, 0)};
}

// Averages: sum of k terms then a division.
std::vector<IntervalTensor> average_pool_interval(const AbstractContext& a) {
  if (auto fast = pool_collapsed(a, true)) return *fast;
  const IntervalTensor& x = a.input(0);
  auto [lo, hi] = full_bounds(a, x);
  double k = 1;
  for (int64_t v : attr_ints(a.node, "kernel_shape")) k *= static_cast<double>(v);
  double g = gamma_of(a, k + 1);
  at::Tensor ylo = run_pool(a, lower_average_pool, lo), yhi = run_pool(a, lower_average_pool, hi);
  at::Tensor mag = run_pool(a, lower_average_pool, at::maximum(lo.abs(), hi.abs()));
  double inf = std::numeric_limits<double>::infinity();
  // An all-pad window gives 0/0: its bounds become NaN, i.e. unbounded (hazard below).
  ylo = at::nan_to_num(ylo - mag * g - kFloat32MinSubnormal, -inf, inf, -inf);
  yhi = at::nan_to_num(yhi + mag * g + kFloat32MinSubnormal, inf, inf, -inf);
  return {make_interval({ylo, yhi}, ylo.sizes().vec(), x.dtype, 0)};
}

std::vector<int64_t> spatial_axes(const AbstractContext& a, const IntervalTensor& x) {
  if (x.shape.size() < 3) a.fail("input has no spatial axes");
  std::vector<int64_t> dims;
  for (int64_t d = 2; d < static_cast<int64_t>(x.shape.size()); ++d) dims.push_back(d);
  return dims;
}

// Means of the (possibly collapsed) bound tensors: a size-1 axis averages to itself.
std::vector<IntervalTensor> global_average_pool_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  std::vector<int64_t> dims = spatial_axes(a, x), shape = x.shape;
  double k = 1;
  for (int64_t d : dims) k *= static_cast<double>(x.shape[d]), shape[d] = 1;
  double m = a.float_type == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
  at::Tensor lo = x.lo.clamp(-m, m), hi = x.hi.clamp(-m, m);
  at::Tensor mag = at::maximum(lo.abs(), hi.abs()).mean(dims, true);
  double g = gamma_of(a, k + 1);
  Bounds y{lo.mean(dims, true) - mag * g - kFloat32MinSubnormal, hi.mean(dims, true) + mag * g + kFloat32MinSubnormal};
  return {make_interval(y, shape, x.dtype, 0)};
}

// |x| bounds: [0 or min |x|, max |x|].
std::pair<at::Tensor, at::Tensor> abs_bounds(const AbstractContext& a, const IntervalTensor& x) {
  auto [lo, hi] = full_bounds(a, x);
  at::Tensor straddle = (lo <= 0).logical_and(hi >= 0);
  at::Tensor alo = at::where(straddle, at::zeros_like(lo), at::minimum(lo.abs(), hi.abs()));
  return {alo, at::maximum(lo.abs(), hi.abs())};
}

double lp_p(const AbstractContext& a) {
  double p = static_cast<double>(attr_int(a.node, "p", 2));
  if (p <= 0) a.fail("attribute 'p' must be positive");
  return p;
}

double lp_window(const AbstractContext& a, const IntervalTensor& x) {
  if (a.node.op_type == "GlobalLpPool") {
    double k = 1;
    for (int64_t d : spatial_axes(a, x)) k *= static_cast<double>(x.shape[d]);
    return k;
  }
  double k = 1;
  for (int64_t v : attr_ints(a.node, "kernel_shape")) k *= static_cast<double>(v);
  return k;
}

// (sum |x|^p)^(1/p) on the |x| bounds: relative error of k rounded powers summed
// (gamma_{k+8}) then one root (4 ulps); powers that underflow lose at most
// k * 2^-126 under the root. The powers may overflow while the root would not: the
// upper bound is then +inf (reported as overflow by the engine, and by lppool-overflow).
std::vector<IntervalTensor> lp_pool_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  LowerPool lower = a.node.op_type == "GlobalLpPool" ? lower_global_lp_pool : lower_lp_pool;
  auto [alo, ahi] = abs_bounds(a, x);
  double p = lp_p(a), k = lp_window(a, x);
  double rel = gamma_of(a, k + 10);
  at::Tensor ylo = run_pool(a, lower, alo), yhi = run_pool(a, lower, ahi);
  double under = std::pow(k * 0x1p-126, 1.0 / p);
  ylo = (ylo * (1 - rel) - under).clamp_min(0.0);
  double limit = a.float_type == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
  at::Tensor power_hi = run_pool(a, lower, ahi).pow(p);
  yhi = at::where(power_hi * (1 + rel) > limit, at::full_like(yhi, std::numeric_limits<double>::infinity()), yhi * (1 + rel) + under);
  return {make_interval({ylo, yhi}, ylo.sizes().vec(), x.dtype, 0)};
}

HazardReport make_hazard(const char* name, HazardKind kind, const std::string& cond, bool definite) {
  return HazardReport{name, kind, 0, cond, definite};
}

std::vector<HazardReport> lp_pool_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  LowerPool lower = a.node.op_type == "GlobalLpPool" ? lower_global_lp_pool : lower_lp_pool;
  std::vector<IntervalTensor> y = lp_pool_interval(a);
  std::vector<HazardReport> out;
  double p = lp_p(a);
  double limit = a.float_type == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
  if (p > 1 && y[0].max() > limit) {
    auto [alo, ahi] = abs_bounds(a, x);
    bool definite = (run_pool(a, lower, alo).pow(p) > limit).all().item<bool>();
    out.push_back(make_hazard("lppool-overflow", HazardKind::kForward,
                              fmt::format("sum over a window of |x|^{} > 3.4028235e38", p), definite));
  }
  // d/ds s^(1/p) is infinite at s = 0 for p > 1: a window that sums to 0 (all zeros,
  // or powers underflowing) gives an INF/NaN gradient.
  if (p > 1 && (y[0].lo <= 0).any().item<bool>()) {
    bool definite = (y[0].hi <= 0).all().item<bool>();
    out.push_back(make_hazard("lppool-zero-gradient", HazardKind::kGradient,
                              fmt::format("sum over a window of |x|^{} == 0", p), definite));
  }
  return out;
}

// An average sums its window in float32 before it divides: k terms near FLT_MAX
// give INF although their mean is in range (found by fuzz_soundness).
std::optional<HazardReport> window_sum_overflow(const AbstractContext& a, const IntervalTensor& x, double k) {
  if (x.numel() == 0 || !x.is_float()) return std::nullopt;
  double m = at::maximum(x.lo.abs(), x.hi.abs()).max().item<double>();
  if (!(std::min(m, kFloat32Max) * k * (1 + gamma_of(a, k + 1)) > kFloat32Max)) return std::nullopt;
  return make_hazard("overflow", HazardKind::kForward, fmt::format("the float32 sum of a window of {:g} exceeds 3.4028235e38", k),
                     false);
}

// count_include_pad = 0 and a window made only of pads: 0 / 0 = NaN.
std::vector<HazardReport> average_pool_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  std::vector<int64_t> ones_shape = x.shape;
  if (ones_shape.size() < 3) a.fail("input has no spatial axes");
  std::vector<HazardReport> out;
  double k = 1;
  for (int64_t v : attr_ints(a.node, "kernel_shape")) k *= static_cast<double>(v);
  if (auto h = window_sum_overflow(a, x, k)) out.push_back(*h);
  ones_shape[0] = ones_shape[1] = 1;
  // One plane of ones, held to the per-tensor cap before it is made: an empty batch
  // over a plane of 2^31 asked for 17 GB here (fuzz_loader, out of memory).
  int64_t plane = elements(ones_shape);
  if (plane > (int64_t{1} << 30) / static_cast<int64_t>(sizeof(double)))
    a.fail(fmt::format("a spatial plane of {} elements is over the cap of 1 GiB per tensor", plane));
  at::Tensor y = run_pool(a, lower_average_pool, at::ones(ones_shape, at::kDouble));
  if (at::isnan(y).any().item<bool>())
    out.push_back(make_hazard("avgpool-empty-window", HazardKind::kForward, "a window covers only pads (count_include_pad = 0)",
                              x.numel() > 0));
  return out;
}

std::vector<HazardReport> global_average_pool_hazards(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  double k = 1;
  for (int64_t d : spatial_axes(a, x)) k *= static_cast<double>(x.shape[d]);
  if (auto h = window_sum_overflow(a, x, k)) return {*h};
  return {};
}

// An attribute of one value per spatial axis, `fallback` each when absent; empty
// when it has the wrong length.
std::vector<int64_t> per_axis(const Node& node, const char* name, size_t rank, int64_t fallback) {
  auto v = attr_ints_opt(node, name).value_or(std::vector<int64_t>(rank, fallback));
  return v.size() == rank ? v : std::vector<int64_t>{};
}

// How many windows of the node one input position falls in, at most; 0 when the
// attributes do not say.
int64_t pool_overlap(const Node& node, size_t rank) {
  auto kernel = per_axis(node, "kernel_shape", rank, 0), strides = per_axis(node, "strides", rank, 1),
       dilations = per_axis(node, "dilations", rank, 1);
  if (kernel.empty() || strides.empty() || dilations.empty()) return 0;
  int64_t overlap = 1;
  for (size_t i = 0; i < rank; ++i) {
    if (kernel[i] < 1 || strides[i] < 1 || dilations[i] < 1) return 0;
    overlap *= window_overlap(kernel[i], strides[i], dilations[i]);
  }
  return overlap;
}

// A window's max is one of its elements (padding never wins: a window holds one at
// least), so the squares of the outputs sum to at most overlap * ||x||^2. Exact.
double max_pool_norm(const NormContext& c) {
  size_t rank = c.a.input(0).shape.size();
  int64_t overlap = rank > 2 ? pool_overlap(c.a.node, rank - 2) : 0;
  return overlap == 0 ? kNoNormBound : c.input(0) * std::sqrt(static_cast<double>(overlap));
}

// (sum of m elements / d)^2 <= m sum x^2 / d^2 <= sum x^2 / d for a divisor d >= m: the
// kernel's size without ceil mode when no pads are dropped, else 1 at least. The sum's
// rounding adds gamma_K sum |x| <= gamma_K sqrt(K) ||window||, the division one more.
double average_pool_norm(const NormContext& c) {
  size_t rank = c.a.input(0).shape.size();
  if (rank <= 2) return kNoNormBound;
  int64_t overlap = pool_overlap(c.a.node, rank - 2);
  auto kernel = per_axis(c.a.node, "kernel_shape", rank - 2, 0);
  if (overlap == 0) return kNoNormBound;
  double k = 1;
  for (int64_t v : kernel) k *= static_cast<double>(v);
  auto pads = attr_ints_opt(c.a.node, "pads");
  bool padded = (pads && std::any_of(pads->begin(), pads->end(), [](int64_t p) { return p != 0; })) ||
                attr_string(c.a.node, "auto_pad", "NOTSET").rfind("SAME", 0) == 0;
  bool full = attr_int(c.a.node, "ceil_mode", 0) == 0 && (!padded || attr_int(c.a.node, "count_include_pad", 0) != 0);
  double divisor = full ? k : 1;
  double rounding = (1 + accumulation_gamma(k, c.a.float_type) * std::sqrt(k)) * (1 + unit_roundoff(c.a.float_type));
  return c.input(0) * std::sqrt(static_cast<double>(overlap) / divisor) * rounding;
}

// The mean over n positions: (sum / n)^2 <= sum x^2 / n per channel, rounded as above.
double global_average_pool_norm(const NormContext& c) {
  const IntervalTensor& x = c.a.input(0);
  double n = 1;
  for (size_t i = 2; i < x.shape.size(); ++i) n *= static_cast<double>(x.shape[i]);
  if (x.shape.size() < 3 || n == 0) return kNoNormBound;
  double rounding = (1 + accumulation_gamma(n, c.a.float_type)) * (1 + unit_roundoff(c.a.float_type));
  return c.input(0) / std::sqrt(n) * rounding;
}

HazardFacet window_sum_facet() {
  return bounded_overflow_facet("a window's float32 sum depends on every element in it; the fixer bounds them all");
}

std::vector<HazardFacet> lp_pool_facets() {
  HazardFacet overflow = slice_facet("lppool-overflow", HazardKind::kForward, "a sum of powers over a window, not one element");
  overflow.bounded_operands = true;
  return {overflow,
          slice_facet("lppool-zero-gradient", HazardKind::kGradient, "a sum of powers over a window, not one element")};
}

NANGUARD_REGISTER_OPS({
    with_norm(with(OpDef{"MaxPool", lower_max_pool}, max_pool_interval), max_pool_norm),
    with_norm(with_facets(with(OpDef{"AveragePool", lower_average_pool}, average_pool_interval, average_pool_hazards),
                          {slice_facet("avgpool-empty-window", HazardKind::kForward,
                                       "the pads and attributes, not an operand value"),
                           window_sum_facet()}),
              average_pool_norm),
    with_facets(with(OpDef{"LpPool", lower_lp_pool}, lp_pool_interval, lp_pool_hazards), lp_pool_facets()),
    with_norm(with_facets(with(OpDef{"GlobalAveragePool", lower_global_average_pool}, global_average_pool_interval,
                               global_average_pool_hazards),
                          {window_sum_facet()}),
              global_average_pool_norm),
    with_norm(with(OpDef{"GlobalMaxPool", lower_global_max_pool}, global_max_pool_interval), norm_preserved),
    with_facets(with(OpDef{"GlobalLpPool", lower_global_lp_pool}, lp_pool_interval, lp_pool_hazards), lp_pool_facets()),
});

}  // namespace
}  // namespace nanguard
