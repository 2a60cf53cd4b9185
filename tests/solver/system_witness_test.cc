// System witnesses: the guided search finds inputs that random sampling cannot (an
// exact float32 zero, a corner of the box), every witness is confirmed by a real run
// of the whole model, and steps that break the model elsewhere are not taken.
#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "model/onnx_loader.h"
#include "solver/confirm.h"
#include "solver/search_space.h"
#include "solver/system_witness.h"
#include "solver/trigger.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;

Graph load(ModelBuilder& b, const std::string& file) {
  auto g = load_model(b.save(file));
  EXPECT_TRUE(g.ok()) << g.status().message();
  return std::move(*g);
}

// y = 1 / (x + 0.3): the divisor is exactly 0 only at x = -0.3f, one float32 value
// in [-1, 1]: uniform draws essentially never hit it.
Graph exact_zero_divisor() {
  ModelBuilder b;
  b.input("x", {4}).initializer("c", at::full({1}, 0.3f)).initializer("one", at::ones({1})).output("y", {4});
  b.node("Add", {"x", "c"}, {"d"}, "add");
  b.node("Div", {"one", "d"}, {"y"}, "div");
  return load(b, "sys_div.onnx");
}

// The outcome of the finding at `node`, or null.
const TriggerOutcome* outcome_at(const TriggerReport& r, const std::string& node) {
  for (const auto& out : r.outcomes)
    if (out.finding.node == node) return &out;
  return nullptr;
}

TriggerOptions options(double budget, bool random_only) {
  TriggerOptions o;
  o.analyze.ranges = {{"x", {-1.0, 1.0}}};
  o.budget_seconds = budget;
  o.random_only = random_only;
  return o;
}

TEST(SystemWitness, ExactZeroDivisorByTheLinearRegionStep) {
  Graph g = exact_zero_divisor();
  auto r = trigger(g, options(20, false));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->outcomes.size(), 1u);
  const TriggerOutcome& o = r->outcomes[0];
  EXPECT_EQ(o.finding.node, "div");
  EXPECT_EQ(o.status, "triggered") << o.detail;
  EXPECT_EQ(o.system.strategy, "linear-region");
  EXPECT_EQ(o.devices, std::vector<std::string>{"cpu"});
  at::Tensor x = o.system.point.at("x").to(at::kFloat);
  EXPECT_TRUE(((x + 0.3f) == 0).any().item<bool>()) << x;
  EXPECT_TRUE((x >= -1).all().item<bool>() && (x <= 1).all().item<bool>());
}

// A masked mean sum(x * m) / sum(m) with an int64 0/1 mask of length 128: the
// divisor is 0 only on an all-padding row, which uniform mask draws never give; the
// held inputs' corners do.
TEST(SystemWitness, AllPaddingRowOfAnIntegerMaskIsTried) {
  ModelBuilder b;
  b.input("x", {2, 128}).input("m", {2, 128}, onnx::TensorProto::INT64).output("y", {2, 1});
  auto& cast = b.node("Cast", {"m"}, {"mf"}, "cast");
  testing::set_attr(cast, "to", int64_t{onnx::TensorProto::FLOAT});
  b.node("Mul", {"x", "mf"}, {"xm"}, "mul");
  auto& s1 = b.node("ReduceSum", {"xm", "axes"}, {"num"}, "sum_x");
  testing::set_attr(s1, "keepdims", int64_t{1});
  auto& s2 = b.node("ReduceSum", {"mf", "axes"}, {"count"}, "sum_m");
  testing::set_attr(s2, "keepdims", int64_t{1});
  b.initializer("axes", at::tensor({int64_t{1}}));
  b.node("Div", {"num", "count"}, {"y"}, "mean");
  Graph g = load(b, "sys_masked_mean.onnx");
  TriggerOptions o;
  o.analyze.ranges = {{"x", {-1.0, 1.0}}, {"m", {0, 1}}};
  o.budget_seconds = 10;
  auto r = trigger(g, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const TriggerOutcome* div = outcome_at(*r, "mean");
  ASSERT_NE(div, nullptr);
  EXPECT_EQ(div->status, "triggered") << div->detail;
  at::Tensor m = div->system.point.at("m").to(at::kLong);
  EXPECT_TRUE((m.sum(1) == 0).any().item<bool>()) << m;
}

// The additive mask (1 - m) * -inf with an int64 0/1 mask: a kept position gives
// 0 * -inf = NaN at the Mul, although one of its inputs is the -inf fill on purpose.
// The search counts it (a NaN from NaN-free inputs), where it used to call every such
// run blocked by the infinite input.
TEST(SystemWitness, ANaNFromAMaskFillIsTriggered) {
  ModelBuilder b;
  b.input("x", {2, 5}).input("mask", {2, 5}, onnx::TensorProto::INT64).output("p", {2, 5});
  b.initializer("one", at::ones({1})).initializer("neg_inf", at::full({1}, -INFINITY));
  testing::set_attr(b.node("Cast", {"mask"}, {"m"}, "cast"), "to", int64_t{onnx::TensorProto::FLOAT});
  b.node("Sub", {"one", "m"}, {"keep_not"}, "one_minus_m");
  b.node("Mul", {"keep_not", "neg_inf"}, {"fill"}, "fill");
  b.node("Add", {"x", "fill"}, {"s"}, "add_mask");
  b.node("Softmax", {"s"}, {"p"}, "softmax");
  Graph g = load(b, "sys_mask_fill.onnx");
  TriggerOptions o;
  o.analyze.ranges = {{"x", {-1.0, 1.0}}, {"mask", {0, 1}}};
  o.budget_seconds = 5;
  auto r = trigger(g, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const TriggerOutcome* fill = outcome_at(*r, "fill");
  ASSERT_NE(fill, nullptr);
  EXPECT_EQ(fill->status, "triggered") << fill->detail;
  EXPECT_TRUE((fill->system.point.at("mask").to(at::kLong) == 1).any().item<bool>());
}

// log(x + 1 + 1 + 1 + 1 + 1 - x - 4.5) is log(0.5): the first analysis flags it (its
// window of 4 nodes never sees both x terms), the finer one proves it, so the finding
// is refuted without a run of search; with refutation off it is searched in vain.
TEST(SystemWitness, AFindingAFinerAnalysisProvesUnreachableIsRefutedWithoutSearch) {
  ModelBuilder b = testing::cancelling_log_model();
  Graph g = load(b, "sys_refuted.onnx");
  TriggerOptions o;
  o.analyze.ranges = {{"x", {-10.0, 10.0}}};
  o.budget_seconds = 0.5;
  auto r = trigger(g, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->outcomes.size(), 1u);
  EXPECT_EQ(r->outcomes[0].status, "refuted") << r->outcomes[0].detail;
  EXPECT_EQ(r->outcomes[0].system.runs, 0);
  o.refute = false;
  r = trigger(g, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outcomes.at(0).status, "not-triggered");
  EXPECT_GT(r->outcomes.at(0).system.runs, 0);
}

TEST(SystemWitness, RandomBaselineMissesTheExactZero) {
  Graph g = exact_zero_divisor();
  auto r = trigger(g, options(0.5, true));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->outcomes.at(0).status, "not-triggered");
  EXPECT_GT(r->outcomes.at(0).system.runs, 10);
}

// exp(x . w) with w = 12 * (+-1): overflow needs x . w >= 88.72, near one corner of
// [-1, 1]^8 (at most 96).
TEST(SystemWitness, ExpOverflowAtABoxCorner) {
  ModelBuilder b;
  b.input("x", {1, 8}).output("y", {1, 1});
  b.initializer("w", at::tensor({12.f, -12.f, 12.f, -12.f, 12.f, -12.f, 12.f, -12.f}).reshape({8, 1}));
  b.node("MatMul", {"x", "w"}, {"s"}, "dot");
  b.node("Exp", {"s"}, {"y"}, "exp");
  Graph g = load(b, "sys_exp.onnx");
  TriggerOptions o = options(20, false);
  o.node = "exp";
  auto r = trigger(g, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->outcomes.size(), 1u);
  EXPECT_EQ(r->outcomes[0].status, "triggered") << r->outcomes[0].detail;
  at::Tensor s = at::matmul(r->outcomes[0].system.point.at("x").to(at::kFloat), at::tensor({12.f, -12.f, 12.f, -12.f, 12.f, -12.f, 12.f, -12.f}));
  EXPECT_GE(s.item<float>(), 88.72283935546875f);
}

// sqrt(exp(x) - 1) at x = 0: finite value, infinite gradient; a backward pass from
// the output confirms it, and x = 1 does not.
TEST(Confirm, GradientFindingNeedsANaNGradientAtTheNode) {
  ModelBuilder b;
  b.input("x", {2}).initializer("one", at::ones({1})).output("y", {2});
  b.node("Exp", {"x"}, {"e"}, "exp");
  b.node("Sub", {"e", "one"}, {"d"}, "sub");
  b.node("Sqrt", {"d"}, {"y"}, "sqrt");
  Graph g = load(b, "sys_sqrt.onnx");
  Finding f;
  f.node = "sqrt";
  f.op_type = "Sqrt";
  f.kind = HazardKind::kGradient;
  f.hazard = "sqrt-zero-gradient";
  auto hit = confirm_witness(g, f, 0, {{"x", at::tensor({0.f, 0.5f})}}, at::kCPU);
  ASSERT_TRUE(hit.ok()) << hit.status().message();
  EXPECT_TRUE(hit->reproduced) << hit->detail;
  auto miss = confirm_witness(g, f, 0, {{"x", at::tensor({1.f, 0.5f})}}, at::kCPU);
  ASSERT_TRUE(miss.ok());
  EXPECT_FALSE(miss->reproduced) << miss->detail;
}

// log(log(x)): at x = -1 the inner Log gives NaN, which the outer only carries; at
// x = 0 the inner gives -inf, and the outer's log(-inf) = NaN is born there (a NaN
// from NaN-free inputs counts, as 0 * a -inf mask fill does); 0 < x <= 1 is the
// outer's own witness from finite inputs.
TEST(Confirm, ForwardFindingMustStartAtTheNode) {
  ModelBuilder b;
  b.input("x", {1}).output("y", {1});
  b.node("Log", {"x"}, {"l"}, "inner");
  b.node("Log", {"l"}, {"y"}, "outer");
  Graph g = load(b, "sys_loglog.onnx");
  Finding f;
  f.node = "outer";
  f.op_type = "Log";
  f.hazard = "log-nonpositive";
  auto blocked = confirm_witness(g, f, 0, {{"x", at::full({1}, -1.f)}}, at::kCPU);
  ASSERT_TRUE(blocked.ok());
  EXPECT_FALSE(blocked->reproduced) << blocked->detail;
  auto from_inf = confirm_witness(g, f, 0, {{"x", at::zeros({1})}}, at::kCPU);
  ASSERT_TRUE(from_inf.ok());
  EXPECT_TRUE(from_inf->reproduced) << from_inf->detail;
  auto here = confirm_witness(g, f, 0, {{"x", at::full({1}, 0.5f)}}, at::kCPU);
  ASSERT_TRUE(here.ok());
  EXPECT_TRUE(here->reproduced) << here->detail;

  TriggerOptions o;
  o.analyze.ranges = {{"x", {0.0, 2.0}}};
  o.budget_seconds = 20;
  o.node = "outer";
  auto r = trigger(g, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->outcomes.size(), 1u);
  EXPECT_EQ(r->outcomes[0].status, "triggered") << r->outcomes[0].detail;
  float x = r->outcomes[0].system.point.at("x").to(at::kFloat).item<float>();
  EXPECT_GE(x, 0.f);  // 0 (log(-inf) = NaN born at the outer Log) or its own 0 < x <= 1
  EXPECT_LE(x, 1.f);
}

// Free weights are searched too, inside their boxes.
TEST(SearchSpace, FreeWeightsAreVariablesInsideTheirBoxes) {
  ModelBuilder b;
  b.input("x", {1, 2}).initializer("w", at::tensor({0.5f, -0.25f}).reshape({2, 1})).output("y", {1, 1});
  b.node("MatMul", {"x", "w"}, {"y"}, "mm");
  Graph g = load(b, "sys_space.onnx");
  AnalyzeOptions a;
  a.weights = WeightMode::kFree;
  a.weight_range = Range{-1.0 / 3.0, 2.0};
  auto space = make_search_space(g, a);
  ASSERT_TRUE(space.ok()) << space.status().message();
  ASSERT_EQ(space->variables.size(), 2u);
  EXPECT_EQ(space->variables[1].name, "w");
  EXPECT_TRUE(space->variables[1].is_weight);
  // float32 bounds rounded inwards: never outside the analysed range.
  EXPECT_GE(space->variables[1].lo.min().item<double>(), -1.0 / 3.0);
  EXPECT_EQ(static_cast<double>(static_cast<float>(space->variables[1].lo.min().item<double>())), space->variables[1].lo.min().item<double>());
  at::Generator gen = at::detail::createCPUGenerator(1);
  TensorMap p = space->sample_stored(gen);
  EXPECT_TRUE(at::allclose(p.at("w").to(at::kFloat), at::tensor({0.5f, -0.25f}).reshape({2, 1})));
}

}  // namespace
}  // namespace nanguard

namespace nanguard {
namespace {

// loss = -sum(y * log(softmax(x W))): the stored W keeps the run finite for x, y in
// [0, 1], but one SGD step of learning rate 1000 on a suitable example spreads the
// logits past 104 and the next forward's Log returns -inf. The finding comes from
// the analysis with W free in [-1000, 1000].
TEST(TrainingWitness, OneSgdStepMakesTheNextRunFail) {
  ModelBuilder b;
  b.input("x", {1, 4}).input("y", {1, 3}).output("loss", {});
  b.initializer("W", at::full({4, 3}, 0.01f));
  b.node("MatMul", {"x", "W"}, {"l"}, "logits");
  auto& sm = b.node("Softmax", {"l"}, {"p"}, "softmax");
  testing::set_attr(sm, "axis", int64_t{1});
  b.node("Log", {"p"}, {"lp"}, "log");
  b.node("Mul", {"y", "lp"}, {"ylp"}, "mul");
  testing::set_attr(b.node("ReduceSum", {"ylp"}, {"s"}, "sum"), "keepdims", int64_t{0});
  b.node("Neg", {"s"}, {"loss"}, "neg");
  Graph g = load(b, "train_step.onnx");
  TriggerOptions o;
  o.analyze.ranges = {{"x", {0.0, 1.0}}, {"y", {0.0, 1.0}}};
  o.analyze.weight_range = Range{-1000.0, 1000.0};  // the weights training may reach
  o.budget_seconds = 20;
  o.node = "log";
  o.training_step = 1000.0;
  auto r = trigger(g, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->outcomes.size(), 1u);
  const TriggerOutcome& out = r->outcomes[0];
  ASSERT_EQ(out.status, "triggered") << out.detail;
  EXPECT_EQ(out.system.strategy.rfind("training", 0), 0u) << out.system.strategy;
  // The stored model on the example is finite; the stepped weights make it fail.
  TensorMap example{{"x", out.system.point.at("x").to(at::kFloat)}, {"y", out.system.point.at("y").to(at::kFloat)}};
  Finding f = out.finding;
  auto before = confirm_witness(g, f, 0, example, at::kCPU);
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(before->reproduced) << before->detail;
  TensorMap after = example;
  after["W"] = out.system.point.at("W").to(at::kFloat);
  EXPECT_FALSE(at::allclose(after["W"], at::full({4, 3}, 0.01f)));
  auto now = confirm_witness(g, f, 0, after, at::kCPU);
  ASSERT_TRUE(now.ok());
  EXPECT_TRUE(now->reproduced) << now->detail;
}

}  // namespace
}  // namespace nanguard
