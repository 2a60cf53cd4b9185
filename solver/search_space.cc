#include "solver/search_space.h"

#include <limits>

#include <fmt/core.h>

#include "oracle/input_source.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

// float32 bounds inside [lo, hi]: a value drawn between them, once cast to float32,
// stays in the analyzed range.
std::pair<at::Tensor, at::Tensor> float32_inward(const at::Tensor& lo, const at::Tensor& hi) {
  double big = std::numeric_limits<float>::max();
  at::Tensor l = lo.clamp(-big, big), h = hi.clamp(-big, big);
  at::Tensor l32 = l.to(at::kFloat), h32 = h.to(at::kFloat);
  at::Tensor inf = at::full_like(l32, std::numeric_limits<float>::infinity());
  l32 = at::where(l32.to(at::kDouble) < l, at::nextafter(l32, inf), l32);
  h32 = at::where(h32.to(at::kDouble) > h, at::nextafter(h32, -inf), h32);
  h32 = at::maximum(h32, l32);  // a range narrower than one float32 step
  return {l32.to(at::kDouble), h32.to(at::kDouble)};
}

bool is_float_input(const Graph& graph, const std::string& name) {
  const TensorType* type = graph.type_of(name);
  if (!type) return false;
  try {
    return at::isFloatingType(scalar_type_for(type->elem_type));
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int64_t SearchSpace::dimension() const {
  int64_t n = 0;
  for (const auto& v : variables) n += v.lo.numel();
  return n;
}

TensorMap SearchSpace::sample(at::Generator& gen) const {
  TensorMap point;
  for (const auto& v : variables) {
    at::Tensor u = at::empty(v.lo.sizes(), at::kDouble).uniform_(0.0, 1.0, gen);
    point[v.name] = (v.lo + u * (v.hi - v.lo)).to(at::kFloat).to(at::kDouble);
  }
  project(point);
  if (!held.empty() && graph) {
    uint64_t seed = static_cast<uint64_t>(at::empty({1}, at::kLong).random_(0, int64_t{1} << 62, gen).item<int64_t>());
    TensorMap given = point;
    auto drawn = random_inputs(*graph, held_ranges, seed, given);
    if (drawn.ok())
      for (const auto& name : held) point[name] = drawn->at(name);
  }
  return point;
}

TensorMap SearchSpace::sample_stored(at::Generator& gen) const {
  TensorMap point = sample(gen);
  for (const auto& v : variables)
    if (v.is_weight && graph && graph->is_initializer(v.name))
      point[v.name] = tensor_from_proto(graph->initializers.at(v.name)).to(at::kDouble).reshape(v.lo.sizes());
  project(point);
  return point;
}

// A held integer/bool input at a corner of its own: all at one end, or one row (a
// slice of the last axis) at one end and the rest as drawn. Uniform draws of a
// 128-long 0/1 mask never give the all-padding row that empties a masked mean.
static void held_corner(at::Tensor& t, const Range& r, at::Generator& gen) {
  if (!t.defined() || t.numel() == 0) return;
  double u = at::empty({1}, at::kDouble).uniform_(0.0, 1.0, gen).item<double>();
  double end = u < 0.5 ? r.lo : r.hi;
  t = t.clone();
  if (u < 0.25 || (u >= 0.5 && u < 0.75) || t.dim() == 0) {
    t.fill_(end);
    return;
  }
  at::Tensor rows = t.reshape({-1, t.size(-1)});  // a view of the clone
  int64_t row = at::empty({1}, at::kLong).random_(0, rows.size(0), gen).item<int64_t>();
  rows[row].fill_(end);
}

TensorMap SearchSpace::sample_corner(at::Generator& gen) const {
  TensorMap point = sample(gen);
  for (const auto& v : variables) {
    at::Tensor coin = at::empty(v.lo.sizes(), at::kDouble).uniform_(0.0, 1.0, gen) < 0.5;
    point[v.name] = at::where(coin, v.lo, v.hi);
  }
  for (const auto& name : held) {
    auto it = point.find(name);
    auto r = held_ranges.find(name);
    if (it != point.end()) held_corner(it->second, r != held_ranges.end() ? r->second : Range{0, 1}, gen);
  }
  return point;
}

void SearchSpace::project(TensorMap& point) const {
  for (const auto& v : variables) {
    auto it = point.find(v.name);
    if (it != point.end()) it->second = at::maximum(at::minimum(it->second, v.hi), v.lo);
  }
}

TensorMap SearchSpace::feeds(const TensorMap& point, const Graph& g, at::ScalarType float_type) const {
  TensorMap out;
  for (const auto& [name, t] : point) {
    const TensorType* type = g.type_of(name);
    at::ScalarType st = type ? scalar_type_for(type->elem_type) : t.scalar_type();
    out[name] = at::isFloatingType(st) ? t.to(st).to(float_type) : t.to(st);
  }
  return out;
}

Result<SearchSpace> make_search_space(const Graph& graph, const AnalyzeOptions& options) {
  auto start = initial_intervals(graph, options);
  if (!start.ok()) return start.status();
  SearchSpace space;
  space.graph = &graph;
  for (const auto& name : graph.inputs) {
    if (!is_float_input(graph, name)) {
      space.held.push_back(name);
      auto r = options.ranges.find(name);
      if (r != options.ranges.end()) space.held_ranges[name] = r->second;
      continue;
    }
    const IntervalTensor& box = start->at(name);
    auto [lo, hi] = float32_inward(box.full_lo(), box.full_hi());
    space.variables.push_back({name, lo.contiguous(), hi.contiguous(), false});
  }
  for (const auto& [name, box] : *start) {
    if (!graph.is_initializer(name) || box.exact() || !box.is_float()) continue;
    auto [lo, hi] = float32_inward(box.full_lo(), box.full_hi());
    space.variables.push_back({name, lo.contiguous(), hi.contiguous(), true});
  }
  // Deterministic order: inputs first (graph order), then weights by name.
  std::stable_sort(space.variables.begin(), space.variables.end(), [](const auto& a, const auto& b) {
    return !a.is_weight && b.is_weight ? true : (a.is_weight && b.is_weight ? a.name < b.name : false);
  });
  return space;
}

}  // namespace nanguard
