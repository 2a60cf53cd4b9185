// The rewrite for nan-from-infinities where a mask fill is multiplied: (1 - m) * -inf
// is 0 * -inf = NaN at the entries the mask keeps (a scalar fill or a fill tensor). A
// large finite fill instead (-1e30, or -1e4 in float16) masks the same entries
// (exp(-1e30 - max) is 0 in every float type) and keeps the rest exact: x + 0 = x.
#include <cmath>
#include <optional>

#include <fmt/core.h>

#include "model/patch.h"
#include "ops/rewrite.h"

namespace nanguard {
namespace {

// The largest fill whose sum with a score stays finite and whose exp underflows to 0.
double finite_fill(int32_t type) { return type == onnx::TensorProto::FLOAT16 ? 1e4 : 1e30; }

bool constant_with_infinity(const Graph& g, const std::string& tensor) {
  auto t = constant_value(g, tensor);
  return t && at::isFloatingType(t->scalar_type()) && t->isinf().any().item<bool>();
}

// Every +-inf in a constant the faulty node reads becomes a finite fill of its sign:
// Where(IsInf(c, -), -fill, Where(IsInf(c, +), fill, c)), folded by the analysis like
// any constant arithmetic, so a scalar fill and a mask tensor are handled alike.
std::optional<RewriteApplied> finite_mask_fill(RewriteContext& ctx) {
  if (ctx.attempt > 0 || ctx.node.outputs.empty()) return std::nullopt;
  const std::string& at = ctx.node.outputs[0];
  int replaced = 0;
  double fill = 0;
  for (size_t i = 0; i < ctx.node.inputs.size(); ++i) {
    const std::string& c = ctx.node.inputs[i];
    if (c.empty() || !constant_with_infinity(ctx.graph, c)) continue;
    int32_t type = ctx.patch.elem_type(c) ? ctx.patch.elem_type(c) : onnx::TensorProto::FLOAT;
    fill = finite_fill(type);
    std::string neg = ctx.patch.add_scalar("minus_fill", -fill, type), pos = ctx.patch.add_scalar("fill", fill, type);
    std::string is_neg = ctx.patch.add_node("IsInf", {c}, "is_minus_inf", at, {int_attribute("detect_positive", 0)});
    std::string is_pos = ctx.patch.add_node("IsInf", {c}, "is_plus_inf", at, {int_attribute("detect_negative", 0)});
    std::string low = ctx.patch.add_node("Where", {is_neg, neg, c}, "finite_low", at);
    std::string both = ctx.patch.add_node("Where", {is_pos, pos, low}, "finite_fill", at);
    if (!ctx.patch.set_input(at, static_cast<int>(i), both).ok()) return std::nullopt;
    ++replaced;
  }
  if (replaced == 0) return std::nullopt;
  return RewriteApplied{fmt::format("+-inf fill -> +-{:g} at {}", fill, ctx.node.name),
                        "a 0/1 mask times float('-inf') is 0 * -inf = NaN where the mask keeps an entry: use "
                        "scores.masked_fill(mask == 0, float('-inf')) or torch.where(mask.bool(), scores, -1e30), "
                        "or a finite fill such as torch.finfo(scores.dtype).min / 2"};
}

NANGUARD_REGISTER_REWRITES({Rewrite{"finite-mask-fill", finite_mask_fill}});

}  // namespace
}  // namespace nanguard
