#include "solver/confirm.h"

#include <fmt/core.h>

#include "oracle/nonfinite.h"

namespace nanguard {
namespace {

bool all_finite(const at::Tensor& t) {
  return !t.defined() || !at::isFloatingType(t.scalar_type()) || t.detach().isfinite().all().item<bool>();
}

std::string count_text(const NonFiniteRecord& r) {
  return fmt::format("{} NaN, {} INF of {}", r.nan_count, r.inf_count, r.numel);
}

// NaN/INF is born here (oracle/nonfinite.h): a NaN from NaN-free inputs, an INF from
// finite ones. An input holding a deliberate -inf (a mask fill) does not excuse a NaN.
Confirmation judge_forward(const Node& node, const ExecResult& exec) {
  NodeCounts c = count_at(node, exec.values);
  if (const NonFiniteRecord* r = c.birth()) return {true, fmt::format("'{}' = {}: {}", node.name, r->tensor, count_text(*r))};
  for (const auto& r : c.outputs)
    if (r.nan_count || r.inf_count)
      return {false, fmt::format("'{}' = {}: {}, carried from its inputs", node.name, r.tensor, count_text(r))};
  return {false, fmt::format("'{}' stayed finite", node.name)};
}

TensorMap on_device(const TensorMap& feeds, at::Device device) {
  TensorMap out;
  for (const auto& [name, t] : feeds) out[name] = t.to(device);
  return out;
}

// The model's scalar float output, else the sum of every float output.
at::Tensor backward_root(const ExecResult& exec) {
  for (const auto& o : exec.outputs)
    if (o.defined() && at::isFloatingType(o.scalar_type()) && o.numel() == 1 && o.requires_grad()) return o.sum();
  at::Tensor total;
  for (const auto& o : exec.outputs) {
    if (!o.defined() || !at::isFloatingType(o.scalar_type()) || !o.requires_grad()) continue;
    total = total.defined() ? total + o.sum() : o.sum();
  }
  return total;
}

// Inputs and every float weight require grad, so the backward pass reaches the
// operand whatever it depends on.
Result<Confirmation> confirm_gradient(const Executor& ex, const Node& node, int operand, TensorMap feeds) {
  for (auto& [name, t] : feeds)
    if (at::isFloatingType(t.scalar_type())) t = t.detach().clone().requires_grad_(true);
  for (const auto& [name, w] : ex.weights())
    if (!feeds.count(name) && at::isFloatingType(w.scalar_type())) feeds[name] = w.detach().clone().requires_grad_(true);
  auto exec = ex.run(feeds);
  if (!exec.ok()) return exec.status();
  const auto& values = exec->values;
  if (operand < 0 || operand >= static_cast<int>(node.inputs.size()) || !values.count(node.inputs[operand]))
    return Confirmation{false, "the faulty operand has no value"};
  for (size_t i = 0; i < exec->outputs.size(); ++i)
    if (!all_finite(exec->outputs[i]))
      return Confirmation{false, fmt::format("the forward run is already NaN/INF (output {})", ex.graph().outputs[i])};
  at::Tensor x = values.at(node.inputs[operand]), y = values.at(node.outputs[0]);
  at::Tensor root = backward_root(*exec);
  if (!root.defined() || !x.requires_grad()) return Confirmation{false, "no gradient reaches the operand"};
  if (!x.is_leaf()) x.retain_grad();
  if (y.requires_grad() && !y.is_leaf()) y.retain_grad();
  root.backward();
  if (!x.grad().defined()) return Confirmation{false, "no gradient reaches the operand"};
  if (y.grad().defined() && !all_finite(y.grad()))
    return Confirmation{false, fmt::format("the gradient of '{}' is NaN/INF already downstream", node.outputs[0])};
  NonFiniteRecord r = count_nonfinite(x.grad());
  if (!r.nan_count && !r.inf_count) return Confirmation{false, "every gradient stayed finite"};
  return Confirmation{true, fmt::format("d/d {} through '{}': {}", node.inputs[operand], node.name, count_text(r))};
}

}  // namespace

Result<Confirmation> confirm_witness(const Graph& graph, const Finding& finding, int operand,
                                     const TensorMap& feeds, at::Device device) {
  const Node* node = graph.find_node(finding.node);
  if (!node) return Status::Error(fmt::format("{}: no node '{}'", graph.model_path, finding.node));
  ExecOptions opt;
  opt.device = device;
  auto ex = Executor::create(graph, opt);
  if (!ex.ok()) return ex.status();
  TensorMap moved = on_device(feeds, device);
  if (finding.kind == HazardKind::kGradient) return confirm_gradient(*ex, *node, operand, moved);
  auto exec = ex->run(moved);
  if (finding.kind == HazardKind::kCrash) {
    if (exec.ok()) return Confirmation{false, "the run completed"};
    bool here = exec.status().message().find("'" + node->name + "'") != std::string::npos;
    return Confirmation{here, exec.status().message()};
  }
  if (!exec.ok()) return exec.status();
  return judge_forward(*node, *exec);
}

}  // namespace nanguard
