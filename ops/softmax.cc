// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2-D at
// `axis` (default 1): dims [0, axis) form the rows and [axis, rank) one row's
// elements. From opset 13 the op works along the single `axis` (default -1).
// at::softmax subtracts the maximum first (as ONNX's reference does), so large
// inputs do not overflow; a row of all -inf gives NaN (-inf - -inf), also as ONNX.
#include "ops/softmax.h"

#include <cmath>
#include <limits>
#include <utility>

#include <ATen/ATen.h>

#include "ops/op_registry.h"

namespace nanguard {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kU = 5.9604644775390625e-08;  // 2^-24: float32 unit roundoff

// gamma_n = n u / (1 - n u): the float32 accumulation error of n terms.
double gamma(int64_t n) { return n * kU / (1 - n * kU); }

// A slice of -inf along `dim`, shaped like t's slices.
at::Tensor neg_inf_slice(const at::Tensor& t, int64_t dim) { return at::full_like(t.narrow(dim, 0, 1), -kInf); }

// For each i: log(sum over j != i of exp(t_j)) along `dim` (-inf for a single
// element). Prefix and suffix log-cumsum-exps, so nothing cancels.
at::Tensor logsumexp_others(const at::Tensor& t, int64_t dim) {
  int64_t n = t.size(dim);
  if (n == 1) return at::full_like(t, -kInf);
  at::Tensor pre = at::logcumsumexp(t, dim), suf = at::logcumsumexp(t.flip(dim), dim).flip(dim);
  pre = at::cat({neg_inf_slice(t, dim), pre.narrow(dim, 0, n - 1)}, dim);
  suf = at::cat({suf.narrow(dim, 1, n - 1), neg_inf_slice(t, dim)}, dim);
  return at::logaddexp(pre, suf);
}

// log(1 + exp(z)), stable; 0 at z = -inf.
at::Tensor softplus_stable(const at::Tensor& z) { return z.clamp_min(0.0) + at::log1p(at::exp(-z.abs())); }

// Real bounds of log_softmax_i = -log(1 + sum_{j != i} exp(x_j - x_i)): increasing
// in x_i, decreasing in every other x_j. Computed on x minus the row's largest upper
// bound (softmax does not change under a shift): on values near 4e30 the log-sum-exp
// of the others is x + log 2 in real numbers, but x in float64, and the bounds came
// out as 1/2 for a softmax of 1/3 (found by fuzz_soundness).
Bounds real_log_softmax(const at::Tensor& lo_in, const at::Tensor& hi_in, int64_t dim) {
  at::Tensor c = hi_in.amax(dim, true);
  at::Tensor lo = lo_in - c, hi = hi_in - c;
  return {-softplus_stable(logsumexp_others(hi, dim) - lo), -softplus_stable(logsumexp_others(lo, dim) - hi)};
}

}  // namespace

// The kernel computes d = x - max (rounding: u |d|), s = sum exp(d) (exp 4 ulps, the
// sum gamma_n; a term's argument error u |d| matters only while exp(d) is not
// negligible, |d| < 110), then d - log(s) (or x - (max + log s) on some paths,
// whose rounding is relative to |max|).
Bounds log_softmax_bounds(const at::Tensor& lo_in, const at::Tensor& hi_in, int64_t dim) {
  at::Tensor lo = lo_in.clamp(-kFloat32Max, kFloat32Max), hi = hi_in.clamp(-kFloat32Max, kFloat32Max);
  int64_t n = lo.size(dim);
  Bounds r = real_log_softmax(lo, hi, dim);
  at::Tensor m_hi = hi.amax(dim, true), m_lo = lo.amax(dim, true);
  double log_n = std::log(static_cast<double>(n));
  double sum_err = 2 * (std::expm1(110 * kU) + gamma(n) + 16 * kU);
  at::Tensor err = ((m_hi - lo) + (log_n + 1)) * (3 * kU) + at::maximum(m_hi.abs(), m_lo.abs()) * (2 * kU) + sum_err;
  return {r.lo - err, (r.hi + err).clamp_max(0.0)};
}

// exp(d_i) / s: relative error exp(u min(|d|, 110)) for the numerator and for the
// denominator's terms, 4 ulps per exp, gamma_n for the sum, 3 ulps for the division
// (or reciprocal and product); results under the float32 subnormals flush to 0.
Bounds softmax_bounds(const at::Tensor& lo_in, const at::Tensor& hi_in, int64_t dim) {
  at::Tensor lo = lo_in.clamp(-kFloat32Max, kFloat32Max), hi = hi_in.clamp(-kFloat32Max, kFloat32Max);
  int64_t n = lo.size(dim);
  Bounds r = real_log_softmax(lo, hi, dim);
  at::Tensor m_hi = hi.amax(dim, true);
  at::Tensor d_row = (m_hi - lo.amin(dim, true)).clamp_max(110.0), d_i = (m_hi - lo).clamp_max(110.0);
  at::Tensor rel = ((d_row + d_i) * kU + (gamma(n) + 22 * kU)) * 1.1;
  at::Tensor p_lo = r.lo.exp(), p_hi = r.hi.exp();
  double abs = 16 * kFloat32MinSubnormal;
  at::Tensor up = (p_hi + p_hi * rel + abs).clamp(0.0, 1.0);
  // x_i - max <= hi_i - max_j lo_j: from -110 on, exp of it (under 1.7e-48, a thousandth
  // of the smallest subnormal) is 0 in float32, and so is p_i (ATen flushes from -103).
  at::Tensor d_hi = hi - lo.amax(dim, true);
  return {(p_lo - p_lo * rel - abs).clamp(0.0, 1.0), at::where(d_hi <= -110.0, at::zeros_like(up), up)};
}

namespace {

using Tensors = std::vector<at::Tensor>;
using AxisFn = at::Tensor (*)(const at::Tensor&, int64_t);

// Applies `f` along the axis the opset defines, restoring the input's shape.
at::Tensor along_axis(const OpContext& ctx, const at::Tensor& x, AxisFn f) {
  int64_t rank = x.dim();
  if (ctx.opset >= 13) {
    if (rank == 0) return f(x.reshape({1}), 0).reshape({});
    return f(x, normalize_axis(ctx, attr_int(ctx.node, "axis", -1), rank));
  }
  // The 2-D coercion allows axis == rank (rows of one element).
  int64_t axis = attr_int(ctx.node, "axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) ctx.fail("axis is out of range");
  int64_t rows = 1, cols = 1;
  for (int64_t d = 0; d < rank; ++d) (d < axis ? rows : cols) *= x.size(d);
  at::Tensor flat = x.reshape({rows, cols});
  return f(flat, 1).reshape(x.sizes());
}

at::Tensor softmax(const at::Tensor& x, int64_t dim) { return at::softmax(x, dim); }
at::Tensor log_softmax(const at::Tensor& x, int64_t dim) { return at::log_softmax(x, dim); }

// 1 at the first maximum of each slice, 0 elsewhere (np.argmax's tie rule; a NaN
// counts as the maximum, as in numpy and at::argmax).
at::Tensor hardmax(const at::Tensor& x, int64_t dim) {
  if (x.numel() == 0) return at::zeros_like(x);
  at::Tensor idx = x.argmax(dim, /*keepdim=*/true);
  return at::zeros_like(x).scatter(dim, idx, 1);
}

OpDef along(const char* op_type, AxisFn f) {
  return OpDef{op_type, [f](const OpContext& ctx) { return Tensors{along_axis(ctx, ctx.input(0), f)}; }};
}

// ---- abstract semantics ------------------------------------------------------

// The bounds with the rank of the shape, lo and hi of one cell shape.
std::pair<at::Tensor, at::Tensor> same_rank(const IntervalTensor& x) {
  auto b = at::broadcast_tensors({x.lo, x.hi});
  at::Tensor lo = b[0], hi = b[1];
  while (lo.dim() < static_cast<int64_t>(x.shape.size())) { lo = lo.unsqueeze(0); hi = hi.unsqueeze(0); }
  return {lo, hi};
}

using BoundsFn = Bounds (*)(const at::Tensor&, const at::Tensor&, int64_t);

// Applies `f` to the bounds along the axis the opset defines. From opset 13 only the
// axis is expanded (other dims keep their cells); before, the 2-D coercion needs
// full tensors.
std::vector<IntervalTensor> along_bounds(const AbstractContext& a, BoundsFn f) {
  const IntervalTensor& x = a.input(0);
  auto [lo, hi] = same_rank(x);
  int64_t rank = static_cast<int64_t>(x.shape.size());
  Bounds r;
  if (x.numel() == 0) {
    r = {lo, hi};
  } else if (a.opset >= 13) {
    if (rank == 0) {
      r = f(lo.reshape({1}), hi.reshape({1}), 0);
      r = {r.lo.reshape({}), r.hi.reshape({})};
    } else {
      int64_t axis = attr_int(a.node, "axis", -1);
      if (axis < -rank || axis >= rank) a.fail("axis is out of range");
      if (axis < 0) axis += rank;
      std::vector<int64_t> sizes = lo.sizes().vec();
      sizes[axis] = x.shape[axis];
      r = f(lo.expand(sizes), hi.expand(sizes), axis);
    }
  } else {
    int64_t axis = attr_int(a.node, "axis", 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank) a.fail("axis is out of range");
    int64_t rows = 1, cols = 1;
    for (int64_t d = 0; d < rank; ++d) (d < axis ? rows : cols) *= x.shape[d];
    r = f(lo.expand(x.shape).reshape({rows, cols}), hi.expand(x.shape).reshape({rows, cols}), 1);
    r = {r.lo.reshape(x.shape), r.hi.reshape(x.shape)};
  }
  return {compact(IntervalTensor::of_bounds(r.lo, r.hi, x.shape, x.dtype))};
}

// Element i can be the first maximum only if hi_i >= max_j lo_j; it surely is when
// lo_i > max_{j != i} hi_j.
Bounds hardmax_bounds(const at::Tensor& lo, const at::Tensor& hi, int64_t dim) {
  int64_t n = lo.size(dim);
  at::Tensor can = hi >= lo.amax(dim, true);
  at::Tensor others;
  if (n == 1) {
    others = at::full_like(hi, -kInf);
  } else {
    auto top = at::topk(hi, 2, dim);
    at::Tensor first = std::get<0>(top).narrow(dim, 0, 1), second = std::get<0>(top).narrow(dim, 1, 1);
    std::vector<int64_t> view(hi.dim(), 1);
    view[dim] = n;
    at::Tensor index = at::arange(n, hi.options().dtype(at::kLong)).reshape(view);
    others = at::where(index == std::get<1>(top).narrow(dim, 0, 1), second, first);
  }
  at::Tensor sure = lo > others;
  return {sure.to(at::kDouble), can.to(at::kDouble)};
}

// Per entry, as bounds: whether its row surely (lo) or possibly (hi) has every entry
// -inf or some entry +inf, where the kernel's x - max is NaN. A row of a causal mask
// keeps its diagonal finite, so it has neither.
Bounds infinite_rows(const at::Tensor& lo, const at::Tensor& hi, int64_t dim) {
  at::Tensor can = (lo == -kInf).all(dim, true).logical_or((hi == kInf).any(dim, true));
  at::Tensor sure = (hi == -kInf).all(dim, true).logical_or((lo == kInf).any(dim, true));
  return {sure.to(at::kDouble).expand_as(lo), can.to(at::kDouble).expand_as(lo)};
}

constexpr const char* kInfiniteRow = "softmax-infinite-row";

std::vector<HazardReport> infinite_row_hazard(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if (!x.is_float() || x.numel() == 0) return {};
  IntervalTensor rows = along_bounds(a, infinite_rows).front();
  if (!(rows.max() > 0)) return {};
  return {HazardReport{kInfiniteRow, HazardKind::kForward, 0,
                       "a row whose entries are all -inf (fully masked), or an entry +inf: NaN",
                       rows.lo.max().item<double>() > 0}};  // definite: some row surely is
}

OpDef along_with_rows(OpDef d, BoundsFn f) {
  d = takes_infinities(with(std::move(d), [f](const AbstractContext& a) { return along_bounds(a, f); }, infinite_row_hazard));
  return with_facets(std::move(d), {slice_facet(kInfiniteRow, HazardKind::kForward, "a whole row decides it")});
}

NANGUARD_REGISTER_OPS({
    along_with_rows(along("Softmax", softmax), softmax_bounds),
    along_with_rows(along("LogSoftmax", log_softmax), log_softmax_bounds),
    with(along("Hardmax", hardmax), [](const AbstractContext& a) { return along_bounds(a, hardmax_bounds); }),
});

}  // namespace
}  // namespace nanguard
