// Cast/CastLike at the edges that decide NaN/INF: float16 overflow, NaN -> bool,
// integer wrap (including the unsigned types ATen lacks), truncation toward zero,
// string casts refused, and the float64 run's treatment of a cast to FLOAT.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "test_models.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;
using testing::set_attr;

Result<ExecResult> run(testing::ModelBuilder& b, const TensorMap& feeds, ExecOptions opt = {}) {
  auto g = load_model_proto(b.proto(), "cast_test.onnx");
  if (!g.ok()) return g.status();
  auto ex = Executor::create(*g, opt);
  if (!ex.ok()) return ex.status();
  return ex->run(feeds);
}

Result<ExecResult> cast(const at::Tensor& x, int32_t from, int32_t to, int64_t opset = 13) {
  testing::ModelBuilder b(opset);
  b.input("x", {x.size(0)}, from).output("y", {x.size(0)}, to);
  set_attr(b.node("Cast", {"x"}, {"y"}, "c"), "to", int64_t{to});
  return run(b, {{"x", x}});
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
  auto r = run(like, {{"x", at::tensor({-2.5f, 2.5f})}, {"t", at::zeros({1}, at::kInt)}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::equal(r->outputs[0], at::tensor({-2, 2}, at::kInt)));
  // An explicit cast to DOUBLE is honoured in a float32 run, and differentiable.
  testing::ModelBuilder wide(13);
  wide.input("x", {2}).output("y", {2}, TP::DOUBLE);
  set_attr(wide.node("Cast", {"x"}, {"y"}, "c"), "to", int64_t{TP::DOUBLE});
  at::Tensor x = at::tensor({0.1f, 2.f}).requires_grad_();
  auto w = run(wide, {{"x", x}});
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
  auto r = run(b, {{"x", at::tensor({16777217}, at::kInt)}}, wide);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->outputs[0].scalar_type(), at::kDouble);
  EXPECT_EQ(r->outputs[0].item<double>(), 16777217.0);  // float32 would round it
  auto narrow = run(b, {{"x", at::tensor({16777217}, at::kInt)}});
  ASSERT_TRUE(narrow.ok());
  EXPECT_EQ(narrow->outputs[0].scalar_type(), at::kFloat);
}

}  // namespace
}  // namespace nanguard
