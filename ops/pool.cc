// Pooling: MaxPool (with its optional Indices output), AveragePool, LpPool and the
// global pools, over 1-D, 2-D and 3-D inputs (N, C, spatial...).
// ONNX pads may be asymmetric and ATen's are not, so every pool pads explicitly
// (-inf for MaxPool, 0 for the sums) and runs ATen's kernel with zero padding.
// NaN: a NaN in a window makes the max NaN (ATen's rule); the ONNX backend-test
// reference drops NaNs from a window instead, which would hide them.
#include <limits>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/op_registry.h"
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

NANGUARD_REGISTER_OPS({
    OpDef{"MaxPool", lower_max_pool},
    OpDef{"AveragePool", lower_average_pool},
    OpDef{"LpPool", lower_lp_pool},
    OpDef{"GlobalAveragePool", lower_global_average_pool},
    OpDef{"GlobalMaxPool", lower_global_max_pool},
    OpDef{"GlobalLpPool", lower_global_lp_pool},
});

}  // namespace
}  // namespace nanguard
