// What an op's lowering sees: the node (attributes), the opset in force, and the
// input tensors (an undefined tensor for an omitted optional input).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "model/attributes.h"
#include "model/graph.h"
#include "model/status.h"
#include "ops/op_value.h"

namespace nanguard {

struct OpContext {
  const Node& node;
  int64_t opset;
  std::vector<at::Tensor> inputs;
  at::ScalarType float_type = at::kFloat;  // the run's float type (for random ops)
  at::Device device = at::kCPU;
  int64_t max_tensor_bytes = int64_t{1} << 30;
  at::Generator* generator = nullptr;  // seeded per run; for random ops
  // Runs graph attribute `attribute` of this node (If's branches, a Loop or Scan
  // body) on its formal inputs, outer-scope tensors read from the caller's scope.
  // Set by the executor (ops/ cannot run graphs); throws ModelError.
  std::function<std::vector<at::Tensor>(const std::string& attribute, const std::vector<at::Tensor>& inputs)>
      run_subgraph;
  // Ops that take or return sequences and optionals (OpDef::lower_values) see every
  // input here, tensors included, and run subgraphs on values; `inputs` then holds an
  // undefined tensor at each non-tensor input.
  std::vector<OpValue> values;
  std::function<std::vector<OpValue>(const std::string& attribute, const std::vector<OpValue>& inputs)>
      run_subgraph_values;

  size_t num_inputs() const { return inputs.size(); }
  size_t num_outputs() const { return node.outputs.size(); }
  bool has_input(size_t i) const { return i < inputs.size() && inputs[i].defined(); }
  // Throws ModelError naming the node when a required input is missing.
  const at::Tensor& input(size_t i) const;
  // Input i as a value (OpDef::lower_values ops); throws when it is omitted.
  const OpValue& value(size_t i) const;
  // Input i as a sequence; throws ModelError naming the node when it is not one.
  const std::vector<at::Tensor>& sequence(size_t i) const;
  // A small integer tensor (shape, axes, pads...) read as a vector.
  std::vector<int64_t> input_ints(size_t i) const;
  // Throws ModelError unless `numel` elements of `type` fit under the tensor cap.
  void check_size(int64_t numel, at::ScalarType type) const;
  [[noreturn]] void fail(const std::string& message) const;
};

// Normalises a possibly negative axis against `rank`; throws on out-of-range.
int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank);

}  // namespace nanguard
