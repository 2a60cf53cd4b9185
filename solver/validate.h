// Validation: the oracle's verdict on a fix. The analyzer must prove the fixed model
// (no findings), and every attack must fail to break it: trigger's searches on its
// remaining findings, the original's witnesses and reproducers fed to it, and plain
// in-range sampling. The agreement check measures how much the fix changes the
// outputs of inputs on which the original was already finite.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "analyzer/analyzer.h"
#include "model/graph.h"
#include "model/status.h"
#include "oracle/executor.h"
#include "solver/agreement.h"

namespace nanguard {

// One input point to replay on the fixed model (a reproducer of the original).
struct ReplayCase {
  std::string name;  // e.g. the reproducer's directory
  Finding finding;   // the original's finding it exhibits (its kind decides the backward pass)
  TensorMap feeds;   // runtime inputs, plus witness weights that are free weights of the fixed model
};

struct ValidateOptions {
  AnalyzeOptions analyze;         // ranges and weights, for both models
  double budget_seconds = 60;     // all attacks together
  int64_t samples = 1000;         // in-range draws for sampling and agreement
  double agreement_seconds = 0;   // > 0: the agreement check stops after this long
  uint64_t seed = 0;
  at::Device device = at::kCPU;   // runs of sampling, witnesses and agreement; triggers confirm here too
  std::vector<ReplayCase> reproducers;  // run on CPU and every device the build has
  std::vector<TensorMap> data;          // the user's inputs for agreement; empty: `samples` draws
};

struct AttackResult {
  std::string name;  // trigger-guided, trigger-random, original-witnesses, reproducers, sampling
  int64_t runs = 0;
  int64_t failures = 0;
  std::string first_failure;  // "node 'log' at run 3", empty when none
};

struct ValidationReport {
  AnalysisResult analysis;  // of the fixed model
  std::vector<AttackResult> attacks;
  std::optional<Agreement> agreement;  // with an original only

  bool proved() const { return analysis.findings.empty(); }
  int64_t runs() const;
  int64_t failures() const;
  std::string verdict() const;  // "broken" (an attack succeeded), else "unproved", else "holds"
};

Result<ValidationReport> validate_fix(const Graph& fixed, const Graph* original, const ValidateOptions& options);

// Runs `feeds` through `graph` on `device` and names the first NaN/INF: a node output,
// or (gradient: true) a leaf's gradient from the scalar output or the outputs' sum.
// Empty when everything stays finite; a run that throws is reported as a failure too.
Result<std::string> first_nonfinite(const Graph& graph, const TensorMap& feeds, bool gradient, at::Device device);

}  // namespace nanguard
