// Flags shared by the nanguard subcommands (model, ranges, dims, device, format)
// and their conversion into loader / executor options.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "analyzer/analyzer.h"
#include "model/onnx_loader.h"
#include "model/patch.h"
#include "oracle/input_source.h"

namespace nanguard {

struct CommonArgs {
  std::string model;
  std::vector<std::string> ranges;  // NAME=LO,HI
  std::string ranges_file;          // JSON: {"NAME": [LO, HI], ...}
  std::vector<std::string> dims;    // NAME=N
  std::string device = "cpu";
  std::string format = "text";
  std::string output;               // -o FILE (default stdout)
  std::string precision = "native"; // --precision (model/precision.h)
};

void add_model_flags(CLI::App& app, CommonArgs& args);
void add_range_flags(CLI::App& app, CommonArgs& args);
void add_output_flags(CLI::App& app, CommonArgs& args);

Result<LoadOptions> load_options(const CommonArgs& args);
Result<RangeMap> range_map(const CommonArgs& args);

// The model with its dimensions bound and the ranges given for it (every range must
// name a runtime input): the first step of every subcommand.
struct LoadedModel {
  Graph graph;
  RangeMap ranges;
};
Result<LoadedModel> load_with_ranges(const CommonArgs& args);

// The model's proto as the commands load it (under --precision, rewritten): what fixes
// patch and write.
Result<ModelPatch> read_model_patch(const CommonArgs& args);

// --weights fixed | free | free=LO,HI
Status parse_weights_flag(const std::string& spec, AnalyzeOptions& options);
// --gradients auto|chain|local into `mode` (AnalyzeOptions::gradients).
void add_gradients_flag(CLI::App& app, GradientMode& mode);

// --norm-above MAG (AnalyzeOptions::norms.above).
void add_norm_flag(CLI::App& app, double& above);

// Prints "nanguard: <message>" once on stderr; returns exit code 2.
int usage_error(const Status& status);

// Writes `text` to args.output atomically, or to stdout when none was given.
Status emit(const CommonArgs& args, const std::string& text);

}  // namespace nanguard
