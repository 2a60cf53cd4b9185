// The rewrite for nan-from-infinities where a mask fill is multiplied: (1 - m) * -inf
// is 0 * -inf = NaN at the entries the mask keeps. A large finite fill instead
// (-1e30, or -1e4 in float16) masks the same entries (exp(-1e30 - max) is 0 in every
// float type) and keeps the rest exact: x + 0 = x.
#include <cmath>
#include <optional>

#include <fmt/core.h>

#include "ops/rewrite.h"

namespace nanguard {
namespace {

// The largest fill whose sum with a score stays finite and whose exp underflows to 0.
double finite_fill(int32_t type) { return type == onnx::TensorProto::FLOAT16 ? 1e4 : 1e30; }

// Every scalar +-inf constant the faulty node reads becomes a finite fill of its sign.
std::optional<RewriteApplied> finite_mask_fill(RewriteContext& ctx) {
  if (ctx.attempt > 0 || ctx.node.outputs.empty()) return std::nullopt;
  int replaced = 0;
  for (size_t i = 0; i < ctx.node.inputs.size(); ++i) {
    const std::string& in = ctx.node.inputs[i];
    for (double sign : {-1.0, 1.0}) {
      if (in.empty() || !constant_equal(ctx.graph, in, sign * INFINITY)) continue;
      const TensorType* t = ctx.graph.type_of(in);
      if (!t || !t->dims || !t->dims->empty()) continue;  // a scalar fill: add_scalar makes 0-d constants
      int32_t type = ctx.patch.elem_type(in) ? ctx.patch.elem_type(in) : onnx::TensorProto::FLOAT;
      std::string fill = ctx.patch.add_scalar(sign < 0 ? "minus_fill" : "fill", sign * finite_fill(type), type);
      if (!ctx.patch.set_input(ctx.node.outputs[0], static_cast<int>(i), fill).ok()) return std::nullopt;
      ++replaced;
    }
  }
  if (replaced == 0) return std::nullopt;
  return RewriteApplied{fmt::format("+-inf fill -> +-{:g} at {}", finite_fill(ctx.patch.elem_type(ctx.node.outputs[0])),
                                    ctx.node.name),
                        "a 0/1 mask times float('-inf') is 0 * -inf = NaN where the mask keeps an entry: use "
                        "scores.masked_fill(mask == 0, float('-inf')) or torch.where(mask.bool(), scores, -1e30), "
                        "or a finite fill such as torch.finfo(scores.dtype).min / 2"};
}

NANGUARD_REGISTER_REWRITES({Rewrite{"finite-mask-fill", finite_mask_fill}});

}  // namespace
}  // namespace nanguard
