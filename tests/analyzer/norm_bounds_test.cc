// Norm bounds: the spectral bound is above the largest singular value and close to it,
// every chained bound holds on sampled float32 executions, and a deep random conv
// stack whose intervals overflow is proved finite (until its input range widens).
#include <cmath>

#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "model/onnx_loader.h"
#include "ops/norm_bounds.h"
#include "oracle/executor.h"
#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;
using testing::set_attr;

TEST(SpectralNormBounds, AreAboveTheLargestSingularValueAndClose) {
  at::manual_seed(3);
  for (std::vector<int64_t> shape : {std::vector<int64_t>{1, 5, 7}, {3, 40, 12}, {2, 64, 576}, {1, 1, 9}, {1, 300, 20}}) {
    for (double scale : {1.0, 1e30, 1e-30}) {
      at::Tensor m = (at::randn(shape, at::kDouble) * scale).to(at::kFloat);
      at::Tensor sigma = at::linalg_svdvals(m.to(at::kDouble)).select(1, 0);
      std::vector<double> bound = spectral_norm_bounds(m);
      ASSERT_EQ(bound.size(), static_cast<size_t>(shape[0]));
      for (int64_t b = 0; b < shape[0]; ++b) {
        double s = sigma[b].item<double>();
        EXPECT_GE(bound[b], s) << shape[1] << "x" << shape[2] << " scale " << scale;
        EXPECT_LE(bound[b], 1.35 * s) << shape[1] << "x" << shape[2] << " scale " << scale;
      }
    }
  }
  // Rank one: the iteration is exact but for its rounding terms.
  at::Tensor u = at::randn({30, 1}, at::kDouble), v = at::randn({1, 50}, at::kDouble);
  at::Tensor r1 = at::matmul(u, v).unsqueeze(0);
  double s = at::linalg_svdvals(r1)[0][0].item<double>();
  EXPECT_GE(spectral_norm_bounds(r1)[0], s);
  EXPECT_LE(spectral_norm_bounds(r1)[0], s * 1.001);
  EXPECT_EQ(spectral_norm_bounds(at::zeros({1, 4, 4}))[0], 0.0);
  at::Tensor bad = at::ones({1, 3, 3});
  bad[0][1][1] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(spectral_norm_bounds(bad)[0], kNoNormBound);
  EXPECT_EQ(spectral_norm_bounds(at::ones({1, 100, 100}), 1e5)[0], kNoNormBound);  // over the cost cap
}

// The exact most windows one position falls in, counted: o * s + j * d = p.
TEST(WindowOverlap, MatchesCountingTheWindows) {
  for (int64_t k = 1; k <= 5; ++k)
    for (int64_t s = 1; s <= 4; ++s)
      for (int64_t d = 1; d <= 3; ++d) {
        int64_t most = 0;
        for (int64_t p = 0; p < 80; ++p) {
          int64_t count = 0;
          for (int64_t j = 0; j < k; ++j) count += p - j * d >= 0 && (p - j * d) % s == 0;
          most = std::max(most, count);
        }
        EXPECT_EQ(window_overlap(k, s, d), most) << "k " << k << " s " << s << " d " << d;
      }
}

at::Tensor kaiming(std::vector<int64_t> shape, double fan_in) { return at::randn(shape) * std::sqrt(2.0 / fan_in); }

// Every op with a norm facet, strided, grouped, dilated and padded, in one graph.
ModelBuilder facet_zoo() {
  at::manual_seed(5);
  ModelBuilder b;
  b.input("x", {2, 4, 9, 9}).output("y", {2, 5});
  b.initializer("w1", kaiming({6, 2, 3, 3}, 18)).initializer("b1", at::randn({6}));
  auto& c1 = b.node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1");
  set_attr(c1, "group", int64_t{2});
  set_attr(c1, "strides", std::vector<int64_t>{2, 1});
  set_attr(c1, "pads", std::vector<int64_t>{1, 2, 1, 0});
  set_attr(c1, "dilations", std::vector<int64_t>{1, 2});
  b.initializer("g", at::rand({6}) + 0.5).initializer("beta", at::randn({6})).initializer("mu", at::randn({6}));
  b.initializer("var", at::rand({6}) + 0.1);
  b.node("BatchNormalization", {"c1", "g", "beta", "mu", "var"}, {"bn"}, "bn");
  b.node("Relu", {"bn"}, {"r1"});
  auto& mp = b.node("MaxPool", {"r1"}, {"p1"}, "maxpool");
  set_attr(mp, "kernel_shape", std::vector<int64_t>{3, 3});
  set_attr(mp, "strides", std::vector<int64_t>{2, 2});
  set_attr(mp, "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.initializer("w2", kaiming({6, 6, 1, 1}, 6));
  b.node("Conv", {"p1", "w2"}, {"c2"}, "conv2");
  b.node("Add", {"c2", "p1"}, {"sum"}, "residual");
  b.initializer("k", at::tensor({-1.5f}));
  b.node("Mul", {"sum", "k"}, {"scaled"}, "scale");
  auto& lr = b.node("LeakyRelu", {"scaled"}, {"lr"});
  set_attr(lr, "alpha", 0.2f);
  auto& ap = b.node("AveragePool", {"lr"}, {"p2"}, "avgpool");
  set_attr(ap, "kernel_shape", std::vector<int64_t>{2, 2});
  set_attr(ap, "pads", std::vector<int64_t>{1, 1, 1, 1});
  set_attr(ap, "count_include_pad", int64_t{0});
  auto& cat = b.node("Concat", {"p2", "p2"}, {"cat"}, "concat");
  set_attr(cat, "axis", int64_t{1});
  b.initializer("pads", testing::longs({0, 0, 1, 1, 0, 0, 0, 2})).initializer("pv", at::tensor({0.5f}));
  b.node("Pad", {"cat", "pads", "pv"}, {"padded"}, "pad");
  b.node("GlobalAveragePool", {"padded"}, {"gap"}, "gap");
  auto& fl = b.node("Flatten", {"gap"}, {"flat"}, "flatten");
  set_attr(fl, "axis", int64_t{1});
  b.initializer("wf", kaiming({5, 12}, 12)).initializer("bf", at::randn({5}));
  auto& gemm = b.node("Gemm", {"flat", "wf", "bf"}, {"y"}, "fc");
  set_attr(gemm, "transB", int64_t{1});
  set_attr(gemm, "alpha", 0.7f);
  return b;
}

TEST(NormBounds, HoldOnSampledExecutions) {
  ModelBuilder b = facet_zoo();
  AnalyzeOptions opt{{{"x", {-3, 2}}}};
  opt.norms.above = 1e-300;  // every op bounds its output's norm
  opt.norms.start = -1;      // chained back to the input
  AnalysisResult r = testing::analyze_built(b, opt);
  std::vector<std::string> tensors{"c1", "bn", "r1", "p1", "c2", "sum", "scaled", "lr", "p2", "cat", "padded", "gap", "flat", "y"};
  for (const auto& t : tensors) {
    ASSERT_TRUE(r.norms.count(t)) << t;
    EXPECT_TRUE(std::isfinite(r.norms.at(t))) << t;
  }
  auto g = load_model_proto(b.proto(), "norms.onnx");
  ASSERT_TRUE(g.ok());
  auto ex = Executor::create(*g, {});
  ASSERT_TRUE(ex.ok());
  at::manual_seed(9);
  for (int sample = 0; sample < 40; ++sample) {
    // Corners of the box (where norms are largest) and uniform points.
    at::Tensor x = sample % 2 ? at::rand({2, 4, 9, 9}) * 5 - 3 : at::where(at::rand({2, 4, 9, 9}) < 0.5, -3.0, 2.0).to(at::kFloat);
    auto run = ex->run({{"x", x}});
    ASSERT_TRUE(run.ok()) << run.status().message();
    for (const auto& t : tensors) {
      double n = at::linalg_vector_norm(run->values.at(t), 2, c10::nullopt, false, at::kDouble).item<double>();
      EXPECT_LE(n, r.norms.at(t)) << t << " sample " << sample;
    }
  }
  EXPECT_GT(testing::expect_sound(b, opt, "facet zoo"), 0);
}

// 40 random conv layers of 64 channels: intervals grow by up to the rows' sum of |W|
// (27x; about 10x with symbolic bounds) per layer and pass float32's limit; operator
// norms grow by about 6x, which keeps the bound near 1e32.
TEST(NormBounds, ProveADeepConvStackFreeOfOverflow) {
  ModelBuilder b = testing::random_conv_stack(40, 64);
  AnalyzeOptions opt{{{"x", {0, 1}}}};
  AnalyzeOptions without = opt;
  without.norms.above = 0;
  AnalysisResult plain = testing::analyze_built(b, without);
  ASSERT_FALSE(plain.findings.empty());
  EXPECT_EQ(plain.findings[0].hazard, "overflow");
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_TRUE(r.findings.empty()) << r.findings[0].node << ": " << r.findings[0].hazard;
  EXPECT_FALSE(r.norm_tightened.empty());
  EXPECT_LT(r.intervals.at("y").max(), 1e34) << r.intervals.at("y").max();
  testing::expect_sound(b, opt, "deep conv stack", nullptr, 10);
  // Inputs up to 1e30: the norm bound passes the limit and the overflow stays.
  AnalysisResult wide = testing::analyze_built(b, AnalyzeOptions{{{"x", {0, 1e30}}}});
  ASSERT_FALSE(wide.findings.empty());
  EXPECT_EQ(wide.findings[0].hazard, "overflow");
}

// Lazy weights (no float64 copy kept) change no bound: the same overflow without norm
// bounds, the same proof and final interval with them, and the weights stay lazy.
TEST(LazyWeights, GiveTheSameBoundsAndFindings) {
  ModelBuilder b = testing::random_conv_stack(40, 64);
  for (double above : {0.0, 1e30}) {
    AnalyzeOptions opt{{{"x", {0, 1}}}};
    opt.norms.above = above;
    AnalysisResult eager = testing::analyze_built(b, opt);
    opt.lazy_weights_above = 1;
    AnalysisResult lazy = testing::analyze_built(b, opt);
    ASSERT_EQ(lazy.findings.size(), eager.findings.size()) << above;
    for (size_t i = 0; i < lazy.findings.size(); ++i) EXPECT_EQ(lazy.findings[i].node, eager.findings[i].node);
    EXPECT_EQ(lazy.norm_tightened.size(), eager.norm_tightened.size());
    EXPECT_EQ(lazy.intervals.at("y").max(), eager.intervals.at("y").max());
    EXPECT_EQ(lazy.intervals.at("y").min(), eager.intervals.at("y").min());
    int kept_lazy = 0;
    for (const auto& [name, t] : lazy.intervals) kept_lazy += t.lazy();
    EXPECT_GT(kept_lazy, 0);
  }
}

}  // namespace
}  // namespace nanguard
