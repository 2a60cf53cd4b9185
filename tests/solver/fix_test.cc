// Fixes: each rewrite is proved by the analyzer and equals the original wherever the
// original is finite (sampled); immediate clips use the exact float32 safe bounds
// (a clip one float wider is not proved); range modes narrow the side that matters.
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "ops/op_registry.h"
#include "ops/rewrite.h"
#include "solver/fix.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;
using testing::set_attr;

struct Fixed {
  Graph original, patched;
  FixReport report;
};

Fixed fix(ModelBuilder& b, RangeMap ranges, FixMode mode) {
  auto g = load_model_proto(b.proto(), "test.onnx");
  EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.status().message());
  FixOptions opt;
  opt.analyze.ranges = ranges;
  opt.mode = mode;
  auto r = fix_model(b.proto(), *g, opt);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.status().message());
  auto p = load_model_proto(r->patched.proto(), "fixed.onnx");  // the ONNX checker passes
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.status().message());
  return Fixed{std::move(*g), std::move(*p), std::move(*r)};
}

size_t findings(const Graph& g, const RangeMap& ranges) {
  AnalyzeOptions opt;
  opt.ranges = ranges;
  auto a = analyze(g, opt);
  EXPECT_TRUE(a.ok());
  return a->findings.size();
}

at::Tensor run(const Graph& g, const TensorMap& feeds, const std::string& out, bool float64 = false) {
  ExecOptions eo;
  eo.float_type = float64 ? at::kDouble : at::kFloat;
  auto ex = Executor::create(g, eo);
  EXPECT_TRUE(ex.ok());
  auto r = ex->run(feeds);
  EXPECT_TRUE(r.ok());
  return r->values.at(out);
}

// Over `n` uniform draws in [lo, hi] (and a few scaled ones to reach the extremes),
// the fixed model is finite everywhere and, wherever the float32 original is finite,
// equals the function it computes (the original run in float64: near underflow the
// float32 original is itself off by far more than the rewrite). Returns how many
// draws the original failed on.
int expect_equal_where_finite(const Fixed& f, const std::string& in, std::vector<int64_t> dims, double lo, double hi,
                              const std::string& out, double tol, int n = 300) {
  at::manual_seed(0);
  int failing = 0;
  for (int i = 0; i < n; ++i) {
    at::Tensor x = at::rand(dims) * (hi - lo) + lo;
    if (i % 3 == 0) x = x.sign() * at::full_like(x, std::max(std::abs(lo), std::abs(hi))) * at::rand(dims).pow(0.1);
    x = x.clamp(lo, hi);
    at::Tensor a = run(f.original, {{in, x}}, out), b = run(f.patched, {{in, x}}, out);
    at::Tensor ref = run(f.original, {{in, x.to(at::kDouble)}}, out, true);
    EXPECT_TRUE(at::isfinite(b).all().item<bool>()) << "fixed model not finite at draw " << i;
    at::Tensor ok = at::isfinite(a);
    if (!ok.all().item<bool>()) ++failing;
    at::Tensor rel = (ref - b.to(at::kDouble)).abs() / (1 + ref.abs());
    double diff = at::where(ok, rel, at::zeros_like(rel)).max().item<double>();
    EXPECT_LE(diff, tol) << "draw " << i;
  }
  return failing;
}

const FindingFix& only_fix(const Fixed& f) {
  EXPECT_EQ(f.report.fixes.size(), 1u);
  return f.report.fixes.at(0);
}

// A scalar float Constant node named `name` (a program constant, never a free weight).
// A float Constant node `name`: a scalar, or a 1-D tensor of `values` when `vector`.
void constant(ModelBuilder& b, const std::string& name, std::vector<float> values, bool vector = false) {
  onnx::AttributeProto* value = b.node("Constant", {}, {name}, name).add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  if (vector) value->mutable_t()->add_dims(static_cast<int64_t>(values.size()));
  for (float v : values) value->mutable_t()->add_float_data(v);
}

void constant(ModelBuilder& b, const std::string& name, float v) { constant(b, name, std::vector<float>{v}); }

// The inputs mode on `b` with every float initializer free in `weights`.
Result<FixReport> fix_inputs(ModelBuilder& b, RangeMap ranges, Range weights) {
  auto g = load_model_proto(b.proto(), "test.onnx");
  if (!g.ok()) return g.status();
  FixOptions opt;
  opt.analyze.ranges = std::move(ranges);
  opt.analyze.weights = WeightMode::kFree;
  opt.analyze.weight_range = weights;
  opt.mode = FixMode::kInputs;
  return fix_model(b.proto(), *g, opt);
}

TEST(Fix, LogSoftmaxRewriteIsProvedAndEqualWhereFinite) {
  ModelBuilder b;
  b.input("x", {2, 6}).output("y", {2, 6});
  set_attr(b.node("Softmax", {"x"}, {"p"}, "softmax"), "axis", int64_t{1});
  b.node("Log", {"p"}, {"y"}, "log");
  RangeMap r{{"x", {-100, 100}}};
  Fixed f = fix(b, r, FixMode::kAuto);
  EXPECT_EQ(only_fix(f).status, "fixed");
  EXPECT_EQ(only_fix(f).rewrite, "log-softmax");
  EXPECT_NE(only_fix(f).hint.find("log_softmax"), std::string::npos);
  EXPECT_EQ(findings(f.patched, r), 0u);
  EXPECT_EQ(f.patched.outputs, f.original.outputs);  // output names kept
  int failing = expect_equal_where_finite(f, "x", {2, 6}, -100, 100, "y", 2e-5);
  EXPECT_GT(failing, 0);  // the original does give -inf in this range
}

// softmax(x + (1 - m) * -inf): 0 * -inf = NaN where m = 1 keeps an entry. The finite
// fill (of a scalar or a fill tensor) is proved, and on a 0/1 mask gives the softmax
// of masked_fill(m == 0, -1e30).
void expect_mask_fill_fixed(bool tensor_fill) {
  ModelBuilder b;
  b.input("x", {2, 4}).input("m", {2, 4}).output("p", {2, 4});
  float inf = std::numeric_limits<float>::infinity();
  b.initializer("one", at::ones({})).initializer("fill", tensor_fill ? at::full({4}, -inf) : at::full({}, -inf));
  b.node("Sub", {"one", "m"}, {"drop"}, "drop");
  b.node("Mul", {"drop", "fill"}, {"bias"}, "bias");
  b.node("Add", {"x", "bias"}, {"masked"}, "add_mask");
  b.node("Softmax", {"masked"}, {"p"}, "softmax");
  RangeMap r{{"x", {-10, 10}}, {"m", {0, 1}}};
  Fixed f = fix(b, r, FixMode::kAuto);
  EXPECT_EQ(only_fix(f).status, "fixed");
  EXPECT_EQ(only_fix(f).rewrite, "finite-mask-fill");
  EXPECT_EQ(findings(f.patched, r), 0u);
  TensorMap feeds{{"x", at::randn({2, 4})}, {"m", at::tensor({1.f, 0.f, 1.f, 1.f, 0.f, 1.f, 0.f, 0.f}).reshape({2, 4})}};
  at::Tensor before = run(f.original, feeds, "p"), after = run(f.patched, feeds, "p");
  EXPECT_TRUE(before.isnan().any().item<bool>());  // the kept entries' 0 * -inf
  EXPECT_TRUE(after.isfinite().all().item<bool>());
  // The fixed model computes what a where-style mask does.
  at::Tensor expect = at::softmax(feeds["x"].masked_fill(feeds["m"] == 0, -1e30), 1);
  EXPECT_TRUE(at::allclose(after, expect, 1e-6, 1e-7));
}

TEST(Fix, AMultipliedMaskFillBecomesFinite) {
  expect_mask_fill_fixed(false);  // a scalar fill
  expect_mask_fill_fixed(true);   // a fill tensor
}

TEST(Fix, SigmoidCrossEntropyRewrites) {
  ModelBuilder b;
  b.input("z", {8}).output("a", {8}).output("c", {8});
  b.initializer("one", at::ones({1}));
  b.node("Sigmoid", {"z"}, {"h"}, "sigmoid");
  b.node("Log", {"h"}, {"a"}, "log_h");
  b.node("Sub", {"one", "h"}, {"omh"}, "one_minus_h");
  b.node("Log", {"omh"}, {"c"}, "log_1mh");
  RangeMap r{{"z", {-200, 200}}};
  Fixed f = fix(b, r, FixMode::kRewrite);
  ASSERT_EQ(f.report.fixes.size(), 2u);
  EXPECT_EQ(f.report.fixes[0].rewrite, "log-sigmoid");
  EXPECT_EQ(f.report.fixes[1].rewrite, "log-one-minus-sigmoid");
  EXPECT_EQ(findings(f.patched, r), 0u);
  EXPECT_GT(expect_equal_where_finite(f, "z", {8}, -200, 200, "a", 1e-4), 0);
  EXPECT_GT(expect_equal_where_finite(f, "z", {8}, -200, 200, "c", 1e-4), 0);
}

TEST(Fix, LogSumExpRewriteAlsoRemovesTheExpOverflow) {
  ModelBuilder b(11);
  b.input("x", {2, 5}).output("y", {2, 1});
  b.node("Exp", {"x"}, {"e"}, "exp");
  auto& s = b.node("ReduceSum", {"e"}, {"s"}, "sum");
  set_attr(s, "axes", std::vector<int64_t>{1});
  b.node("Log", {"s"}, {"y"}, "log");
  RangeMap r{{"x", {-120, 120}}};
  Fixed f = fix(b, r, FixMode::kAuto);
  ASSERT_EQ(f.report.fixes.size(), 2u);  // exp-overflow, then log-nonpositive
  EXPECT_EQ(f.report.fixes[1].rewrite, "log-sum-exp");
  EXPECT_EQ(f.report.fixes[0].at, "other");
  EXPECT_EQ(findings(f.patched, r), 0u);
  EXPECT_GT(expect_equal_where_finite(f, "x", {2, 5}, -120, 120, "y", 1e-4), 0);
}

TEST(Fix, DivisionByANormGetsTheGentlestProvedEps) {
  ModelBuilder b;
  b.input("x", {1, 8}).output("y", {1, 8});
  b.node("Mul", {"x", "x"}, {"sq"}, "square");
  b.initializer("axes", at::tensor(std::vector<int64_t>{1}));
  b.node("ReduceSum", {"sq", "axes"}, {"v"}, "sum");
  b.node("Sqrt", {"v"}, {"n"}, "norm");
  b.node("Div", {"x", "n"}, {"y"}, "normalize");
  RangeMap r{{"x", {-1, 1}}};
  Fixed f = fix(b, r, FixMode::kAuto);
  bool eps = false;
  for (const auto& fx : f.report.fixes) {
    EXPECT_EQ(fx.status, "fixed") << fx.finding.node << " " << fx.reason;
    eps = eps || (fx.rewrite == "sqrt-eps" && fx.description.find("1e-12") != std::string::npos);
  }
  EXPECT_TRUE(eps);
  EXPECT_EQ(findings(f.patched, r), 0u);
  at::Tensor zero = at::zeros({1, 8});
  EXPECT_TRUE(at::isfinite(run(f.patched, {{"x", zero}}, "y")).all().item<bool>());
  expect_equal_where_finite(f, "x", {1, 8}, -1, 1, "y", 1e-5, 100);
}

TEST(Fix, EmptyCountDivisorBecomesMaxCountOne) {
  ModelBuilder b;
  b.input("x", {4}).input("m", {4}, onnx::TensorProto::BOOL).output("y", {});
  set_attr(b.node("Cast", {"m"}, {"mf"}, "cast"), "to", int64_t{onnx::TensorProto::FLOAT});
  b.node("Mul", {"x", "mf"}, {"xm"}, "masked");
  set_attr(b.node("ReduceSum", {"xm"}, {"s"}, "sum"), "keepdims", int64_t{0});
  set_attr(b.node("ReduceSum", {"mf"}, {"c"}, "count"), "keepdims", int64_t{0});
  b.node("Div", {"s", "c"}, {"y"}, "mean");
  RangeMap r{{"x", {-1, 1}}};
  Fixed f = fix(b, r, FixMode::kAuto);
  EXPECT_EQ(only_fix(f).rewrite, "count-divisor");
  EXPECT_EQ(findings(f.patched, r), 0u);
  at::Tensor x = at::rand({4}), none = at::zeros({4}, at::kBool), some = at::tensor({1, 0, 1, 0}).to(at::kBool);
  EXPECT_TRUE(at::isfinite(run(f.patched, {{"x", x}, {"m", none}}, "y")).all().item<bool>());
  EXPECT_FALSE(at::isfinite(run(f.original, {{"x", x}, {"m", none}}, "y")).all().item<bool>());
  EXPECT_TRUE(at::equal(run(f.patched, {{"x", x}, {"m", some}}, "y"), run(f.original, {{"x", x}, {"m", some}}, "y")));
}

TEST(Fix, ImmediateExpClipIsTheExactFloat32BoundAndOneFloatMoreIsNotProved) {
  ModelBuilder b;
  b.input("x", {3}).output("y", {3});
  b.node("Exp", {"x"}, {"y"}, "exp");
  RangeMap r{{"x", {-1000, 1000}}};
  Fixed f = fix(b, r, FixMode::kImmediate);
  const FindingFix& fx = only_fix(f);
  ASSERT_EQ(fx.status, "fixed");
  ASSERT_EQ(fx.changes.size(), 1u);
  float safe = std::nextafter(88.72283935546875f, 0.f);
  EXPECT_EQ(fx.changes[0].after_hi, static_cast<double>(safe));  // not RANUM's 38
  EXPECT_TRUE(at::isfinite(at::full({1}, safe).exp()).all().item<bool>());
  EXPECT_FALSE(at::isfinite(at::full({1}, 88.72283935546875f).exp()).all().item<bool>());
  ModelBuilder wider;
  wider.input("x", {3}).output("y", {3});
  wider.initializer("hi", at::tensor(88.72283935546875f));
  wider.node("Clip", {"x", "", "hi"}, {"c"}, "clip");
  wider.node("Exp", {"c"}, {"y"}, "exp");
  auto g = load_model_proto(wider.proto(), "wider.onnx");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(findings(*g, r), 1u);
}

TEST(Fix, ImmediateLogClipKeepsTheGradientFiniteAndIsWiderThanRanum) {
  ModelBuilder b = testing::log_model({4});
  RangeMap r{{"x", {-1, 1}}};
  Fixed f = fix(b, r, FixMode::kImmediate);
  const FindingFix& fx = only_fix(f);
  ASSERT_EQ(fx.status, "fixed");
  double lo = fx.changes.at(0).after_lo;
  EXPECT_LT(lo, 1e-37);  // RANUM clips log at 1e-37
  EXPECT_GE(lo, 1.0 / std::numeric_limits<float>::max());
  EXPECT_EQ(findings(f.patched, r), 0u);
  at::Tensor x = at::full({1}, static_cast<float>(lo)).requires_grad_(true);
  x.log().sum().backward();
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
}

TEST(Fix, DivisorCrossingZeroIsClampedKeepingItsSign) {
  ModelBuilder b;
  b.input("x", {6}).input("d", {6}).output("y", {6});
  b.node("Div", {"x", "d"}, {"y"}, "div");
  RangeMap r{{"x", {-1, 1}}, {"d", {-1, 1}}};
  Fixed f = fix(b, r, FixMode::kImmediate);
  ASSERT_EQ(only_fix(f).status, "fixed") << only_fix(f).reason;
  EXPECT_EQ(findings(f.patched, r), 0u);
  at::Tensor x = at::tensor({1.f, -1.f, 0.5f, 1.f, -0.25f, 1.f}), d = at::tensor({0.5f, -0.5f, -0.f, 0.f, -1e-3f, -1e-30f});
  at::Tensor a = run(f.original, {{"x", x}, {"d", d}}, "y"), y = run(f.patched, {{"x", x}, {"d", d}}, "y");
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  EXPECT_TRUE(at::equal(y.slice(0, 0, 2), a.slice(0, 0, 2)));
  EXPECT_EQ(y[4].item<float>(), a[4].item<float>());
  EXPECT_LT(y[5].item<float>(), 0);  // -1e-30 keeps its sign: 1 / -m
}

// x / d * 10: a divisor kept at div-by-zero's own bound (|q| up to FLT_MAX) would
// overflow the Mul after it; the magnitude is raised (to the gradient's bound, or
// further by bisection) until the whole path is proved.
TEST(Fix, DivisorMagnitudeRisesUntilWhatFollowsIsProved) {
  ModelBuilder b;
  b.input("x", {4}).input("d", {4}).output("y", {4});
  b.initializer("ten", at::full({1}, 10.f));
  b.node("Div", {"x", "d"}, {"q"}, "div");
  b.node("Mul", {"q", "ten"}, {"y"}, "scale");
  RangeMap r{{"x", {-1, 1}}, {"d", {-1, 1}}};
  Fixed f = fix(b, r, FixMode::kImmediate);
  ASSERT_EQ(only_fix(f).status, "fixed") << only_fix(f).reason;
  EXPECT_EQ(findings(f.patched, r), 0u);
  at::Tensor x = at::ones({4}), d = at::tensor({0.f, -0.f, 1e-38f, -1e-38f});
  at::Tensor y = run(f.patched, {{"x", x}, {"d", d}}, "y");
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  EXPECT_LT(y[3].item<float>(), 0);
  at::Tensor normal = at::tensor({0.5f, -0.25f, 1.f, -1.f});
  EXPECT_TRUE(at::equal(run(f.patched, {{"x", x}, {"d", normal}}, "y"), run(f.original, {{"x", x}, {"d", normal}}, "y")));
}

// The angle between two unit vectors: their dot product rounds past 1, and the
// rewrite clips it first; equal wherever the original is finite.
TEST(Fix, AcosOfARoundedCosineIsClippedFirst) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {4});
  b.initializer("k", at::full({1}, 1.0000001f));
  b.node("Mul", {"x", "k"}, {"c"}, "cosine");
  b.node("Acos", {"c"}, {"y"}, "angle");
  RangeMap r{{"x", {-1, 1}}};
  Fixed f = fix(b, r, FixMode::kAuto);
  EXPECT_EQ(only_fix(f).rewrite, "clip-unit-interval");
  EXPECT_EQ(findings(f.patched, r), 0u);  // the gradient at +-1 too: the clip stops just inside
  expect_equal_where_finite(f, "x", {4}, -1, 1, "y", 4e-4, 100);
  at::Tensor edge = at::tensor({1.f, -1.f, 0.5f, 0.f});
  EXPECT_TRUE(at::isnan(run(f.original, {{"x", edge}}, "y")).any().item<bool>());
  EXPECT_TRUE(at::isfinite(run(f.patched, {{"x", edge}}, "y")).all().item<bool>());
}

// Every rewrite is named by some hazard's facet (none is dead code), and every name a
// facet gives resolves to a registered rewrite.
TEST(Fix, EveryRewriteIsNamedByAFacetAndEveryNameResolves) {
  std::set<std::string> named;
  for (const std::string& op : OpRegistry::instance().op_types()) {
    const OpDef* d = OpRegistry::instance().find(op);
    if (!d) continue;
    for (const HazardFacet& f : d->facets)
      for (const std::string& name : f.rewrites) {
        EXPECT_NE(find_rewrite(name), nullptr) << op << " " << f.hazard << " names " << name;
        named.insert(name);
      }
  }
  // The hazards the analyzer reports for any op (an op without facets of its own
  // resolves them to the generic ones).
  for (const char* h : {"overflow", "unsupported", "gradient-overflow", "gradient-unbounded", "infinite-operand",
                        "nan-from-infinities"})
    if (const HazardFacet* f = find_facet("Identity", "", h))
      for (const std::string& name : f->rewrites) {
        EXPECT_NE(find_rewrite(name), nullptr) << h << " names " << name;
        named.insert(name);
      }
  for (const std::string& name : rewrite_names()) EXPECT_TRUE(named.count(name)) << name << " is named by no facet";
}

TEST(Fix, InputsModeRaisesTheLowerEndOnly) {
  ModelBuilder b = testing::log_model({4});
  RangeMap r{{"x", {-1, 1}}};
  Fixed f = fix(b, r, FixMode::kInputs);
  const FindingFix& fx = only_fix(f);
  ASSERT_EQ(fx.status, "fixed") << fx.reason;
  ASSERT_EQ(fx.changes.size(), 1u);
  EXPECT_GT(fx.changes[0].after_lo, 0);
  EXPECT_EQ(fx.changes[0].after_hi, 1);
  EXPECT_GT(fx.changes[0].kept, 0.49);
  EXPECT_EQ(findings(f.patched, r), 0u);
}

// a / g and log(p): no one input decides both, and g's range must leave 0, not close
// on it. The inputs mode narrows g to one side of 0 and p above 0, one per finding,
// and leaves a whole; RANUM's measure counts a as kept.
TEST(Fix, RangeModeNarrowsOneInputPerFindingAwayFromZero) {
  ModelBuilder b;
  b.input("a", {4}).input("g", {4}).input("p", {4}).output("q", {4}).output("l", {4});
  b.node("Div", {"a", "g"}, {"q"}, "div");
  b.node("Log", {"p"}, {"l"}, "log");
  RangeMap r{{"a", {-16, 16}}, {"g", {-4, 4}}, {"p", {-1, 1}}};
  Fixed f = fix(b, r, FixMode::kInputs);
  ASSERT_EQ(f.report.fixes.size(), 2u);
  std::map<std::string, RangeChange> by;
  for (const FindingFix& fx : f.report.fixes) {
    ASSERT_EQ(fx.status, "fixed") << fx.finding.node << ": " << fx.reason;
    for (const RangeChange& c : fx.changes) by[c.tensor] = c;
  }
  EXPECT_EQ(by.at("a").kept, 1);
  EXPECT_TRUE(by.at("g").after_lo > 0 || by.at("g").after_hi < 0) << by.at("g").after_lo << " " << by.at("g").after_hi;
  EXPECT_GT(by.at("g").kept, 0.45);
  EXPECT_GT(by.at("p").after_lo, 0);
  EXPECT_EQ(by.at("p").after_hi, 1);
  EXPECT_NEAR(f.report.fixes[0].kept_all_nodes, (1 + by.at("g").kept + by.at("p").kept) / 3, 1e-12);
  EXPECT_EQ(findings(f.patched, r), 0u);
}

TEST(Fix, ASafeModelHasNothingToFix) {
  ModelBuilder b = testing::log_model({4}, 1e-3f);
  Fixed f = fix(b, {{"x", {-1, 1}}}, FixMode::kAuto);
  EXPECT_TRUE(f.report.fixes.empty());
  EXPECT_FALSE(f.report.changed);
}

// x @ w with w = 1e38 (a constant): the sum of two products overflows past |x| = 1.7.
// The fix bounds x (never the fixed weight) by the largest proved m; with w = 3e38 not
// even |x| <= 1 is safe, and the finding is reported not fixed, with the reason.
TEST(Fix, AnOverflowIsFixedByBoundingTheOperandsNotTheWeights) {
  for (float w : {1e38f, 3e38f}) {
    ModelBuilder b;
    b.input("x", {1, 2}).output("y", {1, 2});
    b.initializer("w", at::full({2, 2}, w));
    b.node("MatMul", {"x", "w"}, {"y"}, "matmul");
    RangeMap r{{"x", {-10, 10}}};
    Fixed f = fix(b, r, FixMode::kImmediate);
    ASSERT_EQ(f.report.fixes.size(), 1u);
    const FindingFix& fx = f.report.fixes[0];
    if (w > 2e38f) {
      EXPECT_EQ(fx.status, "not-fixed");
      EXPECT_NE(fx.reason.find("upstream"), std::string::npos) << fx.reason;
      continue;
    }
    ASSERT_EQ(fx.status, "fixed") << fx.reason;
    ASSERT_EQ(fx.changes.size(), 1u);
    EXPECT_EQ(fx.changes[0].tensor, "x");
    EXPECT_GT(fx.changes[0].after_hi, 1.69);  // 2 * 1.7014e38 is the float32 limit
    EXPECT_LE(fx.changes[0].after_hi, 1.7015);
    EXPECT_EQ(fx.changes[0].after_lo, -fx.changes[0].after_hi);
    EXPECT_EQ(findings(f.patched, r), 0u);
    at::Tensor big = at::tensor({10.f, 10.f}).reshape({1, 2}), normal = at::tensor({0.5f, -1.f}).reshape({1, 2});
    EXPECT_TRUE(at::isfinite(run(f.patched, {{"x", big}}, "y")).all().item<bool>());
    EXPECT_TRUE(at::equal(run(f.patched, {{"x", normal}}, "y"), run(f.original, {{"x", normal}}, "y")));
  }
}

// A divisor crossing 0 under a numerator up to 1e38: clamped at div-by-zero's own
// bound, the sign-preserving clamp's quotient node still has the backward pass
// overflowing (x / y^2), and the clamp moves out to div-gradient-overflow's bound
// instead of giving up (GRIST 28c).
TEST(Fix, SignPreservingClampIsTightenedByTheQuotientsGradientHazard) {
  ModelBuilder b;
  b.input("x", {4}).input("g", {4}).output("y", {4});
  b.node("Div", {"x", "g"}, {"y"}, "div");
  RangeMap r{{"x", {-1e38, 1e38}}, {"g", {-16, 16}}};
  Fixed f = fix(b, r, FixMode::kImmediate);
  ASSERT_EQ(f.report.fixes.size(), 1u);
  EXPECT_EQ(f.report.fixes[0].status, "fixed") << f.report.fixes[0].reason;
  // div-by-zero's own bound is 1e38 / FLT_MAX = 0.29; the gradient's sqrt of it, 0.542.
  EXPECT_NE(f.report.fixes[0].description.find("0.5421"), std::string::npos) << f.report.fixes[0].description;
  EXPECT_EQ(findings(f.patched, r), 0u);
}

// (a / g1) / g2 * l: each divisor is clamped away from 0 by at least the bound where
// the backward pass stays finite (sqrt(16 / FLT_MAX) = 2.2e-19 for g1), and by more
// where what follows needs it, so that the chain and the product are proved.
TEST(Fix, DivisorChainIsFixedWithClampsThatKeepWhatFollowsFinite) {
  ModelBuilder b;
  b.input("a", {4}).input("g1", {4}).input("g2", {4}).input("l", {4}).output("y", {4});
  b.node("Div", {"a", "g1"}, {"q1"}, "div1");
  b.node("Div", {"q1", "g2"}, {"q2"}, "div2");
  b.node("Mul", {"q2", "l"}, {"y"}, "scale");
  RangeMap r{{"a", {-16, 16}}, {"g1", {-16, 16}}, {"g2", {-16, 16}}, {"l", {-1e10, 1e10}}};
  Fixed f = fix(b, r, FixMode::kAuto);
  ASSERT_FALSE(f.report.fixes.empty());
  for (const FindingFix& fx : f.report.fixes) EXPECT_EQ(fx.status, "fixed") << fx.finding.node << ": " << fx.reason;
  EXPECT_EQ(findings(f.patched, r), 0u);
  for (const FindingFix& fx : f.report.fixes)
    for (const RangeChange& c : fx.changes)
      if (c.tensor == "g1") EXPECT_GE(c.after_hi, 2.2e-19) << fx.description;
  at::Tensor a = at::tensor({1.f, -3.f, 16.f, 2.f}), g = at::tensor({0.5f, -2.f, 0.f, -0.f}), l = at::full({4}, 1e10f);
  at::Tensor y = run(f.patched, {{"a", a}, {"g1", g}, {"g2", g}, {"l", l}}, "y");
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  at::Tensor y0 = run(f.original, {{"a", a}, {"g1", g}, {"g2", g}, {"l", l}}, "y");
  EXPECT_TRUE(at::equal(y.slice(0, 0, 2), y0.slice(0, 0, 2)));  // normal divisors: unchanged
}

// A float16 Exp overflows from x = 11.09375 (its float32 result, rounded to float16, is
// past 65504). The immediate fix clips x to the widest float16 range the analysis
// proves, on the type's grid: [-11.0859375, 11.0859375]; the fixed model is proved.
TEST(Fix, ImmediateFixOfAFloat16ExpClipsOnTheFloat16Grid) {
  ModelBuilder b;
  b.input("x", {4}, onnx::TensorProto::FLOAT16).output("y", {4}, onnx::TensorProto::FLOAT16);
  b.node("Exp", {"x"}, {"y"}, "exp");
  Fixed f = fix(b, {{"x", {-15, 15}}}, FixMode::kImmediate);
  ASSERT_EQ(f.report.fixes.size(), 1u);
  const FindingFix* overflow = &f.report.fixes[0];
  EXPECT_EQ(overflow->finding.hazard, "overflow");
  EXPECT_TRUE(f.report.remaining.empty());  // the fixed model is proved
  ASSERT_EQ(overflow->status, "fixed") << overflow->reason;
  ASSERT_EQ(overflow->changes.size(), 1u);
  EXPECT_EQ(overflow->changes[0].after_hi, 11.0859375);
  EXPECT_EQ(overflow->changes[0].after_lo, -11.0859375);
  at::Tensor x = at::tensor({11.0859375f, 11.09375f, 15.f, -15.f}).to(at::kHalf);
  at::Tensor y0 = run(f.original, {{"x", x}}, "y");
  EXPECT_TRUE(y0[0].isfinite().item<bool>());
  EXPECT_TRUE(y0[1].isinf().item<bool>());
  at::Tensor y = run(f.patched, {{"x", x}}, "y");
  EXPECT_EQ(y.scalar_type(), at::kHalf);
  EXPECT_TRUE(y.isfinite().all().item<bool>());
}

// d/dx of sum(log(x)) in the model run on `x`, by a backward pass.
at::Tensor input_gradient(const Graph& g, at::Tensor x) {
  x = x.clone().requires_grad_();
  auto ex = Executor::create(g, ExecOptions{});
  EXPECT_TRUE(ex.ok());
  auto r = ex->run({{"x", x}});
  EXPECT_TRUE(r.ok());
  r->outputs[0].to(at::kFloat).sum().backward();
  return x.grad().to(at::kFloat);
}

// y = log(x), x a float16 [4].
ModelBuilder float16_log() {
  ModelBuilder b;
  b.input("x", {4}, onnx::TensorProto::FLOAT16).output("y", {4}, onnx::TensorProto::FLOAT16);
  b.node("Log", {"x"}, {"y"}, "log");
  return b;
}

// A float16 Log over [0, 1]: the clip that keeps the value finite (x >= the least
// subnormal) leaves the gradient 1/x past 65504, so the fix takes the gradient's own
// bound, 1/65504 moved up onto the float16 grid: 257 * 2^-24. The fixed model's
// backward pass is finite at x = 0; the original's is not at a subnormal.
TEST(Fix, ImmediateFixOfAFloat16LogKeepsItsGradientInTheType) {
  ModelBuilder b = float16_log();
  Fixed f = fix(b, {{"x", {0, 1}}}, FixMode::kImmediate);
  ASSERT_EQ(f.report.fixes.size(), 1u);
  const FindingFix& fx = f.report.fixes[0];
  EXPECT_EQ(fx.finding.hazard, "log-nonpositive");
  ASSERT_EQ(fx.status, "fixed") << fx.reason;
  ASSERT_EQ(fx.changes.size(), 1u);
  EXPECT_EQ(fx.changes[0].after_lo, 257 * std::ldexp(1.0, -24));
  EXPECT_TRUE(f.report.remaining.empty());  // the fixed model is proved
  at::Tensor x = at::tensor({0.f, 1e-6f, 1.5e-5f, 1.f}).to(at::kHalf);
  EXPECT_TRUE(input_gradient(f.patched, x).isfinite().all().item<bool>());
  at::Tensor sub = at::tensor({1e-6f, 1e-6f, 1.5e-5f, 1.f}).to(at::kHalf);  // log finite, 1/x = 1e6
  EXPECT_TRUE(run(f.original, {{"x", sub}}, "y").isfinite().all().item<bool>());
  EXPECT_FALSE(input_gradient(f.original, sub).isfinite().all().item<bool>());
}

// The same clip on an intermediate float16 tensor (a Softmax's output, which the model
// declares no type for): its constants take the inferred type, on its grid. Before,
// they were written as float32 and x >= 1.4e-45 held nothing in float16.
TEST(Fix, ImmediateFixOfAFloat16SoftmaxLogClipsInTheInferredType) {
  ModelBuilder b;
  b.input("x", {1, 4}, onnx::TensorProto::FLOAT16).output("y", {1, 4}, onnx::TensorProto::FLOAT16);
  b.node("Softmax", {"x"}, {"p"}, "softmax");
  b.node("Log", {"p"}, {"y"}, "log");
  Fixed f = fix(b, {{"x", {-30, 30}}}, FixMode::kImmediate);
  ASSERT_EQ(f.report.fixes.size(), 1u);
  ASSERT_EQ(f.report.fixes[0].status, "fixed") << f.report.fixes[0].reason;
  ASSERT_EQ(f.report.fixes[0].changes.size(), 1u);
  EXPECT_EQ(f.report.fixes[0].changes[0].after_lo, 257 * std::ldexp(1.0, -24));
  EXPECT_TRUE(f.report.remaining.empty());  // log_softmax's gradient bound holds through the clip
}

// The inputs mode on the same Log narrows x to where the float16 gradient is finite,
// and reports the bound its clip holds: a float16 value.
TEST(Fix, InputsModeOnAFloat16LogNarrowsToTheGradientsBound) {
  ModelBuilder b = float16_log();
  Fixed f = fix(b, {{"x", {0, 1}}}, FixMode::kInputs);
  ASSERT_EQ(f.report.fixes.size(), 1u);
  ASSERT_EQ(f.report.fixes[0].status, "fixed") << f.report.fixes[0].reason;
  ASSERT_EQ(f.report.fixes[0].changes.size(), 1u);
  double lo = f.report.fixes[0].changes[0].after_lo;
  EXPECT_GE(lo, 1.0 / 65504);
  EXPECT_LE(lo, 0.01);  // the search keeps most of the range
  EXPECT_EQ(at::scalar_tensor(lo, at::kDouble).to(at::kHalf).to(at::kDouble).item<double>(), lo);  // the bound written
  at::Tensor x = at::full({4}, lo, at::kFloat).to(at::kHalf);
  EXPECT_TRUE(input_gradient(f.patched, x).isfinite().all().item<bool>());
}

// log(softmax(x @ w)) with w free in [-50, 50], beside log(p). With x in [0.6, 1] the
// weights alone can open a gap of 120 between logits for every x, so no input range
// removes the first finding: the inputs mode proves it (pinned weights, 8 failing
// runs) and still fixes log(p). With x in [0, 1], x near 0 silences the weights: the
// same mode narrows x and fixes both, and proves nothing unfixable.
TEST(Fix, InputsModeProvesAFindingTheWeightsDecideUnfixableAndFixesTheRest) {
  for (double x_lo : {0.6, 0.0}) {
    ModelBuilder b;
    b.input("x", {1, 2}).input("p", {3}).output("l", {1, 3}).output("lp", {3});
    b.initializer("w", at::full({2, 3}, 0.01f));
    b.node("MatMul", {"x", "w"}, {"z"}, "matmul");
    b.node("Softmax", {"z"}, {"s"}, "softmax");
    b.node("Log", {"s"}, {"l"}, "log_softmax");
    b.node("Log", {"p"}, {"lp"}, "log_p");
    auto r = fix_inputs(b, {{"x", {x_lo, 1}}, {"p", {-1, 1}}}, Range{-50, 50});
    ASSERT_TRUE(r.ok()) << r.status().message();
    std::map<std::string, const FindingFix*> by;
    for (const FindingFix& fx : r->fixes) by[fx.finding.node] = &fx;
    ASSERT_EQ(by.count("log_softmax"), 1u);
    ASSERT_EQ(by.count("log_p"), 1u);
    EXPECT_EQ(by["log_p"]->status, "fixed") << by["log_p"]->reason;
    const FindingFix& soft = *by["log_softmax"];
    if (x_lo > 0) {
      EXPECT_EQ(soft.status, "not-fixed");
      ASSERT_TRUE(soft.unremovable.has_value()) << soft.reason;
      EXPECT_EQ(soft.unremovable->runs, 8);
      ASSERT_EQ(soft.unremovable->pinned.size(), 1u);
      EXPECT_EQ(soft.unremovable->pinned[0].tensor, "w");
      EXPECT_NE(soft.reason.find("no input range can remove it"), std::string::npos) << soft.reason;
    } else {
      EXPECT_EQ(soft.status, "fixed") << soft.reason;
      EXPECT_FALSE(soft.unremovable.has_value());
    }
  }
}

// x / (g + 1e-7) with a free gain g: the divisor is 0 at one float32 g only, which
// a Newton step on the pin finds; no input range can remove the division by 0.
TEST(Fix, InputsModeProvesADivisorOfWeightsAloneUnfixableAtItsExactZero) {
  ModelBuilder b;
  b.input("x", {1, 4}).output("y", {1, 4});
  b.initializer("g", at::full({4}, 1.f));
  constant(b, "eps", 1e-7f);
  b.node("Add", {"g", "eps"}, {"d"}, "add");
  b.node("Div", {"x", "d"}, {"y"}, "div");
  auto r = fix_inputs(b, {{"x", {0, 1}}}, Range{-16, 16});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->fixes.size(), 1u);
  const FindingFix& f = r->fixes[0];
  EXPECT_EQ(f.finding.hazard, "div-by-zero");
  ASSERT_TRUE(f.unremovable.has_value()) << f.reason;
  ASSERT_EQ(f.unremovable->pinned.size(), 1u);
  // The cell driven holds exactly -float32(1e-7): a proof of y == 0 admits no other.
  EXPECT_LE(f.unremovable->pinned[0].after_lo, -1e-7f);
  EXPECT_GE(f.unremovable->pinned[0].after_hi, -1e-7f);
  EXPECT_EQ(f.unremovable->runs, 8);
}

// x / (w[i] + k[i]) with k = [0, 100, 200, 300] a constant, w free in [-16, 16] and i
// an integer input in [0, 3]: over every i the divisor spans [-16, 316] and no pin of w
// puts it at 0, but i is no input the mode narrows, so it is held too (its low end):
// w[0] == 0 is then a proof, and the 8 runs feed i = 0.
TEST(Fix, InputsModeHoldsAnIntegerInputItCannotNarrowInItsProof) {
  ModelBuilder b;
  b.input("x", {1}).input("i", {1}, onnx::TensorProto::INT64).output("y", {1});
  b.initializer("w", at::full({4}, 1.f));
  constant(b, "k", {0.f, 100.f, 200.f, 300.f}, true);
  b.node("Gather", {"w", "i"}, {"wi"}, "gather_w");
  b.node("Gather", {"k", "i"}, {"ki"}, "gather_k");
  b.node("Add", {"wi", "ki"}, {"d"}, "add");
  b.node("Div", {"x", "d"}, {"y"}, "div");
  auto r = fix_inputs(b, {{"x", {0, 1}}, {"i", {0, 3}}}, Range{-16, 16});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->fixes.size(), 1u);
  const FindingFix& f = r->fixes[0];
  EXPECT_EQ(f.finding.hazard, "div-by-zero");
  ASSERT_TRUE(f.unremovable.has_value()) << f.reason;
  EXPECT_EQ(f.unremovable->runs, 8);
  std::map<std::string, RangeChange> pinned;
  for (const RangeChange& c : f.unremovable->pinned) pinned[c.tensor] = c;
  ASSERT_EQ(pinned.count("i"), 1u);
  EXPECT_EQ(pinned["i"].after_lo, 0);
  EXPECT_EQ(pinned["i"].after_hi, 0);
  EXPECT_NE(f.reason.find("integer inputs i = 0"), std::string::npos) << f.reason;
}

// No input range removes log of a random draw in [-1, 1], and nothing proves that
// (no free weight to pin); the joint search fails, yet log(p) alone is fixed by
// narrowing p, and the other finding says why it is left.
TEST(Fix, InputsModeFixesTheFindingsItCanWhenNoNarrowingRemovesAll) {
  ModelBuilder b;
  b.input("p", {3}).output("lp", {3}).output("lr", {3});
  auto& draw = b.node("RandomUniform", {}, {"r"}, "draw");
  testing::set_attr(draw, "low", -1.f);
  testing::set_attr(draw, "high", 1.f);
  testing::set_attr(draw, "shape", std::vector<int64_t>{3});
  b.node("Log", {"p"}, {"lp"}, "log_p");
  b.node("Log", {"r"}, {"lr"}, "log_r");
  auto g = load_model_proto(b.proto(), "test.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  FixOptions opt;
  opt.analyze.ranges = {{"p", {-1, 1}}};
  opt.mode = FixMode::kInputs;
  opt.range_budget_seconds = 10;
  auto r = fix_model(b.proto(), *g, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::map<std::string, const FindingFix*> by;
  for (const FindingFix& fx : r->fixes) by[fx.finding.node] = &fx;
  ASSERT_EQ(by.count("log_p"), 1u);
  ASSERT_EQ(by.count("log_r"), 1u);
  EXPECT_EQ(by["log_p"]->status, "fixed") << by["log_p"]->reason;
  ASSERT_EQ(by["log_p"]->changes.size(), 1u);
  EXPECT_GT(by["log_p"]->changes[0].after_lo, 0.0);
  EXPECT_EQ(by["log_r"]->status, "not-fixed");
  EXPECT_NE(by["log_r"]->reason.find("even alone"), std::string::npos) << by["log_r"]->reason;
}

// Two sigmoid layers (GRIST's program 9 in small): over inputs in [0, 1] the first
// layer's bounds are loose for any weights but 0, where every hidden unit is exactly
// 0.5; with it held there, second-layer weights of 1 make the output exactly 1 for
// every input, so log(1 - s) is -inf whatever input range is kept.
TEST(Fix, InputsModeCutsTheInputsOffWithTheFirstLayerAtZero) {
  ModelBuilder b;
  b.input("x", {1, 4}).output("l", {1, 1});
  b.initializer("w1", at::full({4, 64}, 0.01f));
  b.initializer("w2", at::full({64, 1}, 0.01f));
  constant(b, "one", 1.f);  // a Constant node, not an initializer: free weights would include the 1
  b.node("MatMul", {"x", "w1"}, {"a"}, "fc1");
  b.node("Sigmoid", {"a"}, {"h"}, "sig1");
  b.node("MatMul", {"h", "w2"}, {"z"}, "fc2");
  b.node("Sigmoid", {"z"}, {"s"}, "sig2");
  b.node("Sub", {"one", "s"}, {"d"}, "sub");
  b.node("Log", {"d"}, {"l"}, "log_1ms");
  auto r = fix_inputs(b, {{"x", {0, 1}}}, Range{-1, 1});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->fixes.size(), 1u);
  const FindingFix& f = r->fixes[0];
  EXPECT_EQ(f.status, "not-fixed");
  ASSERT_TRUE(f.unremovable.has_value()) << f.reason;
  std::map<std::string, RangeChange> pins;
  for (const RangeChange& c : f.unremovable->pinned) pins[c.tensor] = c;
  ASSERT_EQ(pins.count("w1"), 1u);
  EXPECT_EQ(pins["w1"].after_lo, 0.0);
  EXPECT_EQ(pins["w1"].after_hi, 0.0);
  EXPECT_EQ(pins.count("one"), 0u);
  EXPECT_GT(pins["w2"].after_hi, 20.0 / 32);  // 0.5 * sum(w2) must reach 20, where sigmoid is exactly 1
  EXPECT_NE(f.reason.find("w1 at 0, which cuts every path from the inputs"), std::string::npos) << f.reason;
}

}  // namespace
}  // namespace nanguard
