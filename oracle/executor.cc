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

std::vector<OpValue> Executor::run_body(const Graph& body, const std::string& prefix, const Scope& scope,
                                        const std::vector<OpValue>& inputs, at::Generator& gen) const {
  TensorMap tensors = subgraph_weights_.at(&body);
  ValueMap others;
  for (const std::string& r : body.outer_refs) {
    if (auto t = scope.tensors.find(r); t != scope.tensors.end()) tensors[r] = t->second;
    else if (auto v = scope.others.find(r); v != scope.others.end()) others[r] = v->second;
    else throw ModelError(fmt::format("node '{}': outer-scope tensor '{}' is not defined", prefix, r));
  }
  if (inputs.size() != body.inputs.size())
    throw ModelError(fmt::format("node '{}': the subgraph takes {} inputs, given {}", prefix, body.inputs.size(), inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].is_tensor()) tensors[body.inputs[i]] = inputs[i].tensor;
    else others[body.inputs[i]] = inputs[i];
  }
  if (Status s = run_nodes(body, Scope{tensors, others}, prefix + "/", gen, {}); !s.ok()) throw ModelError(s.message());
  std::vector<OpValue> outs;
  for (const std::string& o : body.outputs) {
    if (auto t = tensors.find(o); t != tensors.end()) outs.push_back(OpValue::of(t->second));
    else if (auto v = others.find(o); v != others.end()) outs.push_back(v->second);
    else throw ModelError(fmt::format("node '{}': the subgraph's output '{}' is not computed", prefix, o));
  }
  return outs;
}

Result<ExecResult> Executor::run(const TensorMap& feeds, const NodeHook& hook) const { return run(feeds, {}, hook); }

Result<ExecResult> Executor::run(const TensorMap& feeds, const ValueMap& other_feeds, const NodeHook& hook) const {
  const Graph& g = *graph_;
  ExecResult result;
  TensorMap& values = result.values;
  values = weights_;
  for (const auto& [name, t] : feeds) values[name] = to_declared_half(g, name, to_run_type(t, options_));
  for (const auto& [name, v] : other_feeds) {
    OpValue& mine = result.others[name] = v;
    for (at::Tensor& item : mine.items) item = to_declared_half(g, name, to_run_type(item, options_));
  }
  for (const auto& in : g.inputs)
    if (!values.count(in) && !result.others.count(in))
      return Status::Error(fmt::format("{}: no value given for input '{}'", g.model_path, in));
  at::Generator gen = at::detail::createCPUGenerator(options_.seed);
  if (Status s = run_nodes(g, Scope{values, result.others}, "", gen, hook); !s.ok())
    return Status::Error(fmt::format("{}: {}", g.model_path, s.message()));
  for (const auto& o : g.outputs) {
    auto t = values.find(o);
    if (t == values.end() && !result.others.count(o))
      return Status::Error(fmt::format("{}: graph output '{}' is not computed", g.model_path, o));
    result.outputs.push_back(t == values.end() ? at::Tensor() : t->second);
  }
  return result;
}

// The node's inputs into ctx: tensors in ctx.inputs and, for an op that takes
// sequences or optionals, every input in ctx.values too.
static Status gather_inputs(const Node& node, const std::string& name, const OpDef& def, TensorMap& tensors,
                            ValueMap& others, OpContext& ctx) {
  bool values_op = def.lower_values != nullptr;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const std::string& in = node.inputs[i];
    OpValue v;
    if (in.empty()) {
    } else if (auto t = tensors.find(in); t != tensors.end()) {
      v.tensor = t->second;
    } else if (auto o = others.find(in); o != others.end()) {
      if (!values_op)
        return Status::Error(fmt::format("node '{}' ({}): input {} ('{}') is a {}; {} takes tensors", name, node.op_type,
                                         i, in, o->second.describe(), node.op_type));
      v = o->second;
    } else {
      return Status::Error(fmt::format("node '{}' ({}): input '{}' is not computed before it", name, node.op_type, in));
    }
    ctx.inputs.push_back(v.tensor);
    if (values_op) ctx.values.push_back(std::move(v));
  }
  return Status::Ok();
}

// Runs the op: tensors out, the sequences and optionals among them stored in `others`
// (their slots in the result undefined).
static std::vector<at::Tensor> lower_node(const OpDef& def, const OpContext& ctx, ValueMap& others) {
  if (!def.lower_values) return def.lower(ctx);
  std::vector<OpValue> vals = def.lower_values(ctx);
  std::vector<at::Tensor> outs;
  for (size_t i = 0; i < vals.size(); ++i) {
    outs.push_back(vals[i].is_tensor() ? vals[i].tensor : at::Tensor());
    if (!vals[i].is_tensor() && i < ctx.node.outputs.size() && !ctx.node.outputs[i].empty())
      others[ctx.node.outputs[i]] = std::move(vals[i]);
  }
  return outs;
}

// What a hook sees of a node's outputs: a sequence as its elements flattened into one
// tensor, so a NaN born inside one (a SequenceMap body) is seen where it is born.
static std::vector<at::Tensor> hook_view(const Node& node, const std::vector<at::Tensor>& outs, const ValueMap& others) {
  std::vector<at::Tensor> view = outs;
  for (size_t i = 0; i < view.size() && i < node.outputs.size(); ++i) {
    auto it = view[i].defined() ? others.end() : others.find(node.outputs[i]);
    if (it == others.end() || it->second.items.empty()) continue;
    std::vector<at::Tensor> flat;
    for (const at::Tensor& t : it->second.items) flat.push_back(t.detach().reshape({-1}));
    view[i] = at::cat(flat);
  }
  return view;
}

Status Executor::run_nodes(const Graph& g, Scope scope, const std::string& prefix, at::Generator& gen,
                           const NodeHook& hook) const {
  TensorMap& values = scope.tensors;
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
    const OpDef& def = *OpRegistry::instance().find(node.op_type, node.domain);
    OpContext ctx{node, g.opset, {}, options_.float_type, options_.device, options_.max_tensor_bytes, &gen};
    if (Status s = gather_inputs(node, name, def, values, scope.others, ctx); !s.ok()) return s;
    if (!node.subgraphs.empty()) {
      ctx.run_subgraph_values = [&, name](const std::string& attr, const std::vector<OpValue>& inputs) {
        return run_body(attr_graph(node, attr), name + "/" + attr, scope, inputs, gen);
      };
      ctx.run_subgraph = [&, name](const std::string& attr, const std::vector<at::Tensor>& inputs) {
        std::vector<OpValue> in;
        for (const at::Tensor& t : inputs) in.push_back(OpValue::of(t));
        std::vector<at::Tensor> out;
        for (OpValue& v : run_body(attr_graph(node, attr), name + "/" + attr, scope, in, gen)) {
          if (!v.is_tensor())
            throw ModelError(fmt::format("node '{}' ({}): its subgraph '{}' returns a {}, {} takes tensors", name,
                                         node.op_type, attr, v.describe(), node.op_type));
          out.push_back(v.tensor);
        }
        return out;
      };
    }
    bool half = widen_half_inputs(ctx);
    std::vector<at::Tensor> outs;
    try {
      outs = lower_node(def, ctx, scope.others);
      if (half) round_half_outputs(g, node, outs);
    } catch (const ModelError& e) {
      std::string msg = e.what();
      // A subgraph's node names itself in full; this node's own errors get its path.
      if (!prefix.empty() && msg.rfind("node '" + node.name + "'", 0) == 0) msg = "node '" + name + msg.substr(6 + node.name.size());
      return Status::Error(msg);
    } catch (const std::exception& e) {
      return Status::Error(fmt::format("node '{}' ({}): execution failed: {}", name, node.op_type, first_line(e.what())));
    }
    if (outs.size() < node.outputs.size()) {
      // Optional outputs a lowering does not compute must not be consumed.
      for (size_t i = outs.size(); i < node.outputs.size(); ++i)
        if (!node.outputs[i].empty())
          return Status::Error(fmt::format("node '{}' ({}): output {} is not supported", name, node.op_type, i));
    }
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      if (node.outputs[i].empty()) continue;
      if (outs[i].defined() || !scope.others.count(node.outputs[i])) values[node.outputs[i]] = outs[i];
      if (outs[i].defined()) scope.others.erase(node.outputs[i]);
    }
    if (hook) hook(node, hook_view(node, outs, scope.others));
    if (prune)
      for (const auto& in : node.inputs)
        if (!in.empty() && last_reader[in] == node.index && !g.is_initializer(in)) {
          values.erase(in);
          scope.others.erase(in);
        }
  }
  return Status::Ok();
}

}  // namespace nanguard
