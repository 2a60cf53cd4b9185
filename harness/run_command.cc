// `nanguard run`: executes a model for real (given or random inputs) and reports
// its outputs and every node whose output holds NaN or INF. --save-failing DIR keeps
// the first failing samples' inputs as reproducers (harness/failing_samples.h).
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/failing_samples.h"
#include "oracle/nonfinite.h"
#include "ops/tensor_proto.h"

namespace nanguard {
namespace {

using json = nlohmann::json;

struct RunArgs {
  CommonArgs common;
  std::vector<std::string> inputs;  // NAME=FILE.pb
  uint64_t seed = 0;
  int64_t samples = 1;
  bool float64 = false;
  std::string save_outputs;
  std::string save_failing;  // DIR: reproducers of the first failing samples
  int64_t save_max = 5;
};

std::string shape_str(const at::Tensor& t) {
  std::string s = std::string(c10::toString(t.scalar_type())) + "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

json tensor_summary(const std::string& name, const at::Tensor& t) {
  json j{{"name", name}, {"dtype", c10::toString(t.scalar_type())}, {"shape", t.sizes().vec()}};
  NonFiniteRecord r = count_nonfinite(t);
  j["nan"] = r.nan_count;
  j["inf"] = r.inf_count;
  if (t.numel() > 0 && t.scalar_type() != at::kBool) {
    at::Tensor d = t.detach().to(at::kCPU).to(at::kDouble);
    at::Tensor finite = d.masked_select(d.isfinite());
    if (finite.numel() > 0) {
      j["min"] = finite.min().item<double>();
      j["max"] = finite.max().item<double>();
      j["mean"] = finite.mean().item<double>();
    }
  }
  return j;
}

// A sequence or empty optional among the graph outputs: what it holds, no statistics.
json value_summary(const std::string& name, const ExecResult& exec) {
  auto it = exec.others.find(name);
  return {{"name", name}, {"value", it == exec.others.end() ? "missing" : it->second.describe()}};
}

std::string text_summary(const json& t) {
  if (t.contains("value")) return fmt::format("  {}  {}\n", t["name"].get<std::string>(), t["value"].get<std::string>());
  std::string s = fmt::format("  {}  {}[", t["name"].get<std::string>(), t["dtype"].get<std::string>());
  bool first = true;
  for (auto d : t["shape"]) { s += (first ? "" : ",") + std::to_string(d.get<int64_t>()); first = false; }
  s += "]";
  if (t.contains("min"))
    s += fmt::format("  min {:.6g}  max {:.6g}  mean {:.6g}", t["min"].get<double>(), t["max"].get<double>(), t["mean"].get<double>());
  if (t["nan"].get<int64_t>() || t["inf"].get<int64_t>())
    s += fmt::format("  NaN {}  INF {}", t["nan"].get<int64_t>(), t["inf"].get<int64_t>());
  return s + "\n";
}

struct NodeTally {
  NonFiniteRecord first_record;
  int64_t samples = 0;
  int64_t first_sample = -1;
};

Result<TensorMap> given_inputs(const RunArgs& a) {
  TensorMap given;
  for (const auto& spec : a.inputs) {
    auto kv = parse_assignment(spec, "--input");
    if (!kv.ok()) return kv.status();
    auto t = read_tensor_file(kv->second);
    if (!t.ok()) return t.status();
    given[kv->first] = *t;
  }
  return given;
}

Status save_outputs(const Graph& g, const ExecResult& exec, const std::string& dir) {
  // Checked before the folder is made: a sequence output leaves no half-written folder.
  for (size_t i = 0; i < g.outputs.size(); ++i)
    if (!exec.outputs[i].defined())
      return Status::Error(fmt::format("output '{}' is a {}; --save-outputs writes tensors only", g.outputs[i],
                                       exec.others.count(g.outputs[i]) ? exec.others.at(g.outputs[i]).describe() : "missing value"));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error(fmt::format("{}: cannot create folder: {}", dir, ec.message()));
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    const TensorType* type = g.type_of(g.outputs[i]);
    int32_t elem = type && type->elem_type ? type->elem_type : 0;
    at::Tensor t = exec.outputs[i];
    if (at::isFloatingType(t.scalar_type()) && elem == onnx::TensorProto::FLOAT) t = t.to(at::kFloat);
    Status s = write_tensor_file(t, g.outputs[i], fmt::format("{}/output_{}.pb", dir, i), elem);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// A given tensor must have the input's declared shape (symbolic dimensions as bound):
// otherwise the run fails deep inside an op with ATen's message.
Status check_input_shape(const Graph& g, const std::string& name, const at::Tensor& t) {
  const TensorType* type = g.type_of(name);
  if (!type || !type->dims) return Status::Ok();
  const std::vector<int64_t>& dims = *type->dims;
  bool same = static_cast<int64_t>(dims.size()) == t.dim();
  for (size_t d = 0; same && d < dims.size(); ++d) same = dims[d] < 0 || dims[d] == t.size(d);
  if (same) return Status::Ok();
  return Status::Error(fmt::format("{}: --input {} has shape [{}], but the model's input '{}' is [{}]", g.model_path, name,
                                   fmt::join(t.sizes(), ", "), name, fmt::join(dims, ", ")));
}

int run(const RunArgs& a) {
  auto fail = usage_error;
  auto device = parse_device(a.common.device);
  if (!device.ok()) return fail(device.status());
  auto m = load_with_ranges(a.common);
  if (!m.ok()) return fail(m.status());
  const Graph* graph = &m->graph;
  const RangeMap* ranges = &m->ranges;
  auto given = given_inputs(a);
  if (!given.ok()) return fail(given.status());
  for (const auto& [name, t] : *given)
    if (std::find(graph->inputs.begin(), graph->inputs.end(), name) == graph->inputs.end())
      return fail(Status::Error(fmt::format("{}: --input names '{}', which is not an input of the model", graph->model_path, name)));
  for (const auto& [name, t] : *given)
    if (Status s = check_input_shape(*graph, name, t); !s.ok()) return fail(s);
  ExecOptions eopt;
  eopt.device = *device;
  eopt.float_type = a.float64 ? at::kDouble : at::kFloat;
  eopt.seed = a.seed;
  eopt.keep_intermediates = false;
  auto executor = Executor::create(*graph, eopt);
  if (!executor.ok()) return fail(executor.status());
  std::unique_ptr<FailingSamples> saver;
  if (!a.save_failing.empty()) {
    if (a.float64) return fail(Status::Error("--save-failing: reproducers replay in float32; drop --float64"));
    std::string note = fmt::format(
        "Saved by `nanguard run --samples {} --seed {} --save-failing`: the inputs{} are drawn uniformly within "
        "their ranges with seed {} + the run's index (the number that starts this folder's name).",
        a.samples, a.seed, given->empty() ? "" : " not given with --input", a.seed);
    auto s = FailingSamples::open(a.save_failing, a.save_max, note);
    if (!s.ok()) return fail(s.status());
    saver = std::move(*s);
  }

  std::map<int, NodeTally> tallies;  // by node index: topological order
  json outputs = json::array();
  json inputs = json::array();
  int64_t failing_samples = 0;
  for (int64_t s = 0; s < a.samples; ++s) {
    auto feeds = random_inputs(*graph, *ranges, a.seed + static_cast<uint64_t>(s), *given);
    if (!feeds.ok()) return fail(feeds.status());
    auto run = run_with_oracle(*executor, *feeds);
    if (!run.ok()) return fail(run.status());
    if (run->first()) ++failing_samples;  // a NaN/INF born at a node, not a -inf mask carried along
    if (saver)
      if (Status st = saver->offer(*graph, *feeds, *run, s, a.common.device); !st.ok()) return fail(st);
    for (const auto& r : run->nonfinite) {
      const Node* at = r.born ? graph->find_node(r.node) : nullptr;
      if (!at) continue;  // a node inside a subgraph: tallied only through its If/Loop/Scan outputs
      NodeTally& t = tallies[at->index];
      if (t.samples++ == 0) { t.first_record = r; t.first_sample = s; }
    }
    if (s > 0) continue;
    for (const auto& name : graph->inputs) inputs.push_back(tensor_summary(name, feeds->at(name)));
    for (size_t i = 0; i < graph->outputs.size(); ++i)
      outputs.push_back(run->exec.outputs[i].defined() ? tensor_summary(graph->outputs[i], run->exec.outputs[i])
                                                       : value_summary(graph->outputs[i], run->exec));
    if (!a.save_outputs.empty())
      if (Status st = save_outputs(*graph, run->exec, a.save_outputs); !st.ok()) return fail(st);
  }

  json saved = json::array();
  if (saver) {
    if (Status st = saver->publish(); !st.ok()) return fail(st);
    for (const auto& v : saver->saved()) saved.push_back({{"sample", v.sample}, {"node", v.node}, {"reproducer", v.folder}});
  }
  json nodes = json::array();
  for (const auto& [idx, t] : tallies)
    nodes.push_back({{"node", t.first_record.node}, {"op", t.first_record.op_type}, {"tensor", t.first_record.tensor},
                     {"nan", t.first_record.nan_count}, {"inf", t.first_record.inf_count},
                     {"numel", t.first_record.numel}, {"samples", t.samples}, {"first_sample", t.first_sample}});
  json report{{"model", graph->model_path}, {"opset", graph->opset}, {"device", a.common.device},
              {"dtype", a.float64 ? "float64" : "float32"}, {"seed", a.seed}, {"samples", a.samples},
              {"failing_samples", failing_samples}, {"inputs", inputs}, {"outputs", outputs},
              {"nonfinite_nodes", nodes}, {"first_nonfinite", nodes.empty() ? json(nullptr) : nodes[0]["node"]}};
  if (saver) {
    report["saved"] = saved;
    report["not_saved"] = saver->skipped();
  }
  std::string text;
  if (a.common.format == "json") {
    text = report.dump(2) + "\n";
  } else {
    text = fmt::format("model: {} (opset {}, {} nodes, {}, {})\n", graph->model_path, graph->opset,
                       graph->nodes.size(), a.common.device, a.float64 ? "float64" : "float32");
    text += "inputs:\n";
    for (const auto& t : inputs) text += text_summary(t);
    text += "outputs:\n";
    for (const auto& t : outputs) text += text_summary(t);
    if (nodes.empty()) {
      text += fmt::format("NaN/INF: none in {} run{}\n", a.samples, a.samples > 1 ? "s" : "");
    } else {
      text += fmt::format("NaN/INF at {} node{} ({} of {} runs); first: '{}'\n", nodes.size(),
                          nodes.size() > 1 ? "s" : "", failing_samples, a.samples, nodes[0]["node"].get<std::string>());
      for (const auto& n : nodes)
        text += fmt::format("  {} ({}) -> '{}': {} NaN, {} INF of {} values; in {} run(s), first run {}\n",
                            n["node"].get<std::string>(), n["op"].get<std::string>(), n["tensor"].get<std::string>(),
                            n["nan"].get<int64_t>(), n["inf"].get<int64_t>(), n["numel"].get<int64_t>(),
                            n["samples"].get<int64_t>(), n["first_sample"].get<int64_t>());
    }
    if (saver) {
      for (const auto& v : saver->saved())
        text += fmt::format("saved: run {} (NaN/INF from '{}') -> {}\n", v.sample, v.node, v.folder);
      for (const auto& why : saver->skipped()) text += why + "\n";
      if (!nodes.empty() && saver->saved().empty()) text += "saved: nothing\n";
    }
  }
  if (Status s = emit(a.common, text); !s.ok()) return fail(s);
  return nodes.empty() ? 0 : 1;
}

}  // namespace

CommandFn add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "run a model for real and locate NaN/INF");
  add_model_flags(*cmd, args->common);
  add_range_flags(*cmd, args->common);
  add_output_flags(*cmd, args->common);
  cmd->add_option("--input", args->inputs, "input tensor from a TensorProto file: NAME=FILE.pb (repeatable)");
  cmd->add_option("--seed", args->seed, "seed of the random inputs (default 0)");
  cmd->add_option("--samples", args->samples, "number of random runs (seeds SEED, SEED+1, ...)")->check(CLI::PositiveNumber);
  cmd->add_flag("--float64", args->float64, "run in float64 instead of float32");
  cmd->add_option("--save-outputs", args->save_outputs, "write the first run's outputs as DIR/output_N.pb");
  CLI::Option* save = cmd->add_option(
      "--save-failing", args->save_failing,
      "write the inputs of the first failing runs as reproducers DIR/NN-node-nan|inf (NN: the run's index; "
      "`nanguard replay` reruns them); DIR must be new or empty, and is written whole at the end");
  cmd->add_option("--save-max", args->save_max, "with --save-failing: at most N reproducers (default 5)")
      ->check(CLI::PositiveNumber)
      ->needs(save);
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
