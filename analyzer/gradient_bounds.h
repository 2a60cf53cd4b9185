// The backward analysis: an elementwise bound on |dL/dt| for every tensor a gradient
// reaches (the inputs and free weights, and what is computed from them), from a loss
// gradient of 1 at the model's scalar output (else at every element of its float
// outputs, as the soundness run's backward pass), chained op by op through
// ops/gradient_bounds.h on the forward intervals.
//
// A gradient has its tensor's type. A bound past that type's largest finite value is a
// `gradient-overflow` finding at the node whose backward pass adds the most to it. An
// op without a backward bound leaves the gradients before it unbounded; where such a
// gradient has a half type, that is a `gradient-unbounded` finding at the op. Past a
// node with a finding the bounds continue from the largest finite gradient of each
// input's type (the finding covers the rest), so one defect is not reported again
// upstream as an unbounded gradient.
#pragma once

#include <string>
#include <unordered_map>

#include <ATen/ATen.h>

#include "analyzer/analyzer.h"

namespace nanguard {

struct GradientBounds {
  std::unordered_map<std::string, at::Tensor> bound;  // float64, the tensor's shape; inf: unbounded
  std::vector<Finding> findings;
};

GradientBounds bound_gradients(const Graph& graph, const AnalysisResult& forward, const AnalyzeOptions& options);

// True when some float tensor of the graph has a half type: the models whose
// gradients the op-by-op hazards alone do not cover (their limit is 65504).
bool has_half_tensors(const Graph& graph);

}  // namespace nanguard
