// Random ops: RandomNormal, RandomUniform, RandomNormalLike, RandomUniformLike,
// Bernoulli. Values come from a CPU generator (then move to the run's device), so a
// run is reproducible on every device: the node's `seed` attribute when present
// (a fresh generator seeded with the float's bit pattern, so distinct seeds give
// distinct streams), else the run's generator (ctx.generator, seeded per run).
// ONNX fixes only the distribution, so conformance skips these ops.
#include <cmath>
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

// ---- Abstract semantics ----------------------------------------------------------
// Bounds that hold for every draw of the generator the lowering uses (ATen 1.13, CPU,
// aten/src/ATen/native/cpu/DistributionTemplates.h and ATen/core/DistributionsHelper.h):
// - uniform_(low, high): u * (high - low) + low with u = k * 2^-digits in [0, 1),
//   computed in double and rounded to the tensor's type: within [low, high] up to
//   that final rounding.
// - normal_(mean, std): Box-Muller, z = sqrt(-2 log(1 - u)) * cos/sin(2 pi u'),
//   where 1 - u >= 2^-24 for float32 tensors of 16+ elements (normal_fill, scalar and
//   AVX2) and 1 - u >= 2^-53 for smaller ones or float64 (normal_distribution<double>
//   and 53-bit uniforms). So |z| <= sqrt(-2 ln 2^-53) = sqrt(106 ln 2) = 8.5717 in
//   every path; 8.58 leaves room for the rounding of log, sqrt, cos and the products.
//   A draw is mean + z * std: within mean +- 8.58 |std|, plus the final rounding.
// - bernoulli: exactly 0 or 1 (1 always when p = 1, 0 always when p = 0).
// Random ops without inputs look exact to the engine, which then runs the lowering
// concretely; these transfers apply where it does not (a ranged *Like input).
constexpr double kNormalMaxAbsZ = 8.58;

at::ScalarType abstract_output_type(const AbstractContext& a, at::ScalarType fallback) {
  if (!has_attr(a.node, "dtype")) return fallback;
  at::ScalarType t = scalar_type_for(static_cast<int32_t>(attr_int(a.node, "dtype")));
  return t == at::kFloat ? a.float_type : t;
}

// [lo, hi] of the real draw, rounded to `type`.
IntervalTensor rounded_draw(std::vector<int64_t> shape, at::ScalarType type, double lo, double hi) {
  IntervalTensor r = IntervalTensor::uniform(std::move(shape), type, lo, hi);
  if (type == at::kBool) return IntervalTensor::uniform(r.shape, type, lo > 0 || hi < 0 ? 1 : 0, lo == 0 && hi == 0 ? 0 : 1);
  if (!at::isFloatingType(type)) return round_out(r, 0);
  double rel = type == at::kHalf ? std::ldexp(1.0, -10) : type == at::kBFloat16 ? std::ldexp(1.0, -7) : 0;
  if (rel == 0) return round_out(r, 4);
  r.lo = r.lo - r.lo.abs() * rel - 1e-7;
  r.hi = r.hi + r.hi.abs() * rel + 1e-7;
  return r;
}

std::vector<IntervalTensor> random_interval(const AbstractContext& a, bool normal, bool like) {
  std::vector<int64_t> shape = like ? a.input(0).shape : attr_ints(a.node, "shape");
  at::ScalarType type = abstract_output_type(a, like ? a.input(0).dtype : a.float_type);
  double lo, hi;
  if (normal) {
    double mean = attr_float(a.node, "mean", 0.f), scale = std::abs(static_cast<double>(attr_float(a.node, "scale", 1.f)));
    lo = mean - kNormalMaxAbsZ * scale;
    hi = mean + kNormalMaxAbsZ * scale;
  } else {
    lo = attr_float(a.node, "low", 0.f);
    hi = attr_float(a.node, "high", 1.f);
    if (!(lo <= hi)) a.fail(fmt::format("low {} is above high {}", lo, hi));
  }
  return {rounded_draw(shape, type, lo, hi)};
}

IntervalFn random_fn(bool normal, bool like) {
  return [=](const AbstractContext& a) { return random_interval(a, normal, like); };
}

std::vector<IntervalTensor> bernoulli_interval(const AbstractContext& a) {
  const IntervalTensor& p = a.input(0);
  at::ScalarType type = abstract_output_type(a, p.dtype);
  at::Tensor lo = (p.lo >= 1).to(at::kDouble), hi = (p.hi > 0).to(at::kDouble);
  return {IntervalTensor::of_bounds(lo, hi, p.shape, type)};
}

// A probability outside [0, 1] stops the op (ATen raises mid-kernel).
std::vector<HazardReport> bernoulli_hazards(const AbstractContext& a) {
  const IntervalTensor& p = a.input(0);
  if (!(p.lo < 0).logical_or(p.hi > 1).any().item<bool>()) return {};
  bool definite = (p.hi < 0).logical_or(p.lo > 1).all().item<bool>();
  return {HazardReport{"bernoulli-probability-out-of-range", HazardKind::kCrash, 0, "p < 0 or p > 1", definite}};
}

// The side of [0, 1] the range leaves; safe: the interval itself.
Result<UnitTarget> bernoulli_target(const Node&, const std::vector<Range>& r, double, at::Device) {
  if (!r.empty() && r[0].hi > 1) return UnitTarget{0, Relation::kAtLeast, std::nextafter(1.f, 2.f), "p > 1"};
  return UnitTarget{0, Relation::kAtMost, -kFloat32MinSubnormal, "p < 0"};
}

std::vector<HazardFacet> bernoulli_facets() {
  return {HazardFacet{"bernoulli-probability-out-of-range", HazardKind::kCrash, domain_within(0, 0, 1), "", {}, bernoulli_target}};
}

// Random ops are never constants, even with constant inputs: the engine must use
// their bounds, not one draw.
OpDef random_op(OpDef d, IntervalFn interval, HazardFn hazards = nullptr) {
  d = with(std::move(d), std::move(interval), std::move(hazards));
  d.nondeterministic = true;
  return d;
}

NANGUARD_REGISTER_OPS({
    random_op(OpDef{"RandomNormal", [](const OpContext& ctx) { return lower_random(ctx, true); }}, random_fn(true, false)),
    random_op(OpDef{"RandomUniform", [](const OpContext& ctx) { return lower_random(ctx, false); }}, random_fn(false, false)),
    random_op(OpDef{"RandomNormalLike", [](const OpContext& ctx) { return lower_random_like(ctx, true); }}, random_fn(true, true)),
    random_op(OpDef{"RandomUniformLike", [](const OpContext& ctx) { return lower_random_like(ctx, false); }}, random_fn(false, true)),
    with_facets(random_op(OpDef{"Bernoulli", lower_bernoulli}, bernoulli_interval, bernoulli_hazards), bernoulli_facets()),
});

}  // namespace
}  // namespace nanguard
