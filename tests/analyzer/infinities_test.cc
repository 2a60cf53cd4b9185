// Deliberate infinities as values: a causal -inf mask added to attention scores is
// carried as -inf, not an overflow, and the softmax of rows that keep their diagonal is
// proved finite; a fully masked row is a finding at the softmax; an op whose semantics
// do not follow infinities reports the operand instead of bounding it as if finite;
// inf - inf is a finding. Sampled runs stay inside the bounds, infinities included.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using Names = std::vector<std::string>;
constexpr float kInf = std::numeric_limits<float>::infinity();

// softmax(x @ w @ x^T + mask) @ x, one head of causal attention over 4 positions.
testing::ModelBuilder attention(at::Tensor mask) {
  testing::ModelBuilder b(13);
  b.input("x", {1, 4, 8}).output("y", {1, 4, 8});
  b.initializer("w", at::randn({8, 8}, at::TensorOptions().dtype(at::kFloat)) * 0.3);
  b.initializer("mask", mask);
  b.node("MatMul", {"x", "w"}, {"q"}, "q_proj");
  testing::set_attr(b.node("Transpose", {"x"}, {"xt"}, "keys"), "perm", std::vector<int64_t>{0, 2, 1});
  b.node("MatMul", {"q", "xt"}, {"scores"}, "scores");
  b.node("Add", {"scores", "mask"}, {"masked"}, "add_mask");
  b.node("Softmax", {"masked"}, {"att"}, "softmax");
  b.node("MatMul", {"att", "x"}, {"y"}, "mix");
  return b;
}

at::Tensor causal_mask() { return at::triu(at::full({4, 4}, -kInf), 1); }

TEST(Infinities, ACausalMaskIsCarriedAndItsSoftmaxIsProvedFinite) {
  at::manual_seed(3);
  testing::ModelBuilder b = attention(causal_mask());
  AnalyzeOptions opt = testing::ranges_of({{"x", {-1, 1}}});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_EQ(testing::summary(r.findings), Names{});
  const IntervalTensor& m = r.intervals.at("masked");
  EXPECT_EQ(m.full_hi()[0][0][3].item<double>(), -std::numeric_limits<double>::infinity());  // above the diagonal
  EXPECT_TRUE(std::isfinite(m.full_lo()[0][3][0].item<double>()));                        // kept
  EXPECT_GT(testing::expect_sound(b, opt, "causal attention", nullptr, 40, 1), 0);
}

TEST(Infinities, AFullyMaskedRowIsASoftmaxFinding) {
  at::manual_seed(3);
  at::Tensor mask = causal_mask();
  mask[0].fill_(-kInf);  // the first query sees nothing
  testing::ModelBuilder b = attention(mask);
  AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"x", {-1, 1}}}));
  EXPECT_EQ(testing::summary(r.findings), (Names{"softmax:softmax-infinite-row"}));
  ASSERT_EQ(r.findings.size(), 1u);
  EXPECT_EQ(r.findings[0].status, "definite");
}

// A LayerNormalization does not follow infinities: a -inf fill reaching it is reported,
// never bounded as if it were a number.
TEST(Infinities, AnOpThatDoesNotFollowInfinitiesReportsTheOperand) {
  testing::ModelBuilder b(17);
  b.input("x", {1, 4}).output("y", {1, 4});
  b.initializer("mask", at::tensor({0.f, 0.f, -kInf, 0.f}).reshape({1, 4}));
  b.initializer("gamma", at::ones({4}));
  b.node("Add", {"x", "mask"}, {"masked"}, "add_mask");
  b.node("LayerNormalization", {"masked", "gamma"}, {"y"}, "norm");
  AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"x", {-1, 1}}}));
  EXPECT_EQ(testing::summary(r.findings), (Names{"norm:infinite-operand"}));
}

// x + mask - mask: -inf - (-inf) at the masked entry.
TEST(Infinities, InfinityMinusInfinityIsAFinding) {
  testing::ModelBuilder b(13);
  b.input("x", {1, 4}).output("y", {1, 4});
  b.initializer("mask", at::tensor({0.f, 0.f, -kInf, 0.f}).reshape({1, 4}));
  b.node("Add", {"x", "mask"}, {"masked"}, "add_mask");
  b.node("Sub", {"masked", "mask"}, {"y"}, "unmask");
  AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"x", {-1, 1}}}));
  EXPECT_EQ(testing::summary(r.findings), (Names{"unmask:nan-from-infinities"}));
}

}  // namespace
}  // namespace nanguard
