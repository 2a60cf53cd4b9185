// `nanguard replay DIR`: re-runs a reproducer written by `nanguard trigger` and exits
// 0 only when the NaN/INF (or the gradient's, or the crash) appears again at the node
// it names; 1 when it does not; 2 on errors. With --model OTHER, the reproducer's
// inputs (and the weights OTHER shares with it) run through OTHER instead, e.g. a
// fixed model: exit 0 when it still fails, 1 when the fix holds on this reproducer.
#include <iostream>
#include <memory>

#include <fmt/core.h>

#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/reproducer.h"
#include "harness/validate_inputs.h"
#include "model/onnx_loader.h"
#include "solver/confirm.h"
#include "solver/validate.h"

namespace nanguard {
namespace {

struct ReplayArgs {
  std::string dir;
  std::string device = "cpu";
  std::string model;  // replay against this model instead
};

// The failure again at the reproducer's node when OTHER has it, else any NaN/INF.
int replay_on(const ReplayArgs& a, const Graph& repro_graph, const Reproducer& rep, at::Device device) {
  auto other = load_model(a.model);
  if (!other.ok()) return usage_error(other.status());
  TensorMap feeds = shared_weights(repro_graph, *other);
  for (const auto& name : other->inputs) {
    if (!rep.inputs.count(name))
      return usage_error(Status::Error(fmt::format("{}: the reproducer has no input '{}' of {}", a.dir, name, a.model)));
    feeds[name] = rep.inputs.at(name);
  }
  const Finding& f = rep.finding;
  std::string failure;
  if (other->find_node(f.node)) {
    auto c = confirm_witness(*other, f, rep.operand, feeds, device);
    if (!c.ok()) return usage_error(c.status());
    if (c->reproduced) failure = c->detail;
  }
  if (failure.empty()) {
    auto nf = first_nonfinite(*other, feeds, f.kind == HazardKind::kGradient, device);
    if (!nf.ok()) return usage_error(nf.status());
    failure = *nf;
  }
  std::cout << fmt::format("{} on {} ({}): {}\n", a.dir, a.model, a.device,
                           failure.empty() ? "finite: the fix holds on this reproducer" : "NaN/INF again: " + failure);
  return failure.empty() ? 1 : 0;
}

int run(const ReplayArgs& a) {
  auto device = parse_device(a.device);
  if (!device.ok()) return usage_error(device.status());
  auto header = read_reproducer_header(a.dir);
  if (!header.ok()) return usage_error(header.status());
  auto graph = load_model(header->model_path);
  if (!graph.ok()) return usage_error(graph.status());
  auto rep = read_reproducer(a.dir, *graph);
  if (!rep.ok()) return usage_error(rep.status());
  if (!a.model.empty()) return replay_on(a, *graph, *rep, *device);
  auto c = confirm_witness(*graph, rep->finding, rep->operand, rep->inputs, *device);
  if (!c.ok()) return usage_error(c.status());
  const Finding& f = rep->finding;
  std::cout << fmt::format("{}: {} ({}) {} {} on {}: {} ({})\n", a.dir, f.node, f.op_type, to_string(f.kind), f.hazard,
                           a.device, c->reproduced ? "reproduced" : "NOT reproduced", c->detail);
  return c->reproduced ? 0 : 1;
}

}  // namespace

CommandFn add_replay_command(CLI::App& app) {
  auto args = std::make_shared<ReplayArgs>();
  CLI::App* cmd = app.add_subcommand("replay", "re-run a reproducer; exit 0 when the NaN/INF appears again at its node");
  cmd->add_option("dir", args->dir, "a reproducer directory written by `nanguard trigger --out`")->required();
  cmd->add_option("--device", args->device, "cpu (default) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--model", args->model,
                  "replay the inputs against this model (e.g. the fixed one): exit 0 when it still fails, 1 when finite");
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
