// Cast/CastLike at the edges that decide NaN/INF: float16 overflow, NaN -> bool,
// integer wrap (including the unsigned types ATen lacks), truncation toward zero,
// string casts refused, and the float64 run's treatment of a cast to FLOAT.
#include <cmath>
#include <limits>
#include <tuple>

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;
using testing::run_model;
using testing::set_attr;

Result<ExecResult> cast(const at::Tensor& x, int32_t from, int32_t to, int64_t opset = 13) {
  testing::ModelBuilder b(opset);
  b.input("x", {x.size(0)}, from).output("y", {x.size(0)}, to);
  set_attr(b.node("Cast", {"x"}, {"y"}, "c"), "to", int64_t{to});
  return run_model(b, {{"x", x}});
}

at::Tensor cast_ok(const at::Tensor& x, int32_t from, int32_t to, int64_t opset = 13) {
  auto r = cast(x, from, to, opset);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->outputs[0] : at::Tensor();
}

TEST(Cast, FloatToHalfOverflowsToInfAndNaNIsTrue) {
  at::Tensor h = cast_ok(at::tensor({65504.f, 70000.f, -1e6f}), TP::FLOAT, TP::FLOAT16);
  EXPECT_EQ(h.scalar_type(), at::kHalf);
  EXPECT_TRUE(std::isfinite(h[0].item<float>()));
  EXPECT_EQ(h[1].item<float>(), std::numeric_limits<float>::infinity());
  EXPECT_EQ(h[2].item<float>(), -std::numeric_limits<float>::infinity());
  float nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor b = cast_ok(at::tensor({nan, 0.f, -0.f, 1e-45f}), TP::FLOAT, TP::BOOL, 9);
  EXPECT_TRUE(at::equal(b, at::tensor({1, 0, 0, 1}).to(at::kBool)));
}

TEST(Cast, IntegersTruncateTowardZeroAndWrap) {
  at::Tensor i = cast_ok(at::tensor({-1.7f, 2.9f, -0.5f}), TP::FLOAT, TP::INT32);
  EXPECT_TRUE(at::equal(i, at::tensor({-1, 2, 0}, at::kInt)));
  at::Tensor u8 = cast_ok(at::tensor({300, -1}, at::kInt), TP::INT32, TP::UINT8);
  EXPECT_TRUE(at::equal(u8, at::tensor({44, 255}, at::kByte)));
  // uint16 lives in int32: -1 must wrap to 65535, not stay -1.
  at::Tensor u16 = cast_ok(at::tensor({-1, 65537}, at::kLong), TP::INT64, TP::UINT16);
  EXPECT_TRUE(at::equal(u16.to(at::kLong), at::tensor({65535, 1}, at::kLong)));
}

TEST(Cast, StringCastIsNotSupported) {
  auto r = cast(at::tensor({1.f}), TP::FLOAT, TP::STRING);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not supported"), std::string::npos) << r.status().message();
}

TEST(Cast, CastLikeFollowsTargetTypeAndCastCarriesGradient) {
  testing::ModelBuilder like(15);
  like.input("x", {2}).input("t", {1}, TP::INT32).output("y", {2}, TP::INT32);
  like.node("CastLike", {"x", "t"}, {"y"}, "c");
  auto r = run_model(like, {{"x", at::tensor({-2.5f, 2.5f})}, {"t", at::zeros({1}, at::kInt)}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::equal(r->outputs[0], at::tensor({-2, 2}, at::kInt)));
  // An explicit cast to DOUBLE is honoured in a float32 run, and differentiable.
  testing::ModelBuilder wide(13);
  wide.input("x", {2}).output("y", {2}, TP::DOUBLE);
  set_attr(wide.node("Cast", {"x"}, {"y"}, "c"), "to", int64_t{TP::DOUBLE});
  at::Tensor x = at::tensor({0.1f, 2.f}).requires_grad_();
  auto w = run_model(wide, {{"x", x}});
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->outputs[0].scalar_type(), at::kDouble);
  (w->outputs[0] * 3).sum().backward();
  EXPECT_TRUE(at::equal(x.grad(), at::full({2}, 3.f)));
}

TEST(Cast, CastToFloatFollowsTheRunsFloatType) {
  testing::ModelBuilder b(13);
  b.input("x", {1}, TP::INT32).output("y", {1});
  set_attr(b.node("Cast", {"x"}, {"y"}, "c"), "to", int64_t{TP::FLOAT});
  ExecOptions wide;
  wide.float_type = at::kDouble;
  auto r = run_model(b, {{"x", at::tensor({16777217}, at::kInt)}}, wide);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->outputs[0].scalar_type(), at::kDouble);
  EXPECT_EQ(r->outputs[0].item<double>(), 16777217.0);  // float32 would round it
  auto narrow = run_model(b, {{"x", at::tensor({16777217}, at::kInt)}});
  ASSERT_TRUE(narrow.ok());
  EXPECT_EQ(narrow->outputs[0].scalar_type(), at::kFloat);
}

// ---- Abstract semantics ------------------------------------------------------------

testing::ModelBuilder cast_model(int32_t from, int32_t to) {
  testing::ModelBuilder b(13);
  b.input("x", {16}, from).output("y", {16}, to);
  set_attr(b.node("Cast", {"x"}, {"y"}, "cast"), "to", int64_t{to});
  return b;
}

TEST(CastAbstract, BoundsAreSound) {
  testing::SoundTally tally;
  std::vector<std::pair<double, double>> boxes{{-3.7, 3.7}, {0, 1}, {-1e-3, 2e-3}, {0.5, 2.5}, {-100, 100}, {1e3, 6e4}};
  for (auto [from, to] : std::vector<std::pair<int32_t, int32_t>>{{TP::FLOAT, TP::INT32},   {TP::FLOAT, TP::INT8},
                                                                  {TP::FLOAT, TP::UINT8},   {TP::FLOAT, TP::INT64},
                                                                  {TP::FLOAT, TP::FLOAT16}, {TP::FLOAT, TP::BFLOAT16},
                                                                  {TP::FLOAT, TP::DOUBLE},  {TP::FLOAT, TP::BOOL},
                                                                  {TP::INT64, TP::FLOAT},   {TP::INT64, TP::INT8},
                                                                  {TP::INT32, TP::UINT16},  {TP::DOUBLE, TP::FLOAT},
                                                                  {TP::INT64, TP::BOOL},    {TP::BOOL, TP::FLOAT}}) {
    for (auto [lo, hi] : boxes) {
      if (from == TP::BOOL) std::tie(lo, hi) = std::pair{0.0, 1.0};
      // Narrowing casts of floats are only defined in the target's range: stay inside.
      if (to == TP::INT8 && from == TP::FLOAT) hi = std::min(hi, 127.9), lo = std::max(lo, -128.9);
      if (to == TP::UINT8 && from == TP::FLOAT) hi = std::min(hi, 255.9), lo = std::max(lo, -0.9);
      if (lo > hi) continue;
      testing::ModelBuilder b = cast_model(from, to);
      testing::expect_sound_supported(b, testing::ranges_of({{"x", {lo, hi}}}), elem_type_name(from) + "->" + elem_type_name(to), tally);
    }
  }
  tally.print("cast");
  EXPECT_EQ(tally.violations, 0);
}

// The cast's own hazards.
std::vector<std::string> cast_findings(int32_t from, int32_t to, double lo, double hi) {
  testing::ModelBuilder b = cast_model(from, to);
  return testing::kind_summary(testing::analyze_built(b, testing::ranges_of({{"x", {lo, hi}}})));
}

TEST(CastAbstract, CastToHalfInRangeIsProved) {
  for (int32_t half : {TP::FLOAT16, TP::BFLOAT16}) {
    testing::ModelBuilder b = cast_model(TP::FLOAT, half);
    EXPECT_TRUE(testing::kind_summary(testing::analyze_built(b, testing::ranges_of({{"x", {-1, 1}}}))).empty());
  }
}

// Exact thresholds: trunc(x) must fit the integer type; float16 rounds to INF from
// 65520 on, bfloat16 from 3.3961775e38.
TEST(CastAbstract, OverflowHazardsAtExactThresholds) {
  const std::vector<std::string> crash{"cast:cast-overflow:crash"}, inf{"cast:cast-overflow:forward"}, none;
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::INT8, -128.99, 127.99), none);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::INT8, -128.99, 128), crash);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::INT8, -129, 0), crash);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::UINT8, -0.99, 255.5), none);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::UINT8, -1, 3), crash);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::INT32, -2147483648.0, 2147483520.0), none);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::INT32, 0, 2147483648.0), crash);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::INT64, -1e18, 9.2e18), none);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::INT64, 0, 9.3e18), crash);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::FLOAT16, -65519, 65519), none);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::FLOAT16, -65520, 0), inf);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::BFLOAT16, -3.39e38, 3.39e38), none);
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::BFLOAT16, 0, 3.4e38), inf);
  EXPECT_EQ(cast_findings(TP::INT64, TP::INT8, -1000, 1000), none);  // integers wrap: defined
  testing::ModelBuilder b = cast_model(TP::FLOAT, TP::INT32);
  AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"x", {3e9, 4e9}}}));
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].status, "definite");
  // Truncation toward zero, and bool is decided where the range excludes 0.
  r = testing::analyze_built(b, testing::ranges_of({{"x", {-2.5, 3.9}}}));
  EXPECT_EQ(r.intervals.at("y").min(), -2);
  EXPECT_EQ(r.intervals.at("y").max(), 3);
  testing::ModelBuilder bb = cast_model(TP::FLOAT, TP::BOOL);
  EXPECT_EQ(testing::analyze_built(bb, testing::ranges_of({{"x", {0.25, 3}}})).intervals.at("y").min(), 1);
}

// A proof past a cast fails once the range reaches the threshold.
TEST(CastAbstract, ProofFailsWhenTheRangeWidens) {
  EXPECT_TRUE(cast_findings(TP::FLOAT, TP::INT16, -32768.5, 32767.5).empty());
  EXPECT_EQ(cast_findings(TP::FLOAT, TP::INT16, -32768.5, 32768.5), (std::vector<std::string>{"cast:cast-overflow:crash"}));
}

}  // namespace
}  // namespace nanguard
