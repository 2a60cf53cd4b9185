// Half precision: a float16 product past 65504 is an overflow finding (float32's limit
// would call it safe), nothing computed in float16 or bfloat16 is reported proved, and
// the executor runs such models on CPU (float32 compute, each result rounded to its type).
#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

testing::ModelBuilder square_model(int32_t type) {
  testing::ModelBuilder b(13);
  b.input("x", {2, 4}, type).output("y", {2, 4}, type);
  b.node("Mul", {"x", "x"}, {"sq"}, "square");
  b.node("Clip", {"sq"}, {"y"}, "clip");  // clamp has no float16 CPU kernel in ATen
  return b;
}

TEST(HalfPrecision, Float16OverflowIsFoundAndNothingIsProved) {
  testing::ModelBuilder b = square_model(onnx::TensorProto::FLOAT16);
  using Names = std::vector<std::string>;
  EXPECT_EQ(testing::summary(testing::findings_of(b, testing::ranges_of({{"x", {-300, 300}}}))),
            (Names{"square:overflow", "square:unmodelled-precision"}));
  // 255^2 = 65025 fits: no overflow, and still no proof of the float16 model.
  EXPECT_EQ(testing::summary(testing::findings_of(b, testing::ranges_of({{"x", {-255, 255}}}))),
            (Names{"square:unmodelled-precision"}));
  testing::ModelBuilder f = square_model(onnx::TensorProto::FLOAT);
  EXPECT_TRUE(testing::findings_of(f, testing::ranges_of({{"x", {-300, 300}}})).empty());  // float32 is modelled
}

TEST(HalfPrecision, BFloat16KeepsFloat32RangeButIsNotProved) {
  testing::ModelBuilder b = square_model(onnx::TensorProto::BFLOAT16);
  using Names = std::vector<std::string>;
  EXPECT_EQ(testing::summary(testing::findings_of(b, testing::ranges_of({{"x", {-300, 300}}}))),
            (Names{"square:unmodelled-precision"}));
}

TEST(HalfPrecision, Float16RunsOnCpuAndOverflowsWhereTheTypeDoes) {
  testing::ModelBuilder b = square_model(onnx::TensorProto::FLOAT16);
  at::Tensor x = at::tensor({1.f, 255.f, 256.f, 300.f, -300.f, 0.5f, 2.f, 3.f}).reshape({2, 4}).to(at::kHalf);
  at::Tensor y = testing::run_output(b, {{"x", x}});
  EXPECT_EQ(y.scalar_type(), at::kHalf);
  at::Tensor f = y.to(at::kFloat).flatten();
  EXPECT_EQ(f[1].item<float>(), 65024.f);  // 255^2 = 65025 rounds to the float16 65024
  EXPECT_TRUE(std::isinf(f[2].item<float>()));  // 65536 > 65504
  EXPECT_TRUE(std::isinf(f[3].item<float>()));
  EXPECT_EQ(f[5].item<float>(), 0.25f);
}

}  // namespace
}  // namespace nanguard
