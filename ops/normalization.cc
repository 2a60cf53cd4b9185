// Normalizations: BatchNormalization, LayerNormalization, InstanceNormalization,
// LpNormalization, MeanVarianceNormalization, LRN.
// Each is written as the spec's formula with elementwise ATen ops (not the fused
// at::batch_norm / at::layer_norm kernels), so the float32 rounding and the NaN/INF
// cases (a zero variance with epsilon 0, a zero vector in LpNormalization) are the
// spec's, and autograd reaches every input, variance included.
#include <ATen/ATen.h>

#include "ops/op_registry.h"

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

NANGUARD_REGISTER_OPS({
    OpDef{"BatchNormalization", lower_batch_norm},
    OpDef{"InstanceNormalization", lower_instance_norm},
    OpDef{"LayerNormalization", lower_layer_norm},
    OpDef{"LpNormalization", lower_lp_norm},
    OpDef{"MeanVarianceNormalization", lower_mvn},
    OpDef{"LRN", lower_lrn},
});

}  // namespace
}  // namespace nanguard
