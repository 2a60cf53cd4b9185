// `nanguard replay DIR`: re-runs a reproducer written by `nanguard trigger` and exits
// 0 only when the NaN/INF (or the gradient's, or the crash) appears again at the node
// it names; 1 when it does not; 2 on errors.
#include <iostream>
#include <memory>

#include <fmt/core.h>

#include "harness/cli_common.h"
#include "harness/commands.h"
#include "harness/reproducer.h"
#include "model/onnx_loader.h"
#include "solver/confirm.h"

namespace nanguard {
namespace {

struct ReplayArgs {
  std::string dir;
  std::string device = "cpu";
};

int run(const ReplayArgs& a) {
  auto device = parse_device(a.device);
  if (!device.ok()) return usage_error(device.status());
  auto header = read_reproducer_header(a.dir);
  if (!header.ok()) return usage_error(header.status());
  auto graph = load_model(header->model_path);
  if (!graph.ok()) return usage_error(graph.status());
  auto rep = read_reproducer(a.dir, *graph);
  if (!rep.ok()) return usage_error(rep.status());
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
  return [cmd, args]() -> int { return cmd->parsed() ? run(*args) : -1; };
}

}  // namespace nanguard
