#include "harness/reproducer.h"

#include <cctype>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "model/onnx_loader.h"
#include "oracle/input_source.h"
#include "ops/tensor_proto.h"
#include "solver/confirm.h"

namespace nanguard {

ReproducerSpec reproducer_spec(const Graph& g, const TriggerOutcome& o) {
  ReproducerSpec spec{o.finding, o.target ? o.target->operand : 0, {}, o.devices, o.system.strategy, g.model_path, ""};
  for (const auto& [name, t] : o.system.point) {
    const TensorType* type = g.type_of(name);
    spec.feeds[name] = type && type->elem_type == onnx::TensorProto::FLOAT ? t.to(at::kFloat) : t;
  }
  return spec;
}

std::string reproducer_dir_name(size_t index, const Finding& f) {
  std::string s;
  for (char c : f.node) s += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_';
  while (!s.empty() && (s.front() == '_' || s.front() == '.')) s.erase(s.begin());
  return fmt::format("{:02}-{}-{}", index, s.substr(0, 80), f.hazard);
}
namespace {

namespace fs = std::filesystem;

Result<onnx::ModelProto> read_proto(const std::string& path) {
  auto bytes = read_file(path);
  if (!bytes.ok()) return bytes.status();
  onnx::ModelProto m;
  if (!m.ParseFromString(*bytes)) return Status::Error(fmt::format("{}: not a valid ONNX model", path));
  return m;
}

// Witness values for free weights; every other initializer inline (external data
// already read by the loader), so the directory is self-contained.
void bake_weights(onnx::GraphProto& g, const Graph& graph, const TensorMap& feeds) {
  for (auto& init : *g.mutable_initializer()) {
    std::string name = init.name();
    auto f = feeds.find(name);
    if (f != feeds.end()) init = tensor_to_proto(f->second.to(at::kCPU), name, init.data_type());
    else if (graph.initializers.count(name)) init = graph.initializers.at(name);
    init.set_name(name);
    init.clear_external_data();
    init.clear_data_location();
  }
}

void fix_input_shapes(onnx::GraphProto& g, const TensorMap& feeds) {
  for (auto& in : *g.mutable_input()) {
    auto f = feeds.find(in.name());
    if (f == feeds.end() || !in.type().has_tensor_type()) continue;
    auto* shape = in.mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->clear_dim();
    for (int64_t d : f->second.sizes()) shape->add_dim()->set_dim_value(d);
  }
}

void add_node_outputs(onnx::GraphProto& g, const Graph& graph, const Node& node) {
  for (const auto& out : node.outputs) {
    if (out.empty() || std::find(graph.outputs.begin(), graph.outputs.end(), out) != graph.outputs.end()) continue;
    auto* vi = g.add_output();
    vi->set_name(out);
    const TensorType* type = graph.type_of(out);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type ? type->elem_type : onnx::TensorProto::FLOAT);
    if (type && type->dims) {
      auto* shape = tt->mutable_shape();
      for (int64_t d : *type->dims)
        if (d >= 0) shape->add_dim()->set_dim_value(d);
        else shape->add_dim();
    }
  }
}

void set_meta(onnx::ModelProto& m, const std::string& key, const std::string& value) {
  auto* p = m.add_metadata_props();
  p->set_key("nanguard." + key);
  p->set_value(value);
}

Status write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  if (!out || !(out << text)) return Status::Error(fmt::format("{}: cannot write", path));
  return Status::Ok();
}

Status write_model(const onnx::ModelProto& m, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out || !m.SerializeToOstream(&out)) return Status::Error(fmt::format("{}: cannot write", path));
  return Status::Ok();
}

// The tensor a runtime shows for the faulty node: its first output.
std::string faulty_output(const Graph& graph, const Finding& f) {
  const Node* n = graph.find_node(f.node);
  return n && !n->outputs.empty() ? n->outputs[0] : f.node;
}

std::string readme(const ReproducerSpec& s, const std::string& dir, const std::string& output) {
  const Finding& f = s.finding;
  std::string what = f.kind == HazardKind::kGradient ? "a NaN/INF gradient (the forward values stay finite)"
                     : f.kind == HazardKind::kCrash  ? "a crash of the run"
                                                     : "NaN/INF in its output";
  return fmt::format(
      "# nanguard reproducer: {} at `{}`\n\n"
      "Node `{}` ({}) gives {} on these inputs: hazard `{}` ({}), kind `{}`.\n"
      "Found by nanguard's `{}` strategy in a search of `{}`; reproduced on: {}.\n\n"
      "- `model.onnx`: the model with the witness's weights baked in and the node's output added as a graph output.\n"
      "- `test_data_set_0/input_N.pb`: the inputs (ONNX TensorProto, in the graph's input order).\n"
      "- `test_data_set_0/output_N.pb`: the float32 CPU outputs of that run, NaN/INF included.\n\n"
      "Replay, from the folder that holds this one: `nanguard replay {}` (add `--device cuda` for a GPU) exits 0 when\n"
      "the NaN/INF appears again at the node;\n"
      "or run model.onnx on the inputs with any ONNX runtime and look at output `{}` (node `{}`'s output).\n{}",
      f.hazard, f.node, f.node, f.op_type, what, f.hazard, f.condition, to_string(f.kind), s.strategy, s.model_path,
      s.devices.empty() ? "none" : fmt::format("{}", fmt::join(s.devices, ", ")), fs::path(dir).filename().string(), output, f.node,
      s.note.empty() ? "" : "\n" + s.note + "\n");
}

// Runs the written model on its inputs: it must reproduce the finding; its outputs
// (forward and gradient findings) become output_N.pb.
Status write_outputs_and_check(const std::string& tmp, const ReproducerSpec& spec) {
  auto header = read_reproducer_header(tmp);
  if (!header.ok()) return header.status();
  auto g = load_model(tmp + "/model.onnx");
  if (!g.ok()) return g.status();
  auto rep = read_reproducer(tmp, *g);
  if (!rep.ok()) return rep.status();
  auto c = confirm_witness(*g, rep->finding, rep->operand, rep->inputs, at::kCPU);
  if (!c.ok()) return c.status();
  if (!c->reproduced) return Status::Error(fmt::format("{}: the written reproducer does not reproduce: {}", spec.finding.node, c->detail));
  if (spec.finding.kind == HazardKind::kCrash) return Status::Ok();
  auto ex = Executor::create(*g);
  if (!ex.ok()) return ex.status();
  auto run = ex->run(rep->inputs);
  if (!run.ok()) return run.status();
  for (size_t i = 0; i < g->outputs.size(); ++i) {
    const TensorType* type = g->type_of(g->outputs[i]);
    Status s = write_tensor_file(run->outputs[i], g->outputs[i], fmt::format("{}/test_data_set_0/output_{}.pb", tmp, i),
                                 type ? type->elem_type : 0);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status write_into(const Graph& graph, const ReproducerSpec& spec, const std::string& tmp, const std::string& dir) {
  auto proto = read_proto(graph.model_path);
  if (!proto.ok()) return proto.status();
  const Node* node = graph.find_node(spec.finding.node);
  if (!node) return Status::Error(fmt::format("{}: no node '{}'", graph.model_path, spec.finding.node));
  onnx::ModelProto m = std::move(*proto);
  // The model as it ran (--precision): the reproducer replays without the flag.
  if (Status s = apply_precision(m, graph.precision, graph.model_path); !s.ok()) return s;
  bake_weights(*m.mutable_graph(), graph, spec.feeds);
  fix_input_shapes(*m.mutable_graph(), spec.feeds);
  add_node_outputs(*m.mutable_graph(), graph, *node);
  set_meta(m, "node", spec.finding.node);
  set_meta(m, "op", spec.finding.op_type);
  set_meta(m, "kind", to_string(spec.finding.kind));
  set_meta(m, "hazard", spec.finding.hazard);
  set_meta(m, "operand", std::to_string(spec.operand));
  fs::create_directories(tmp + "/test_data_set_0");
  if (Status s = write_model(m, tmp + "/model.onnx"); !s.ok()) return s;
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    const std::string& name = graph.inputs[i];
    if (!spec.feeds.count(name)) return Status::Error(fmt::format("reproducer: no value for input '{}'", name));
    const TensorType* type = graph.type_of(name);
    Status s = write_tensor_file(spec.feeds.at(name).to(at::kCPU), name, fmt::format("{}/test_data_set_0/input_{}.pb", tmp, i),
                                 type ? type->elem_type : 0);
    if (!s.ok()) return s;
  }
  if (Status s = write_text(tmp + "/README.md", readme(spec, dir, faulty_output(graph, spec.finding))); !s.ok()) return s;
  return write_outputs_and_check(tmp, spec);
}

Result<std::string> meta(const onnx::ModelProto& m, const std::string& key, const std::string& path) {
  for (const auto& p : m.metadata_props())
    if (p.key() == "nanguard." + key) return p.value();
  return Status::Error(fmt::format("{}: not a nanguard reproducer (no metadata '{}')", path, "nanguard." + key));
}

}  // namespace

Status write_reproducer(const Graph& graph, const ReproducerSpec& spec, const std::string& dir) {
  std::string tmp = dir + ".partial";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  Status s;
  try {
    s = write_into(graph, spec, tmp, dir);
  } catch (const std::exception& e) {
    s = Status::Error(fmt::format("{}: {}", dir, e.what()));
  }
  if (s.ok()) {
    fs::remove_all(dir, ec);
    fs::rename(tmp, dir, ec);
    if (ec) s = Status::Error(fmt::format("{}: cannot write: {}", dir, ec.message()));
  }
  if (!s.ok()) fs::remove_all(tmp, ec);
  return s;
}

Result<Reproducer> read_reproducer_header(const std::string& dir) {
  std::string path = dir + "/model.onnx";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::Error(fmt::format("{}: not a directory", dir));
  auto m = read_proto(path);
  if (!m.ok()) return m.status();
  Reproducer r;
  r.model_path = path;
  auto node = meta(*m, "node", path), op = meta(*m, "op", path), kind = meta(*m, "kind", path),
       hazard = meta(*m, "hazard", path), operand = meta(*m, "operand", path);
  for (const auto* v : {&node, &op, &kind, &hazard, &operand})
    if (!v->ok()) return v->status();
  r.finding.node = *node;
  r.finding.op_type = *op;
  r.finding.hazard = *hazard;
  r.finding.kind = *kind == "gradient" ? HazardKind::kGradient : *kind == "crash" ? HazardKind::kCrash : HazardKind::kForward;
  try {
    r.operand = std::stoi(*operand);
  } catch (const std::exception&) {
    return Status::Error(fmt::format("{}: bad nanguard.operand '{}'", path, *operand));
  }
  return r;
}

Result<Reproducer> read_reproducer(const std::string& dir, const Graph& graph) {
  auto r = read_reproducer_header(dir);
  if (!r.ok()) return r.status();
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    auto t = read_tensor_file(fmt::format("{}/test_data_set_0/input_{}.pb", dir, i));
    if (!t.ok()) return t.status();
    r->inputs[graph.inputs[i]] = *t;
  }
  if (!graph.find_node(r->finding.node))
    return Status::Error(fmt::format("{}: the reproducer names node '{}', which the model lacks", dir, r->finding.node));
  return r;
}

}  // namespace nanguard
