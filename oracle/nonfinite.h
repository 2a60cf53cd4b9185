// The judge: which nodes produced NaN or INF in a real run, in topological order.
#pragma once

#include <string>
#include <vector>

#include "model/status.h"
#include "oracle/executor.h"

namespace nanguard {

struct NonFiniteRecord {
  std::string node;
  std::string op_type;
  std::string tensor;  // the output that holds the non-finite values
  int64_t nan_count = 0;
  int64_t inf_count = 0;
  int64_t numel = 0;
};

struct OracleRun {
  ExecResult exec;
  std::vector<NonFiniteRecord> nonfinite;  // topological order; first is the origin
  const NonFiniteRecord* first() const { return nonfinite.empty() ? nullptr : &nonfinite.front(); }
  bool nonfinite_at(const std::string& node) const;
};

// Counts NaN and INF in a floating tensor (0, 0 for other types).
NonFiniteRecord count_nonfinite(const at::Tensor& t);

// Runs `executor` on `feeds`, recording every node output that holds NaN/INF.
Result<OracleRun> run_with_oracle(const Executor& executor, const TensorMap& feeds);

}  // namespace nanguard
