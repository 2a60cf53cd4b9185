#include "oracle/nonfinite.h"

namespace nanguard {

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

Result<OracleRun> run_with_oracle(const Executor& executor, const TensorMap& feeds) {
  std::vector<NonFiniteRecord> records;
  auto hook = [&records](const Node& node, const std::vector<at::Tensor>& outs) {
    for (size_t i = 0; i < outs.size() && i < node.outputs.size(); ++i) {
      NonFiniteRecord r = count_nonfinite(outs[i]);
      if (r.nan_count == 0 && r.inf_count == 0) continue;
      r.node = node.name;
      r.op_type = node.op_type;
      r.tensor = node.outputs[i];
      records.push_back(r);
    }
  };
  auto exec = executor.run(feeds, hook);
  if (!exec.ok()) return exec.status();
  OracleRun run{std::move(exec.value()), std::move(records)};
  return run;
}

}  // namespace nanguard
