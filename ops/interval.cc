#include "ops/interval.h"

#include <cmath>
#include <limits>
#include <sstream>

namespace nanguard {
namespace {

// The value alone; with_bounds() adds its float64 lo = hi.
IntervalTensor value_only(const at::Tensor& v) {
  IntervalTensor t;
  t.value = v.detach();
  t.dtype = v.scalar_type();
  t.shape = v.sizes().vec();
  return t;
}

}  // namespace

IntervalTensor IntervalTensor::of_value(const at::Tensor& v) { return value_only(v).with_bounds(); }

IntervalTensor IntervalTensor::of_weight(const at::Tensor& v, int64_t lazy_above) {
  if (lazy_above <= 0 || v.numel() <= lazy_above || !at::isFloatingType(v.scalar_type())) return of_value(v);
  auto [mn, mx] = at::aminmax(v);  // an infinite weight is a carried infinity: readers test lo for it
  if (!std::isfinite(mn.item<double>()) || !std::isfinite(mx.item<double>())) return of_value(v);
  return value_only(v);
}

IntervalTensor IntervalTensor::with_bounds() const {
  if (!lazy()) return *this;
  IntervalTensor t = *this;
  t.lo = value.to(at::kCPU).to(at::kDouble);
  t.hi = t.lo;
  return t;
}

IntervalTensor IntervalTensor::uniform(std::vector<int64_t> shape, at::ScalarType dtype, double lo, double hi) {
  std::vector<int64_t> cell(shape.size(), 1);
  return of_bounds(at::full(cell, lo, at::kDouble), at::full(cell, hi, at::kDouble), std::move(shape), dtype);
}

IntervalTensor IntervalTensor::top(std::vector<int64_t> shape, at::ScalarType dtype) {
  double inf = std::numeric_limits<double>::infinity();
  return uniform(std::move(shape), dtype, -inf, inf);
}

IntervalTensor IntervalTensor::of_bounds(at::Tensor lo, at::Tensor hi, std::vector<int64_t> shape, at::ScalarType dtype) {
  IntervalTensor t;
  t.lo = lo.to(at::kDouble);
  t.hi = hi.to(at::kDouble);
  t.shape = std::move(shape);
  t.dtype = dtype;
  return t;
}

// Saturating: a declared shape past int64 (found by fuzz_loader under UBSan) counts
// as the largest; the size checks refuse it.
int64_t IntervalTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return std::numeric_limits<int64_t>::max();
  return n;
}

at::Tensor IntervalTensor::full_lo() const { return lazy() ? value.to(at::kDouble) : lo.expand(shape); }
at::Tensor IntervalTensor::full_hi() const { return lazy() ? value.to(at::kDouble) : hi.expand(shape); }

double IntervalTensor::min() const {
  const at::Tensor& b = lazy() ? value : lo;
  return b.numel() == 0 ? std::numeric_limits<double>::infinity() : b.min().item<double>();
}
double IntervalTensor::max() const {
  const at::Tensor& b = lazy() ? value : hi;
  return b.numel() == 0 ? -std::numeric_limits<double>::infinity() : b.max().item<double>();
}

std::string IntervalTensor::str() const {
  std::ostringstream s;
  s.precision(9);
  s << "[" << min() << ", " << max() << "]";
  return s.str();
}

std::pair<double, double> integer_range(at::ScalarType t) {
  switch (t) {
    case at::kBool: return {0, 1};
    case at::kByte: return {0, 255};
    case at::kChar: return {-128, 127};
    case at::kShort: return {-32768, 32767};
    case at::kInt: return {-2147483648.0, 2147483647.0};
    default: return {-9223372036854775808.0, 9223372036854775807.0};
  }
}

IntervalTensor round_out(IntervalTensor t, int ulps) {
  if (t.exact()) return t;
  if (!t.is_float()) {
    // Integer arithmetic wraps around: a result outside the type's range may be any
    // value of the type (uint8 3 - 5 is 254).
    auto [mn, mx] = integer_range(t.dtype);
    at::Tensor wraps = (t.lo < mn).logical_or(t.hi > mx).logical_or(t.lo.isnan()).logical_or(t.hi.isnan());
    t.lo = at::where(wraps, at::full_like(t.lo, mn), t.lo.floor());
    t.hi = at::where(wraps, at::full_like(t.hi, mx), t.hi.ceil());
    return t;
  }
  if (ulps <= 0) return t;
  double rel = ulps * kFloat32Ulp, abs = ulps * kFloat32MinSubnormal;
  // Rounding keeps the sign (a tiny result flushes to 0, never across it), so a
  // bound on the right side of 0 stays there: x * x >= 0 holds in float32 too.
  at::Tensor lo = t.lo - t.lo.abs() * rel - abs, hi = t.hi + t.hi.abs() * rel + abs;
  lo = at::where(t.lo >= 0, lo.clamp_min(0.0), lo);
  hi = at::where(t.hi <= 0, hi.clamp_max(0.0), hi);
  // An infinite bound (a -inf mask carried along) stays itself: -inf + inf * u is NaN.
  t.lo = at::where(t.lo.isinf(), t.lo, lo);
  t.hi = at::where(t.hi.isinf(), t.hi, hi);
  return t;
}

IntervalTensor clamp_finite(IntervalTensor t) {
  if (!t.is_float() || t.exact()) return t;
  double m = t.dtype == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
  t.lo = t.lo.clamp(-m, m);
  t.hi = t.hi.clamp(-m, m);
  return t;
}

IntervalTensor compact(IntervalTensor t) {
  if (t.exact()) return t;
  for (int64_t d = 0; d < t.lo.dim(); ++d) {
    if (t.lo.size(d) <= 1) continue;
    at::Tensor lo_min = t.lo.amin(d, true), hi_max = t.hi.amax(d, true);
    if (at::equal(lo_min.expand_as(t.lo), t.lo) && at::equal(hi_max.expand_as(t.hi), t.hi)) {
      t.lo = lo_min;
      t.hi = hi_max;
    }
  }
  return t;
}

}  // namespace nanguard
