// Unit witnesses: measured float32 thresholds, targets per hazard, Z3 and threshold
// witnesses inside the analyzer's ranges, confirmed by running the op alone.
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>

#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "model/onnx_loader.h"
#include "ops/float_thresholds.h"
#include "solver/unit_witness.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;

constexpr float kMinSub = std::numeric_limits<float>::denorm_min();
constexpr float kInfF = std::numeric_limits<float>::infinity();

// A one-node model over float inputs of shape {4}, analysed with the given ranges.
struct Analysed {
  Graph graph;
  AnalysisResult analysis;
  const Node& node() const { return graph.nodes.at(0); }
  const Finding* finding(const std::string& hazard) const {
    for (const auto& f : analysis.findings)
      if (f.hazard == hazard) return &f;
    return nullptr;
  }
};

// `constant`, when defined, is a last input "c" (an initializer).
std::unique_ptr<Analysed> analyse(const std::string& op, const RangeMap& ranges, const at::Tensor& constant = {},
                                  std::vector<int64_t> out_dims = {4},
                                  int32_t elem_type = onnx::TensorProto::FLOAT) {
  ModelBuilder b;
  std::vector<std::string> inputs;
  for (const auto& [name, r] : ranges) {
    b.input(name, {4}, elem_type);
    inputs.push_back(name);
  }
  if (constant.defined()) {
    b.initializer("c", constant);
    inputs.push_back("c");
  }
  b.output("out", out_dims, elem_type);
  b.node(op, inputs, {"out"}, "n");
  auto g = load_model_proto(b.proto(), "unit_witness_test.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  auto out = std::make_unique<Analysed>();
  out->graph = std::move(*g);
  AnalyzeOptions opt;
  opt.ranges = ranges;
  auto r = analyze(out->graph, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  out->analysis = std::move(*r);
  return out;
}

// True when every element of t lies in [lo, hi].
bool within(const at::Tensor& t, double lo, double hi) {
  at::Tensor d = t.to(at::kDouble);
  return (d >= lo).logical_and(d <= hi).all().item<bool>();
}

TEST(FloatThresholds, OrderedIndexRoundTrips) {
  EXPECT_EQ(float32_index(0.f), 0);
  EXPECT_EQ(float32_index(-0.f), 0);
  EXPECT_EQ(float32_index(kMinSub), 1);
  EXPECT_EQ(float32_index(-kMinSub), -1);
  EXPECT_EQ(float32_index(kInfF), kFloat32InfIndex);
  EXPECT_EQ(float32_at(float32_index(88.72283935546875f) - 1), std::nextafter(88.72283935546875f, 0.f));
  EXPECT_EQ(float32_at(-1), -kMinSub);
}

TEST(FloatThresholds, CpuExpOverflowIsTheAnalyzersConstant) {
  auto t = float_threshold(Threshold::kExpOverflow, at::kCPU);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(*t, 88.72283935546875f);
  EXPECT_EQ(static_cast<double>(*t), kExpOverflowFloat32);
  auto exp = [](const at::Tensor& x) { return x.exp(); };
  EXPECT_TRUE(fails_everywhere(exp, *t, at::kCPU));
  EXPECT_FALSE(fails_everywhere(exp, std::nextafter(*t, 0.f), at::kCPU));
}

TEST(FloatThresholds, CpuDomainEdges) {
  auto at_cpu = [](Threshold t) {
    auto r = float_threshold(t, at::kCPU);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : std::nanf("");
  };
  EXPECT_EQ(at_cpu(Threshold::kLogNonFinite), 0.f);
  EXPECT_EQ(at_cpu(Threshold::kSqrtNaN), -kMinSub);
  EXPECT_EQ(at_cpu(Threshold::kSqrtGradient), 0.f);
  EXPECT_EQ(at_cpu(Threshold::kAsinDomain), std::nextafter(1.f, 2.f));
  EXPECT_EQ(at_cpu(Threshold::kAcosDomain), std::nextafter(1.f, 2.f));
  EXPECT_EQ(at_cpu(Threshold::kAcoshDomain), std::nextafter(1.f, 0.f));
  EXPECT_EQ(at_cpu(Threshold::kAtanhDomain), 1.f);
  EXPECT_EQ(at_cpu(Threshold::kAsinGradient), 1.f);
  EXPECT_EQ(at_cpu(Threshold::kAcoshGradient), 1.f);
  EXPECT_EQ(at_cpu(Threshold::kHalfOverflow), 65520.f);
  // 1 / m rounds to INF exactly from the measured m down (host IEEE division agrees).
  volatile float m = at_cpu(Threshold::kReciprocalOverflow);
  EXPECT_TRUE(std::isinf(1.f / m));
  volatile float above = std::nextafter(m, 1.f);
  EXPECT_TRUE(std::isfinite(1.f / above));
  // Grad of log is 1 / x: infinite exactly where 1 / x is.
  EXPECT_EQ(at_cpu(Threshold::kLogGradient), m);
}

TEST(FloatThresholds, EveryThresholdMeasuresOnCpu) {
  for (int i = 0; i <= static_cast<int>(Threshold::kBFloat16Overflow); ++i) {
    auto t = float_threshold(static_cast<Threshold>(i), at::kCPU);
    ASSERT_TRUE(t.ok()) << t.status().message();
    std::printf("[threshold] %s on cpu: %.9g\n", to_string(static_cast<Threshold>(i)), static_cast<double>(*t));
  }
}

TEST(UnitWitness, MeetsInFloat32) {
  UnitTarget exp{0, Relation::kAtLeast, 88.72283935546875, "x >= 88.7228394"};
  EXPECT_TRUE(meets(exp, 88.72283935546875));
  EXPECT_FALSE(meets(exp, std::nextafter(88.72283935546875f, 0.f)));
  UnitTarget log{0, Relation::kAtMost, 0, "x <= 0"};
  EXPECT_TRUE(meets(log, 0.0));
  EXPECT_TRUE(meets(log, -0.0));
  EXPECT_FALSE(meets(log, kMinSub));
  UnitTarget zero{1, Relation::kEqual, 0, "y == 0"};
  EXPECT_TRUE(meets(zero, -0.0));
  EXPECT_FALSE(meets(zero, -kMinSub));
  UnitTarget out{-1, Relation::kMagnitudeAtLeast, std::numeric_limits<double>::infinity(), "y is not finite"};
  EXPECT_TRUE(meets(out, -std::numeric_limits<double>::infinity()));
  EXPECT_TRUE(meets(out, std::nan("")));
  EXPECT_FALSE(meets(out, std::numeric_limits<float>::max()));
  EXPECT_TRUE(meets(out, 3.5e38));  // past FLT_MAX + half an ulp: INF in float32
  UnitTarget asin{0, Relation::kMagnitudeAtLeast, std::nextafter(1.f, 2.f), "|x| >= 1.00000012"};
  EXPECT_TRUE(meets(asin, -std::nextafter(1.f, 2.f)));
  EXPECT_FALSE(meets(asin, 1.0));
  EXPECT_FALSE(meets(asin, std::nan("")));
}

TEST(UnitWitness, TargetsPerHazard) {
  auto a = analyse("Div", {{"x", {1, 2}}, {"y", {-1, 1}}});
  const Finding* f = a->finding("div-by-zero");
  ASSERT_NE(f, nullptr);
  auto t = unit_target(*f, a->node(), at::kCPU);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->operand, 1);
  EXPECT_EQ(t->relation, Relation::kEqual);
  EXPECT_EQ(t->value, 0.0);
  Finding exp = *f;
  exp.hazard = "exp-overflow";
  Node exp_node = a->node();
  exp_node.op_type = "Exp";
  auto te = unit_target(exp, exp_node, at::kCPU);
  ASSERT_TRUE(te.ok());
  EXPECT_EQ(te->relation, Relation::kAtLeast);
  EXPECT_EQ(te->value, kExpOverflowFloat32);
  Finding gather = *f;
  gather.hazard = "gather-index-out-of-range";
  auto tg = unit_target(gather, a->node(), at::kCPU);
  ASSERT_FALSE(tg.ok());
  EXPECT_NE(tg.status().message().find("no unit target for hazard gather-index-out-of-range"), std::string::npos);
}

TEST(UnitWitness, DivByZeroFromZ3) {
  auto a = analyse("Div", {{"x", {1, 2}}, {"y", {-1, 1}}});
  const Finding* f = a->finding("div-by-zero");
  ASSERT_NE(f, nullptr);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->method, "z3-fp32");
  EXPECT_TRUE(w->confirmed) << w->text;
  ASSERT_EQ(w->operands.size(), 2u);
  EXPECT_TRUE((w->operands[1] == 0).any().item<bool>()) << w->text;
  EXPECT_TRUE(within(w->operands[0], 1, 2) && within(w->operands[1], -1, 1)) << w->text;
}

TEST(UnitWitness, DivOverflowFromZ3) {
  auto a = analyse("Div", {{"x", {1e10, 1e10}}, {"y", {1e-30, 1}}});
  const Finding* f = a->finding("div-overflow");
  ASSERT_NE(f, nullptr);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->method, "z3-fp32");
  EXPECT_TRUE(w->confirmed) << w->text;
  EXPECT_TRUE(within(w->operands[1], 1e-30, 1)) << w->text;
  // The quotient of the witness element, in host float32, overflows.
  at::Tensor q = w->operands[0] / w->operands[1];
  EXPECT_TRUE(q.isinf().any().item<bool>()) << w->text;
}

// A float16 Div computes in float32 and rounds to float16: Z3's (_ FloatingPoint 5 11)
// operands, widened, divided and rounded back, give a quotient that is finite in
// float32 and past float16's 65504, and the op run alone in float16 overflows.
TEST(UnitWitness, HalfDivOverflowFromZ3InFloat16) {
  auto a = analyse("Div", {{"x", {1, 2}}, {"y", {1e-5, 1}}}, {}, {4}, onnx::TensorProto::FLOAT16);
  const Finding* f = a->finding("overflow");
  ASSERT_NE(f, nullptr);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->method, "z3-fp16");
  EXPECT_TRUE(w->confirmed) << w->text;
  ASSERT_EQ(w->operands[0].scalar_type(), at::kHalf);
  ASSERT_EQ(w->operands[1].scalar_type(), at::kHalf);
  EXPECT_TRUE(within(w->operands[0], 1, 2) && within(w->operands[1], 1e-5, 1)) << w->text;
  at::Tensor q = w->operands[0].to(at::kFloat) / w->operands[1].to(at::kFloat);
  EXPECT_TRUE(q.isfinite().all().item<bool>()) << w->text;
  EXPECT_GT(q.max().item<float>(), 65504.f) << w->text;
  EXPECT_TRUE(q.to(at::kHalf).isinf().any().item<bool>()) << w->text;
}

TEST(UnitWitness, LogNonpositiveAtZero) {
  auto a = analyse("Log", {{"x", {0, 1}}});
  const Finding* f = a->finding("log-nonpositive");
  ASSERT_NE(f, nullptr);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->method, "threshold");
  EXPECT_TRUE(w->confirmed);
  EXPECT_EQ(w->operands[0].min().item<float>(), 0.f);
  EXPECT_TRUE(within(w->operands[0], 0, 1));
}

TEST(UnitWitness, ExpOverflowAtTheMeasuredThreshold) {
  auto a = analyse("Exp", {{"x", {0, 100}}});
  const Finding* f = a->finding("exp-overflow");
  ASSERT_NE(f, nullptr);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_TRUE(w->confirmed);
  EXPECT_EQ(w->operands[0].max().item<float>(), 88.72283935546875f);
}

TEST(UnitWitness, SqrtZeroGradientThroughBackward) {
  auto a = analyse("Sqrt", {{"x", {0, 1}}});
  const Finding* f = a->finding("sqrt-zero-gradient");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->kind, HazardKind::kGradient);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->method, "threshold");
  EXPECT_TRUE(w->confirmed);
  EXPECT_EQ(w->operands[0].min().item<float>(), 0.f);
}

TEST(UnitWitness, MulOverflowFromZ3) {
  auto a = analyse("Mul", {{"x", {-1e20, 1e20}}, {"y", {-1e20, 1e20}}});
  const Finding* f = a->finding("overflow");
  ASSERT_NE(f, nullptr);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->method, "z3-fp32");
  EXPECT_TRUE(w->confirmed) << w->text;
  EXPECT_TRUE(within(w->operands[0], -1e20, 1e20) && within(w->operands[1], -1e20, 1e20));
}

TEST(UnitWitness, UnreachableTargetIsAnErrorNotAWitness) {
  // No finding here: x stays in [0.5, 1]. A hand-made claim of log-nonpositive has
  // no value in range meeting x <= 0.
  auto a = analyse("Log", {{"x", {0.5, 1}}});
  EXPECT_TRUE(a->analysis.findings.empty());
  Finding f;
  f.node = "n";
  f.op_type = "Log";
  f.hazard = "log-nonpositive";
  f.operands = {{"x", 0.5, 1}};
  auto w = find_unit_witness(a->graph, a->node(), f, a->analysis, at::kCPU);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("meets the target x <= 0"), std::string::npos) << w.status().message();
}

TEST(UnitWitness, AcosDomainJustPastOne) {
  auto a = analyse("Acos", {{"x", {-0.5, 1.5}}});
  const Finding* f = a->finding("acos-domain");
  ASSERT_NE(f, nullptr);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_TRUE(w->confirmed);
  EXPECT_EQ(w->operands[0].max().item<float>(), std::nextafter(1.f, 2.f));
}

TEST(UnitWitness, PowNegativeBaseWithConstantHalfExponent) {
  auto a = analyse("Pow", {{"x", {-1, 1}}}, at::tensor({0.5f}));
  const Finding* f = a->finding("pow-negative-base");
  ASSERT_NE(f, nullptr);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->method, "threshold");
  EXPECT_TRUE(w->confirmed) << w->text;
  EXPECT_EQ(w->operands[0].min().item<float>(), -kMinSub);
}

TEST(UnitWitness, CoshOverflowOnTheNegativeSide) {
  auto a = analyse("Cosh", {{"x", {-200, 1}}});
  const Finding* f = a->finding("cosh-overflow");
  ASSERT_NE(f, nullptr);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_TRUE(w->confirmed) << w->text;
  EXPECT_LT(w->operands[0].min().item<float>(), -88.f);
}

TEST(UnitWitness, ReduceSumOverflowAtACorner) {
  auto a = analyse("ReduceSum", {{"x", {-3e38, 3e38}}}, {}, {1});
  const Finding* f = a->finding("overflow");
  ASSERT_NE(f, nullptr);
  auto t = unit_target(*f, a->node(), at::kCPU);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->operand, -1);
  auto w = find_unit_witness(a->graph, a->node(), *f, a->analysis, at::kCPU);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->method, "corners");
  EXPECT_TRUE(w->confirmed);
  EXPECT_EQ(w->text, "x at its low end");
}

}  // namespace
}  // namespace nanguard
