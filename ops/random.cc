// Random ops: RandomNormal, RandomUniform, RandomNormalLike, RandomUniformLike,
// Bernoulli. Values come from a CPU generator (then move to the run's device), so a
// run is reproducible on every device: the node's `seed` attribute when present
// (a fresh generator seeded with the float's bit pattern, so distinct seeds give
// distinct streams), else the run's generator (ctx.generator, seeded per run).
// ONNX fixes only the distribution, so conformance skips these ops.
#include <cstring>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

at::Generator generator_for(const OpContext& ctx) {
  if (has_attr(ctx.node, "seed")) {
    float seed = attr_float(ctx.node, "seed");
    uint32_t bits = 0;
    std::memcpy(&bits, &seed, sizeof bits);
    return at::detail::createCPUGenerator(bits);
  }
  if (!ctx.generator) ctx.fail("no random generator was given to this run");
  return *ctx.generator;
}

// The output type: the dtype attribute (FLOAT follows the run's float type) or,
// without it, `fallback`.
at::ScalarType output_type(const OpContext& ctx, at::ScalarType fallback) {
  if (!has_attr(ctx.node, "dtype")) return fallback;
  at::ScalarType t = scalar_type_for(static_cast<int32_t>(attr_int(ctx.node, "dtype")));
  return t == at::kFloat ? ctx.float_type : t;
}

// Draws in float64 or float32 on the CPU, then converts (half precision and
// integer outputs are rounded from the float draw).
at::Tensor draw(const OpContext& ctx, at::IntArrayRef shape, at::ScalarType type, bool normal) {
  int64_t numel = c10::multiply_integers(shape);
  ctx.check_size(numel, type);
  at::ScalarType work = type == at::kDouble ? at::kDouble : at::kFloat;
  at::Generator gen = generator_for(ctx);
  at::Tensor t = at::empty(shape, at::TensorOptions(work));
  if (normal) {
    t.normal_(attr_float(ctx.node, "mean", 0.f), attr_float(ctx.node, "scale", 1.f), gen);
  } else {
    float low = attr_float(ctx.node, "low", 0.f), high = attr_float(ctx.node, "high", 1.f);
    if (!(low <= high)) ctx.fail(fmt::format("low {} is above high {}", low, high));
    t.uniform_(low, high, gen);
  }
  return t.to(type).to(ctx.device);
}

std::vector<at::Tensor> lower_random(const OpContext& ctx, bool normal) {
  std::vector<int64_t> shape = attr_ints(ctx.node, "shape");
  for (int64_t d : shape)
    if (d < 0) ctx.fail(fmt::format("negative dimension {}", d));
  return {draw(ctx, shape, output_type(ctx, ctx.float_type), normal)};
}

std::vector<at::Tensor> lower_random_like(const OpContext& ctx, bool normal) {
  const at::Tensor& x = ctx.input(0);
  return {draw(ctx, x.sizes(), output_type(ctx, x.scalar_type()), normal)};
}

// Bernoulli (opset 15): 1 with probability p. The draw is not differentiable.
std::vector<at::Tensor> lower_bernoulli(const OpContext& ctx) {
  const at::Tensor& p = ctx.input(0);
  at::ScalarType work = p.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor probs = p.detach().to(at::kCPU).to(work);
  // A NaN or out-of-[0, 1] probability would make ATen throw mid-kernel; say which.
  at::Tensor bad = (probs >= 0).logical_and(probs <= 1).logical_not();
  if (bad.any().item<bool>())
    ctx.fail(fmt::format("probability {} is outside [0, 1]", probs.masked_select(bad)[0].item<double>()));
  at::Tensor drawn = at::bernoulli(probs, generator_for(ctx));
  return {drawn.to(output_type(ctx, p.scalar_type())).to(p.device())};
}

NANGUARD_REGISTER_OPS({
    OpDef{"RandomNormal", [](const OpContext& ctx) { return lower_random(ctx, true); }},
    OpDef{"RandomUniform", [](const OpContext& ctx) { return lower_random(ctx, false); }},
    OpDef{"RandomNormalLike", [](const OpContext& ctx) { return lower_random_like(ctx, true); }},
    OpDef{"RandomUniformLike", [](const OpContext& ctx) { return lower_random_like(ctx, false); }},
    OpDef{"Bernoulli", lower_bernoulli},
});

}  // namespace
}  // namespace nanguard
