#include "ops/abstract_context.h"

#include <algorithm>

#include <fmt/core.h>

#include "model/status.h"
#include "ops/type_limit.h"

namespace nanguard {

const IntervalTensor& AbstractContext::input(size_t i) const {
  if (!has_input(i)) fail(fmt::format("input {} is required but missing", i));
  return inputs[i];
}

const Node* AbstractContext::producer(size_t i) const {
  if (i >= node.inputs.size() || node.inputs[i].empty()) return nullptr;
  return graph.producer(node.inputs[i]);
}

void AbstractContext::fail(const std::string& message) const {
  throw ModelError(fmt::format("node '{}' ({}): {}", node.name, node.op_type, message));
}

double elem_type_limit(int32_t elem) {
  if (elem == onnx::TensorProto::FLOAT16) return kFloat16Max;
  if (elem == onnx::TensorProto::BFLOAT16) return kBFloat16Max;
  return kFloat32Max;
}

double tensor_limit(const Graph& graph, const std::string& name) {
  const TensorType* t = name.empty() ? nullptr : graph.type_of(name);
  return t ? elem_type_limit(t->elem_type) : kFloat32Max;
}

double node_limit(const Graph& graph, const Node& node) {
  double m = kFloat32Max;
  for (const auto& n : node.inputs) m = std::min(m, tensor_limit(graph, n));
  for (const auto& n : node.outputs) m = std::min(m, tensor_limit(graph, n));
  return m;
}

double input_limit(const AbstractContext& a, size_t i) {
  return i < a.node.inputs.size() ? tensor_limit(a.graph, a.node.inputs[i]) : kFloat32Max;
}

}  // namespace nanguard
