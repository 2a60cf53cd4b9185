// The backward bound of half-precision models: a weight's gradient is a sum over the
// batch, so y = x @ w in float16 with x in [0, 300] over 300 rows gives w a gradient up
// to 90000 although y stays under 600; at x in [0, 200] (60000) it is finite, and
// proved. Sampled backward passes stay inside the bounds, and an op without a rule
// leaves the half gradients before it unproved.
#include <gtest/gtest.h>

#include "analyzer/gradient_bounds.h"
#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

testing::ModelBuilder linear_model(int32_t type, int64_t rows) {
  testing::ModelBuilder b(13);
  b.input("x", {rows, 2}, type).input("w", {2, 3}, type).output("y", {rows, 3}, type);
  b.node("MatMul", {"x", "w"}, {"y"}, "matmul");
  return b;
}

AnalyzeOptions linear_ranges(double x_hi) { return testing::ranges_of({{"x", {0, x_hi}}, {"w", {-1, 1}}}); }

// The backward bound of a built model under `opt` (empty, with a failure, when it does
// not load or analyse).
GradientBounds bounds_of(testing::ModelBuilder& b, const AnalyzeOptions& opt) {
  auto g = load_model_proto(b.proto(), "gradient_bounds.onnx");
  if (!g.ok()) return ADD_FAILURE() << g.status().message(), GradientBounds{};
  auto a = analyze(*g, opt);
  if (!a.ok()) return ADD_FAILURE() << a.status().message(), GradientBounds{};
  return bound_gradients(*g, *a, opt);
}

// Sampled runs, a backward pass each, inside the bounds and covered by the findings.
void expect_backward_sound(testing::ModelBuilder& b, const AnalyzeOptions& opt, const std::string& what,
                           int64_t samples) {
  testing::SoundTally tally;
  EXPECT_GT(testing::expect_sound(b, opt, what, &tally, samples), 0);
  EXPECT_EQ(tally.violations, 0) << what;
}

TEST(GradientBounds, AFloat16WeightGradientSummedOverTheBatchOverflows) {
  testing::ModelBuilder f16 = linear_model(onnx::TensorProto::FLOAT16, 300);
  std::vector<Finding> fs = testing::findings_of(f16, linear_ranges(300));
  ASSERT_EQ(testing::summary(fs), std::vector<std::string>{"matmul:gradient-overflow"});
  EXPECT_EQ(fs[0].kind, HazardKind::kGradient);
  EXPECT_NE(fs[0].condition.find("the gradient of w may reach 9"), std::string::npos) << fs[0].condition;
  EXPECT_TRUE(testing::findings_of(f16, linear_ranges(200)).empty());
  testing::ModelBuilder f32 = linear_model(onnx::TensorProto::FLOAT, 300);
  EXPECT_TRUE(testing::findings_of(f32, linear_ranges(300)).empty());
  // The real backward pass in float16: w's gradient is 300 * 300 = 90000, INF.
  at::Tensor x = at::full({300, 2}, 300.f).to(at::kHalf), w = at::full({2, 3}, 0.5f).to(at::kHalf).requires_grad_();
  auto r = testing::run_model(f16, {{"x", x}, {"w", w}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->outputs[0].isfinite().all().item<bool>());
  r->outputs[0].to(at::kFloat).sum().backward();
  EXPECT_TRUE(w.grad().isinf().all().item<bool>()) << w.grad();
}

// The bound itself: w's gradient is the column sum of |x|, x's the row sum of |w|.
TEST(GradientBounds, MatMulBoundsAreTheSumsOfTheOtherOperandsMagnitudes) {
  testing::ModelBuilder b = linear_model(onnx::TensorProto::FLOAT16, 4);
  AnalyzeOptions opt = testing::ranges_of({{"x", {-3, 2}}, {"w", {-1, 0.5}}});
  GradientBounds gb = bounds_of(b, opt);
  double slack = 1 + std::ldexp(1.0, -10);
  EXPECT_NEAR(gb.bound.at("w").max().item<double>(), 4 * 3 * slack, 1e-9);
  EXPECT_NEAR(gb.bound.at("x").max().item<double>(), 3 * 1 * slack, 1e-9);
  EXPECT_NEAR(gb.bound.at("y").max().item<double>(), 1, 0);
}

// ThresholdedRelu has no backward rule: the float16 gradients before it are not
// proved, and say so at the op.
TEST(GradientBounds, AnOpWithoutARuleLeavesTheHalfGradientsBeforeItUnproved) {
  testing::ModelBuilder b(17);
  b.input("x", {2, 4}, onnx::TensorProto::FLOAT16).output("y", {2, 4}, onnx::TensorProto::FLOAT16);
  b.node("Mul", {"x", "x"}, {"m"}, "square");
  b.node("ThresholdedRelu", {"m"}, {"y"}, "act");
  std::vector<Finding> fs = testing::findings_of(b, testing::ranges_of({{"x", {-1, 1}}}));
  ASSERT_EQ(testing::summary(fs), std::vector<std::string>{"act:gradient-unbounded"});
  EXPECT_NE(fs[0].condition.find("ThresholdedRelu has no backward bound"), std::string::npos) << fs[0].condition;
}

// y = 100 * (x @ w) in float16 over 8 rows (a loss gradient of 1 at each element of
// y, as the soundness run takes the sum of the outputs): w's gradient is 100 * sum(x), 48000
// at x in [0, 60] (proved; sampled backward passes, corners included, stay finite)
// and 72000 at [0, 90] (flagged; the corner x = 90 makes it INF, covered by the finding).
TEST(GradientBounds, SampledHalfBackwardPassesAreCovered) {
  testing::ModelBuilder b(13);
  b.input("x", {8, 4}, onnx::TensorProto::FLOAT16).input("w", {4, 3}, onnx::TensorProto::FLOAT16);
  b.output("y", {8, 3}, onnx::TensorProto::FLOAT16);
  b.initializer("k", at::full({1}, 100.f).to(at::kHalf));
  b.node("MatMul", {"x", "w"}, {"h"}, "matmul");
  b.node("Mul", {"h", "k"}, {"y"}, "scale");
  auto at_most = [](double hi) { return testing::ranges_of({{"x", {0, hi}}, {"w", {-1, 1}}}); };
  EXPECT_TRUE(testing::findings_of(b, at_most(60)).empty());
  EXPECT_EQ(testing::summary(testing::findings_of(b, at_most(90))), std::vector<std::string>{"matmul:gradient-overflow"});
  testing::SoundTally tally;
  EXPECT_GT(testing::expect_sound(b, at_most(60), "half backward, proved", &tally, 40), 0);
  EXPECT_GT(testing::expect_sound(b, at_most(90), "half backward, flagged", &tally, 40), 0);
  EXPECT_EQ(tally.violations, 0);
  at::Tensor x = at::full({8, 4}, 90.f).to(at::kHalf), w = at::full({4, 3}, 1.f).to(at::kHalf).requires_grad_();
  auto r = testing::run_model(b, {{"x", x}, {"w", w}});
  ASSERT_TRUE(r.ok());
  r->outputs[0].to(at::kFloat).sum().backward();
  EXPECT_TRUE(w.grad().isinf().all().item<bool>()) << w.grad();
}

// A float16 classifier's loss: NegativeLogLikelihoodLoss over log_softmax has a
// backward rule (the input's gradient is w[t] / total at the target), so the logits'
// gradients are bounded and the model is proved; sampled backward passes agree.
TEST(GradientBounds, AFloat16NllLossOverLogSoftmaxIsProved) {
  testing::ModelBuilder b(13);
  b.input("x", {4, 3}, onnx::TensorProto::FLOAT16).input("t", {4}, onnx::TensorProto::INT64);
  b.output("loss", {}, onnx::TensorProto::FLOAT16);
  b.node("LogSoftmax", {"x"}, {"lp"}, "log_softmax");
  b.node("NegativeLogLikelihoodLoss", {"lp", "t"}, {"loss"}, "nll");
  AnalyzeOptions opt = testing::ranges_of({{"x", {-20, 20}}, {"t", {0, 2}}});
  EXPECT_TRUE(testing::findings_of(b, opt).empty());
  GradientBounds gb = bounds_of(b, opt);
  EXPECT_LE(gb.bound.at("lp").max().item<double>(), 0.25 * 1.01);  // 1 / 4 elements
  expect_backward_sound(b, opt, "half nll", 30);
}

// Float32 gradients are checked op by op by default, each with an output gradient of 1;
// --gradients chain bounds them through the graph. y = 1000 * (x @ w) over 64 rows of x
// in [0, 1e34]: y stays under 4e37 and w's local gradient (the column sums of x) under
// 6.4e35, but the scale makes the real one 6.4e38, INF. Only the chain flags it, and
// sampled backward passes are then covered.
TEST(GradientBounds, TheChainFlagsAFloat32WeightGradientScaledByALaterOp) {
  testing::ModelBuilder b(13);
  b.input("x", {64, 4}).input("w", {4, 3}).output("y", {64, 3});
  b.initializer("k", at::full({1}, 1000.f));
  b.node("MatMul", {"x", "w"}, {"h"}, "matmul");
  b.node("Mul", {"h", "k"}, {"y"}, "scale");
  AnalyzeOptions opt = testing::ranges_of({{"x", {0, 1e34}}, {"w", {-1, 1}}});
  EXPECT_TRUE(testing::findings_of(b, opt).empty());
  opt.gradients = GradientMode::kChain;
  EXPECT_EQ(testing::summary(testing::findings_of(b, opt)), std::vector<std::string>{"matmul:gradient-overflow"});
  expect_backward_sound(b, opt, "float32 chain", 20);
  at::Tensor x = at::full({64, 4}, 1e34f), w = at::full({4, 3}, 0.25f).requires_grad_();
  auto r = testing::run_model(b, {{"x", x}, {"w", w}});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->outputs[0].isfinite().all().item<bool>());
  r->outputs[0].sum().backward();
  EXPECT_TRUE(w.grad().isinf().all().item<bool>()) << w.grad();
}

// Under the chain, an op without a backward rule leaves float32 gradients unproved too.
TEST(GradientBounds, TheChainReportsAFloat32OpWithoutARule) {
  testing::ModelBuilder b(17);
  b.input("x", {2, 4}).output("y", {2, 4});
  b.node("Mul", {"x", "x"}, {"m"}, "square");
  b.node("ThresholdedRelu", {"m"}, {"y"}, "act");
  AnalyzeOptions opt = testing::ranges_of({{"x", {-1, 1}}});
  EXPECT_TRUE(testing::findings_of(b, opt).empty());
  opt.gradients = GradientMode::kChain;
  EXPECT_EQ(testing::summary(testing::findings_of(b, opt)), std::vector<std::string>{"act:gradient-unbounded"});
  opt.gradients = GradientMode::kLocal;
  testing::ModelBuilder h(17);
  h.input("x", {2, 4}, onnx::TensorProto::FLOAT16).output("y", {2, 4}, onnx::TensorProto::FLOAT16);
  h.node("ThresholdedRelu", {"x"}, {"y"}, "act");
  EXPECT_TRUE(testing::findings_of(h, opt).empty());  // local: as a float32 model is checked
}

// LayerNormalization's rule: |dx| <= (U + mean U + sqrt(N) rms U) / sqrt(eps) with U =
// |scale| G, the scale's gradient sqrt(N) times the rows' sum of G. A float16
// transformer-style block, LN then a projection, is proved under its backward bound,
// and sampled backward passes stay inside it.
TEST(GradientBounds, ALayerNormalizationBoundsTheGradientsBeforeIt) {
  testing::ModelBuilder b(17);
  b.input("x", {4, 8}, onnx::TensorProto::FLOAT16).output("y", {4, 3}, onnx::TensorProto::FLOAT16);
  b.initializer("s", at::full({8}, 0.5f).to(at::kHalf));
  b.initializer("bias", at::zeros({8}).to(at::kHalf));
  b.initializer("w", (at::rand({8, 3}) - 0.5).to(at::kHalf));
  b.node("LayerNormalization", {"x", "s", "bias"}, {"h"}, "ln");
  b.node("MatMul", {"h", "w"}, {"y"}, "proj");
  AnalyzeOptions opt = testing::ranges_of({{"x", {-4, 4}}});
  EXPECT_TRUE(testing::findings_of(b, opt).empty());
  GradientBounds gb = bounds_of(b, opt);
  // G at h is at most sum_k |w_jk| <= 1.5; U <= 0.75: dx <= 0.75 (2 + sqrt(8)) / sqrt(1e-5).
  double dx = gb.bound.at("x").max().item<double>();
  EXPECT_GT(dx, 0);
  EXPECT_LE(dx, 0.75 * (2 + std::sqrt(8.0)) / std::sqrt(1e-5) * 1.01);
  expect_backward_sound(b, opt, "half layer norm", 40);
}

// Scaled past 1e30 after the LN, the float32 intermediates of its backward pass (the
// variance's gradient, up to sqrt(N) ||U|| / eps) pass FLT_MAX: the chain flags it, and
// sampled backward passes, corners included, are covered.
TEST(GradientBounds, ALayerNormalizationWhoseBackwardIntermediatesOverflowIsFlagged) {
  testing::ModelBuilder b(17);
  b.input("x", {2, 8}).output("y", {2, 8});
  b.initializer("s", at::ones({8}));
  b.initializer("k", at::full({1}, 1e36f));
  b.node("LayerNormalization", {"x", "s"}, {"h"}, "ln");
  b.node("Mul", {"h", "k"}, {"y"}, "scale");
  AnalyzeOptions opt = testing::ranges_of({{"x", {-1e3, 1e3}}});
  opt.gradients = GradientMode::kChain;
  std::vector<Finding> fs = testing::findings_of(b, opt);
  ASSERT_FALSE(fs.empty());
  EXPECT_EQ(fs[0].node, "ln");
  expect_backward_sound(b, opt, "float32 layer norm, scaled", 40);
}

// SoftmaxCrossEntropyLoss: the scores' gradient is (softmax - onehot) w[t] / total, each
// entry in [-1, 1] times NLL's factor; a float16 classifier's head is proved.
TEST(GradientBounds, AFloat16SoftmaxCrossEntropyLossIsProved) {
  testing::ModelBuilder b(13);
  b.input("x", {4, 3}, onnx::TensorProto::FLOAT16).input("t", {4}, onnx::TensorProto::INT64);
  b.output("loss", {}, onnx::TensorProto::FLOAT16);
  b.node("SoftmaxCrossEntropyLoss", {"x", "t"}, {"loss"}, "sce");
  AnalyzeOptions opt = testing::ranges_of({{"x", {-20, 20}}, {"t", {0, 2}}});
  EXPECT_TRUE(testing::findings_of(b, opt).empty());
  EXPECT_LE(bounds_of(b, opt).bound.at("x").max().item<double>(), 0.25 * 1.01);  // 1 / 4 rows
  expect_backward_sound(b, opt, "half sce", 30);
}

// A gather whose indices are a range (an embedding lookup of ranged token ids): every
// output element may pick the same row, so each input element's bound is the output
// bound's sum, 3 x 4 here; a scatter's data keeps the output's bound and each update
// takes its largest. Both are proved in float16, and sampled backward passes agree.
TEST(GradientBounds, GathersAndScattersOverRangedIndicesRouteTheOutputBound) {
  testing::ModelBuilder b(13);
  b.input("table", {8, 4}, onnx::TensorProto::FLOAT16).input("ids", {3}, onnx::TensorProto::INT64);
  b.input("updates", {3, 4}, onnx::TensorProto::FLOAT16);
  b.output("y", {8, 4}, onnx::TensorProto::FLOAT16);
  b.initializer("axis1", at::tensor({int64_t{1}}));
  b.node("Gather", {"table", "ids"}, {"rows"}, "lookup");
  b.node("Unsqueeze", {"ids", "axis1"}, {"where"}, "where");
  b.node("ScatterND", {"table", "where", "rows"}, {"y"}, "put_back");
  AnalyzeOptions opt = testing::ranges_of({{"table", {-2, 2}}, {"ids", {0, 7}}, {"updates", {-1, 1}}});
  EXPECT_TRUE(testing::findings_of(b, opt).empty());
  GradientBounds gb = bounds_of(b, opt);
  double slack = 1 + std::ldexp(1.0, -10);
  EXPECT_NEAR(gb.bound.at("rows").max().item<double>(), slack, 1e-9);  // one output element each
  // table: the scatter's data bound, plus the gather's sum over its 12 outputs (Gather rounds nothing).
  EXPECT_NEAR(gb.bound.at("table").max().item<double>(), 13 * slack, 1e-6);
  expect_backward_sound(b, opt, "half gather/scatter", 30);
}

// GridSample (bilinear): a pixel's gradient is at most its plane's sum of the output
// bound (2 x 3 outputs here), the grid's W max|x| (H for y) per channel. A float16
// sampler over x in [-100, 100] is proved, one over [-3e4, 3e4] has grid gradients up to
// 4 x 3e4 past 65504: flagged. Sampled backward passes agree with both.
TEST(GradientBounds, AGridSampleBoundsItsInputAndGridGradients) {
  testing::ModelBuilder b(16);
  b.input("x", {1, 1, 3, 4}, onnx::TensorProto::FLOAT16).input("grid", {1, 2, 3, 2}, onnx::TensorProto::FLOAT16);
  b.output("y", {1, 1, 2, 3}, onnx::TensorProto::FLOAT16);
  b.node("GridSample", {"x", "grid"}, {"y"}, "sample");
  auto within = [](double x) { return testing::ranges_of({{"x", {-x, x}}, {"grid", {-1, 1}}}); };
  EXPECT_TRUE(testing::findings_of(b, within(100)).empty());
  AnalyzeOptions opt = within(100);
  GradientBounds gb = bounds_of(b, opt);
  EXPECT_NEAR(gb.bound.at("x").max().item<double>(), 6 * 1.001 * (1 + std::ldexp(1.0, -10)), 1e-6);
  EXPECT_NEAR(gb.bound.at("grid").max().item<double>(), 4 * 100 * 1.001 * (1 + std::ldexp(1.0, -10)), 1e-3);
  EXPECT_EQ(testing::summary(testing::findings_of(b, within(3e4))), std::vector<std::string>{"sample:gradient-overflow"});
  testing::SoundTally tally;
  EXPECT_GT(testing::expect_sound(b, within(100), "half grid sample", &tally, 30), 0);
  EXPECT_GT(testing::expect_sound(b, within(3e4), "half grid sample, flagged", &tally, 30), 0);
  EXPECT_EQ(tally.violations, 0);
}

}  // namespace
}  // namespace nanguard
