#include "solver/search_context.h"

#include <fmt/core.h>

namespace nanguard {

double SearchContext::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const std::string& SearchContext::target_tensor() const {
  return target.operand < 0 ? node.outputs[0] : node.inputs[target.operand];
}

Result<std::unique_ptr<SearchContext>> make_search_context(const Graph& graph, const Finding& finding,
                                                           const UnitTarget& target, const SearchSpace& space,
                                                           uint64_t seed, double budget_seconds) {
  const Node* node = graph.find_node(finding.node);
  if (!node) return Status::Error(fmt::format("{}: no node '{}'", graph.model_path, finding.node));
  bool bad = target.operand >= static_cast<int>(node->inputs.size()) ||
             (target.operand >= 0 && node->inputs[target.operand].empty()) || node->outputs.empty();
  if (bad) return Status::Error(fmt::format("{}: node '{}' has no tensor {}", graph.model_path, node->name, target.operand));
  ExecOptions o32, o64;
  o64.float_type = at::kDouble;
  auto ex32 = Executor::create(graph, o32);
  if (!ex32.ok()) return ex32.status();
  auto ex64 = Executor::create(graph, o64);
  if (!ex64.ok()) return ex64.status();
  return std::make_unique<SearchContext>(SearchContext{graph, *node, finding, target, space, std::move(*ex32),
                                                       std::move(*ex64), at::detail::createCPUGenerator(seed),
                                                       std::chrono::steady_clock::now(), budget_seconds});
}

}  // namespace nanguard
