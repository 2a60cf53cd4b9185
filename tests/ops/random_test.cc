// Random ops: conformance skips them (values depend on the generator), so these
// tests check shapes, dtypes, ranges, distribution moments and determinism: a seed
// attribute fixes the values, otherwise the run's seed does.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;
using testing::run_model;
using testing::run_output;
using testing::with_seed;
using testing::set_attr;

testing::ModelBuilder normal_model(std::optional<float> seed) {
  testing::ModelBuilder b(13);
  b.output("y", {100, 50});
  auto& n = b.node("RandomNormal", {}, {"y"}, "r");
  set_attr(n, "shape", std::vector<int64_t>{100, 50});
  set_attr(n, "mean", 2.f);
  set_attr(n, "scale", 0.5f);
  if (seed) set_attr(n, "seed", *seed);
  return b;
}

TEST(Random, NormalMomentsAndSeedAttributeFixesValues) {
  auto a = normal_model(3.f), b = normal_model(3.f), c = normal_model(4.f);
  at::Tensor ya = run_output(a, {}, 0, with_seed(1)), yb = run_output(b, {}, 0, with_seed(2)), yc = run_output(c, {}, 0, with_seed(1));
  EXPECT_EQ(ya.sizes(), at::IntArrayRef({100, 50}));
  EXPECT_EQ(ya.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(ya, yb));  // same seed attribute, different run seeds
  EXPECT_FALSE(at::equal(ya, yc));
  EXPECT_NEAR(ya.mean().item<double>(), 2.0, 0.05);
  EXPECT_NEAR(ya.std().item<double>(), 0.5, 0.05);
}

TEST(Random, WithoutSeedAttributeTheRunSeedDecides) {
  auto m = normal_model(std::nullopt);
  at::Tensor y1 = run_output(m, {}, 0, with_seed(7)), y2 = run_output(m, {}, 0, with_seed(7)), y3 = run_output(m, {}, 0, with_seed(8));
  EXPECT_TRUE(at::equal(y1, y2));
  EXPECT_FALSE(at::equal(y1, y3));
}

TEST(Random, UniformLikeKeepsShapeAndDtypeAndRange) {
  testing::ModelBuilder b(13);
  b.input("x", {4, 250}).output("y", {4, 250}).output("z", {4, 250}, TP::FLOAT16);
  auto& n = b.node("RandomUniformLike", {"x"}, {"y"}, "r");
  set_attr(n, "low", -3.f);
  set_attr(n, "high", -1.f);
  set_attr(b.node("RandomNormalLike", {"x"}, {"z"}, "z"), "dtype", int64_t{TP::FLOAT16});
  auto r = run_model(b, {{"x", at::zeros({4, 250})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  at::Tensor y = r->outputs[0];
  EXPECT_EQ(y.scalar_type(), at::kFloat);
  EXPECT_EQ(y.sizes(), at::IntArrayRef({4, 250}));
  EXPECT_GE(y.min().item<double>(), -3.0);
  EXPECT_LT(y.max().item<double>(), -1.0);
  EXPECT_GT(y.max().item<double>() - y.min().item<double>(), 1.9);  // covers the range
  EXPECT_EQ(r->outputs[1].scalar_type(), at::kHalf);
}

TEST(Random, BernoulliExtremesDtypeAndInvalidProbability) {
  testing::ModelBuilder b(15);
  b.input("p", {4}).output("y", {4}, TP::INT32);
  set_attr(b.node("Bernoulli", {"p"}, {"y"}, "b"), "dtype", int64_t{TP::INT32});
  at::Tensor y = run_output(b, {{"p", at::tensor({0.f, 1.f, 0.f, 1.f})}});
  EXPECT_EQ(y.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(y, at::tensor({0, 1, 0, 1}, at::kInt)));
  auto bad = run_model(b, {{"p", at::tensor({0.f, 1.5f, 0.f, 1.f})}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("probability 1.5 is outside [0, 1]"), std::string::npos)
      << bad.status().message();
}

// ---- Abstract semantics ------------------------------------------------------------

// The bounds hold for every draw: a *Like op on a ranged input (the engine runs
// input-free random ops concretely), small (< 16 elements: the float64 Box-Muller
// path) and large (the float32 normal_fill path) tensors.
TEST(RandomAbstract, BoundsHoldForEveryDraw) {
  testing::SoundTally tally;
  for (int64_t n : {5, 64, 4096}) {
    for (const char* op : {"RandomNormalLike", "RandomUniformLike"}) {
      for (auto [a, b] : {std::pair{0.f, 1.f}, std::pair{-3.f, 0.25f}, std::pair{1e4f, 1e-3f}}) {
        testing::ModelBuilder m(13);
        m.input("x", {n}).output("y", {n});
        auto& node = m.node(op, {"x"}, {"y"}, "r");
        bool normal = std::string(op) == "RandomNormalLike";
        set_attr(node, normal ? "mean" : "low", a);
        set_attr(node, normal ? "scale" : "high", normal ? b : a + std::abs(b));
        testing::expect_sound_supported(m, testing::ranges_of({{"x", {-1, 1}}}), op, tally, 25);
      }
    }
  }
  // Bernoulli: 0 or 1, decided at p = 0 and p = 1.
  for (auto [lo, hi] : {std::pair{0.0, 1.0}, std::pair{0.2, 0.7}, std::pair{1.0, 1.0}}) {
    testing::ModelBuilder m(15);
    m.input("p", {32}).output("y", {32});
    m.node("Bernoulli", {"p"}, {"y"}, "b");
    testing::expect_sound_supported(m, testing::ranges_of({{"p", {lo, hi}}}), "Bernoulli", tally, 25);
  }
  tally.print("random");
  EXPECT_EQ(tally.violations, 0);
}

TEST(RandomAbstract, NormalBoundAndBernoulliHazard) {
  testing::ModelBuilder m(13);
  m.input("x", {8}).output("y", {8});
  auto& node = m.node("RandomNormalLike", {"x"}, {"y"}, "r");
  set_attr(node, "mean", 2.f);
  set_attr(node, "scale", -0.5f);
  AnalysisResult r = testing::analyze_built(m, testing::ranges_of({{"x", {-1, 1}}}));
  EXPECT_TRUE(r.findings.empty());
  // |z| <= sqrt(-2 ln 2^-53) = 8.5717 (rounded up to 8.58), plus 4 ulps.
  EXPECT_NEAR(r.intervals.at("y").min(), 2 - 8.58 * 0.5, 1e-5);
  EXPECT_NEAR(r.intervals.at("y").max(), 2 + 8.58 * 0.5, 1e-5);
  auto bernoulli = [](Range p) {
    testing::ModelBuilder b(15);
    b.input("p", {4}).output("y", {4});
    b.node("Bernoulli", {"p"}, {"y"}, "b");
    return testing::analyze_built(b, testing::ranges_of({{"p", p}}));
  };
  EXPECT_TRUE(bernoulli({0, 1}).findings.empty());
  AnalysisResult bad = bernoulli({-0.1, 1});
  EXPECT_EQ(testing::kind_summary(bad), (std::vector<std::string>{"b:bernoulli-probability-out-of-range:crash"}));
  // Proof fails when the range widens past 1.
  EXPECT_EQ(testing::kind_summary(bernoulli({0.5, 1.01})), (std::vector<std::string>{"b:bernoulli-probability-out-of-range:crash"}));
}

}  // namespace
}  // namespace nanguard
