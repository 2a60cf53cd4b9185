// Test helpers for the abstract facets of the shape, indexing, cast and random op
// families: soundness by sampling on a model built in the test (every concrete value
// within its bounds, every NaN/INF reported), and the analysis of such a model.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "harness/soundness.h"
#include "model/onnx_loader.h"
#include "test_models.h"

namespace nanguard::testing::movement {

struct Tally {
  int64_t models = 0, samples = 0, checked = 0, violations = 0;
  void print(const char* what) const {
    std::printf("[soundness] %s: %lld models, %lld samples, %lld values, %lld violations\n", what,
                static_cast<long long>(models), static_cast<long long>(samples), static_cast<long long>(checked),
                static_cast<long long>(violations));
  }
};

inline AnalyzeOptions ranges(const RangeMap& r) {
  AnalyzeOptions opt;
  opt.ranges = r;
  return opt;
}

inline AnalyzeOptions free_weights(const RangeMap& r, double lo, double hi) {
  AnalyzeOptions opt = ranges(r);
  opt.weights = WeightMode::kFree;
  opt.weight_range = Range{lo, hi};
  return opt;
}

inline void expect_sound(ModelBuilder& b, const AnalyzeOptions& opt, const std::string& what, Tally& tally,
                         int64_t samples = 12) {
  auto g = load_model_proto(b.proto(), "movement_check.onnx");
  ASSERT_TRUE(g.ok()) << what << ": " << g.status().message();
  auto analysed = analyze(*g, opt);
  ASSERT_TRUE(analysed.ok()) << what << ": " << analysed.status().message();
  for (const auto& f : analysed->findings)
    EXPECT_NE(f.hazard, "unsupported") << what << ": " << f.node << ": " << f.condition;
  auto rep = check_soundness(*g, opt, samples, 5);
  ASSERT_TRUE(rep.ok()) << what << ": " << rep.status().message();
  for (const auto& v : rep->violations)
    ADD_FAILURE() << what << ": sample " << v.sample << " node " << v.node << " tensor " << v.tensor << ": " << v.what
                  << " " << v.value << " not in [" << v.lo << ", " << v.hi << "]";
  EXPECT_GT(rep->checked_values, 0) << what;
  ++tally.models;
  tally.samples += rep->samples;
  tally.checked += rep->checked_values;
  tally.violations += static_cast<int64_t>(rep->violations.size());
}

inline AnalysisResult analysis(ModelBuilder& b, const AnalyzeOptions& opt) {
  auto g = load_model_proto(b.proto(), "movement_check.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  if (!g.ok()) return {};
  auto r = analyze(*g, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(*r) : AnalysisResult{};
}

// "node:hazard:kind" for each finding.
inline std::vector<std::string> summary(const AnalysisResult& r) {
  std::vector<std::string> out;
  for (const auto& f : r.findings) out.push_back(f.node + ":" + f.hazard + ":" + to_string(f.kind));
  return out;
}

}  // namespace nanguard::testing::movement
