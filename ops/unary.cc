// Elementwise math: Abs, Neg, Exp, Log, Sqrt, Reciprocal, rounding, trigonometric
// and hyperbolic functions, Erf, Not, IsNaN, IsInf, Identity.
// Each op's lowering is the ATen function of the same meaning; ATen follows IEEE
// (log(0) = -inf, log(-1) = NaN, sqrt(-1) = NaN), which is what ONNX specifies.
#include <ATen/ATen.h>

#include "ops/op_registry.h"

namespace nanguard {
namespace {

// An op whose one output is f(input 0).
OpDef unary(const char* op_type, at::Tensor (*f)(const at::Tensor&)) {
  return OpDef{op_type, [f](const OpContext& ctx) { return std::vector<at::Tensor>{f(ctx.input(0))}; }};
}

std::vector<at::Tensor> lower_is_inf(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  bool pos = attr_int(ctx.node, "detect_positive", 1) != 0;
  bool neg = attr_int(ctx.node, "detect_negative", 1) != 0;
  at::Tensor inf = x.isinf();
  if (!pos) inf = inf.logical_and(x < 0);
  if (!neg) inf = inf.logical_and(x > 0);
  return {inf};
}

// ONNX Round is round-half-to-even, as is at::round.
NANGUARD_REGISTER_OPS({
    unary("Abs", [](const at::Tensor& x) { return x.abs(); }),
    unary("Neg", [](const at::Tensor& x) { return x.neg(); }),
    unary("Exp", [](const at::Tensor& x) { return x.exp(); }),
    unary("Log", [](const at::Tensor& x) { return x.log(); }),
    unary("Sqrt", [](const at::Tensor& x) { return x.sqrt(); }),
    unary("Reciprocal", [](const at::Tensor& x) { return x.reciprocal(); }),
    unary("Floor", [](const at::Tensor& x) { return x.floor(); }),
    unary("Ceil", [](const at::Tensor& x) { return x.ceil(); }),
    unary("Round", [](const at::Tensor& x) { return x.round(); }),
    unary("Sign", [](const at::Tensor& x) { return x.sign(); }),
    unary("Sin", [](const at::Tensor& x) { return x.sin(); }),
    unary("Cos", [](const at::Tensor& x) { return x.cos(); }),
    unary("Tan", [](const at::Tensor& x) { return x.tan(); }),
    unary("Asin", [](const at::Tensor& x) { return x.asin(); }),
    unary("Acos", [](const at::Tensor& x) { return x.acos(); }),
    unary("Atan", [](const at::Tensor& x) { return x.atan(); }),
    unary("Sinh", [](const at::Tensor& x) { return x.sinh(); }),
    unary("Cosh", [](const at::Tensor& x) { return x.cosh(); }),
    unary("Tanh", [](const at::Tensor& x) { return x.tanh(); }),
    unary("Asinh", [](const at::Tensor& x) { return x.asinh(); }),
    unary("Acosh", [](const at::Tensor& x) { return x.acosh(); }),
    unary("Atanh", [](const at::Tensor& x) { return x.atanh(); }),
    unary("Erf", [](const at::Tensor& x) { return x.erf(); }),
    unary("Not", [](const at::Tensor& x) { return x.logical_not(); }),
    unary("IsNaN", [](const at::Tensor& x) { return x.isnan(); }),
    unary("Identity", [](const at::Tensor& x) { return x; }),
    OpDef{"IsInf", lower_is_inf},
});

}  // namespace
}  // namespace nanguard
