// torch.autocast as a graph rewrite (model/precision.h): each op's compute type, and
// Cast nodes where an activation's type differs from it. An op's inputs of its main
// type constraint (the one of its first output, "T") are cast; inputs of other
// constraints (Resize's scales, a Dropout ratio, integer indices) are left as they are.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include "model/precision.h"
#include "model/status.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;

// Autocast's lower-precision list, as ONNX ops.
const std::set<std::string> kLower = {"MatMul", "Gemm", "Conv", "ConvTranspose", "PRelu", "LSTM", "GRU", "RNN", "Einsum"};
// Its float32 list, as ONNX ops.
const std::set<std::string> kFloat32 = {
    "Exp", "Log", "Pow", "Softplus", "Reciprocal", "Acos", "Asin", "Cosh", "Sinh", "Tan", "Erf",
    "Softmax", "LogSoftmax", "LayerNormalization", "GroupNormalization", "InstanceNormalization", "LpNormalization",
    "ReduceSum", "ReduceProd", "ReduceLogSumExp", "ReduceLogSum", "ReduceL1", "ReduceL2", "ReduceSumSquare", "CumSum",
    "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"};

bool is_float(int32_t t) { return t == TP::FLOAT || t == TP::FLOAT16 || t == TP::BFLOAT16; }

const char* suffix(int32_t t) { return t == TP::FLOAT ? "fp32" : t == TP::FLOAT16 ? "fp16" : "bf16"; }

struct Rewrite {
  onnx::GraphProto& g;
  int64_t opset;
  int32_t half;
  std::map<std::string, int32_t> type;          // every tensor's element type, as rewritten
  std::set<std::string> constants;               // initializers and Constant outputs
  std::map<std::pair<std::string, int32_t>, std::string> casts;  // (tensor, type) -> cast output
  std::vector<onnx::NodeProto> out;

  // A float32 initializer as an initializer of the half type (as autocast's cast of a
  // weight rounds it), with +-FLT_MAX, an exporter's "no bound" of a Clip, kept as the
  // type's largest value: a Cast node would make it INF and a finding of its own.
  // The float32 value of an initializer or of a Constant node's `value`, if `tensor` is one.
  const TP* constant_value(const std::string& tensor) const {
    for (const TP& t : g.initializer())
      if (t.name() == tensor) return &t;
    for (const onnx::NodeProto& n : out)
      if (n.op_type() == "Constant" && n.output_size() == 1 && n.output(0) == tensor)
        for (const onnx::AttributeProto& a : n.attribute())
          if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) return &a.t();
    return nullptr;
  }

  bool convert_initializer(const std::string& tensor, const std::string& name, int32_t to) {
    if (const TP* found = constant_value(tensor)) {
      const TP& t = *found;
      if (t.data_type() != TP::FLOAT || to == TP::FLOAT) return false;
      TP c = t;
      c.set_name(name);
      convert_float_tensor(c, to, true);
      *g.add_initializer() = c;
      return true;
    }
    return false;
  }

  std::string cast(const std::string& tensor, int32_t to, const std::string& user, int index) {
    auto key = std::make_pair(tensor, to);
    if (auto it = casts.find(key); it != casts.end()) return it->second;
    std::string name = fmt::format("{}/autocast_{}", tensor, suffix(to));
    if (convert_initializer(tensor, name, to)) {
      type[name] = to;
      constants.insert(name);
      casts[key] = name;
      return name;
    }
    onnx::NodeProto c;
    c.set_op_type("Cast");
    c.set_name(fmt::format("nanguard_autocast/{}/{}", user, index));
    c.add_input(tensor);
    c.add_output(name);
    onnx::AttributeProto* a = c.add_attribute();
    a->set_name("to");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(to);
    out.push_back(c);
    type[name] = to;
    casts[key] = name;
    return name;
  }

  // The formal input an actual input index belongs to (the last one when variadic).
  static const onnx::OpSchema::FormalParameter* formal(const std::vector<onnx::OpSchema::FormalParameter>& f, int i) {
    if (f.empty()) return nullptr;
    if (i < static_cast<int>(f.size())) return &f[i];
    return f.back().GetOption() == onnx::OpSchema::Variadic ? &f.back() : nullptr;
  }

  void visit(onnx::NodeProto n, int index) {
    if (n.name().empty()) n.set_name(fmt::format("{}_{}", n.op_type(), index));
    const onnx::OpSchema* s = onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(opset), n.domain());
    if (!s || s->outputs().empty() || n.op_type() == "Cast") return keep(n);
    const std::string& main = s->outputs()[0].GetTypeStr();
    std::vector<int> shared;  // inputs of the main type constraint, and float now
    bool activation_float32 = false, any_activation = false;
    for (int i = 0; i < n.input_size(); ++i) {
      const auto* f = formal(s->inputs(), i);
      auto t = type.find(n.input(i));
      if (!f || f->GetTypeStr() != main || n.input(i).empty() || t == type.end() || !is_float(t->second)) continue;
      shared.push_back(i);
      if (!constants.count(n.input(i))) {
        any_activation = true;
        activation_float32 = activation_float32 || t->second == TP::FLOAT;
      }
    }
    if (shared.empty()) return keep(n);
    // Weights and constants take the activations' type; an exported Linear's bias Add is
    // part of the Linear.
    int32_t target = kLower.count(n.op_type()) ? half
                     : kFloat32.count(n.op_type()) ? TP::FLOAT
                     : !any_activation || activation_float32 ? TP::FLOAT : half;
    for (int i : shared)
      if (type[n.input(i)] != target) n.set_input(i, cast(n.input(i), target, n.name(), i));
    for (int o = 0; o < n.output_size(); ++o) {
      const auto* f = formal(s->outputs(), o);
      if (f && f->GetTypeStr() == main && type.count(n.output(o)) && is_float(type[n.output(o)])) type[n.output(o)] = target;
    }
    out.push_back(n);
  }

  void keep(const onnx::NodeProto& n) {
    if (n.op_type() == "Constant")
      for (const std::string& o : n.output()) constants.insert(o);
    out.push_back(n);
  }

  // Graph outputs keep their declared type: a Cast back where the rewrite changed it.
  void restore_outputs() {
    for (const onnx::ValueInfoProto& vi : g.output()) {
      int32_t declared = vi.type().tensor_type().elem_type();
      const std::string& name = vi.name();
      if (!type.count(name) || type[name] == declared) continue;
      std::string inner = name + "/autocast_out";
      for (onnx::NodeProto& n : out) {
        for (int i = 0; i < n.input_size(); ++i)
          if (n.input(i) == name) n.set_input(i, inner);
        for (int o = 0; o < n.output_size(); ++o)
          if (n.output(o) == name) n.set_output(o, inner);
      }
      type[inner] = type[name];
      cast(inner, declared, "output_" + name, 0);
      out.back().set_output(0, name);
      type[name] = declared;
    }
  }
};

}  // namespace

Status autocast_graph(onnx::ModelProto& m, int32_t half, const std::string& path) {
  int64_t opset = 0;
  for (const auto& o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  if (half == TP::BFLOAT16 && opset < 13)
    return Status::Error(fmt::format("{}: --precision autocast-bf16 needs opset 13 or newer (the model has {})", path, opset));
  onnx::ModelProto typed = m;
  onnx::shape_inference::InferShapes(typed);
  Rewrite r{*m.mutable_graph(), opset, half, {}, {}, {}, {}};
  const onnx::GraphProto& tg = typed.graph();
  for (auto* list : {&tg.input(), &tg.output(), &tg.value_info()})
    for (const onnx::ValueInfoProto& vi : *list)
      if (vi.type().has_tensor_type()) r.type[vi.name()] = vi.type().tensor_type().elem_type();
  for (const TP& t : tg.initializer()) {
    r.type[t.name()] = t.data_type();
    r.constants.insert(t.name());
  }
  std::vector<onnx::NodeProto> nodes(m.graph().node().begin(), m.graph().node().end());
  for (size_t i = 0; i < nodes.size(); ++i) r.visit(nodes[i], static_cast<int>(i));
  r.restore_outputs();
  m.mutable_graph()->clear_node();
  for (onnx::NodeProto& n : r.out) *m.mutable_graph()->add_node() = n;
  m.mutable_graph()->clear_value_info();
  return Status::Ok();
}

}  // namespace nanguard
