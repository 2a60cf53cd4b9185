// `nanguard fuzz-config MODEL [ranges] [--weights ...] [--baseline FILE] --out DIR`:
// writes the folder that configures the fuzz_model target for one model: the model,
// config.json (the byte layout of its inputs and free weights with their ranges, the
// analyzer's findings, the accepted baseline, the dictionary's values), model.dict
// (libFuzzer's dictionary) and seeds/ (the stored model, corners, uniform draws).
// The folder is written whole or not at all. Exit 0, or 2 on errors.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/core.h>

#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/fuzz/fuzz_config.h"
#include "harness/fuzz/seeds.h"
#include "model/onnx_loader.h"
#include "ops/float_thresholds.h"
#include "solver/search_space.h"
#include "solver/unit_witness.h"

namespace nanguard {
namespace {

namespace fs = std::filesystem;
using fuzz::DictEntry;

struct FuzzConfigArgs {
  CommonArgs common;
  std::string weights = "fixed";
  std::string baseline;
  std::string out;
};

double min_of(const at::Tensor& t) { return t.numel() ? t.min().item<double>() : 0; }
double max_of(const at::Tensor& t) { return t.numel() ? t.max().item<double>() : 0; }

fuzz::FuzzLayout layout_of(const Graph& g, const SearchSpace& space) {
  fuzz::FuzzLayout layout;
  for (const auto& v : space.variables) {
    const TensorType* type = g.type_of(v.name);
    layout.slots.push_back({v.name, v.lo.sizes().vec(), type ? type->elem_type : 1, min_of(v.lo), max_of(v.hi), false,
                            v.is_weight});
  }
  for (const auto& name : space.held) {
    const TensorType* type = g.type_of(name);
    Range r = space.held_ranges.count(name) ? space.held_ranges.at(name) : kDefaultIntRange;
    std::vector<int64_t> dims = type && type->dims ? *type->dims : std::vector<int64_t>{1};
    for (auto& d : dims) d = std::max<int64_t>(d, 1);
    layout.slots.push_back({name, dims, type ? type->elem_type : 7, r.lo, r.hi, true, false});
  }
  return layout;
}

// Each measured threshold, its negative and their float32 neighbours: where kernels
// turn INF or NaN, one ulp either side.
void add_thresholds(std::vector<DictEntry>& dict) {
  for (int t = 0; t <= static_cast<int>(Threshold::kBFloat16Overflow); ++t) {
    auto v = float_threshold(static_cast<Threshold>(t), at::kCPU);
    if (!v.ok()) continue;
    std::string why = std::string("threshold ") + to_string(static_cast<Threshold>(t));
    for (float x : {*v, -*v})
      for (float y : {x, std::nextafter(x, INFINITY), std::nextafter(x, -INFINITY)}) dict.push_back({y, why});
  }
}

// The unit witnesses' operand values (a few distinct ones per operand) and targets,
// within a time cap: Z3 may take seconds on a large finding.
void add_unit_witnesses(const Graph& g, const AnalysisResult& analysis, std::vector<DictEntry>& dict) {
  auto start = std::chrono::steady_clock::now();
  for (const auto& f : analysis.findings) {
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(20)) break;
    const Node* node = g.find_node(f.node);
    if (!node) continue;
    if (auto t = unit_target(f, *node, analysis, at::kCPU); t.ok())
      dict.push_back({t->value, "unit target of " + f.node});
    auto w = find_unit_witness(g, *node, f, analysis, at::kCPU);
    if (!w.ok()) continue;
    for (const auto& op : w->operands) {
      if (!op.defined() || !at::isFloatingType(op.scalar_type())) continue;
      at::Tensor u = std::get<0>(at::_unique(op.detach().to(at::kDouble).flatten(), true));
      for (int64_t i = 0; i < std::min<int64_t>(u.numel(), 8); ++i)
        dict.push_back({u[i].item<double>(), "unit witness operand of " + f.node});
    }
  }
}

Status write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out || !out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())))
    return Status::Error(fmt::format("{}: cannot write", path.string()));
  return Status::Ok();
}

std::vector<std::vector<float>> stored_values(const Graph& g, const fuzz::FuzzLayout& layout) {
  std::vector<std::vector<float>> out(layout.slots.size());
  auto ex = Executor::create(g);
  if (!ex.ok()) return out;
  for (size_t i = 0; i < layout.slots.size(); ++i) {
    auto it = ex->weights().find(layout.slots[i].name);
    if (!layout.slots[i].weight || it == ex->weights().end()) continue;
    at::Tensor t = it->second.to(at::kFloat).flatten().slice(0, 0, layout.slots[i].explicit_count()).contiguous();
    out[i].assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  }
  return out;
}

Status write_folder(const FuzzConfigArgs& a, const Graph& g, const fuzz::FuzzConfig& c) {
  fs::path out(a.out), tmp = fs::path(a.out + ".tmp");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp / "seeds", ec);
  if (ec) return Status::Error(fmt::format("{}: cannot create folder: {}", tmp.string(), ec.message()));
  fs::copy_file(a.common.model, tmp / c.model, ec);
  if (ec) return Status::Error(fmt::format("{}: cannot copy: {}", a.common.model, ec.message()));
  if (Status s = write_file(tmp / fuzz::kConfigFile, fuzz::config_json(c)); !s.ok()) return s;
  if (Status s = write_file(tmp / fuzz::kDictionaryFile, fuzz::dictionary_text(c.dictionary)); !s.ok()) return s;
  auto stored = stored_values(g, c.layout);
  const std::pair<const char*, fuzz::FillMode> seeds[] = {
      {"stored", fuzz::FillMode::kStored}, {"corners", fuzz::FillMode::kCorners}, {"uniform", fuzz::FillMode::kUniform}};
  for (const auto& [name, mode] : seeds) {
    auto bytes = fuzz::encode_seed(c.layout, mode, 1, mode == fuzz::FillMode::kStored ? stored : decltype(stored){});
    if (Status s = write_file(tmp / "seeds" / name, std::string(bytes.begin(), bytes.end())); !s.ok()) return s;
  }
  fs::remove_all(out, ec);
  fs::rename(tmp, out, ec);
  if (ec) return Status::Error(fmt::format("{}: cannot write: {}", a.out, ec.message()));
  return Status::Ok();
}

Result<fuzz::FuzzConfig> build_config(const FuzzConfigArgs& a, const LoadedModel& m, const AnalyzeOptions& opt) {
  auto analysis = analyze(m.graph, opt);
  if (!analysis.ok()) return analysis.status();
  auto space = make_search_space(m.graph, opt);
  if (!space.ok()) return space.status();
  fuzz::FuzzConfig c;
  c.source_model = a.common.model;
  c.weights = a.weights;
  if (auto lo = load_options(a.common); lo.ok()) c.dims = lo->dims;
  c.layout = layout_of(m.graph, *space);
  for (const auto& f : analysis->findings) {
    int operand = 0;
    if (const Node* node = m.graph.find_node(f.node); node && f.kind == HazardKind::kGradient)
      if (auto t = unit_target(f, *node, *analysis, at::kCPU); t.ok()) operand = std::max(t->operand, 0);
    c.findings.push_back({f.node, f.op_type, to_string(f.kind), f.hazard, operand});
  }
  if (!a.baseline.empty()) {
    auto text = read_file(a.baseline);
    if (!text.ok()) return text.status();
    auto b = fuzz::parse_baseline(*text, a.baseline);
    if (!b.ok()) return b.status();
    c.baseline = *b;
  }
  std::vector<DictEntry> dict = fuzz::standard_entries(c.layout);
  add_thresholds(dict);
  add_unit_witnesses(m.graph, *analysis, dict);
  c.dictionary = fuzz::unique_entries(dict);
  return c;
}

int run(const FuzzConfigArgs& a) {
  AnalyzeOptions opt;
  if (Status s = parse_weights_flag(a.weights, opt); !s.ok()) return usage_error(s);
  auto m = load_with_ranges(a.common);
  if (!m.ok()) return usage_error(m.status());
  opt.ranges = m->ranges;
  auto c = build_config(a, *m, opt);
  if (!c.ok()) return usage_error(c.status());
  if (Status s = write_folder(a, m->graph, *c); !s.ok()) return usage_error(s);
  std::cout << fmt::format("{}: {} tensors in {} fuzz bytes, {} findings, {} baseline, {} dictionary values -> {}\n",
                           a.common.model, c->layout.slots.size(), c->layout.bytes(), c->findings.size(),
                           c->baseline.size(), c->dictionary.size(), a.out);
  return 0;
}

}  // namespace

CommandFn add_fuzz_config_command(CLI::App& app) {
  auto args = std::make_shared<FuzzConfigArgs>();
  CLI::App* cmd = app.add_subcommand("fuzz-config", "write the folder that configures the fuzz_model target");
  add_model_flags(*cmd, args->common);
  add_range_flags(*cmd, args->common);
  cmd->add_option("--weights", args->weights, "fixed (default), free, or free=LO,HI: free weights are fuzzed too");
  cmd->add_option("--baseline", args->baseline, "accepted failures: JSON list of {node, hazard} or a summary.json");
  cmd->add_option("--out", args->out, "the folder to write")->required();
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
