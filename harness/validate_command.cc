// `nanguard validate FIXED`: the oracle's verdict on a fix. The analyzer must prove
// the fixed model and no attack may break it (see solver/validate.h); with
// --original, the agreement check says how much the fix changes normal outputs.
// Exit 0 when the fix holds (proved, unbroken), 1 when broken or unproved, 2 on errors.
#include <cmath>
#include <memory>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/report.h"
#include "harness/validate_inputs.h"
#include "solver/validate.h"

namespace nanguard {
namespace {

using json = nlohmann::json;

struct ValidateArgs {
  CommonArgs common;
  std::string weights = "fixed";
  std::string original;
  std::string reproducers;
  std::string data;
  double budget = 60;
  int64_t samples = 1000;
  uint64_t seed = 0;
};

json attacks_json(const ValidationReport& r) {
  json by = json::array();
  for (const auto& a : r.attacks)
    by.push_back({{"name", a.name}, {"runs", a.runs}, {"failures", a.failures},
                  {"first_failure", a.first_failure.empty() ? json(nullptr) : json(a.first_failure)}});
  return {{"runs", r.runs()}, {"failures", r.failures()}, {"by", by}};
}

json agreement_json(const std::optional<Agreement>& a) {
  if (!a) return nullptr;
  return {{"samples", a->samples}, {"original_finite", a->original_finite}, {"unchanged", a->unchanged},
          {"share", a->share}, {"max_change", std::isfinite(a->max_change) ? json(a->max_change) : json("inf")}};
}

std::string report_json(const ValidateArgs& a, const ValidationReport& r) {
  json findings = json::array();
  for (const auto& f : r.analysis.findings) findings.push_back(finding_json(f));
  json j{{"model", a.common.model}, {"original", a.original.empty() ? json(nullptr) : json(a.original)},
         {"weights", a.weights}, {"proved", r.proved()}, {"findings", findings}, {"attacks", attacks_json(r)},
         {"agreement", agreement_json(r.agreement)}, {"verdict", r.verdict()}};
  return j.dump(2) + "\n";
}

std::string agreement_text(const Agreement& g) {
  std::string s = fmt::format("agreement: {} samples, {} finite on the original, {} of them unchanged (share {:.4f})\n",
                              g.samples, g.original_finite, g.unchanged, g.share);
  int64_t changed = g.original_finite - g.unchanged;
  if (changed)
    s += fmt::format("  the fix changes the outputs of {} of {} normal inputs (max relative change {:.3g})\n", changed,
                     g.original_finite, g.max_change);
  else
    s += "  the fix leaves every normal input's outputs unchanged\n";
  return s;
}

std::string report_text(const ValidateArgs& a, const ValidationReport& r) {
  std::string s = fmt::format("{}: {}\n", a.common.model,
                              r.proved() ? "proved: the analyzer finds no op that can produce NaN/INF"
                                         : fmt::format("NOT proved: {} findings remain", r.analysis.findings.size()));
  for (const auto& f : r.analysis.findings)
    s += fmt::format("  {} ({}) {} {}: {}\n", f.node, f.op_type, to_string(f.kind), f.hazard, f.status);
  s += fmt::format("attacks: {} runs, {} failures\n", r.runs(), r.failures());
  for (const auto& at : r.attacks) {
    s += fmt::format("  {}: {} runs, {} failures\n", at.name, at.runs, at.failures);
    if (!at.first_failure.empty()) s += fmt::format("    first: {}\n", at.first_failure);
  }
  if (r.agreement) s += agreement_text(*r.agreement);
  std::string v = r.verdict();
  s += fmt::format("verdict: {}\n", v == "holds"    ? "holds (proved, and no attack breaks it)"
                                    : v == "broken" ? "broken (an attack makes the fixed model produce NaN/INF)"
                                                    : "unproved (no attack breaks it, but the analyzer cannot prove it)");
  return s;
}

// Flags into options: the original, its reproducers and the user's data are read
// here, so that every bad path is an error before any attack runs.
Result<ValidateOptions> options(const ValidateArgs& a, const LoadedModel& m, std::optional<Graph>& original) {
  ValidateOptions o;
  if (Status s = parse_weights_flag(a.weights, o.analyze); !s.ok()) return s;
  o.analyze.ranges = m.ranges;
  o.budget_seconds = a.budget;
  o.samples = a.samples;
  o.seed = a.seed;
  auto d = parse_device(a.common.device);
  if (!d.ok()) return d.status();
  o.device = *d;
  if (!a.original.empty()) {
    auto lopt = load_options(a.common);
    if (!lopt.ok()) return lopt.status();
    auto g = load_model(a.original, *lopt);
    if (!g.ok()) return g.status();
    if (Status s = check_range_names(*g, m.ranges); !s.ok()) return s;
    original = std::move(*g);
  }
  if (!a.reproducers.empty()) {
    auto r = read_reproducers(a.reproducers, m.graph);
    if (!r.ok()) return r.status();
    o.reproducers = std::move(*r);
  }
  if (!a.data.empty()) {
    if (!original) return Status::Error("--data needs --original: the agreement check compares the two models");
    auto sets = read_input_sets(a.data, m.graph);
    if (!sets.ok()) return sets.status();
    o.data = std::move(*sets);
  }
  return o;
}

int run(const ValidateArgs& a) {
  auto m = load_with_ranges(a.common);
  if (!m.ok()) return usage_error(m.status());
  std::optional<Graph> original;
  auto o = options(a, *m, original);
  if (!o.ok()) return usage_error(o.status());
  auto r = validate_fix(m->graph, original ? &*original : nullptr, *o);
  if (!r.ok()) return usage_error(r.status());
  std::string text = a.common.format == "json" ? report_json(a, *r) : report_text(a, *r);
  if (Status s = emit(a.common, text); !s.ok()) return usage_error(s);
  return r->verdict() == "holds" ? 0 : 1;
}

}  // namespace

CommandFn add_validate_command(CLI::App& app) {
  auto args = std::make_shared<ValidateArgs>();
  CLI::App* cmd = app.add_subcommand("validate", "prove a fixed model and attack it: exit 0 only when the fix holds");
  add_model_flags(*cmd, args->common);
  add_range_flags(*cmd, args->common);
  add_output_flags(*cmd, args->common);
  cmd->add_option("--weights", args->weights, "fixed (default), free, or free=LO,HI");
  cmd->add_option("--original", args->original, "the model before the fix: its witnesses attack the fix, and agreement");
  cmd->add_option("--reproducers", args->reproducers,
                  "a folder of the original's reproducers (`nanguard trigger --out`): each must now run finite");
  cmd->add_option("--data", args->data,
                  "inputs for the agreement check: NAME.pb or input_N.pb files, in DIR or its subfolders");
  cmd->add_option("--budget", args->budget, "seconds for the timed attacks together (default 60; 0: reproducers and agreement only)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--samples", args->samples, "in-range samples for sampling and agreement (default 1000)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "seed of the samples and searches (default 0)");
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
