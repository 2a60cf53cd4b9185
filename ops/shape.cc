// Ops that move or select data without arithmetic: Reshape, Flatten, Transpose,
// Squeeze, Unsqueeze, Concat, Split, Slice, Expand, Tile, Shape, Size.
// Each is an ATen view, cat/split or index op, so gradients flow through them.
// Abstractly each moves the lower and upper bounds alike (move_bounds.h); Shape and
// Size are exact whatever the values.
// Where an operand moved from an attribute to an input across opsets (Squeeze and
// Unsqueeze axes and Split sizes at 13, Slice starts/ends at 10), ctx.opset decides.
// The ops that create data (ConstantOfShape, Range, Pad, Trilu, EyeLike, Dropout)
// live in shape_create.cc.
#include <optional>
#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/move_bounds.h"
#include "ops/op_registry.h"
#include "ops/symbolic_form.h"

namespace nanguard {
namespace {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s) { return c10::str(at::IntArrayRef(s)); }

// Reshape-5+ reads the target shape from input 1. A 0 copies the input's dimension
// unless allowzero (opset 14) asks for a real 0; one -1 is inferred by ATen.
std::vector<at::Tensor> lower_reshape(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  Shape shape = ctx.input_ints(1);
  bool allowzero = attr_int(ctx.node, "allowzero", 0) != 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 0 || allowzero) continue;
    if (static_cast<int64_t>(i) >= x.dim())
      ctx.fail(fmt::format("shape {} copies dimension {} of a rank-{} input", shape_str(shape), i, x.dim()));
    shape[i] = x.size(static_cast<int64_t>(i));
  }
  if (std::count(shape.begin(), shape.end(), -1) > 1) ctx.fail("shape " + shape_str(shape) + " has more than one -1");
  try {
    return {x.reshape(shape)};
  } catch (const c10::Error&) {
    ctx.fail(fmt::format("cannot reshape {} to {}", shape_str(x.sizes().vec()), shape_str(shape)));
  }
}

// Flatten: axis in [-r, r]; output [prod(dims[:axis]), prod(dims[axis:])].
std::vector<at::Tensor> lower_flatten(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t axis = attr_int(ctx.node, "axis", 1);
  if (axis < 0) axis += x.dim();
  if (axis < 0 || axis > x.dim()) ctx.fail(fmt::format("axis {} is out of range for rank {}", axis, x.dim()));
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < x.dim(); ++i) (i < axis ? outer : inner) *= x.size(i);
  return {x.reshape({outer, inner})};
}

// Transpose: perm defaults to reversing the dimensions.
std::vector<at::Tensor> lower_transpose(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  Shape perm;
  if (auto p = attr_ints_opt(ctx.node, "perm")) {
    perm = *p;
  } else {
    for (int64_t i = x.dim() - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int64_t>(perm.size()) != x.dim()) ctx.fail("perm " + shape_str(perm) + " does not match the rank");
  for (auto& p : perm) p = normalize_axis(ctx, p, x.dim());
  return {x.permute(perm)};
}

// Squeeze/Unsqueeze axes: the attribute before opset 13, input 1 from 13 on.
std::optional<Shape> axes_operand(const OpContext& ctx) {
  if (ctx.opset < 13) return attr_ints_opt(ctx.node, "axes");
  if (ctx.has_input(1)) return ctx.input_ints(1);
  return std::nullopt;
}

// Squeeze without axes drops every size-1 dimension; a listed axis must be size 1.
std::vector<at::Tensor> lower_squeeze(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  std::optional<Shape> axes = axes_operand(ctx);
  std::vector<bool> drop(x.dim(), !axes);
  if (axes) {
    for (int64_t a : *axes) drop[normalize_axis(ctx, a, x.dim())] = true;
  }
  Shape out;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (!drop[i]) {
      out.push_back(x.size(i));
    } else if (x.size(i) != 1) {
      if (axes) ctx.fail(fmt::format("cannot squeeze axis {} of size {}", i, x.size(i)));
      out.push_back(x.size(i));
    }
  }
  return {x.reshape(out)};
}

// Unsqueeze: axes index the output (rank r + len(axes)), in any order, no duplicates.
std::vector<at::Tensor> lower_unsqueeze(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  std::optional<Shape> axes = axes_operand(ctx);
  if (!axes) ctx.fail("axes are required");
  int64_t rank = x.dim() + static_cast<int64_t>(axes->size());
  std::vector<bool> inserted(rank, false);
  for (int64_t a : *axes) {
    int64_t n = normalize_axis(ctx, a, rank);
    if (inserted[n]) ctx.fail(fmt::format("axis {} is listed twice", a));
    inserted[n] = true;
  }
  Shape out;
  int64_t next = 0;
  for (int64_t i = 0; i < rank; ++i) out.push_back(inserted[i] ? 1 : x.size(next++));
  return {x.reshape(out)};
}

std::vector<at::Tensor> lower_concat(const OpContext& ctx) {
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) parts.push_back(ctx.input(i));
  int64_t axis = normalize_axis(ctx, attr_int(ctx.node, "axis"), parts.at(0).dim());
  return {at::cat(parts, axis)};
}

// Split sizes: the attribute before opset 13, optional input 1 from 13 on; without
// them the axis splits into as many equal parts as the node has outputs.
std::vector<at::Tensor> lower_split(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t axis = normalize_axis(ctx, attr_int(ctx.node, "axis", 0), x.dim());
  std::optional<Shape> sizes =
      ctx.opset < 13 ? attr_ints_opt(ctx.node, "split") : (ctx.has_input(1) ? std::optional<Shape>(ctx.input_ints(1)) : std::nullopt);
  int64_t dim = x.size(axis), n = static_cast<int64_t>(ctx.num_outputs());
  if (!sizes) {
    if (n == 0 || dim % n != 0) ctx.fail(fmt::format("axis of size {} does not split into {} equal parts", dim, n));
    sizes = Shape(n, dim / n);
  }
  int64_t total = 0;
  for (int64_t s : *sizes) total += s;
  if (total != dim || static_cast<int64_t>(sizes->size()) != n)
    ctx.fail(fmt::format("split {} does not cover an axis of size {} with {} outputs", shape_str(*sizes), dim, n));
  return at::split_with_sizes(x, *sizes, axis);
}

// One axis of Slice, clamped as ONNX-10+ specifies; a negative step walks backwards,
// which ATen's slice cannot, so it slices the flipped axis instead. The spec clamps
// a negative-step start below -dim to 0 (one element), where numpy gives nothing;
// nanguard follows the spec text, as onnxruntime does.
at::Tensor slice_axis(const OpContext& ctx, const at::Tensor& x, int64_t axis, int64_t start, int64_t end,
                      int64_t step) {
  int64_t d = x.size(axis);
  if (step == 0) ctx.fail("slice step 0");
  if (start < 0) start += d;
  if (end < 0) end += d;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, d);
    end = std::clamp<int64_t>(end, 0, d);
    return x.slice(axis, start, std::max(start, end), step);
  }
  start = std::clamp<int64_t>(start, 0, d - 1);
  end = std::clamp<int64_t>(end, -1, d - 1);
  int64_t n = start > end ? (start - end + (-step) - 1) / (-step) : 0;
  if (d == 0 || n == 0) return x.slice(axis, 0, 0);
  int64_t first = d - 1 - start;  // position of `start` in the flipped axis
  return x.flip({axis}).slice(axis, first, first + (n - 1) * (-step) + 1, -step);
}

// Slice: attributes starts/ends/axes before opset 10; inputs (with steps) from 10 on.
std::vector<at::Tensor> lower_slice(const OpContext& ctx) {
  at::Tensor x = ctx.input(0);
  Shape starts, ends, steps;
  std::optional<Shape> axes;
  if (ctx.opset < 10) {
    starts = attr_ints(ctx.node, "starts");
    ends = attr_ints(ctx.node, "ends");
    axes = attr_ints_opt(ctx.node, "axes");
  } else {
    starts = ctx.input_ints(1);
    ends = ctx.input_ints(2);
    if (ctx.has_input(3)) axes = ctx.input_ints(3);
    if (ctx.has_input(4)) steps = ctx.input_ints(4);
  }
  if (!axes) {
    axes = Shape();
    for (size_t i = 0; i < starts.size(); ++i) axes->push_back(static_cast<int64_t>(i));
  }
  if (steps.empty()) steps = Shape(starts.size(), 1);
  if (ends.size() != starts.size() || axes->size() != starts.size() || steps.size() != starts.size())
    ctx.fail("starts, ends, axes and steps differ in length");
  int64_t rank = x.dim();
  for (size_t i = 0; i < starts.size(); ++i)
    x = slice_axis(ctx, x, normalize_axis(ctx, (*axes)[i], rank), starts[i], ends[i], steps[i]);
  return {x};
}

// Expand: numpy broadcasting of the input against `shape` (either side may be 1).
std::vector<at::Tensor> lower_expand(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  Shape shape = ctx.input_ints(1);
  size_t rank = std::max<size_t>(shape.size(), x.dim());
  Shape out(rank);
  int64_t numel = 1;
  for (size_t i = 0; i < rank; ++i) {
    int64_t a = i < rank - x.dim() ? 1 : x.size(static_cast<int64_t>(i - (rank - x.dim())));
    int64_t b = i < rank - shape.size() ? 1 : shape[i - (rank - shape.size())];
    if (a != b && a != 1 && b != 1)
      ctx.fail(fmt::format("input shape {} does not broadcast to {}", shape_str(x.sizes().vec()), shape_str(shape)));
    out[i] = a == 1 ? b : a;
    numel *= out[i];
  }
  ctx.check_size(numel, x.scalar_type());
  return {x.expand(out)};
}

std::vector<at::Tensor> lower_tile(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  Shape repeats = ctx.input_ints(1);
  if (static_cast<int64_t>(repeats.size()) != x.dim())
    ctx.fail(fmt::format("{} repeats for a rank-{} input", repeats.size(), x.dim()));
  int64_t numel = x.numel();
  for (int64_t r : repeats) {
    if (r < 0) ctx.fail(fmt::format("negative repeat {}", r));
    numel *= r;
  }
  ctx.check_size(numel, x.scalar_type());
  return {x.repeat(repeats)};
}

// Shape-15 start/end: negative values count from the back, then clamp to [0, r].
std::vector<at::Tensor> lower_shape(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t r = x.dim();
  int64_t start = attr_int(ctx.node, "start", 0), end = attr_int(ctx.node, "end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, start, r);
  Shape dims(x.sizes().begin() + start, x.sizes().begin() + end);
  return {at::tensor(dims, at::kLong).to(x.device())};
}

std::vector<at::Tensor> lower_size(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  return {at::scalar_tensor(x.numel(), at::TensorOptions(at::kLong).device(x.device()))};
}

// Shape and Size depend only on the input's shape, which the analysis knows exactly
// even when the values are ranges: their outputs stay exact, so that the shape
// subgraphs PyTorch exports (Shape -> Gather -> Concat -> Reshape) run concretely.
IntervalFn shape_only(LowerFn lower) {
  return [lower = std::move(lower)](const AbstractContext& a) {
    const IntervalTensor& x = a.input(0);
    OpContext c{a.node, a.opset, {at::zeros({}, at::kDouble).expand(x.shape)}, at::kDouble};
    std::vector<IntervalTensor> out;
    for (const at::Tensor& t : lower(c)) out.push_back(IntervalTensor::of_value(t));
    return out;
  };
}

int64_t normalize_axis_abstract(const AbstractContext& a, int64_t axis, int64_t rank);

// Concat keeps cells: along the axis each input's bounds expand to its own extent; on
// any other axis a dimension stays one cell when it is one cell in every input
// (DenseNet's concatenated per-channel cells stay per-channel).
std::vector<IntervalTensor> concat_interval(const AbstractContext& a) {
  const IntervalTensor& first = a.input(0);
  int64_t rank = static_cast<int64_t>(first.shape.size());
  int64_t axis = normalize_axis_abstract(a, attr_int(a.node, "axis"), rank);
  std::vector<int64_t> cell(first.shape);
  for (int64_t d = 0; d < rank; ++d) {
    bool one = true;
    for (const IntervalTensor& t : a.inputs)
      one = one && t.lo.defined() && t.lo.dim() == rank && t.lo.size(d) == 1 && t.hi.size(d) == 1;
    if (one && d != axis) cell[d] = 1;
  }
  std::vector<at::Tensor> los, his;
  std::vector<int64_t> shape = first.shape;
  shape[axis] = 0;
  for (const IntervalTensor& t : a.inputs) {
    if (t.shape.size() != first.shape.size()) a.fail("inputs differ in rank");
    std::vector<int64_t> c = cell;
    c[axis] = t.shape[axis];
    los.push_back(t.lo.expand(c));
    his.push_back(t.hi.expand(c));
    shape[axis] += t.shape[axis];
  }
  return {IntervalTensor::of_bounds(at::cat(los, axis), at::cat(his, axis), shape, first.dtype)};
}

int64_t normalize_axis_abstract(const AbstractContext& a, int64_t axis, int64_t rank) {
  int64_t r = axis < 0 ? axis + rank : axis;
  if (r < 0 || r >= rank) a.fail("axis out of range");
  return r;
}

// Pure data movement: the lowering moves the lower and the upper bounds alike; the
// shape, axes, split, starts/ends/steps and repeats operands ('e') must be exact.
// Concat joins disjoint parts: the squared norms add.
double concat_norm(const NormContext& c) {
  double sum = 0;
  for (size_t i = 0; i < c.inputs.size(); ++i) sum += c.input(i) * c.input(i);
  return std::sqrt(sum) * (1 + 0x1p-50);
}

OpDef moves(const char* op_type, LowerFn lower, const char* roles) {
  OpDef d{op_type, lower};
  d.interval = moving(lower, roles);
  d.monotone = Monotone::kDataMovement;
  return d;
}

// Symbolic bounds through Concat along channels: each input takes its slice of the
// rows' channels (a constant input's slice becomes a constant term).
bool concat_symbolic(BackSubstitution& b, const Node& n, const LinearRows& p) {
  const IntervalTensor* out = b.interval(n.outputs[0]);
  if (!out) return false;
  int64_t rank = static_cast<int64_t>(out->shape.size()), axis = attr_int(n, "axis", 0);
  if ((axis < 0 ? axis + rank : axis) != 1) return false;
  std::vector<std::pair<std::string, const IntervalTensor*>> ins;
  for (const std::string& in : n.inputs) {
    const IntervalTensor* t = in.empty() ? nullptr : b.interval(in);
    if (!t || t->shape.size() != out->shape.size()) return false;
    ins.emplace_back(in, t);
  }
  // Every slice is checked before any is applied: a refusal leaves the rows to be
  // evaluated on the output, and a term already passed on would count twice.
  std::vector<std::optional<at::Tensor>> constants;
  for (const auto& [name, t] : ins) {
    constants.emplace_back();
    if (!t->exact()) continue;
    constants.back() = per_channel(*t, t->shape[1], rank);
    if (!constants.back()) return false;
  }
  int64_t first_channel = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    const auto& [name, t] = ins[i];
    at::Tensor slice = p.A.narrow(1, first_channel, t->shape[1]);
    first_channel += t->shape[1];
    if (constants[i]) b.add_constant(p, slice, *constants[i]);
    else b.pass_to(name, p.with_coefficients(slice.contiguous()));
  }
  return true;
}

OpDef shape_op(const char* op_type, LowerFn lower) {
  OpDef d{op_type, lower};
  d.interval = shape_only(lower);
  return d;
}

NANGUARD_REGISTER_OPS({
    with_norm(moves("Reshape", lower_reshape, "de"), norm_preserved),
    with_norm(moves("Flatten", lower_flatten, "d"), norm_preserved),
    with_norm(moves("Transpose", lower_transpose, "d"), norm_preserved),
    with_norm(moves("Squeeze", lower_squeeze, "de"), norm_preserved),
    with_norm(moves("Unsqueeze", lower_unsqueeze, "de"), norm_preserved),
    with_norm(with_symbolic(with(moves("Concat", lower_concat, "d"), concat_interval), concat_symbolic), concat_norm),
    moves("Split", lower_split, "de"),
    moves("Slice", lower_slice, "de"),
    moves("Expand", lower_expand, "de"),
    moves("Tile", lower_tile, "de"),
    shape_op("Shape", lower_shape),
    shape_op("Size", lower_size),
});

}  // namespace
}  // namespace nanguard
