// Indexing ops: Gather, GatherElements, GatherND, ScatterElements, Scatter,
// ScatterND, OneHot, ReverseSequence, NonZero, TopK, Compress, Unique.
// Index tensors are data, so every lowering checks them against the axis size
// first: ATen would abort or read out of bounds, and an out-of-range index is a
// `crash` finding, which must surface as a clear error naming the index and bound.
// Negative indices wrap (index + size), as ONNX allows from opset 11.
#include <cmath>
#include <limits>
#include <stdexcept>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/interval_arith.h"
#include "ops/move_bounds.h"
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

// ReverseSequence: batch b's first sequence_lens[b] steps along time_axis reversed,
// the rest kept: a gather along time_axis with per-batch indices.
std::vector<at::Tensor> lower_reverse_sequence(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  if (x.dim() < 2) ctx.fail("the input must have rank 2 or more");
  int64_t t_axis = attr_int(ctx.node, "time_axis", 0), b_axis = attr_int(ctx.node, "batch_axis", 1);
  if ((t_axis != 0 && t_axis != 1) || b_axis != 1 - t_axis) ctx.fail("time_axis and batch_axis must be 0 and 1 in some order");
  std::vector<int64_t> lens = ctx.input_ints(1);
  int64_t steps = x.size(t_axis), batch = x.size(b_axis);
  if (static_cast<int64_t>(lens.size()) != batch)
    ctx.fail(fmt::format("sequence_lens holds {} lengths for a batch of {}", lens.size(), batch));
  std::vector<int64_t> idx(steps * batch);  // [time, batch]
  for (int64_t b = 0; b < batch; ++b) {
    if (lens[b] < 0 || lens[b] > steps) ctx.fail(fmt::format("sequence length {} is outside [0, {}]", lens[b], steps));
    for (int64_t t = 0; t < steps; ++t) idx[t * batch + b] = t < lens[b] ? lens[b] - 1 - t : t;
  }
  at::Tensor index = at::tensor(idx, at::TensorOptions().dtype(at::kLong)).reshape({steps, batch}).to(x.device());
  if (t_axis == 1) index = index.t();
  std::vector<int64_t> view(x.dim(), 1);
  view[0] = index.size(0);
  view[1] = index.size(1);
  return {at::gather(x, t_axis, index.reshape(view).expand(x.sizes()).contiguous())};
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

// ---- Abstract semantics ----------------------------------------------------------
// Exact, in-range indices: the op only moves values, so the lowering moves the lower
// and the upper bounds (move_bounds.h). Ranged indices: each output element is some
// element of the reachable part of the data, so it lies in that part's hull; an index
// range that can leave [-dim, dim-1] is a `crash` hazard (the op cannot run there),
// and the analysis continues on the safe state (indices in range).

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kUnitRoundoff = 5.9604644775390625e-08;  // 2^-24

int64_t axis_of(const AbstractContext& a, int64_t rank, int64_t fallback) {
  int64_t axis = attr_int(a.node, "axis", fallback);
  if (axis < -rank || axis >= rank) a.fail(fmt::format("axis {} is out of range for rank {}", axis, rank));
  return axis < 0 ? axis + rank : axis;
}

// Whether some / every index in `idx` (bounds, any shape) lies outside [-dim, dim-1].
struct IndexVerdict {
  bool possible = false, definite = false;
};
IndexVerdict index_verdict(const at::Tensor& lo, const at::Tensor& hi, int64_t dim) {
  at::Tensor out_lo = lo < -dim, out_hi = hi > dim - 1;
  IndexVerdict v;
  v.possible = lo.numel() > 0 && out_lo.logical_or(out_hi).any().item<bool>();
  v.definite = v.possible && (lo > dim - 1).logical_or(hi < -dim).all().item<bool>();
  return v;
}

bool exact_in_range(const IntervalTensor& idx, int64_t dim) {
  return idx.exact() && !index_verdict(idx.lo, idx.hi, dim).possible;
}

// The hull of `t` along `axis` over the positions indices in [ilo, ihi] reach (a
// negative index i reaches dim + i); keeps `axis` as a size-1 dimension.
Bounds axis_hull(const IntervalTensor& t, int64_t axis, double ilo, double ihi) {
  int64_t dim = t.shape[axis];
  if (dim == 0) return {t.lo.sum(axis, true) * 0 + kInf, t.hi.sum(axis, true) * 0 - kInf};
  ilo = std::max(ilo, -static_cast<double>(dim));
  ihi = std::min(ihi, static_cast<double>(dim - 1));
  std::vector<std::pair<int64_t, int64_t>> spans;
  auto add = [&](double a, double b) {
    if (a <= b) spans.emplace_back(static_cast<int64_t>(std::ceil(a)), static_cast<int64_t>(std::floor(b)));
  };
  add(std::max(ilo, 0.0), ihi);
  add(ilo + dim, std::min(ihi, -1.0) + dim);
  if (spans.empty()) spans.emplace_back(0, dim - 1);  // no valid index: the op crashes
  at::Tensor lo, hi;
  for (auto [first, last] : spans) {
    bool cell = t.lo.size(axis) == 1;
    at::Tensor l = cell ? t.lo : t.lo.narrow(axis, first, last - first + 1);
    at::Tensor h = cell ? t.hi : t.hi.narrow(axis, first, last - first + 1);
    l = l.amin(axis, true);
    h = h.amax(axis, true);
    lo = lo.defined() ? at::minimum(lo, l) : l;
    hi = hi.defined() ? at::maximum(hi, h) : h;
  }
  return {lo, hi};
}

HazardReport index_report(const char* hazard, int operand, int64_t dim, bool definite) {
  return HazardReport{hazard, HazardKind::kCrash, operand, fmt::format("index outside [{}, {}]", -dim, dim - 1), definite};
}

// An index's bound is the data's extent along the axis: a shape, not an operand range.
std::vector<HazardFacet> index_facets(const char* hazard) {
  return {opaque_facet(hazard, HazardKind::kCrash, "an index bound depends on the data's shape, which ranges do not carry")};
}

// Gather: the hull of the reachable slice of data, one cell per index position.
std::vector<IntervalTensor> gather_interval(const AbstractContext& a) {
  const IntervalTensor &data = a.input(0), &idx = a.input(1);
  int64_t r = static_cast<int64_t>(data.shape.size()), axis = axis_of(a, r, 0);
  if (exact_in_range(idx, data.shape[axis])) return move_bounds(lower_gather, a, "de");
  Bounds h = axis_hull(data, axis, idx.min(), idx.max());
  Shape out(data.shape.begin(), data.shape.begin() + axis), cells(h.lo.sizes().begin(), h.lo.sizes().begin() + axis);
  out.insert(out.end(), idx.shape.begin(), idx.shape.end());
  cells.insert(cells.end(), idx.shape.size(), 1);
  out.insert(out.end(), data.shape.begin() + axis + 1, data.shape.end());
  cells.insert(cells.end(), h.lo.sizes().begin() + axis + 1, h.lo.sizes().end());
  return {IntervalTensor::of_bounds(h.lo.reshape(cells), h.hi.reshape(cells), out, data.dtype)};
}

std::vector<HazardReport> gather_hazards(const AbstractContext& a) {
  const IntervalTensor &data = a.input(0), &idx = a.input(1);
  int64_t dim = data.shape[axis_of(a, static_cast<int64_t>(data.shape.size()), 0)];
  IndexVerdict v = index_verdict(idx.lo, idx.hi, dim);
  if (!v.possible) return {};
  return {index_report("gather-index-out-of-range", 1, dim, v.definite)};
}

// GatherElements: out has the indices' shape; each element comes from its own line
// of data along the axis, so the hull is per line (other dimensions narrowed to the
// indices' extent).
std::vector<IntervalTensor> gather_elements_interval(const AbstractContext& a) {
  const IntervalTensor &data = a.input(0), &idx = a.input(1);
  int64_t r = static_cast<int64_t>(data.shape.size()), axis = axis_of(a, r, 0);
  if (static_cast<int64_t>(idx.shape.size()) != r) a.fail("indices and data differ in rank");
  if (exact_in_range(idx, data.shape[axis])) return move_bounds(lower_gather_elements, a, "de");
  Bounds h = axis_hull(data, axis, idx.min(), idx.max());
  for (int64_t d = 0; d < r; ++d) {
    if (d == axis || h.lo.size(d) == 1) continue;
    h.lo = h.lo.narrow(d, 0, idx.shape[d]);
    h.hi = h.hi.narrow(d, 0, idx.shape[d]);
  }
  return {IntervalTensor::of_bounds(h.lo, h.hi, idx.shape, data.dtype)};
}

// Known lengths move the bounds; unknown ones may bring any step of a batch to any
// position, so each batch gets its hull over time.
std::vector<IntervalTensor> reverse_sequence_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if (a.input(1).exact()) return move_bounds(lower_reverse_sequence, a, "de");
  int64_t t_axis = attr_int(a.node, "time_axis", 0);
  if (t_axis != 0 && t_axis != 1) a.fail("time_axis must be 0 or 1");
  Bounds h = axis_hull(x, t_axis, 0, static_cast<double>(x.shape[t_axis] - 1));
  return {IntervalTensor::of_bounds(h.lo, h.hi, x.shape, x.dtype)};
}

// GatherND: component j of each index tuple addresses dimension batch_dims + j.
IndexVerdict nd_verdict(const IntervalTensor& data, const IntervalTensor& idx, int64_t b) {
  IndexVerdict all;
  int64_t k = idx.shape.empty() ? 0 : idx.shape.back();
  at::Tensor lo = idx.full_lo(), hi = idx.full_hi();
  bool definite_any = false;
  for (int64_t j = 0; j < k && b + j < static_cast<int64_t>(data.shape.size()); ++j) {
    IndexVerdict v = index_verdict(lo.select(-1, j), hi.select(-1, j), data.shape[b + j]);
    all.possible |= v.possible;
    definite_any |= v.definite;
  }
  all.definite = definite_any;
  return all;
}

std::vector<IntervalTensor> gather_nd_interval(const AbstractContext& a) {
  const IntervalTensor &data = a.input(0), &idx = a.input(1);
  int64_t b = attr_int(a.node, "batch_dims", 0);
  int64_t k = idx.shape.empty() ? 0 : idx.shape.back();
  if (b < 0 || k < 1 || b + k > static_cast<int64_t>(data.shape.size())) a.fail("index tuples do not fit the data's rank");
  if (idx.exact() && !nd_verdict(data, idx, b).possible) return move_bounds(lower_gather_nd, a, "de");
  Shape out(idx.shape.begin(), idx.shape.end() - 1);
  out.insert(out.end(), data.shape.begin() + b + k, data.shape.end());
  return {IntervalTensor::uniform(out, data.dtype, data.min(), data.max())};
}

std::vector<HazardReport> gather_nd_hazards(const AbstractContext& a) {
  IndexVerdict v = nd_verdict(a.input(0), a.input(1), attr_int(a.node, "batch_dims", 0));
  if (!v.possible) return {};
  return {HazardReport{"gather-index-out-of-range", HazardKind::kCrash, 1, "an index tuple component outside [-dim, dim-1]", v.definite}};
}

// Scatter with exact indices along `axis` of full bound tensors d (data) and u
// (updates, shaped like idx). none: touched elements lie in the hull of the updates
// that reach them (whichever duplicate wins); add: sums of bounds plus the float32
// accumulation error gamma_n * sum |terms|; mul: products (monotone when every
// factor is >= 0, else bounded in magnitude), relative error gamma_n.
Bounds scatter_known(const Bounds& d, const at::Tensor& idx, const Bounds& u, int64_t axis, const std::string& reduction) {
  at::Tensor count = at::zeros_like(d.lo).scatter_add(axis, idx, at::ones_like(u.lo));
  at::Tensor touched = count > 0;
  if (reduction == "none")
    return {d.lo.scatter_reduce(axis, idx, u.lo, "amin", false), d.hi.scatter_reduce(axis, idx, u.hi, "amax", false)};
  at::Tensor n = count + 1, gamma = n * kUnitRoundoff / (1 - n * kUnitRoundoff);
  at::Tensor dmag = at::maximum(d.lo.abs(), d.hi.abs()), umag = at::maximum(u.lo.abs(), u.hi.abs());
  if (reduction == "add") {
    at::Tensor err = gamma * dmag.scatter_add(axis, idx, umag) + kFloat32MinSubnormal;
    return {d.lo.scatter_add(axis, idx, u.lo) - err, d.hi.scatter_add(axis, idx, u.hi) + err};
  }
  if (reduction != "mul") throw std::runtime_error("reduction '" + reduction + "' is not supported");
  bool nonneg = (d.lo >= 0).all().item<bool>() && (u.lo >= 0).all().item<bool>();
  if (nonneg) {
    at::Tensor lo = d.lo.scatter_reduce(axis, idx, u.lo, "prod", true), hi = d.hi.scatter_reduce(axis, idx, u.hi, "prod", true);
    return {lo - gamma * lo - kFloat32MinSubnormal, hi + gamma * hi + kFloat32MinSubnormal};
  }
  at::Tensor mag = dmag.scatter_reduce(axis, idx, umag, "prod", true);
  mag = mag + gamma * mag + kFloat32MinSubnormal;
  return {at::where(touched, -mag, d.lo), at::where(touched, mag, d.hi)};
}

// Scatter with ranged indices: any element may receive any subset of the updates.
Bounds scatter_unknown(const Bounds& d, const Bounds& u, const std::string& reduction) {
  if (u.lo.numel() == 0) return d;
  if (reduction == "none") return {at::minimum(d.lo, u.lo.min()), at::maximum(d.hi, u.hi.max())};
  double n = static_cast<double>(u.lo.numel()) + 1, gamma = n * kUnitRoundoff / (1 - n * kUnitRoundoff);
  at::Tensor dmag = at::maximum(d.lo.abs(), d.hi.abs()), umag = at::maximum(u.lo.abs(), u.hi.abs());
  if (reduction == "add") {
    at::Tensor err = gamma * (dmag + umag.sum()) + kFloat32MinSubnormal;
    return {d.lo + u.lo.clamp_max(0).sum() - err, d.hi + u.hi.clamp_min(0).sum() + err};
  }
  if (reduction != "mul") throw std::runtime_error("reduction '" + reduction + "' is not supported");
  at::Tensor mag = dmag * umag.clamp_min(1).prod();
  mag = mag + gamma * mag + kFloat32MinSubnormal;
  return {-mag, mag};
}

IntervalTensor scatter_result(Bounds b, const IntervalTensor& data) {
  IntervalTensor out = IntervalTensor::of_bounds(b.lo, b.hi, data.shape, data.dtype);
  return data.is_float() ? out : round_out(out, 0);
}

std::vector<IntervalTensor> scatter_elements_interval(const AbstractContext& a) {
  const IntervalTensor &data = a.input(0), &idx = a.input(1), &upd = a.input(2);
  int64_t axis = axis_of(a, static_cast<int64_t>(data.shape.size()), 0);
  std::string reduction = attr_string(a.node, "reduction", "none");
  Bounds d{data.full_lo().contiguous(), data.full_hi().contiguous()};
  Bounds u{upd.full_lo().contiguous(), upd.full_hi().contiguous()};
  if (!exact_in_range(idx, data.shape[axis])) return {scatter_result(scatter_unknown(d, u, reduction), data)};
  at::Tensor i = idx.value.to(at::kLong).to(at::kCPU);
  i = at::where(i < 0, i + data.shape[axis], i);
  return {scatter_result(scatter_known(d, i, u, axis, reduction), data)};
}

std::vector<HazardReport> scatter_elements_hazards(const AbstractContext& a) {
  const IntervalTensor &data = a.input(0), &idx = a.input(1);
  int64_t dim = data.shape[axis_of(a, static_cast<int64_t>(data.shape.size()), 0)];
  IndexVerdict v = index_verdict(idx.lo, idx.hi, dim);
  if (!v.possible) return {};
  return {index_report("scatter-index-out-of-range", 1, dim, v.definite)};
}

// ScatterND as a scatter along dimension 0 of data viewed as [cells, rest...], with
// the index tuples turned into linear offsets.
std::vector<IntervalTensor> scatter_nd_interval(const AbstractContext& a) {
  const IntervalTensor &data = a.input(0), &idx = a.input(1), &upd = a.input(2);
  std::string reduction = attr_string(a.node, "reduction", "none");
  int64_t k = idx.shape.empty() ? 0 : idx.shape.back();
  if (k < 1 || k > static_cast<int64_t>(data.shape.size())) a.fail("index tuples do not fit the data's rank");
  Bounds d{data.full_lo().contiguous(), data.full_hi().contiguous()};
  Bounds u{upd.full_lo().contiguous(), upd.full_hi().contiguous()};
  if (!idx.exact() || nd_verdict(data, idx, 0).possible) return {scatter_result(scatter_unknown(d, u, reduction), data)};
  OpContext c{a.node, a.opset, {at::zeros({}, at::kDouble).expand(data.shape), idx.value}, at::kDouble};
  at::Tensor lin = linear_offsets(c, c.inputs[0], idx.value, 0).reshape({-1}).to(at::kCPU);
  int64_t cells = 1;
  for (int64_t i = 0; i < k; ++i) cells *= data.shape[i];
  Shape flat{cells}, upd_shape{lin.numel()}, view{lin.numel()};
  for (size_t i = k; i < data.shape.size(); ++i) {
    flat.push_back(data.shape[i]);
    upd_shape.push_back(data.shape[i]);
    view.push_back(1);
  }
  if (upd.numel() != c10::multiply_integers(upd_shape)) a.fail("updates do not match indices and data");
  at::Tensor i = lin.reshape(view).expand(upd_shape);
  Bounds df{d.lo.reshape(flat), d.hi.reshape(flat)}, uf{u.lo.reshape(upd_shape), u.hi.reshape(upd_shape)};
  Bounds r = scatter_known(df, i, uf, 0, reduction);
  return {scatter_result({r.lo.reshape(data.shape), r.hi.reshape(data.shape)}, data)};
}

std::vector<HazardReport> scatter_nd_hazards(const AbstractContext& a) {
  IndexVerdict v = nd_verdict(a.input(0), a.input(1), 0);
  if (!v.possible) return {};
  return {HazardReport{"scatter-index-out-of-range", HazardKind::kCrash, 1, "an index tuple component outside [-dim, dim-1]", v.definite}};
}

// OneHot: exact indices place the [off, on] bounds; ranged ones give their hull.
std::vector<IntervalTensor> one_hot_interval(const AbstractContext& a) {
  const IntervalTensor &idx = a.input(0), &depth = a.input(1), &values = a.input(2);
  if (!depth.exact()) a.fail("depth must be known exactly");
  if (idx.exact()) return move_bounds(lower_one_hot, a, "eed");
  int64_t d = depth.value.to(at::kLong).reshape({-1})[0].item<int64_t>();
  int64_t rank = static_cast<int64_t>(idx.shape.size()) + 1, axis = axis_of(a, rank, -1);
  Shape out = idx.shape;
  out.insert(out.begin() + axis, d);
  return {IntervalTensor::uniform(out, values.dtype, values.min(), values.max())};
}

// Elements whose truth (!= 0) the bounds decide; undefined when some are open.
at::Tensor decided_truth(const IntervalTensor& t) {
  at::Tensor yes = (t.lo > 0).logical_or(t.hi < 0), no = (t.lo == 0).logical_and(t.hi == 0);
  if (!yes.logical_or(no).all().item<bool>()) return at::Tensor();
  return yes.expand(t.shape).contiguous();
}

// NonZero's and Unique's output shapes depend on the values; an IntervalTensor needs
// an exact shape, so a range is only followed when it decides every element.
std::vector<IntervalTensor> nonzero_interval(const AbstractContext& a) {
  at::Tensor truth = decided_truth(a.input(0));
  if (!truth.defined()) throw std::runtime_error("NonZero of a ranged input has a data-dependent output shape");
  return {IntervalTensor::of_value(at::nonzero(truth).t().contiguous())};
}

std::vector<IntervalTensor> unique_interval(const AbstractContext&) {
  throw std::runtime_error("Unique of a ranged input has a data-dependent output shape");
}

// TopK: every order statistic is non-decreasing in each element, so sorting the
// lower and the upper bounds bounds the values; the indices are only known to lie
// in [0, dim-1].
std::vector<IntervalTensor> top_k_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  std::vector<IntervalTensor> out = move_bounds(lower_top_k, a, "de");
  int64_t dim = x.shape[axis_of(a, static_cast<int64_t>(x.shape.size()), -1)];
  out[1] = IntervalTensor::uniform(out[1].shape, at::kLong, 0, static_cast<double>(dim - 1));
  return out;
}

// Compress: a condition the bounds decide selects the same slices in every run.
std::vector<IntervalTensor> compress_interval(const AbstractContext& a) {
  const IntervalTensor& cond = a.input(1);
  at::Tensor truth = cond.exact() ? cond.value : decided_truth(cond);
  if (!truth.defined()) throw std::runtime_error("Compress with a ranged condition has a data-dependent output shape");
  AbstractContext b{a.node, a.graph, a.opset, {a.input(0), IntervalTensor::of_value(truth)}, a.float_type};
  return move_bounds(lower_compress, b, "de");
}

NANGUARD_REGISTER_OPS({
    with_facets(with(OpDef{"Gather", lower_gather}, gather_interval, gather_hazards), index_facets("gather-index-out-of-range")),
    with_facets(with(OpDef{"GatherElements", lower_gather_elements}, gather_elements_interval, gather_hazards),
                index_facets("gather-index-out-of-range")),
    with_facets(with(OpDef{"GatherND", lower_gather_nd}, gather_nd_interval, gather_nd_hazards), index_facets("gather-index-out-of-range")),
    with_facets(with(OpDef{"ScatterElements", lower_scatter_elements}, scatter_elements_interval, scatter_elements_hazards),
                index_facets("scatter-index-out-of-range")),
    with_facets(with(OpDef{"Scatter", lower_scatter_elements}, scatter_elements_interval, scatter_elements_hazards),
                index_facets("scatter-index-out-of-range")),
    with_facets(with(OpDef{"ScatterND", lower_scatter_nd}, scatter_nd_interval, scatter_nd_hazards), index_facets("scatter-index-out-of-range")),
    with(OpDef{"OneHot", lower_one_hot}, one_hot_interval),
    with(OpDef{"ReverseSequence", lower_reverse_sequence}, reverse_sequence_interval),
    with(value_dependent_shape(OpDef{"NonZero", lower_nonzero}), nonzero_interval),
    with(OpDef{"TopK", lower_top_k}, top_k_interval),
    with(value_dependent_shape(OpDef{"Compress", lower_compress}), compress_interval),
    with(value_dependent_shape(OpDef{"Unique", lower_unique}), unique_interval),
});

}  // namespace
}  // namespace nanguard
