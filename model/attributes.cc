#include "model/attributes.h"

#include <fmt/core.h>

#include "model/status.h"

namespace nanguard {
namespace {

using AP = onnx::AttributeProto;

const AP* find(const Node& node, const std::string& name) {
  auto it = node.attributes.find(name);
  return it == node.attributes.end() ? nullptr : &it->second;
}

const AP& require(const Node& node, const std::string& name, AP::AttributeType type) {
  const AP* a = find(node, name);
  if (!a)
    throw ModelError(fmt::format("node '{}' ({}): missing attribute '{}'", node.name,
                                 node.op_type, name));
  // Old exporters leave `type` unset; trust the populated field then.
  if (a->type() != AP::UNDEFINED && a->type() != type)
    throw ModelError(fmt::format("node '{}' ({}): attribute '{}' has type {}, expected {}",
                                 node.name, node.op_type, name, AP::AttributeType_Name(a->type()),
                                 AP::AttributeType_Name(type)));
  return *a;
}

}  // namespace

bool has_attr(const Node& node, const std::string& name) { return find(node, name) != nullptr; }

int64_t attr_int(const Node& node, const std::string& name) {
  return require(node, name, AP::INT).i();
}
int64_t attr_int(const Node& node, const std::string& name, int64_t fallback) {
  return has_attr(node, name) ? attr_int(node, name) : fallback;
}
float attr_float(const Node& node, const std::string& name) {
  return require(node, name, AP::FLOAT).f();
}
float attr_float(const Node& node, const std::string& name, float fallback) {
  return has_attr(node, name) ? attr_float(node, name) : fallback;
}
std::string attr_string(const Node& node, const std::string& name, const std::string& fallback) {
  return has_attr(node, name) ? require(node, name, AP::STRING).s() : fallback;
}
std::vector<int64_t> attr_ints(const Node& node, const std::string& name) {
  const AP& a = require(node, name, AP::INTS);
  return {a.ints().begin(), a.ints().end()};
}
std::optional<std::vector<int64_t>> attr_ints_opt(const Node& node, const std::string& name) {
  if (!has_attr(node, name)) return std::nullopt;
  return attr_ints(node, name);
}
std::vector<float> attr_floats(const Node& node, const std::string& name) {
  const AP& a = require(node, name, AP::FLOATS);
  return {a.floats().begin(), a.floats().end()};
}
std::vector<std::string> attr_strings(const Node& node, const std::string& name) {
  const AP& a = require(node, name, AP::STRINGS);
  return {a.strings().begin(), a.strings().end()};
}
const onnx::TensorProto& attr_tensor(const Node& node, const std::string& name) {
  return require(node, name, AP::TENSOR).t();
}

const Graph& attr_graph(const Node& node, const std::string& name) {
  auto it = node.subgraphs.find(name);
  if (it == node.subgraphs.end() || !it->second)
    throw ModelError(fmt::format("node '{}' ({}): missing graph attribute '{}'", node.name, node.op_type, name));
  return *it->second;
}

}  // namespace nanguard
