// `nanguard soundcheck`: samples real executions inside the analysed ranges and
// checks them against the abstract bounds (exit 1 on any violation). This is how
// soundness is tested rather than assumed; scripts/soundness runs it over corpora.
#include <iostream>
#include <memory>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/soundness.h"

namespace nanguard {

namespace {

struct SoundArgs {
  CommonArgs common;
  std::string weights = "fixed";
  int64_t samples = 100;
  double budget = 0;
  uint64_t seed = 0;
  GradientMode gradients = GradientMode::kAuto;
  double norm_above = AnalyzeOptions{}.norms.above;
};

int run(const SoundArgs& a) {
  AnalyzeOptions opt;
  opt.gradients = a.gradients;
  opt.norms.above = a.norm_above;
  if (Status s = parse_weights_flag(a.weights, opt); !s.ok()) return usage_error(s);
  auto m = load_with_ranges(a.common);
  if (!m.ok()) return usage_error(m.status());
  const Graph* graph = &m->graph;
  opt.ranges = m->ranges;
  auto rep = check_soundness(*graph, opt, a.samples, a.seed, a.budget);
  if (!rep.ok()) return usage_error(rep.status());
  nlohmann::json v = nlohmann::json::array();
  for (const auto& x : rep->violations)
    v.push_back({{"sample", x.sample}, {"node", x.node}, {"tensor", x.tensor}, {"value", x.value}, {"lo", x.lo}, {"hi", x.hi}, {"what", x.what}});
  nlohmann::json j{{"model", graph->model_path}, {"samples", rep->samples}, {"checked_values", rep->checked_values},
                   {"backward_samples", rep->backward_samples}, {"gradient_values", rep->gradient_values},
                   {"stopped_samples", rep->stopped_samples}, {"violations", v}};
  std::string text = a.common.format == "json" ? j.dump(2) + "\n"
      : fmt::format("soundcheck {}: {} samples ({} with a backward pass, {} stopped by an error), {} values and {} "
                    "gradient values checked, {} violations\n",
                    graph->model_path, rep->samples, rep->backward_samples, rep->stopped_samples, rep->checked_values,
                    rep->gradient_values, rep->violations.size());
  if (a.common.format != "json")
    for (const auto& x : rep->violations)
      text += fmt::format("  sample {} node '{}' tensor '{}': {} {:.9g} not in [{:.9g}, {:.9g}]\n", x.sample, x.node, x.tensor, x.what, x.value, x.lo, x.hi);
  if (Status s = emit(a.common, text); !s.ok()) return usage_error(s);
  return rep->violations.empty() ? 0 : 1;
}

}  // namespace

CommandFn add_soundcheck_command(CLI::App& app) {
  auto args = std::make_shared<SoundArgs>();
  CLI::App* cmd = app.add_subcommand("soundcheck", "check the analyzer's bounds against sampled real executions");
  add_model_flags(*cmd, args->common);
  add_range_flags(*cmd, args->common);
  add_output_flags(*cmd, args->common);
  cmd->add_option("--weights", args->weights, "fixed (default), free, or free=LO,HI");
  cmd->add_option("--samples", args->samples, "number of executions (default 100)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "seed (default 0)");
  add_gradients_flag(*cmd, args->gradients);
  cmd->add_option("--budget", args->budget, "stop sampling after SECONDS (the corners always run)");
  add_norm_flag(*cmd, args->norm_above);
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
