#include "ops/abstract_context.h"

#include <fmt/core.h>

#include "model/status.h"

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

}  // namespace nanguard
