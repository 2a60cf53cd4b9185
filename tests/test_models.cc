#include "test_models.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "ops/tensor_proto.h"

namespace nanguard::testing {

ModelBuilder::ModelBuilder(int64_t opset) {
  model_.set_ir_version(8);
  auto* imp = model_.add_opset_import();
  imp->set_domain("");
  imp->set_version(opset);
  model_.mutable_graph()->set_name("test");
}

ModelBuilder& ModelBuilder::input(const std::string& name, std::vector<int64_t> dims, int32_t elem_type) {
  auto* vi = model_.mutable_graph()->add_input();
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  tt->mutable_shape();  // rank 0 (a scalar) still needs the field
  for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  return *this;
}

ModelBuilder& ModelBuilder::symbolic_input(const std::string& name, std::vector<std::string> dims) {
  auto* vi = model_.mutable_graph()->add_input();
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (const auto& d : dims) tt->mutable_shape()->add_dim()->set_dim_param(d);
  return *this;
}

ModelBuilder& ModelBuilder::output(const std::string& name, std::vector<int64_t> dims, int32_t elem_type) {
  auto* vi = model_.mutable_graph()->add_output();
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  tt->mutable_shape();  // rank 0 (a scalar) still needs the field
  for (int64_t d : dims) {
    auto* dim = tt->mutable_shape()->add_dim();
    if (d >= 0) dim->set_dim_value(d);
  }
  return *this;
}

ModelBuilder& ModelBuilder::initializer(const std::string& name, const at::Tensor& value) {
  *model_.mutable_graph()->add_initializer() = tensor_to_proto(value, name);
  return *this;
}

onnx::NodeProto& ModelBuilder::node(const std::string& op_type, std::vector<std::string> inputs,
                                    std::vector<std::string> outputs, const std::string& name) {
  auto* n = model_.mutable_graph()->add_node();
  n->set_op_type(op_type);
  n->set_name(name);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  return *n;
}

std::string ModelBuilder::bytes() const { return model_.SerializeAsString(); }

std::string test_tmp_dir() {
  std::string dir = NANGUARD_TEST_TMP;
  std::filesystem::create_directories(dir);
  return dir;
}

std::string ModelBuilder::save(const std::string& file_name) const {
  // Written to a private name, then renamed: ctest runs test processes in parallel
  // and several may save (identical) models under one name.
  std::string path = test_tmp_dir() + "/" + file_name;
  static int count = 0;
  std::string tmp = path + "." + std::to_string(::getpid()) + "." + std::to_string(count++);
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << bytes();
  std::filesystem::rename(tmp, path);
  return path;
}

void set_attr(onnx::NodeProto& node, const std::string& name, int64_t value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}
void set_attr(onnx::NodeProto& node, const std::string& name, float value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}
void set_attr(onnx::NodeProto& node, const std::string& name, const std::vector<int64_t>& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : value) a->add_ints(v);
}

ModelBuilder log_model(std::vector<int64_t> dims, std::optional<float> clip_min) {
  ModelBuilder b;
  b.input("x", dims).output("y", dims);
  if (!clip_min) {
    b.node("Log", {"x"}, {"y"}, "log");
    return b;
  }
  b.initializer("nanguard_fix/min", at::tensor(*clip_min));
  b.node("Clip", {"x", "nanguard_fix/min"}, {"nanguard_fix/x"}, "nanguard_fix/clip");
  b.node("Log", {"nanguard_fix/x"}, {"y"}, "log");
  return b;
}

ModelBuilder cancelling_log_model() {
  ModelBuilder b;
  b.input("x", {1, 4}).initializer("one", at::ones({1})).initializer("c", at::full({1}, 4.5f)).output("y", {1, 4});
  std::string prev = "x";
  for (int i = 0; i < 5; ++i) {
    b.node("Add", {prev, "one"}, {"a" + std::to_string(i)});
    prev = "a" + std::to_string(i);
  }
  b.node("Sub", {prev, "x"}, {"d"});
  b.node("Sub", {"d", "c"}, {"e"});
  b.node("Log", {"e"}, {"y"}, "log");
  return b;
}

ModelBuilder random_conv_stack(int layers, int64_t channels) {
  at::manual_seed(11);
  ModelBuilder b;
  b.input("x", {1, channels, 8, 8}).output("y", {1, channels, 8, 8});
  double fan_in = static_cast<double>(channels * 9);
  std::string cur = "x";
  for (int i = 0; i < layers; ++i) {
    std::string id = std::to_string(i), w = "w" + id, c = "c" + id, r = i + 1 == layers ? "y" : "r" + id;
    b.initializer(w, at::randn({channels, channels, 3, 3}) * std::sqrt(2.0 / fan_in));
    b.initializer(w + "b", at::zeros({channels}));
    set_attr(b.node("Conv", {cur, w, w + "b"}, {c}, "conv" + id), "pads", std::vector<int64_t>{1, 1, 1, 1});
    b.node("Relu", {c}, {r}, "relu" + id);
    cur = r;
  }
  return b;
}

}  // namespace nanguard::testing
