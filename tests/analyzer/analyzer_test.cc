// Hazard conditions at their exact float32 thresholds, proofs that fail as soon as a
// range widens, float32 rounding effects, relational facts, unsupported ops.
#include <cmath>

#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "model/onnx_loader.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;

std::vector<Finding> findings_for(ModelBuilder& b, const RangeMap& ranges) {
  auto g = load_model_proto(b.proto(), "analyzer_test.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  AnalyzeOptions opt;
  opt.ranges = ranges;
  auto r = analyze(*g, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->findings : std::vector<Finding>{};
}

// A one-op model y = op(x) with x of shape [4].
std::vector<Finding> unary_findings(const std::string& op, double lo, double hi) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.node(op, {"x"}, {"y"}, "n");
  return findings_for(b, {{"x", {lo, hi}}});
}

void expect_one(const std::vector<Finding>& f, const std::string& hazard, HazardKind kind) {
  ASSERT_EQ(f.size(), 1u) << (f.empty() ? "no finding" : f[0].hazard);
  EXPECT_EQ(f[0].hazard, hazard);
  EXPECT_EQ(f[0].kind, kind);
  EXPECT_EQ(f[0].node, "n");
}

TEST(Analyzer, LogProvedSafeUntilTheRangeReachesZero) {
  EXPECT_TRUE(unary_findings("Log", 1e-30, 5).empty());
  expect_one(unary_findings("Log", 0, 5), "log-nonpositive", HazardKind::kForward);
  expect_one(unary_findings("Log", -1, -0.5), "log-nonpositive", HazardKind::kForward);
  EXPECT_EQ(unary_findings("Log", -1, -0.5)[0].status, "definite");
  // Positive but denormal operands: the value is finite, 1/x (the derivative) is not.
  expect_one(unary_findings("Log", 1e-40, 1), "log-gradient-overflow", HazardKind::kGradient);
}

// A range's ends are read as float32 reads them, to nearest: the point range
// [0.1, 0.1] is float32(0.1), not an empty box (rounding inward had lo > hi), and
// the sampler's draws lie inside it.
TEST(Analyzer, RangeEndsRoundToNearestFloat32) {
  testing::ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.node("Neg", {"x"}, {"y"}, "n");
  auto g = load_model_proto(b.proto(), "point.onnx");
  ASSERT_TRUE(g.ok());
  auto r = analyze(*g, AnalyzeOptions{{{"x", {0.1, 0.1}}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->intervals.at("x").min(), static_cast<double>(0.1f));
  EXPECT_EQ(r->intervals.at("x").max(), static_cast<double>(0.1f));
  EXPECT_EQ(r->intervals.at("y").max(), -static_cast<double>(0.1f));
}

TEST(Analyzer, ExpOverflowsExactlyFrom88_72283935546875) {
  double below = std::nextafter(88.72283935546875f, 0.f);
  EXPECT_TRUE(unary_findings("Exp", -100, below).empty());
  expect_one(unary_findings("Exp", -100, 88.72283935546875), "exp-overflow", HazardKind::kForward);
}

TEST(Analyzer, SqrtForwardAndGradientHazards) {
  EXPECT_TRUE(unary_findings("Sqrt", 1e-6, 4).empty());
  expect_one(unary_findings("Sqrt", 0, 4), "sqrt-zero-gradient", HazardKind::kGradient);
  expect_one(unary_findings("Sqrt", -1e-3, 4), "sqrt-negative", HazardKind::kForward);
}

TEST(Analyzer, InverseTrigDomains) {
  EXPECT_TRUE(unary_findings("Acos", -0.5, 0.5).empty());
  expect_one(unary_findings("Acos", -0.5, 1.0), "acos-gradient", HazardKind::kGradient);
  expect_one(unary_findings("Acos", -0.5, 1.001), "acos-domain", HazardKind::kForward);
  expect_one(unary_findings("Atanh", -1, 0), "atanh-domain", HazardKind::kForward);
  EXPECT_TRUE(unary_findings("Atanh", -0.99, 0.99).empty());
}

std::vector<Finding> div_findings(double xlo, double xhi, double ylo, double yhi) {
  ModelBuilder b;
  b.input("x", {3}).input("y", {3}).output("q", {3});
  b.node("Div", {"x", "y"}, {"q"}, "n");
  return findings_for(b, {{"x", {xlo, xhi}}, {"y", {ylo, yhi}}});
}

TEST(Analyzer, DivisionByZeroAndQuotientOverflow) {
  EXPECT_TRUE(div_findings(-1, 1, 0.5, 2).empty());
  expect_one(div_findings(-1, 1, -0.5, 2), "div-by-zero", HazardKind::kForward);
  expect_one(div_findings(-1, 1, 0, 2), "div-by-zero", HazardKind::kForward);
  expect_one(div_findings(-1e38, 1e38, 0.1, 2), "div-overflow", HazardKind::kForward);
}

// log(1 + 1e-10 - p), p in [0, 1]: safe in real arithmetic, but 1 + 1e-10 rounds to 1
// in float32, so p = 1 gives log(0) (GRIST 35a).
TEST(Analyzer, Float32RoundingDefeatsTheEpsilonGuard) {
  ModelBuilder b;
  b.input("p", {4}).initializer("one", at::ones({1})).initializer("eps", at::full({1}, 1e-10f)).output("y", {4});
  b.node("Add", {"one", "eps"}, {"guard"});
  b.node("Sub", {"guard", "p"}, {"q"});
  b.node("Log", {"q"}, {"y"}, "n");
  expect_one(findings_for(b, {{"p", {0, 1}}}), "log-nonpositive", HazardKind::kForward);
  // With a guard float32 can represent (1e-6 + 1 > 1), the same graph is proved safe.
  ModelBuilder c;
  c.input("p", {4}).initializer("one", at::ones({1})).initializer("eps", at::full({1}, 1e-6f)).output("y", {4});
  c.node("Add", {"one", "eps"}, {"guard"});
  c.node("Sub", {"guard", "p"}, {"q"});
  c.node("Log", {"q"}, {"y"}, "n");
  EXPECT_TRUE(findings_for(c, {{"p", {0, 1}}}).empty());
}

// x - x is exactly 0, so log(x - x + 1) is safe; plain intervals would say [-2, 2] + 1.
TEST(Analyzer, XMinusXIsZero) {
  ModelBuilder b;
  b.input("x", {4}).initializer("one", at::ones({1})).output("y", {4});
  b.node("Sub", {"x", "x"}, {"zero"});
  b.node("Add", {"zero", "one"}, {"q"});
  b.node("Log", {"q"}, {"y"}, "n");
  EXPECT_TRUE(findings_for(b, {{"x", {-1, 1}}}).empty());
}

TEST(Analyzer, ConstantsAreEvaluatedExactly) {
  ModelBuilder b;
  b.input("x", {2}).initializer("z", at::zeros({2})).output("y", {2});
  b.node("Reciprocal", {"z"}, {"r"}, "n");
  b.node("Add", {"x", "r"}, {"y"});
  auto f = findings_for(b, {{"x", {0, 1}}});
  ASSERT_GE(f.size(), 1u);
  EXPECT_EQ(f[0].hazard, "div-by-zero");
  EXPECT_EQ(f[0].status, "definite");
}

TEST(Analyzer, UnsupportedOpIsAFindingAndUnboundsItsOutputs) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.node("NonMaxSuppression", {"x", "x"}, {"u"}, "nms");
  b.node("Log", {"u"}, {"y"}, "n");
  auto* vi = b.proto().mutable_graph()->add_value_info();  // the shape an exporter would record
  vi->set_name("u");
  vi->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  vi->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(4);
  auto f = findings_for(b, {{"x", {1, 2}}});
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].hazard, "unsupported");
  EXPECT_EQ(f[0].node, "nms");
  EXPECT_EQ(f[1].hazard, "log-nonpositive");
}

TEST(Analyzer, OverflowOfFiniteOpsIsReportedOnceAtItsOrigin) {
  ModelBuilder b;
  b.input("x", {4}).output("z", {4});
  b.node("Mul", {"x", "x"}, {"sq"}, "square");
  b.node("Mul", {"sq", "sq"}, {"p4"}, "fourth");
  b.node("Add", {"p4", "p4"}, {"z"}, "sum");
  auto f = findings_for(b, {{"x", {-1e10, 1e10}}});
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].hazard, "overflow");
  EXPECT_EQ(f[0].node, "fourth");
  EXPECT_GT(f[0].result.hi, 3.4e38);
  EXPECT_TRUE(findings_for(b, {{"x", {-1e9, 1e9}}}).empty());
}

TEST(Analyzer, FreeWeightsAreRanges) {
  ModelBuilder b;
  b.input("x", {2}).initializer("w", at::full({2}, 0.5f)).output("y", {2});
  b.node("Div", {"x", "w"}, {"y"}, "n");
  auto g = load_model_proto(b.proto(), "free.onnx");
  AnalyzeOptions opt;
  EXPECT_TRUE(analyze(*g, opt)->findings.empty());
  opt.weights = WeightMode::kFree;
  EXPECT_TRUE(analyze(*g, opt)->findings.empty());  // stored [0.5, 0.5]: width 0
  opt.weight_range = Range{-1, 1};
  auto r = analyze(*g, opt);
  ASSERT_EQ(r->findings.size(), 1u);
  EXPECT_EQ(r->findings[0].hazard, "div-by-zero");
}

// exp(x - max(x)) / sum(exp(x - max(x))): the denominator is >= 1, so the Div is
// safe; without the max subtraction it is not.
TEST(Analyzer, StableSoftmaxDenominatorIsAtLeastOne) {
  for (bool stable : {true, false}) {
    ModelBuilder b;
    b.input("x", {2, 5}).output("p", {2, 5});
    auto& max = b.node("ReduceMax", {"x"}, {"m"});
    testing::set_attr(max, "axes", std::vector<int64_t>{1});
    testing::set_attr(max, "keepdims", int64_t{1});
    b.node("Sub", {"x", stable ? "m" : "x0"}, {"d"});
    if (!stable) b.initializer("x0", at::zeros({1}));
    b.node("Exp", {"d"}, {"e"});
    b.initializer("axes", at::tensor({int64_t{1}}));
    auto& sum = b.node("ReduceSum", {"e", "axes"}, {"s"});
    testing::set_attr(sum, "keepdims", int64_t{1});
    b.node("Div", {"e", "s"}, {"p"}, "n");
    auto f = findings_for(b, {{"x", {-200, 200}}});
    if (stable) {
      EXPECT_TRUE(f.empty()) << f[0].hazard;
    } else {
      ASSERT_FALSE(f.empty());
      EXPECT_EQ(f.back().hazard, "div-by-zero");
    }
  }
}

// sqrt(mean(x * x)): the operand is >= 0 exactly (rounding never crosses 0), so only
// the gradient hazard at 0 remains; it goes away once x stays off 0.
TEST(Analyzer, SumsOfSquaresStayNonNegative) {
  for (double lo : {-3.0, 0.5}) {
    ModelBuilder b;
    b.input("x", {4, 64}).output("y", {4, 1});
    b.node("Mul", {"x", "x"}, {"sq"});
    auto& mean = b.node("ReduceMean", {"sq"}, {"m"});
    testing::set_attr(mean, "axes", std::vector<int64_t>{1});
    b.node("Sqrt", {"m"}, {"y"}, "n");
    auto f = findings_for(b, {{"x", {lo, 3.0}}});
    if (lo < 0) expect_one(f, "sqrt-zero-gradient", HazardKind::kGradient);
    else EXPECT_TRUE(f.empty());
  }
}

// A LayerNorm written out as ops: d / sqrt(mean(d * d) + eps) is within +-sqrt(n),
// so log(y + 3) with n = 8 (sqrt 8 = 2.83) is safe whatever the input's scale.
TEST(Analyzer, DecomposedLayerNormIsBoundedBySqrtN) {
  ModelBuilder b;
  b.input("x", {2, 8}).output("z", {2, 8});
  b.initializer("two", at::full({}, 2.0f)).initializer("eps", at::full({}, 1e-5f)).initializer("three", at::full({}, 3.0f));
  auto& m = b.node("ReduceMean", {"x"}, {"mean"});
  testing::set_attr(m, "axes", std::vector<int64_t>{-1});
  b.node("Sub", {"x", "mean"}, {"d"});
  b.node("Pow", {"d", "two"}, {"sq"});
  auto& v = b.node("ReduceMean", {"sq"}, {"var"});
  testing::set_attr(v, "axes", std::vector<int64_t>{-1});
  b.node("Add", {"var", "eps"}, {"ve"});
  b.node("Sqrt", {"ve"}, {"sd"});
  b.node("Div", {"d", "sd"}, {"y"}, "div");
  b.node("Add", {"y", "three"}, {"y3"});
  b.node("Log", {"y3"}, {"z"}, "n");
  EXPECT_TRUE(findings_for(b, {{"x", {-1e6, 1e6}}}).empty());
  auto g = load_model_proto(b.proto(), "ln.onnx");
  auto r = analyze(*g, AnalyzeOptions{{{"x", {-1e6, 1e6}}}});
  EXPECT_LE(r->intervals.at("y").max(), std::sqrt(8.0) * 1.0001);
  EXPECT_GE(r->intervals.at("y").min(), -std::sqrt(8.0) * 1.0001);
}

// The bounds are ATen tensors all the way: d(upper bound of exp(2x + 1))/d(hi of x)
// is 2 exp(2 hi + 1) (times the float32 rounding slack).
TEST(Analyzer, BoundsAreDifferentiableInTheRangeEnds) {
  ModelBuilder b;
  b.input("x", {3}).initializer("two", at::full({1}, 2.0f)).initializer("one", at::ones({1})).output("y", {3});
  b.node("Mul", {"x", "two"}, {"x2"});
  b.node("Add", {"x2", "one"}, {"z"});
  b.node("Exp", {"z"}, {"y"}, "n");
  auto g = load_model_proto(b.proto(), "grad.onnx");
  AnalyzeOptions opt;
  at::Tensor lo = at::tensor(-1.0, at::kDouble).requires_grad_(true);
  at::Tensor hi = at::tensor(0.5, at::kDouble).requires_grad_(true);
  opt.range_tensors["x"] = {lo, hi};
  auto r = analyze(*g, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  at::Tensor upper = r->intervals.at("y").hi.max();
  upper.backward();
  ASSERT_TRUE(hi.grad().defined());
  EXPECT_NEAR(hi.grad().item<double>(), 2 * std::exp(2.0), 1e-3 * 2 * std::exp(2.0));
  EXPECT_FALSE(lo.grad().defined() && lo.grad().item<double>() != 0.0);
}

}  // namespace
}  // namespace nanguard
