// Test helpers for the abstract facets of the op families (activation, softmax,
// normalization, loss, reduce): soundness by sampling on a small model built in the
// test, and the findings the analyzer reports for it.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "harness/soundness.h"
#include "model/onnx_loader.h"
#include "test_models.h"

namespace nanguard::testing {

struct SoundTally {
  int64_t samples = 0, checked = 0, violations = 0;
};

// Samples `samples` points of the analysed box (inputs and free weights), runs the
// model for real and expects every value inside its bounds and every NaN/INF reported.
inline int64_t expect_sound(ModelBuilder& b, const AnalyzeOptions& opt, const std::string& what,
                            SoundTally* tally = nullptr, int64_t samples = 30) {
  auto g = load_model_proto(b.proto(), "abstract_check.onnx");
  EXPECT_TRUE(g.ok()) << what << ": " << g.status().message();
  if (!g.ok()) return 0;
  auto rep = check_soundness(*g, opt, samples, 11);
  EXPECT_TRUE(rep.ok()) << what << ": " << rep.status().message();
  if (!rep.ok()) return 0;
  for (const auto& v : rep->violations)
    ADD_FAILURE() << what << ": sample " << v.sample << " node " << v.node << " tensor " << v.tensor << ": " << v.what
                  << " " << v.value << " not in [" << v.lo << ", " << v.hi << "]";
  if (tally) {
    tally->samples += rep->samples;
    tally->checked += rep->checked_values;
    tally->violations += static_cast<int64_t>(rep->violations.size());
  }
  return rep->checked_values;
}

inline AnalyzeOptions ranges_of(const RangeMap& ranges) {
  AnalyzeOptions opt;
  opt.ranges = ranges;
  return opt;
}

inline AnalyzeOptions free_weights(const RangeMap& ranges, double lo, double hi) {
  AnalyzeOptions opt = ranges_of(ranges);
  opt.weights = WeightMode::kFree;
  opt.weight_range = Range{lo, hi};
  return opt;
}

inline AnalysisResult analysis_of(ModelBuilder& b, const AnalyzeOptions& opt) {
  auto g = load_model_proto(b.proto(), "abstract_check.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  if (!g.ok()) return {};
  auto r = analyze(*g, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(*r) : AnalysisResult{};
}

inline std::vector<Finding> findings_of(ModelBuilder& b, const AnalyzeOptions& opt) { return analysis_of(b, opt).findings; }

// "node:hazard" for each finding, to compare with an expected list.
inline std::vector<std::string> summary(const std::vector<Finding>& f) {
  std::vector<std::string> out;
  for (const auto& x : f) out.push_back(x.node + ":" + x.hazard);
  return out;
}

}  // namespace nanguard::testing
