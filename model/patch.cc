#include "model/patch.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include <fmt/core.h>

#include "model/onnx_loader.h"
#include "model/precision.h"

namespace nanguard {
namespace {

}  // namespace

ModelPatch::ModelPatch(onnx::ModelProto model) : model_(std::move(model)) {}

Result<ModelPatch> ModelPatch::read(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes.ok()) return bytes.status();
  onnx::ModelProto m;
  if (bytes->empty() || !m.ParseFromString(*bytes) || !m.has_graph())
    return Status::Error(fmt::format("{}: not a valid ONNX model (protobuf parse failed)", path));
  return ModelPatch(std::move(m));
}

int64_t ModelPatch::opset() const {
  for (const auto& o : model_.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") return o.version();
  return 0;
}

int32_t ModelPatch::elem_type(const std::string& tensor) const {
  const auto& g = model_.graph();
  for (const auto& t : g.initializer())
    if (t.name() == tensor) return t.data_type();
  for (const auto* list : {&g.input(), &g.output(), &g.value_info()})
    for (const auto& vi : *list)
      if (vi.name() == tensor && vi.type().has_tensor_type()) return vi.type().tensor_type().elem_type();
  return 0;
}

bool ModelPatch::taken(const std::string& name) const {
  const auto& g = model_.graph();
  for (const auto& n : g.node()) {
    if (n.name() == name) return true;
    for (const auto& o : n.output())
      if (o == name) return true;
  }
  for (const auto& t : g.initializer())
    if (t.name() == name) return true;
  for (const auto& vi : g.input())
    if (vi.name() == name) return true;
  return false;
}

std::string ModelPatch::fresh(const std::string& hint) {
  std::string base = "nanguard_fix/" + hint;
  if (!taken(base)) return base;
  for (;;) {
    std::string name = fmt::format("{}_{}", base, ++counter_);
    if (!taken(name)) return name;
  }
}

std::string ModelPatch::add_scalar(const std::string& hint, double value, int32_t elem_type) {
  onnx::TensorProto* t = model_.mutable_graph()->add_initializer();
  std::string name = fresh(hint);
  t->set_name(name);
  t->set_data_type(elem_type);
  switch (elem_type) {
    case onnx::TensorProto::DOUBLE: t->add_double_data(value); break;
    case onnx::TensorProto::FLOAT16: t->add_int32_data(float16_bits(static_cast<float>(value))); break;
    case onnx::TensorProto::BFLOAT16: t->add_int32_data(bfloat16_bits(static_cast<float>(value))); break;
    case onnx::TensorProto::INT32: t->add_int32_data(static_cast<int32_t>(value)); break;
    case onnx::TensorProto::INT64: t->add_int64_data(static_cast<int64_t>(value)); break;
    default: t->set_data_type(onnx::TensorProto::FLOAT); t->add_float_data(static_cast<float>(value));
  }
  return name;
}

int ModelPatch::find_producer(const std::string& output) const {
  const auto& nodes = model_.graph().node();
  for (int i = 0; i < nodes.size(); ++i)
    for (const auto& o : nodes[i].output())
      if (o == output) return i;
  return -1;
}

const onnx::NodeProto* ModelPatch::producer(const std::string& output) const {
  int i = find_producer(output);
  return i < 0 ? nullptr : &model_.graph().node(i);
}

std::vector<const onnx::NodeProto*> ModelPatch::consumers(const std::string& tensor) const {
  std::vector<const onnx::NodeProto*> out;
  for (const auto& n : model_.graph().node())
    for (const auto& in : n.input())
      if (in == tensor) {
        out.push_back(&n);
        break;
      }
  return out;
}

std::string ModelPatch::add_node(const std::string& op_type, const std::vector<std::string>& inputs, const std::string& hint,
                                 const std::string& before, std::vector<onnx::AttributeProto> attributes,
                                 const std::string& output) {
  onnx::NodeProto n;
  n.set_op_type(op_type);
  n.set_name(fresh(hint));
  for (const auto& in : inputs) n.add_input(in);
  std::string out = output.empty() ? n.name() : output;
  n.add_output(out);
  for (auto& a : attributes) *n.add_attribute() = std::move(a);
  auto* nodes = model_.mutable_graph()->mutable_node();
  int at = before.empty() ? -1 : find_producer(before);
  *nodes->Add() = std::move(n);
  if (at >= 0)  // bubble the new node back to just before `before`'s producer
    for (int i = nodes->size() - 1; i > at; --i) nodes->SwapElements(i, i - 1);
  return out;
}

Status ModelPatch::set_input(const std::string& node_output, int index, const std::string& tensor) {
  int i = find_producer(node_output);
  if (i < 0) return Status::Error(fmt::format("no node produces '{}'", node_output));
  auto* n = model_.mutable_graph()->mutable_node(i);
  while (n->input_size() <= index) n->add_input("");
  n->set_input(index, tensor);
  return Status::Ok();
}

void ModelPatch::replace_uses(const std::string& tensor, const std::string& replacement, const std::string& except) {
  for (auto& n : *model_.mutable_graph()->mutable_node()) {
    if (n.output_size() > 0 && n.output(0) == except) continue;
    for (int i = 0; i < n.input_size(); ++i)
      if (n.input(i) == tensor) n.set_input(i, replacement);
  }
}

void ModelPatch::name_nodes(const std::function<std::string(const std::string&)>& name_of) {
  for (auto& n : *model_.mutable_graph()->mutable_node()) {
    if (!n.name().empty() || n.output_size() == 0) continue;
    std::string name = name_of(n.output(0));
    if (!name.empty()) n.set_name(name);
  }
}

Status ModelPatch::remove_node(const std::string& output) {
  int i = find_producer(output);
  if (i < 0) return Status::Error(fmt::format("no node produces '{}'", output));
  model_.mutable_graph()->mutable_node()->DeleteSubrange(i, 1);
  return Status::Ok();
}

Status ModelPatch::replace_node(const std::string& output, const std::string& replacement) {
  int r = find_producer(replacement);
  if (r < 0) return Status::Error(fmt::format("no node produces '{}'", replacement));
  if (!consumers(replacement).empty()) return Status::Error(fmt::format("'{}' is read by other nodes", replacement));
  if (Status s = remove_node(output); !s.ok()) return s;
  r = find_producer(replacement);
  model_.mutable_graph()->mutable_node(r)->set_output(0, output);
  return Status::Ok();
}

void ModelPatch::prune_dead_nodes() {
  for (bool changed = true; changed;) {
    changed = false;
    std::unordered_set<std::string> read;
    for (const auto& n : model_.graph().node())
      for (const auto& in : n.input()) read.insert(in);
    for (const auto& o : model_.graph().output()) read.insert(o.name());
    auto* nodes = model_.mutable_graph()->mutable_node();
    for (int i = nodes->size() - 1; i >= 0; --i) {
      bool used = false;
      for (const auto& o : nodes->Get(i).output()) used = used || read.count(o);
      if (used) continue;
      nodes->DeleteSubrange(i, 1);
      changed = true;
    }
  }
}

void ModelPatch::set_metadata(const std::string& key, const std::string& value) {
  for (auto& p : *model_.mutable_metadata_props())
    if (p.key() == key) {
      p.set_value(value);
      return;
    }
  auto* p = model_.add_metadata_props();
  p->set_key(key);
  p->set_value(value);
}

Status ModelPatch::write(const std::string& path) const {
  std::string tmp = path + ".nanguard-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !model_.SerializeToOstream(&out)) {
      std::remove(tmp.c_str());
      return Status::Error(fmt::format("{}: cannot write", path));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return Status::Error(fmt::format("{}: cannot write ({})", path, ec.message()));
  }
  return Status::Ok();
}

onnx::AttributeProto int_attribute(const std::string& name, int64_t v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(v);
  return a;
}

onnx::AttributeProto ints_attribute(const std::string& name, const std::vector<int64_t>& v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a.add_ints(x);
  return a;
}

onnx::AttributeProto float_attribute(const std::string& name, float v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(v);
  return a;
}

}  // namespace nanguard
