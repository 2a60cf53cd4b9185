// Float32 thresholds where an op's result (or its gradient) stops being finite,
// measured on the backend in use by bisection over float32 values in order: the
// kernels' own rounding decides, not the real-number formula (CPU's exp overflows
// from 88.72283935546875, not from ln(FLT_MAX) = 88.7228391).
#pragma once

#include <cstdint>
#include <functional>

#include <ATen/ATen.h>

#include "model/status.h"
#include "ops/hazard.h"

namespace nanguard {

// The float32 values in order: index 0 is +-0, n > 0 the n-th float above 0, -n the
// n-th below; +-inf sit at +-kFloat32InfIndex (NaN has no index).
constexpr int64_t kFloat32InfIndex = 0x7f800000;
int64_t float32_index(float v);
float float32_at(int64_t index);

// A property of one float32 value, false then true (or true then false) along the
// float32 order: the bisections below find where it changes.
using FloatPredicate = std::function<bool(float)>;
// The smallest v in [lo, hi] with pred(v), for pred false -> true; an error when
// pred(hi) is false (the change is not in the range).
Result<float> first_true(const FloatPredicate& pred, float lo, float hi);
// The largest v in [lo, hi] with pred(v), for pred true -> false; an error when
// pred(lo) is false.
Result<float> last_true(const FloatPredicate& pred, float lo, float hi);

// True when `f` applied on `device` to a float32 tensor filled with v gives only
// non-finite values. The tensor is long enough to take both the vectorised body and
// the scalar tail of CPU kernels, whose rounding can differ: the threshold holds
// wherever the element sits.
bool fails_everywhere(const std::function<at::Tensor(const at::Tensor&)>& f, float v, at::Device device);
// As fails_everywhere, for the gradient of sum(f(x)) with respect to x.
bool gradient_fails_everywhere(const std::function<at::Tensor(const at::Tensor&)>& f, float v, at::Device device);

enum class Threshold {
  kExpOverflow,         // smallest x with exp(x) == inf
  kCoshOverflow,        // smallest m with cosh(m) and cosh(-m) inf
  kSinhOverflow,        // smallest m with sinh(m) == inf and sinh(-m) == -inf
  kLogNonFinite,        // largest x with log(x) not finite (0 unless denormals flush)
  kLogGradient,         // largest x whose log gradient (1 / x) is not finite
  kSqrtNaN,             // largest x with sqrt(x) NaN (-2^-149 unless denormals flush)
  kSqrtGradient,        // largest x >= 0 whose sqrt gradient is not finite
  kReciprocalOverflow,  // largest m > 0 with 1 / m and 1 / -m infinite
  kAsinDomain,          // smallest m with asin(m) and asin(-m) NaN
  kAcosDomain,          // smallest m with acos(m) and acos(-m) NaN
  kAsinGradient,        // smallest m <= 1 whose asin gradient is not finite at +-m
  kAcosGradient,        // smallest m <= 1 whose acos gradient is not finite at +-m
  kAcoshDomain,         // largest x with acosh(x) NaN
  kAcoshGradient,       // largest x >= 1 whose acosh gradient is not finite
  kAtanhDomain,         // smallest m with atanh(m) and atanh(-m) not finite
  kHalfOverflow,        // smallest m with float16(+-m) infinite
  kBFloat16Overflow,    // smallest m with bfloat16(+-m) infinite
};

const char* to_string(Threshold t);

// The threshold measured on `device`, cached per (threshold, device).
Result<float> float_threshold(Threshold t, at::Device device);

// A unit target at a measured threshold: `relation` against it on `operand`, with
// `text` a format string for the value (e.g. "x >= {:.9g}").
UnitTargetFn threshold_target(Threshold t, int operand, Relation relation, const char* text);

}  // namespace nanguard
