// Activations: Relu, LeakyRelu, Elu, Selu, Celu, Sigmoid, HardSigmoid, HardSwish,
// Softplus, Softsign, ThresholdedRelu, Mish, Clip, Shrink.
// Each lowering writes the ONNX formula with differentiable ATen ops. Where ONNX's
// reference implementation (numpy) and a fused ATen kernel differ at NaN/INF, the
// reference wins; the decision is written next to the op. Gelu (opset 20) is not here.
#include <ATen/ATen.h>

#include "ops/op_registry.h"

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

// Softplus is ONNX's reference form log(exp(x) + 1), not at::softplus (which returns x
// above a threshold): a model's naive softplus overflows to INF from x = 88.72 in
// float32, and its gradient exp(x) / inf is NaN there; the oracle must see that.
Tensors lower_softplus(const OpContext& ctx) { return {(ctx.input(0).exp() + 1).log()}; }

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

NANGUARD_REGISTER_OPS({
    OpDef{"Relu", lower_relu},
    OpDef{"LeakyRelu", lower_leaky_relu},
    OpDef{"Elu", lower_elu},
    OpDef{"Selu", lower_selu},
    OpDef{"Celu", lower_celu},
    OpDef{"Sigmoid", lower_sigmoid},
    OpDef{"HardSigmoid", lower_hard_sigmoid},
    OpDef{"HardSwish", lower_hard_swish},
    OpDef{"Softplus", lower_softplus},
    OpDef{"Softsign", lower_softsign},
    OpDef{"ThresholdedRelu", lower_thresholded_relu},
    OpDef{"Mish", lower_mish},
    OpDef{"Clip", lower_clip},
    OpDef{"Shrink", lower_shrink},
});

}  // namespace
}  // namespace nanguard
