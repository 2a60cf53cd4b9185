#include "oracle/executor.h"

#include <fmt/core.h>

#include "oracle/half_run.h"
#include "ops/op_registry.h"
#include "ops/tensor_proto.h"

namespace nanguard {

Result<at::Device> parse_device(const std::string& name) {
  if (name == "cpu") return at::Device(at::kCPU);
  if (name == "cuda") {
    if (!at::hasCUDA())
      return Status::Error("--device cuda: this LibTorch build has no CUDA support (or no GPU is visible)");
    // TF32 would make CUDA matmuls and convolutions less precise than float32, and
    // the oracle must judge float32 semantics.
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
    return at::Device(at::kCUDA, 0);
  }
  return Status::Error(fmt::format("unknown device '{}' (expected cpu or cuda)", name));
}

at::Tensor to_run_type(const at::Tensor& t, const ExecOptions& options) {
  at::Tensor r = t;
  // Only float32 <-> float64 follow the run's type; half precision stays as given.
  bool wide_float = r.scalar_type() == at::kFloat || r.scalar_type() == at::kDouble;
  if (wide_float && r.scalar_type() != options.float_type) r = r.to(options.float_type);
  return r.device() == options.device ? r : r.to(options.device);
}

static bool is_half(const at::Tensor& t) { return t.defined() && (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16); }

// ATen's CPU kernels lack many half-precision ops (clamp, ...): on CPU an op with
// float16/bfloat16 inputs computes in float32 and each result is rounded to its
// declared type, as GPUs do with their float32 accumulators.
bool widen_half_inputs(OpContext& ctx) {
  if (!ctx.device.is_cpu()) return false;
  bool any = false;
  for (at::Tensor& t : ctx.inputs)
    if (is_half(t)) {
      t = t.to(at::kFloat);
      any = true;
    }
  return any;
}

// Searches hand every float input over as float32/float64: an input declared
// float16/bfloat16 runs in its own type.
static at::Tensor to_declared_half(const Graph& g, const std::string& name, at::Tensor t) {
  const TensorType* type = g.type_of(name);
  if (!type || !t.is_floating_point() || is_half(t)) return t;
  if (type->elem_type == onnx::TensorProto::FLOAT16) return t.to(at::kHalf);
  if (type->elem_type == onnx::TensorProto::BFLOAT16) return t.to(at::kBFloat16);
  return t;
}

void round_half_outputs(const Graph& g, const Node& node, std::vector<at::Tensor>& outs) {
  for (size_t i = 0; i < outs.size() && i < node.outputs.size(); ++i) {
    const TensorType* t = g.type_of(node.outputs[i]);
    if (!t || !outs[i].defined() || outs[i].scalar_type() != at::kFloat) continue;
    if (t->elem_type == onnx::TensorProto::FLOAT16) outs[i] = outs[i].to(at::kHalf);
    if (t->elem_type == onnx::TensorProto::BFLOAT16) outs[i] = outs[i].to(at::kBFloat16);
  }
}

Result<Executor> Executor::create(const Graph& graph, ExecOptions options) {
  std::vector<std::string> missing = unsupported_op_types(graph);
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    return Status::Error(fmt::format("{}: unsupported ONNX op{}: {}", graph.model_path,
                                     missing.size() > 1 ? "s" : "", list));
  }
  Executor ex(graph, std::move(options));
  for (const auto& [name, proto] : graph.initializers) {
    try {
      ex.weights_[name] = to_run_type(tensor_from_proto(proto), ex.options_);
    } catch (const std::exception& e) {
      return Status::Error(fmt::format("{}: initializer '{}': {}", graph.model_path, name, e.what()));
    }
  }
  if (Status s = ex.load_subgraph_weights(graph); !s.ok()) return s;
  return ex;
}

// Subgraphs' initializers (their folded Constants, mostly), converted once rather
// than at every iteration of a loop.
Status Executor::load_subgraph_weights(const Graph& g) {
  for (const Node& n : g.nodes)
    for (const auto& [attr, sub] : n.subgraphs) {
      TensorMap& w = subgraph_weights_[sub.get()];
      for (const auto& [name, proto] : sub->initializers) {
        try {
          w[name] = to_run_type(tensor_from_proto(proto), options_);
        } catch (const std::exception& e) {
          return Status::Error(fmt::format("{}: node '{}': initializer '{}' of '{}': {}", graph_->model_path, n.name,
                                           name, attr, e.what()));
        }
      }
      if (Status s = load_subgraph_weights(*sub); !s.ok()) return s;
    }
  return Status::Ok();
}

std::vector<at::Tensor> Executor::run_body(const Graph& body, const std::string& prefix, const TensorMap& scope,
                                           const std::vector<at::Tensor>& inputs, at::Generator& gen) const {
  TensorMap values = subgraph_weights_.at(&body);
  for (const std::string& r : body.outer_refs) {
    auto it = scope.find(r);
    if (it == scope.end()) throw ModelError(fmt::format("node '{}': outer-scope tensor '{}' is not defined", prefix, r));
    values[r] = it->second;
  }
  if (inputs.size() != body.inputs.size())
    throw ModelError(fmt::format("node '{}': the subgraph takes {} inputs, given {}", prefix, body.inputs.size(), inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) values[body.inputs[i]] = inputs[i];
  if (Status s = run_nodes(body, values, prefix + "/", gen, {}); !s.ok()) throw ModelError(s.message());
  std::vector<at::Tensor> outs;
  for (const std::string& o : body.outputs) outs.push_back(values.at(o));
  return outs;
}

Result<ExecResult> Executor::run(const TensorMap& feeds, const NodeHook& hook) const {
  const Graph& g = *graph_;
  ExecResult result;
  TensorMap& values = result.values;
  values = weights_;
  for (const auto& [name, t] : feeds) values[name] = to_declared_half(g, name, to_run_type(t, options_));
  for (const auto& in : g.inputs)
    if (!values.count(in)) return Status::Error(fmt::format("{}: no value given for input '{}'", g.model_path, in));
  at::Generator gen = at::detail::createCPUGenerator(options_.seed);
  if (Status s = run_nodes(g, values, "", gen, hook); !s.ok())
    return Status::Error(fmt::format("{}: {}", g.model_path, s.message()));
  for (const auto& o : g.outputs) result.outputs.push_back(values.at(o));
  return result;
}

Status Executor::run_nodes(const Graph& g, TensorMap& values, const std::string& prefix, at::Generator& gen,
                           const NodeHook& hook) const {
  // Without keep_intermediates a tensor is dropped after its last reader (a
  // subgraph's outer reads count), so long runs (sampling) hold only the live frontier.
  bool prune = !options_.keep_intermediates && prefix.empty();
  std::unordered_map<std::string, int> last_reader;
  if (prune) {
    for (const Node& n : g.nodes) {
      for (const auto& in : n.inputs) last_reader[in] = n.index;
      for (const auto& in : implicit_inputs(n)) last_reader[in] = n.index;
    }
    for (const auto& o : g.outputs) last_reader[o] = static_cast<int>(g.nodes.size());
  }
  for (const Node& node : g.nodes) {
    const std::string name = prefix + node.name;
    OpContext ctx{node, g.opset, {}, options_.float_type, options_.device, options_.max_tensor_bytes, &gen};
    for (const auto& in : node.inputs) ctx.inputs.push_back(in.empty() ? at::Tensor() : values.at(in));
    if (!node.subgraphs.empty())
      ctx.run_subgraph = [&, name](const std::string& attr, const std::vector<at::Tensor>& inputs) {
        return run_body(attr_graph(node, attr), name + "/" + attr, values, inputs, gen);
      };
    bool half = widen_half_inputs(ctx);
    std::vector<at::Tensor> outs;
    try {
      outs = OpRegistry::instance().find(node.op_type, node.domain)->lower(ctx);
      if (half) round_half_outputs(g, node, outs);
    } catch (const ModelError& e) {
      std::string msg = e.what();
      // A subgraph's node names itself in full; this node's own errors get its path.
      if (!prefix.empty() && msg.rfind("node '" + node.name + "'", 0) == 0) msg = "node '" + name + msg.substr(6 + node.name.size());
      return Status::Error(msg);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
      return Status::Error(fmt::format("node '{}' ({}): execution failed: {}", name, node.op_type, msg));
    }
    if (outs.size() < node.outputs.size()) {
      // Optional outputs a lowering does not compute must not be consumed.
      for (size_t i = outs.size(); i < node.outputs.size(); ++i)
        if (!node.outputs[i].empty())
          return Status::Error(fmt::format("node '{}' ({}): output {} is not supported", name, node.op_type, i));
    }
    for (size_t i = 0; i < node.outputs.size(); ++i)
      if (!node.outputs[i].empty()) values[node.outputs[i]] = outs[i];
    if (hook) hook(node, outs);
    if (prune)
      for (const auto& in : node.inputs)
        if (!in.empty() && last_reader[in] == node.index && !g.is_initializer(in)) values.erase(in);
  }
  return Status::Ok();
}

}  // namespace nanguard
