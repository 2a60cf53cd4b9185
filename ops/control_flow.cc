// Control flow: If and Loop (opset 7 to 17; Scan is in scan.cc). The subgraphs are
// run and analysed by the caller (OpContext::run_subgraph, AbstractContext::
// analyze_subgraph): this file says which ones, how often, and how their results
// combine. If analyses the taken branch when the condition is known (a constant,
// or folded from shapes), else both, joined. Loop unrolls up to kUnrollCap
// iterations, then covers the rest by a widened fixpoint over the carried values.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/loop_bounds.h"
#include "ops/op_registry.h"

namespace nanguard {
namespace {

// More iterations than any real model runs: a loop past it is taken to be endless.
constexpr int64_t kMaxIterations = 1'000'000;

bool scalar_bool(const OpContext& c, size_t i) {
  const at::Tensor& t = c.input(i);
  if (t.numel() != 1) c.fail(fmt::format("input {} must hold one element, it has {}", i, t.numel()));
  return t.item<double>() != 0;
}

std::vector<OpValue> lower_if_values(const OpContext& c) {
  return c.run_subgraph_values(scalar_bool(c, 0) ? "then_branch" : "else_branch", {});
}

// A known condition picks one branch; an unknown one joins both (each may not run).
std::vector<IntervalTensor> if_interval(const AbstractContext& a) {
  const IntervalTensor& cond = a.input(0);
  if (cond.numel() != 1) a.fail(fmt::format("the condition must hold one element, it has {}", cond.numel()));
  if (cond.min() == cond.max()) return a.analyze_subgraph(cond.min() != 0 ? "then_branch" : "else_branch", {}, true);
  std::vector<IntervalTensor> then_out = a.analyze_subgraph("then_branch", {}, false);
  std::vector<IntervalTensor> else_out = a.analyze_subgraph("else_branch", {}, false);
  if (then_out.size() != else_out.size()) a.fail("the branches return different numbers of outputs");
  std::vector<IntervalTensor> out;
  for (size_t i = 0; i < then_out.size(); ++i)
    out.push_back(join(a, fmt::format("output '{}'", i < a.node.outputs.size() ? a.node.outputs[i] : ""), then_out[i],
                       else_out[i]));
  return out;
}

struct LoopShape {
  size_t carried = 0, scans = 0;
};

template <class Ctx>
LoopShape loop_shape(const Ctx& c) {
  const Graph& body = attr_graph(c.node, "body");
  LoopShape s;
  s.carried = c.num_inputs() < 2 ? 0 : c.num_inputs() - 2;
  if (body.inputs.size() != s.carried + 2 || body.outputs.size() < s.carried + 1)
    c.fail(fmt::format("the body takes {} inputs and returns {} outputs for {} loop-carried values", body.inputs.size(),
                       body.outputs.size(), s.carried));
  s.scans = body.outputs.size() - 1 - s.carried;
  if (c.node.outputs.size() > s.carried + s.scans) c.fail("more outputs than the body's carried values and scan outputs");
  return s;
}

// Runs while i < M (when given) and the condition holds (when given; the body's
// condition output is ignored without one), scan elements stacked along a new axis 0.
// The carried values may be sequences or optionals (OpValue); scan outputs are tensors.
std::vector<OpValue> lower_loop_values(const OpContext& c) {
  const Graph& body = attr_graph(c.node, "body");
  LoopShape s = loop_shape(c);
  std::optional<int64_t> trips;
  if (c.has_input(0)) trips = c.input(0).item<int64_t>();
  bool has_cond = c.has_input(1), cond = !has_cond || scalar_bool(c, 1);
  if (!trips && !has_cond) c.fail("neither a trip count nor a condition: the loop never ends");
  std::vector<OpValue> carried(c.values.begin() + 2, c.values.end());
  std::vector<std::vector<at::Tensor>> rows(s.scans);
  auto opts = at::TensorOptions().device(c.device);
  for (int64_t i = 0; (!trips || i < *trips) && cond; ++i) {
    if (i >= kMaxIterations) c.fail(fmt::format("over {} iterations: taken to be endless", kMaxIterations));
    std::vector<OpValue> in{OpValue::of(at::scalar_tensor(i, opts.dtype(at::kLong))),
                            OpValue::of(at::scalar_tensor(true, opts.dtype(at::kBool)))};
    in.insert(in.end(), carried.begin(), carried.end());
    std::vector<OpValue> out = c.run_subgraph_values("body", in);
    if (has_cond) cond = out.at(0).is_tensor() && out[0].tensor.numel() == 1 && out[0].tensor.item<double>() != 0;
    std::copy(out.begin() + 1, out.begin() + 1 + s.carried, carried.begin());
    for (size_t k = 0; k < s.scans; ++k) {
      const OpValue& row = out[1 + s.carried + k];
      if (!row.is_tensor()) c.fail(fmt::format("scan output {} is a {}, not a tensor", k, row.describe()));
      rows[k].push_back(row.tensor);
    }
  }
  std::vector<OpValue> result = carried;
  for (size_t k = 0; k < s.scans; ++k)
    result.push_back(OpValue::of(rows[k].empty() ? no_rows(body, body.outputs[1 + s.carried + k], 0, c.device)
                                                 : at::stack(rows[k], 0)));
  return result;
}

// What the analysis of a Loop tracks: when it may or must stop, and what it has seen.
struct LoopRun {
  std::optional<double> trips_lo, trips_hi;  // bounds of M, when given
  bool has_cond = false;
  IntervalTensor cond;                      // at the head of the current iteration
  std::vector<IntervalTensor> carried;      // likewise
  std::vector<IntervalTensor> exit;         // hull of the states the loop may end in
  std::vector<std::vector<IntervalTensor>> rows;  // per scan output, one per iteration
  bool count_known = true;                  // every iteration so far certainly ran
};

void add_exit(const AbstractContext& a, LoopRun& r) {
  if (r.exit.empty()) { r.exit = r.carried; return; }
  for (size_t k = 0; k < r.carried.size(); ++k)
    r.exit[k] = join(a, fmt::format("loop-carried value '{}'", a.node.inputs[2 + k]), r.exit[k], r.carried[k]);
}

bool must_stop(const LoopRun& r, int64_t i) {
  return (r.trips_hi && i >= *r.trips_hi) || (r.has_cond && r.cond.max() == 0);
}
bool may_stop(const LoopRun& r, int64_t i) {
  return (r.trips_lo && i >= *r.trips_lo) || (r.has_cond && r.cond.min() == 0);
}

std::vector<IntervalTensor> body_inputs(IntervalTensor iter, const std::vector<IntervalTensor>& carried) {
  std::vector<IntervalTensor> in{std::move(iter), IntervalTensor::of_value(at::scalar_tensor(true, at::kBool))};
  in.insert(in.end(), carried.begin(), carried.end());
  return in;
}

// The iterations after kUnrollCap: one fixpoint over (condition, carried values)
// at the loop head, none of whose body runs is certain.
void loop_rest(const AbstractContext& a, const LoopShape& s, LoopRun& r, int64_t from) {
  double last = r.trips_hi ? *r.trips_hi - 1 : std::numeric_limits<double>::infinity();
  IntervalTensor iter = IntervalTensor::uniform({}, at::kLong, static_cast<double>(from),
                                                std::min(last, integer_range(at::kLong).second));
  std::vector<IntervalTensor> state{r.cond};
  state.insert(state.end(), r.carried.begin(), r.carried.end());
  LoopFixpoint fp = loop_fixpoint(a, state, [&](const std::vector<IntervalTensor>& head) {
    std::vector<IntervalTensor> out =
        a.analyze_subgraph("body", body_inputs(iter, {head.begin() + 1, head.end()}), false);
    std::vector<IntervalTensor> next(out.begin(), out.begin() + 1 + s.carried);
    if (!r.has_cond) next[0] = head[0];
    return std::make_pair(next, std::vector<IntervalTensor>(out.begin() + 1 + s.carried, out.end()));
  });
  r.cond = fp.state[0];
  r.carried.assign(fp.state.begin() + 1, fp.state.end());
  add_exit(a, r);
  // Exactly M iterations when M is exact and the condition always held: the rows
  // after the unrolled ones are each within the fixpoint's scan hull.
  bool counted = r.count_known && r.trips_lo && r.trips_lo == r.trips_hi && (!r.has_cond || r.cond.min() != 0);
  if (counted && s.scans > 0 && *r.trips_hi > kMaxIterations)
    a.fail(fmt::format("over {} iterations with scan outputs: taken to be endless", kMaxIterations));
  for (size_t k = 0; k < s.scans; ++k)
    if (counted) r.rows[k].insert(r.rows[k].end(), static_cast<size_t>(*r.trips_hi) - from, fp.scans[k]);
  r.count_known = counted;
}

// A scan output whose number of rows the analysis knows: the rows stacked; else the
// analysis cannot bound its shape and says so.
IntervalTensor scan_result(const AbstractContext& a, const LoopRun& r, size_t k, size_t carried) {
  const Graph& body = attr_graph(a.node, "body");
  std::string name = carried + k < a.node.outputs.size() ? a.node.outputs[carried + k] : "";
  if (!r.count_known)
    a.fail(fmt::format("scan output '{}' holds one row per iteration and the number of iterations is not known "
                       "statically: its shape cannot be bounded", name));
  if (r.rows[k].empty()) return IntervalTensor::of_value(no_rows(body, body.outputs[1 + carried + k], 0, at::kCPU));
  return stack_bounds(r.rows[k], 0);
}

std::vector<IntervalTensor> loop_interval(const AbstractContext& a) {
  LoopShape s = loop_shape(a);
  LoopRun r;
  if (a.has_input(0)) {
    r.trips_lo = std::ceil(a.input(0).min());
    r.trips_hi = std::floor(a.input(0).max());
  }
  r.has_cond = a.has_input(1);
  r.cond = r.has_cond ? a.input(1) : IntervalTensor::of_value(at::scalar_tensor(true, at::kBool));
  if (!r.trips_hi && !r.has_cond) a.fail("neither a trip count nor a condition: the loop never ends");
  r.carried.assign(a.inputs.begin() + 2, a.inputs.end());
  r.rows.resize(s.scans);
  for (int64_t i = 0;; ++i) {
    bool stop = must_stop(r, i), maybe = stop || may_stop(r, i);
    if (maybe) add_exit(a, r);
    if (stop) break;
    r.count_known = r.count_known && !maybe;
    if (i >= kUnrollCap) {
      loop_rest(a, s, r, i);
      break;
    }
    auto iter = IntervalTensor::of_value(at::scalar_tensor(i, at::kLong));
    std::vector<IntervalTensor> out = a.analyze_subgraph("body", body_inputs(iter, r.carried), r.count_known);
    if (r.has_cond) r.cond = out.at(0);
    std::copy(out.begin() + 1, out.begin() + 1 + s.carried, r.carried.begin());
    for (size_t k = 0; k < s.scans; ++k) r.rows[k].push_back(out[1 + s.carried + k]);
  }
  std::vector<IntervalTensor> result = r.exit;
  for (size_t k = 0; k < s.scans && s.carried + k < a.node.outputs.size(); ++k)
    result.push_back(a.node.outputs[s.carried + k].empty() ? IntervalTensor() : scan_result(a, r, k, s.carried));
  return result;
}

}  // namespace

NANGUARD_REGISTER_OPS({
    with_values(with(OpDef{"If", tensors_via_values(lower_if_values)}, if_interval), lower_if_values),
    with_values(with(OpDef{"Loop", tensors_via_values(lower_loop_values)}, loop_interval), lower_loop_values),
});

}  // namespace nanguard
