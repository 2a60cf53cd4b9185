// Unary lowerings follow IEEE/ONNX at the edges that decide NaN/INF.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

at::Tensor run_unary(const std::string& op, const at::Tensor& x) {
  testing::ModelBuilder b;
  b.input("x", {x.size(0)}).output("y", {x.size(0)});
  b.node(op, {"x"}, {"y"}, "n");
  return testing::run_output(b, {{"x", x}});
}

TEST(Unary, LogEdges) {
  at::Tensor y = run_unary("Log", at::tensor({0.f, -0.f, -1.f, 1.f}));
  EXPECT_EQ(y[0].item<float>(), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(y[1].item<float>(), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(y[2].item<float>()));
  EXPECT_EQ(y[3].item<float>(), 0.f);
}

TEST(Unary, SqrtAndReciprocalEdges) {
  at::Tensor s = run_unary("Sqrt", at::tensor({-1e-30f, 0.f}));
  EXPECT_TRUE(std::isnan(s[0].item<float>()));
  EXPECT_EQ(s[1].item<float>(), 0.f);
  at::Tensor r = run_unary("Reciprocal", at::tensor({0.f, -0.f, 1e-39f}));
  EXPECT_EQ(r[0].item<float>(), std::numeric_limits<float>::infinity());
  EXPECT_EQ(r[1].item<float>(), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isinf(r[2].item<float>()));  // 1/denormal overflows float32
}

// 1/x is finite for x = 1e-25 but its gradient -1/x^2 = -1e50 is not: a gradient
// finding below 5.42e-20, none above it; a real backward pass agrees on both sides.
TEST(Unary, ReciprocalGradientOverflowsBelowOneOverSqrtOfFloatMax) {
  auto findings = [](double lo, double hi) {
    testing::ModelBuilder b;
    b.input("x", {4}).output("y", {4});
    b.node("Reciprocal", {"x"}, {"y"}, "n");
    return testing::kind_summary(testing::analyze_built(b, testing::ranges_of({{"x", {lo, hi}}})));
  };
  EXPECT_EQ(findings(1e-25, 1e-21), std::vector<std::string>{"n:reciprocal-gradient-overflow:gradient"});
  EXPECT_TRUE(findings(6e-20, 1).empty());
  for (float v : {1e-25f, 6e-20f}) {
    at::Tensor x = at::full({1}, v).requires_grad_(true);
    x.reciprocal().sum().backward();
    EXPECT_EQ(std::isfinite(x.grad().item<float>()), v > 5.5e-20f) << v;
  }
}

TEST(Unary, ExpOverflowThresholdInFloat32) {
  float below = std::nextafter(88.72283935546875f, 0.f);
  at::Tensor y = run_unary("Exp", at::tensor({below, 88.72283935546875f}));
  EXPECT_TRUE(std::isfinite(y[0].item<float>()));
  EXPECT_TRUE(std::isinf(y[1].item<float>()));
}

// exp(x) is exactly 0 from x <= -110, so a sum of such terms divides by exactly 0:
// the division is a definite div-by-zero, not a possible one with subnormal slack.
TEST(Unary, ExpIsExactlyZeroFarBelowTheSmallestSubnormal) {
  auto build = [](testing::ModelBuilder& b) {
    b.input("x", {4}).output("y", {4});
    b.initializer("axes", at::tensor(std::vector<int64_t>{0}));
    b.node("Exp", {"x"}, {"e"}, "exp");
    b.node("ReduceSum", {"e", "axes"}, {"s"}, "sum");
    b.node("Div", {"e", "s"}, {"y"}, "div");
  };
  testing::ModelBuilder far, near;
  build(far);
  build(near);
  AnalysisResult a = testing::analyze_built(far, testing::ranges_of({{"x", {-1e30, -110}}}));
  EXPECT_EQ(a.intervals.at("e").hi.max().item<double>(), 0.0);
  ASSERT_EQ(testing::summary(a.findings), std::vector<std::string>{"div:div-by-zero"});
  EXPECT_EQ(a.findings[0].status, "definite");
  AnalysisResult b = testing::analyze_built(near, testing::ranges_of({{"x", {-1e30, -109}}}));
  EXPECT_GT(b.intervals.at("e").hi.max().item<double>(), 0.0);
  EXPECT_EQ(run_unary("Exp", at::tensor({-110.f, -104.f, -3e38f})).abs().sum().item<float>(), 0.f);
  testing::expect_sound(near, testing::ranges_of({{"x", {-115, -100}}}), "exp near 0");
}

TEST(Unary, DomainErrorsAreNaN) {
  EXPECT_TRUE(std::isnan(run_unary("Acos", at::tensor({1.0001f}))[0].item<float>()));
  EXPECT_TRUE(std::isnan(run_unary("Asin", at::tensor({-1.0001f}))[0].item<float>()));
  EXPECT_TRUE(std::isnan(run_unary("Acosh", at::tensor({0.5f}))[0].item<float>()));
  EXPECT_TRUE(std::isinf(run_unary("Atanh", at::tensor({1.f}))[0].item<float>()));
}

TEST(Unary, RoundIsHalfToEven) {
  at::Tensor y = run_unary("Round", at::tensor({0.5f, 1.5f, 2.5f, -0.5f}));
  EXPECT_EQ(y[0].item<float>(), 0.f);
  EXPECT_EQ(y[1].item<float>(), 2.f);
  EXPECT_EQ(y[2].item<float>(), 2.f);
  EXPECT_EQ(y[3].item<float>(), -0.f);
}

}  // namespace
}  // namespace nanguard
