// The largest finite value of the float type a tensor is declared with: float16 and
// bfloat16 overflow far below float32 (65504, 3.39e38), in the forward pass and in
// the backward pass alike (a gradient has its tensor's type). Hazard predicates and
// facets read their thresholds from it.
#pragma once

#include <string>

#include "model/graph.h"
#include "ops/abstract_context.h"

namespace nanguard {

constexpr double kFloat16Max = 65504.0;
constexpr double kBFloat16Max = 3.3895313892515355e38;

// By ONNX element type: float16's and bfloat16's limits, float32's for any other.
double elem_type_limit(int32_t onnx_elem_type);

// Of tensor `name` in `graph` (float32's when its type is not declared).
double tensor_limit(const Graph& graph, const std::string& name);

// Of input i of the node (the type its gradient has, too).
double input_limit(const AbstractContext& a, size_t i);

// The least over the node's inputs and outputs: the type a facet's bounds must keep
// finite (HazardFacet's `type_max`).
double node_limit(const Graph& graph, const Node& node);

}  // namespace nanguard
