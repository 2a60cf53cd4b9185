// The box a witness search moves in: every runtime input and every free weight,
// each with float32 bounds per element taken from the analyzer's initial state
// (rounded inwards, so that a witness never leaves its range). Integer and boolean
// inputs are not searched: each draw fixes them.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "analyzer/analyzer.h"
#include "model/graph.h"
#include "model/status.h"
#include "oracle/executor.h"

namespace nanguard {

struct SearchVariable {
  std::string name;
  at::Tensor lo, hi;  // float64, the variable's full shape, float32-representable values
  bool is_weight = false;
};

struct SearchSpace {
  const Graph* graph = nullptr;
  std::vector<SearchVariable> variables;  // float inputs and free weights
  std::vector<std::string> held;          // integer/bool inputs, drawn, never moved
  RangeMap held_ranges;

  int64_t dimension() const;
  // A uniform draw of every variable (float64) plus fresh held inputs.
  TensorMap sample(at::Generator& gen) const;
  // The model as stored: free weights at their stored values (inside their boxes),
  // inputs drawn uniformly. Trained weights are where a search should start.
  TensorMap sample_stored(at::Generator& gen) const;
  // Each variable at its lower or upper end, chosen at random per element.
  TensorMap sample_corner(at::Generator& gen) const;
  // Clamps every variable into its box (in place).
  void project(TensorMap& point) const;
  // The executor's feeds: variables and held inputs cast to each input's ONNX type,
  // floating ones to `float_type`.
  TensorMap feeds(const TensorMap& point, const Graph& graph, at::ScalarType float_type) const;
};

Result<SearchSpace> make_search_space(const Graph& graph, const AnalyzeOptions& options);

}  // namespace nanguard
