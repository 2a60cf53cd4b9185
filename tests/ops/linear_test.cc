// MatMul, Gemm, Einsum and MatMulInteger: shapes numpy defines, the literal Gemm
// formula (where INF * 0 decides NaN), float32 overflow, gradients.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::run_node;
using testing::set_attr;
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(Linear, MatMulOneDimensionalAndBroadcastShapes) {
  auto vm = run_node(13, "MatMul", {{"a", at::ones({3})}, {"b", at::ones({3, 4})}}, {}, 1, 1);
  ASSERT_EQ(vm.error, "");
  EXPECT_EQ(vm.outputs[0].sizes(), (std::vector<int64_t>{4}));
  EXPECT_EQ(vm.outputs[0][0].item<float>(), 3.f);
  auto vv = run_node(13, "MatMul", {{"a", at::ones({3})}, {"b", at::ones({3})}}, {}, 1, 0);
  ASSERT_EQ(vv.error, "");
  EXPECT_EQ(vv.outputs[0].dim(), 0);
  auto bb = run_node(13, "MatMul", {{"a", at::ones({2, 1, 3, 4})}, {"b", at::ones({5, 4, 2})}}, {}, 1, 4);
  ASSERT_EQ(bb.error, "");
  EXPECT_EQ(bb.outputs[0].sizes(), (std::vector<int64_t>{2, 5, 3, 2}));
}

TEST(Linear, MatMulOverflowsFloat32) {
  // Each product is finite (1e20 * 1e20 = 1e40 > FLT_MAX): the dot product is INF.
  auto r = run_node(13, "MatMul", {{"a", at::full({1, 2}, 1e20f)}, {"b", at::full({2, 1}, 1e20f)}}, {}, 1, 2);
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.outputs[0].item<float>(), kInf);
}

TEST(Linear, GemmAttributesAndLiteralBeta) {
  at::Tensor a = at::arange(6, at::kFloat).reshape({3, 2});  // transA -> 2 x 3
  at::Tensor b = at::ones({4, 3});                              // transB -> 3 x 4
  at::Tensor c = at::tensor({1.f, 2.f, 3.f, kInf});             // broadcast to (2, 4)
  auto r = run_node(13, "Gemm", {{"a", a}, {"b", b}, {"c", c}}, [](onnx::NodeProto& n) {
    set_attr(n, "transA", int64_t{1});
    set_attr(n, "transB", int64_t{1});
    set_attr(n, "alpha", 0.5f);
    set_attr(n, "beta", 0.f);
  }, 1, 2);
  ASSERT_EQ(r.error, "");
  at::Tensor y = r.outputs[0];
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_FLOAT_EQ(y[0][0].item<float>(), 0.5f * (0 + 2 + 4));
  EXPECT_FLOAT_EQ(y[1][2].item<float>(), 0.5f * (1 + 3 + 5));
  // beta * C with beta = 0 and C = INF is NaN: the spec's formula, evaluated as written.
  EXPECT_TRUE(std::isnan(y[0][3].item<float>()));
}

TEST(Linear, GemmWithoutCAtOpset11AndGradient) {
  at::Tensor a = at::ones({2, 3}).requires_grad_(true);
  auto r = run_node(11, "Gemm", {{"a", a}, {"b", at::full({3, 2}, 2.f)}}, {}, 1, 2);
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.outputs[0][1][1].item<float>(), 6.f);
  r.outputs[0].sum().backward();
  ASSERT_TRUE(a.grad().defined());
  EXPECT_TRUE(at::allclose(a.grad(), at::full({2, 3}, 4.f)));
}

TEST(Linear, EinsumWithBlanksAndEllipsis) {
  at::Tensor x = at::arange(24, at::kFloat).reshape({2, 3, 4});
  auto r = run_node(12, "Einsum", {{"x", x}}, [](onnx::NodeProto& n) {
    testing::set_string(n, "equation", "...ij -> ...ji");
  }, 1, 3);
  ASSERT_EQ(r.error, "");
  EXPECT_TRUE(at::equal(r.outputs[0], x.transpose(1, 2)));
}

TEST(Linear, MatMulIntegerPerRowZeroPoint) {
  at::Tensor a = at::tensor({11, 12, 13, 14}, at::kByte).reshape({2, 2});
  at::Tensor b = at::tensor({1, 2, 3, 4}, at::kByte).reshape({2, 2});
  at::Tensor azp = at::tensor({10, 12}, at::kByte);
  auto r = run_node(10, "MatMulInteger", {{"a", a}, {"b", b}, {"azp", azp}}, {}, 1, 2, onnx::TensorProto::INT32);
  ASSERT_EQ(r.error, "");
  // (A - azp per row) = [[1, 2], [1, 2]]
  EXPECT_EQ(r.outputs[0].scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(r.outputs[0], at::tensor({7, 10, 7, 10}, at::kInt).reshape({2, 2})));
  // Integer MatMul stays integer (and exact beyond float's 24-bit mantissa).
  at::Tensor big = at::tensor({int64_t{1} << 40, int64_t{3}}, at::kLong).reshape({1, 2});
  auto m = run_node(13, "MatMul", {{"a", big}, {"b", at::tensor({int64_t{1}, int64_t{1}}, at::kLong).reshape({2, 1})}},
                    {}, 1, 2, onnx::TensorProto::INT64);
  ASSERT_EQ(m.error, "");
  EXPECT_EQ(m.outputs[0].scalar_type(), at::kLong);
  EXPECT_EQ(m.outputs[0].item<int64_t>(), (int64_t{1} << 40) + 3);
}


// ---- abstract semantics -------------------------------------------------------

using testing::analyze_built;
using testing::expect_sound;
using testing::ModelBuilder;
using testing::free_weights;
using testing::ranges_of;

const std::vector<std::pair<double, double>> kLinearBoxes{
    {-3, 3}, {0, 1}, {-100, 100}, {1e-30, 1e-20}, {0.999, 1.001}, {-1e20, 1e20}, {-1e37, 1e37}};

TEST(LinearAbstract, SoundBySampling) {
  at::manual_seed(3);
  at::Tensor w = at::randn({8, 5}), c = at::randn({5});
  int64_t checked = 0;
  for (bool free : {false, true}) {
    for (auto [lo, hi] : kLinearBoxes) {
      std::string box = std::to_string(lo) + "," + std::to_string(hi) + (free ? " free" : "");
      ModelBuilder mm;
      mm.input("x", {3, 8}).initializer("w", w).output("y", {3, 5});
      mm.node("MatMul", {"x", "w"}, {"y"}, "n");
      checked += expect_sound(mm, free_weights({{"x", {lo, hi}}}, -0.5, 0.5, free), "MatMul " + box, nullptr, 20);
      ModelBuilder mv;  // 1-D operand, batch broadcast
      mv.input("x", {2, 3, 8}).input("v", {8}).output("y", {2, 3});
      mv.node("MatMul", {"x", "v"}, {"y"}, "n");
      checked += expect_sound(mv, free_weights({{"x", {lo, hi}}, {"v", {-2, 1}}}, -0.5, 0.5, free), "MatMul-1d " + box, nullptr, 20);
      ModelBuilder gm;
      gm.input("x", {3, 8}).initializer("w", w.t().contiguous()).initializer("c", c).output("y", {3, 5});
      auto& n = gm.node("Gemm", {"x", "w", "c"}, {"y"}, "n");
      set_attr(n, "transB", int64_t{1});
      set_attr(n, "alpha", 0.5f);
      set_attr(n, "beta", 2.0f);
      checked += expect_sound(gm, free_weights({{"x", {lo, hi}}}, -0.5, 0.5, free), "Gemm " + box, nullptr, 20);
      ModelBuilder es;
      es.input("x", {3, 8}).initializer("w", w).output("y", {5, 3});
      testing::set_string(es.node("Einsum", {"x", "w"}, {"y"}, "n"), "equation", "ij,jk->ki");
      checked += expect_sound(es, free_weights({{"x", {lo, hi}}}, -0.5, 0.5, free), "Einsum " + box, nullptr, 20);
      ModelBuilder e1;
      e1.input("x", {3, 8}).output("y", {8});
      testing::set_string(e1.node("Einsum", {"x"}, {"y"}, "n"), "equation", "ij->j");
      checked += expect_sound(e1, free_weights({{"x", {lo, hi}}}, -0.5, 0.5, free), "Einsum-1 " + box, nullptr, 20);
    }
  }
  EXPECT_GT(checked, 1000);
}

// Fixed weights give the exact interval of each output, to within the rounding term.
TEST(LinearAbstract, FixedWeightsAreTight) {
  at::Tensor w = at::tensor({1.0f, -2.0f, 0.5f, 3.0f}).reshape({4, 1});
  ModelBuilder b;
  b.input("x", {1, 4}).initializer("w", w).output("y", {1, 1});
  b.node("MatMul", {"x", "w"}, {"y"}, "n");
  auto r = analyze_built(b, ranges_of({{"x", {-1, 2}}}), "tight");
  const IntervalTensor& y = r.intervals.at("y");
  // max = 2 + 2 + 1 + 6 = 11, min = -1 - 4 - 0.5 - 3 = -8.5
  EXPECT_NEAR(y.max(), 11.0, 1e-5);
  EXPECT_NEAR(y.min(), -8.5, 1e-5);
}

// MatMul -> Log: proved for x in [1, 2] with positive weights, flagged once x may be 0.
TEST(LinearAbstract, ProofFailsWhenRangeWidens) {
  auto build = [](ModelBuilder& b) {
    b.input("x", {2, 3}).initializer("w", at::full({3, 2}, 0.5f)).output("y", {2, 2});
    b.node("MatMul", {"x", "w"}, {"m"}, "mm");
    b.node("Log", {"m"}, {"y"}, "log");
  };
  ModelBuilder safe, wide;
  build(safe);
  build(wide);
  EXPECT_TRUE(analyze_built(safe, ranges_of({{"x", {1, 2}}}), "narrow").findings.empty());
  auto r = analyze_built(wide, ranges_of({{"x", {0, 2}}}), "wide");
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].hazard, "log-nonpositive");
  EXPECT_EQ(r.findings[0].node, "log");
}

// Partial sums may overflow even when the exact sum does not: bounds become infinite.
TEST(LinearAbstract, AccumulatorOverflowIsReported) {
  ModelBuilder b;
  b.input("x", {1, 2}).initializer("w", at::tensor({1.0f, -1.0f}).reshape({2, 1})).output("y", {1, 1});
  b.node("MatMul", {"x", "w"}, {"y"}, "n");
  auto r = analyze_built(b, ranges_of({{"x", {3e38, 3.4e38}}}), "acc");
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].hazard, "overflow");
  auto ok = analyze_built(b, ranges_of({{"x", {1e37, 3e37}}}), "acc-ok");
  EXPECT_TRUE(ok.findings.empty());
}

}  // namespace
}  // namespace nanguard
