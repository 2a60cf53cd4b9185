// Normalizations: BatchNormalization inference vs training mode (opset 15) and the
// refused pre-14 training outputs, the zero-variance and zero-vector NaN cases,
// LayerNormalization's optional outputs, MVN's function body, LRN's window.
#include <cmath>
#include <functional>
#include <limits>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using NodeAttrs = testing::AttrFn;
using Inits = testing::NamedTensors;

struct Out {
  std::vector<at::Tensor> values;
  std::string error;
};

// One node `op` on input x and initializers; `outputs` names its outputs, all graph
// outputs.
Out run_norm(const std::string& op, int64_t opset, const at::Tensor& x, const Inits& inits,
             std::vector<std::string> outputs, const NodeAttrs& attrs = {}) {
  testing::ModelBuilder b(opset);
  b.input("x", x.sizes().vec());
  for (const auto& o : outputs) b.output(o, std::vector<int64_t>(1, -1));
  for (auto& o : *b.proto().mutable_graph()->mutable_output()) o.mutable_type()->mutable_tensor_type()->mutable_shape()->clear_dim();
  std::vector<std::string> ins{"x"};
  for (const auto& [name, t] : inits) {
    ins.push_back(name);
    if (!name.empty()) b.initializer(name, t);
  }
  auto& n = b.node(op, ins, outputs, "n");
  if (attrs) attrs(n);
  testing::NodeRun r = testing::run_built(b, {{"x", x}});
  return {r.outputs, r.error};
}

Inits bn_params(float var) {
  return {{"s", at::tensor({2.f})}, {"b", at::tensor({1.f})}, {"m", at::tensor({0.5f})}, {"v", at::tensor({var})}};
}

TEST(Normalization, BatchNormInferenceAndZeroVariance) {
  at::Tensor x = at::tensor({0.5f, 1.5f}).reshape({1, 1, 2});
  Out y = run_norm("BatchNormalization", 15, x, bn_params(1.f), {"y"});
  ASSERT_EQ(y.error, "");
  EXPECT_NEAR(y.values[0][0][0][1].item<float>(), 1.f / std::sqrt(1.f + 1e-5f) * 2 + 1, 1e-6);
  // Variance 0 and epsilon 0: (x - mean) / 0 is INF, and 0 / 0 at x == mean is NaN.
  Out z = run_norm("BatchNormalization", 9, x, bn_params(0.f), {"y"},
                   [](onnx::NodeProto& n) { testing::set_attr(n, "epsilon", 0.f); });
  ASSERT_EQ(z.error, "");
  EXPECT_TRUE(std::isnan(z.values[0][0][0][0].item<float>()));
  EXPECT_TRUE(std::isinf(z.values[0][0][0][1].item<float>()));
}

TEST(Normalization, BatchNormTrainingModes) {
  at::Tensor x = at::tensor({1.f, 3.f}).reshape({2, 1});
  Out t = run_norm("BatchNormalization", 15, x, bn_params(1.f), {"y", "rm", "rv"},
                   [](onnx::NodeProto& n) { testing::set_attr(n, "training_mode", int64_t{1}); });
  ASSERT_EQ(t.error, "");
  // Batch mean 2, population variance 1.
  EXPECT_NEAR(t.values[0][0][0].item<float>(), -1.f / std::sqrt(1.f + 1e-5f) * 2 + 1, 1e-6);
  EXPECT_NEAR(t.values[1][0].item<float>(), 0.5f * 0.9f + 2.f * 0.1f, 1e-6);
  EXPECT_NEAR(t.values[2][0].item<float>(), 1.f * 0.9f + 1.f * 0.1f, 1e-6);
  Out old = run_norm("BatchNormalization", 9, x, bn_params(1.f), {"y", "mean", "var", "sm", "sv"});
  EXPECT_NE(old.error.find("not supported"), std::string::npos) << old.error;
}

TEST(Normalization, LayerNormOutputsAndGradient) {
  at::Tensor x = at::tensor({1.f, 2.f, 3.f, 4.f, 4.f, 4.f}).reshape({2, 3});
  Out y = run_norm("LayerNormalization", 17, x, {{"s", at::ones({3})}, {"b", at::zeros({3})}},
                   {"y", "mean", "inv"});
  ASSERT_EQ(y.error, "");
  EXPECT_TRUE(at::allclose(y.values[1], at::tensor({2.f, 4.f}).reshape({2, 1})));
  EXPECT_NEAR(y.values[2][0][0].item<float>(), 1.f / std::sqrt(2.f / 3 + 1e-5f), 1e-4);
  EXPECT_NEAR(y.values[2][1][0].item<float>(), 1.f / std::sqrt(1e-5f), 1e-1);  // constant row
  EXPECT_TRUE(at::equal(y.values[0][1], at::zeros({3})));
  // Without B, and epsilon 0 on the constant row: 0 * inf = NaN.
  Out z = run_norm("LayerNormalization", 17, x, {{"s", at::ones({3})}}, {"y"},
                   [](onnx::NodeProto& n) { testing::set_attr(n, "epsilon", 0.f); });
  ASSERT_EQ(z.error, "");
  EXPECT_TRUE(z.values[0][1].isnan().all().item<bool>());
}

TEST(Normalization, LpAndMeanVarianceNormalization) {
  at::Tensor x = at::tensor({3.f, -4.f, 0.f, 0.f}).reshape({2, 2});
  Out l2 = run_norm("LpNormalization", 13, x, {}, {"y"});
  ASSERT_EQ(l2.error, "");
  EXPECT_TRUE(at::allclose(l2.values[0][0], at::tensor({0.6f, -0.8f})));
  EXPECT_TRUE(l2.values[0][1].isnan().all().item<bool>());  // 0 / ||0||
  Out l1 = run_norm("LpNormalization", 13, x, {}, {"y"}, [](onnx::NodeProto& n) { testing::set_attr(n, "p", int64_t{1}); });
  EXPECT_TRUE(at::allclose(l1.values[0][0], at::tensor({3.f / 7, -4.f / 7})));
  at::Tensor m = at::tensor({1.f, 3.f, 5.f, 5.f}).reshape({2, 2});
  Out mvn = run_norm("MeanVarianceNormalization", 13, m, {}, {"y"},
                     [](onnx::NodeProto& n) { testing::set_attr(n, "axes", std::vector<int64_t>{1}); });
  ASSERT_EQ(mvn.error, "");
  EXPECT_TRUE(at::allclose(mvn.values[0][0], at::tensor({-1.f, 1.f})));
  EXPECT_TRUE(at::equal(mvn.values[0][1], at::zeros({2})));  // 0 / (0 + 1e-9)
}

TEST(Normalization, LrnWindowAcrossChannels) {
  at::Tensor x = at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({1, 4, 1, 1});
  Out y = run_norm("LRN", 13, x, {}, {"y"}, [](onnx::NodeProto& n) {
    testing::set_attr(n, "size", int64_t{2});
    testing::set_attr(n, "alpha", 1.f);
    testing::set_attr(n, "beta", 1.f);
  });
  ASSERT_EQ(y.error, "");
  // size 2: the window of c is [c, c + 1].
  std::vector<float> sq{1 + 4, 4 + 9, 9 + 16, 16};
  for (int c = 0; c < 4; ++c)
    EXPECT_NEAR(y.values[0][0][c][0][0].item<float>(), (c + 1) / (1 + sq[c] / 2), 1e-6) << c;
}

// ---- abstract facets ------------------------------------------------------------

const std::vector<std::pair<double, double>> kNormBoxes{{-3, 3}, {0, 1}, {-100, 100}, {1e-30, 1e-20}, {-1e6, 1e6},
                                                        {0.5, 2}, {-1, -1e-3}, {3, 3.001}};

using Build = std::function<void(testing::ModelBuilder&)>;

void norm_sound(const std::string& what, const Build& build, testing::SoundTally& tally, int64_t opset = 17) {
  for (auto [lo, hi] : kNormBoxes) {
    for (bool free : {false, true}) {
      testing::ModelBuilder b(opset);
      build(b);
      RangeMap r{{"x", {lo, hi}}};
      testing::expect_sound(b, free ? testing::free_weights(r, 0.1, 2) : testing::ranges_of(r),
                            what + " on [" + std::to_string(lo) + ", " + std::to_string(hi) + "]" + (free ? " free" : ""), &tally, 12);
    }
  }
}

at::Tensor rnd_t(std::vector<int64_t> shape, double lo, double hi) { return at::empty(shape, at::kFloat).uniform_(lo, hi); }

TEST(NormalizationAbstract, SoundOnBoxesFixedAndFreeWeights) {
  testing::SoundTally tally;
  at::Tensor c3a = rnd_t({3}, -1, 1), c3b = rnd_t({3}, 0.5, 2), c3c = rnd_t({3}, -1, 1), var = rnd_t({3}, 0.01, 3);
  norm_sound("BatchNormalization", [&](testing::ModelBuilder& b) {
    b.input("x", {2, 3, 4, 4}).output("y", {2, 3, 4, 4});
    b.initializer("s", c3b).initializer("bias", c3a).initializer("m", c3c).initializer("v", var);
    b.node("BatchNormalization", {"x", "s", "bias", "m", "v"}, {"y"}, "n");
  }, tally);
  at::Tensor w8 = rnd_t({8}, -2, 2), b8 = rnd_t({8}, -1, 1), w38 = rnd_t({3, 8}, -2, 2);
  norm_sound("LayerNormalization", [&](testing::ModelBuilder& b) {
    b.input("x", {2, 3, 8}).output("y", {2, 3, 8}).output("mean", {2, 3, 1}).output("inv", {2, 3, 1});
    b.initializer("s", w8).initializer("bias", b8);
    b.node("LayerNormalization", {"x", "s", "bias"}, {"y", "mean", "inv"}, "n");
  }, tally);
  norm_sound("LayerNormalization axis 1", [&](testing::ModelBuilder& b) {
    b.input("x", {2, 3, 8}).output("y", {2, 3, 8});
    b.initializer("s", w38);
    testing::set_attr(b.node("LayerNormalization", {"x", "s"}, {"y"}, "n"), "axis", int64_t{1});
  }, tally);
  norm_sound("InstanceNormalization", [&](testing::ModelBuilder& b) {
    b.input("x", {2, 3, 5}).output("y", {2, 3, 5});
    b.initializer("s", c3b).initializer("bias", c3a);
    b.node("InstanceNormalization", {"x", "s", "bias"}, {"y"}, "n");
  }, tally);
  norm_sound("MeanVarianceNormalization", [&](testing::ModelBuilder& b) {
    b.input("x", {2, 3, 4, 2}).output("y", {2, 3, 4, 2});
    b.node("MeanVarianceNormalization", {"x"}, {"y"}, "n");
  }, tally);
  for (int64_t p : {1, 2}) {
    norm_sound("LpNormalization p=" + std::to_string(p), [&](testing::ModelBuilder& b) {
      b.input("x", {3, 6}).output("y", {3, 6});
      b.initializer("bias", rnd_t({6}, -0.5, 0.5));
      b.node("Add", {"x", "bias"}, {"z"}, "add");
      testing::set_attr(b.node("LpNormalization", {"z"}, {"y"}, "n"), "p", p);
    }, tally);
  }
  norm_sound("LRN", [&](testing::ModelBuilder& b) {
    b.input("x", {2, 5, 3, 3}).output("y", {2, 5, 3, 3});
    testing::set_attr(b.node("LRN", {"x"}, {"y"}, "n"), "size", int64_t{3});
  }, tally);
  EXPECT_EQ(tally.violations, 0);
  EXPECT_GT(tally.checked, 0);
  tally.print("normalization");
}

// |x - mean| / sqrt(var + eps) <= sqrt(n - 1) (+ the float32 mean's error term):
// the output stays bounded however wide the input is.
TEST(NormalizationAbstract, LayerNormBoundedWhateverTheInput) {
  for (double range : {10.0, 1e6}) {
    testing::ModelBuilder b(17);
    b.input("x", {2, 8}).output("y", {2, 8});
    b.initializer("s", at::ones({8}));
    b.node("LayerNormalization", {"x", "s"}, {"y"}, "n");
    auto r = testing::analyze_built(b, testing::ranges_of({{"x", {-range, range}}}));
    EXPECT_TRUE(r.findings.empty());
    EXPECT_LE(r.intervals.at("y").max(), std::sqrt(7.0) + (range > 100 ? 1.01 : 0.01));
    EXPECT_GE(r.intervals.at("y").min(), -std::sqrt(7.0) - (range > 100 ? 1.01 : 0.01));
  }
}

std::vector<std::string> norm_findings(const Build& build, double lo, double hi) {
  testing::ModelBuilder b(17);
  build(b);
  return testing::summary(testing::findings_of(b, testing::ranges_of({{"x", {lo, hi}}})));
}

TEST(NormalizationAbstract, HazardsAtTheirThresholds) {
  using Names = std::vector<std::string>;
  auto bn = [](float eps, at::Tensor var) {
    return [=](testing::ModelBuilder& b) {
      b.input("x", {1, 3, 2}).output("y", {1, 3, 2});
      b.initializer("s", at::ones({3})).initializer("bias", at::zeros({3})).initializer("m", at::zeros({3})).initializer("v", var);
      testing::set_attr(b.node("BatchNormalization", {"x", "s", "bias", "m", "v"}, {"y"}, "n"), "epsilon", eps);
    };
  };
  EXPECT_EQ(norm_findings(bn(0.f, at::tensor({1.f, 0.5f, 1e-30f})), -1, 1), Names{});
  EXPECT_EQ(norm_findings(bn(0.f, at::tensor({1.f, 0.f, 2.f})), -1, 1), Names{"n:batchnorm-nonpositive-variance"});
  EXPECT_EQ(norm_findings(bn(1e-5f, at::tensor({1.f, 0.f, 2.f})), -1, 1), Names{});
  auto ln = [](float eps) {
    return [=](testing::ModelBuilder& b) {
      b.input("x", {2, 4}).output("y", {2, 4});
      b.initializer("s", at::ones({4}));
      testing::set_attr(b.node("LayerNormalization", {"x", "s"}, {"y"}, "n"), "epsilon", eps);
    };
  };
  EXPECT_EQ(norm_findings(ln(1e-12f), -1, 1), Names{});
  EXPECT_EQ(norm_findings(ln(0.f), -1, 1), Names{"n:norm-zero-variance"});
  auto lp = [](int64_t p) {
    return [=](testing::ModelBuilder& b) {
      b.input("x", {2, 4}).output("y", {2, 4});
      testing::set_attr(b.node("LpNormalization", {"x"}, {"y"}, "n"), "p", p);
    };
  };
  EXPECT_EQ(norm_findings(lp(2), 1e-22, 1), Names{});
  EXPECT_EQ(norm_findings(lp(2), 2e-23, 1), Names{"n:lpnorm-zero-norm"});  // squares underflow to 0
  EXPECT_EQ(norm_findings(lp(2), -1, 1), Names{"n:lpnorm-zero-norm"});
  EXPECT_EQ(norm_findings(lp(1), 1e-30, 1), Names{});
  EXPECT_EQ(norm_findings(lp(1), 1e-40, 1), Names{"n:lpnorm-zero-gradient"});  // gradient x / n / n overflows
}

}  // namespace
}  // namespace nanguard
