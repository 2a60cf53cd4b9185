// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1,
// ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare; ArgMax, ArgMin; CumSum.
// Axes come from the `axes` attribute, or from the optional second input (ReduceSum
// from opset 13, every Reduce* from 18). No axes reduce everything, unless
// noop_with_empty_axes = 1, which returns the input unchanged (the spec's words).
// Reducing an empty set gives the spec's identity: 0 for sums, 1 for Prod, -inf/+inf
// for Max/Min (the type's lowest/highest for integers), NaN (0/0) for Mean, -inf for
// LogSum and LogSumExp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include <ATen/ATen.h>

#include <fmt/core.h>

#include "ops/type_limit.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"

namespace nanguard {
namespace {

using Tensors = std::vector<at::Tensor>;

struct Reduction {
  std::vector<int64_t> dims;  // normalised, sorted; all axes when none were given
  bool keepdims = true;
  bool noop = false;  // noop_with_empty_axes with no axes
  bool empty_set = false;  // some reduced axis has size 0
};

Reduction reduction_of(const OpContext& ctx, const at::Tensor& x) {
  Reduction r;
  r.keepdims = attr_int(ctx.node, "keepdims", 1) != 0;
  std::vector<int64_t> axes;
  if (ctx.has_input(1)) axes = ctx.input_ints(1);
  else if (auto a = attr_ints_opt(ctx.node, "axes")) axes = *a;
  if (axes.empty()) {
    r.noop = attr_int(ctx.node, "noop_with_empty_axes", 0) != 0;
    for (int64_t d = 0; d < x.dim(); ++d) axes.push_back(d);
  }
  for (int64_t a : axes) r.dims.push_back(normalize_axis(ctx, a, x.dim()));
  std::sort(r.dims.begin(), r.dims.end());
  r.dims.erase(std::unique(r.dims.begin(), r.dims.end()), r.dims.end());
  for (int64_t d : r.dims) r.empty_set |= x.size(d) == 0;
  if (x.dim() == 0) r.empty_set = x.numel() == 0;
  return r;
}

// The output shape of a reduction (for the empty-set results built by hand).
std::vector<int64_t> reduced_shape(const at::Tensor& x, const Reduction& r) {
  std::vector<int64_t> shape;
  for (int64_t d = 0; d < x.dim(); ++d) {
    bool reduced = std::find(r.dims.begin(), r.dims.end(), d) != r.dims.end();
    if (!reduced) shape.push_back(x.size(d));
    else if (r.keepdims) shape.push_back(1);
  }
  return shape;
}

// The value max/min/logsumexp give to an empty set.
at::Tensor empty_extreme(const at::Tensor& x, const Reduction& r, bool lowest) {
  at::Scalar v;
  if (at::isFloatingType(x.scalar_type())) {
    v = lowest ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  } else {
    AT_DISPATCH_INTEGRAL_TYPES(x.scalar_type(), "empty_extreme", [&] {
      v = lowest ? std::numeric_limits<scalar_t>::lowest() : std::numeric_limits<scalar_t>::max();
    });
  }
  return at::full(reduced_shape(x, r), v, x.options());
}

// Sum keeping the input's type (at::sum widens integers to int64).
at::Tensor sum(const at::Tensor& x, const Reduction& r) {
  return at::sum(x, r.dims, r.keepdims, x.scalar_type());
}

// Integer means compute in double and truncate, as the reference's astype does.
at::Tensor mean(const at::Tensor& x, const Reduction& r) {
  if (at::isFloatingType(x.scalar_type())) return at::mean(x, r.dims, r.keepdims);
  return at::mean(x.to(at::kDouble), r.dims, r.keepdims).trunc().to(x.scalar_type());
}

at::Tensor prod(const at::Tensor& x, const Reduction& r) {
  at::Tensor y = x;
  for (auto it = r.dims.rbegin(); it != r.dims.rend(); ++it) y = at::prod(y, *it, true, x.scalar_type());
  return r.keepdims ? y : y.reshape(reduced_shape(x, r));
}

at::Tensor amax(const at::Tensor& x, const Reduction& r) {
  return r.empty_set ? empty_extreme(x, r, true) : at::amax(x, r.dims, r.keepdims);
}
at::Tensor amin(const at::Tensor& x, const Reduction& r) {
  return r.empty_set ? empty_extreme(x, r, false) : at::amin(x, r.dims, r.keepdims);
}
at::Tensor l1(const at::Tensor& x, const Reduction& r) { return sum(x.abs(), r); }
at::Tensor sum_square(const at::Tensor& x, const Reduction& r) { return sum(x * x, r); }
// The spec's Sqrt(ReduceSumSquare(x)), not at::norm: its gradient at an all-zero
// slice is NaN (sqrt at 0), a hazard the oracle must be able to witness.
at::Tensor l2(const at::Tensor& x, const Reduction& r) { return sum_square(x, r).sqrt(); }
at::Tensor log_sum(const at::Tensor& x, const Reduction& r) { return sum(x, r).log(); }
// The stable log-sum-exp (max subtracted first), as PyTorch (which exports
// torch.logsumexp to this op) and ONNX Runtime compute it; the spec's reference
// runs its exp in float64, which does not overflow for float32 inputs either.
at::Tensor log_sum_exp(const at::Tensor& x, const Reduction& r) {
  if (r.empty_set) return empty_extreme(x, r, true);
  return at::logsumexp(x, r.dims, r.keepdims);
}

using ReduceFn = at::Tensor (*)(const at::Tensor&, const Reduction&);

// `float_math` ops (L2, LogSum, LogSumExp) on integer inputs compute in double and
// cast back, truncating as the reference's astype does: the output keeps X's type.
OpDef reduce(const char* op_type, ReduceFn f, bool float_math = false) {
  return OpDef{op_type, [f, float_math](const OpContext& ctx) {
                 const at::Tensor& x = ctx.input(0);
                 Reduction r = reduction_of(ctx, x);
                 if (r.noop) return Tensors{x};
                 if (float_math && !at::isFloatingType(x.scalar_type()))
                   return Tensors{f(x.to(at::kDouble), r).to(x.scalar_type())};
                 return Tensors{f(x, r)};
               }};
}

// ArgMax/ArgMin give int64 indices; ties give the first index, or the last with
// select_last_index = 1 (found on the flipped axis). A NaN counts as the extreme
// (numpy and ATen agree).
OpDef arg(const char* op_type, bool is_max) {
  return OpDef{op_type, [is_max](const OpContext& ctx) {
                 const at::Tensor& x = ctx.input(0);
                 int64_t axis = normalize_axis(ctx, attr_int(ctx.node, "axis", 0), x.dim());
                 bool keepdims = attr_int(ctx.node, "keepdims", 1) != 0;
                 bool last = attr_int(ctx.node, "select_last_index", 0) != 0;
                 if (x.size(axis) == 0) ctx.fail("ArgMax/ArgMin of an empty axis is undefined");
                 at::Tensor in = last ? x.flip(axis) : x;
                 at::Tensor idx = is_max ? in.argmax(axis, keepdims) : in.argmin(axis, keepdims);
                 if (last) idx = (x.size(axis) - 1) - idx;
                 return Tensors{idx};
               }};
}

// CumSum along the axis given as input 1. `exclusive` shifts the sums by one
// (the first is 0) rather than subtracting x, which would turn INF into NaN;
// `reverse` sums from the end.
Tensors lower_cumsum(const OpContext& ctx) {
  const at::Tensor& x = ctx.input(0);
  std::vector<int64_t> axis = ctx.input_ints(1);
  if (axis.size() != 1) ctx.fail("axis must be a scalar");
  int64_t dim = normalize_axis(ctx, axis[0], x.dim());
  bool exclusive = attr_int(ctx.node, "exclusive", 0) != 0;
  bool reverse = attr_int(ctx.node, "reverse", 0) != 0;
  at::Tensor in = reverse ? x.flip(dim) : x;
  at::Tensor y = at::cumsum(in, dim, x.scalar_type());
  if (exclusive && x.size(dim) > 0) {
    at::Tensor zero = at::zeros_like(in.narrow(dim, 0, 1));
    y = at::cat({zero, y.narrow(dim, 0, x.size(dim) - 1)}, dim);
  }
  return {reverse ? y.flip(dim) : y};
}

// ---- abstract semantics ------------------------------------------------------
// Bounds reduce with the same ATen reductions on the float64 bound tensors. A size-1
// cell standing for a dimension of k elements counts k times (sums multiply by k,
// products raise to the k-th power, log-sum-exp adds log k). Float32 sums carry
// gamma_n * sum|x| (ATen accumulates in float32 in some order).

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kU = 5.9604644775390625e-08;  // 2^-24: float32 unit roundoff
constexpr double kTiny = kFloat32MinSubnormal;
// |x| below this squares to 0 in float32 (x * x < 2^-150 rounds to 0).
constexpr double kSquareUnderflow = 2.6469779601696886e-23;
using Intervals = std::vector<IntervalTensor>;

double gamma(double n) { return n * kU / (1 - n * kU); }

struct AbsReduction {
  Reduction r;
  std::vector<int64_t> shape;  // the input's
  double n = 1;                // elements per output
};

int64_t axis_in(const AbstractContext& a, int64_t axis, int64_t rank) {
  int64_t v = axis < 0 ? axis + rank : axis;
  if (v < 0 || v >= std::max<int64_t>(rank, 1)) a.fail("axis " + std::to_string(axis) + " is out of range");
  return v;
}

AbsReduction abs_reduction_of(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  AbsReduction ar;
  ar.shape = x.shape;
  int64_t rank = static_cast<int64_t>(x.shape.size());
  Reduction& r = ar.r;
  r.keepdims = attr_int(a.node, "keepdims", 1) != 0;
  std::vector<int64_t> axes;
  if (a.has_input(1)) {
    if (!a.input(1).exact()) a.fail("axes must be known");
    at::Tensor v = a.input(1).value.to(at::kLong).reshape({-1});
    axes.assign(v.data_ptr<int64_t>(), v.data_ptr<int64_t>() + v.numel());
  } else if (auto listed = attr_ints_opt(a.node, "axes")) {
    axes = *listed;
  }
  // ONNX allows axes in [-r, r - 1]: none for a scalar (whose dimension 0 was read past
  // the end of its shape; found by fuzz_loader, ReduceProd of a 0-d input).
  if (rank == 0 && !axes.empty()) a.fail("a rank-0 input has no axis to reduce over");
  if (axes.empty()) {
    r.noop = attr_int(a.node, "noop_with_empty_axes", 0) != 0;
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  }
  for (int64_t ax : axes) r.dims.push_back(axis_in(a, ax, rank));
  std::sort(r.dims.begin(), r.dims.end());
  r.dims.erase(std::unique(r.dims.begin(), r.dims.end()), r.dims.end());
  for (int64_t d : r.dims) {
    r.empty_set |= x.shape[d] == 0;
    ar.n *= static_cast<double>(x.shape[d]);
  }
  if (rank == 0) r.empty_set = x.numel() == 0;
  return ar;
}

// The bound tensor with the input's rank.
at::Tensor full_rank(at::Tensor t, size_t rank) {
  while (static_cast<size_t>(t.dim()) < rank) t = t.unsqueeze(0);
  return t;
}

at::Tensor cells_sum(const at::Tensor& t, const AbsReduction& ar) {
  if (ar.r.dims.empty()) return t;
  double k = 1;
  for (int64_t d : ar.r.dims)
    if (t.size(d) == 1) k *= static_cast<double>(ar.shape[d]);
  return t.sum(ar.r.dims, true) * k;
}

at::Tensor cells_prod(at::Tensor t, const AbsReduction& ar) {
  for (int64_t d : ar.r.dims) t = t.size(d) == 1 ? t.pow(static_cast<double>(ar.shape[d])) : t.prod(d, true);
  return t;
}

at::Tensor cells_logsumexp(at::Tensor t, const AbsReduction& ar) {
  for (int64_t d : ar.r.dims)
    t = t.size(d) == 1 ? t + std::log(static_cast<double>(ar.shape[d])) : at::logsumexp(t, {d}, true);
  return t;
}

// Drops the reduced dims unless keepdims; builds the output interval.
IntervalTensor finish(at::Tensor lo, at::Tensor hi, const AbsReduction& ar, at::ScalarType dtype) {
  std::vector<int64_t> shape;
  for (size_t d = 0; d < ar.shape.size(); ++d) {
    bool reduced = std::find(ar.r.dims.begin(), ar.r.dims.end(), static_cast<int64_t>(d)) != ar.r.dims.end();
    if (!reduced) shape.push_back(ar.shape[d]);
    else if (ar.r.keepdims) shape.push_back(1);
  }
  if (!ar.r.keepdims) {
    for (auto it = ar.r.dims.rbegin(); it != ar.r.dims.rend(); ++it) {
      lo = lo.squeeze(*it);
      hi = hi.squeeze(*it);
    }
  }
  return round_out(IntervalTensor::of_bounds(lo, hi, shape, dtype), 0);
}

struct Cells {
  at::Tensor lo, hi;
};

Cells cells_of(const IntervalTensor& x) {
  auto b = at::broadcast_tensors({x.lo, x.hi});
  return {full_rank(b[0], x.shape.size()), full_rank(b[1], x.shape.size())};
}

// |x| per element: [0 or the distance of the interval from 0, max |bound|].
Cells abs_cells(const Cells& c) {
  at::Tensor zero = at::zeros_like(c.lo);
  return {at::where(c.lo > 0, c.lo, at::where(c.hi < 0, -c.hi, zero)), at::maximum(c.lo.abs(), c.hi.abs())};
}

// Sum of [lo, hi] in float32. Rounded addition is monotone in each term, so any fixed
// summation order of terms >= lo gives at least the float sum of the lo's, itself
// within gamma_n * sum|lo| of the exact one (and likewise above): each bound carries
// the error of its own terms, not of the largest magnitudes.
Cells sum_with_error(const Cells& c, const AbsReduction& ar, bool is_float) {
  at::Tensor lo = cells_sum(c.lo, ar), hi = cells_sum(c.hi, ar);
  if (!is_float) return {lo, hi};
  at::Tensor err_lo = cells_sum(c.lo.abs(), ar) * gamma(ar.n) + kTiny;
  at::Tensor err_hi = cells_sum(c.hi.abs(), ar) * gamma(ar.n) + kTiny;
  // A float32 sum of non-negative terms is non-negative (of non-positive, non-positive):
  // the error term must not push the bound across 0 (var = mean((x - m)^2) >= 0).
  at::Tensor nonneg = c.lo.amin(ar.r.dims, true) >= 0, nonpos = c.hi.amax(ar.r.dims, true) <= 0;
  at::Tensor zero = at::zeros_like(lo);
  return {at::where(nonneg, at::maximum(lo - err_lo, zero), lo - err_lo),
          at::where(nonpos, at::minimum(hi + err_hi, zero), hi + err_hi)};
}

enum class Kind { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kSumSquare, kLogSum, kLogSumExp };

// What each reduction gives an empty set (the lowering's identities).
IntervalTensor empty_result(Kind k, const AbsReduction& ar, at::ScalarType dtype) {
  double v = 0;
  if (k == Kind::kProd) v = 1;
  if (k == Kind::kMax || k == Kind::kLogSum || k == Kind::kLogSumExp) v = -kInf;
  if (k == Kind::kMin) v = kInf;
  if (k == Kind::kMean) return finish(at::full({1}, -kInf, at::kDouble).expand(std::vector<int64_t>(ar.shape.size(), 1)).contiguous(),
                                      at::full(std::vector<int64_t>(ar.shape.size(), 1), kInf, at::kDouble), ar, dtype);
  at::Tensor t = at::full(std::vector<int64_t>(ar.shape.size(), 1), v, at::kDouble);
  return finish(t, t.clone(), ar, dtype);
}

Intervals reduce_interval(const AbstractContext& a, Kind k) {
  const IntervalTensor& x = a.input(0);
  AbsReduction ar = abs_reduction_of(a);
  if (ar.r.noop) return {x};
  if (ar.r.empty_set || x.numel() == 0) return {empty_result(k, ar, x.dtype)};
  bool is_float = x.is_float();
  Cells c = cells_of(x);
  double m = x.dtype == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
  if (is_float) c = {c.lo.clamp(-m, m), c.hi.clamp(-m, m)};  // the safe state: finite operands
  Cells mag = abs_cells(c);
  at::Tensor lo, hi;
  switch (k) {
    case Kind::kSum: { Cells s = sum_with_error(c, ar, is_float); lo = s.lo; hi = s.hi; break; }
    case Kind::kMean: {
      Cells s = sum_with_error(c, ar, is_float);
      lo = s.lo / ar.n;
      hi = s.hi / ar.n;
      if (is_float) { lo = lo - lo.abs() * kU; hi = hi + hi.abs() * kU; }
      break;
    }
    case Kind::kMax: lo = c.lo.amax(ar.r.dims, true); hi = c.hi.amax(ar.r.dims, true); break;
    case Kind::kMin: lo = c.lo.amin(ar.r.dims, true); hi = c.hi.amin(ar.r.dims, true); break;
    case Kind::kProd: {
      // Non-negative groups are monotone; otherwise |prod| <= prod of max |x|.
      at::Tensor nonneg = (c.lo.amin(ar.r.dims, true) >= 0);
      at::Tensor big = cells_prod(mag.hi, ar);
      lo = at::where(nonneg, cells_prod(c.lo.clamp_min(0.0), ar), -big);
      hi = at::where(nonneg, cells_prod(c.hi.clamp_min(0.0), ar), big);
      if (is_float) { double g = gamma(ar.n); lo = lo - lo.abs() * g - kTiny; hi = hi + hi.abs() * g + kTiny; }
      break;
    }
    case Kind::kL1: { Cells s = sum_with_error(mag, ar, is_float); lo = s.lo.clamp_min(0.0); hi = s.hi; break; }
    case Kind::kSumSquare: case Kind::kL2: case Kind::kLogSum: break;
    case Kind::kLogSumExp: {
      lo = cells_logsumexp(c.lo, ar);
      hi = cells_logsumexp(c.hi, ar);
      if (is_float) {
        // max + log(sum exp(x - max)): the log carries the sum's relative error
        // (exp 4 ulps, its argument's u |x - max| while exp matters, gamma_n), then
        // one rounding of the result.
        double err = 2 * (std::expm1(110 * kU) + gamma(ar.n) + 16 * kU) + 8 * kFloat32Ulp * std::log(ar.n + 1);
        lo = lo - lo.abs() * (2 * kU) - err;
        hi = hi + hi.abs() * (2 * kU) + err;
      }
      break;
    }
  }
  if (k == Kind::kSumSquare || k == Kind::kL2 || k == Kind::kLogSum) {
    Cells s;
    if (k == Kind::kLogSum) {
      s = sum_with_error(c, ar, is_float);
    } else {
      Cells sq{mag.lo * mag.lo, mag.hi * mag.hi};
      s = sum_with_error(sq, ar, is_float);
      if (is_float) s.lo = s.lo * (1 - kU) - ar.n * kTiny;  // each square rounds (to 0 below 2.6e-23)
      s.lo = s.lo.clamp_min(0.0);
    }
    if (k == Kind::kSumSquare) { lo = s.lo; hi = s.hi; }
    if (k == Kind::kL2) { lo = s.lo.sqrt(); hi = s.hi.sqrt(); if (is_float) { lo = lo * (1 - 2 * kU); hi = hi * (1 + 2 * kU); } }
    if (k == Kind::kLogSum) {
      // The safe state is sum > 0 (log-nonpositive reported otherwise).
      lo = s.lo.clamp_min(is_float ? kTiny : 1.0).log();
      hi = s.hi.clamp_min(is_float ? kTiny : 1.0).log();
      if (is_float) { lo = lo - lo.abs() * (4 * kFloat32Ulp) - kTiny; hi = hi + hi.abs() * (4 * kFloat32Ulp) + kTiny; }
    }
  }
  return {finish(lo, hi, ar, x.dtype)};
}

HazardReport report(const char* name, HazardKind kind, const std::string& cond, bool definite) {
  return HazardReport{name, kind, 0, cond, definite};
}

std::vector<HazardReport> empty_hazards(const AbstractContext& a, Kind k) {
  AbsReduction ar = abs_reduction_of(a);
  if (ar.r.noop || !ar.r.empty_set) return {};
  if (k == Kind::kMean) return {report("reduce-empty", HazardKind::kForward, "mean of an empty set (0 / 0)", true)};
  if (k == Kind::kMax || k == Kind::kMin || k == Kind::kLogSum || k == Kind::kLogSumExp)
    return {report("reduce-empty", HazardKind::kForward, "reduction of an empty set is infinite", true)};
  return {};
}

HazardFn hazards_of(Kind k) {
  return [k](const AbstractContext& a) -> std::vector<HazardReport> {
    std::vector<HazardReport> h = empty_hazards(a, k);
    AbsReduction ar = abs_reduction_of(a);
    if (!h.empty() || ar.r.noop || !a.input(0).is_float()) return h;
    const IntervalTensor& x = a.input(0);
    // Mean, L2 and LogSum go through a float32 sum that overflows before the division,
    // sqrt or log brings it back (measured: mean of six 1e38 is inf). An operand an
    // op computed with bounds at +-FLT_MAX is the clamped echo of an upstream finding
    // (the engine's safe state), not an origin: as the engine's own overflow check
    // does, it is not reported again.
    bool echo = a.producer(0) && (x.max() >= kFloat32Max || x.min() <= -kFloat32Max);
    if (x.dtype == at::kFloat && !echo && (k == Kind::kMean || k == Kind::kL2 || k == Kind::kLogSum)) {
      IntervalTensor s = reduce_interval(a, k == Kind::kL2 ? Kind::kSumSquare : Kind::kSum)[0];
      if ((s.hi > kFloat32Max).logical_or(s.lo < -kFloat32Max).any().item<bool>())
        return {report("overflow", HazardKind::kForward, "the float32 sum inside the reduction exceeds 3.4028235e38", false)};
    }
    if (k == Kind::kLogSum) {
      IntervalTensor s = reduce_interval(a, Kind::kSum)[0];
      if ((s.lo <= 0).any().item<bool>())
        return {report("log-nonpositive", HazardKind::kForward, "sum(x) <= 0", (s.hi <= 0).all().item<bool>())};
      double limit = input_limit(a, 0);  // the gradient has x's type
      if ((s.lo < 1.0 / limit).any().item<bool>())
        return {report("log-gradient-overflow", HazardKind::kGradient, fmt::format("0 < sum(x) < {:.3g}", 1.0 / limit), false)};
    }
    if (k == Kind::kL2) {
      // sqrt's derivative at 0 is infinite: an all-zero slice (or one whose squares
      // all underflow) gives a NaN gradient.
      Cells mag = abs_cells(cells_of(x));
      if ((mag.lo.amax(ar.r.dims, true) <= kSquareUnderflow).any().item<bool>())
        return {report("norm-zero-gradient", HazardKind::kGradient, "every |x| in a slice <= 2.65e-23 (sum of squares == 0)", false)};
    }
    return {};
  };
}

// The hazards hazards_of(k) reports besides the generic "overflow": each is on the
// reduced set as a whole (its emptiness, its sum), never on one element.
std::vector<HazardFacet> reduce_facets(Kind k) {
  std::vector<HazardFacet> f = {slice_facet("reduce-empty", HazardKind::kForward, "the reduced set is empty by shapes and axes, not by a value")};
  const char* sum = "a sum over the reduced axes, not one element";
  if (k == Kind::kLogSum) {
    f.push_back(slice_facet("log-nonpositive", HazardKind::kForward, sum));
    f.push_back(slice_facet("log-gradient-overflow", HazardKind::kGradient, sum));
  }
  if (k == Kind::kL2) f.push_back(slice_facet("norm-zero-gradient", HazardKind::kGradient, sum));
  return f;
}

OpDef abstract_reduce(OpDef d, Kind k) {
  bool guarded = k == Kind::kMean || k == Kind::kMax || k == Kind::kMin || k == Kind::kLogSum ||
                 k == Kind::kLogSumExp || k == Kind::kL2;
  d = with(std::move(d), [k](const AbstractContext& a) { return reduce_interval(a, k); }, guarded ? hazards_of(k) : nullptr);
  if (guarded) d.facets = reduce_facets(k);
  return d;
}

// The first and the last index that can hold the extreme: ArgMax's candidates have
// hi_i >= max_j lo_j, ArgMin's lo_i <= min_j hi_j.
Intervals arg_interval(const AbstractContext& a, bool is_max) {
  const IntervalTensor& x = a.input(0);
  int64_t rank = static_cast<int64_t>(x.shape.size());
  int64_t axis = axis_in(a, attr_int(a.node, "axis", 0), rank);
  bool keepdims = attr_int(a.node, "keepdims", 1) != 0;
  if (rank == 0 || x.shape[axis] == 0) a.fail("ArgMax/ArgMin of an empty axis is undefined");
  Cells c = cells_of(x);
  int64_t n = x.shape[axis];
  std::vector<int64_t> sizes = c.lo.sizes().vec();
  sizes[axis] = n;
  at::Tensor lo = c.lo.expand(sizes), hi = c.hi.expand(sizes);
  at::Tensor cand = is_max ? hi >= lo.amax(axis, true) : lo <= hi.amin(axis, true);
  std::vector<int64_t> view(rank, 1);
  view[axis] = n;
  at::Tensor idx = at::arange(n, at::kDouble).reshape(view).expand(sizes);
  at::Tensor first = at::where(cand, idx, at::full_like(idx, static_cast<double>(n))).amin(axis, true);
  at::Tensor last = at::where(cand, idx, at::full_like(idx, -1.0)).amax(axis, true);
  std::vector<int64_t> shape = x.shape;
  shape[axis] = 1;
  if (!keepdims) {
    shape.erase(shape.begin() + axis);
    first = first.squeeze(axis);
    last = last.squeeze(axis);
  }
  return {IntervalTensor::of_bounds(first, last, shape, at::kLong)};
}

// CumSum is non-decreasing in every element: the lowering's own steps (flip, sum,
// shift) applied to the bounds, widened by gamma_n times the same sums of |x|.
Intervals cumsum_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if (!a.input(1).exact()) a.fail("axis must be known");
  int64_t rank = static_cast<int64_t>(x.shape.size());
  int64_t dim = axis_in(a, a.input(1).value.to(at::kLong).reshape({-1})[0].item<int64_t>(), rank);
  bool exclusive = attr_int(a.node, "exclusive", 0) != 0, reverse = attr_int(a.node, "reverse", 0) != 0;
  Cells c = cells_of(x);
  std::vector<int64_t> sizes = c.lo.sizes().vec();
  sizes[dim] = x.shape[dim];
  auto scan = [&](const at::Tensor& t) {
    at::Tensor in = reverse ? t.expand(sizes).flip(dim) : t.expand(sizes);
    at::Tensor y = at::cumsum(in, dim);
    if (exclusive && x.shape[dim] > 0)
      y = at::cat({at::zeros_like(in.narrow(dim, 0, 1)), y.narrow(dim, 0, x.shape[dim] - 1)}, dim);
    return reverse ? y.flip(dim) : y;
  };
  at::Tensor lo = scan(c.lo), hi = scan(c.hi);
  if (x.is_float()) {
    at::Tensor err = scan(at::maximum(c.lo.abs(), c.hi.abs())) * gamma(static_cast<double>(x.shape[dim])) + kTiny;
    lo = lo - err;
    hi = hi + err;
  }
  return {round_out(IntervalTensor::of_bounds(lo, hi, x.shape, x.dtype), 0)};
}

NANGUARD_REGISTER_OPS({
    abstract_reduce(reduce("ReduceSum", sum), Kind::kSum),
    abstract_reduce(reduce("ReduceMean", mean), Kind::kMean),
    takes_infinities(abstract_reduce(reduce("ReduceMax", amax), Kind::kMax)),
    takes_infinities(abstract_reduce(reduce("ReduceMin", amin), Kind::kMin)),
    abstract_reduce(reduce("ReduceProd", prod), Kind::kProd),
    abstract_reduce(reduce("ReduceL1", l1), Kind::kL1),
    abstract_reduce(reduce("ReduceL2", l2, true), Kind::kL2),
    abstract_reduce(reduce("ReduceLogSum", log_sum, true), Kind::kLogSum),
    abstract_reduce(reduce("ReduceLogSumExp", log_sum_exp, true), Kind::kLogSumExp),
    abstract_reduce(reduce("ReduceSumSquare", sum_square), Kind::kSumSquare),
    with(arg("ArgMax", true), [](const AbstractContext& a) { return arg_interval(a, true); }),
    with(arg("ArgMin", false), [](const AbstractContext& a) { return arg_interval(a, false); }),
    with(OpDef{"CumSum", lower_cumsum}, cumsum_interval),
});

}  // namespace
}  // namespace nanguard
