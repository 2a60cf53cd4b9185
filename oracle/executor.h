// The concrete executor: runs a graph node by node with each op's LibTorch lowering,
// in float32 (or float64 on request), on CPU or CUDA, differentiably.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>

#include "model/graph.h"
#include "model/status.h"
#include "ops/op_value.h"

namespace nanguard {

using TensorMap = std::unordered_map<std::string, at::Tensor>;
// Values that are not tensors: sequences and empty optionals, by name.
using ValueMap = std::unordered_map<std::string, OpValue>;

struct ExecOptions {
  at::Device device = at::kCPU;
  at::ScalarType float_type = at::kFloat;  // kFloat or kDouble
  uint64_t seed = 0;                       // for RandomNormal & co.
  int64_t max_tensor_bytes = int64_t{1} << 30;
  bool keep_intermediates = true;          // keep every tensor in ExecResult::values
};

// Called after each node with its outputs (the oracle's hook).
using NodeHook = std::function<void(const Node&, const std::vector<at::Tensor>&)>;

struct ExecResult {
  TensorMap values;                 // every tensor computed (inputs and weights too)
  std::vector<at::Tensor> outputs;  // graph outputs, in graph order
  // Sequences and empty optionals (graph outputs among them); at such an output,
  // `outputs` holds an undefined tensor.
  ValueMap others;
};

// Checks the device against the LibTorch build: a clear error when CUDA is asked
// for and unavailable.
Result<at::Device> parse_device(const std::string& name);

class Executor {
 public:
  // Fails when the graph holds ops the registry does not know (all named at once)
  // or weights that cannot be converted.
  static Result<Executor> create(const Graph& graph, ExecOptions options = {});

  // `feeds` gives every runtime input and may override weights by name (free
  // weights, tensors that require grad). Missing inputs are an error.
  Result<ExecResult> run(const TensorMap& feeds, const NodeHook& hook = {}) const;
  // The same with sequence and optional inputs (`other_feeds`) besides tensors.
  Result<ExecResult> run(const TensorMap& feeds, const ValueMap& other_feeds, const NodeHook& hook = {}) const;

  const Graph& graph() const { return *graph_; }
  const ExecOptions& options() const { return options_; }
  const TensorMap& weights() const { return weights_; }

 private:
  Executor(const Graph& graph, ExecOptions options) : graph_(&graph), options_(std::move(options)) {}
  Status load_subgraph_weights(const Graph& g);
  // Runs g's nodes over `values` (inputs, weights, outer-scope tensors already in);
  // errors name nodes as `prefix` + name, without the model path.
  // A scope's values: tensors, and the sequences and optionals beside them.
  struct Scope {
    TensorMap& tensors;
    ValueMap& others;
  };
  Status run_nodes(const Graph& g, Scope values, const std::string& prefix, at::Generator& gen,
                   const NodeHook& hook) const;
  // One run of a subgraph on its formal inputs, outer-scope values read from `scope`.
  std::vector<OpValue> run_body(const Graph& body, const std::string& prefix, const Scope& scope,
                                const std::vector<OpValue>& inputs, at::Generator& gen) const;
  const Graph* graph_;
  ExecOptions options_;
  TensorMap weights_;  // initializers as tensors, on the device, in the run's float type
  std::unordered_map<const Graph*, TensorMap> subgraph_weights_;  // the same, per subgraph
};

// Casts floating tensors to the run's float type and moves them to its device.
at::Tensor to_run_type(const at::Tensor& t, const ExecOptions& options);

}  // namespace nanguard
