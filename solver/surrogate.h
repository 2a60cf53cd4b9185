// The scalar a witness search drives: one element of the target tensor, computed in
// float64, with its goal. Targets at 0 use log|x| so that a value which underflows to
// 0 in float32 (an exp, a softmax entry) still has a gradient to follow.
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/ATen.h>

#include "solver/linear_region.h"
#include "solver/unit_witness.h"

namespace nanguard {

struct Surrogate {
  bool log_scale = false;  // s = log|T_e - shift|, else s = T_e
  double shift = 0;
  LinearGoal goal;         // goal.s0 is filled in by the caller
};

// The element of `t` closest to the target, and the surrogate for it.
std::pair<int64_t, Surrogate> choose_surrogate(const UnitTarget& target, const at::Tensor& t);

// s for element `e` of `t` (differentiable when `t` is).
at::Tensor surrogate_value(const Surrogate& sur, const at::Tensor& t, int64_t e);

}  // namespace nanguard
