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
};

}  // namespace

Status parse_weights_flag(const std::string& spec, AnalyzeOptions& opt) {
  if (spec == "fixed") return Status::Ok();
  if (spec == "free") { opt.weights = WeightMode::kFree; return Status::Ok(); }
  if (spec.rfind("free=", 0) == 0) {
    auto r = parse_range("weights=" + spec.substr(5));
    if (!r.ok()) return Status::Error(fmt::format("--weights '{}': expected fixed, free or free=LO,HI", spec));
    opt.weights = WeightMode::kFree;
    opt.weight_range = r->second;
    return Status::Ok();
  }
  return Status::Error(fmt::format("--weights '{}': expected fixed, free or free=LO,HI", spec));
}

namespace {

int run(const AnalyzeArgs& a) {
  auto fail = [](const Status& s) { std::cerr << "nanguard: " << s.message() << "\n"; return 2; };
  AnalyzeOptions opt;
  if (Status s = parse_weights_flag(a.weights, opt); !s.ok()) return fail(s);
  auto lopt = load_options(a.common);
  if (!lopt.ok()) return fail(lopt.status());
  auto ranges = range_map(a.common);
  if (!ranges.ok()) return fail(ranges.status());
  auto graph = load_model(a.common.model, *lopt);
  if (!graph.ok()) return fail(graph.status());
  if (Status s = check_range_names(*graph, *ranges); !s.ok()) return fail(s);
  opt.ranges = *ranges;
  auto result = analyze(*graph, opt);
  if (!result.ok()) return fail(result.status());
  ReportContext ctx{graph->model_path, &*graph, a.weights, *ranges};
  std::string text = a.common.format == "json"    ? findings_json(ctx, *result)
                     : a.common.format == "sarif" ? findings_sarif(ctx, *result)
                                                  : findings_text(ctx, *result);
  if (Status s = emit(a.common, text); !s.ok()) return fail(s);
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
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
