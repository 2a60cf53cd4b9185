#include "solver/trigger.h"

#include <algorithm>
#include <set>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "solver/confirm.h"
#include "solver/search_space.h"
#include "solver/training_witness.h"

namespace nanguard {
namespace {

std::string device_name(at::Device d) { return d.is_cuda() ? "cuda" : "cpu"; }

// CPU is the reference: the witness counts when a CPU run reproduces it; every other
// device is tried too and listed when it agrees.
void confirm_on_devices(const Graph& graph, const TriggerOptions& options, const SearchSpace& space,
                        TriggerOutcome& out) {
  TensorMap feeds = space.feeds(out.system.point, graph, at::kFloat);
  int operand = out.target ? out.target->operand : 0;
  std::vector<std::string> notes;
  bool on_cpu = false;
  for (at::Device d : options.devices) {
    auto c = confirm_witness(graph, out.finding, operand, feeds, d);
    bool ok = c.ok() && c->reproduced;
    if (ok) out.devices.push_back(device_name(d));
    if (ok && d.is_cpu()) on_cpu = true;
    notes.push_back(fmt::format("{}: {}", device_name(d), c.ok() ? c->detail : c.status().message()));
  }
  out.status = on_cpu ? "triggered" : "not-triggered";
  out.detail = fmt::format("{}", fmt::join(notes, "; "));
}

SearchOptions search_options(const TriggerOptions& options) {
  SearchOptions so;
  so.budget_seconds = options.budget_seconds;
  so.seed = options.seed;
  so.random_only = options.random_only;
  return so;
}

// A training-time witness in the system witness's terms: the point holds the
// example and the weights after the step, which the reproducer bakes in.
Result<SystemWitness> training_witness(const Graph& graph, const TriggerOptions& options, const SearchSpace& space,
                                       const Finding& f, const UnitTarget& target) {
  TrainingOptions to{*options.training_step, options.budget_seconds, options.seed};
  auto t = find_training_witness(graph, f, target, space, to);
  if (!t.ok()) return t.status();
  SystemWitness w;
  w.found = t->found;
  w.strategy = t->strategy;
  w.seconds = t->seconds;
  w.runs = t->runs;
  for (const auto& [name, v] : t->example) w.point[name] = v;
  for (const auto& [name, v] : t->stepped) w.point[name] = v;
  return w;
}

TriggerOutcome trigger_one(const Graph& graph, const TriggerOptions& options, const SearchSpace& space,
                           const AnalysisResult& analysis, const Finding& f) {
  TriggerOutcome out;
  out.finding = f;
  const Node* node = graph.find_node(f.node);
  if (!node) {
    // Inside an If/Loop/Scan subgraph ("If_0/then_branch/Log_3"): not searched.
    out.detail = f.node.find('/') != std::string::npos ? "the node is inside a control-flow subgraph, which the search does not target"
                                                       : "no such node";
    return out;
  }
  auto target = unit_target(f, *node, analysis, at::kCPU);
  if (!target.ok()) { out.detail = target.status().message(); return out; }
  out.target = *target;
  auto unit = find_unit_witness(graph, *node, f, analysis, at::kCPU);
  if (unit.ok()) out.unit = *unit;
  auto sys = options.training_step ? training_witness(graph, options, space, f, *target)
                                   : find_system_witness(graph, f, *target, space, search_options(options));
  if (!sys.ok()) { out.detail = sys.status().message(); return out; }
  out.system = *sys;
  if (!sys->found) {
    out.detail = fmt::format("no witness in {:.1f} s ({} runs): the search gave up, which does not make the finding unreachable",
                             sys->seconds, sys->runs);
    return out;
  }
  confirm_on_devices(graph, options, space, out);
  return out;
}

// The findings of `todo` that the finer analysis still reports (node, hazard); all of
// them when it fails.
std::set<std::pair<std::string, std::string>> still_reported(const Graph& graph, const AnalyzeOptions& o,
                                                             const std::vector<const Finding*>& todo) {
  std::set<std::pair<std::string, std::string>> out;
  auto finer = analyze(graph, refutation_options(o));
  for (const Finding* f : todo) {
    bool kept = !finer.ok() || std::any_of(finer->findings.begin(), finer->findings.end(), [&](const Finding& g) {
      return g.node == f->node && g.hazard == f->hazard;
    });
    if (kept) out.insert({f->node, f->hazard});
  }
  return out;
}

TriggerOutcome refuted(const Finding& f, const AnalyzeOptions& o) {
  TriggerOutcome out;
  out.finding = f;
  out.status = "refuted";
  out.detail = fmt::format("proved unreachable by a finer analysis (symbolic bounds over {} nodes): a false alarm of the first",
                           refutation_options(o).symbolic_window);
  return out;
}

}  // namespace

AnalyzeOptions refutation_options(const AnalyzeOptions& o) {
  AnalyzeOptions f = o;
  f.symbolic_window = std::max(16, 4 * o.symbolic_window);
  f.symbolic_above = 0;
  f.symbolic_budget = 4 * std::max<int64_t>(o.symbolic_budget, 1);
  return f;
}

std::vector<at::Device> available_devices() {
  std::vector<at::Device> d{at::kCPU};
  if (at::hasCUDA()) d.emplace_back(at::kCUDA);
  return d;
}

// With a training step the question is "can training reach a failing model?": the
// findings come from an analysis with free weights (the stored ones widened, or the
// range given), while the search moves the example only, from the stored weights.
Result<TriggerReport> trigger(const Graph& graph, const TriggerOptions& options) {
  AnalyzeOptions analysis_options = options.analyze, space_options = options.analyze;
  if (options.training_step) {
    analysis_options.weights = WeightMode::kFree;
    space_options.weights = WeightMode::kFixed;
  }
  auto analysis = analyze(graph, analysis_options);
  if (!analysis.ok()) return analysis.status();
  if (!options.node.empty() && !graph.find_node(options.node))
    return Status::Error(fmt::format("{}: --node '{}' is not a node of the model", graph.model_path, options.node));
  auto space = make_search_space(graph, space_options);
  if (!space.ok()) return space.status();
  TriggerReport report;
  for (const auto& v : space->variables)
    if (v.is_weight) report.weights.push_back(v.name);
  std::vector<const Finding*> todo;
  for (const auto& f : analysis->findings)
    if (options.node.empty() || f.node == options.node) todo.push_back(&f);
  std::set<std::pair<std::string, std::string>> real;
  if (options.refute && !todo.empty()) real = still_reported(graph, analysis_options, todo);
  for (size_t i = 0; i < todo.size(); ++i) {
    if (options.refute && !real.count({todo[i]->node, todo[i]->hazard})) {
      report.outcomes.push_back(refuted(*todo[i], analysis_options));
      continue;
    }
    if (options.progress) options.progress(i, todo.size(), todo[i]);
    report.outcomes.push_back(trigger_one(graph, options, *space, *analysis, *todo[i]));
  }
  if (options.progress) options.progress(todo.size(), todo.size(), nullptr);
  return report;
}

}  // namespace nanguard
