// Elementwise binary ops (ops/binary.cc): the integer and float semantics ONNX
// specifies (truncating integer Div, fmod vs Python Mod, Pow keeping the base's
// type), the hazards with their exact conditions, the divisor's safe domain, and
// soundness of the transfers by sampling.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "ops/op_registry.h"
#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;

// z = op(x, y) for 1-D x and y of the same length, both runtime inputs.
ModelBuilder binary_model(const std::string& op, int64_t n, int32_t type = onnx::TensorProto::FLOAT,
                          const testing::AttrFn& attrs = {}) {
  ModelBuilder b(13);
  b.input("x", {n}, type).input("y", {n}, type).output("z", {n}, type);
  auto& node = b.node(op, {"x", "y"}, {"z"}, "n");
  if (attrs) attrs(node);
  return b;
}

at::Tensor run_binary(const std::string& op, const at::Tensor& x, const at::Tensor& y, const testing::AttrFn& attrs = {}) {
  ModelBuilder b = binary_model(op, x.size(0), testing::elem_type_of(x), attrs);
  return testing::run_output(b, {{"x", x}, {"y", y}});
}

std::vector<std::string> hazards(const std::string& op, RangeMap ranges, int32_t type = onnx::TensorProto::FLOAT) {
  ModelBuilder b = binary_model(op, 3, type);
  return testing::hazards_of(testing::analyze_built(b, testing::ranges_of(ranges)));
}

TEST(Binary, IntegerDivTruncatesTowardZeroAndFloatDivIsIeee) {
  at::Tensor q = run_binary("Div", testing::longs({7, -7, 7, -7}), testing::longs({2, 2, -2, -2}));
  EXPECT_TRUE(at::equal(q, testing::longs({3, -3, -3, 3})));
  at::Tensor f = run_binary("Div", at::tensor({1.f, -1.f, 0.f}), at::tensor({0.f, 0.f, 0.f}));
  EXPECT_EQ(f[0].item<float>(), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f[1].item<float>(), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f[2].item<float>()));
}

TEST(Binary, ModFollowsTheDivisorsSignUnlessFmod) {
  at::Tensor x = testing::longs({-7, 7, -7}), y = testing::longs({3, -3, -3});
  EXPECT_TRUE(at::equal(run_binary("Mod", x, y), testing::longs({2, -2, -1})));  // Python
  auto fmod = [](onnx::NodeProto& n) { testing::set_attr(n, "fmod", int64_t{1}); };
  at::Tensor f = run_binary("Mod", at::tensor({-7.f, 7.f, -7.f}), at::tensor({3.f, -3.f, -3.f}), fmod);
  EXPECT_TRUE(at::equal(f, at::tensor({-1.f, 1.f, -1.f})));  // C fmod: the dividend's sign
}

TEST(Binary, PowKeepsTheBasesTypeAndNegativeBasesNeedIntegerExponents) {
  at::Tensor p = run_binary("Pow", at::tensor({-2.f, -2.f, 4.f}), at::tensor({3.f, 0.5f, 0.5f}));
  EXPECT_EQ(p[0].item<float>(), -8.f);
  EXPECT_TRUE(std::isnan(p[1].item<float>()));
  EXPECT_EQ(p[2].item<float>(), 2.f);
}

TEST(Binary, DivHazardsAreExact) {
  using V = std::vector<std::string>;
  EXPECT_EQ(hazards("Div", {{"x", {-1, 1}}, {"y", {-1, 1}}}), V{"div-by-zero"});
  EXPECT_EQ(hazards("Div", {{"x", {-1, 1}}, {"y", {0.5, 1}}}), V{});
  // |x / y| can pass FLT_MAX without y reaching 0: 1e30 / 1e-10.
  EXPECT_EQ(hazards("Div", {{"x", {-1e30, 1e30}}, {"y", {1e-10, 1}}}), V{"div-overflow"});
  EXPECT_EQ(hazards("Div", {{"x", {0, 5}}, {"y", {0, 3}}}, onnx::TensorProto::INT64), V{"int-div-by-zero"});
  EXPECT_EQ(hazards("Mod", {{"x", {0, 5}}, {"y", {-1, 1}}}), V{"mod-by-zero"});
}

TEST(Binary, PowHazardsNameTheBase) {
  using V = std::vector<std::string>;
  ModelBuilder b(13);
  b.input("x", {3}).initializer("half", at::tensor(0.5f)).initializer("minus", at::tensor(-1.f)).output("a", {3}).output("c", {3});
  b.node("Pow", {"x", "half"}, {"a"}, "sqrt_like");
  b.node("Pow", {"x", "minus"}, {"c"}, "inverse");
  auto neg = testing::analyze_built(b, testing::ranges_of({{"x", {-1, 1}}}));
  EXPECT_EQ(testing::summary(neg.findings), (V{"sqrt_like:pow-negative-base", "inverse:pow-zero-negative-exponent"}));
  auto pos = testing::analyze_built(b, testing::ranges_of({{"x", {0, 1}}}));
  EXPECT_EQ(testing::summary(pos.findings), (V{"sqrt_like:pow-zero-gradient", "inverse:pow-zero-negative-exponent"}));
}

// The divisor's safe domain is the smallest |y| keeping |x / y| finite for the
// largest |x|: the analyzer accepts it, and a smaller divisor overflows for real.
TEST(Binary, DivisorSafeDomainIsTheSmallestProvedMagnitude) {
  const OpDef* div = OpRegistry::instance().find("Div");
  ASSERT_NE(div, nullptr);
  const HazardFacet* f = div->facet("div-by-zero");
  ASSERT_TRUE(f && f->safe_domain);
  Node node;
  node.op_type = "Div";
  auto d = f->safe_domain(node, {Range{-1e30, 1e30}, Range{-1, 1}}, kFloat32Max);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->operand, 1);
  float m = static_cast<float>(d->min_magnitude);
  EXPECT_EQ(static_cast<double>(m), d->min_magnitude);  // a float32
  double limit = 1e30 / std::numeric_limits<float>::max();  // |y| below it overflows in real arithmetic
  EXPECT_GE(d->min_magnitude, limit);
  EXPECT_LE(d->min_magnitude, limit * (1 + 0x1p-18));
  EXPECT_TRUE(std::isfinite(1e30f / m));
  // The forward pass is then finite; the backward's x / y^2 is not, for y under
  // sqrt(1e30 / FLT_MAX) = 0.054: div-gradient-overflow's own domain.
  EXPECT_EQ(hazards("Div", {{"x", {-1e30, 1e30}}, {"y", {d->min_magnitude, 1}}}),
            std::vector<std::string>{"div-gradient-overflow"});
  const HazardFacet* g = div->facet("div-gradient-overflow");
  ASSERT_TRUE(g && g->safe_domain);
  auto dg = g->safe_domain(node, {Range{-1e30, 1e30}, Range{-1, 1}}, kFloat32Max);
  ASSERT_TRUE(dg.has_value());
  EXPECT_NEAR(dg->min_magnitude, std::sqrt(1e30 / std::numeric_limits<float>::max()), 1e-6);
  EXPECT_EQ(hazards("Div", {{"x", {-1e30, 1e30}}, {"y", {dg->min_magnitude, 1}}}), std::vector<std::string>{});
  EXPECT_EQ(hazards("Div", {{"x", {-1e30, 1e30}}, {"y", {dg->min_magnitude * 0.99, 1}}}),
            std::vector<std::string>{"div-gradient-overflow"});
  // The real backward pass agrees on both sides of it.
  for (double k : {0.99, 1.01}) {
    at::Tensor x = at::full({1}, 1e30f).requires_grad_(true), y = at::full({1}, dg->min_magnitude * k).to(at::kFloat).requires_grad_(true);
    (x / y).sum().backward();
    EXPECT_EQ(std::isfinite(y.grad().item<float>()), k > 1) << k;
  }
  EXPECT_FALSE(hazards("Div", {{"x", {-1e30, 1e30}}, {"y", {limit * (1 - 0x1p-10), 1}}}).empty());
  EXPECT_FALSE(f->safe_domain(node, {Range{-std::numeric_limits<double>::infinity(), 0}, Range{-1, 1}}, kFloat32Max).has_value());
}

TEST(BinaryAbstract, TransfersAreSound) {
  testing::SoundTally tally;
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}) {
    ModelBuilder b = binary_model(op, 4);
    testing::expect_sound_supported(b, testing::ranges_of({{"x", {0.5, 3}}, {"y", {-2, 2.5}}}), op, tally);
  }
  ModelBuilder sq(13);  // x * x is >= 0 even when x crosses 0
  sq.input("x", {4}).output("z", {4});
  sq.node("Mul", {"x", "x"}, {"z"}, "square");
  auto a = testing::analyze_built(sq, testing::ranges_of({{"x", {-3, 2}}}));
  EXPECT_EQ(a.intervals.at("z").min(), 0);
  EXPECT_GE(a.intervals.at("z").max(), 9);
  testing::expect_sound_supported(sq, testing::ranges_of({{"x", {-3, 2}}}), "square", tally);
}

}  // namespace
}  // namespace nanguard
