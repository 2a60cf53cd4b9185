// Center/radius (Rump's midpoint-radius) bounds for bilinear ops y = f(x, w): MatMul,
// Gemm, Einsum, Conv, ConvTranspose. With x = xc +- xr and w = wc +- wr:
//   y in f(xc, wc) +- [f(|xc| + xr, |wc| + wr) - f(|xc|, |wc|)]  (exact in reals)
// plus the float32 accumulation error gamma_n * f(|x|max, |w|max) of a length-n dot
// product summed in any order (Higham 3.5), and n smallest subnormals for products
// that underflow. A fixed weight (wr = 0) gives exact per-element bounds.
// Soundness margin: gamma uses n + 2, which also covers the float64 rounding of these
// bound computations (2^-53 relative to f(|x|, |w|), far below 2u).
// Used by ops/linear.cc and ops/conv.cc.
#pragma once

#include <functional>
#include <limits>

#include <ATen/ATen.h>

#include "ops/interval.h"
#include "ops/interval_arith.h"

namespace nanguard {

using BilinearFn = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;

// The unit roundoff of one rounding to a float type (the run's, or a tensor's).
inline double unit_roundoff(at::ScalarType float_type) {
  switch (float_type) {
    case at::kDouble: return 0x1p-53;
    case at::kHalf: return 0x1p-11;
    case at::kBFloat16: return 0x1p-8;
    default: return 0x1p-24;
  }
}

// gamma_{n+2} = (n+2)u / (1 - (n+2)u); infinite when (n+2)u >= 1.
inline double accumulation_gamma(double n, at::ScalarType float_type) {
  double nu = (n + 2) * unit_roundoff(float_type);
  return nu >= 1 ? std::numeric_limits<double>::infinity() : nu / (1 - nu);
}

inline double value_limit(at::ScalarType float_type) {
  return float_type == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
}

struct CenterRadius {
  at::Tensor c, r;
  bool exact = false;
};

// Center and radius of `t` expanded to `sizes` (pass t.shape for the full tensor).
// Bounds are clipped to finite values first: an unbounded input (downstream of an
// unsupported op) then gives huge but finite bounds instead of NaN centers.
// A fixed operand (a weight: lo == hi) is its own center, used in place when finite
// (no copy of a large weight), and its radius a broadcast 0 (no storage).
inline CenterRadius center_radius(const IntervalTensor& t, at::IntArrayRef sizes, at::ScalarType float_type) {
  double m = value_limit(float_type);
  CenterRadius cr;
  cr.exact = t.exact();
  if (cr.exact) {
    auto [mn, mx] = at::aminmax(t.lo);
    bool inside = mn.item<double>() >= -m && mx.item<double>() <= m;  // false on NaN too
    cr.c = (inside ? t.lo : t.lo.clamp(-m, m)).expand(sizes).contiguous();
    cr.r = at::zeros({}, cr.c.options()).expand(cr.c.sizes());
    return cr;
  }
  at::Tensor lo = t.lo.clamp(-m, m).expand(sizes), hi = t.hi.clamp(-m, m).expand(sizes);
  cr.c = (lo * 0.5 + hi * 0.5).contiguous();
  cr.r = at::maximum(hi - cr.c, cr.c - lo).clamp_min(0.0).contiguous();
  return cr;
}

// Bounds of f(x, w) as computed in the run's float type, with `n` the number of
// products summed per output element (a tensor broadcastable to the output, or a
// scalar tensor). An element whose |partial sums| may pass the float limit gets
// infinite bounds: the accumulator may overflow there even if the exact sum does not.
inline Bounds bilinear_bounds(const BilinearFn& f, const CenterRadius& x, const CenterRadius& w, double n,
                              at::ScalarType float_type) {
  double g = accumulation_gamma(n, float_type);
  double tiny = float_type == at::kDouble ? 4.9406564584124654e-324 : kFloat32MinSubnormal;
  at::Tensor yc = f(x.c, w.c);
  at::Tensor ax = x.c.abs(), aw = w.c.abs();
  at::Tensor rad, mag;  // rad: radius plus rounding; mag: f(|x|max, |w|max) when computed
  if (w.exact) {
    // f(xr, |wc|) + g * f(|xc| + xr, |wc|) in one call.
    rad = (x.exact ? f(ax, aw) * g : f(x.r * (1 + g) + ax * g, aw)) + n * tiny;
  } else if (x.exact) {
    rad = f(ax, w.r * (1 + g) + aw * g) + n * tiny;
  } else {
    mag = f(ax + x.r, aw + w.r);
    rad = (mag - f(ax, aw)).clamp_min(0.0) + mag * g + n * tiny;
  }
  double inf = std::numeric_limits<double>::infinity();
  at::Tensor lo = at::nan_to_num(yc - rad, -inf, inf, -inf), hi = at::nan_to_num(yc + rad, inf, inf, -inf);
  // Every partial sum is bounded by mag = f(|x|max, |w|max); where mag may pass the
  // float limit the accumulator may overflow even if the exact sum does not. A cheap
  // scalar test (max|x| * max|w| * n) skips computing mag in the common case.
  double limit = value_limit(float_type);
  // A fixed operand's radius is a broadcast 0: its max is max|c|, without a full-size
  // temporary (|W| + 0 of vgg16's 25088 x 4096 weight is 822 MB of float64); amax
  // reduces a transposed weight in place, where max() copies it contiguous first.
  auto max_of = [](const at::Tensor& a, const CenterRadius& t) {
    return (t.exact ? a.amax() : (a + t.r).amax()).item<double>();
  };
  double xmax = max_of(ax, x), wmax = max_of(aw, w);
  if (xmax * wmax * n * (1 + g) > limit) {
    if (!mag.defined()) mag = f(ax + x.r, aw + w.r);
    at::Tensor risky = at::isnan(mag).logical_or(mag * (1 + g) > limit);
    lo = at::where(risky, at::full_like(lo, -inf), lo);
    hi = at::where(risky, at::full_like(hi, inf), hi);
  }
  return {lo, hi};
}

// Adds a bias interval to bounds from bilinear_bounds called with n + 1 terms: the
// bias is the (n+1)-th term 1 * b of the sum, so its share of the error is
// gamma * |b| with the same gamma (pass the same n).
inline Bounds add_bias(Bounds y, const IntervalTensor& b, at::IntArrayRef bias_shape, double n,
                       at::ScalarType float_type) {
  double g = accumulation_gamma(n, float_type);
  double m = value_limit(float_type);
  at::Tensor lo = b.lo.clamp(-m, m).expand(b.shape).reshape(bias_shape);
  at::Tensor hi = b.hi.clamp(-m, m).expand(b.shape).reshape(bias_shape);
  at::Tensor mag = at::maximum(lo.abs(), hi.abs());
  return {y.lo + lo - mag * g, y.hi + hi + mag * g};
}

}  // namespace nanguard
