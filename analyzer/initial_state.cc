// The analysis' starting point: input ranges and weights (fixed: exact values;
// free: ranges that keep the weights' meaning).
#include <limits>

#include <fmt/core.h>

#include "analyzer/analyzer.h"
#include "analyzer/half_grid.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

// Free weights keep their meaning, as the ops reading them say (OpDef::input_roles): a
// variance stays >= 0, and a tensor read as parameters of the computation's structure
// (Resize scales) stays fixed.
// A range tensor as bound cells: a 0-d range is one cell for the whole tensor; a
// range of the tensor's own shape bounds each element (a point per element pins it).
at::Tensor cells_of(const at::Tensor& r, int64_t rank) {
  at::Tensor d = r.to(at::kDouble);
  return d.dim() == 0 ? d.expand(std::vector<int64_t>(rank, 1)) : d;
}

bool keeps_fixed(const Graph& g, const std::string& name, bool& nonnegative) {
  for (const Node& n : g.nodes)
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (n.inputs[i] != name) continue;
      const OpDef* def = OpRegistry::instance().find(n.op_type, n.domain);
      InputRole role = def ? def->input_role(i) : InputRole::kValue;
      if (role == InputRole::kNonnegative) nonnegative = true;
      if (role == InputRole::kStructural) return true;
    }
  return false;
}

IntervalTensor free_weight(const Graph& g, const std::string& name, const at::Tensor& w,
                           const AnalyzeOptions& opt) {
  bool nonnegative = false;
  if (w.numel() == 0 || keeps_fixed(g, name, nonnegative)) return IntervalTensor::of_value(w);
  if (auto rt = opt.range_tensors.find(name); rt != opt.range_tensors.end()) {
    at::Tensor lo = cells_of(rt->second.first, w.dim()), hi = cells_of(rt->second.second, w.dim());
    if (nonnegative) lo = lo.clamp_min(0);
    return IntervalTensor::of_bounds(lo, at::maximum(lo, hi), w.sizes().vec(), w.scalar_type());
  }
  double lo, hi;
  if (auto it = opt.weight_ranges.find(name); it != opt.weight_ranges.end()) {
    lo = it->second.lo;
    hi = it->second.hi;
  } else if (opt.weight_range) {
    lo = opt.weight_range->lo;
    hi = opt.weight_range->hi;
  } else {
    double mn = w.min().item<double>(), mx = w.max().item<double>();
    lo = mn - (mx - mn);
    hi = mx + (mx - mn);
  }
  if (nonnegative) lo = std::max(lo, 0.0);
  at::ScalarType st = w.scalar_type();
  if (st == at::kHalf || st == at::kBFloat16) {  // a half weight holds values of its grid only
    lo = round_on_grid(at::full({}, lo, at::kDouble), st, true).item<double>();
    hi = round_on_grid(at::full({}, hi, at::kDouble), st, false).item<double>();
  }
  return IntervalTensor::uniform(w.sizes().vec(), st, lo, std::max(lo, hi));
}

}  // namespace

// PyTorch's exporter-made constants ("onnx::Mul_12" and the like) come from literals
// in the program, not from parameters.
bool is_trainable(const Graph& g, const std::string& name, const at::Tensor& w) {
  // ... and the fixer's own constants (clip bounds, eps) are values of the fix.
  return at::isFloatingType(w.scalar_type()) && !g.folded_constants.count(name) && name.rfind("onnx::", 0) != 0 &&
         name.rfind("nanguard_fix/", 0) != 0;
}

Result<std::unordered_map<std::string, IntervalTensor>> initial_intervals(const Graph& g, const AnalyzeOptions& opt) {
  std::unordered_map<std::string, IntervalTensor> state;
  for (const auto& [name, proto] : g.initializers) {
    at::Tensor w;
    try {
      w = tensor_from_proto(proto);
    } catch (const std::exception& e) {
      return Status::Error(fmt::format("{}: initializer '{}': {}", g.model_path, name, e.what()));
    }
    bool free = opt.weights == WeightMode::kFree && is_trainable(g, name, w);
    state[name] = free ? free_weight(g, name, w, opt) : IntervalTensor::of_weight(w, opt.lazy_weights_above);
  }
  for (const auto& name : g.inputs) {
    const TensorType* t = g.type_of(name);
    if (t && t->kind != TensorType::Kind::kTensor)
      return Status::Error(fmt::format("{}: input '{}' is a {} value; the analysis models tensor inputs only", g.model_path,
                                       name, t->non_tensor_kind()));
    if (!t || !t->dims) return Status::Error(fmt::format("{}: input '{}' has no known shape", g.model_path, name));
    for (int64_t d : *t->dims)
      if (d < 0) return Status::Error(fmt::format("{}: input '{}' has an unknown dimension; bind it with --dim", g.model_path, name));
    at::ScalarType st;
    try {
      st = scalar_type_for(t->elem_type);
    } catch (const std::exception& e) {
      return Status::Error(fmt::format("{}: input '{}': {}", g.model_path, name, e.what()));
    }
    if (auto rt = opt.range_tensors.find(name); rt != opt.range_tensors.end()) {
      int64_t rank = static_cast<int64_t>(t->dims->size());
      state[name] = IntervalTensor::of_bounds(cells_of(rt->second.first, rank), cells_of(rt->second.second, rank), *t->dims, st);
      continue;
    }
    auto it = opt.ranges.find(name);
    Range r = it != opt.ranges.end() ? it->second
              : at::isFloatingType(st) ? kAnalyzeDefaultFloatRange : Range{0, 1};
    if (st == at::kBool) r = Range{0, 1};
    IntervalTensor iv = IntervalTensor::uniform(*t->dims, st, r.lo, r.hi);
    // A float32 input holds the ends as float32 holds them: rounded to nearest, as the
    // sampler rounds its draws and as a decimal end (0.1) is read into float32 data.
    // (Rounding inward emptied a point range such as [0.1, 0.1], and left the
    // sampler's float32(0.1) outside the box.)
    if (st == at::kFloat) {
      iv.lo = iv.lo.to(at::kFloat).to(at::kDouble);
      iv.hi = iv.hi.to(at::kFloat).to(at::kDouble);
    } else if (st == at::kHalf || st == at::kBFloat16) {  // likewise onto its grid
      iv.lo = round_on_grid(iv.lo, st, true);
      iv.hi = round_on_grid(iv.hi, st, false);
    } else if (!at::isFloatingType(st)) {
      iv.lo = iv.lo.ceil();
      iv.hi = iv.hi.floor();
    }
    state[name] = iv;
  }
  return state;
}

}  // namespace nanguard
