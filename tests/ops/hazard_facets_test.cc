// Every hazard an op can report has its facets (ops/hazard.h): a unit target or the
// reason there is none, a safe operand domain or the reason there is none; the
// analyzer reports no hazard without one; and the safe domains are the exact float32
// sets the ops' own conditions accept (finite inside, flagged just outside).
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include <gtest/gtest.h>

#include "ops/op_registry.h"
#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::AttrFn;
using testing::ModelBuilder;

// "domain.Op" from op_types() back into (op, domain); domains hold dots themselves.
std::pair<std::string, std::string> split_op(const std::string& name) {
  size_t dot = name.rfind('.');
  if (dot == std::string::npos) return {name, ""};
  return {name.substr(dot + 1), name.substr(0, dot)};
}

TEST(HazardFacets, EveryHazardHasTargetAndSafeDomainOrReason) {
  int ops = 0, facets = 0;
  for (const std::string& name : OpRegistry::instance().op_types()) {
    auto [op, domain] = split_op(name);
    const OpDef* def = OpRegistry::instance().find(op, domain);
    ASSERT_NE(def, nullptr) << name;
    if (!def->hazards) {
      EXPECT_TRUE(def->facets.empty()) << name << " declares facets but reports no hazard";
      continue;
    }
    ++ops;
    EXPECT_FALSE(def->facets.empty()) << name << " reports hazards but declares no facet";
    std::set<std::string> seen;
    for (const HazardFacet& f : def->facets) {
      ++facets;
      EXPECT_TRUE(seen.insert(f.hazard).second) << name << ": two facets for " << f.hazard;
      EXPECT_TRUE(f.target || !f.no_target.empty()) << name << " " << f.hazard << ": no target and no reason";
      EXPECT_TRUE(f.safe_domain || !f.no_safe_domain.empty()) << name << " " << f.hazard << ": no safe domain and no reason";
      EXPECT_TRUE(!f.complete || f.completing_operand >= 0) << name << " " << f.hazard;
    }
  }
  EXPECT_GT(ops, 30);
  EXPECT_GT(facets, 50);
  std::printf("[facets] %d ops with hazards, %d facets\n", ops, facets);
}

TEST(HazardFacets, GenericHazardsHaveFacets) {
  for (const char* h : {"overflow", "unsupported"}) {
    const HazardFacet* f = find_facet("NoSuchOp", "", h);
    ASSERT_NE(f, nullptr) << h;
    EXPECT_TRUE(f->target || !f->no_target.empty()) << h;
  }
  EXPECT_EQ(find_facet("Exp", "", "no-such-hazard"), nullptr);
}

struct Case {
  std::string op;
  RangeMap ranges;  // inputs x, y, ... in order of their names
  AttrFn attrs = {};
};

// Opset 15: the first with Bernoulli.
ModelBuilder one_node(const std::string& op, const RangeMap& ranges, const AttrFn& attrs) {
  ModelBuilder b(15);
  std::vector<std::string> inputs;
  for (const auto& [name, r] : ranges) {
    b.input(name, {4});
    inputs.push_back(name);
  }
  b.output("out", {-1});
  auto& n = b.node(op, inputs, {"out"}, "n");
  if (attrs) attrs(n);
  return b;
}

// Models over which the ops report their hazards (forward, gradient, crash): the
// analyzer fails on any hazard without a facet, and each finding's facet is found.
TEST(HazardFacets, AnalyzerReportsOnlyDeclaredHazards) {
  auto alpha = [](float a) { return AttrFn([a](onnx::NodeProto& n) { testing::set_attr(n, "alpha", a); }); };
  auto p = [](int64_t v) { return AttrFn([v](onnx::NodeProto& n) { testing::set_attr(n, "p", v); }); };
  std::vector<Case> cases = {
      {"Exp", {{"x", {-1, 100}}}}, {"Log", {{"x", {-1, 1}}}}, {"Log", {{"x", {1e-40, 1}}}},
      {"Sqrt", {{"x", {-1, 1}}}}, {"Sqrt", {{"x", {0, 1}}}}, {"Reciprocal", {{"x", {-1, 1}}}},
      {"Reciprocal", {{"x", {1e-39, 1}}}}, {"Asin", {{"x", {-2, 2}}}}, {"Asin", {{"x", {-1, 1}}}},
      {"Acos", {{"x", {-2, 2}}}}, {"Acos", {{"x", {-1, 1}}}}, {"Acosh", {{"x", {0, 2}}}},
      {"Acosh", {{"x", {1, 2}}}}, {"Atanh", {{"x", {-1, 1}}}}, {"Sinh", {{"x", {-100, 100}}}},
      {"Cosh", {{"x", {-100, 100}}}}, {"Div", {{"x", {1, 2}}, {"y", {-1, 1}}}},
      {"Div", {{"x", {1e38, 3e38}}, {"y", {0.5, 1}}}}, {"Mod", {{"x", {-1, 1}}, {"y", {-1, 1}}}},
      {"Pow", {{"x", {-1, 1}}, {"y", {0.3, 0.6}}}}, {"Pow", {{"x", {0, 1}}, {"y", {-2, -1}}}},
      {"Pow", {{"x", {0, 1}}, {"y", {0.2, 0.7}}}}, {"Celu", {{"x", {-100, 1}}}, alpha(-1.f)},
      {"Celu", {{"x", {-1, 1}}}, alpha(0.f)}, {"ReduceLogSum", {{"x", {-1, 1}}}},
      {"ReduceLogSum", {{"x", {0, 1e-40}}}}, {"ReduceL2", {{"x", {-1e-30, 1e-30}}}},
      {"ReduceMean", {{"x", {-3e38, 3e38}}}}, {"LpNormalization", {{"x", {-1, 1}}}, p(2)},
      {"LpNormalization", {{"x", {1e-40, 1e-40}}}, p(1)}, {"Bernoulli", {{"x", {-1, 2}}}},
      {"Mul", {{"x", {-3e38, 3e38}}, {"y", {-3e38, 3e38}}}},
  };
  std::set<std::string> reported;
  for (const Case& c : cases) {
    ModelBuilder b = one_node(c.op, c.ranges, c.attrs);
    AnalysisResult r = testing::analyze_built(b, testing::ranges_of(c.ranges), c.op);
    EXPECT_FALSE(r.findings.empty()) << c.op << " reports nothing here";
    for (const Finding& f : r.findings) {
      EXPECT_NE(find_facet(f.op_type, "", f.hazard), nullptr) << f.op_type << " " << f.hazard;
      reported.insert(f.hazard);
    }
  }
  EXPECT_GE(reported.size(), 20u);
}

// ---- safe domains, behaviourally ------------------------------------------------

struct Loaded {
  Graph graph;
  const Node& node() const { return graph.nodes.at(0); }
};

Loaded load(ModelBuilder& b) {
  auto g = load_model_proto(b.proto(), "hazard_facets_test.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  return Loaded{g.ok() ? std::move(*g) : Graph{}};
}

// The op's lowering alone on one-element float32 operands; with `gradient`, the
// gradient of its output with respect to operand k instead of the output.
at::Tensor run_lowering(const Loaded& m, std::vector<double> values, int k, bool gradient) {
  const OpDef* def = OpRegistry::instance().find(m.node().op_type);
  std::vector<at::Tensor> in;
  for (double v : values) in.push_back(at::full({1}, v, at::kFloat));
  at::AutoGradMode grad_mode(gradient);
  if (gradient) in[k].requires_grad_(true);
  OpContext ctx{m.node(), m.graph.opset, in};
  at::Tensor y = def->lower(ctx)[0];
  if (!gradient) return y.detach();
  y.sum().backward();
  return in[k].grad();
}

bool reported(const std::string& op, RangeMap ranges, const AttrFn& attrs, const std::string& hazard) {
  ModelBuilder b = one_node(op, ranges, attrs);
  for (const Finding& f : testing::findings_of(b, testing::ranges_of(ranges)))
    if (f.hazard == hazard) return true;
  return false;
}

struct Edge {
  std::string op, hazard;
  RangeMap ranges;  // every input; the safe operand's own range is replaced by points
  std::string operand;
  bool exact;  // the op itself turns non-finite just outside (not only the analyzer)
  AttrFn attrs = {};
};

// At each finite bound of the safe domain (and at +-min_magnitude): the analyzer
// proves the hazard absent and the op is finite; one float32 further out, the
// analyzer reports it and, where the bound is the op's real threshold, the op fails.
void check_edges(const Edge& e) {
  SCOPED_TRACE(e.op + " " + e.hazard);
  ModelBuilder b = one_node(e.op, e.ranges, e.attrs);
  Loaded m = load(b);
  const HazardFacet* f = find_facet(e.op, "", e.hazard);
  ASSERT_NE(f, nullptr);
  ASSERT_TRUE(f->safe_domain);
  std::vector<Range> operands;
  int k = 0;
  for (const auto& [name, r] : e.ranges) {
    if (name == e.operand) k = static_cast<int>(operands.size());
    operands.push_back(r);
  }
  std::optional<SafeDomain> d = f->safe_domain(m.node(), operands, kFloat32Max);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->operand, k);
  bool gradient = f->kind == HazardKind::kGradient;
  // The other operands at the end of their range farthest from 0 (the worst case).
  std::vector<double> values;
  for (const auto& [name, r] : e.ranges) values.push_back(std::abs(r.hi) >= std::abs(r.lo) ? r.hi : r.lo);
  std::vector<std::pair<double, double>> probes;  // (inside, outside)
  if (std::isfinite(d->lo)) probes.push_back({d->lo, float32_below(d->lo)});
  if (std::isfinite(d->hi)) probes.push_back({d->hi, float32_above(d->hi)});
  if (d->min_magnitude > 0) probes.push_back({d->min_magnitude, float32_below(d->min_magnitude)});
  ASSERT_FALSE(probes.empty());
  for (auto [in, out] : probes) {
    EXPECT_EQ(static_cast<double>(static_cast<float>(in)), in) << "bounds are float32 values";
    RangeMap at_in = e.ranges, at_out = e.ranges;
    at_in[e.operand] = {in, in};
    at_out[e.operand] = {out, out};
    EXPECT_FALSE(reported(e.op, at_in, e.attrs, e.hazard)) << "flagged at the safe bound " << in;
    values[k] = in;
    EXPECT_TRUE(at::isfinite(run_lowering(m, values, k, gradient)).all().item<bool>()) << "not finite at " << in;
    bool flagged = false;
    ModelBuilder bo = one_node(e.op, at_out, e.attrs);
    for (const Finding& x : testing::findings_of(bo, testing::ranges_of(at_out))) flagged |= x.node == "n";
    EXPECT_TRUE(flagged) << "nothing flagged just outside, at " << out;
    values[k] = out;
    if (e.exact) EXPECT_FALSE(at::isfinite(run_lowering(m, values, k, gradient)).all().item<bool>()) << "finite at " << out;
  }
}

TEST(HazardFacets, SafeDomainsAreTheExactFloat32Sets) {
  std::vector<Edge> edges = {
      {"Exp", "exp-overflow", {{"x", {0, 0}}}, "x", true},
      {"Log", "log-nonpositive", {{"x", {0, 0}}}, "x", true},
      {"Log", "log-gradient-overflow", {{"x", {0, 0}}}, "x", true},
      {"Sqrt", "sqrt-negative", {{"x", {0, 0}}}, "x", true},
      {"Sqrt", "sqrt-zero-gradient", {{"x", {0, 0}}}, "x", true},
      {"Acos", "acos-domain", {{"x", {0, 0}}}, "x", true},
      {"Acos", "acos-gradient", {{"x", {0, 0}}}, "x", true},
      {"Div", "div-by-zero", {{"x", {1, 2}}, {"y", {0, 0}}}, "y", false},
      {"Div", "div-overflow", {{"x", {-0x1p127, 0x1p127}}, {"y", {0, 0}}}, "y", false},
      {"Pow", "pow-negative-base", {{"x", {0, 0}}, {"y", {0.5, 0.5}}}, "x", true},
  };
  for (const Edge& e : edges) check_edges(e);
}

}  // namespace
}  // namespace nanguard
