// Shape-family ops that create or fill data: ConstantOfShape, Range, Pad, Trilu,
// EyeLike, and inference-mode Dropout. Output sizes that come from data are checked
// against the tensor cap before anything is allocated.
#include <cmath>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/move_bounds.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

using Shape = std::vector<int64_t>;

// An ONNX element type as the run computes it: float32 follows the run's float
// type, as weights do in the executor, so a float64 run does not mix precisions.
at::ScalarType run_type_for(const OpContext& ctx, int32_t onnx_type) {
  at::ScalarType t = scalar_type_for(onnx_type);
  return t == at::kFloat ? ctx.float_type : t;
}

int64_t checked_numel(const OpContext& ctx, const Shape& shape, at::ScalarType type) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) ctx.fail(fmt::format("negative dimension {}", d));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) ctx.fail("output size overflows int64");
    n *= d;
  }
  ctx.check_size(n, type);
  return n;
}

// ConstantOfShape: `value` is a one-element tensor (default float32 0).
std::vector<at::Tensor> lower_constant_of_shape(const OpContext& ctx) {
  Shape shape = ctx.input_ints(0);
  at::Tensor value = at::zeros({1}, ctx.float_type);
  if (has_attr(ctx.node, "value")) {
    const onnx::TensorProto& p = attr_tensor(ctx.node, "value");
    value = tensor_from_proto(p).to(run_type_for(ctx, p.data_type()));
    if (value.numel() != 1) ctx.fail(fmt::format("value holds {} elements, expected 1", value.numel()));
  }
  checked_numel(ctx, shape, value.scalar_type());
  return {value.to(ctx.device).reshape({}).expand(shape).contiguous()};
}

// Range: n = max(ceil((limit - start) / delta), 0); output[i] = start + i * delta,
// computed from the start and delta tensors so that gradients reach them.
std::vector<at::Tensor> lower_range(const OpContext& ctx) {
  const at::Tensor &start = ctx.input(0), &limit = ctx.input(1), &delta = ctx.input(2);
  int64_t n = 0;
  if (at::isFloatingType(start.scalar_type())) {
    double s = start.item<double>(), l = limit.item<double>(), d = delta.item<double>();
    if (d == 0 || !std::isfinite(s) || !std::isfinite(l) || !std::isfinite(d))
      ctx.fail(fmt::format("range({}, {}, {}) has no finite length", s, l, d));
    double count = std::ceil((l - s) / d);
    if (count > 9e18) ctx.fail(fmt::format("range({}, {}, {}) has {} elements", s, l, d, count));
    n = std::max<int64_t>(static_cast<int64_t>(count), 0);
  } else {
    int64_t s = start.item<int64_t>(), l = limit.item<int64_t>(), d = delta.item<int64_t>();
    if (d == 0) ctx.fail("delta is 0");
    int64_t span = l - s;
    n = std::max<int64_t>(span / d + ((span % d != 0 && (span > 0) == (d > 0)) ? 1 : 0), 0);
  }
  ctx.check_size(n, start.scalar_type());
  at::Tensor i = at::arange(n, at::TensorOptions(start.scalar_type()).device(start.device()));
  return {(start.reshape({}) + i * delta.reshape({})).to(start.scalar_type())};
}

// Index map of one padded axis in reflect or edge mode (numpy.pad semantics; a
// reflect pad longer than the axis keeps reflecting).
at::Tensor pad_indices(int64_t d, int64_t before, int64_t after, bool reflect, at::Device device) {
  at::Tensor j = at::arange(-before, d + after, at::TensorOptions(at::kLong));
  if (!reflect || d == 1) return j.clamp(0, d - 1).to(device);
  int64_t period = 2 * (d - 1);
  at::Tensor m = at::remainder(j, period);
  return at::where(m >= d, period - m, m).to(device);
}

// Pad: pads (and the constant) are attributes before opset 11, inputs from 11 on.
// Negative pads crop (ATen's constant_pad_nd does that; reflect/edge crop first).
std::vector<at::Tensor> lower_pad(const OpContext& ctx) {
  at::Tensor x = ctx.input(0);
  std::string mode = attr_string(ctx.node, "mode", "constant");
  Shape pads = ctx.opset < 11 ? attr_ints(ctx.node, "pads") : ctx.input_ints(1);
  int64_t r = x.dim();
  if (static_cast<int64_t>(pads.size()) != 2 * r) ctx.fail(fmt::format("{} pads for a rank-{} input", pads.size(), r));
  Shape out_shape(r);
  for (int64_t i = 0; i < r; ++i) out_shape[i] = x.size(i) + pads[i] + pads[i + r];
  checked_numel(ctx, out_shape, x.scalar_type());
  if (mode == "constant") {
    Shape aten_pads;  // ATen lists the last dimension first
    for (int64_t i = r - 1; i >= 0; --i) aten_pads.insert(aten_pads.end(), {pads[i], pads[i + r]});
    at::Tensor padded = at::constant_pad_nd(x, aten_pads, 0);
    at::Tensor value;
    if (ctx.opset < 11) value = at::scalar_tensor(attr_float(ctx.node, "value", 0.f), x.options());
    else if (ctx.has_input(2)) value = ctx.input(2).reshape({}).to(x.scalar_type());
    if (!value.defined()) return {padded};
    // The constant enters through where(), so a gradient can reach it too.
    at::Tensor inside = at::constant_pad_nd(at::ones_like(x, at::kByte), aten_pads, 0).to(at::kBool);
    return {at::where(inside, padded, value)};
  }
  if (mode != "reflect" && mode != "edge") ctx.fail("mode '" + mode + "' is not supported");
  for (int64_t i = 0; i < r; ++i) {
    int64_t before = pads[i], after = pads[i + r];
    if (before < 0 || after < 0) {
      int64_t lo = std::max<int64_t>(-before, 0), hi = std::max<int64_t>(-after, 0);
      x = x.narrow(i, lo, x.size(i) - lo - hi);
    }
    before = std::max<int64_t>(before, 0);
    after = std::max<int64_t>(after, 0);
    if (before == 0 && after == 0) continue;
    if (x.size(i) == 0) ctx.fail(fmt::format("cannot {}-pad an empty axis {}", mode, i));
    x = x.index_select(i, pad_indices(x.size(i), before, after, mode == "reflect", x.device()));
  }
  return {x};
}

// Trilu (opset 14): k from the optional input 1 (default 0).
std::vector<at::Tensor> lower_trilu(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  int64_t k = ctx.has_input(1) ? ctx.input_ints(1).at(0) : 0;
  bool upper = attr_int(ctx.node, "upper", 1) != 0;
  return {upper ? at::triu(x, k) : at::tril(x, k)};
}

// EyeLike: ones on diagonal k of a rank-2 shape; dtype attribute or the input's.
std::vector<at::Tensor> lower_eye_like(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  if (x.dim() != 2) ctx.fail(fmt::format("input has rank {}, expected 2", x.dim()));
  at::ScalarType type = has_attr(ctx.node, "dtype") ? run_type_for(ctx, attr_int(ctx.node, "dtype")) : x.scalar_type();
  int64_t k = attr_int(ctx.node, "k", 0);
  auto opts = at::TensorOptions(at::kLong).device(x.device());
  at::Tensor diag = at::arange(x.size(1), opts).unsqueeze(0) - at::arange(x.size(0), opts).unsqueeze(1) == k;
  return {diag.to(type)};
}

// Dropout in inference is the identity and its mask is all true (all ones of the
// input's type for opsets 7-9). Training mode (opset 12+) draws a random mask,
// which nanguard does not model, except that ratio 0 keeps everything.
std::vector<at::Tensor> lower_dropout(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  if (ctx.opset >= 12 && ctx.has_input(2) && ctx.input_ints(2).at(0) != 0) {
    double ratio = ctx.has_input(1) ? ctx.input(1).item<double>() : 0.5;
    if (ratio != 0) ctx.fail("training-mode Dropout is not supported");
  }
  if (ctx.num_outputs() < 2 || ctx.node.outputs[1].empty()) return {x};
  return {x, at::ones(x.sizes(), x.options().dtype(ctx.opset < 10 ? x.scalar_type() : at::kBool))};
}

// EyeLike reads only its input's shape (and type): the output is exact.
std::vector<IntervalTensor> eye_like_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  at::Tensor stand_in = at::zeros({}, at::TensorOptions(x.dtype)).expand(x.shape);
  OpContext c{a.node, a.opset, {stand_in}, a.float_type};
  return {IntervalTensor::of_value(lower_eye_like(c)[0])};
}

// Inference Dropout moves its input; the ratio matters only in training mode, where
// the lowering accepts nothing but an exact 0, so it must then be exact.
std::vector<IntervalTensor> dropout_interval(const AbstractContext& a) {
  bool training = a.has_input(2) && (!a.input(2).exact() || a.input(2).value.ne(0).any().item<bool>());
  return move_bounds(lower_dropout, a, training ? "dee" : "dxe");
}

// Constant Pad keeps x's elements (or crops them) and adds the padding value at most
// out - in times; reflect and edge repeat elements and have no norm facet.
double pad_norm(const NormContext& c) {
  if (attr_string(c.a.node, "mode", "constant") != "constant" || c.outputs.empty() || !c.outputs[0].lo.defined())
    return kNoNormBound;
  double value = 0;
  if (c.a.opset < 11) value = std::abs(attr_float(c.a.node, "value", 0.f));
  else if (c.a.has_input(2)) value = std::max(std::abs(c.a.input(2).min()), std::abs(c.a.input(2).max()));
  if (std::isnan(value)) return kNoNormBound;
  double added = static_cast<double>(std::max<int64_t>(c.outputs[0].numel() - c.a.input(0).numel(), 0));
  return c.input(0) + (value == 0 ? 0 : value * std::sqrt(added));
}

// Pad (constant: the padding value is one more data operand, each output element is
// either an input element or that value; reflect/edge copy elements) and Trilu (each
// element kept or set to 0) only move values, so their bounds move the same way. The
// shape-valued operands of ConstantOfShape and Range decide the output's shape and
// must be exact (the engine then runs them concretely).
NANGUARD_REGISTER_OPS({
    with(OpDef{"ConstantOfShape", lower_constant_of_shape}, moving(lower_constant_of_shape, "e")),
    with(value_dependent_shape(OpDef{"Range", lower_range}), moving(lower_range, "e")),
    with_norm(with(OpDef{"Pad", lower_pad}, moving(lower_pad, "ded")), pad_norm),
    with(OpDef{"Trilu", lower_trilu}, moving(lower_trilu, "de")),
    with(OpDef{"EyeLike", lower_eye_like}, eye_like_interval),
    with(OpDef{"Dropout", lower_dropout}, dropout_interval),
});

}  // namespace
}  // namespace nanguard
