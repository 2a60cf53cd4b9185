// Interval bookkeeping shared by the control-flow ops (ops/control_flow.cc: If and
// Loop, ops/scan.cc: Scan): hulls of branch and iteration results, the widened
// fixpoint over loop-carried values, slicing / stacking of bounds along an axis, and
// the empty scan output.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ops/abstract_context.h"
#include "ops/interval.h"

namespace nanguard {

// Iterations analysed one by one before the rest are covered by a fixpoint.
constexpr int64_t kUnrollCap = 64;
// Fixpoint rounds joined plainly before growing bounds are widened.
constexpr int kWidenAfter = 3;
constexpr int kMaxFixpointRounds = 32;

// The interval hull of two enclosures of one tensor (an undefined one is the
// other); an exact value stays exact when both are the same. Throws ModelError
// (through `a`) naming `what` when their shapes or types differ.
IntervalTensor join(const AbstractContext& a, const std::string& what, const IntervalTensor& x, const IntervalTensor& y);
// The same enclosure (bounds and exactness): a fixpoint is reached.
bool same_bounds(const IntervalTensor& x, const IntervalTensor& y);

// One body run on a loop-head state: the next state and the scan elements.
using LoopStep = std::function<std::pair<std::vector<IntervalTensor>, std::vector<IntervalTensor>>(
    const std::vector<IntervalTensor>& state)>;

struct LoopFixpoint {
  std::vector<IntervalTensor> state;  // encloses the head state of every later iteration
  std::vector<IntervalTensor> scans;  // encloses every later iteration's scan elements
};

// From `state` on, joins each step's result into the state until it is stable;
// bounds still growing after kWidenAfter rounds jump to their type's finite range
// (values past it come only from hazards the body itself reports). Fails through
// `a` when no fixpoint is reached within kMaxFixpointRounds.
LoopFixpoint loop_fixpoint(const AbstractContext& a, std::vector<IntervalTensor> state, const LoopStep& step);

// Bounds of t with `axis` fixed at `index` (the axis removed), and the hull over
// indices [from, to) of it.
IntervalTensor select_bounds(const IntervalTensor& t, int64_t axis, int64_t index);
IntervalTensor hull_along(const IntervalTensor& t, int64_t axis, int64_t from, int64_t to);
// Enclosures of equal shape stacked along a new `axis`.
IntervalTensor stack_bounds(const std::vector<IntervalTensor>& rows, int64_t axis);

// The scan output of a loop that ran no iteration: no rows along `axis`, each of the
// shape and type the body declares for `name` (a row of unknown shape: a scalar).
at::Tensor no_rows(const Graph& body, const std::string& name, int64_t axis, at::Device device);

}  // namespace nanguard
