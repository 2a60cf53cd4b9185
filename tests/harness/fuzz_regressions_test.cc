// Regressions found by the fuzz targets (harness/fuzz/): each test is one finding,
// reduced to the smallest model that shows it.
#include <limits>
#include <map>

#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "harness/soundness.h"
#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "oracle/input_source.h"
#include "test_models.h"

namespace nanguard {
namespace {

Graph load_built(testing::ModelBuilder& b) {
  auto g = load_model_proto(b.proto(), "fuzz_regression.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? std::move(*g) : Graph{};
}

// A one-node graph built as the IR, past the loader's checks (what a fuzzed model that
// slips through them looks like to the analyzer): every tensor with its declared type.
Graph one_node_graph(const std::string& op_type, int64_t opset, const std::vector<std::string>& inputs,
                     const std::string& output, const std::map<std::string, TensorType>& types) {
  Graph g;
  g.model_path = op_type + ".onnx";
  g.opset = opset;
  g.inputs = inputs;
  g.outputs = {output};
  for (const auto& [name, t] : types) g.types[name] = t;
  Node n;
  n.name = op_type;
  n.op_type = op_type;
  n.inputs = inputs;
  n.outputs = {output};
  g.nodes = {n};
  g.index_producers();
  return g;
}

// fuzz_loader: test_mod_mixed_sign_float16 made random_inputs throw (CPU has no
// clamp kernel for Half), so `nanguard run` on any float16-input model failed.
TEST(FuzzRegressions, RandomInputsOfFloat16StayInRange) {
  testing::ModelBuilder b(13);
  b.input("x", {64}, onnx::TensorProto::FLOAT16).output("y", {64}, onnx::TensorProto::FLOAT16);
  b.node("Neg", {"x"}, {"y"}, "n");
  Graph g = load_built(b);
  auto feeds = random_inputs(g, {{"x", {0.1, 0.3}}}, 0);
  ASSERT_TRUE(feeds.ok()) << feeds.status().message();
  at::Tensor x = feeds->at("x");
  EXPECT_EQ(x.scalar_type(), at::kHalf);
  EXPECT_GE(x.to(at::kDouble).min().item<double>(), 0.1);
  EXPECT_LE(x.to(at::kDouble).max().item<double>(), 0.3);
}

// fuzz_soundness: test_layer_normalization_4d_axis2 with X in [-2.5e-29, 3.0e36].
// The float32 variance overflows to INF, InvStdDev is 0 below the analysis' bound of
// 6.6e-37, and nothing was reported.
TEST(FuzzRegressions, LayerNormVarianceOverflowIsReportedAndBounded) {
  testing::ModelBuilder b(17);
  b.input("x", {2, 3, 4, 5}).output("y", {2, 3, 4, 5}).output("mean", {2, 3, 1, 1}).output("inv", {2, 3, 1, 1});
  b.initializer("s", at::ones({4, 5}));
  testing::set_attr(b.node("LayerNormalization", {"x", "s"}, {"y", "mean", "inv"}, "n"), "axis", int64_t{2});
  Graph g = load_built(b);
  AnalyzeOptions opt;
  opt.ranges = {{"x", {-2.53546721e-29, 3.00788134e36}}};
  auto r = analyze(g, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  bool overflow = false;
  for (const auto& f : r->findings) overflow |= f.node == "n" && f.hazard == "overflow";
  EXPECT_TRUE(overflow);
  // The corner the sampler found: every other element at each end.
  at::Tensor x = at::full({2, 3, 4, 5}, -2.53546721e-29f);
  x.view({-1}).slice(0, 0, 120, 2).fill_(3.00788134e36f);
  auto ex = Executor::create(g);
  ASSERT_TRUE(ex.ok());
  auto run = ex->run({{"x", x}});
  ASSERT_TRUE(run.ok()) << run.status().message();
  double inv = run->values.at("inv").min().item<double>();
  EXPECT_EQ(inv, 0.0);  // 1 / sqrt(INF)
  EXPECT_LE(r->intervals.at("inv").min(), inv);
}

// Ordinary ranges keep their tight InvStdDev bound (no spurious overflow).
TEST(FuzzRegressions, LayerNormOrdinaryRangeHasNoOverflow) {
  testing::ModelBuilder b(17);
  b.input("x", {2, 8}).output("y", {2, 8}).output("mean", {2, 1}).output("inv", {2, 1});
  b.initializer("s", at::ones({8}));
  b.node("LayerNormalization", {"x", "s"}, {"y", "mean", "inv"}, "n");
  AnalyzeOptions opt;
  opt.ranges = {{"x", {-1e6, 1e6}}};
  auto r = analyze(load_built(b), opt);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->findings.empty());
  EXPECT_GT(r->intervals.at("inv").min(), 0.0);
}

bool has_finding(const Graph& g, const RangeMap& ranges, const std::string& hazard) {
  AnalyzeOptions opt;
  opt.ranges = ranges;
  auto r = analyze(g, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return false;
  for (const auto& f : r->findings)
    if (f.hazard == hazard) return true;
  return false;
}

Graph batch_norm(testing::ModelBuilder& b) {
  b.input("x", {1, 2, 1, 3}).input("s", {2}).input("bias", {2}).input("mean", {2}).input("var", {2});
  b.output("y", {1, 2, 1, 3});
  b.node("BatchNormalization", {"x", "s", "bias", "mean", "var"}, {"y"}, "bn");
  return load_built(b);
}

// fuzz_soundness: test_batchnorm_example with X in [0, 2.66e36] and scale, bias,
// mean and var all 0. (x - mean) / sqrt(1e-5) overflows to INF before the zero scale,
// INF * 0 is NaN, and the analysis (y in [-3e-45, 3e-45]) reported nothing.
TEST(FuzzRegressions, BatchNormIntermediateOverflowIsReported) {
  testing::ModelBuilder b(15);
  Graph g = batch_norm(b);
  RangeMap zero{{"s", {0, 0}}, {"bias", {0, 0}}, {"mean", {0, 0}}, {"var", {0, 0}}};
  RangeMap wide = zero;
  wide["x"] = {0, 2.65845599e36};
  EXPECT_TRUE(has_finding(g, wide, "overflow"));
  auto ex = Executor::create(g);
  ASSERT_TRUE(ex.ok());
  TensorMap feeds{{"x", at::full({1, 2, 1, 3}, 2.65845599e36f)}};
  for (const char* p : {"s", "bias", "mean", "var"}) feeds[p] = at::zeros({2});
  auto run = ex->run(feeds);
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(run->values.at("y").isnan().all().item<bool>());  // what the sampler saw
  RangeMap ordinary{{"x", {-10, 10}}, {"s", {0.5, 2}}, {"bias", {-1, 1}}, {"mean", {-1, 1}}, {"var", {0.5, 2}}};
  EXPECT_FALSE(has_finding(g, ordinary, "overflow"));
}

// fuzz_loader: an input declared [3, 6, 6, 2^63 - 1, 3, 4]: the element count
// overflowed (signed, undefined), slipped under the loader's size cap and reached
// at::empty in random_inputs, which threw.
TEST(FuzzRegressions, HugeDimensionsSaturateAndAreRefused) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ((TensorType{1, std::vector<int64_t>{3, 6, 6, kMax, 3, 4}}.element_count()), kMax);
  EXPECT_EQ((TensorType{1, std::vector<int64_t>{kMax, 2, 0}}.element_count()), 0);
  EXPECT_EQ((TensorType{1, std::vector<int64_t>{4, 5}}.element_count()), 20);
  testing::ModelBuilder b(13);
  b.input("x", {3, 6, 6, kMax, 3, 4}).output("y", {3, 6, 6, kMax, 3, 4});
  b.node("Neg", {"x"}, {"y"}, "n");
  auto g = load_model_proto(b.proto(), "huge.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("over 2^48"), std::string::npos) << g.status().message();
  // Beside a 0 the count is 0, yet LibTorch's storage size overflows on the other
  // dimensions and throws (fuzz_loader under ASan): refused by the dimension.
  testing::ModelBuilder z(13);
  z.input("x", {1, kMax, 3, 0}).output("y", {1, kMax, 3, 0});
  z.node("Neg", {"x"}, {"y"}, "n");
  auto gz = load_model_proto(z.proto(), "huge_zero.onnx");
  ASSERT_FALSE(gz.ok());
  EXPECT_NE(gz.status().message().find("over 2^48"), std::string::npos) << gz.status().message();
  testing::ModelBuilder c(13);
  c.input("x", {int64_t{1} << 40, 1024}).output("y", {int64_t{1} << 40, 1024});
  c.node("Neg", {"x"}, {"y"}, "n");
  auto gc = load_model_proto(c.proto(), "cap.onnx");
  ASSERT_FALSE(gc.ok());
  EXPECT_NE(gc.status().message().find("over the cap"), std::string::npos) << gc.status().message();
}

// fuzz_loader: AveragePool over an input declared [0, 4, 2, 2^31, 2^31]: no element,
// so under every size cap, but its strides pass int64 and LibTorch threw out of
// random_inputs (uncaught: a deadly signal). The draw's error is a value now.
TEST(FuzzRegressions, AnInputWhoseStridesPassInt64IsAnErrorNotAThrow) {
  constexpr int64_t k = int64_t{1} << 31;
  Graph g = one_node_graph("Neg", 13, {"x"}, "y",
                           {{"x", TensorType{onnx::TensorProto::FLOAT, std::vector<int64_t>{0, 4, 2, k, k}}},
                            {"y", TensorType{onnx::TensorProto::FLOAT, std::vector<int64_t>{0, 4, 2, k, k}}}});
  auto feeds = random_inputs(g, {}, 0);
  ASSERT_FALSE(feeds.ok());
  EXPECT_NE(feeds.status().message().find("input 'x': cannot draw values of shape [0, 4, 2, 2147483648, 2147483648]"),
            std::string::npos)
      << feeds.status().message();
}

// fuzz_loader: AveragePool over an empty batch [0, 4, 1, 2^31]: its empty-window hazard
// check made a plane of 2^31 ones (17 GB, out of memory) before any cap was applied.
TEST(FuzzRegressions, AnAveragePoolHazardPlaneIsHeldToTheCap) {
  testing::ModelBuilder b(11);
  b.input("x", {0, 4, 1, int64_t{1} << 31}).output("y", {0, 4, 1, -1});
  testing::set_attr(b.node("AveragePool", {"x"}, {"y"}, "pool"), "kernel_shape", std::vector<int64_t>{1, 2});
  auto g = load_model_proto(b.proto(), "pool_plane.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto r = analyze(*g, AnalyzeOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("over the cap of 1 GiB"), std::string::npos) << r.status().message();
}

// fuzz_loader: BatchNormalization of a rank-0 x under the backward bound: the rule
// indexed x's channel axis (a SEGV). No channel axis: no rule, gradient-unbounded.
TEST(FuzzRegressions, ABatchNormOfARankZeroInputHasNoBackwardRule) {
  testing::ModelBuilder b(15);
  b.input("x", {}).output("y", {});
  for (const char* p : {"s", "bias", "mean", "var"}) b.initializer(p, at::ones({3}));
  b.node("BatchNormalization", {"x", "s", "bias", "mean", "var"}, {"y"}, "bn");
  auto g = load_model_proto(b.proto(), "bn_rank0.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  AnalyzeOptions opt;
  opt.gradients = GradientMode::kChain;
  auto r = analyze(*g, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  bool unbounded = false;
  for (const auto& f : r->findings) unbounded |= f.hazard == "gradient-unbounded";
  EXPECT_TRUE(unbounded);
}

// fuzz_soundness: test_batchnorm_example with scale [0, 0], mean 2e34 and var in
// [0, 2.7e-43]: the var gradient's rule multiplied by |scale| = 0 and claimed 0, but
// the backward pass forms g (x - mean) inv^3 first, INF in float32, and INF * 0 is NaN.
TEST(FuzzRegressions, ABatchNormVarGradientThatOverflowsBeforeTheScaleIsNotClaimed) {
  testing::ModelBuilder b(15);
  b.input("x", {2, 3, 2}).input("s", {3}).input("bias", {3}).input("mean", {3}).input("var", {3});
  b.output("y", {2, 3, 2});
  b.node("BatchNormalization", {"x", "s", "bias", "mean", "var"}, {"y"}, "bn");
  auto g = load_model_proto(b.proto(), "bn_zero_scale.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  AnalyzeOptions opt;
  opt.ranges = {{"x", {-2, 2}}, {"s", {0, 0}}, {"bias", {0, 1}}, {"mean", {2e34, 2e34}}, {"var", {0, 2.7e-43}}};
  opt.gradients = GradientMode::kChain;
  auto rep = check_soundness(*g, opt, 40, 3);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_GT(rep->backward_samples, 0);
  for (const auto& v : rep->violations) ADD_FAILURE() << v.node << " " << v.tensor << ": " << v.what;
}

// fuzz_loader: a Conv with strides [0, 2]: libonnx's convPoolShapeInference divides by
// the stride (an FPE under UBSan). Refused before inference, and so is a pool's.
TEST(FuzzRegressions, AZeroStrideOrDilationIsRefusedBeforeInference) {
  for (const char* op : {"Conv", "MaxPool"}) {
    for (const char* attr : {"strides", "dilations"}) {
      testing::ModelBuilder b(13);
      b.input("x", {1, 1, 4, 5}).output("y", {1, 1, -1, -1});
      std::vector<std::string> in{"x"};
      if (std::string(op) == "Conv") {
        b.initializer("w", at::ones({1, 1, 3, 3}));
        in.push_back("w");
      }
      auto& n = b.node(op, in, {"y"}, "window");
      testing::set_attr(n, "kernel_shape", std::vector<int64_t>{3, 3});
      testing::set_attr(n, attr, std::vector<int64_t>{0, 2});
      auto g = load_model_proto(b.proto(), "zero_step.onnx");
      ASSERT_FALSE(g.ok()) << op << " " << attr;
      EXPECT_NE(g.status().message().find(std::string(attr) + " must be positive, got 0"), std::string::npos)
          << g.status().message();
    }
  }
}

// fuzz_loader: ConvTranspose(W, X) with a rank-0 second input crashed libonnx 1.12's
// shape inference (SEGV); the ranks the spec requires equal are checked first.
TEST(FuzzRegressions, ConvWithMismatchedRanksIsAnError) {
  testing::ModelBuilder b(11);
  b.input("W", {2, 2, 3, 0}).input("X", {}).output("Y", {-1});
  b.node("ConvTranspose", {"W", "X"}, {"Y"}, "ct");
  auto g = load_model_proto(b.proto(), "convt.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("rank"), std::string::npos) << g.status().message();
  // ConvInteger shares the inference: x of rank 3 beside w of rank 4 was a SEGV too.
  testing::ModelBuilder ci(10);
  ci.input("x", {1, 3, 0}, onnx::TensorProto::UINT8).input("w", {1, 0, 2, 0}, onnx::TensorProto::UINT8);
  ci.output("y", {-1}, onnx::TensorProto::INT32);
  ci.node("ConvInteger", {"x", "w"}, {"y"}, "ci");
  auto gi = load_model_proto(ci.proto(), "convinteger.onnx");
  ASSERT_FALSE(gi.ok());
  EXPECT_NE(gi.status().message().find("rank 3 and weight of rank 4"), std::string::npos) << gi.status().message();
}

// fuzz_loader (under ASan): LayerNormalization with axis -536870913 on a declared
// rank-2 input crashed libonnx 1.12's shape inference (SEGV); an axis outside the
// input's rank is an error first. Flatten's axis may equal the rank.
TEST(FuzzRegressions, AnAxisOutsideTheInputsRankIsAnError) {
  auto load = [](const char* op, int64_t axis, int64_t opset) {
    testing::ModelBuilder b(opset);
    b.input("X", {3, 4}).output("Y", {-1, -1});
    std::vector<std::string> ins{"X"};
    if (std::string(op) == "LayerNormalization") {
      b.initializer("S", at::ones({4}));
      ins.push_back("S");
    }
    testing::set_attr(b.node(op, ins, {"Y"}, "n"), "axis", axis);
    return load_model_proto(b.proto(), "axis.onnx");
  };
  auto bad = load("LayerNormalization", -536870913, 17);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("axis -536870913 is outside [-2, 1]"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(load("Softmax", 2, 13).ok());
  EXPECT_TRUE(load("Softmax", -2, 13).ok());
  EXPECT_TRUE(load("Flatten", 2, 13).ok());
  EXPECT_FALSE(load("Flatten", 3, 13).ok());
}

// fuzz_loader (under ASan): LayerNormalization on a rank-0 input with its default
// axis -1, and GatherND with indices declared [3, -1], crashed libonnx's inference
// (SEGV): the default axis is checked too, and a negative dimension is an error.
TEST(FuzzRegressions, DefaultAxesAndNegativeDimensionsAreCheckedBeforeInference) {
  testing::ModelBuilder ln(17);
  ln.input("X", {}).input("W", {}).output("Y", {});
  ln.node("LayerNormalization", {"X", "W"}, {"Y"}, "n");
  auto a = load_model_proto(ln.proto(), "ln.onnx");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("axis -1 is outside"), std::string::npos) << a.status().message();
  testing::ModelBuilder gn(13);
  gn.input("data", {2, 2}).input("indices", {3, -1}, onnx::TensorProto::INT64).output("y", {-1});
  gn.node("GatherND", {"data", "indices"}, {"y"}, "n");
  auto g = load_model_proto(gn.proto(), "gathernd.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("declares dimension -1"), std::string::npos) << g.status().message();
  // Softmax before opset 13 flattens at its axis: axis == rank is valid there.
  testing::ModelBuilder sm(11);
  sm.input("x", {3}).output("y", {3});
  testing::set_attr(sm.node("Softmax", {"x"}, {"y"}, "s"), "axis", int64_t{1});
  EXPECT_TRUE(load_model_proto(sm.proto(), "softmax.onnx").ok());
}

// fuzz_loader: test_convtranspose_autopad_same with a graph output named W of rank 0
// beside the input W of rank 4: inference merged the two and crashed (SEGV).
TEST(FuzzRegressions, ConflictingDeclaredRanksAreAnError) {
  testing::ModelBuilder b(11);
  b.input("X", {1, 1, 3, 3}).input("W", {1, 2, 3, 3}).output("W", {}).output("Y", {-1, -1, -1, -1});
  b.node("ConvTranspose", {"X", "W"}, {"Y"}, "ct");
  auto g = load_model_proto(b.proto(), "convt_w.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("declared with ranks"), std::string::npos) << g.status().message();
}

// fuzz_loader: Expand(data, new_shape) with new_shape declared of 2^40 elements: libonnx
// built an output shape of 2^40 dimensions (16 GB) before our size cap was checked.
TEST(FuzzRegressions, DeclaredInputsOverTheCapAreRefusedBeforeInference) {
  testing::ModelBuilder b(13);
  b.input("data", {3, 1}).input("new_shape", {int64_t{1} << 40}, onnx::TensorProto::INT64).output("y", {-1});
  b.node("Expand", {"data", "new_shape"}, {"y"}, "e");
  auto g = load_model_proto(b.proto(), "expand.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("over the cap"), std::string::npos) << g.status().message();
  // The same shape input declared as strings (no fixed element size) was let through
  // and took inference past 4 GB (found by fuzz_loader's smoke run): a byte an element.
  testing::ModelBuilder s(13);
  s.input("data", {3, 1}).input("new_shape", {int64_t{1} << 40}, onnx::TensorProto::STRING).output("y", {-1});
  s.node("Expand", {"data", "new_shape"}, {"y"}, "e");
  auto gs = load_model_proto(s.proto(), "expand-strings.onnx");
  ASSERT_FALSE(gs.ok());
  EXPECT_NE(gs.status().message().find("over the cap"), std::string::npos) << gs.status().message();
}

// fuzz_loader: GridSample with a grid of rank < 4 read grid.shape[1], [2] out of
// bounds in its transfer function (SEGV in the analyzer).
TEST(FuzzRegressions, GridSampleWithALowRankGridFailsCleanly) {
  Graph g = one_node_graph("GridSample", 16, {"x", "grid"}, "y",
                           {{"x", {onnx::TensorProto::FLOAT, std::vector<int64_t>{1, 1, 2, 2}}},
                            {"grid", {onnx::TensorProto::FLOAT, std::vector<int64_t>{1, 2}}},
                            {"y", {onnx::TensorProto::FLOAT, std::nullopt}}});
  AnalyzeOptions opt;
  auto r = analyze(g, opt);  // an error or an unsupported op, never a crash
  if (r.ok()) EXPECT_TRUE(r->intervals.count("y") == 0 || !r->unsupported.empty() || !r->findings.empty());
}

// fuzz_loader: a Cast of a rank-0 input to an unknown type (20) with its output declared
// float16 [3, 4]. The Cast is unsupported, its output takes the declared shape, and
// the backward bound (a half model) got a [3, 4] bound for the rank-0 input: expand
// threw out of analyze. The bound is now fitted by its sum, and analyze returns.
TEST(FuzzRegressions, ABackwardBoundOfAnotherShapeThanItsInputIsFitted) {
  Graph g = one_node_graph("Cast", 13, {"x"}, "y",
                           {{"x", {onnx::TensorProto::FLOAT, std::vector<int64_t>{}}},
                            {"y", {onnx::TensorProto::FLOAT16, std::vector<int64_t>{3, 4}}}});
  onnx::AttributeProto to;
  to.set_name("to");
  to.set_type(onnx::AttributeProto::INT);
  to.set_i(20);
  g.nodes[0].attributes["to"] = to;
  auto r = analyze(g, AnalyzeOptions{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->unsupported, std::vector<std::string>{"Cast"});
}

// fuzz_loader: ReduceProd over axis 0 of a 0-d input read the input's dimension 0,
// past the end of its empty shape (SEGV). ONNX allows no axis on a scalar: the
// analysis refuses it (an unsupported node), and the run fails cleanly.
TEST(FuzzRegressions, AReductionOfAScalarOverAnAxisIsRefused) {
  testing::ModelBuilder b(13);
  b.input("x", {}).output("y", {});
  onnx::NodeProto& prod = b.node("ReduceProd", {"x"}, {"y"}, "prod");
  testing::set_attr(prod, "axes", std::vector<int64_t>{0});
  testing::set_attr(prod, "keepdims", int64_t{0});
  Graph g = load_built(b);
  auto r = analyze(g, AnalyzeOptions{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->unsupported, std::vector<std::string>{"ReduceProd"});
  auto ex = Executor::create(g, ExecOptions{});
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  EXPECT_FALSE(ex->run({{"x", at::full({}, 2.5f)}}).ok());
}

}  // namespace
}  // namespace nanguard
