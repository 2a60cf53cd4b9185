// `nanguard trigger`: turns the analyzer's findings into failure-exhibiting tests.
// Per finding: triggered (a real float32 run fails at the node, on every device),
// refuted (a finer analysis proves it unreachable) or not-triggered within the budget;
// with --out, one reproducer directory per witness. Exit 1 when something was
// triggered, 0 when nothing was, 2 on errors.
#include <filesystem>
#include <memory>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/progress.h"
#include "harness/report.h"
#include "harness/reproducer.h"
#include "solver/trigger.h"

namespace nanguard {
namespace {

using json = nlohmann::json;

struct TriggerArgs {
  CommonArgs common;
  std::string weights = "fixed";
  std::string node;
  std::string out;
  std::string strategy = "guided";
  double budget = 60;
  uint64_t seed = 0;
  double training_step = 0;  // 0: no training step
  bool quiet = false;
  bool no_refute = false;
};

json witness_json(const TriggerOutcome& o, const std::string& reproducer) {
  json w{{"seconds", o.system.seconds}, {"strategy", o.system.strategy}, {"devices", o.devices},
         {"runs", o.system.runs}, {"reproducer", reproducer.empty() ? json(nullptr) : json(reproducer)}};
  return w;
}

json outcome_json(const TriggerOutcome& o, const std::string& reproducer) {
  json j = finding_json(o.finding);
  j["status"] = o.status;
  if (o.target) j["target"] = o.target->text;
  if (o.unit) j["unit_witness"] = {{"method", o.unit->method}, {"values", o.unit->text}, {"confirmed", o.unit->confirmed}};
  if (o.status == "triggered") j["witness"] = witness_json(o, reproducer);
  else j["search"] = {{"seconds", o.system.seconds}, {"runs", o.system.runs}};
  j["detail"] = o.detail;
  return j;
}

std::string outcome_text(size_t i, const TriggerOutcome& o, const std::string& reproducer) {
  const Finding& f = o.finding;
  std::string s = fmt::format("[{}] {} ({}) {} {}: {}\n", i, f.node, f.op_type, to_string(f.kind), f.hazard, o.status);
  if (o.target) s += fmt::format("    target: {}\n", o.target->text);
  if (o.unit) s += fmt::format("    unit witness ({}{}): {}\n", o.unit->method, o.unit->confirmed ? ", confirmed" : "", o.unit->text);
  if (o.status == "triggered")
    s += fmt::format("    witness: {} strategy, {:.2f} s, {} runs; reproduced on {}\n", o.system.strategy, o.system.seconds,
                     o.system.runs, fmt::join(o.devices, ", "));
  if (!reproducer.empty()) s += fmt::format("    reproducer: {}\n", reproducer);
  if (!o.detail.empty()) s += fmt::format("    {}\n", o.detail);
  return s;
}

Result<std::vector<std::string>> write_reproducers(const Graph& g, const TriggerArgs& a, const TriggerReport& r) {
  std::vector<std::string> paths(r.outcomes.size());
  bool any = std::any_of(r.outcomes.begin(), r.outcomes.end(), [](const TriggerOutcome& o) { return o.status == "triggered"; });
  if (a.out.empty() || !any) return paths;  // no empty folder when nothing was triggered
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) return Status::Error(fmt::format("{}: cannot create folder: {}", a.out, ec.message()));
  for (size_t i = 0; i < r.outcomes.size(); ++i) {
    const TriggerOutcome& o = r.outcomes[i];
    if (o.status != "triggered") continue;
    ReproducerSpec spec = reproducer_spec(g, o);
    if (a.training_step > 0)
      spec.note = fmt::format(
          "Training-time witness: the weights in model.onnx are the stored model's after one SGD step (learning "
          "rate {}) on these inputs as the training example, descending the model's scalar loss output; the stored "
          "model's own run on them has a finite loss.", a.training_step);
    std::string dir = (std::filesystem::path(a.out) / reproducer_dir_name(i, o.finding)).string();
    if (Status s = write_reproducer(g, spec, dir); !s.ok()) return s;
    paths[i] = dir;
  }
  return paths;
}

int run(const TriggerArgs& a) {
  TriggerOptions opt;
  if (Status s = parse_weights_flag(a.weights, opt.analyze); !s.ok()) return usage_error(s);
  auto m = load_with_ranges(a.common);
  if (!m.ok()) return usage_error(m.status());
  opt.analyze.ranges = m->ranges;
  opt.node = a.node;
  opt.budget_seconds = a.budget;
  opt.refute = !a.no_refute;
  opt.seed = a.seed;
  opt.random_only = a.strategy == "random";
  if (a.training_step > 0) opt.training_step = a.training_step;
  opt.devices = {at::kCPU};
  if (a.common.device == "cuda") {
    auto d = parse_device("cuda");
    if (!d.ok()) return usage_error(d.status());
    opt.devices.push_back(*d);
  }
  Progress progress(a.quiet);
  opt.progress = [&](size_t i, size_t n, const Finding* f) {
    if (i == 0 && n > 0)
      progress.note(fmt::format("{}: {} finding(s), up to {:.0f} s of search each (about {:.0f} s at most)",
                                m->graph.model_path, n, a.budget, n * a.budget));
    if (f) progress.step(fmt::format("trigger: finding {} of {}, {} ({})", i + 1, n, f->node, f->hazard), a.budget);
  };
  auto report = trigger(m->graph, opt);
  if (!report.ok()) return usage_error(report.status());
  auto paths = write_reproducers(m->graph, a, *report);
  if (!paths.ok()) return usage_error(paths.status());
  std::string text;
  if (a.common.format == "json") {
    json findings = json::array();
    for (size_t i = 0; i < report->outcomes.size(); ++i) findings.push_back(outcome_json(report->outcomes[i], (*paths)[i]));
    text = json{{"model", m->graph.model_path}, {"weights", a.weights}, {"strategy", a.strategy},
                {"budget_seconds", a.budget}, {"findings", findings}}.dump(2) + "\n";
  } else {
    size_t hit = 0, refuted = 0;
    for (size_t i = 0; i < report->outcomes.size(); ++i) {
      text += outcome_text(i, report->outcomes[i], (*paths)[i]);
      hit += report->outcomes[i].status == "triggered";
      refuted += report->outcomes[i].status == "refuted";
    }
    text += fmt::format("{}: {} findings, {} triggered{}\n", m->graph.model_path, report->outcomes.size(), hit,
                        refuted ? fmt::format(", {} refuted (false alarms)", refuted) : "");
    if (hit && a.out.empty()) text += "add --out DIR to write a reproducer per witness\n";
  }
  if (Status s = emit(a.common, text); !s.ok()) return usage_error(s);
  bool triggered = std::any_of(report->outcomes.begin(), report->outcomes.end(),
                               [](const TriggerOutcome& o) { return o.status == "triggered"; });
  return triggered ? 1 : 0;
}

}  // namespace

CommandFn add_trigger_command(CLI::App& app) {
  auto args = std::make_shared<TriggerArgs>();
  CLI::App* cmd = app.add_subcommand("trigger", "find inputs (and weights) that make each finding produce NaN/INF for real");
  add_model_flags(*cmd, args->common);
  add_range_flags(*cmd, args->common);
  cmd->add_option("--weights", args->weights, "fixed (default), free, or free=LO,HI");
  cmd->add_option("--node", args->node, "only the findings at this node");
  cmd->add_option("--budget", args->budget, "search seconds per finding (default 60)")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-refute", args->no_refute,
                "search every finding, without first re-analysing them finer (refuted: proved unreachable)");
  cmd->add_option("--seed", args->seed, "seed of the search (default 0)");
  cmd->add_option("--strategy", args->strategy, "guided (default) or random (the uniform-sampling baseline)")
      ->check(CLI::IsMember({"guided", "random"}));
  cmd->add_option("--training-step", args->training_step,
                  "training-time witnesses instead: an example whose one SGD step of this learning rate, "
                  "from the stored weights on the model's scalar loss, makes the next forward run fail "
                  "(findings from the analysis with --weights free, or free=LO,HI when given)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--out", args->out, "write one reproducer directory per witness under DIR");
  cmd->add_option("--format", args->common.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("-o,--output", args->common.output, "write the report to FILE instead of stdout");
  cmd->add_flag("--quiet", args->quiet, "no progress lines on stderr");
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
