#include "ops/interval_arith.h"

#include <ATen/ExpandUtils.h>

namespace nanguard {

Bounds bounds_add(const Bounds& a, const Bounds& b) { return {a.lo + b.lo, a.hi + b.hi}; }
Bounds bounds_sub(const Bounds& a, const Bounds& b) { return {a.lo - b.hi, a.hi - b.lo}; }

Bounds bounds_mul(const Bounds& a, const Bounds& b) {
  // 0 * inf is 0 for the real values an interval stands for; an infinite product stays
  // infinite (a mask fill times a positive factor is the fill, not DBL_MAX).
  auto safe = [](const at::Tensor& p) { return at::where(p.isnan(), at::zeros_like(p), p); };
  at::Tensor p1 = safe(a.lo * b.lo), p2 = safe(a.lo * b.hi), p3 = safe(a.hi * b.lo), p4 = safe(a.hi * b.hi);
  return {at::minimum(at::minimum(p1, p2), at::minimum(p3, p4)),
          at::maximum(at::maximum(p1, p2), at::maximum(p3, p4))};
}

Bounds bounds_div_nonzero(const Bounds& a, const Bounds& b) {
  return bounds_mul(a, Bounds{b.hi.reciprocal(), b.lo.reciprocal()});
}

Bounds bounds_hull(const Bounds& a, const Bounds& b) {
  return {at::minimum(a.lo, b.lo), at::maximum(a.hi, b.hi)};
}

std::vector<int64_t> broadcast_shape(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  return at::infer_size(a, b);
}

IntervalTensor make_interval(const Bounds& b, std::vector<int64_t> shape, at::ScalarType dtype, int ulps) {
  at::Tensor lo = b.lo, hi = b.hi;
  // Keep the rank of the bounds equal to the tensor's (broadcasting may add leading dims).
  while (lo.dim() < static_cast<int64_t>(shape.size())) lo = lo.unsqueeze(0);
  while (hi.dim() < static_cast<int64_t>(shape.size())) hi = hi.unsqueeze(0);
  return round_out(IntervalTensor::of_bounds(lo, hi, std::move(shape), dtype), ulps);
}

at::Tensor contains_zero(const IntervalTensor& t) { return (t.lo <= 0).logical_and(t.hi >= 0); }

}  // namespace nanguard
