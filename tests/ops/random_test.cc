// Random ops: conformance skips them (values depend on the generator), so these
// tests check shapes, dtypes, ranges, distribution moments and determinism: a seed
// attribute fixes the values, otherwise the run's seed does.
#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "test_models.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;
using testing::set_attr;

Result<ExecResult> run(testing::ModelBuilder& b, const TensorMap& feeds, uint64_t seed = 0) {
  auto g = load_model_proto(b.proto(), "random_test.onnx");
  if (!g.ok()) return g.status();
  ExecOptions opt;
  opt.seed = seed;
  auto ex = Executor::create(*g, opt);
  if (!ex.ok()) return ex.status();
  return ex->run(feeds);
}

at::Tensor run_ok(testing::ModelBuilder& b, const TensorMap& feeds, uint64_t seed = 0) {
  auto r = run(b, feeds, seed);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->outputs[0] : at::Tensor();
}

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
  at::Tensor ya = run_ok(a, {}, 1), yb = run_ok(b, {}, 2), yc = run_ok(c, {}, 1);
  EXPECT_EQ(ya.sizes(), at::IntArrayRef({100, 50}));
  EXPECT_EQ(ya.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(ya, yb));  // same seed attribute, different run seeds
  EXPECT_FALSE(at::equal(ya, yc));
  EXPECT_NEAR(ya.mean().item<double>(), 2.0, 0.05);
  EXPECT_NEAR(ya.std().item<double>(), 0.5, 0.05);
}

TEST(Random, WithoutSeedAttributeTheRunSeedDecides) {
  auto m = normal_model(std::nullopt);
  at::Tensor y1 = run_ok(m, {}, 7), y2 = run_ok(m, {}, 7), y3 = run_ok(m, {}, 8);
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
  auto r = run(b, {{"x", at::zeros({4, 250})}});
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
  at::Tensor y = run_ok(b, {{"p", at::tensor({0.f, 1.f, 0.f, 1.f})}});
  EXPECT_EQ(y.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(y, at::tensor({0, 1, 0, 1}, at::kInt)));
  auto bad = run(b, {{"p", at::tensor({0.f, 1.5f, 0.f, 1.f})}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("probability 1.5 is outside [0, 1]"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace nanguard
