// Interval transfer for ops that only move, select or copy values (Reshape, Slice,
// Gather with known indices, Pad, Trilu...): the op's own lowering runs once on the
// full lower-bound tensors and once on the full upper-bound tensors. That is exact
// for pure data movement and sound for any op that is non-decreasing in each data
// operand. Unlike the engine's derived kDataMovement transfer, integer data operands
// may carry ranges too (a Reshape of a ranged index tensor), and each operand says
// whether it is data or must be exact (shapes, axes, indices).
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "ops/abstract_context.h"
#include "ops/op_context.h"
#include "ops/op_registry.h"

namespace nanguard {

// One role per input (the last role repeats for further inputs):
// 'd': data, its bounds move; 'e': must be exact (its value is passed);
// 'x': passed as its lower bound, for operands the result does not depend on.
inline std::vector<IntervalTensor> move_bounds(const LowerFn& lower, const AbstractContext& a,
                                               const std::string& roles) {
  std::vector<at::Tensor> lo_in, hi_in;
  at::ScalarType data_type = at::kFloat;
  bool have_data = false;
  for (size_t i = 0; i < a.num_inputs(); ++i) {
    char role = roles.empty() ? 'd' : roles[std::min(i, roles.size() - 1)];
    if (!a.has_input(i)) {
      lo_in.emplace_back();
      hi_in.emplace_back();
      continue;
    }
    const IntervalTensor& t = a.inputs[i];
    if (role == 'e') {
      if (!t.exact()) a.fail("operand " + std::to_string(i) + " must be known exactly for this transfer");
      lo_in.push_back(t.value);
      hi_in.push_back(t.value);
      continue;
    }
    if (role == 'x') {
      at::Tensor v = t.exact() ? t.value : t.full_lo().to(t.dtype);
      lo_in.push_back(v);
      hi_in.push_back(v);
      continue;
    }
    if (!have_data) data_type = t.dtype;
    have_data = true;
    lo_in.push_back(t.full_lo().contiguous());
    hi_in.push_back(t.full_hi().contiguous());
  }
  OpContext lo_ctx{a.node, a.opset, std::move(lo_in), at::kDouble};
  OpContext hi_ctx{a.node, a.opset, std::move(hi_in), at::kDouble};
  std::vector<at::Tensor> lo = lower(lo_ctx), hi = lower(hi_ctx);
  std::vector<IntervalTensor> out;
  for (size_t i = 0; i < lo.size(); ++i) {
    if (!lo[i].defined()) {
      out.emplace_back();
      continue;
    }
    // Moved data keeps the data operand's type; anything else (a bool mask) its own.
    at::ScalarType type = lo[i].scalar_type() == at::kDouble ? data_type : lo[i].scalar_type();
    at::Tensor l = lo[i].to(at::kDouble), h = hi[i].to(at::kDouble);
    out.push_back(IntervalTensor::of_bounds(at::minimum(l, h), at::maximum(l, h), lo[i].sizes().vec(), type));
  }
  return out;
}

// A facet for OpDef::interval that applies move_bounds with fixed roles.
inline IntervalFn moving(LowerFn lower, std::string roles) {
  return [lower = std::move(lower), roles = std::move(roles)](const AbstractContext& a) {
    return move_bounds(lower, a, roles);
  };
}

}  // namespace nanguard
