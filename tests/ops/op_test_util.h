// Helpers shared by the op tests (tests/ops/*_test.cc):
//  - build a one-node model (run_node), or run a model built in the test (run_model,
//    run_built, run_outputs, run_output), and get its outputs or the error message;
//  - analyze a built model (analyze_built, findings_of) and summarise its findings
//    (summary, kind_summary, hazards_of);
//  - check soundness by sampling (expect_sound, expect_sound_supported): every
//    concrete value within its bounds, every NaN/INF reported, tallied in a SoundTally.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "harness/soundness.h"
#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "test_models.h"

namespace nanguard::testing {

using AttrFn = std::function<void(onnx::NodeProto&)>;
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// ---- attributes ---------------------------------------------------------------

inline void set_string(onnx::NodeProto& node, const std::string& name, const std::string& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(value);
}

inline void set_strings(onnx::NodeProto& node, const std::string& name, const std::vector<std::string>& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRINGS);
  for (const auto& s : value) a->add_strings(s);
}

inline void set_floats(onnx::NodeProto& node, const std::string& name, const std::vector<float>& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOATS);
  for (float v : value) a->add_floats(v);
}

// ---- running ------------------------------------------------------------------

inline int32_t elem_type_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kDouble: return onnx::TensorProto::DOUBLE;
    case at::kLong: return onnx::TensorProto::INT64;
    case at::kInt: return onnx::TensorProto::INT32;
    case at::kByte: return onnx::TensorProto::UINT8;
    case at::kChar: return onnx::TensorProto::INT8;
    default: return onnx::TensorProto::FLOAT;
  }
}

// Tensor helpers: int64 values; float values as [1, 1, N] (one batch, one channel).
inline at::Tensor longs(std::vector<int64_t> v) { return at::tensor(v, at::kLong); }
inline at::Tensor seq(std::vector<float> v) { return at::tensor(v).reshape({1, 1, -1}); }

inline ExecOptions with_seed(uint64_t seed) {
  ExecOptions opt;
  opt.seed = seed;
  return opt;
}

// Runs a model built in the test; the graph outlives the run.
inline Result<ExecResult> run_model(ModelBuilder& b, const TensorMap& feeds, const ExecOptions& opt = {}) {
  auto g = load_model_proto(b.proto(), "op_test.onnx");
  if (!g.ok()) return g.status();
  auto ex = Executor::create(*g, opt);
  if (!ex.ok()) return ex.status();
  return ex->run(feeds);
}

struct NodeRun {
  std::vector<at::Tensor> outputs;
  std::string error;  // empty when the run succeeded
};

// As run_model, with the error (of loading, creating or running) as a message.
inline NodeRun run_built(ModelBuilder& b, const TensorMap& feeds, const ExecOptions& opt = {}) {
  auto r = run_model(b, feeds, opt);
  if (!r.ok()) return {{}, r.status().message()};
  return {r->outputs, ""};
}

// Expects the run to succeed: all its outputs (none when it failed).
inline std::vector<at::Tensor> run_outputs(ModelBuilder& b, const TensorMap& feeds, const ExecOptions& opt = {}) {
  auto r = run_model(b, feeds, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->outputs : std::vector<at::Tensor>{};
}

// Expects the run to succeed: output `output` (undefined when it failed).
inline at::Tensor run_output(ModelBuilder& b, const TensorMap& feeds, size_t output = 0,
                             const ExecOptions& opt = {}) {
  auto r = run_model(b, feeds, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->outputs.at(output) : at::Tensor();
}

// One node `op`. Inputs named "" are omitted optional inputs; integer inputs become
// initializers (attribute-like: shapes, sizes, zero points), the others runtime feeds.
// `out_rank` declares each output's rank (unknown dimensions).
inline NodeRun run_node(int64_t opset, const std::string& op, const NamedTensors& inputs, const AttrFn& attrs = {},
                        size_t num_outputs = 1, size_t out_rank = 0, int32_t out_type = onnx::TensorProto::FLOAT) {
  ModelBuilder b(opset);
  TensorMap feeds;
  std::vector<std::string> names, outs;
  for (const auto& [name, t] : inputs) {
    names.push_back(name);
    if (name.empty()) continue;
    if (at::isFloatingType(t.scalar_type())) {
      b.input(name, t.sizes().vec(), elem_type_of(t));
      feeds[name] = t;
    } else {
      b.initializer(name, t);
    }
  }
  for (size_t i = 0; i < num_outputs; ++i) {
    outs.push_back("y" + std::to_string(i));
    b.output(outs.back(), std::vector<int64_t>(out_rank, -1), i == 0 ? out_type : onnx::TensorProto::INT64);
    // ModelBuilder leaves a rank-0 output without a shape, which the checker rejects.
    b.proto().mutable_graph()->mutable_output(static_cast<int>(i))->mutable_type()->mutable_tensor_type()->mutable_shape();
  }
  onnx::NodeProto& n = b.node(op, names, outs, "n");
  if (attrs) attrs(n);
  return run_built(b, feeds);
}

// ---- analysis -----------------------------------------------------------------

inline AnalyzeOptions ranges_of(const RangeMap& ranges) {
  AnalyzeOptions opt;
  opt.ranges = ranges;
  return opt;
}

// The ranges, with the weights free in [lo, hi] (fixed when `free` is false).
inline AnalyzeOptions free_weights(const RangeMap& ranges, double lo, double hi, bool free = true) {
  AnalyzeOptions opt = ranges_of(ranges);
  if (!free) return opt;
  opt.weights = WeightMode::kFree;
  opt.weight_range = Range{lo, hi};
  return opt;
}

inline AnalysisResult analyze_built(ModelBuilder& b, const AnalyzeOptions& opt, const std::string& what = "model") {
  auto g = load_model_proto(b.proto(), "op_test.onnx");
  EXPECT_TRUE(g.ok()) << what << ": " << g.status().message();
  if (!g.ok()) return {};
  auto r = analyze(*g, opt);
  EXPECT_TRUE(r.ok()) << what << ": " << r.status().message();
  return r.ok() ? std::move(*r) : AnalysisResult{};
}

inline std::vector<Finding> findings_of(ModelBuilder& b, const AnalyzeOptions& opt) {
  return analyze_built(b, opt).findings;
}

// "node:hazard" for each finding, to compare with an expected list.
inline std::vector<std::string> summary(const std::vector<Finding>& f) {
  std::vector<std::string> out;
  for (const auto& x : f) out.push_back(x.node + ":" + x.hazard);
  return out;
}

// "node:hazard:kind" for each finding.
inline std::vector<std::string> kind_summary(const AnalysisResult& r) {
  std::vector<std::string> out;
  for (const auto& f : r.findings) out.push_back(f.node + ":" + f.hazard + ":" + to_string(f.kind));
  return out;
}

// The hazard of each finding.
inline std::vector<std::string> hazards_of(const AnalysisResult& r) {
  std::vector<std::string> h;
  for (const auto& f : r.findings) h.push_back(f.hazard);
  return h;
}

// ---- soundness by sampling ----------------------------------------------------

struct SoundTally {
  int64_t models = 0, samples = 0, checked = 0, violations = 0;
  void print(const char* what) const {
    std::printf("[soundness] %s: %lld models, %lld samples, %lld values, %lld violations\n", what,
                static_cast<long long>(models), static_cast<long long>(samples), static_cast<long long>(checked),
                static_cast<long long>(violations));
  }
};

// Samples `samples` points of the analysed box (inputs and free weights), runs the
// model for real and expects every value inside its bounds and every NaN/INF
// reported. Returns the number of values compared.
inline int64_t expect_sound(ModelBuilder& b, const AnalyzeOptions& opt, const std::string& what,
                            SoundTally* tally = nullptr, int64_t samples = 30, uint64_t seed = 11) {
  auto g = load_model_proto(b.proto(), "op_test.onnx");
  EXPECT_TRUE(g.ok()) << what << ": " << g.status().message();
  if (!g.ok()) return 0;
  auto rep = check_soundness(*g, opt, samples, seed);
  EXPECT_TRUE(rep.ok()) << what << ": " << rep.status().message();
  if (!rep.ok()) return 0;
  for (const auto& v : rep->violations)
    ADD_FAILURE() << what << ": sample " << v.sample << " node " << v.node << " tensor " << v.tensor << ": " << v.what
                  << " " << v.value << " not in [" << v.lo << ", " << v.hi << "]";
  if (tally) {
    ++tally->models;
    tally->samples += rep->samples;
    tally->checked += rep->checked_values;
    tally->violations += static_cast<int64_t>(rep->violations.size());
  }
  return rep->checked_values;
}

// As expect_sound (12 samples, seed 5), and also expects the analysis to support
// every node and at least one value compared.
inline void expect_sound_supported(ModelBuilder& b, const AnalyzeOptions& opt, const std::string& what,
                                   SoundTally& tally, int64_t samples = 12) {
  AnalysisResult analysed = analyze_built(b, opt, what);
  for (const auto& f : analysed.findings)
    EXPECT_NE(f.hazard, "unsupported") << what << ": " << f.node << ": " << f.condition;
  EXPECT_GT(expect_sound(b, opt, what, &tally, samples, 5), 0) << what;
}

}  // namespace nanguard::testing
