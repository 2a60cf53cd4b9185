// Linear algebra: MatMul (numpy matmul: batch broadcasting, 1-D operands), Gemm,
// Einsum, and the integer forms MatMulInteger and QLinearMatMul.
// Float products follow IEEE through ATen: an overflowing dot product is INF and
// INF * 0 inside a sum is NaN, as ONNX specifies by reference to numpy.
#include <algorithm>
#include <string>

#include <ATen/ATen.h>

#include "ops/op_registry.h"

namespace nanguard {
namespace {

bool is_integral(const at::Tensor& t) { return at::isIntegralType(t.scalar_type(), /*includeBool=*/true); }

// Integer MatMul wraps around like C integer arithmetic. CUDA has no integer matmul
// kernel, so there it is computed in float64 (exact while |sum| < 2^53).
at::Tensor int_matmul(const at::Tensor& a, const at::Tensor& b) {
  if (a.is_cpu()) return at::matmul(a, b);
  return at::matmul(a.to(at::kDouble), b.to(at::kDouble)).round().to(a.scalar_type());
}

std::vector<at::Tensor> lower_matmul(const OpContext& ctx) {
  const at::Tensor &a = ctx.input(0), &b = ctx.input(1);
  if (a.dim() == 0 || b.dim() == 0) ctx.fail("MatMul operands must have rank >= 1");
  if (is_integral(a)) return {int_matmul(a, b)};
  return {at::matmul(a, b)};
}

// Y = alpha * A' * B' + beta * C, evaluated literally as the spec writes it: beta = 0
// with an INF in C gives NaN (runtimes that skip C when beta = 0 would not), and
// alpha = 0 with an overflowing product gives NaN too. C broadcasts to (M, N).
std::vector<at::Tensor> lower_gemm(const OpContext& ctx) {
  at::Tensor a = ctx.input(0), b = ctx.input(1);
  if (a.dim() != 2 || b.dim() != 2) ctx.fail("Gemm operands A and B must be 2-D");
  if (attr_int(ctx.node, "transA", 0) != 0) a = a.t();
  if (attr_int(ctx.node, "transB", 0) != 0) b = b.t();
  double alpha = attr_float(ctx.node, "alpha", 1.0f);
  double beta = attr_float(ctx.node, "beta", 1.0f);
  if (is_integral(a)) {
    // Integer Gemm (opset 11+): scale in float64 and truncate back, as a C cast would.
    at::Tensor y = at::matmul(a.to(at::kDouble), b.to(at::kDouble)) * alpha;
    if (ctx.has_input(2)) y = y + ctx.input(2).to(at::kDouble) * beta;
    return {y.trunc().to(a.scalar_type())};
  }
  at::Tensor y = at::matmul(a, b) * alpha;
  if (ctx.has_input(2)) y = y + ctx.input(2) * beta;
  return {y};
}

// ATen's einsum takes the ONNX equation grammar (letters, '...', optional '->')
// once the blanks ONNX allows are removed.
std::vector<at::Tensor> lower_einsum(const OpContext& ctx) {
  std::string eq = attr_string(ctx.node, "equation", "");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  if (eq.empty()) ctx.fail("attribute 'equation' is required");
  std::vector<at::Tensor> operands;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) operands.push_back(ctx.input(i));
  return {at::einsum(eq, operands)};
}

// A zero point or scale is a scalar (per tensor) or a 1-D tensor: per row of A
// (a column vector once unsqueezed) or per column of B (broadcasts as is).
at::Tensor per_row(const at::Tensor& t) { return t.dim() == 1 ? t.unsqueeze(-1) : t; }

at::Tensor centered(const OpContext& ctx, size_t data, size_t zero_point, bool row) {
  at::Tensor x = ctx.input(data).to(at::kDouble);
  if (!ctx.has_input(zero_point)) return x;
  at::Tensor zp = ctx.input(zero_point).to(at::kDouble);
  return x - (row ? per_row(zp) : zp);
}

std::vector<at::Tensor> lower_matmul_integer(const OpContext& ctx) {
  at::Tensor a = centered(ctx, 0, 2, true), b = centered(ctx, 1, 3, false);
  return {at::matmul(a, b).round().to(at::kInt)};
}

// y = saturate(round_half_even(acc * a_scale * b_scale / y_scale) + y_zero_point),
// with acc the exact integer product, the multiplier applied in float64.
std::vector<at::Tensor> lower_qlinear_matmul(const OpContext& ctx) {
  at::Tensor a = centered(ctx, 0, 2, true), b = centered(ctx, 3, 5, false);
  at::Tensor a_scale = per_row(ctx.input(1).to(at::kDouble)), b_scale = ctx.input(4).to(at::kDouble);
  at::Tensor acc = at::matmul(a, b);
  at::Tensor y = (acc * a_scale * b_scale / ctx.input(6).to(at::kDouble)).round();
  at::ScalarType out = ctx.has_input(7) ? ctx.input(7).scalar_type() : at::kByte;
  if (ctx.has_input(7)) y = y + ctx.input(7).to(at::kDouble);
  bool is_signed = out == at::kChar;
  return {y.clamp(is_signed ? -128 : 0, is_signed ? 127 : 255).to(out)};
}

NANGUARD_REGISTER_OPS({
    OpDef{"MatMul", lower_matmul},
    OpDef{"Gemm", lower_gemm},
    OpDef{"Einsum", lower_einsum},
    OpDef{"MatMulInteger", lower_matmul_integer},
    OpDef{"QLinearMatMul", lower_qlinear_matmul},
});

}  // namespace
}  // namespace nanguard
