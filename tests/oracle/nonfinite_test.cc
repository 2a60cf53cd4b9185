// Deliberate infinities are values, not failures: a causal -inf mask carried through
// Add into a softmax whose rows keep their diagonal is a run that does not fail; a NaN
// born from a mask fill (0 * -inf) or a fully masked row is a failure at its node, and
// trigger's confirmation accepts it there.
#include <limits>
#include <optional>

#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "oracle/nonfinite.h"
#include "solver/confirm.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;

constexpr float kInf = std::numeric_limits<float>::infinity();

Graph load(ModelBuilder& b) {
  auto g = load_model_proto(b.proto(), "mask.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  return std::move(g.value());
}

// softmax(x + mask): mask[i][j] = -inf above the diagonal (`full` masks every entry
// of the last row instead).
Graph causal(bool full_last_row) {
  at::Tensor mask = at::triu(at::full({3, 3}, -kInf), 1);
  if (full_last_row) mask[2].fill_(-kInf);
  ModelBuilder b;
  b.input("x", {1, 3, 3}).initializer("mask", mask).output("p", {1, 3, 3});
  b.node("Add", {"x", "mask"}, {"s"}, "add_mask");
  b.node("Softmax", {"s"}, {"p"}, "softmax");
  return load(b);
}

OracleRun run_causal(bool full_last_row) {
  Graph g = causal(full_last_row);
  auto ex = Executor::create(g);
  EXPECT_TRUE(ex.ok());
  auto run = run_with_oracle(*ex, {{"x", at::randn({1, 3, 3})}});
  EXPECT_TRUE(run.ok());
  return run.ok() ? std::move(*run) : OracleRun{};
}

TEST(NonFinite, ACausalMaskCarriedIntoASoftmaxIsNotAFailure) {
  std::optional<OracleRun> run = run_causal(false);
  ASSERT_EQ(run->nonfinite.size(), 1u);  // the masked scores hold -inf, carried from the mask
  EXPECT_EQ(run->nonfinite[0].node, "add_mask");
  EXPECT_FALSE(run->nonfinite[0].born);
  EXPECT_EQ(run->first(), nullptr);
  EXPECT_TRUE(at::isfinite(run->exec.values.at("p")).all().item<bool>());
}

TEST(NonFinite, AFullyMaskedRowIsANaNBornAtTheSoftmax) {
  std::optional<OracleRun> run = run_causal(true);
  ASSERT_NE(run->first(), nullptr);
  EXPECT_EQ(run->first()->node, "softmax");
  EXPECT_EQ(run->first()->nan_count, 3);
}

// The additive mask (1 - m) * -inf: a kept position (m = 1) is 0 * -inf = NaN, born at
// the Mul although one of its inputs is the -inf constant on purpose.
TEST(NonFinite, ZeroTimesAMaskFillIsANaNBornAtTheMulAndConfirmed) {
  ModelBuilder b;
  b.input("x", {1, 3}).input("m", {1, 3}).initializer("one", at::ones({1})).initializer("neg_inf", at::full({1}, -kInf));
  b.output("p", {1, 3});
  b.node("Sub", {"one", "m"}, {"keep_not"}, "one_minus_m");
  b.node("Mul", {"keep_not", "neg_inf"}, {"fill"}, "fill");
  b.node("Add", {"x", "fill"}, {"s"}, "add_mask");
  b.node("Softmax", {"s"}, {"p"}, "softmax");
  Graph g = load(b);
  auto ex = Executor::create(g);
  ASSERT_TRUE(ex.ok());
  TensorMap feeds{{"x", at::randn({1, 3})}, {"m", at::tensor({1.f, 0.f, 0.f}).reshape({1, 3})}};
  auto run = run_with_oracle(*ex, feeds);
  ASSERT_TRUE(run.ok());
  ASSERT_NE(run->first(), nullptr);
  EXPECT_EQ(run->first()->node, "fill");
  EXPECT_EQ(run->first()->nan_count, 1);

  Finding f;
  f.node = "fill";
  f.op_type = "Mul";
  f.kind = HazardKind::kForward;
  auto c = confirm_witness(g, f, 0, feeds, at::kCPU);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->reproduced) << c->detail;
  // With nothing kept the fill is -inf everywhere: carried, not born, at the Mul.
  feeds["m"] = at::zeros({1, 3});
  c = confirm_witness(g, f, 0, feeds, at::kCPU);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->reproduced) << c->detail;
}

}  // namespace
}  // namespace nanguard
