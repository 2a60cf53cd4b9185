// Softmax family: the opset < 13 2-D coercion against the opset 13 single axis,
// the NaN of an all -inf row, LogSoftmax's stability, Hardmax's tie rule.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// `op` on x; axis = INT64_MIN leaves the attribute out.
at::Tensor run_sm(const std::string& op, const at::Tensor& x, int64_t opset, int64_t axis) {
  testing::ModelBuilder b(opset);
  std::vector<int64_t> dims = x.sizes().vec();
  b.input("x", dims).output("y", dims);
  auto& n = b.node(op, {"x"}, {"y"}, "n");
  if (axis != std::numeric_limits<int64_t>::min()) testing::set_attr(n, "axis", axis);
  return testing::run_output(b, {{"x", x}});
}

constexpr int64_t kNoAxis = std::numeric_limits<int64_t>::min();

TEST(Softmax, AxisSemanticsDependOnOpset) {
  at::Tensor x = at::arange(12, at::kFloat).reshape({2, 3, 2}) / 4;
  // Opset 11, default axis 1: each batch's 6 values form one distribution.
  at::Tensor old = run_sm("Softmax", x, 11, kNoAxis);
  EXPECT_TRUE(at::allclose(old, at::softmax(x.reshape({2, 6}), 1).reshape({2, 3, 2})));
  EXPECT_TRUE(at::allclose(old.sum({1, 2}), at::ones({2})));
  // Opset 13, default axis -1: pairs along the last axis.
  at::Tensor now = run_sm("Softmax", x, 13, kNoAxis);
  EXPECT_TRUE(at::allclose(now, at::softmax(x, 2)));
  // Opset 11 with axis 1 is not opset 13 with axis 1.
  at::Tensor old1 = run_sm("LogSoftmax", x, 11, 2);
  EXPECT_TRUE(at::allclose(old1, at::log_softmax(x, 2)));
  at::Tensor new1 = run_sm("LogSoftmax", x, 13, 1);
  EXPECT_TRUE(at::allclose(new1, at::log_softmax(x, 1)));
  // Opset 11 allows axis == rank: rows of one element, all ones.
  EXPECT_TRUE(at::equal(run_sm("Softmax", x, 11, 3), at::ones_like(x)));
}

TEST(Softmax, NonFiniteRows) {
  at::Tensor x = at::tensor({-kInf, -kInf, 1000.f, 0.f}).reshape({2, 2});
  at::Tensor y = run_sm("Softmax", x, 13, kNoAxis);
  EXPECT_TRUE(std::isnan(y[0][0].item<float>()));  // -inf - (-inf)
  EXPECT_EQ(y[1][0].item<float>(), 1.f);            // no overflow: the max is subtracted
  at::Tensor l = run_sm("LogSoftmax", x, 13, kNoAxis);
  EXPECT_EQ(l[1][1].item<float>(), -1000.f);        // not log(0) = -inf
}

TEST(Softmax, HardmaxFirstMaximumAndOldAxis) {
  at::Tensor x = at::tensor({3.f, 3.f, 1.f, 0.f, 5.f, 5.f}).reshape({1, 3, 2});
  at::Tensor y = run_sm("Hardmax", x, 13, kNoAxis);
  EXPECT_TRUE(at::equal(y, at::tensor({1.f, 0.f, 1.f, 0.f, 1.f, 0.f}).reshape({1, 3, 2})));
  at::Tensor old = run_sm("Hardmax", x, 11, kNoAxis);  // one maximum over all 6 values
  EXPECT_TRUE(at::equal(old, at::tensor({0.f, 0.f, 0.f, 0.f, 1.f, 0.f}).reshape({1, 3, 2})));
}

TEST(Softmax, GradientFlows) {
  at::Tensor x = at::randn({2, 3, 2}).requires_grad_();
  testing::ModelBuilder b(13);
  b.input("x", {2, 3, 2}).output("y", {2, 3, 2});
  b.node("LogSoftmax", {"x"}, {"y"}, "n");
  auto r = testing::run_model(b, {{"x", x}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  r->outputs[0].select(2, 0).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
  EXPECT_GT(x.grad().abs().sum().item<float>(), 0.f);
}

// ---- abstract facets ------------------------------------------------------------

const std::vector<std::pair<double, double>> kSmBoxes{{-3, 3}, {0, 1}, {-100, 100}, {-1e20, 1e20}, {88, 89},
                                                      {-0.5, 0.5}, {1e4, 1e4 + 30}, {-200, -190}};

// One node on x [3, 5] fed through x + bias (bias [5] random: unequal cells per
// column), axis variants across opsets.
// Equal logits near 2^100: each probability is 1/3. Bounds computed on the raw
// values lost log 2 to float64's rounding (x + log 2 == x) and said 1/2 (found by
// fuzz_soundness on test_softmax_example); they are computed on x - max now.
TEST(SoftmaxAbstract, HugeEqualLogitsGiveOneOverN) {
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    testing::ModelBuilder b(13);
    b.input("x", {1, 3}).output("y", {1, 3});
    b.node(op, {"x"}, {"y"}, "s");
    double big = std::ldexp(1.0, 100);
    AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"x", {big, big}}}));
    const IntervalTensor& y = r.intervals.at("y");
    double third = std::string(op) == "Softmax" ? 1.0 / 3 : -std::log(3.0);
    EXPECT_LE(y.min(), third) << op;
    EXPECT_GE(y.max(), third) << op;
    // LogSoftmax's kernel may round x - (max + log s), an error relative to |max|.
    if (std::string(op) == "Softmax") EXPECT_NEAR(y.min(), third, 1e-5);
    testing::expect_sound(b, testing::ranges_of({{"x", {big, big * 1.0000001}}}), op);
  }
}

TEST(SoftmaxAbstract, SoundOnBoxesAxesAndOpsets) {
  testing::SoundTally tally;
  at::Tensor bias = at::randn({5}, at::TensorOptions().dtype(at::kFloat)) * 20;
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) {
    for (auto [opset, axis] : {std::pair<int64_t, int64_t>{13, -1}, {13, 0}, {11, 1}, {11, 0}, {11, 2}}) {
      for (auto [lo, hi] : kSmBoxes) {
        for (bool free : {false, true}) {
          testing::ModelBuilder b(opset);
          b.input("x", {3, 5}).output("y", {3, 5});
          b.initializer("bias", bias);
          b.node("Add", {"x", "bias"}, {"z"}, "add");
          auto& n = b.node(op, {"z"}, {"y"}, "n");
          testing::set_attr(n, "axis", axis);
          RangeMap r{{"x", {lo, hi}}};
          testing::expect_sound(b, free ? testing::free_weights(r, -30, 30) : testing::ranges_of(r),
                                std::string(op) + " opset " + std::to_string(opset) + " axis " + std::to_string(axis) +
                                    " on [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
                                &tally, 20);
        }
      }
    }
  }
  EXPECT_EQ(tally.violations, 0);
  EXPECT_GT(tally.checked, 0);
  tally.print("softmax");
}

// Spread-based bounds are tight: equal cells [a, b] over n give
// [1 / (1 + (n-1) e^(b-a)), 1 / (1 + (n-1) e^(a-b))].
TEST(SoftmaxAbstract, BoundsFromTheSpreadAreTight) {
  testing::ModelBuilder b(13);
  b.input("x", {2, 4}).output("y", {2, 4});
  b.node("Softmax", {"x"}, {"y"}, "n");
  auto r = testing::analyze_built(b, testing::ranges_of({{"x", {0, 1}}}));
  const IntervalTensor& y = r.intervals.at("y");
  double lo = 1 / (1 + 3 * std::exp(1.0)), hi = 1 / (1 + 3 * std::exp(-1.0));
  EXPECT_NEAR(y.min(), lo, 1e-5);
  EXPECT_NEAR(y.max(), hi, 1e-5);
  EXPECT_LE(y.min(), lo);
  EXPECT_GE(y.max(), hi);
  EXPECT_GT(y.min(), 0.0);
}

// The demo model's shape: Gemm -> Relu -> Gemm -> head. log(softmax) is proved safe
// while the logits' spread stays small and fails (softmax underflows to 0 in float32)
// on x in [-50, 50]; the log_softmax head is proved safe on the same range.
void classifier(testing::ModelBuilder& b, const std::string& head) {
  at::Generator gen = at::detail::createCPUGenerator(3);
  auto uniform = [&](std::vector<int64_t> shape, double bound) {
    return at::empty(shape, at::kFloat).uniform_(-bound, bound, gen);
  };
  b.input("x", {4, 16}).output("y", {4, 10});
  b.initializer("w1", uniform({32, 16}, 0.25)).initializer("b1", uniform({32}, 0.25));
  b.initializer("w2", uniform({10, 32}, 0.18)).initializer("b2", uniform({10}, 0.18));
  auto& g1 = b.node("Gemm", {"x", "w1", "b1"}, {"h"}, "fc1");
  testing::set_attr(g1, "transB", int64_t{1});
  b.node("Relu", {"h"}, {"r"}, "relu");
  auto& g2 = b.node("Gemm", {"r", "w2", "b2"}, {"logits"}, "fc2");
  testing::set_attr(g2, "transB", int64_t{1});
  if (head == "log_softmax") {
    testing::set_attr(b.node("LogSoftmax", {"logits"}, {"y"}, "head"), "axis", int64_t{1});
  } else {
    testing::set_attr(b.node("Softmax", {"logits"}, {"p"}, "softmax"), "axis", int64_t{1});
    b.node("Log", {"p"}, {"y"}, "log");
  }
}

TEST(SoftmaxAbstract, LogOfSoftmaxFlaggedLogSoftmaxProved) {
  using Names = std::vector<std::string>;
  testing::ModelBuilder naive, naive_narrow, stable;
  classifier(naive, "log");
  classifier(naive_narrow, "log");
  classifier(stable, "log_softmax");
  RangeMap wide{{"x", {-50, 50}}}, narrow{{"x", {-1, 1}}};
  EXPECT_EQ(testing::summary(testing::findings_of(naive, testing::ranges_of(wide))), Names{"log:log-nonpositive"});
  EXPECT_EQ(testing::summary(testing::findings_of(naive_narrow, testing::ranges_of(narrow))), Names{});
  EXPECT_EQ(testing::summary(testing::findings_of(stable, testing::ranges_of(wide))), Names{});
  auto st = testing::analyze_built(stable, testing::ranges_of(wide));
  EXPECT_LE(st.intervals.at("y").max(), 0.0);
  EXPECT_GT(st.intervals.at("y").min(), -1e6);
  testing::expect_sound(naive, testing::ranges_of(wide), "log(softmax) on [-50, 50]");
  testing::expect_sound(stable, testing::ranges_of(wide), "log_softmax on [-50, 50]");
}

}  // namespace
}  // namespace nanguard
