// Interval arithmetic on bound tensors (real arithmetic in float64, broadcasting);
// callers apply round_out for the float32 rounding of their op.
#pragma once

#include <vector>

#include <ATen/ATen.h>

#include "ops/interval.h"

namespace nanguard {

struct Bounds {
  at::Tensor lo, hi;
};

Bounds bounds_add(const Bounds& a, const Bounds& b);
Bounds bounds_sub(const Bounds& a, const Bounds& b);
// Products of the four corners; 0 * inf counts as 0 (the operands are finite in
// the safe state, an infinite bound only means "unbounded").
Bounds bounds_mul(const Bounds& a, const Bounds& b);
// Requires 0 outside b; returns a * [1/b.hi, 1/b.lo].
Bounds bounds_div_nonzero(const Bounds& a, const Bounds& b);
Bounds bounds_hull(const Bounds& a, const Bounds& b);

inline Bounds bounds_of(const IntervalTensor& t) { return {t.lo, t.hi}; }
std::vector<int64_t> broadcast_shape(const std::vector<int64_t>& a, const std::vector<int64_t>& b);
// Builds a float result of `shape`, keeping exact-value bookkeeping off.
IntervalTensor make_interval(const Bounds& b, std::vector<int64_t> shape, at::ScalarType dtype, int ulps);

// True where the interval holds zero.
at::Tensor contains_zero(const IntervalTensor& t);

}  // namespace nanguard
