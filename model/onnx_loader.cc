#include "model/onnx_loader.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <sstream>
#include <unordered_set>

#include <fmt/core.h>
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include "model/constant_folding.h"

namespace nanguard {

namespace fs = std::filesystem;

Result<std::string> read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::Error(fmt::format("{}: no such file", path));
  if (fs::is_directory(path, ec)) return Status::Error(fmt::format("{}: is a directory, not an ONNX file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(fmt::format("{}: cannot open for reading", path));
  if (!fs::is_regular_file(path, ec)) {  // a pipe: no size to read up front
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Read into a string of the file's size: a stringstream grows by doubling and str()
  // copies, 2-3x a large model's size at once.
  uintmax_t size = fs::file_size(path, ec);
  if (ec) return Status::Error(fmt::format("{}: cannot read its size", path));
  std::string bytes(static_cast<size_t>(size), '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size)))
    return Status::Error(fmt::format("{}: cannot read the file", path));
  return bytes;
}

namespace {


Result<int64_t> default_opset(const onnx::ModelProto& m, const std::string& path) {
  for (const auto& imp : m.opset_import()) {
    if (imp.domain().empty() || imp.domain() == "ai.onnx") {
      int64_t v = imp.version();
      if (v > kMaxOpset)
        return Status::Error(fmt::format("{}: opset {} is newer than {}, the newest this build supports", path, v, kMaxOpset));
      if (v < kMinOpset)
        return Status::Error(fmt::format("{}: opset {} is older than {}, the oldest supported", path, v, kMinOpset));
      return v;
    }
  }
  return Status::Error(fmt::format("{}: no opset import for the default ONNX domain", path));
}

void bind_dims(onnx::ModelProto& m, const LoadOptions& opt) {
  for (auto& in : *m.mutable_graph()->mutable_input()) {
    if (!in.type().has_tensor_type() || !in.type().tensor_type().has_shape()) continue;
    for (auto& d : *in.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim()) {
      if (d.has_dim_value()) continue;
      auto it = d.has_dim_param() ? opt.dims.find(d.dim_param()) : opt.dims.end();
      d.set_dim_value(it != opt.dims.end() ? it->second : 1);
    }
  }
}

// Resolves one external-data reference, refusing paths that leave the model's folder.
Status read_external(onnx::TensorProto& t, const fs::path& dir, const std::string& path) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : t.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = std::stoll(kv.value());
    else if (kv.key() == "length") length = std::stoll(kv.value());
  }
  fs::path rel(location);
  if (location.empty() || rel.is_absolute())
    return Status::Error(fmt::format("{}: tensor '{}': external data location '{}' must be a relative path inside the model's folder", path, t.name(), location));
  std::error_code ec;
  fs::path base = fs::weakly_canonical(dir, ec);
  fs::path target = fs::weakly_canonical(dir / rel, ec);
  auto [b, _] = std::mismatch(base.begin(), base.end(), target.begin(), target.end());
  if (ec || b != base.end())
    return Status::Error(fmt::format("{}: tensor '{}': external data path '{}' leaves the model's folder", path, t.name(), location));
  std::ifstream in(target, std::ios::binary);
  if (!in) return Status::Error(fmt::format("{}: tensor '{}': cannot open external data file '{}'", path, t.name(), location));
  in.seekg(0, std::ios::end);
  int64_t size = in.tellg();
  if (length < 0) length = size - offset;
  if (offset < 0 || offset + length > size)
    return Status::Error(fmt::format("{}: tensor '{}': external data range [{}, {}) is outside '{}' ({} bytes)", path, t.name(), offset, offset + length, location, size));
  std::string bytes(static_cast<size_t>(length), '\0');
  in.seekg(offset);
  in.read(bytes.data(), length);
  t.set_raw_data(std::move(bytes));
  t.clear_external_data();
  t.set_data_location(onnx::TensorProto::DEFAULT);
  return Status::Ok();
}

Status load_external_data(onnx::ModelProto& m, const std::string& path) {
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) continue;
    if (Status s = read_external(t, dir, path); !s.ok()) return s;
  }
  return Status::Ok();
}

TensorType to_tensor_type(const onnx::TypeProto& tp) {
  TensorType t;
  if (tp.has_sequence_type() || tp.has_optional_type()) {
    t.kind = tp.has_sequence_type() ? TensorType::Kind::kSequence : TensorType::Kind::kOptional;
    const onnx::TypeProto& inner = tp.has_sequence_type() ? tp.sequence_type().elem_type() : tp.optional_type().elem_type();
    if (inner.has_tensor_type()) t.elem_type = inner.tensor_type().elem_type();
    if (inner.has_sequence_type() && inner.sequence_type().elem_type().has_tensor_type())
      t.elem_type = inner.sequence_type().elem_type().tensor_type().elem_type();
    return t;
  }
  if (!tp.has_tensor_type()) return t;
  t.elem_type = tp.tensor_type().elem_type();
  if (tp.tensor_type().has_shape()) {
    std::vector<int64_t> dims;
    for (const auto& d : tp.tensor_type().shape().dim()) dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    t.dims = dims;
  }
  return t;
}

TensorType type_of_proto(const onnx::TensorProto& t) {
  return TensorType{t.data_type(), std::vector<int64_t>(t.dims().begin(), t.dims().end())};
}

Node to_node(const onnx::NodeProto& np, int index) {
  Node n;
  n.op_type = np.op_type();
  n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
  n.name = np.name().empty() ? fmt::format("{}_{}", np.op_type(), index) : np.name();
  n.inputs.assign(np.input().begin(), np.input().end());
  n.outputs.assign(np.output().begin(), np.output().end());
  for (const auto& a : np.attribute()) n.attributes[a.name()] = a;
  n.index = index;
  return n;
}

// The tensors a node's graph attributes read from enclosing scopes (ONNX scoping: a
// subgraph may read any outer tensor by name).
std::vector<std::string> proto_outer_refs(const onnx::GraphProto& gp);

std::vector<std::string> proto_implicit_inputs(const onnx::NodeProto& n) {
  std::vector<std::string> refs;
  for (const auto& a : n.attribute()) {
    if (a.has_g()) for (auto& r : proto_outer_refs(a.g())) refs.push_back(r);
    for (const auto& g : a.graphs()) for (auto& r : proto_outer_refs(g)) refs.push_back(r);
  }
  return refs;
}

std::vector<std::string> proto_outer_refs(const onnx::GraphProto& gp) {
  std::unordered_set<std::string> defined, seen;
  for (const auto& i : gp.input()) defined.insert(i.name());
  for (const auto& t : gp.initializer()) defined.insert(t.name());
  for (const auto& n : gp.node()) defined.insert(n.output().begin(), n.output().end());
  std::vector<std::string> refs;
  auto use = [&](const std::string& name) {
    if (!name.empty() && !defined.count(name) && seen.insert(name).second) refs.push_back(name);
  };
  for (const auto& n : gp.node()) {
    for (const auto& in : n.input()) use(in);
    for (const auto& r : proto_implicit_inputs(n)) use(r);
  }
  for (const auto& o : gp.output()) use(o.name());
  return refs;
}

// Kahn's algorithm; also rejects references to tensors nothing defines. A node
// depends on its inputs and on the outer tensors its subgraphs read (`implicit`);
// `outer` names tensors an enclosing scope defines. Returns the original indices
// of the nodes in sorted order.
Result<std::vector<int>> sort_nodes(Graph& g, const std::string& path, const std::vector<std::vector<std::string>>& implicit,
                                    const std::unordered_set<std::string>& outer) {
  std::unordered_map<std::string, int> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& o : g.nodes[i].outputs) {
      if (o.empty()) continue;
      if (producer.count(o) || g.initializers.count(o))
        return Status::Error(fmt::format("{}: tensor '{}' is defined twice (node '{}')", path, o, g.nodes[i].name));
      producer[o] = static_cast<int>(i);
    }
  std::unordered_set<std::string> graph_inputs(g.inputs.begin(), g.inputs.end());
  graph_inputs.insert(outer.begin(), outer.end());
  std::vector<int> pending(g.nodes.size(), 0);
  std::vector<std::vector<int>> users(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    std::vector<std::string> reads = g.nodes[i].inputs;
    reads.insert(reads.end(), implicit[i].begin(), implicit[i].end());
    std::unordered_set<std::string> counted;
    for (const auto& in : reads) {
      if (in.empty() || g.initializers.count(in) || graph_inputs.count(in) || !counted.insert(in).second) continue;
      auto it = producer.find(in);
      if (it == producer.end())
        return Status::Error(fmt::format("{}: node '{}' ({}) reads tensor '{}', which no node, input or initializer defines", path, g.nodes[i].name, g.nodes[i].op_type, in));
      ++pending[i];
      users[it->second].push_back(static_cast<int>(i));
    }
  }
  std::queue<int> ready;
  for (size_t i = 0; i < g.nodes.size(); ++i) if (pending[i] == 0) ready.push(static_cast<int>(i));
  std::vector<int> sorted;
  while (!ready.empty()) {
    int i = ready.front(); ready.pop();
    sorted.push_back(i);
    for (int u : users[i]) if (--pending[u] == 0) ready.push(u);
  }
  if (sorted.size() != g.nodes.size()) {
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (pending[i] > 0)
        return Status::Error(fmt::format("{}: the graph has a cycle through node '{}' ({})", path, g.nodes[i].name, g.nodes[i].op_type));
  }
  for (const auto& o : g.outputs)
    if (!producer.count(o) && !g.initializers.count(o) && !graph_inputs.count(o))
      return Status::Error(fmt::format("{}: graph output '{}' is not defined by any node, input or initializer", path, o));
  return sorted;
}

// Validates structure with our own messages, then puts the proto's nodes in
// topological order (the checker insists on it; exporters do not always comply),
// subgraphs first, each with the outer tensors it reads taken as defined.
Status sort_graph_proto(onnx::GraphProto& gp, const std::string& path, const std::unordered_set<std::string>& outer) {
  for (auto& n : *gp.mutable_node())
    for (auto& a : *n.mutable_attribute())
      if (a.has_g()) {
        auto refs = proto_outer_refs(a.g());
        if (Status s = sort_graph_proto(*a.mutable_g(), path, {refs.begin(), refs.end()}); !s.ok()) return s;
      }
  Graph g;
  for (const auto& t : gp.initializer()) g.initializers[t.name()] = onnx::TensorProto();
  for (const auto& vi : gp.input()) if (!g.initializers.count(vi.name())) g.inputs.push_back(vi.name());
  for (const auto& vi : gp.output()) g.outputs.push_back(vi.name());
  std::vector<std::vector<std::string>> implicit;
  for (int i = 0; i < gp.node_size(); ++i) {
    g.nodes.push_back(to_node(gp.node(i), i));
    implicit.push_back(proto_implicit_inputs(gp.node(i)));
  }
  auto order = sort_nodes(g, path, implicit, outer);
  if (!order.ok()) return order.status();
  google::protobuf::RepeatedPtrField<onnx::NodeProto> sorted;
  for (int i : *order) *sorted.Add() = gp.node(i);
  gp.mutable_node()->Swap(&sorted);
  return Status::Ok();
}

// Checked in a stable order (inputs, weights, then node outputs) so the error names
// the earliest offending tensor.
Status check_sizes(const Graph& g, const LoadOptions& opt, const std::string& path) {
  std::vector<std::string> names = g.inputs;
  for (const auto& [name, t] : g.initializers) names.push_back(name);
  std::sort(names.begin() + static_cast<long>(g.inputs.size()), names.end());
  for (const Node& n : g.nodes) names.insert(names.end(), n.outputs.begin(), n.outputs.end());
  for (const auto& name : names) {
    const TensorType* t = g.type_of(name);
    if (!t) continue;
    // A dimension past 2^48 is refused even beside a 0: LibTorch computes the storage
    // size over every dimension and throws on the overflow (found by fuzz_loader).
    if (t->dims)
      for (int64_t d : *t->dims)
        if (d > (int64_t{1} << 48))
          return Status::Error(fmt::format("{}: tensor '{}' has a dimension of {}, over 2^48", path, name, d));
    auto n = t->element_count();
    // A type without a fixed size (strings) counts a byte an element: a declared string
    // shape input of 2^40 elements took libonnx's Expand inference past 4 GB too.
    int64_t es = std::max<int64_t>(element_size(t->elem_type), 1);
    if (!n) continue;
    if (*n > opt.max_tensor_bytes / es) {
      int64_t bytes = *n > std::numeric_limits<int64_t>::max() / es ? std::numeric_limits<int64_t>::max() : *n * es;
      return Status::Error(fmt::format("{}: tensor '{}' would hold {} elements ({} bytes), over the cap of {} bytes per tensor", path, name, *n, bytes, opt.max_tensor_bytes));
    }
  }
  return Status::Ok();
}

// The declared graph inputs, before shape inference: libonnx 1.12 builds Expand's
// output shape with one dimension per element of a shape input, so a declared
// 2^40-element shape input took it to 16 GB (found by fuzz_loader). A tensor over the
// cap is refused after inference anyway.
Status check_declared_inputs(const onnx::ModelProto& m, const LoadOptions& opt, const std::string& path) {
  Graph declared;
  for (const auto& i : m.graph().input()) {
    const auto& tt = i.type().tensor_type();
    if (!tt.has_shape()) continue;
    std::vector<int64_t> dims;
    for (const auto& d : tt.shape().dim()) dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    declared.inputs.push_back(i.name());
    declared.types[i.name()] = TensorType{tt.elem_type(), dims};
  }
  return check_sizes(declared, opt, path);
}

// One graph of the model (the main graph or a subgraph, recursively): its
// initializers, declared and inferred types, nodes with Constants folded.
Status build_graph(const onnx::GraphProto& gp, Graph& g, const std::string& path) {
  for (const auto& t : gp.initializer()) {
    g.initializers[t.name()] = t;
    g.types[t.name()] = type_of_proto(t);
  }
  for (const auto& vi : gp.input()) {
    if (!g.initializers.count(vi.name())) g.inputs.push_back(vi.name());
    if (!g.types.count(vi.name())) g.types[vi.name()] = to_tensor_type(vi.type());
  }
  for (const auto& vi : gp.value_info()) g.types[vi.name()] = to_tensor_type(vi.type());
  for (const auto& vi : gp.output()) {
    g.outputs.push_back(vi.name());
    if (vi.type().value_case() != onnx::TypeProto::VALUE_NOT_SET) g.types[vi.name()] = to_tensor_type(vi.type());
  }
  for (int i = 0; i < gp.node_size(); ++i) {
    Node n = to_node(gp.node(i), i);
    if (n.op_type == "Constant" && n.domain.empty() && n.outputs.size() == 1) {
      try {
        onnx::TensorProto t = constant_tensor(n);
        g.types[n.outputs[0]] = type_of_proto(t);
        g.initializers[n.outputs[0]] = std::move(t);
        g.folded_constants.insert(n.outputs[0]);
        continue;
      } catch (const ModelError& e) {
        return Status::Error(fmt::format("{}: {}", path, e.what()));
      }
    }
    for (const auto& a : gp.node(i).attribute()) {
      if (!a.has_g()) continue;
      auto sub = std::make_shared<Graph>();
      sub->model_path = path;
      sub->opset = g.opset;
      sub->outer_refs = proto_outer_refs(a.g());
      if (Status s = build_graph(a.g(), *sub, path); !s.ok()) return s;
      n.subgraphs[a.name()] = std::move(sub);
    }
    g.nodes.push_back(std::move(n));
  }
  g.index_producers();
  return Status::Ok();
}

// The node's `axis`: its attribute, else the schema's default; none when the op has
// no integer axis.
std::optional<int64_t> axis_of(const onnx::NodeProto& n, int64_t opset) {
  for (const auto& a : n.attribute())
    if (a.name() == "axis") return a.type() == onnx::AttributeProto::INT ? std::optional<int64_t>(a.i()) : std::nullopt;
  const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(opset), "");
  if (!schema) return std::nullopt;
  auto it = schema->attributes().find("axis");
  if (it == schema->attributes().end() || !it->second.default_value.has_i()) return std::nullopt;
  return it->second.default_value.i();
}

// An axis (given or by default) outside the rank of the input it indexes, where that
// rank is declared: [-r, r - 1]; [-r, r] for Flatten and the softmaxes before opset 13
// (which flatten at the axis); OneHot's (of the output) [-r - 1, r]. Quantization's
// axis is ignored for per-tensor scales, so it is not checked.
Status check_axis(const onnx::NodeProto& n, int64_t opset, const std::map<std::string, int>& ranks,
                  const std::string& path) {
  if (!(n.domain().empty() || n.domain() == "ai.onnx") || n.input_size() == 0) return Status::Ok();
  const std::string& op = n.op_type();
  if (op == "QuantizeLinear" || op == "DequantizeLinear") return Status::Ok();
  auto x = ranks.find(n.input(0));
  if (x == ranks.end()) return Status::Ok();
  std::optional<int64_t> axis = axis_of(n, opset);
  if (!axis) return Status::Ok();
  int64_t r = x->second, lo = -r, hi = r - 1;
  bool flattens = op == "Flatten" || (opset < 13 && (op == "Softmax" || op == "LogSoftmax" || op == "Hardmax"));
  if (flattens) hi = r;
  if (op == "OneHot") lo = -r - 1, hi = r;
  if (*axis < lo || *axis > hi)
    return Status::Error(fmt::format("{}: invalid ONNX model: {} '{}': axis {} is outside [{}, {}] for its input of "
                                     "rank {}", path, n.op_type(), n.name(), *axis, lo, hi, r));
  return Status::Ok();
}

// Strides and dilations of a conv or pool must be positive: libonnx's
// convPoolShapeInference divides by them (a stride of 0: an FPE, found by fuzz_loader).
Status check_window_steps(const onnx::NodeProto& n, const std::string& path) {
  static const std::set<std::string> kWindowed = {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "AveragePool",
                                                  "MaxPool", "LpPool", "MaxUnpool"};
  if (!(n.domain().empty() || n.domain() == "ai.onnx") || !kWindowed.count(n.op_type())) return Status::Ok();
  for (const auto& a : n.attribute()) {
    if (a.name() != "strides" && a.name() != "dilations") continue;
    for (int64_t v : a.ints())
      if (v <= 0)
        return Status::Error(fmt::format("{}: invalid ONNX model: {} '{}': {} must be positive, got {}", path,
                                         n.op_type(), n.name(), a.name(), v));
  }
  return Status::Ok();
}

// libonnx 1.12's shape inference indexes dimensions without checking them: a conv's
// weight of the wrong rank, an axis outside the input's rank (SEGVs on
// a rank-0 weight and on LayerNormalization's axis -536870913; found by fuzz_loader).
// Where the ranks are declared, what the spec requires is checked first.
Status check_ranks(const onnx::ModelProto& m, int64_t opset, const std::string& path) {
  // Every declaration of a tensor must agree on its rank: inference merges them, and
  // a graph output named like an input with another rank crashed it too.
  std::map<std::string, int> ranks;
  auto declare = [&](const std::string& name, int rank) -> Status {
    auto [it, fresh] = ranks.emplace(name, rank);
    if (fresh || it->second == rank) return Status::Ok();
    return Status::Error(fmt::format("{}: invalid ONNX model: tensor '{}' is declared with ranks {} and {}", path, name,
                                     it->second, rank));
  };
  for (const auto* list : {&m.graph().input(), &m.graph().output(), &m.graph().value_info()})
    for (const auto& v : *list) {
      if (!v.type().tensor_type().has_shape()) continue;
      if (Status s = declare(v.name(), v.type().tensor_type().shape().dim_size()); !s.ok()) return s;
      // A negative dimension (GatherND's inference counted indices by one; found by
      // fuzz_loader, a SEGV).
      for (const auto& d : v.type().tensor_type().shape().dim())
        if (d.has_dim_value() && d.dim_value() < 0)
          return Status::Error(fmt::format("{}: invalid ONNX model: tensor '{}' declares dimension {}", path, v.name(),
                                           d.dim_value()));
    }
  for (const auto& t : m.graph().initializer())
    if (Status s = declare(t.name(), t.dims_size()); !s.ok()) return s;
  for (const auto& n : m.graph().node()) {
    if (Status s = check_axis(n, opset, ranks, path); !s.ok()) return s;
    if (Status s = check_window_steps(n, path); !s.ok()) return s;
    // Every op whose inference is libonnx's convPoolShapeInference with a weight
    // (ConvInteger's mismatched ranks: a SEGV, found by fuzz_loader).
    static const std::map<std::string, int> kWeightInput = {
        {"Conv", 1}, {"ConvTranspose", 1}, {"ConvInteger", 1}, {"QLinearConv", 3}};
    auto wi = kWeightInput.find(n.op_type());
    if (wi == kWeightInput.end() || n.input_size() <= wi->second) continue;
    auto x = ranks.find(n.input(0)), w = ranks.find(n.input(wi->second));
    if (x == ranks.end() || w == ranks.end()) continue;
    if (x->second != w->second || x->second < 3)
      return Status::Error(fmt::format("{}: invalid ONNX model: {} '{}': input of rank {} and weight of rank {} (equal, "
                                       "3 or more)", path, n.op_type(), n.name(), x->second, w->second));
  }
  return Status::Ok();
}

}  // namespace

Result<Graph> load_model(const std::string& path, const LoadOptions& options) {
  auto bytes = read_file(path);
  if (!bytes.ok()) return bytes.status();
  onnx::ModelProto m;
  if (bytes->empty() || !m.ParseFromString(*bytes) || !m.has_graph())
    return Status::Error(fmt::format("{}: not a valid ONNX model (protobuf parse failed)", path));
  std::string().swap(*bytes);  // the parsed message holds everything now
  return load_model_proto(std::move(m), path, options);
}

Status apply_precision(onnx::ModelProto& m, Precision p, const std::string& path) {
  if (Status s = sort_graph_proto(*m.mutable_graph(), path, {}); !s.ok()) return s;
  return convert_precision(m, p, path);
}

Result<Graph> load_model_proto(onnx::ModelProto m, const std::string& path, const LoadOptions& options) {
  auto opset = default_opset(m, path);
  if (!opset.ok()) return opset.status();
  if (Status s = load_external_data(m, path); !s.ok()) return s;
  bind_dims(m, options);
  if (Status s = apply_precision(m, options.precision, path); !s.ok()) return s;
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    return Status::Error(fmt::format("{}: invalid ONNX model: {}", path, first_line(e.what())));
  }
  if (Status s = check_ranks(m, *opset, path); !s.ok()) return s;
  if (Status s = check_declared_inputs(m, options, path); !s.ok()) return s;
  try {
    onnx::shape_inference::InferShapes(m);
  } catch (const std::exception&) {
    // Shapes are advisory (size checks, the analyzer's first guess); execution
    // re-derives them, so a model whose inference fails still loads.
  }
  Graph g;
  g.model_path = path;
  g.precision = options.precision;
  g.opset = *opset;
  if (Status s = build_graph(m.graph(), g, path); !s.ok()) return s;
  if (Status s = check_sizes(g, options, path); !s.ok()) return s;
  return g;
}

}  // namespace nanguard
