// Edits of an ONNX model for fixes: new nodes and scalar initializers named
// "nanguard_fix/...", a node's input rewired, a node replaced by new nodes that keep
// its output names (so graph outputs keep theirs), written atomically. Nodes are
// named by their first output, which ONNX makes unique; the original's inputs,
// outputs, opset and metadata are kept.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "model/status.h"

namespace nanguard {

class ModelPatch {
 public:
  explicit ModelPatch(onnx::ModelProto model);
  static Result<ModelPatch> read(const std::string& path);

  const onnx::ModelProto& proto() const { return model_; }
  int64_t opset() const;
  // The element type of a tensor (input, initializer or inferred value); 0: unknown.
  int32_t elem_type(const std::string& tensor) const;

  // A tensor or node name not in the model yet: "nanguard_fix/<hint>", numbered when taken.
  std::string fresh(const std::string& hint);
  // A 0-d initializer of `elem_type` (FLOAT, DOUBLE, FLOAT16 as float bits, INT32, INT64).
  std::string add_scalar(const std::string& hint, double value, int32_t elem_type);
  // A new node, inserted before the node that produces `before` (or appended when
  // `before` is empty); returns its single output, named `output` or a fresh name.
  std::string add_node(const std::string& op_type, const std::vector<std::string>& inputs, const std::string& hint,
                       const std::string& before, std::vector<onnx::AttributeProto> attributes = {},
                       const std::string& output = "");

  // The node producing `output` (null when none: an input or initializer).
  const onnx::NodeProto* producer(const std::string& output) const;
  // Every node reading `tensor`.
  std::vector<const onnx::NodeProto*> consumers(const std::string& tensor) const;
  Status set_input(const std::string& node_output, int index, const std::string& tensor);
  // Every node but the producer of `except` reads `replacement` where it read `tensor`.
  void replace_uses(const std::string& tensor, const std::string& replacement, const std::string& except);
  // Names every unnamed node by `name_of` its first output (a loader's names).
  void name_nodes(const std::function<std::string(const std::string&)>& name_of);
  // Removes the node producing `output`; new nodes must then produce its outputs.
  Status remove_node(const std::string& output);
  // Replaces the node producing `output` by the new node producing `replacement`,
  // which then outputs `output` itself (consumers and graph outputs keep the name).
  Status replace_node(const std::string& output, const std::string& replacement);
  // Removes nodes whose outputs nothing reads and no graph output names.
  void prune_dead_nodes();
  void set_metadata(const std::string& key, const std::string& value);

  Status write(const std::string& path) const;  // temporary file, then rename

 private:
  int find_producer(const std::string& output) const;
  bool taken(const std::string& name) const;
  onnx::ModelProto model_;
  int counter_ = 0;
};

onnx::AttributeProto int_attribute(const std::string& name, int64_t v);
onnx::AttributeProto ints_attribute(const std::string& name, const std::vector<int64_t>& v);
onnx::AttributeProto float_attribute(const std::string& name, float v);

}  // namespace nanguard
