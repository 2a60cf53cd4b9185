// The graph IR: nodes in topological order, typed and shaped tensors, initializers.
// Produced by the loader (onnx_loader.h); consumed by ops/, analyzer/ and oracle/.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <onnx/onnx_pb.h>

#include "model/precision.h"

namespace nanguard {

// A tensor's static type: ONNX element type and, when known, its dimensions
// (-1 for a dimension shape inference could not determine).
struct TensorType {
  int32_t elem_type = 0;  // onnx::TensorProto_DataType
  std::optional<std::vector<int64_t>> dims;
  // A value that is not a tensor: seq(tensor) or optional(...). Their element type
  // is in elem_type when declared; dims stay unknown.
  enum class Kind { kTensor, kSequence, kOptional };
  Kind kind = Kind::kTensor;

  std::optional<int64_t> element_count() const;
  // "sequence" or "optional" for a non-tensor value, "" for a tensor.
  const char* non_tensor_kind() const;
};

struct Graph;

struct Node {
  std::string name;  // never empty: the loader names unnamed nodes "<OpType>_<index>"
  std::string op_type;
  std::string domain;  // "" for the default ONNX domain
  std::vector<std::string> inputs;  // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, onnx::AttributeProto> attributes;
  // Graph attributes (If's branches, a Loop or Scan body) loaded into the IR; their
  // AttributeProtos stay in `attributes` too.
  std::map<std::string, std::shared_ptr<const Graph>> subgraphs;
  int index = 0;  // position in Graph::nodes
};

struct Graph {
  std::string model_path;
  // What the loader rewrote a float32 model as (--precision; model/precision.h).
  Precision precision = Precision::kNative;
  int64_t opset = 0;  // of the default domain
  std::vector<std::string> inputs;  // runtime inputs (initializers excluded)
  std::vector<std::string> outputs;
  std::vector<Node> nodes;  // topologically sorted
  // Weights and folded Constant nodes; external data already read in.
  std::unordered_map<std::string, onnx::TensorProto> initializers;
  // Initializers that came from Constant nodes: values of the program (clip bounds,
  // epsilons, shapes), never trainable weights.
  std::unordered_set<std::string> folded_constants;
  std::unordered_map<std::string, TensorType> types;  // inferred, per tensor name
  // A subgraph only: the tensors of enclosing scopes that it (or a subgraph inside
  // it) reads by name, in order of first use (ONNX scoping).
  std::vector<std::string> outer_refs;

  const Node* find_node(const std::string& name) const;
  // The node producing `tensor`, or nullptr for inputs and initializers.
  const Node* producer(const std::string& tensor) const;
  const TensorType* type_of(const std::string& tensor) const;
  bool is_initializer(const std::string& tensor) const { return initializers.count(tensor) > 0; }

  // Rebuilt by the loader after any change to `nodes`.
  void index_producers();

 private:
  std::unordered_map<std::string, int> producer_index_;
};

// The outer-scope tensors a node's subgraphs read: inputs it has beyond `inputs`.
std::vector<std::string> implicit_inputs(const Node& node);

// Bytes per element of an ONNX element type; 0 for string / undefined.
int64_t element_size(int32_t elem_type);
std::string elem_type_name(int32_t elem_type);
// FLOAT, DOUBLE, FLOAT16 or BFLOAT16.
bool is_float_elem_type(int32_t elem_type);

}  // namespace nanguard
