#include "harness/cli_common.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

namespace nanguard {

void add_model_flags(CLI::App& app, CommonArgs& args) {
  app.add_option("model", args.model, "ONNX model file")->required();
  app.add_option("--dim", args.dims, "bind a symbolic dimension: NAME=N (default 1)");
  app.add_option("--precision", args.precision,
                 "run a float32 model as after model.half() (fp16, bf16) or under torch.autocast "
                 "(autocast-fp16, autocast-bf16); default native")
      ->check(CLI::IsMember({"native", "fp16", "bf16", "autocast-fp16", "autocast-bf16"}));
}

void add_range_flags(CLI::App& app, CommonArgs& args) {
  app.add_option("--range", args.ranges, "input range: NAME=LO,HI (repeatable)");
  app.add_option("--ranges", args.ranges_file, "JSON file of input ranges: {\"NAME\": [LO, HI]}");
  app.add_option("--device", args.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
}

void add_output_flags(CLI::App& app, CommonArgs& args) {
  app.add_option("--format", args.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  app.add_option("-o,--output", args.output, "write the report to FILE instead of stdout");
}

Result<LoadOptions> load_options(const CommonArgs& args) {
  LoadOptions opt;
  auto p = parse_precision(args.precision);
  if (!p) return Status::Error(fmt::format("--precision: unknown precision '{}'", args.precision));
  opt.precision = *p;
  for (const auto& spec : args.dims) {
    auto kv = parse_assignment(spec, "--dim");
    if (!kv.ok()) return kv.status();
    try {
      size_t used = 0;
      long long v = std::stoll(kv->second, &used);
      if (used != kv->second.size() || v < 0) throw std::invalid_argument("");
      opt.dims[kv->first] = v;
    } catch (const std::exception&) {
      return Status::Error(fmt::format("--dim '{}': expected NAME=N with N a non-negative integer", spec));
    }
  }
  return opt;
}

Result<RangeMap> range_map(const CommonArgs& args) {
  RangeMap ranges;
  if (!args.ranges_file.empty()) {
    std::ifstream in(args.ranges_file);
    if (!in) return Status::Error(fmt::format("{}: cannot open ranges file", args.ranges_file));
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return Status::Error(fmt::format("{}: expected a JSON object {{\"NAME\": [LO, HI]}}", args.ranges_file));
    for (auto& [name, v] : j.items()) {
      if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number() ||
          v[0].get<double>() > v[1].get<double>())
        return Status::Error(fmt::format("{}: range of '{}' must be [LO, HI] with LO <= HI", args.ranges_file, name));
      ranges[name] = Range{v[0].get<double>(), v[1].get<double>()};
    }
  }
  for (const auto& spec : args.ranges) {
    auto r = parse_range(spec);
    if (!r.ok()) return r.status();
    ranges[r->first] = r->second;
  }
  return ranges;
}

Result<LoadedModel> load_with_ranges(const CommonArgs& args) {
  auto lopt = load_options(args);
  if (!lopt.ok()) return lopt.status();
  auto ranges = range_map(args);
  if (!ranges.ok()) return ranges.status();
  auto graph = load_model(args.model, *lopt);
  if (!graph.ok()) return graph.status();
  if (Status s = check_range_names(*graph, *ranges); !s.ok()) return s;
  return LoadedModel{std::move(graph.value()), std::move(ranges.value())};
}

Result<ModelPatch> read_model_patch(const CommonArgs& args) {
  auto raw = ModelPatch::read(args.model);
  if (!raw.ok()) return raw.status();
  auto lo = load_options(args);
  if (!lo.ok()) return lo.status();
  onnx::ModelProto m = raw->proto();
  if (Status s = apply_precision(m, lo->precision, args.model); !s.ok()) return s;
  return ModelPatch(std::move(m));
}

void add_gradients_flag(CLI::App& app, GradientMode& mode) {
  static const std::map<std::string, GradientMode> kModes{
      {"auto", GradientMode::kAuto}, {"chain", GradientMode::kChain}, {"local", GradientMode::kLocal}};
  app.add_option_function<std::string>(
         "--gradients", [&mode](const std::string& v) { mode = kModes.at(v); },
         "local: each op's backward pass with an output gradient of 1; chain: also bound gradients "
         "through the graph from the loss; auto (default): chain on half-precision models")
      ->check(CLI::IsMember({"auto", "chain", "local"}));
}

void add_norm_flag(CLI::App& app, double& above) {
  app.add_option("--norm-above", above,
                 "bound outputs whose interval passes MAG in magnitude by their Euclidean norm too, chained through "
                 "the weights' largest singular values (default 1e30; 0: never)")
      ->check(CLI::NonNegativeNumber);
}

Status parse_weights_flag(const std::string& spec, AnalyzeOptions& opt) {
  if (spec == "fixed") return Status::Ok();
  if (spec == "free") {
    opt.weights = WeightMode::kFree;
    return Status::Ok();
  }
  if (spec.rfind("free=", 0) == 0) {
    auto r = parse_range("weights=" + spec.substr(5));
    if (r.ok()) {
      opt.weights = WeightMode::kFree;
      opt.weight_range = r->second;
      return Status::Ok();
    }
  }
  return Status::Error(fmt::format("--weights '{}': expected fixed, free or free=LO,HI", spec));
}

int usage_error(const Status& status) {
  std::cerr << "nanguard: " << status.message() << "\n";
  return 2;
}

Status emit(const CommonArgs& args, const std::string& text) {
  if (args.output.empty()) {
    std::cout << text;
    std::cout.flush();
    return Status::Ok();
  }
  std::string tmp = args.output + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out || !(out << text)) return Status::Error(fmt::format("{}: cannot write", args.output));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, args.output, ec);
  if (ec) return Status::Error(fmt::format("{}: cannot write: {}", args.output, ec.message()));
  return Status::Ok();
}

}  // namespace nanguard
