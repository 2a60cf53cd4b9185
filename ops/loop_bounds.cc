#include "ops/loop_bounds.h"

#include <algorithm>
#include <limits>

#include <fmt/core.h>

#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

std::string shape_text(const std::vector<int64_t>& s) { return c10::str(at::IntArrayRef(s)); }

// A bound tensor with as many dimensions as the tensor it bounds.
at::Tensor full_rank(at::Tensor b, size_t rank) {
  while (static_cast<size_t>(b.dim()) < rank) b = b.unsqueeze(0);
  return b;
}

// The finite range a value of `dtype` holds (the run's float type for float32).
std::pair<double, double> finite_range(at::ScalarType dtype, at::ScalarType float_type) {
  if (dtype == at::kHalf) return {-65504.0, 65504.0};
  if (dtype == at::kBFloat16) return {-3.3895313892515355e38, 3.3895313892515355e38};
  if (at::isFloatingType(dtype)) {
    double m = float_type == at::kDouble ? std::numeric_limits<double>::max() : kFloat32Max;
    return {-m, m};
  }
  return integer_range(dtype);
}

// A bound that grew from `old` to `next` jumps to the type's end (or stays past it).
IntervalTensor widen(const IntervalTensor& old, const IntervalTensor& next, at::ScalarType float_type) {
  if (next.exact() || same_bounds(old, next)) return next;
  auto [lowest, highest] = finite_range(next.dtype, float_type);
  at::Tensor lo = at::where(next.lo < old.lo, at::clamp_max(next.lo, lowest), next.lo);
  at::Tensor hi = at::where(next.hi > old.hi, at::clamp_min(next.hi, highest), next.hi);
  return IntervalTensor::of_bounds(lo, hi, next.shape, next.dtype);
}

}  // namespace

IntervalTensor join(const AbstractContext& a, const std::string& what, const IntervalTensor& x, const IntervalTensor& y) {
  if (!x.lo.defined()) return y;
  if (!y.lo.defined()) return x;
  if (x.shape != y.shape)
    a.fail(fmt::format("{} has shapes {} and {} on different paths: their hull is not modelled", what,
                       shape_text(x.shape), shape_text(y.shape)));
  if (x.dtype != y.dtype) a.fail(fmt::format("{} has different element types on different paths", what));
  if (x.exact() && y.exact() && at::equal(x.value, y.value)) return x;
  return IntervalTensor::of_bounds(at::minimum(x.lo, y.lo), at::maximum(x.hi, y.hi), x.shape, x.dtype);
}

bool same_bounds(const IntervalTensor& x, const IntervalTensor& y) {
  if (x.lo.defined() != y.lo.defined()) return false;
  if (!x.lo.defined()) return true;
  if (x.exact() != y.exact() || x.shape != y.shape) return false;
  return at::equal(x.full_lo(), y.full_lo()) && at::equal(x.full_hi(), y.full_hi());
}

LoopFixpoint loop_fixpoint(const AbstractContext& a, std::vector<IntervalTensor> state, const LoopStep& step) {
  LoopFixpoint fp{std::move(state), {}};
  for (int round = 0; round < kMaxFixpointRounds; ++round) {
    auto [next, scans] = step(fp.state);
    if (next.size() != fp.state.size()) a.fail("the body returns the wrong number of loop-carried values");
    if (fp.scans.empty()) fp.scans = scans;
    for (size_t k = 0; k < scans.size() && k < fp.scans.size(); ++k)
      fp.scans[k] = join(a, fmt::format("scan output {}", k), fp.scans[k], scans[k]);
    bool stable = true;
    for (size_t k = 0; k < next.size(); ++k) {
      IntervalTensor j = join(a, fmt::format("loop-carried value {}", k), fp.state[k], next[k]);
      if (round >= kWidenAfter) j = widen(fp.state[k], j, a.float_type);
      stable = stable && same_bounds(j, fp.state[k]);
      fp.state[k] = std::move(j);
    }
    if (stable) return fp;
  }
  a.fail(fmt::format("the loop-carried values reached no fixpoint in {} rounds", kMaxFixpointRounds));
}

IntervalTensor select_bounds(const IntervalTensor& t, int64_t axis, int64_t index) {
  // Checked here for every caller (a rank-0 scan input was undefined behaviour; found
  // by fuzz_loader under UBSan).
  if (axis < 0 || axis >= static_cast<int64_t>(t.shape.size()))
    throw ModelError(fmt::format("axis {} is out of range for a tensor of rank {}", axis, t.shape.size()));
  if (t.exact()) return IntervalTensor::of_value(t.value.select(axis, index));
  auto pick = [&](const at::Tensor& b) {
    at::Tensor f = full_rank(b, t.shape.size());
    return f.select(axis, f.size(axis) == 1 ? 0 : index);
  };
  std::vector<int64_t> shape = t.shape;
  shape.erase(shape.begin() + axis);
  return IntervalTensor::of_bounds(pick(t.lo), pick(t.hi), shape, t.dtype);
}

IntervalTensor hull_along(const IntervalTensor& t, int64_t axis, int64_t from, int64_t to) {
  auto over = [&](const at::Tensor& b, bool low) {
    at::Tensor f = full_rank(b, t.shape.size());
    if (f.size(axis) == 1) return f.select(axis, 0);
    at::Tensor part = f.narrow(axis, from, to - from);
    return low ? part.amin(axis) : part.amax(axis);
  };
  std::vector<int64_t> shape = t.shape;
  shape.erase(shape.begin() + axis);
  return IntervalTensor::of_bounds(over(t.lo, true), over(t.hi, false), shape, t.dtype);
}

IntervalTensor stack_bounds(const std::vector<IntervalTensor>& rows, int64_t axis) {
  bool exact = true;
  std::vector<at::Tensor> values, lo, hi;
  for (const IntervalTensor& r : rows) {
    exact = exact && r.exact();
    if (r.exact()) values.push_back(r.value);
    lo.push_back(r.full_lo());
    hi.push_back(r.full_hi());
  }
  if (exact) return IntervalTensor::of_value(at::stack(values, axis));
  std::vector<int64_t> shape = rows.at(0).shape;
  shape.insert(shape.begin() + axis, static_cast<int64_t>(rows.size()));
  return IntervalTensor::of_bounds(at::stack(lo, axis), at::stack(hi, axis), shape, rows[0].dtype);
}

at::Tensor no_rows(const Graph& body, const std::string& name, int64_t axis, at::Device device) {
  const TensorType* t = body.type_of(name);
  std::vector<int64_t> shape;
  if (t && t->dims && std::all_of(t->dims->begin(), t->dims->end(), [](int64_t d) { return d >= 0; })) shape = *t->dims;
  axis = std::clamp<int64_t>(axis < 0 ? axis + static_cast<int64_t>(shape.size()) + 1 : axis, 0, shape.size());
  shape.insert(shape.begin() + axis, 0);
  at::ScalarType type = at::kFloat;
  try {
    if (t && t->elem_type) type = scalar_type_for(t->elem_type);
  } catch (const std::exception&) {
  }
  return at::empty(shape, at::TensorOptions().dtype(type).device(device));
}

}  // namespace nanguard
