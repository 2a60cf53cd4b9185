// Rewrites of divisors and square roots: x / sqrt(v) -> x / sqrt(v + eps) with the
// gentlest eps the analyzer proves (one of the eps values people write, and nonzero
// in the tensor's type), and a count that can be 0 -> Max(count, 1), which changes
// nothing wherever the original is finite. Acos/Asin of a rounded cosine: the operand
// clipped to [-1, 1] first.
#include <cmath>
#include <optional>

#include <fmt/core.h>

#include "ops/rewrite.h"

namespace nanguard {
namespace {

constexpr double kEpsLadder[] = {1e-12, 1e-10, 1e-8, 1e-6, 1e-5, 1e-4, 1e-3};

// The smallest positive value of an ONNX float type (eps below it round to 0).
double smallest_positive(int32_t elem_type) {
  switch (elem_type) {
    case onnx::TensorProto::DOUBLE: return 4.9406564584124654e-324;
    case onnx::TensorProto::FLOAT16: return 5.960464477539063e-08;
    case onnx::TensorProto::BFLOAT16: return 9.183549615799121e-41;
    default: return 1.401298464324817e-45;
  }
}

// The Sqrt whose output is the divisor (or the faulty Sqrt itself).
const Node* sqrt_of_divisor(const RewriteContext& ctx) {
  if (ctx.node.op_type == "Sqrt") return &ctx.node;
  if (ctx.node.op_type != "Div" || ctx.node.inputs.size() < 2) return nullptr;
  const Node* s = producer_through_identities(ctx, ctx.node.inputs[1]);
  return s && s->op_type == "Sqrt" ? s : nullptr;
}

std::optional<RewriteApplied> sqrt_eps(RewriteContext& ctx) {
  const Node* s = sqrt_of_divisor(ctx);
  if (!s || ctx.attempt >= static_cast<int>(std::size(kEpsLadder))) return std::nullopt;
  const std::string& v = s->inputs[0];
  auto r = ctx.range_of(v);
  if (!r || r->lo < 0) return std::nullopt;  // v + eps > 0 needs v >= 0: a variance, a sum of squares
  int32_t type = ctx.patch.elem_type(v);
  double eps = kEpsLadder[ctx.attempt];
  if (eps < smallest_positive(type)) return std::nullopt;
  std::string e = ctx.patch.add_scalar("eps", eps, type ? type : onnx::TensorProto::FLOAT);
  std::string sum = ctx.patch.add_node("Add", {v, e}, "v_plus_eps", s->outputs[0]);
  if (!ctx.patch.set_input(s->outputs[0], 0, sum).ok()) return std::nullopt;
  return RewriteApplied{fmt::format("Sqrt(v) -> Sqrt(v + {:g}) at {}", eps, s->name),
                        fmt::format("add an eps inside the square root: torch.sqrt(v + {:g}) (for a norm, "
                                    "torch.linalg.vector_norm(x).clamp_min(eps) or F.normalize(x, eps=...))", eps)};
}

// A count: integer-valued and >= 0 (a cast of a mask or of integers, summed).
bool is_count(const RewriteContext& ctx, const std::string& t, int depth = 0) {
  auto r = ctx.range_of(t);
  if (!r || r->lo < 0 || depth > 6) return false;
  const Node* p = ctx.graph.producer(t);
  // An integer tensor itself, or a Cast of one (a mask, token ids).
  auto integer = [&ctx](const std::string& name) {
    const TensorType* type = ctx.graph.type_of(name);
    return type && type->elem_type != 0 && !is_float_elem_type(type->elem_type);
  };
  if (!p) return integer(t);
  if (p->op_type == "Cast") return integer(p->inputs[0]);
  if (p->op_type == "ReduceSum" || p->op_type == "Identity" || p->op_type == "Reshape" || p->op_type == "Unsqueeze" ||
      p->op_type == "Squeeze")
    return is_count(ctx, p->inputs[0], depth + 1);
  if (p->op_type == "Add" || p->op_type == "Sum" || p->op_type == "Mul") {
    for (const auto& in : p->inputs)
      if (!in.empty() && !is_count(ctx, in, depth + 1)) return false;
    return true;
  }
  return false;
}

std::optional<RewriteApplied> count_divisor(RewriteContext& ctx) {
  if (ctx.node.op_type != "Div" || ctx.node.inputs.size() < 2 || ctx.attempt > 0) return std::nullopt;
  const std::string& d = ctx.node.inputs[1];
  if (!is_count(ctx, d)) return std::nullopt;
  int32_t type = ctx.patch.elem_type(d);
  std::string one = ctx.patch.add_scalar("one", 1.0, type ? type : onnx::TensorProto::FLOAT);
  std::string m = ctx.patch.add_node("Max", {d, one}, "count_at_least_one", ctx.node.outputs[0]);
  if (!ctx.patch.set_input(ctx.node.outputs[0], 1, m).ok()) return std::nullopt;
  return RewriteApplied{"x / count -> x / Max(count, 1)",
                        "divide by the count clamped to 1, e.g. mask.sum(dim).clamp(min=1): an empty selection then "
                        "gives 0 instead of NaN, and every other result is unchanged"};
}

// acos/asin of a value that is mathematically in [-1, 1] but rounds outside it (a
// normalised dot product): clip first, to [-1, 1] (equal wherever the original is
// finite), else, where the infinite derivative at +-1 matters to the proof, to the
// float32 just inside (the value then moves by at most 3.5e-4, at +-1 only).
std::optional<RewriteApplied> clip_unit_interval(RewriteContext& ctx) {
  const std::string& op = ctx.node.op_type;
  if ((op != "Acos" && op != "Asin") || ctx.node.inputs.empty() || ctx.attempt > 1) return std::nullopt;
  const double edge = ctx.attempt == 0 ? 1.0 : 1.0 - 0x1p-24;  // float32_below(1)
  const std::string& x = ctx.node.inputs[0];
  int32_t type = ctx.patch.elem_type(x);
  type = type ? type : onnx::TensorProto::FLOAT;
  std::string lo = ctx.patch.add_scalar("minus_one", -edge, type), hi = ctx.patch.add_scalar("one", edge, type);
  std::string c = ctx.patch.opset() >= 11
                      ? ctx.patch.add_node("Clip", {x, lo, hi}, "unit_interval", ctx.node.outputs[0])
                      : ctx.patch.add_node("Clip", {x}, "unit_interval", ctx.node.outputs[0],
                                           {float_attribute("min", static_cast<float>(-edge)), float_attribute("max", static_cast<float>(edge))});
  if (!ctx.patch.set_input(ctx.node.outputs[0], 0, c).ok()) return std::nullopt;
  std::string fn = op == "Acos" ? "acos" : "asin";
  std::string bound = ctx.attempt == 0 ? "1" : "1 - 2**-24", neg = ctx.attempt == 0 ? "-1" : "-(1 - 2**-24)";
  return RewriteApplied{fmt::format("{0}(x) -> {0}(Clip(x, {2}, {1}))", op, bound, neg),
                        fmt::format("clamp first: torch.{0}(torch.clamp(x, {3}, {1})); a cosine computed as a "
                                    "normalised dot product can round to 1.0000001{2}", fn, bound,
                                    ctx.attempt == 0 ? "" : ", and the gradient at +-1 is infinite", neg)};
}

NANGUARD_REGISTER_REWRITES({
    Rewrite{"sqrt-eps", sqrt_eps},
    Rewrite{"count-divisor", count_divisor},
    Rewrite{"clip-unit-interval", clip_unit_interval},
});

}  // namespace
}  // namespace nanguard
