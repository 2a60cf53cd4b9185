#include "oracle/nonfinite.h"

#include <algorithm>
#include <unordered_map>

namespace nanguard {

const NonFiniteRecord* OracleRun::first() const {
  for (const auto& r : nonfinite)
    if (r.born) return &r;
  return nullptr;
}

bool OracleRun::nonfinite_at(const std::string& node) const {
  for (const auto& r : nonfinite)
    if (r.node == node) return true;
  return false;
}

NonFiniteRecord count_nonfinite(const at::Tensor& t) {
  NonFiniteRecord r;
  if (!t.defined()) return r;
  r.numel = t.numel();
  if (!at::isFloatingType(t.scalar_type()) || t.numel() == 0) return r;
  at::Tensor d = t.detach();
  r.nan_count = d.isnan().sum().item<int64_t>();
  r.inf_count = d.isinf().sum().item<int64_t>();
  return r;
}

bool is_birth(const NonFiniteRecord& out, const std::vector<NonFiniteRecord>& in) {
  bool nan_in = false, inf_in = false;
  for (const auto& r : in) {
    nan_in = nan_in || r.nan_count > 0;
    inf_in = inf_in || r.inf_count > 0;
  }
  return (out.nan_count > 0 && !nan_in) || (out.inf_count > 0 && !nan_in && !inf_in);
}

bool NodeCounts::nan_in() const {
  return std::any_of(inputs.begin(), inputs.end(), [](const NonFiniteRecord& r) { return r.nan_count > 0; });
}

bool NodeCounts::finite_in() const {
  return std::all_of(inputs.begin(), inputs.end(), [](const NonFiniteRecord& r) { return !r.nan_count && !r.inf_count; });
}

const NonFiniteRecord* NodeCounts::birth() const {
  for (const auto& r : outputs)
    if (is_birth(r, inputs)) return &r;
  return nullptr;
}

NodeCounts count_at(const Node& node, const TensorMap& values) {
  NodeCounts c;
  for (const auto* names : {&node.inputs, &node.outputs})
    for (const auto& name : *names) {
      auto it = name.empty() ? values.end() : values.find(name);
      if (it == values.end()) continue;
      NonFiniteRecord r = count_nonfinite(it->second);
      r.tensor = name;
      (names == &node.inputs ? c.inputs : c.outputs).push_back(r);
    }
  return c;
}

Result<OracleRun> run_with_oracle(const Executor& executor, const TensorMap& feeds) {
  std::vector<NonFiniteRecord> records;
  // What each non-finite tensor holds: feeds and weights first, then node outputs.
  std::unordered_map<std::string, NonFiniteRecord> held;
  auto note = [&held](const std::string& name, const at::Tensor& t) {
    NonFiniteRecord r = count_nonfinite(t);
    if (r.nan_count || r.inf_count) held[name] = r;
  };
  for (const auto& [name, t] : executor.weights())
    if (!feeds.count(name)) note(name, t);
  for (const auto& [name, t] : feeds) note(name, t);
  auto hook = [&](const Node& node, const std::vector<at::Tensor>& outs) {
    std::vector<NonFiniteRecord> in;
    for (const auto& name : node.inputs)
      if (auto it = held.find(name); it != held.end()) in.push_back(it->second);
    for (size_t i = 0; i < outs.size() && i < node.outputs.size(); ++i) {
      NonFiniteRecord r = count_nonfinite(outs[i]);
      if (r.nan_count == 0 && r.inf_count == 0) continue;
      r.node = node.name;
      r.op_type = node.op_type;
      r.tensor = node.outputs[i];
      r.born = is_birth(r, in);
      held[r.tensor] = r;
      records.push_back(r);
    }
  };
  auto exec = executor.run(feeds, hook);
  if (!exec.ok()) return exec.status();
  OracleRun run{std::move(exec.value()), std::move(records)};
  return run;
}

}  // namespace nanguard
