// Symbolic bounds: exact where back-substitution sees a cancellation that intervals
// cannot, never wider than the intervals, and sound on sampled float32 executions of
// conv/residual/BN/concat stacks with padding and strides.
#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "analyzer/symbolic_bounds.h"
#include "harness/soundness.h"
#include "model/onnx_loader.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;
using testing::set_attr;

// y = W2 relu(W1 x + b1): h1 = h2 = x1 + 1 (a stable ReLU), y = h1 - h2 = 0 exactly,
// while intervals give y in [-(hi - lo), hi - lo].
ModelBuilder cancelling_mlp() {
  ModelBuilder b;
  b.input("x", {1, 2}).output("y", {1, 1});
  b.initializer("w1", at::tensor({1.f, 0.f, 1.f, 0.f}).reshape({2, 2})).initializer("b1", at::ones({2}));
  b.initializer("w2", at::tensor({1.f, -1.f}).reshape({2, 1}));
  set_attr(b.node("Gemm", {"x", "w1", "b1"}, {"h"}), "transB", int64_t{1});
  b.node("Relu", {"h"}, {"r"});
  b.node("MatMul", {"r", "w2"}, {"y"}, "out");
  return b;
}

AnalysisResult analyze_with(ModelBuilder& b, AnalyzeOptions opt) {
  auto g = load_model_proto(b.proto(), "symbolic.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  auto r = analyze(*g, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : AnalysisResult{};
}

TEST(SymbolicBounds, CancellingGemmReluGemmIsExact) {
  ModelBuilder b = cancelling_mlp();
  auto g = load_model_proto(b.proto(), "mlp.onnx");
  ASSERT_TRUE(g.ok());
  AnalyzeOptions plain{{{"x", {0, 3}}}};
  plain.symbolic_window = 0;
  auto r = analyze(*g, plain);
  ASSERT_TRUE(r.ok());
  EXPECT_GE(r->intervals.at("y").max(), 2.9);  // intervals: [1, 4] - [1, 4]
  auto s = symbolic_channel_bounds(*g, r->intervals, "y", r->intervals.at("y"));
  ASSERT_TRUE(s.has_value());
  EXPECT_LE(s->hi.max().item<double>(), 1e-5);
  EXPECT_GE(s->lo.min().item<double>(), -1e-5);
  EXPECT_GE(s->hi.min().item<double>(), 0.0);  // and still contains the real 0
  EXPECT_LE(s->lo.max().item<double>(), 0.0);
}

// On demand from a hazard: log(y + 1) is flagged by intervals (y + 1 in [-2, 4]) and
// proved safe once the operand of the Log is refined symbolically.
TEST(SymbolicBounds, HazardOperandIsRefinedOnDemand) {
  for (int window : {0, 8}) {
    ModelBuilder b = cancelling_mlp();
    b.initializer("one", at::ones({1}));
    b.node("Add", {"y", "one"}, {"y1"});
    b.node("Log", {"y1"}, {"z"}, "log");
    b.proto().mutable_graph()->mutable_output(0)->set_name("z");
    AnalyzeOptions opt{{{"x", {0, 3}}}};
    opt.symbolic_window = window;
    AnalysisResult r = analyze_with(b, opt);
    if (window == 0) {
      ASSERT_EQ(r.findings.size(), 1u);
      EXPECT_EQ(r.findings[0].hazard, "log-nonpositive");
    } else {
      EXPECT_TRUE(r.findings.empty()) << r.findings[0].hazard;
      EXPECT_GE(r.intervals.at("y1").min(), 0.99);
    }
  }
}

// x + 1 + 1 + 1 + 1 + 1 - x reaches x by two paths; their rows must be summed before
// x's interval is put in, or the bound is [-19.5, 20.5] instead of 5. A window too
// short to reach x twice keeps the interval (and the Log's finding).
TEST(SymbolicBounds, PathsMeetingAtAnInputCancelBeforeItsIntervalIsUsed) {
  for (int window : {4, 16}) {
    ModelBuilder b = testing::cancelling_log_model();
    AnalyzeOptions opt{{{"x", {-10, 10}}}};
    opt.symbolic_window = window;
    AnalysisResult r = analyze_with(b, opt);
    if (window == 4) {
      ASSERT_EQ(r.findings.size(), 1u);
      continue;
    }
    EXPECT_TRUE(r.findings.empty());
    EXPECT_GE(r.intervals.at("e").min(), 0.49);
    EXPECT_LE(r.intervals.at("e").max(), 0.51);
  }
}

// conv1x1_identity(0.5 + x) with x broadcast from [1, 4, 1, 1]: the Add refuses to
// pass x's rows on (its shape is not the output's) after seeing the constant; the rows
// are then evaluated on the Add's output, which already holds the 0.5, so adding it
// first too would shift the bound to [0, 2] and exclude the real -0.5.
TEST(SymbolicBounds, AnAddThatRefusesCountsItsConstantOnce) {
  ModelBuilder b;
  b.input("x", {1, 4, 1, 1}).output("y", {1, 4, 3, 3});
  b.initializer("c", at::full({1, 4, 3, 3}, 0.5f)).initializer("w", at::eye(4).reshape({4, 4, 1, 1}));
  b.node("Add", {"c", "x"}, {"a"});
  b.node("Conv", {"a", "w"}, {"y"}, "conv");
  AnalyzeOptions opt{{{"x", {-1, 1}}}};
  opt.symbolic_above = 0;
  AnalysisResult r = analyze_with(b, opt);
  EXPECT_LE(r.intervals.at("y").min(), -0.5);
  EXPECT_GE(r.intervals.at("y").max(), 1.5);
}

at::Tensor random_weight(std::vector<int64_t> shape, double scale, int64_t seed) {
  at::manual_seed(seed);
  return (at::randn(shape) * scale).to(at::kFloat);
}

onnx::NodeProto& conv(ModelBuilder& b, std::vector<std::string> in, const std::string& y, int64_t stride, int64_t pad) {
  auto& n = b.node("Conv", std::move(in), {y});
  set_attr(n, "strides", std::vector<int64_t>{stride, stride});
  set_attr(n, "pads", std::vector<int64_t>{pad, pad, pad, pad});
  return n;
}

// A residual block with a strided padded 3x3 conv, BN, a strided 1x1 shortcut, a
// channel concat and a second block on top: deep enough for intervals to lose.
ModelBuilder residual_net(int64_t seed) {
  ModelBuilder b;
  b.input("x", {1, 4, 9, 9}).output("out", {1, 12, 5, 5});
  b.initializer("w1", random_weight({8, 4, 3, 3}, 0.4, seed)).initializer("bias1", random_weight({8}, 0.1, seed + 1));
  b.initializer("g", at::rand({8}) + 0.5).initializer("beta", random_weight({8}, 0.2, seed + 2));
  b.initializer("mean", random_weight({8}, 0.3, seed + 3)).initializer("var", at::rand({8}) + 0.2);
  b.initializer("w2", random_weight({8, 8, 1, 1}, 0.5, seed + 4)).initializer("ws", random_weight({8, 4, 1, 1}, 0.5, seed + 5));
  b.initializer("w3", random_weight({8, 8, 3, 3}, 0.3, seed + 6)).initializer("w4", random_weight({4, 8, 1, 1}, 0.5, seed + 7));
  b.initializer("half", at::full({1}, 0.5f));
  conv(b, {"x", "w1", "bias1"}, "c1", 2, 1);
  b.node("BatchNormalization", {"c1", "g", "beta", "mean", "var"}, {"bn"});
  b.node("Relu", {"bn"}, {"r1"});
  conv(b, {"r1", "w2"}, "c2", 1, 0);
  conv(b, {"x", "ws"}, "sc", 2, 0);
  b.node("Add", {"c2", "sc"}, {"s1"});
  b.node("Relu", {"s1"}, {"r2"});
  conv(b, {"r2", "w3"}, "c3", 1, 1);
  b.node("Mul", {"c3", "half"}, {"m3"});
  b.node("Relu", {"m3"}, {"r3"});
  conv(b, {"r3", "w4"}, "c4", 1, 0);
  b.node("Sub", {"c4", "half"}, {"c5"});
  auto& cat = b.node("Concat", {"r2", "c5"}, {"out"});
  set_attr(cat, "axis", int64_t{1});
  return b;
}

AnalyzeOptions everywhere(double lo, double hi) {
  AnalyzeOptions opt{{{"x", {lo, hi}}}};
  opt.symbolic_above = 0;  // refine every affine output, not only the large ones
  return opt;
}

// Refinement only intersects: every tensor's bounds lie within the intervals', and at
// least one is strictly tighter (the test would not exercise anything otherwise).
TEST(SymbolicBounds, NeverWiderThanIntervalsAndTighterSomewhere) {
  ModelBuilder b = residual_net(3);
  AnalyzeOptions plain = everywhere(-1, 1);
  plain.symbolic_window = 0;
  AnalysisResult p = analyze_with(b, plain), s = analyze_with(b, everywhere(-1, 1));
  bool tighter = false;
  for (const auto& [name, iv] : s.intervals) {
    const IntervalTensor& q = p.intervals.at(name);
    if (iv.exact()) continue;
    EXPECT_TRUE((iv.full_lo() >= q.full_lo()).all().item<bool>()) << name;
    EXPECT_TRUE((iv.full_hi() <= q.full_hi()).all().item<bool>()) << name;
    tighter |= (iv.full_hi() < q.full_hi() - 1e-9).any().item<bool>();
  }
  EXPECT_TRUE(tighter);
}

TEST(SymbolicBounds, RefinedBoundsHoldOnSampledExecutions) {
  int64_t checked = 0;
  for (int64_t seed : {1, 2, 3, 4}) {
    for (auto [lo, hi] : {std::pair{-1.0, 1.0}, std::pair{0.5, 1.0}, std::pair{-3.0, -2.0}, std::pair{-3.0, 0.5}}) {
      ModelBuilder b = residual_net(seed);
      auto g = load_model_proto(b.proto(), "residual.onnx");
      ASSERT_TRUE(g.ok()) << g.status().message();
      auto rep = check_soundness(*g, everywhere(lo, hi), 150, seed);
      ASSERT_TRUE(rep.ok()) << rep.status().message();
      checked += rep->checked_values;
      for (const auto& v : rep->violations)
        ADD_FAILURE() << "seed " << seed << " " << v.node << ": " << v.what << " " << v.value << " not in [" << v.lo
                      << ", " << v.hi << "]";
    }
  }
  EXPECT_GT(checked, 0);
}

TEST(SymbolicBounds, CancellingMlpHoldsOnSampledExecutions) {
  ModelBuilder b = cancelling_mlp();
  auto g = load_model_proto(b.proto(), "mlp.onnx");
  ASSERT_TRUE(g.ok());
  auto rep = check_soundness(*g, everywhere(-2, 3), 300, 5);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->violations.empty()) << rep->violations[0].node << " " << rep->violations[0].value;
}

}  // namespace
}  // namespace nanguard
