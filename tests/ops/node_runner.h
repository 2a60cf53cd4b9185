// Test helper for the op families in ops/linear.cc, conv.cc, pool.cc and
// sequence_misc.cc: builds a one-node ONNX model, runs it through the Executor and
// returns its outputs (or the error message).
#pragma once

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

inline void set_string(onnx::NodeProto& node, const std::string& name, const std::string& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(value);
}

inline void set_floats(onnx::NodeProto& node, const std::string& name, const std::vector<float>& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOATS);
  for (float v : value) a->add_floats(v);
}

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

struct NodeRun {
  std::vector<at::Tensor> outputs;
  std::string error;  // empty when the run succeeded
};

// Inputs named "" are omitted optional inputs; integer inputs become initializers
// (attribute-like: shapes, sizes, zero points), the others runtime feeds.
// `out_rank` declares each output's rank (unknown dimensions).
inline NodeRun run_node(int64_t opset, const std::string& op,
                        const std::vector<std::pair<std::string, at::Tensor>>& inputs, const AttrFn& attrs = {},
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
  NodeRun r;
  auto g = load_model_proto(b.proto(), op + ".onnx");
  if (!g.ok()) return {{}, g.status().message()};
  auto ex = Executor::create(*g);
  if (!ex.ok()) return {{}, ex.status().message()};
  auto res = ex->run(feeds);
  if (!res.ok()) return {{}, res.status().message()};
  return {res->outputs, ""};
}

// Soundness by sampling of a model built in a test: every concrete value within its
// bounds, every NaN/INF reported. Returns the number of values compared.
inline int64_t expect_sound(ModelBuilder& b, const AnalyzeOptions& opt, const std::string& what,
                            int64_t samples = 20) {
  auto g = load_model_proto(b.proto(), what + ".onnx");
  EXPECT_TRUE(g.ok()) << what << ": " << g.status().message();
  if (!g.ok()) return 0;
  auto rep = check_soundness(*g, opt, samples, 11);
  EXPECT_TRUE(rep.ok()) << what << ": " << rep.status().message();
  if (!rep.ok()) return 0;
  for (const auto& v : rep->violations)
    ADD_FAILURE() << what << ": sample " << v.sample << " node " << v.node << " (" << v.tensor << "): " << v.what
                  << " " << v.value << " not in [" << v.lo << ", " << v.hi << "]";
  return rep->checked_values;
}

// Analyses a model built in a test.
inline AnalysisResult analyze_built(ModelBuilder& b, const AnalyzeOptions& opt, const std::string& what) {
  auto g = load_model_proto(b.proto(), what + ".onnx");
  EXPECT_TRUE(g.ok()) << what << ": " << g.status().message();
  if (!g.ok()) return {};
  auto r = analyze(*g, opt);
  EXPECT_TRUE(r.ok()) << what << ": " << r.status().message();
  return r.ok() ? std::move(*r) : AnalysisResult{};
}

inline AnalyzeOptions ranges_opt(const RangeMap& ranges, bool free_weights = false) {
  AnalyzeOptions opt;
  opt.ranges = ranges;
  if (free_weights) {
    opt.weights = WeightMode::kFree;
    opt.weight_range = Range{-0.5, 0.5};
  }
  return opt;
}

}  // namespace nanguard::testing
