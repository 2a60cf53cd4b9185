// `nanguard fix`: for each finding, a fix the analyzer proves in float32 (a rewrite,
// a Clip of the operand, or narrowed input/weight ranges), written into a patched
// model. Exit 0 when every finding is fixed, 1 when some remain, 2 on errors.
#include <iostream>
#include <memory>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/report.h"
#include "model/patch.h"
#include "solver/fix.h"

namespace nanguard {
namespace {

using json = nlohmann::json;

struct FixArgs {
  CommonArgs common;
  std::string weights = "fixed";
  std::string node;
  std::string at = "auto";
  std::string out;
  double range_budget = 30;
  bool no_alternatives = false;
};

json change_json(const RangeChange& c) {
  return {{"tensor", c.tensor}, {"before", {c.before_lo, c.before_hi}}, {"after", {c.after_lo, c.after_hi}}, {"kept", c.kept}};
}

json changes_json(const std::vector<RangeChange>& cs) {
  json a = json::array();
  for (const auto& c : cs) a.push_back(change_json(c));
  return a;
}

json unremovable_json(const Unremovable& u) {
  json pinned = json::array();
  for (const RangeChange& p : u.pinned)
    pinned.push_back({{"tensor", p.tensor}, {"range", {p.before_lo, p.before_hi}}, {"values", {p.after_lo, p.after_hi}}});
  return {{"node", u.node}, {"pinned", pinned}, {"runs", u.runs}, {"text", u.text}};
}

std::string report_json(const FixArgs& a, const FixReport& r, const std::string& written) {
  json findings = json::array();
  for (const FindingFix& fx : r.fixes) {
    json f = finding_json(fx.finding);
    f["status"] = fx.status;
    if (fx.status == "fixed")
      f["fix"] = {{"at", fx.at}, {"rewrite", fx.rewrite.empty() ? json(nullptr) : json(fx.rewrite)},
                  {"description", fx.description}, {"changes", changes_json(fx.changes)}, {"hint", fx.hint}};
    if (fx.status == "fixed" && fx.kept_all_nodes >= 0) f["fix"]["kept_all_nodes"] = fx.kept_all_nodes;
    if (!fx.reason.empty()) f["reason"] = fx.reason;
    if (fx.unremovable) f["unremovable"] = unremovable_json(*fx.unremovable);
    findings.push_back(f);
  }
  json alts = json::array();
  for (const RangeFix& rf : r.alternatives) {
    json un = json::array();
    for (const Unremovable& u : rf.unremovable) un.push_back(unremovable_json(u));
    alts.push_back({{"at", to_string(rf.mode)}, {"proved", rf.proved}, {"kept", rf.kept}, {"min_kept", rf.min_kept},
                    {"kept_all_nodes", rf.kept_all_nodes},
                    {"changes", changes_json(rf.changes)}, {"unremovable", un},
                    {"reason", rf.reason}, {"seconds", rf.seconds}});
  }
  json remaining = json::array();
  for (const Finding& f : r.remaining) remaining.push_back(finding_json(f));
  return json{{"model", a.common.model}, {"at", a.at}, {"weights", a.weights},
              {"out", written.empty() ? json(nullptr) : json(written)}, {"findings", findings},
              {"alternatives", alts}, {"remaining", remaining}}
             .dump(2) + "\n";
}

std::string report_text(const FixArgs& a, const FixReport& r, const std::string& written) {
  int fixed = 0;
  for (const auto& fx : r.fixes) fixed += fx.status == "fixed";
  std::string s = fmt::format("{}: {} finding(s), {} fixed (--at {})\n", a.common.model, r.fixes.size(), fixed, a.at);
  for (const FindingFix& fx : r.fixes) {
    const Finding& f = fx.finding;
    s += fmt::format("  {} ({}) {} {}: ", f.node, f.op_type, to_string(f.kind), f.hazard);
    if (fx.status != "fixed") {
      s += "NOT fixed: " + fx.reason + "\n";
      continue;
    }
    s += fmt::format("fixed ({}{}): {}\n", fx.at, fx.rewrite.empty() ? "" : " " + fx.rewrite,
                     fx.description.empty() ? fx.reason : fx.description);
    for (const auto& c : fx.changes)
      if (c.kept < 1 || c.after_lo != c.before_lo || c.after_hi != c.before_hi)
        s += fmt::format("      {}: [{:.9g}, {:.9g}] -> [{:.9g}, {:.9g}] (keeps {:.1f}%)\n", c.tensor, c.before_lo,
                         c.before_hi, c.after_lo, c.after_hi, 100 * c.kept);
    if (!fx.hint.empty()) s += "      PyTorch: " + fx.hint + "\n";
  }
  for (const RangeFix& rf : r.alternatives)
    s += rf.proved ? fmt::format("  --at {}: proved{}, keeps {:.1f}% of the ranges on average, {:.1f}% of the narrowest ({:.1f} s)\n",
                                 to_string(rf.mode), rf.reason.empty() ? "" : " for the findings fixed above",
                                 100 * rf.kept, 100 * rf.min_kept, rf.seconds)
                   : fmt::format("  --at {}: not proved: {}\n", to_string(rf.mode), rf.reason);
  if (!written.empty())
    s += fmt::format("fixed model: {} ({} finding(s) remain in its analysis)\n", written, r.remaining.size());
  else if (!r.changed)
    s += "nothing changed: no fixed model written\n";
  else
    s += "fixed model not written (give --out FIXED.onnx)\n";
  return s;
}

int run(const FixArgs& a) {
  FixOptions opt;
  auto mode = parse_fix_mode(a.at);
  if (!mode) return usage_error(Status::Error(fmt::format("--at: unknown mode '{}'", a.at)));
  opt.mode = *mode;
  opt.node = a.node;
  opt.range_budget_seconds = a.range_budget;
  opt.alternatives = opt.mode == FixMode::kAuto && a.common.format == "json" && !a.no_alternatives;
  if (Status s = parse_weights_flag(a.weights, opt.analyze); !s.ok()) return usage_error(s);
  auto lo = load_options(a.common);
  if (!lo.ok()) return usage_error(lo.status());
  opt.load = *lo;
  opt.load.precision = Precision::kNative;  // patched models are already in the precision
  auto m = load_with_ranges(a.common);
  if (!m.ok()) return usage_error(m.status());
  opt.analyze.ranges = m->ranges;
  auto raw = read_model_patch(a.common);
  if (!raw.ok()) return usage_error(raw.status());
  auto r = fix_model(raw->proto(), m->graph, opt);
  if (!r.ok()) return usage_error(r.status());
  std::string written;
  if (!a.out.empty() && r->changed) {
    if (Status s = r->patched.write(a.out); !s.ok()) return usage_error(s);
    written = a.out;
  }
  std::string text = a.common.format == "json" ? report_json(a, *r, written) : report_text(a, *r, written);
  if (Status s = emit(a.common, text); !s.ok()) return usage_error(s);
  for (const auto& fx : r->fixes)
    if (fx.status != "fixed") return 1;
  return 0;
}

}  // namespace

CommandFn add_fix_command(CLI::App& app) {
  auto args = std::make_shared<FixArgs>();
  CLI::App* cmd = app.add_subcommand("fix", "fix each finding with a change the analyzer proves, into a patched model");
  add_model_flags(*cmd, args->common);
  add_range_flags(*cmd, args->common);
  cmd->add_option("--format", args->common.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("-o,--output", args->common.output, "write the report to FILE instead of stdout");
  cmd->add_option("--weights", args->weights, "fixed (default), free, or free=LO,HI");
  cmd->add_option("--node", args->node, "fix only this node's findings");
  cmd->add_option("--at", args->at, "auto (default), rewrite, immediate, inputs, weights or all")
      ->check(CLI::IsMember({"auto", "rewrite", "immediate", "inputs", "weights", "all"}));
  cmd->add_option("--out", args->out, "write the fixed model here (atomically)");
  cmd->add_option("--range-budget", args->range_budget, "seconds each range mode (inputs, weights, all) may search")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-alternatives", args->no_alternatives, "auto with --format json: skip the range modes' results");
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
