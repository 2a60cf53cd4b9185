// Soundness by sampling: run the model for real on points inside the analysed box
// (corners, float32 edge values, uniform draws; free weights drawn too) and check
// that every node's concrete values lie within its abstract bounds, and that every
// NaN/INF that appears was reported as a finding at that node or upstream.
#pragma once

#include <string>
#include <vector>

#include "analyzer/analyzer.h"
#include "model/status.h"

namespace nanguard {

struct SoundnessViolation {
  int64_t sample = 0;
  std::string node, tensor;
  double value = 0, lo = 0, hi = 0;
  std::string what;  // "out of bounds" or "unreported NaN/INF"
};

struct SoundnessReport {
  int64_t samples = 0;
  int64_t checked_values = 0;  // tensor elements compared against bounds
  int64_t backward_samples = 0;  // runs whose gradients were checked too
  int64_t gradient_values = 0;   // gradient elements those runs checked
  int64_t stopped_samples = 0;   // runs that threw (each judged: explained or a violation)
  std::vector<SoundnessViolation> violations;
};

// Stops after `samples` executions, or once `budget_seconds` (> 0) have passed.
Result<SoundnessReport> check_soundness(const Graph& graph, const AnalyzeOptions& options,
                                        int64_t samples, uint64_t seed, double budget_seconds = 0);

}  // namespace nanguard
