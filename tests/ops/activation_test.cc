// Activations: the NaN/INF edges the spec decides (stable Softplus, ThresholdedRelu
// and Shrink on NaN), Clip's attribute (opset < 11) and input forms, integer Clip,
// and gradients through the lowerings.
#include <cmath>
#include <functional>
#include <limits>

#include <gtest/gtest.h>

#include "ops/tensor_proto.h"
#include "tests/ops/op_test_util.h"
#include "ops/op_registry.h"

namespace nanguard {
namespace {

using NodeAttrs = testing::AttrFn;
constexpr float kInf = std::numeric_limits<float>::infinity();

// One node `op` on 1-D input x (plus optional initializers), output y like x.
at::Tensor run_act(const std::string& op, const at::Tensor& x, int64_t opset = 13,
                   const NodeAttrs& attrs = {}, std::vector<std::pair<std::string, at::Tensor>> inits = {}) {
  testing::ModelBuilder b(opset);
  int32_t type = onnx_elem_type_for(x.scalar_type());
  b.input("x", {x.size(0)}, type).output("y", {x.size(0)}, type);
  std::vector<std::string> ins{"x"};
  for (auto& [name, t] : inits) {
    ins.push_back(name);
    if (!name.empty()) b.initializer(name, t);
  }
  auto& n = b.node(op, ins, {"y"}, "n");
  if (attrs) attrs(n);
  return testing::run_output(b, {{"x", x}});
}

TEST(Activation, SoftplusIsTheStableFormAndNeverOverflows) {
  at::Tensor y = run_act("Softplus", at::tensor({0.f, 88.f, 89.f, -200.f}));
  EXPECT_NEAR(y[0].item<float>(), std::log(2.f), 1e-6);
  EXPECT_TRUE(std::isfinite(y[1].item<float>()));
  EXPECT_EQ(y[2].item<float>(), 89.f);  // where the naive log(exp(x) + 1) gives inf
  EXPECT_EQ(y[3].item<float>(), 0.f);
  // Its gradient is sigmoid(x): 1 at x = 89, not inf / inf.
  at::Tensor x = at::tensor({89.f, 1.f}).requires_grad_();
  testing::ModelBuilder b(13);
  b.input("x", {2}).output("y", {2});
  b.node("Softplus", {"x"}, {"y"}, "n");
  auto r = testing::run_model(b, {{"x", x}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  r->outputs[0].sum().backward();
  EXPECT_FLOAT_EQ(x.grad()[0].item<float>(), 1.f);
  EXPECT_NEAR(x.grad()[1].item<float>(), 1.f / (1.f + std::exp(-1.f)), 1e-6);
}

TEST(Activation, NaNHandlingFollowsTheReference) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor x = at::tensor({nan, 2.f, 0.5f});
  at::Tensor t = run_act("ThresholdedRelu", x, 13);  // np.clip keeps NaN
  EXPECT_TRUE(std::isnan(t[0].item<float>()));
  EXPECT_EQ(t[1].item<float>(), 2.f);
  EXPECT_EQ(t[2].item<float>(), 0.f);
  at::Tensor s = run_act("Shrink", x, 13);  // np.where on false comparisons gives 0
  EXPECT_EQ(s[0].item<float>(), 0.f);
  EXPECT_EQ(s[1].item<float>(), 2.f);
  EXPECT_TRUE(std::isnan(run_act("Relu", x)[0].item<float>()));
  EXPECT_TRUE(std::isnan(run_act("HardSigmoid", x)[0].item<float>()));
  EXPECT_TRUE(std::isnan(run_act("Clip", x, 13, {}, {{"lo", at::tensor(0.f)}})[0].item<float>()));
}

TEST(Activation, ClipFormsAcrossOpsets) {
  at::Tensor x = at::tensor({-5.f, 0.5f, 5.f});
  at::Tensor a = run_act("Clip", x, 9, [](onnx::NodeProto& n) {
    testing::set_attr(n, "min", -1.f);
    testing::set_attr(n, "max", 1.f);
  });
  EXPECT_TRUE(at::equal(a, at::tensor({-1.f, 0.5f, 1.f})));
  at::Tensor d = run_act("Clip", x, 9);  // no attributes: no bounds
  EXPECT_TRUE(at::equal(d, x));
  at::Tensor only_max = run_act("Clip", x, 13, {}, {{"", at::Tensor()}, {"hi", at::tensor(1.f)}});
  EXPECT_TRUE(at::equal(only_max, at::tensor({-5.f, 0.5f, 1.f})));
  at::Tensor crossed = run_act("Clip", x, 13, {}, {{"lo", at::tensor(2.f)}, {"hi", at::tensor(1.f)}});
  EXPECT_TRUE(at::equal(crossed, at::full({3}, 1.f)));  // min > max gives max, as np.clip
  at::Tensor xi = at::tensor({-7, 3, 9}, at::kInt);
  at::Tensor ci = run_act("Clip", xi, 13, {}, {{"lo", at::tensor(-2, at::kInt)}, {"hi", at::tensor(4, at::kInt)}});
  EXPECT_EQ(ci.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(ci, at::tensor({-2, 3, 4}, at::kInt)));
}

TEST(Activation, AttributeDefaultsAndFormulas) {
  at::Tensor x = at::tensor({-3.f, -1.f, 0.f, 2.f});
  at::Tensor selu = run_act("Selu", x);
  EXPECT_NEAR(selu[0].item<float>(), 1.0507010f * 1.6732632f * (std::exp(-3.f) - 1), 1e-6);
  EXPECT_NEAR(selu[3].item<float>(), 2 * 1.0507010f, 1e-6);
  at::Tensor lrelu = run_act("LeakyRelu", x);
  EXPECT_NEAR(lrelu[0].item<float>(), -0.03f, 1e-7);
  at::Tensor hs = run_act("HardSwish", x, 14);
  EXPECT_EQ(hs[0].item<float>(), 0.f);
  EXPECT_NEAR(hs[1].item<float>(), -1.f * (-1.f / 6 + 0.5f), 1e-7);
  EXPECT_NEAR(hs[3].item<float>(), 2.f * (2.f / 6 + 0.5f), 1e-6);
  at::Tensor celu = run_act("Celu", x, 13, [](onnx::NodeProto& n) { testing::set_attr(n, "alpha", 2.f); });
  EXPECT_NEAR(celu[0].item<float>(), 2.f * (std::exp(-1.5f) - 1), 1e-6);
  at::Tensor softsign = run_act("Softsign", at::tensor({-kInf, 1.f}));
  EXPECT_TRUE(std::isnan(softsign[0].item<float>()));  // -inf / inf, as the formula says
  EXPECT_EQ(softsign[1].item<float>(), 0.5f);
}

TEST(Activation, SigmoidSaturatesInFloat32AndGradientFlows) {
  at::Tensor x = at::tensor({17.f, -104.f, 0.f}).requires_grad_();
  testing::ModelBuilder b(13);
  b.input("x", {3}).output("y", {3});
  b.node("Elu", {"x"}, {"e"}, "e");
  b.node("Sigmoid", {"e"}, {"y"}, "s");
  auto r = testing::run_model(b, {{"x", x}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  at::Tensor y = r->outputs[0];
  EXPECT_EQ(y[0].item<float>(), 1.f);  // sigmoid(17) rounds to 1 in float32
  y.sum().backward();
  EXPECT_NEAR(x.grad()[2].item<float>(), 0.25f, 1e-6);
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
}

// ---- abstract facets ------------------------------------------------------------

const std::vector<std::pair<double, double>> kActBoxes{
    {-3, 3},     {0, 1},      {-100, 100}, {1e-30, 1e-20}, {-1, -1e-3},  {88, 89},     {-89, -87},
    {14, 20},    {-110, -80}, {-1e20, 1e20}, {-3.1, -2.9}, {-1.3, -1.1}, {16.5, 17.5}, {-20, -15}, {19.5, 21}, {-92, -88.5}};

struct ActCase {
  const char* op;
  NodeAttrs attrs;
  std::string label;
};

TEST(ActivationAbstract, SoundOnBoxesWithAttributes) {
  auto f = [](const char* name, float v) { return [=](onnx::NodeProto& n) { testing::set_attr(n, name, v); }; };
  std::vector<ActCase> cases{
      {"Relu", {}, ""}, {"LeakyRelu", {}, ""}, {"LeakyRelu", f("alpha", -0.5f), "alpha=-0.5"},
      {"Elu", {}, ""}, {"Elu", f("alpha", -0.7f), "alpha=-0.7"}, {"Selu", {}, ""},
      {"Celu", {}, ""}, {"Celu", f("alpha", 0.5f), "alpha=0.5"}, {"Celu", f("alpha", -2.f), "alpha=-2"},
{"Sigmoid", {}, ""}, {"HardSigmoid", {}, ""},
      {"HardSigmoid", [](onnx::NodeProto& n) { testing::set_attr(n, "alpha", -0.3f); testing::set_attr(n, "beta", 0.2f); }, "neg"},
      {"HardSwish", {}, ""}, {"Softplus", {}, ""}, {"Softsign", {}, ""}, {"ThresholdedRelu", {}, ""},
      {"ThresholdedRelu", f("alpha", -0.5f), "alpha=-0.5"}, {"Shrink", {}, ""},
      {"Shrink", [](onnx::NodeProto& n) { testing::set_attr(n, "lambd", 1.f); testing::set_attr(n, "bias", 0.5f); }, "l1b.5"}};
  testing::SoundTally tally;
  for (const auto& c : cases) {
    int64_t checked = 0;
    for (auto [lo, hi] : kActBoxes) {
      testing::ModelBuilder b(17);
      b.input("x", {16}).output("y", {16});
      auto& n = b.node(c.op, {"x"}, {"y"}, "n");
      if (c.attrs) c.attrs(n);
      checked += testing::expect_sound(b, testing::ranges_of({{"x", {lo, hi}}}),
                                       std::string(c.op) + c.label + " on [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", &tally);
    }
    EXPECT_GT(checked, 0) << c.op << c.label;
  }
  EXPECT_EQ(tally.violations, 0);
  tally.print("activation");
}

// Clip with its bounds as initializers: fixed, and free within [-2, 2] (min > max
// included); opset 10's attribute form; integer Clip.
TEST(ActivationAbstract, ClipSoundWithFixedAndFreeBounds) {
  testing::SoundTally tally;
  for (auto [lo, hi] : kActBoxes) {
    for (bool free : {false, true}) {
      testing::ModelBuilder b(13);
      b.input("x", {4, 4}).output("y", {4, 4});
      b.initializer("mn", at::tensor(-1.f).reshape({})).initializer("mx", at::tensor(0.5f).reshape({}));
      b.node("Clip", {"x", "mn", "mx"}, {"y"}, "n");
      RangeMap r{{"x", {lo, hi}}};
      testing::expect_sound(b, free ? testing::free_weights(r, -2, 2) : testing::ranges_of(r), "Clip", &tally);
    }
    testing::ModelBuilder b6(10);
    b6.input("x", {8}).output("y", {8});
    auto& n = b6.node("Clip", {"x"}, {"y"}, "n");
    testing::set_attr(n, "min", -0.25f);
    testing::expect_sound(b6, testing::ranges_of({{"x", {lo, hi}}}), "Clip-10", &tally);
  }
  testing::ModelBuilder bi(13);
  bi.input("x", {8}, onnx::TensorProto::INT64).output("y", {8}, onnx::TensorProto::INT64);
  bi.initializer("mn", at::tensor(int64_t{-3}).reshape({}));
  bi.node("Clip", {"x", "mn"}, {"y"}, "n");
  testing::expect_sound(bi, testing::ranges_of({{"x", {-10, 10}}}), "Clip int", &tally);
  EXPECT_EQ(tally.violations, 0);
  EXPECT_GT(tally.checked, 0);
}

// Mish is opset 18, newer than this build's ONNX checker: its transfer is checked
// directly against the lowering on float32 samples (corners, edges, uniform draws).
TEST(ActivationAbstract, MishTransferContainsTheKernel) {
  const OpDef* def = OpRegistry::instance().find("Mish");
  ASSERT_TRUE(def && def->interval);
  Node node{"n", "Mish", "", {"x"}, {"y"}, {}};
  Graph graph;
  int64_t checked = 0;
  for (auto [lo, hi] : kActBoxes) {
    AbstractContext a{node, graph, 18, {IntervalTensor::uniform({256}, at::kFloat, lo, hi)}};
    IntervalTensor r = def->interval(a)[0];
    at::Tensor x = at::empty({256}, at::kDouble).uniform_(0, 1) * (hi - lo) + lo;
    x[0] = lo;
    x[1] = hi;
    at::Tensor xf = x.to(at::kFloat).clamp(static_cast<float>(lo), static_cast<float>(hi));
    OpContext c{node, 18, {xf}};
    at::Tensor y = def->lower(c)[0].to(at::kDouble);
    at::Tensor out = (y < r.full_lo()).logical_or(y > r.full_hi()).logical_or(y.isfinite().logical_not());
    EXPECT_FALSE(out.any().item<bool>()) << "Mish on [" << lo << ", " << hi << "]: " << r.str();
    checked += y.numel();
  }
  EXPECT_GT(checked, 0);
  EXPECT_TRUE(def->hazards == nullptr);  // bounded for every finite input
}

std::vector<std::string> act_findings(const std::string& op, double lo, double hi, const NodeAttrs& attrs = {}) {
  testing::ModelBuilder b(17);
  b.input("x", {4}).output("y", {4});
  auto& n = b.node(op, {"x"}, {"y"}, "n");
  if (attrs) attrs(n);
  return testing::summary(testing::findings_of(b, testing::ranges_of({{"x", {lo, hi}}})));
}

using Names = std::vector<std::string>;

TEST(ActivationAbstract, SoftplusIsProvedFiniteAndCeluOverflowsByAlpha) {
  EXPECT_EQ(act_findings("Softplus", -1e30, 1e30), Names{});
  EXPECT_EQ(act_findings("Celu", -1e30, 1e30), Names{});
  auto neg = [](onnx::NodeProto& n) { testing::set_attr(n, "alpha", -1.f); };
  EXPECT_EQ(act_findings("Celu", -80, 5, neg), Names{});
  EXPECT_EQ(act_findings("Celu", -90, 5, neg), Names{"n:exp-overflow"});
  auto zero = [](onnx::NodeProto& n) { testing::set_attr(n, "alpha", 0.f); };
  EXPECT_EQ(act_findings("Celu", 1, 5, zero), Names{"n:celu-zero-alpha"});  // ATen raises
}

// 1 - sigmoid(x) stays positive while float32 sigmoid cannot round to 1, so log of it
// is proved safe on [-10, 10]; widening the range to 20 (sigmoid(17) == 1.0f) breaks
// the proof at the Log.
TEST(ActivationAbstract, OneMinusSigmoidProofFailsWhenTheRangeWidens) {
  auto build = [](testing::ModelBuilder& b) {
    b.input("x", {8}).output("y", {8});
    b.initializer("one", at::tensor(1.f).reshape({}));
    b.node("Sigmoid", {"x"}, {"s"}, "sig");
    b.node("Sub", {"one", "s"}, {"d"}, "sub");
    b.node("Log", {"d"}, {"y"}, "log");
  };
  testing::ModelBuilder safe, wide;
  build(safe);
  build(wide);
  EXPECT_EQ(testing::summary(testing::findings_of(safe, testing::ranges_of({{"x", {-10, 10}}}))), Names{});
  EXPECT_EQ(testing::summary(testing::findings_of(wide, testing::ranges_of({{"x", {-10, 20}}}))), Names{"log:log-nonpositive"});
  testing::expect_sound(wide, testing::ranges_of({{"x", {-10, 20}}}), "1 - sigmoid");
}

// Past x = 20 float32 sigmoid is exactly 1, and below -89 exactly 0, so log(1 - s)
// and log(s) are surely -inf there: the bounds say so (no ulp of slack), and the
// real runs agree.
TEST(ActivationAbstract, SigmoidIsExactlyOneOrZeroFarOut) {
  auto build = [](testing::ModelBuilder& b) {
    b.input("x", {8}).output("y", {8}).output("z", {8});
    b.initializer("one", at::tensor(1.f).reshape({}));
    b.node("Sigmoid", {"x"}, {"s"}, "sig");
    b.node("Sub", {"one", "s"}, {"d"}, "sub");
    b.node("Log", {"d"}, {"y"}, "log1m");
    b.node("Log", {"s"}, {"z"}, "log");
  };
  testing::ModelBuilder high, low;
  build(high);
  build(low);
  AnalysisResult h = testing::analyze_built(high, testing::ranges_of({{"x", {20, 1e30}}}));
  EXPECT_EQ(h.intervals.at("s").lo.min().item<double>(), 1.0);
  EXPECT_EQ(h.intervals.at("d").hi.max().item<double>(), 0.0);
  AnalysisResult l = testing::analyze_built(low, testing::ranges_of({{"x", {-1e30, -89}}}));
  EXPECT_EQ(l.intervals.at("s").hi.max().item<double>(), 0.0);
  // Just inside the ends the bounds keep their slack: sigmoid(19.9) may not be 1.
  AnalysisResult in = testing::analyze_built(high, testing::ranges_of({{"x", {19.9, 30}}}));
  EXPECT_LT(in.intervals.at("s").lo.min().item<double>(), 1.0);
  at::Tensor x = at::tensor({20.f, 25.f, 88.f, 1e30f, -89.f, -100.f, -1e30f, -3e38f});
  at::Tensor s = at::sigmoid(x);
  EXPECT_TRUE(at::equal(s.slice(0, 0, 4), at::ones({4})));
  EXPECT_TRUE(at::equal(s.slice(0, 4, 8), at::zeros({4})));
  testing::expect_sound(high, testing::ranges_of({{"x", {19, 40}}}), "sigmoid near 1");
  testing::expect_sound(low, testing::ranges_of({{"x", {-100, -85}}}), "sigmoid near 0");
}

}  // namespace
}  // namespace nanguard
