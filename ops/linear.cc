// Linear algebra: MatMul (numpy matmul: batch broadcasting, 1-D operands), Gemm,
// Einsum, and the integer forms MatMulInteger and QLinearMatMul.
// Float products follow IEEE through ATen: an overflowing dot product is INF and
// INF * 0 inside a sum is NaN, as ONNX specifies by reference to numpy.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include <ATen/ATen.h>

#include "ops/bilinear_bounds.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/symbolic_form.h"

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

// ---- abstract semantics ----------------------------------------------------
// Center/radius bounds (ops/bilinear_bounds.h): exact per element for fixed weights.
// Integer MatMul forms have no transfer (a ranged integer operand is rare): unsupported.

void require_float(const AbstractContext& a) {
  for (size_t i = 0; i < a.num_inputs(); ++i)
    if (a.has_input(i) && !a.input(i).is_float()) a.fail("integer operands have no interval transfer");
}

// Bound tensors of a MatMul operand with the contracted axis made full (other
// collapsed axes stay size 1 and broadcast through at::matmul).
CenterRadius matmul_operand(const AbstractContext& a, size_t i, bool left) {
  const IntervalTensor& t = a.input(i);
  std::vector<int64_t> sizes = t.lo.sizes().vec();
  if (sizes.size() != t.shape.size()) sizes = t.shape;  // defensive: rank mismatch
  int64_t axis = t.shape.size() == 1 ? 0 : static_cast<int64_t>(t.shape.size()) - (left ? 1 : 2);
  sizes[axis] = t.shape[axis];
  return center_radius(t, sizes, a.float_type);
}

at::Tensor matmul_f(const at::Tensor& x, const at::Tensor& w) { return at::matmul(x, w); }

std::vector<int64_t> matmul_shape(const AbstractContext& a) {
  at::Tensor x = at::empty(a.input(0).shape, at::TensorOptions().device(at::kMeta));
  at::Tensor w = at::empty(a.input(1).shape, at::TensorOptions().device(at::kMeta));
  return at::matmul(x, w).sizes().vec();
}

IntervalTensor bounded(Bounds b, const std::vector<int64_t>& shape, at::ScalarType dtype) {
  return make_interval(b, shape, dtype, 0);
}

std::vector<IntervalTensor> matmul_interval(const AbstractContext& a) {
  require_float(a);
  const IntervalTensor& x = a.input(0);
  if (x.shape.empty() || a.input(1).shape.empty()) a.fail("MatMul operands must have rank >= 1");
  double n = static_cast<double>(x.shape.back());
  Bounds y = bilinear_bounds(matmul_f, matmul_operand(a, 0, true), matmul_operand(a, 1, false), n, a.float_type);
  return {bounded(y, matmul_shape(a), x.dtype)};
}

// Widens by `ulps` roundings of float32 (relative, plus an absolute underflow term).
Bounds widen(const Bounds& b, double ulps, at::ScalarType float_type) {
  double rel = ulps * unit_roundoff(float_type) * 2, abs = ulps * kFloat32MinSubnormal;
  return {b.lo - b.lo.abs() * rel - abs, b.hi + b.hi.abs() * rel + abs};
}

Bounds scale(const Bounds& b, double s) {
  return s >= 0 ? Bounds{b.lo * s, b.hi * s} : Bounds{b.hi * s, b.lo * s};
}

// alpha * (A' B') rounds once more unless alpha = 1; beta * C likewise; the sum once.
std::vector<IntervalTensor> gemm_interval(const AbstractContext& a) {
  require_float(a);
  const IntervalTensor &ia = a.input(0), &ib = a.input(1);
  if (ia.shape.size() != 2 || ib.shape.size() != 2) a.fail("Gemm operands A and B must be 2-D");
  bool ta = attr_int(a.node, "transA", 0) != 0, tb = attr_int(a.node, "transB", 0) != 0;
  double alpha = attr_float(a.node, "alpha", 1.0f), beta = attr_float(a.node, "beta", 1.0f);
  CenterRadius x = center_radius(ia, ia.shape, a.float_type), w = center_radius(ib, ib.shape, a.float_type);
  if (ta) x.c = x.c.t(), x.r = x.r.t();
  if (tb) w.c = w.c.t(), w.r = w.r.t();
  int64_t m = x.c.size(0), k = x.c.size(1), nn = w.c.size(1);
  if (w.c.size(0) != k) a.fail("Gemm inner dimensions differ");
  Bounds y = bilinear_bounds(matmul_f, x, w, static_cast<double>(k), a.float_type);
  if (alpha != 1.0) y = widen(scale(y, alpha), 1, a.float_type);
  if (a.has_input(2)) {
    const IntervalTensor& c = a.input(2);
    Bounds cb{c.lo, c.hi};
    if (beta != 1.0) cb = widen(scale(cb, beta), 1, a.float_type);
    while (cb.lo.dim() < 2) cb = {cb.lo.unsqueeze(0), cb.hi.unsqueeze(0)};
    y = widen(bounds_add(y, cb), 1, a.float_type);
  }
  double inf = std::numeric_limits<double>::infinity();
  y = {at::nan_to_num(y.lo, -inf, inf, -inf), at::nan_to_num(y.hi, inf, inf, -inf)};
  return {bounded(y, {m, nn}, ia.dtype)};
}

// Einsum with one operand is linear (|coefficients| = 1), with two bilinear; the
// number of products per output element is the einsum of all-ones operands.
std::vector<IntervalTensor> einsum_interval(const AbstractContext& a) {
  require_float(a);
  std::string eq = attr_string(a.node, "equation", "");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  if (a.num_inputs() < 1 || a.num_inputs() > 2) a.fail("Einsum with more than two operands has no interval transfer");
  std::vector<CenterRadius> ops;
  std::vector<at::Tensor> ones;
  for (size_t i = 0; i < a.num_inputs(); ++i) {
    ops.push_back(center_radius(a.input(i), a.input(i).shape, a.float_type));
    ones.push_back(at::ones(a.input(i).shape, at::kDouble));
  }
  double n = at::einsum(eq, ones).max().item<double>();
  if (a.num_inputs() == 2) {
    auto f = [&eq](const at::Tensor& x, const at::Tensor& w) { return at::einsum(eq, {x, w}); };
    Bounds y = bilinear_bounds(f, ops[0], ops[1], n, a.float_type);
    return {bounded(y, y.lo.sizes().vec(), a.input(0).dtype)};
  }
  // y = E(x): E(xc) +- (E(xr) + gamma * E(|xc| + xr)); E sums with coefficient 1.
  CenterRadius one{at::ones({}, at::kDouble), at::zeros({}, at::kDouble), true};
  auto f = [&eq](const at::Tensor& x, const at::Tensor& w) { return at::einsum(eq, {x}) * w; };
  Bounds y = bilinear_bounds(f, ops[0], one, n, a.float_type);
  return {bounded(y, y.lo.sizes().vec(), a.input(0).dtype)};
}

// y = alpha x W' + beta bias, W' = W or W^T: what Gemm's attributes make of a dense layer
// (MatMul is the plain one: no bias to read, since it has no third input).
struct DenseLayer {
  bool transposed_weight = false;  // W is stored [out, in]
  double alpha = 1, beta = 1;
};

// Symbolic bounds through a dense layer with a constant 2-D weight on a 2-D input: the
// rows times the weight, plus the bias and the float32 rounding of each output.
bool dense_symbolic(BackSubstitution& b, const Node& n, const LinearRows& p, const DenseLayer& layer) {
  const IntervalTensor *x = b.interval(n.inputs[0]), *w = b.interval(n.inputs[1]);
  if (!x || !w || !w->exact() || x->shape.size() != 2 || w->shape.size() != 2 || p.spatial_rank() != 0) return false;
  at::Tensor W = layer.transposed_weight ? w->lo : w->lo.t();  // [out, in]
  W = W * layer.alpha;
  std::optional<at::Tensor> bias;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    bias = per_channel(*b.interval(n.inputs[2]), W.size(0), 2);
    if (!bias) return false;
    *bias = *bias * layer.beta;
  }
  if (!b.spend(p.A.numel() * W.size(1))) return false;
  double fan = static_cast<double>(W.size(1)) + 2;
  at::Tensor err = at::mv(W.abs(), channel_magnitude(*x)) + (bias ? bias->abs() : at::zeros({W.size(0)}, at::kDouble));
  if (b.may_overflow(err)) return false;
  b.add_error(p, p.A, err * b.rounding_gamma(fan, W.size(0)) + fan * kFloat32MinSubnormal);
  if (bias) b.add_constant(p, p.A, *bias);
  b.pass_to(n.inputs[0], p.with_coefficients(at::mm(p.A, W)));
  return true;
}

bool matmul_symbolic(BackSubstitution& b, const Node& n, const LinearRows& p) {
  return dense_symbolic(b, n, p, DenseLayer{});
}

// Gemm with a transposed input is not a layer over x's rows.
bool gemm_symbolic(BackSubstitution& b, const Node& n, const LinearRows& p) {
  if (attr_int(n, "transA", 0) != 0) return false;
  DenseLayer layer{attr_int(n, "transB", 0) != 0, attr_float(n, "alpha", 1.0f), attr_float(n, "beta", 1.0f)};
  return dense_symbolic(b, n, p, layer);
}

// The norm of a matrix product A B before its rounding, and a bound on its magnitudes
// || |A| |B| ||_F (the scale of the rounding and of every partial sum): a fixed 2-D
// factor by its largest singular value, ||A B||_F <= sigma(B) ||A||_F (and for A), else
// ||A B||_F <= ||A||_F ||B||_F slice by slice when neither broadcasts its batch.
struct ProductNorm {
  double value = kNoNormBound, magnitude = kNoNormBound;
};

ProductNorm matrix_product_norm(const NormContext& c, bool trans_a, bool trans_b) {
  const IntervalTensor &a = c.a.input(0), &b = c.a.input(1);
  if (!a.is_float() || !b.is_float() || !std::isfinite(c.input(0)) || !std::isfinite(c.input(1))) return {};
  auto fixed_matrix = [](const IntervalTensor& t, bool trans) {
    at::Tensor m = t.value.to(at::kDouble);
    return (trans ? m.t() : m).unsqueeze(0);
  };
  if (b.exact() && b.shape.size() == 2) {
    at::Tensor m = fixed_matrix(b, trans_b);
    return {max_spectral_norm_bound(m) * c.input(0), magnitude_norm_bound(m) * c.input(0)};
  }
  if (a.exact() && a.shape.size() == 2) {
    at::Tensor m = fixed_matrix(a, trans_a);
    return {max_spectral_norm_bound(m) * c.input(1), magnitude_norm_bound(m) * c.input(1)};
  }
  bool same_batch = a.shape.size() <= 2 && b.shape.size() <= 2;
  if (a.shape.size() == b.shape.size() && a.shape.size() > 2)
    same_batch = std::equal(a.shape.begin(), a.shape.end() - 2, b.shape.begin());
  if (!same_batch) return {};
  double n = c.input(0) * c.input(1);
  return {n, n};
}

// The contracted length of a product (the rounding's n).
double contracted(const IntervalTensor& a, bool trans_a) {
  if (a.shape.empty()) return 0;
  size_t axis = a.shape.size() == 1 ? 0 : a.shape.size() - (trans_a ? 2 : 1);
  return static_cast<double>(a.shape[axis]);
}

// Products that underflow lose at most a smallest subnormal each, per output element.
double product_with_rounding(const ProductNorm& p, double fan, at::ScalarType type, int64_t out) {
  double g = accumulation_gamma(fan, type);
  if (!(p.magnitude * (1 + g) < value_limit(type))) return kNoNormBound;
  return p.value + g * p.magnitude + fan * kFloat32MinSubnormal * std::sqrt(static_cast<double>(out));
}

double matmul_norm(const NormContext& c) {
  if (!c.a.has_input(0) || !c.a.has_input(1) || c.outputs.empty() || !c.outputs[0].lo.defined()) return kNoNormBound;
  ProductNorm p = matrix_product_norm(c, false, false);
  return product_with_rounding(p, contracted(c.a.input(0), false), c.a.float_type, c.outputs[0].numel());
}

// alpha * (A' B') + beta * C: the scaling and the addition round once each.
double gemm_norm(const NormContext& c) {
  if (!c.a.has_input(0) || !c.a.has_input(1) || c.outputs.empty() || !c.outputs[0].lo.defined()) return kNoNormBound;
  bool ta = attr_int(c.a.node, "transA", 0) != 0, tb = attr_int(c.a.node, "transB", 0) != 0;
  double alpha = std::abs(attr_float(c.a.node, "alpha", 1.0f)), beta = std::abs(attr_float(c.a.node, "beta", 1.0f));
  double u = unit_roundoff(c.a.float_type);
  int64_t out = c.outputs[0].numel();
  double product = product_with_rounding(matrix_product_norm(c, ta, tb), contracted(c.a.input(0), ta), c.a.float_type, out);
  if (!std::isfinite(product)) return kNoNormBound;  // alpha = 0 times an INF is NaN
  double y = alpha * product;
  if (c.a.has_input(2) && beta != 0) {
    int64_t own = c.a.input(2).numel();
    if (own == 0 && out > 0) return kNoNormBound;
    y = y * (1 + u) + beta * c.input(2) * std::sqrt(static_cast<double>(out) / static_cast<double>(std::max<int64_t>(own, 1)));
  }
  return y * (1 + u) * (1 + u) + kFloat32MinSubnormal * std::sqrt(static_cast<double>(out));
}

NANGUARD_REGISTER_OPS({
    with_norm(affine_op(with_symbolic(with(OpDef{"MatMul", lower_matmul}, matmul_interval), matmul_symbolic)), matmul_norm),
    with_norm(affine_op(with_symbolic(with(OpDef{"Gemm", lower_gemm}, gemm_interval), gemm_symbolic)), gemm_norm),
    with(OpDef{"Einsum", lower_einsum}, einsum_interval),
    OpDef{"MatMulInteger", lower_matmul_integer},
    OpDef{"QLinearMatMul", lower_qlinear_matmul},
});

}  // namespace
}  // namespace nanguard
