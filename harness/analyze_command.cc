// `nanguard analyze`: the static analyzer. Exit 0 when every op is proved free of
// NaN/INF for inputs (and weights) in range, 1 with findings, 2 on errors.
#include <iostream>
#include <memory>

#include <fmt/core.h>

#include "analyzer/analyzer.h"
#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/report.h"

namespace nanguard {
namespace {

struct AnalyzeArgs {
  CommonArgs common;
  std::string weights = "fixed";
  AnalyzeOptions defaults;
  int symbolic_window = defaults.symbolic_window;
  double symbolic_budget = static_cast<double>(defaults.symbolic_budget);
  double partition_budget = static_cast<double>(defaults.partition.element_budget);
  GradientMode gradients = GradientMode::kAuto;
  double norm_above = defaults.norms.above;
};

int run(const AnalyzeArgs& a) {
  AnalyzeOptions opt;
  opt.symbolic_window = a.symbolic_window;
  opt.symbolic_budget = static_cast<int64_t>(a.symbolic_budget);
  opt.partition.element_budget = static_cast<int64_t>(a.partition_budget);
  opt.gradients = a.gradients;
  opt.norms.above = a.norm_above;
  // The report reads findings only: weights past 1 MB of float32 keep no float64 copy.
  opt.lazy_weights_above = int64_t{1} << 18;
  if (Status s = parse_weights_flag(a.weights, opt); !s.ok()) return usage_error(s);
  auto m = load_with_ranges(a.common);
  if (!m.ok()) return usage_error(m.status());
  opt.ranges = m->ranges;
  auto result = analyze(m->graph, opt);
  if (!result.ok()) return usage_error(result.status());
  ReportContext ctx{m->graph.model_path, &m->graph, a.weights, m->ranges, chains_gradients(m->graph, opt)};
  std::string text = a.common.format == "json"    ? findings_json(ctx, *result)
                     : a.common.format == "sarif" ? findings_sarif(ctx, *result)
                                                  : findings_text(ctx, *result);
  if (Status s = emit(a.common, text); !s.ok()) return usage_error(s);
  return result->findings.empty() ? 0 : 1;
}

}  // namespace

CommandFn add_analyze_command(CLI::App& app) {
  auto args = std::make_shared<AnalyzeArgs>();
  CLI::App* cmd = app.add_subcommand("analyze", "prove ops free of NaN/INF, or report the ones that may produce it");
  add_model_flags(*cmd, args->common);
  add_range_flags(*cmd, args->common);
  cmd->add_option("--format", args->common.format, "text, json or sarif")->check(CLI::IsMember({"text", "json", "sarif"}));
  cmd->add_option("-o,--output", args->common.output, "write the report to FILE instead of stdout");
  cmd->add_option("--weights", args->weights, "fixed (default), free, or free=LO,HI");
  cmd->add_option("--symbolic-window", args->symbolic_window,
                  "nodes a symbolic (back-substitution) bound composes over; 0: intervals only")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--symbolic-budget", args->symbolic_budget,
                  "multiply-adds the symbolic bounds may spend in the whole analysis (bounds its time)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--partition-budget", args->partition_budget,
                  "output elements that analysing small tensors (masks, counts) cell by cell may compute; 0: never")
      ->check(CLI::NonNegativeNumber);
  add_norm_flag(*cmd, args->norm_above);
  add_gradients_flag(*cmd, args->gradients);
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
