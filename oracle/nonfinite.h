// The judge: which nodes produced NaN or INF in a real run, in topological order, and
// where each was born. A NaN is born at a node whose inputs hold none; an infinity at a
// node whose inputs are all finite. Deliberate infinities (a -inf mask fill, carried
// through Add, Where and Max) are values, not failures: only births are.
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
  bool born = false;  // NaN from NaN-free inputs, or INF from finite ones
};

struct OracleRun {
  ExecResult exec;
  std::vector<NonFiniteRecord> nonfinite;  // topological order, births and the values they reach
  // The first birth: the failure's origin (null when the run did not fail).
  const NonFiniteRecord* first() const;
  bool nonfinite_at(const std::string& node) const;
};

// Counts NaN and INF in a floating tensor (0, 0 for other types).
NonFiniteRecord count_nonfinite(const at::Tensor& t);

// Whether `out` (of a node with inputs `in`, as counted) is a birth of NaN/INF.
bool is_birth(const NonFiniteRecord& out, const std::vector<NonFiniteRecord>& in);

// One node's inputs and outputs, counted as a run left them in `values` (those the
// run computed; `tensor` names each).
struct NodeCounts {
  std::vector<NonFiniteRecord> inputs, outputs;
  bool nan_in() const;
  bool finite_in() const;
  // The first output where NaN/INF is born, if any.
  const NonFiniteRecord* birth() const;
};
NodeCounts count_at(const Node& node, const TensorMap& values);

// Runs `executor` on `feeds`, recording every node output that holds NaN/INF.
Result<OracleRun> run_with_oracle(const Executor& executor, const TensorMap& feeds);

}  // namespace nanguard
