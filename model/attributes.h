// Typed access to a node's attributes. A missing required attribute or one of the
// wrong type throws ModelError naming the node, the attribute and what was expected.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/graph.h"

namespace nanguard {

bool has_attr(const Node& node, const std::string& name);

int64_t attr_int(const Node& node, const std::string& name);
int64_t attr_int(const Node& node, const std::string& name, int64_t fallback);
float attr_float(const Node& node, const std::string& name);
float attr_float(const Node& node, const std::string& name, float fallback);
std::string attr_string(const Node& node, const std::string& name, const std::string& fallback);
std::vector<int64_t> attr_ints(const Node& node, const std::string& name);
std::optional<std::vector<int64_t>> attr_ints_opt(const Node& node, const std::string& name);
std::vector<float> attr_floats(const Node& node, const std::string& name);
std::vector<std::string> attr_strings(const Node& node, const std::string& name);
const onnx::TensorProto& attr_tensor(const Node& node, const std::string& name);
// A graph attribute as loaded into the IR (Node::subgraphs).
const Graph& attr_graph(const Node& node, const std::string& name);

}  // namespace nanguard
