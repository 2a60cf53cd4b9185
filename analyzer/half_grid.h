// The float16 and bfloat16 value grids, and bounds rounded onto them: outputs of those
// types hold the float32 result rounded to nearest, and inputs hold only grid values.
#pragma once

#include <ATen/ATen.h>

namespace nanguard {

// at::kHalf or at::kBFloat16 for an ONNX element type of 16-bit float; at::kFloat for
// any other.
at::ScalarType half_type_of(int32_t onnx_elem_type);

// Every finite value of the 16-bit float type, ascending, as float64.
const at::Tensor& half_grid(at::ScalarType type);

// The largest grid value <= x (up = false) or the least >= x (up = true), -inf / +inf
// past the grid, NaN kept; the gradient passes straight through.
at::Tensor round_on_grid(const at::Tensor& x, at::ScalarType type, bool up);

}  // namespace nanguard
