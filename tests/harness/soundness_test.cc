// Soundness by sampling for the elementwise ops: random boxes, corners, float32 edge
// values; every concrete value must lie within its abstract bounds and every NaN/INF
// must have been reported.
#include <gtest/gtest.h>

#include "harness/soundness.h"
#include "model/onnx_loader.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;

// Returns the number of values compared (0 when every sample hit a reported hazard).
int64_t expect_sound(ModelBuilder& b, const RangeMap& ranges, const std::string& what) {
  auto g = load_model_proto(b.proto(), what + ".onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  if (!g.ok()) return 0;
  AnalyzeOptions opt;
  opt.ranges = ranges;
  auto rep = check_soundness(*g, opt, 40, 7);
  EXPECT_TRUE(rep.ok()) << rep.status().message();
  if (!rep.ok()) return 0;
  for (const auto& v : rep->violations)
    ADD_FAILURE() << what << ": sample " << v.sample << " node " << v.node << ": " << v.what << " " << v.value
                  << " not in [" << v.lo << ", " << v.hi << "]";
  return rep->checked_values;
}

const std::vector<std::pair<double, double>> kBoxes{
    {-3, 3}, {0, 1}, {-100, 100}, {1e-30, 1e-20}, {-1, -1e-3}, {88, 89}, {0.999, 1.001}, {-1e20, 1e20}};

TEST(Soundness, UnaryOps) {
  for (const char* op : {"Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
                         "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Tanh", "Asinh",
                         "Acosh", "Atanh", "Erf"}) {
    int64_t checked = 0;
    for (auto [lo, hi] : kBoxes) {
      ModelBuilder b;
      b.input("x", {16}).output("y", {16});
      b.node(op, {"x"}, {"y"}, "n");
      checked += expect_sound(b, {{"x", {lo, hi}}}, std::string(op) + " on [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    EXPECT_GT(checked, 0) << op;
  }
}

TEST(Soundness, BinaryOps) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod"}) {
    for (auto [lo, hi] : kBoxes) {
      for (auto [lo2, hi2] : {std::pair{-2.0, 3.0}, std::pair{0.5, 2.0}, std::pair{lo, hi}}) {
        ModelBuilder b;
        b.input("x", {4, 8}).input("y", {8}).output("z", {4, 8});
        b.node(op, {"x", "y"}, {"z"}, "n");
        expect_sound(b, {{"x", {lo, hi}}, {"y", {lo2, hi2}}}, std::string(op) + " box " + std::to_string(lo) + "," + std::to_string(hi) + " / " + std::to_string(lo2) + "," + std::to_string(hi2));
      }
    }
  }
}

// An integer base with a float exponent: 0 to a negative power is INF in float,
// then cast back to the integer type (found by scripts/soundness on ONNX node tests).
TEST(Soundness, IntegerPowWithFloatExponent) {
  ModelBuilder b;
  b.input("x", {8}, onnx::TensorProto::INT64).input("y", {8}).output("z", {8}, onnx::TensorProto::INT64);
  b.node("Pow", {"x", "y"}, {"z"}, "n");
  expect_sound(b, {{"x", {0, 3}}, {"y", {-1, 2}}}, "int pow");
}

TEST(Soundness, RelationalFactsHold) {
  ModelBuilder b;
  b.input("x", {2, 5}).output("y", {2, 5});
  b.node("Sub", {"x", "x"}, {"z"});
  b.node("Mul", {"x", "x"}, {"sq"});
  b.node("Add", {"z", "sq"}, {"y"});
  expect_sound(b, {{"x", {-5, 5}}}, "relational");
}

}  // namespace
}  // namespace nanguard

namespace nanguard {
namespace {

// The decomposed-LayerNorm fact (|d / sqrt(mean(d^2) + eps)| <= sqrt(n)) on samples,
// including near-constant rows where the quotient is largest relative to eps.
TEST(Soundness, DecomposedLayerNorm) {
  for (double eps : {1e-5, 0.0}) {
    ModelBuilder b;
    b.input("x", {3, 16}).output("y", {3, 16});
    b.initializer("two", at::full({}, 2.0f)).initializer("eps", at::full({}, static_cast<float>(eps)));
    auto& m = b.node("ReduceMean", {"x"}, {"mean"});
    testing::set_attr(m, "axes", std::vector<int64_t>{1});
    b.node("Sub", {"x", "mean"}, {"d"});
    b.node("Mul", {"d", "d"}, {"sq"});
    auto& v = b.node("ReduceMean", {"sq"}, {"var"});
    testing::set_attr(v, "axes", std::vector<int64_t>{1});
    b.node("Add", {"var", "eps"}, {"ve"});
    b.node("Sqrt", {"ve"}, {"sd"});
    b.node("Div", {"d", "sd"}, {"y"}, "div");
    for (auto [lo, hi] : {std::pair{-3.0, 3.0}, std::pair{1.0, 1.0001}, std::pair{-1e15, 1e15}})
      expect_sound(b, {{"x", {lo, hi}}}, "layernorm eps " + std::to_string(eps) + " box " + std::to_string(lo));
  }
}

// The per-channel fast paths of Conv and the pools (collapsed input bounds), with
// padding, groups, strides, fixed and free weights.
TEST(Soundness, CollapsedConvAndPoolPaths) {
  for (int64_t pad : {0, 1}) {
    for (int64_t group : {1, 2}) {
      ModelBuilder b;
      b.input("x", {2, 4, 9, 9}).initializer("w", at::randn({6, 4 / group, 3, 3})).initializer("b", at::randn({6}));
      int64_t side = (9 + 2 * pad - 3) / 2 + 1 + 1;  // conv, then the padded 2x2 pool
      b.output("p", {2, 6, side, side});
      auto& conv = b.node("Conv", {"x", "w", "b"}, {"y"}, "conv");
      testing::set_attr(conv, "pads", std::vector<int64_t>{pad, pad, pad, pad});
      testing::set_attr(conv, "strides", std::vector<int64_t>{2, 2});
      testing::set_attr(conv, "group", group);
      auto& pool = b.node("AveragePool", {"y"}, {"p"}, "pool");
      testing::set_attr(pool, "kernel_shape", std::vector<int64_t>{2, 2});
      testing::set_attr(pool, "pads", std::vector<int64_t>{1, 1, 1, 1});
      testing::set_attr(pool, "count_include_pad", int64_t{1});
      std::string what = "conv pad " + std::to_string(pad) + " group " + std::to_string(group);
      EXPECT_GT(expect_sound(b, {{"x", {-1, 2}}}, what), 0);
      auto g = load_model_proto(b.proto(), "collapsed.onnx");
      ASSERT_TRUE(g.ok());
      auto cells = analyze(*g, AnalyzeOptions{{{"x", {-1, 2}}}});
      ASSERT_TRUE(cells.ok());
      EXPECT_EQ(cells->intervals.at("y").lo.sizes().vec(), (std::vector<int64_t>{1, 6, 1, 1})) << "fast path not taken";
      EXPECT_EQ(cells->intervals.at("p").lo.sizes().vec(), (std::vector<int64_t>{1, 6, 1, 1})) << "fast path not taken";
      AnalyzeOptions opt;
      opt.ranges = {{"x", {0, 1}}};
      opt.weights = WeightMode::kFree;
      opt.weight_range = Range{-0.5, 0.5};
      auto rep = check_soundness(*g, opt, 30, 3);
      ASSERT_TRUE(rep.ok()) << rep.status().message();
      EXPECT_TRUE(rep->violations.empty()) << what << " (free weights)";
    }
  }
}

// A tensor's gradient sums over its consumers: x feeds a Neg (clean) and a Sqrt
// (flagged: infinite gradient at 0), so the INF in x's gradient is the Sqrt's and
// no violation; without the Sqrt's finding it would be one, at the Sqrt.
TEST(Soundness, AGradientBornAtAFlaggedConsumerIsNotBlamedOnAnother) {
  ModelBuilder b;
  b.input("x", {4}).output("a", {4}).output("r", {4});
  b.node("Neg", {"x"}, {"a"}, "neg");
  b.node("Sqrt", {"x"}, {"r"}, "sqrt");
  auto g = load_model_proto(b.proto(), "consumers.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  AnalyzeOptions opt;
  opt.ranges = {{"x", {0, 1}}};
  auto rep = check_soundness(*g, opt, 20, 3);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_GT(rep->backward_samples, 0);
  for (const auto& v : rep->violations) ADD_FAILURE() << v.node << " " << v.tensor << ": " << v.what;
}

// Resize over ranged scales: the analysis reports the op unsupported, so neither its
// values nor its shape (the scales pick it) are claimed, and a run whose output shape
// differs from the declared one is no violation. Its gradient is still checked.
TEST(Soundness, AnUnsupportedOpsShapeIsNotClaimed) {
  ModelBuilder b(13);
  b.input("x", {1, 1, 2, 2}).input("scales", {4}).output("y", {1, 1, 4, 4});
  b.node("Resize", {"x", "", "scales"}, {"y"}, "resize");  // mode nearest
  auto g = load_model_proto(b.proto(), "resize.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  AnalyzeOptions opt;
  opt.ranges = {{"x", {-1, 1}}, {"scales", {1, 3}}};
  auto analysed = analyze(*g, opt);
  ASSERT_TRUE(analysed.ok()) << analysed.status().message();
  ASSERT_EQ(analysed->findings.size(), 1u);
  EXPECT_EQ(analysed->findings[0].hazard, "unsupported");
  auto rep = check_soundness(*g, opt, 20, 3);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->samples, 20);
  for (const auto& v : rep->violations) ADD_FAILURE() << v.node << " " << v.tensor << ": " << v.what;
}

}  // namespace
}  // namespace nanguard
