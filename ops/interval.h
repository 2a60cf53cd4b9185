// IntervalTensor: a sound enclosure of a tensor's values as float64 lower/upper bound
// tensors. The bound tensors broadcast to the real shape: a dimension of size 1 where
// the tensor has more is one cell for the whole dimension (DEBAR-style partitioning),
// a full-size dimension is exact per index. Bounds are plain ATen tensors, so the
// analysis is differentiable with respect to the input ranges.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace nanguard {

constexpr double kFloat32Max = 3.4028234663852886e38;
constexpr double kFloat32Ulp = 1.1920928955078125e-07;        // 2^-23: relative spacing
constexpr double kFloat32MinSubnormal = 1.4012984643248171e-45;  // 2^-149
// The first float32 whose exp overflows: exp(88.72283935546875f) = inf in float32.
constexpr double kExpOverflowFloat32 = 88.72283935546875;

struct IntervalTensor {
  // kDouble, broadcastable to `shape`. Undefined for a lazy weight (below).
  at::Tensor lo, hi;
  std::vector<int64_t> shape;   // the concrete tensor's shape
  at::ScalarType dtype = at::kFloat;
  at::Tensor value;             // defined when the tensor is known exactly (constants)

  // The exact value of a concrete tensor (constants, fixed weights, shapes).
  static IntervalTensor of_value(const at::Tensor& v);
  // A large fixed weight kept as its value alone (no float64 lo = hi, twice its size
  // again) when it has more than `lazy_above` elements (0: never) and is finite:
  // readers that need bounds take with_bounds(), which makes them for that use only.
  static IntervalTensor of_weight(const at::Tensor& v, int64_t lazy_above);
  // One cell for the whole tensor.
  static IntervalTensor uniform(std::vector<int64_t> shape, at::ScalarType dtype, double lo, double hi);
  // Nothing known: (-inf, +inf); the output of an unsupported op.
  static IntervalTensor top(std::vector<int64_t> shape, at::ScalarType dtype);
  static IntervalTensor of_bounds(at::Tensor lo, at::Tensor hi, std::vector<int64_t> shape,
                                  at::ScalarType dtype);

  bool exact() const { return value.defined(); }
  bool lazy() const { return value.defined() && !lo.defined(); }
  // This tensor with lo = hi made when lazy (the float64 copy lives as long as it).
  IntervalTensor with_bounds() const;
  bool is_float() const { return at::isFloatingType(dtype); }
  int64_t numel() const;
  at::Tensor full_lo() const;  // expanded to `shape` (a lazy weight: its value as float64)
  at::Tensor full_hi() const;
  double min() const;  // smallest lower bound
  double max() const;  // largest upper bound
  std::string str() const;  // "[lo, hi]" over the whole tensor
};

// Accounts for the float32 rounding of an op's result computed in real arithmetic:
// widens by `ulps` float32 units in the last place (relative) plus `ulps` smallest
// subnormals (absolute, for results that flush to 0), never across 0: the bounds must
// be the real-arithmetic result of the op with every intermediate error already
// included, so that only the final rounding remains. Integer results round to integers.
IntervalTensor round_out(IntervalTensor t, int ulps);

// The values an integer type holds, as doubles.
std::pair<double, double> integer_range(at::ScalarType type);

// Bounds clipped to what a value of `dtype` can hold without being INF (used to
// continue the analysis on the safe state after an overflow finding).
IntervalTensor clamp_finite(IntervalTensor t);

// Squeezes cells back: a dimension whose bounds are equal along it collapses to 1.
// Keeps intervals small after ops that had to materialise full shapes.
IntervalTensor compact(IntervalTensor t);

}  // namespace nanguard
