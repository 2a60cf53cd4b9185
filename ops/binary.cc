// Elementwise ops with numpy broadcasting: arithmetic (Add, Sub, Mul, Div, Pow, Mod),
// variadic Max/Min/Sum/Mean, comparisons, logic, BitShift, Where, PRelu.
#include <ATen/ATen.h>

#include "ops/op_registry.h"

namespace nanguard {
namespace {

OpDef binary(const char* op_type, at::Tensor (*f)(const at::Tensor&, const at::Tensor&)) {
  return OpDef{op_type, [f](const OpContext& ctx) {
                 return std::vector<at::Tensor>{f(ctx.input(0), ctx.input(1))};
               }};
}

// ONNX Div on integers truncates toward zero (C semantics); on floats it is IEEE.
at::Tensor divide(const at::Tensor& a, const at::Tensor& b) {
  if (at::isIntegralType(a.scalar_type(), /*includeBool=*/false))
    return at::div(a, b, "trunc");
  return at::div(a, b);
}

// Pow keeps the base's type (ONNX: output type = type of X).
at::Tensor power(const at::Tensor& x, const at::Tensor& y) {
  if (at::isIntegralType(x.scalar_type(), false) && at::isFloatingType(y.scalar_type()))
    return at::pow(x.to(y.scalar_type()), y).to(x.scalar_type());
  if (at::isFloatingType(x.scalar_type())) return at::pow(x, y.to(x.scalar_type()));
  return at::pow(x, y).to(x.scalar_type());
}

// fmod=1 is C fmod (sign of the dividend); fmod=0 is Python's mod (sign of the divisor).
std::vector<at::Tensor> lower_mod(const OpContext& ctx) {
  bool fmod = attr_int(ctx.node, "fmod", 0) != 0;
  const at::Tensor &a = ctx.input(0), &b = ctx.input(1);
  return {fmod ? at::fmod(a, b) : at::remainder(a, b)};
}

// Variadic ops fold pairwise with broadcasting.
OpDef variadic(const char* op_type, at::Tensor (*f)(const at::Tensor&, const at::Tensor&), bool mean) {
  return OpDef{op_type, [f, mean](const OpContext& ctx) {
                 at::Tensor acc = ctx.input(0);
                 for (size_t i = 1; i < ctx.num_inputs(); ++i) acc = f(acc, ctx.input(i));
                 if (mean) acc = acc / static_cast<double>(ctx.num_inputs());
                 return std::vector<at::Tensor>{acc};
               }};
}

std::vector<at::Tensor> lower_bitshift(const OpContext& ctx) {
  std::string dir = attr_string(ctx.node, "direction", "");
  const at::Tensor &x = ctx.input(0), &s = ctx.input(1);
  if (dir == "LEFT") return {at::bitwise_left_shift(x, s)};
  if (dir == "RIGHT") return {at::bitwise_right_shift(x, s)};
  ctx.fail("direction must be LEFT or RIGHT");
}

std::vector<at::Tensor> lower_where(const OpContext& ctx) {
  return {at::where(ctx.input(0).to(at::kBool), ctx.input(1), ctx.input(2))};
}

// PRelu: slope broadcasts unidirectionally to X.
std::vector<at::Tensor> lower_prelu(const OpContext& ctx) {
  const at::Tensor &x = ctx.input(0), &slope = ctx.input(1);
  return {at::where(x < 0, x * slope, x)};
}

NANGUARD_REGISTER_OPS({
    binary("Add", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }),
    binary("Sub", [](const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }),
    binary("Mul", [](const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }),
    binary("Div", divide),
    binary("Pow", power),
    OpDef{"Mod", lower_mod},
    variadic("Max", [](const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); }, false),
    variadic("Min", [](const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); }, false),
    variadic("Sum", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }, false),
    variadic("Mean", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }, true),
    binary("Equal", [](const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }),
    binary("Less", [](const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }),
    binary("LessOrEqual", [](const at::Tensor& a, const at::Tensor& b) { return at::le(a, b); }),
    binary("Greater", [](const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }),
    binary("GreaterOrEqual", [](const at::Tensor& a, const at::Tensor& b) { return at::ge(a, b); }),
    binary("And", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); }),
    binary("Or", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_or(a, b); }),
    binary("Xor", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_xor(a, b); }),
    OpDef{"BitShift", lower_bitshift},
    OpDef{"Where", lower_where},
    OpDef{"PRelu", lower_prelu},
});

}  // namespace
}  // namespace nanguard
