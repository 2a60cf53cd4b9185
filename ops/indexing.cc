// Indexing ops: Gather, GatherElements, GatherND, ScatterElements, Scatter,
// ScatterND, OneHot, NonZero, TopK, Compress, Unique.
// Index tensors are data, so every lowering checks them against the axis size
// first: ATen would abort or read out of bounds, and an out-of-range index is a
// `crash` finding, which must surface as a clear error naming the index and bound.
// Negative indices wrap (index + size), as ONNX allows from opset 11.
#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/op_registry.h"

namespace nanguard {
namespace {

using Shape = std::vector<int64_t>;

// Indices as int64, wrapped into [0, size); fails on the first value outside
// [-size, size).
at::Tensor checked_indices(const OpContext& ctx, const at::Tensor& indices, int64_t size, int64_t axis) {
  at::Tensor idx = indices.to(at::kLong);
  at::Tensor bad = (idx < -size).logical_or(idx >= size);
  if (bad.any().item<bool>()) {
    int64_t first = bad.reshape({-1}).nonzero()[0][0].item<int64_t>();
    int64_t value = idx.reshape({-1})[first].item<int64_t>();
    ctx.fail(fmt::format("index {} is out of range for axis {} of size {} (valid: [{}, {}])", value, axis, size,
                         -size, size - 1));
  }
  return at::where(idx < 0, idx + size, idx);
}

// Gather: out = data.shape[:axis] + indices.shape + data.shape[axis+1:].
std::vector<at::Tensor> lower_gather(const OpContext& ctx) {
  const at::Tensor &data = ctx.input(0), &indices = ctx.input(1);
  int64_t axis = normalize_axis(ctx, attr_int(ctx.node, "axis", 0), data.dim());
  at::Tensor idx = checked_indices(ctx, indices, data.size(axis), axis);
  Shape out(data.sizes().begin(), data.sizes().begin() + axis);
  out.insert(out.end(), indices.sizes().begin(), indices.sizes().end());
  out.insert(out.end(), data.sizes().begin() + axis + 1, data.sizes().end());
  return {data.index_select(axis, idx.reshape({-1})).reshape(out)};
}

std::vector<at::Tensor> lower_gather_elements(const OpContext& ctx) {
  const at::Tensor &data = ctx.input(0), &indices = ctx.input(1);
  int64_t axis = normalize_axis(ctx, attr_int(ctx.node, "axis", 0), data.dim());
  if (indices.dim() != data.dim()) ctx.fail("indices and data differ in rank");
  return {at::gather(data, axis, checked_indices(ctx, indices, data.size(axis), axis))};
}

// The index tuples in the last axis of `indices` (k of them), checked and turned into
// linear offsets into the k dimensions of `data` that start at `first`.
at::Tensor linear_offsets(const OpContext& ctx, const at::Tensor& data, const at::Tensor& indices, int64_t first) {
  int64_t k = indices.size(-1);
  if (k < 1 || first + k > data.dim()) ctx.fail(fmt::format("index tuples of length {} do not fit rank {}", k, data.dim()));
  at::Tensor lin = at::zeros(indices.sizes().slice(0, indices.dim() - 1), indices.options().dtype(at::kLong));
  for (int64_t j = 0; j < k; ++j) {
    int64_t size = data.size(first + j);
    lin = lin * size + checked_indices(ctx, indices.select(-1, j), size, first + j);
  }
  return lin;
}

// GatherND with batch_dims b: the first b dimensions of data and indices pair up;
// each index tuple then selects a slice of the remaining dimensions of data.
std::vector<at::Tensor> lower_gather_nd(const OpContext& ctx) {
  const at::Tensor &data = ctx.input(0), &indices = ctx.input(1);
  int64_t b = attr_int(ctx.node, "batch_dims", 0);
  if (b < 0 || b >= std::min(data.dim(), indices.dim())) ctx.fail(fmt::format("batch_dims {} is out of range", b));
  int64_t k = indices.size(-1), batch = 1, cells = 1;
  for (int64_t i = 0; i < b; ++i) {
    if (data.size(i) != indices.size(i)) ctx.fail("batch dimensions of data and indices differ");
    batch *= data.size(i);
  }
  at::Tensor lin = linear_offsets(ctx, data, indices, b);  // [batch..., M...]
  for (int64_t i = b; i < b + k; ++i) cells *= data.size(i);
  Shape rest(data.sizes().begin() + b + k, data.sizes().end());
  Shape flat{batch * cells};
  flat.insert(flat.end(), rest.begin(), rest.end());
  at::Tensor offsets = lin.reshape({batch, -1}) + at::arange(batch, lin.options()).unsqueeze(1) * cells;
  Shape out(indices.sizes().begin(), indices.sizes().end() - 1);
  out.insert(out.end(), rest.begin(), rest.end());
  return {data.reshape(flat).index_select(0, offsets.reshape({-1})).reshape(out)};
}

// ScatterElements (and its pre-11 name Scatter): reduction none/add/mul (opset 16).
// With duplicate indices and reduction none, ONNX leaves the winner undefined.
std::vector<at::Tensor> lower_scatter_elements(const OpContext& ctx) {
  const at::Tensor &data = ctx.input(0), &indices = ctx.input(1), &updates = ctx.input(2);
  int64_t axis = normalize_axis(ctx, attr_int(ctx.node, "axis", 0), data.dim());
  std::string reduction = attr_string(ctx.node, "reduction", "none");
  at::Tensor idx = checked_indices(ctx, indices, data.size(axis), axis);
  at::Tensor upd = updates.to(data.scalar_type());
  if (reduction == "none") return {at::scatter(data, axis, idx, upd)};
  if (reduction == "add") return {at::scatter_add(data, axis, idx, upd)};
  if (reduction == "mul") return {at::scatter_reduce(data, axis, idx, upd, "prod", true)};
  ctx.fail("reduction '" + reduction + "' is not supported");
}

// ScatterND: each index tuple addresses a slice of data that the matching slice of
// updates replaces (or is added to / multiplied into).
std::vector<at::Tensor> lower_scatter_nd(const OpContext& ctx) {
  const at::Tensor &data = ctx.input(0), &indices = ctx.input(1), &updates = ctx.input(2);
  std::string reduction = attr_string(ctx.node, "reduction", "none");
  at::Tensor lin = linear_offsets(ctx, data, indices, 0).reshape({-1});
  int64_t k = indices.size(-1), cells = 1;
  for (int64_t i = 0; i < k; ++i) cells *= data.size(i);
  Shape flat{cells}, upd_shape{lin.numel()};
  for (int64_t i = k; i < data.dim(); ++i) {
    flat.push_back(data.size(i));
    upd_shape.push_back(data.size(i));
  }
  if (updates.numel() != c10::multiply_integers(upd_shape)) ctx.fail("updates do not match indices and data");
  at::Tensor d = data.reshape(flat), u = updates.to(data.scalar_type()).reshape(upd_shape);
  at::Tensor out;
  if (reduction == "none") out = d.index_copy(0, lin, u);
  else if (reduction == "add") out = d.index_add(0, lin, u);
  else if (reduction == "mul") out = d.index_reduce(0, lin, u, "prod", true);
  else ctx.fail("reduction '" + reduction + "' is not supported");
  return {out.reshape(data.sizes())};
}

// OneHot: indices outside [-depth, depth) give a row of off_value (no error).
std::vector<at::Tensor> lower_one_hot(const OpContext& ctx) {
  const at::Tensor &indices = ctx.input(0), &values = ctx.input(2);
  int64_t depth = ctx.input_ints(1).at(0);
  if (depth < 1) ctx.fail(fmt::format("depth {} is not positive", depth));
  if (values.numel() != 2) ctx.fail("values must hold [off_value, on_value]");
  int64_t rank = indices.dim() + 1;
  int64_t axis = normalize_axis(ctx, attr_int(ctx.node, "axis", -1), rank);
  at::Tensor idx = indices.to(at::kLong);
  idx = at::where(idx < 0, idx + depth, idx).unsqueeze(axis);
  Shape class_shape(rank, 1);
  class_shape[axis] = depth;
  ctx.check_size(idx.numel() * depth, values.scalar_type());
  at::Tensor classes = at::arange(depth, idx.options()).reshape(class_shape);
  at::Tensor flat = values.reshape({2});
  return {at::where(idx == classes, flat[1], flat[0])};
}

// NonZero: [rank, count] int64 coordinates in row-major order; a scalar gives [0, count].
std::vector<at::Tensor> lower_nonzero(const OpContext& ctx) {
  return {at::nonzero(ctx.input(0)).t().contiguous()};
}

// TopK: k is an attribute before opset 10, input 1 from 10 on. ONNX breaks ties by
// the lower index, which a stable sort gives (at::topk does not promise it).
std::vector<at::Tensor> lower_top_k(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t axis = normalize_axis(ctx, attr_int(ctx.node, "axis", -1), x.dim());
  int64_t k = ctx.opset < 10 ? attr_int(ctx.node, "k") : ctx.input_ints(1).at(0);
  if (k < 0 || k > x.size(axis)) ctx.fail(fmt::format("k = {} is out of range for an axis of size {}", k, x.size(axis)));
  bool largest = attr_int(ctx.node, "largest", 1) != 0;
  auto [values, order] = at::sort(x, /*stable=*/true, axis, /*descending=*/largest);
  return {values.narrow(axis, 0, k), order.narrow(axis, 0, k)};
}

// Compress: keep the slices where condition is true; a condition shorter than the
// axis leaves the rest out (numpy.compress); without axis the input is flattened.
std::vector<at::Tensor> lower_compress(const OpContext& ctx) {
  at::Tensor x = ctx.input(0);
  at::Tensor cond = ctx.input(1).to(at::kBool).reshape({-1});
  int64_t axis = 0;
  if (has_attr(ctx.node, "axis")) axis = normalize_axis(ctx, attr_int(ctx.node, "axis"), x.dim());
  else x = x.reshape({-1});
  at::Tensor keep = cond.nonzero().reshape({-1});
  if (keep.numel() > 0 && keep.max().item<int64_t>() >= x.size(axis))
    ctx.fail(fmt::format("condition selects index {} of an axis of size {}", keep.max().item<int64_t>(), x.size(axis)));
  return {x.index_select(axis, keep.to(x.device()))};
}

// Unique: ATen sorts; a stable sort of the inverse map groups each value's positions
// in input order, so each group's head is its first occurrence; sorted=0 then
// reorders everything by first occurrence.
std::vector<at::Tensor> lower_unique(const OpContext& ctx) {
  const at::Tensor& in = ctx.input(0);
  bool has_axis = has_attr(ctx.node, "axis");
  int64_t axis = has_axis ? normalize_axis(ctx, attr_int(ctx.node, "axis"), in.dim()) : 0;
  at::Tensor x = has_axis ? in : in.reshape({-1});
  auto [y, inverse, counts] = at::unique_dim(x, axis, /*sorted=*/true, /*return_inverse=*/true, /*return_counts=*/true);
  at::Tensor order = std::get<1>(at::sort(inverse, c10::optional<bool>(true), 0, false));
  at::Tensor first = order.index_select(0, counts.cumsum(0) - counts);
  if (attr_int(ctx.node, "sorted", 1) == 0) {
    at::Tensor perm = first.argsort();
    y = y.index_select(axis, perm);
    first = first.index_select(0, perm);
    counts = counts.index_select(0, perm);
    inverse = perm.argsort().index_select(0, inverse);
  }
  return {y, first, inverse, counts};
}

NANGUARD_REGISTER_OPS({
    OpDef{"Gather", lower_gather},
    OpDef{"GatherElements", lower_gather_elements},
    OpDef{"GatherND", lower_gather_nd},
    OpDef{"ScatterElements", lower_scatter_elements},
    OpDef{"Scatter", lower_scatter_elements},
    OpDef{"ScatterND", lower_scatter_nd},
    OpDef{"OneHot", lower_one_hot},
    OpDef{"NonZero", lower_nonzero},
    OpDef{"TopK", lower_top_k},
    OpDef{"Compress", lower_compress},
    OpDef{"Unique", lower_unique},
});

}  // namespace
}  // namespace nanguard
