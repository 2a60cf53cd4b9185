// Deliberate infinities as values: a causal -inf mask added to attention scores is
// carried as -inf, not an overflow, and the softmax of rows that keep their diagonal is
// proved finite; a fully masked row is a finding at the softmax; an op whose semantics
// do not follow infinities reports the operand instead of bounding it as if finite;
// inf - inf is a finding; a padding mask's ranged Where carries its -inf. Sampled runs
// stay inside the bounds, infinities included.
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

// A padding mask from lengths, as torch exports masked_fill(~(arange(T) < len), -inf):
// Where over a ranged condition selects -inf or the score, [-inf, hi] per masked
// entry, and that -inf is carried. With every length at least 1, key 0 is kept in every
// row: the softmax is proved finite; with a length of 0 a row is fully masked (NaN).
testing::ModelBuilder padded_softmax() {
  testing::ModelBuilder b(13);
  b.input("scores", {2, 6, 6}).input("lengths", {2}, onnx::TensorProto::INT64).output("p", {2, 6, 6});
  b.initializer("positions", at::arange(6, at::kLong));
  b.initializer("axis1", at::tensor({int64_t{1}}));
  b.initializer("fill", at::tensor({-kInf}));
  b.node("Unsqueeze", {"lengths", "axis1"}, {"len"}, "len_column");
  b.node("Less", {"positions", "len"}, {"keep"}, "keep");
  b.node("Unsqueeze", {"keep", "axis1"}, {"keep3"}, "per_query");
  b.node("Not", {"keep3"}, {"pad"}, "pad");
  b.node("Where", {"pad", "fill", "scores"}, {"masked"}, "mask_fill");
  b.node("Softmax", {"masked"}, {"p"}, "softmax");
  return b;
}

TEST(Infinities, APaddingMaskThatKeepsAKeyInEveryRowIsProved) {
  testing::ModelBuilder b = padded_softmax();
  AnalyzeOptions opt = testing::ranges_of({{"scores", {-10, 10}}, {"lengths", {1, 6}}});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_EQ(testing::summary(r.findings), Names{});
  const IntervalTensor& m = r.intervals.at("masked");
  EXPECT_EQ(m.full_lo()[0][0][5].item<double>(), -std::numeric_limits<double>::infinity());  // maybe padding
  EXPECT_EQ(m.full_lo()[1][3][0].item<double>(), -10);                                      // key 0: kept
  EXPECT_GT(testing::expect_sound(b, opt, "padding mask", nullptr, 40, 1), 0);
}

TEST(Infinities, APaddingMaskOverAnEmptySequenceIsASoftmaxFinding) {
  testing::ModelBuilder b = padded_softmax();
  AnalyzeOptions opt = testing::ranges_of({{"scores", {-10, 10}}, {"lengths", {0, 6}}});
  EXPECT_EQ(testing::summary(testing::analyze_built(b, opt).findings), (Names{"softmax:softmax-infinite-row"}));
  auto run = testing::run_model(b, {{"scores", at::zeros({2, 6, 6})}, {"lengths", at::tensor({int64_t{0}, int64_t{6}})}});
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(run->outputs[0][0].isnan().all().item<bool>());
  EXPECT_TRUE(run->outputs[0][1].isfinite().all().item<bool>());
}

// softmax(x + (1 - m) * -inf), a multiplicative mask as users write it: a factor that
// may be 0 makes 0 * -inf = NaN at the Mul (m = 1: the entry the mask keeps); a factor
// kept away from 0 carries the fill (a scaled -inf is -inf, not an overflow).
testing::ModelBuilder multiplied_mask() {
  testing::ModelBuilder b(13);
  b.input("x", {2, 4}).input("m", {2, 4}).output("p", {2, 4});
  b.initializer("one", at::ones({}));
  b.initializer("fill", at::full({}, -kInf));
  b.node("Sub", {"one", "m"}, {"drop"}, "drop");
  b.node("Mul", {"drop", "fill"}, {"bias"}, "bias");
  b.node("Add", {"x", "bias"}, {"masked"}, "add_mask");
  b.node("Softmax", {"masked"}, {"p"}, "softmax");
  return b;
}

TEST(Infinities, ZeroTimesAMaskFillIsAFindingAtTheMul) {
  testing::ModelBuilder b = multiplied_mask();
  AnalyzeOptions opt = testing::ranges_of({{"x", {-1, 1}}, {"m", {0, 1}}});
  EXPECT_EQ(testing::summary(testing::analyze_built(b, opt).findings), (Names{"bias:nan-from-infinities"}));
  auto run = testing::run_model(b, {{"x", at::zeros({2, 4})}, {"m", at::ones({2, 4})}});
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(run->values.at("bias").isnan().all().item<bool>());
  EXPECT_GT(testing::expect_sound(b, opt, "multiplied mask", nullptr, 40, 1), 0);
}

TEST(Infinities, APositiveFactorCarriesTheFill) {
  testing::ModelBuilder b = multiplied_mask();
  // 1 - m in [0.5, 1]: every entry is -inf, the whole row masked (NaN at the softmax).
  AnalyzeOptions opt = testing::ranges_of({{"x", {-1, 1}}, {"m", {0, 0.5}}});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_EQ(testing::summary(r.findings), (Names{"softmax:softmax-infinite-row"}));
  EXPECT_EQ(r.intervals.at("bias").max(), -std::numeric_limits<double>::infinity());
  EXPECT_GT(testing::expect_sound(b, opt, "positive factor", nullptr, 40, 1), 0);
}

}  // namespace
}  // namespace nanguard
