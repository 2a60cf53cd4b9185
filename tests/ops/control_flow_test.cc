// If, Loop and Scan: execution of the taken branch / every iteration (outer-scope
// tensors read by name), and their analysis: one branch when the condition is known
// (folded from shapes), both joined when not, hazards named inside the subgraph,
// loops unrolled (checked by sampling real runs) or widened to a fixpoint.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;
using testing::set_attr;
using testing::summary;

constexpr int32_t kF = onnx::TensorProto::FLOAT, kI64 = onnx::TensorProto::INT64, kB = onnx::TensorProto::BOOL;

void set_graph(onnx::NodeProto& node, const std::string& name, ModelBuilder& body) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::GRAPH);
  *a->mutable_g() = body.proto().graph();
  a->mutable_g()->set_name(name);
}

// A branch of one node `op` on outer tensors, output `out` of x's shape [2, 3].
ModelBuilder branch(const std::string& op, std::vector<std::string> ins, const std::string& out) {
  ModelBuilder g;
  g.node(op, std::move(ins), {out}, op == "Log" ? "log" : op == "Sqrt" ? "sqrt" : "op");
  g.output(out, {2, 3});
  return g;
}

// y = If(cond) then x + 1 else log(x), x of shape [2, 3]; `cond_nodes` computes "cond".
ModelBuilder if_model(const std::function<void(ModelBuilder&)>& cond_nodes, ModelBuilder then_g, ModelBuilder else_g) {
  ModelBuilder b;
  b.input("x", {2, 3}).output("y", {2, 3});
  b.initializer("one", at::ones({1}));
  cond_nodes(b);
  auto& n = b.node("If", {"cond"}, {"y"}, "if");
  set_graph(n, "then_branch", then_g);
  set_graph(n, "else_branch", else_g);
  return b;
}

// cond = (x.shape[0] == rows): known exactly from the shape alone.
std::function<void(ModelBuilder&)> shape_cond(int64_t rows) {
  return [rows](ModelBuilder& b) {
    b.initializer("zero", at::tensor(int64_t{0})).initializer("rows", at::tensor(rows));
    b.node("Shape", {"x"}, {"shape"});
    b.node("Gather", {"shape", "zero"}, {"dim0"});
    b.node("Equal", {"dim0", "rows"}, {"cond"});
  };
}

// cond = sum(x) > 0: unknown for x in a range around 0.
void sum_cond(ModelBuilder& b) {
  b.initializer("fzero", at::zeros({}));
  set_attr(b.node("ReduceSum", {"x"}, {"sum"}), "keepdims", int64_t{0});
  b.node("Greater", {"sum", "fzero"}, {"cond"});
}

AnalyzeOptions x_in(double lo, double hi) { return testing::ranges_of({{"x", {lo, hi}}}); }

TEST(ControlFlow, IfRunsTheTakenBranchReadingOuterTensors) {
  at::Tensor x = at::rand({2, 3}) + 0.5;
  ModelBuilder b = if_model(shape_cond(2), branch("Add", {"x", "one"}, "t"), branch("Log", {"x"}, "e"));
  EXPECT_TRUE(at::allclose(testing::run_output(b, {{"x", x}}), x + 1));
  ModelBuilder c = if_model(shape_cond(3), branch("Add", {"x", "one"}, "t"), branch("Log", {"x"}, "e"));
  EXPECT_TRUE(at::allclose(testing::run_output(c, {{"x", x}}), at::log(x)));
}

// The condition folds from shapes: the untaken branch's Log is not reported; when the
// Log's branch is the one taken, it is, under the If's name.
TEST(ControlFlow, IfWithAShapeConditionAnalysesOnlyTheTakenBranch) {
  ModelBuilder b = if_model(shape_cond(2), branch("Add", {"x", "one"}, "t"), branch("Log", {"x"}, "e"));
  AnalysisResult r = testing::analyze_built(b, x_in(-1, 1));
  EXPECT_TRUE(r.findings.empty()) << ::testing::PrintToString(summary(r.findings));
  EXPECT_NEAR(range_in(r, "y")->lo, 0.0, 1e-6);
  ModelBuilder c = if_model(shape_cond(3), branch("Add", {"x", "one"}, "t"), branch("Log", {"x"}, "e"));
  EXPECT_EQ(summary(testing::findings_of(c, x_in(-1, 1))), std::vector<std::string>{"if/else_branch/log:log-nonpositive"});
}

// Unknown condition: both branches analysed, each one's hazard reported (possible:
// neither branch need run), the output the hull of both.
TEST(ControlFlow, IfWithAnUnknownConditionJoinsBothBranches) {
  ModelBuilder b = if_model(sum_cond, branch("Log", {"x"}, "t"), branch("Sqrt", {"x"}, "e"));
  AnalysisResult r = testing::analyze_built(b, x_in(-1, 1));
  EXPECT_EQ(summary(r.findings),
            (std::vector<std::string>{"if/then_branch/log:log-nonpositive", "if/else_branch/sqrt:sqrt-negative"}));
  for (const Finding& f : r.findings) EXPECT_EQ(f.status, "possible") << f.node;
  ModelBuilder c = if_model(sum_cond, branch("Add", {"x", "one"}, "t"), branch("Neg", {"x"}, "e"));
  r = testing::analyze_built(c, x_in(-1, 1));
  EXPECT_TRUE(r.findings.empty()) << ::testing::PrintToString(summary(r.findings));
  EXPECT_LE(range_in(r, "y")->lo, -1.0);
  EXPECT_GE(range_in(r, "y")->hi, 2.0);
  // sum(x) > 0 for every x in [0.5, 1]: only the then branch.
  EXPECT_GE(range_in(testing::analyze_built(c, x_in(0.5, 1)), "y")->lo, 1.49);
  EXPECT_GT(testing::expect_sound(c, x_in(-1, 1), "if join"), 0);
}

// x_out = x_in * two (two from the outer scope) and a scan output of it, `trips`
// iterations (an initializer, or the runtime input "m" when negative).
ModelBuilder doubling_loop(int64_t trips, float factor = 2.f, bool scan = true) {
  ModelBuilder body;
  body.input("i", {}, kI64).input("c", {}, kB).input("x_in", {3});
  body.node("Identity", {"c"}, {"c_out"});
  body.node("Mul", {"x_in", "two"}, {"x_out"}, "mul");
  body.output("c_out", {}, kB).output("x_out", {3});
  if (scan) {
    body.node("Identity", {"x_out"}, {"row"});
    body.output("row", {3});
  }
  ModelBuilder b;
  b.input("x", {3}).output("y", {3});
  if (scan) b.output("ys", {-1, 3});
  b.initializer("two", at::full({1}, factor)).initializer("go", at::scalar_tensor(true, at::kBool));
  if (trips >= 0) b.initializer("m", at::tensor(trips));
  else b.input("m", {}, kI64);
  std::vector<std::string> outs{"y"};
  if (scan) outs.push_back("ys");
  set_graph(b.node("Loop", {"m", "go", "x"}, outs, "loop"), "body", body);
  return b;
}

TEST(ControlFlow, LoopRunsItsTripCountWithScanOutputs) {
  at::Tensor x = at::rand({3});
  ModelBuilder b = doubling_loop(4);
  auto outs = testing::run_outputs(b, {{"x", x}});
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_TRUE(at::allclose(outs[0], x * 16));
  EXPECT_EQ(outs[1].sizes().vec(), (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(at::allclose(outs[1][2], x * 8));
  ModelBuilder none = doubling_loop(0);
  outs = testing::run_outputs(none, {{"x", x}});
  EXPECT_TRUE(at::equal(outs[0], x));
  EXPECT_EQ(outs[1].sizes().vec(), (std::vector<int64_t>{0, 3}));
}

// A constant trip count is unrolled: tight bounds (x * 1024), the scan output's shape
// known, and every real run inside them.
TEST(ControlFlow, LoopWithAConstantTripCountIsUnrolledSoundly) {
  ModelBuilder b = doubling_loop(10);
  AnalysisResult r = testing::analyze_built(b, x_in(-1, 1));
  EXPECT_TRUE(r.findings.empty()) << ::testing::PrintToString(summary(r.findings));
  EXPECT_NEAR(range_in(r, "y")->hi, 1024.0, 1e-2);
  EXPECT_NEAR(range_in(r, "y")->lo, -1024.0, 1e-2);
  EXPECT_EQ(r.intervals.at("ys").shape, (std::vector<int64_t>{10, 3}));
  EXPECT_GT(testing::expect_sound(b, x_in(-1, 1), "loop x*2", nullptr, 40), 0);
}

// 100 iterations, past the unroll cap: the doubling bound is widened to the float32
// limit, the overflow it allows reported inside the body (a real one: 2^100 * 2^28 is
// past float32), and sampled runs (NaN/INF included) explained.
TEST(ControlFlow, LoopPastTheUnrollCapWidensGrowingBounds) {
  ModelBuilder b = doubling_loop(100, 2.f, false);
  AnalysisResult r = testing::analyze_built(b, x_in(-1, 1));
  EXPECT_EQ(summary(r.findings), std::vector<std::string>{"loop/body/mul:overflow"});
  EXPECT_EQ(range_in(r, "y")->hi, kFloat32Max);
  testing::expect_sound(b, x_in(-1e10, 1e10), "loop x*2, 100 iterations");
}

// An unknown trip count: a shrinking carried value converges without widening
// (proved, bounds kept); a growing one widens and its overflow is reported; a scan
// output of unknown length cannot be bounded, and the analysis says so.
TEST(ControlFlow, LoopWithAnUnknownTripCountReachesAFixpoint) {
  AnalyzeOptions opt = x_in(-1, 1);
  opt.ranges["m"] = {0, 1000};
  ModelBuilder halving = doubling_loop(-1, 0.5f, false);
  AnalysisResult r = testing::analyze_built(halving, opt);
  EXPECT_TRUE(r.findings.empty()) << ::testing::PrintToString(summary(r.findings));
  EXPECT_LE(range_in(r, "y")->hi, 1.0);
  EXPECT_GT(testing::expect_sound(halving, opt, "loop x/2, unknown trips"), 0);
  ModelBuilder doubling = doubling_loop(-1, 2.f, false);
  r = testing::analyze_built(doubling, opt);
  ASSERT_EQ(summary(r.findings), std::vector<std::string>{"loop/body/mul:overflow"});
  EXPECT_EQ(r.findings[0].status, "possible");
  testing::expect_sound(doubling, opt, "loop x*2, unknown trips");
  ModelBuilder scanned = doubling_loop(-1);
  auto g = load_model_proto(scanned.proto(), "op_test.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto a = analyze(*g, opt);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("scan output 'ys'"), std::string::npos) << a.status().message();
}

// A while loop: x doubles until it reaches 10 (the body's condition output).
TEST(ControlFlow, LoopStopsOnTheBodysCondition) {
  ModelBuilder body;
  body.input("i", {}, kI64).input("c", {}, kB).input("x_in", {1});
  body.node("Mul", {"x_in", "two"}, {"x_out"});
  body.node("Less", {"x_out", "ten"}, {"c_out"});
  body.output("c_out", {1}, kB).output("x_out", {1});
  ModelBuilder b;
  b.input("x", {1}).output("y", {1});
  b.initializer("two", at::full({1}, 2.f)).initializer("ten", at::full({1}, 10.f)).initializer("go", at::scalar_tensor(true, at::kBool));
  set_graph(b.node("Loop", {"", "go", "x"}, {"y"}, "loop"), "body", body);
  EXPECT_FLOAT_EQ(testing::run_output(b, {{"x", at::full({1}, 1.f)}}).item<float>(), 16.f);
  EXPECT_GT(testing::expect_sound(b, x_in(1, 3), "while x < 10"), 0);
}

// s_t = op(s_{t-1}, x_t) over a [length, 2] input; scan output of each s_t.
ModelBuilder scan_model(const std::string& op, int64_t length, bool reverse, int64_t out_axis) {
  ModelBuilder body;
  body.input("s_in", {2}).input("x_t", {2});
  body.node(op, {"s_in", "x_t"}, {"s_out"}, "step");
  body.node("Identity", {"s_out"}, {"row"});
  body.output("s_out", {2}).output("row", {2});
  ModelBuilder b(16);
  b.input("s", {2}).input("x", {length, 2}).output("y", {2}).output("ys", {-1, -1});
  auto& n = b.node("Scan", {"s", "x"}, {"y", "ys"}, "scan");
  set_attr(n, "num_scan_inputs", int64_t{1});
  set_attr(n, "scan_input_directions", std::vector<int64_t>{reverse ? 1 : 0});
  set_attr(n, "scan_output_axes", std::vector<int64_t>{out_axis});
  set_graph(n, "body", body);
  return b;
}

TEST(ControlFlow, ScanReversedWithAnOutputAxis) {
  at::Tensor s = at::rand({2}), x = at::rand({5, 2});
  ModelBuilder b = scan_model("Add", 5, true, 1);
  auto outs = testing::run_outputs(b, {{"s", s}, {"x", x}});
  ASSERT_EQ(outs.size(), 2u);
  at::Tensor rows = s + at::cumsum(x.flip({0}), 0);
  EXPECT_TRUE(at::allclose(outs[0], rows[4]));
  EXPECT_TRUE(at::allclose(outs[1], rows.t()));
  AnalyzeOptions opt = testing::ranges_of({{"s", {-1, 1}}, {"x", {-1, 1}}});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_TRUE(r.findings.empty()) << ::testing::PrintToString(summary(r.findings));
  EXPECT_NEAR(range_in(r, "y")->hi, 6.0, 1e-4);
  EXPECT_EQ(r.intervals.at("ys").shape, (std::vector<int64_t>{2, 5}));
  EXPECT_GT(testing::expect_sound(b, opt, "scan sum"), 0);
}

// 100 steps of a running max: past the unroll cap, the fixpoint keeps [-1, 1].
TEST(ControlFlow, ScanPastTheUnrollCapConvergesForBoundedStates) {
  ModelBuilder b = scan_model("Max", 100, false, 0);
  AnalyzeOptions opt = testing::ranges_of({{"s", {-1, 1}}, {"x", {-1, 1}}});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_TRUE(r.findings.empty()) << ::testing::PrintToString(summary(r.findings));
  EXPECT_LE(range_in(r, "ys")->hi, 1.0);
  EXPECT_EQ(r.intervals.at("ys").shape, (std::vector<int64_t>{100, 2}));
  EXPECT_GT(testing::expect_sound(b, opt, "scan max"), 0);
}

// The If comes first in the file but its branch reads "ax", made after it: the
// loader sorts it after what its subgraphs read.
TEST(ControlFlow, LoaderSortsANodeAfterTheOuterTensorsItsSubgraphsRead) {
  ModelBuilder b = if_model(shape_cond(2), branch("Add", {"ax", "one"}, "t"), branch("Log", {"x"}, "e"));
  b.node("Abs", {"x"}, {"ax"}, "abs");
  at::Tensor x = -at::rand({2, 3});
  EXPECT_TRUE(at::allclose(testing::run_output(b, {{"x", x}}), x.abs() + 1));
  auto g = load_model_proto(b.proto(), "op_test.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->nodes.back().name, "if");
  // else_branch first (attributes in name order), then then_branch.
  EXPECT_EQ(implicit_inputs(g->nodes.back()), (std::vector<std::string>{"x", "ax", "one"}));
}

// An error inside a branch names the node by its path.
TEST(ControlFlow, ErrorsInsideASubgraphNameTheNodesPath) {
  ModelBuilder then_g;
  then_g.initializer("bad", at::tensor(std::vector<int64_t>{7}));
  then_g.node("Reshape", {"x", "bad"}, {"t"}, "reshape");
  then_g.output("t", {-1});
  ModelBuilder b = if_model(shape_cond(2), then_g, branch("Log", {"x"}, "e"));
  testing::NodeRun run = testing::run_built(b, {{"x", at::rand({2, 3})}});
  EXPECT_NE(run.error.find("node 'if/then_branch/reshape'"), std::string::npos) << run.error;
}

}  // namespace
}  // namespace nanguard
