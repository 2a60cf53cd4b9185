#include "model/graph.h"

#include <limits>

namespace nanguard {

const char* TensorType::non_tensor_kind() const {
  switch (kind) {
    case Kind::kSequence: return "sequence";
    case Kind::kOptional: return "optional";
    default: return "";
  }
}

std::optional<int64_t> TensorType::element_count() const {
  if (!dims) return std::nullopt;
  // Saturates at INT64_MAX instead of overflowing (a declared dimension of 2^63 - 1
  // wrapped the product below the loader's size cap; found by fuzz_loader).
  int64_t n = 1;
  bool saturated = false;
  for (int64_t d : *dims) {
    if (d < 0) return std::nullopt;
    if (d == 0) return 0;
    if (n > std::numeric_limits<int64_t>::max() / d) saturated = true;
    else n *= d;
  }
  return saturated ? std::numeric_limits<int64_t>::max() : n;
}

const Node* Graph::find_node(const std::string& name) const {
  for (const Node& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

const Node* Graph::producer(const std::string& tensor) const {
  auto it = producer_index_.find(tensor);
  return it == producer_index_.end() ? nullptr : &nodes[it->second];
}

const TensorType* Graph::type_of(const std::string& tensor) const {
  auto it = types.find(tensor);
  return it == types.end() ? nullptr : &it->second;
}

void Graph::index_producers() {
  producer_index_.clear();
  for (size_t i = 0; i < nodes.size(); ++i) {
    nodes[i].index = static_cast<int>(i);
    for (const std::string& out : nodes[i].outputs)
      if (!out.empty()) producer_index_[out] = static_cast<int>(i);
  }
}

std::vector<std::string> implicit_inputs(const Node& node) {
  std::vector<std::string> refs;
  std::unordered_set<std::string> seen;
  for (const auto& [attr, g] : node.subgraphs)
    for (const std::string& r : g->outer_refs)
      if (seen.insert(r).second) refs.push_back(r);
  return refs;
}

int64_t element_size(int32_t t) {
  using TP = onnx::TensorProto;
  switch (t) {
    case TP::FLOAT: case TP::INT32: case TP::UINT32: return 4;
    case TP::DOUBLE: case TP::INT64: case TP::UINT64: case TP::COMPLEX64: return 8;
    case TP::FLOAT16: case TP::BFLOAT16: case TP::INT16: case TP::UINT16: return 2;
    case TP::INT8: case TP::UINT8: case TP::BOOL: return 1;
    case TP::COMPLEX128: return 16;
    default: return 0;
  }
}

std::string elem_type_name(int32_t t) {
  if (onnx::TensorProto_DataType_IsValid(t))
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t));
  return "type" + std::to_string(t);
}

bool is_float_elem_type(int32_t t) {
  return t == onnx::TensorProto::FLOAT || t == onnx::TensorProto::DOUBLE || t == onnx::TensorProto::FLOAT16 ||
         t == onnx::TensorProto::BFLOAT16;
}

}  // namespace nanguard
