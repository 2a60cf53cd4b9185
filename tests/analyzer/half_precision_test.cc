// Half precision: a float16 product past 65504 is an overflow finding (float32's limit
// would call it safe); forward values are rounded onto the type's grid, so a softmax
// that underflows only in float16 makes its Log a finding; gradients have their tensor's
// type, so 1/x overflows float16 from x < 1/65504; the executor runs such models on CPU
// (float32 compute, each result rounded to its type, forward and backward), and
// sampled runs stay inside the bounds.
#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

testing::ModelBuilder square_model(int32_t type) {
  testing::ModelBuilder b(13);
  b.input("x", {2, 4}, type).output("y", {2, 4}, type);
  b.node("Mul", {"x", "x"}, {"sq"}, "square");
  b.node("Clip", {"sq"}, {"y"}, "clip");  // clamp has no float16 CPU kernel in ATen
  return b;
}

TEST(HalfPrecision, Float16OverflowIsFoundAndTheRestIsProved) {
  testing::ModelBuilder b = square_model(onnx::TensorProto::FLOAT16);
  using Names = std::vector<std::string>;
  EXPECT_EQ(testing::summary(testing::findings_of(b, testing::ranges_of({{"x", {-300, 300}}}))),
            (Names{"square:overflow"}));
  // 255^2 = 65025 rounds to 65024: no overflow, and the float16 model is proved.
  EXPECT_TRUE(testing::findings_of(b, testing::ranges_of({{"x", {-255, 255}}})).empty());
  EXPECT_EQ(testing::summary(testing::findings_of(b, testing::ranges_of({{"x", {-256, 256}}}))),
            (Names{"square:overflow"}));
  testing::ModelBuilder f = square_model(onnx::TensorProto::FLOAT);
  EXPECT_TRUE(testing::findings_of(f, testing::ranges_of({{"x", {-300, 300}}})).empty());  // float32 is modelled
}

TEST(HalfPrecision, BFloat16KeepsFloat32Range) {
  testing::ModelBuilder b = square_model(onnx::TensorProto::BFLOAT16);
  EXPECT_TRUE(testing::findings_of(b, testing::ranges_of({{"x", {-300, 300}}})).empty());
}

testing::ModelBuilder log_softmax_model(int32_t type) {
  testing::ModelBuilder b(13);
  b.input("x", {1, 2}, type).output("y", {1, 2}, type);
  b.node("Softmax", {"x"}, {"p"}, "softmax");
  b.node("Log", {"p"}, {"y"}, "log");
  return b;
}

std::vector<std::string> forward_hazards(const AnalysisResult& r) {
  std::vector<std::string> out;
  for (const Finding& f : r.findings)
    if (f.kind == HazardKind::kForward) out.push_back(f.node + ":" + f.hazard);
  return out;
}

// x in [-10, 10]^2: the least softmax entry is exp(-20) / (1 + exp(-20)) = 2.1e-9, a
// float32 value but under half of float16's least subnormal (5.96e-8): it rounds to 0
// and the Log gives -inf. Float32 proves the Log; float16 must flag it, and a run in
// float16 gives the -inf. With x in [-5, 5] (least entry 4.5e-5) float16 is safe too.
TEST(HalfPrecision, Float16SoftmaxUnderflowFlagsTheLog) {
  using Names = std::vector<std::string>;
  testing::ModelBuilder f32 = log_softmax_model(onnx::TensorProto::FLOAT);
  EXPECT_TRUE(testing::findings_of(f32, testing::ranges_of({{"x", {-10, 10}}})).empty());
  testing::ModelBuilder f16 = log_softmax_model(onnx::TensorProto::FLOAT16);
  AnalysisResult wide = testing::analyze_built(f16, testing::ranges_of({{"x", {-10, 10}}}));
  EXPECT_EQ(forward_hazards(wide), (Names{"log:log-nonpositive"}));
  EXPECT_EQ(wide.intervals.at("p").min(), 0.0);
  AnalysisResult narrow = testing::analyze_built(f16, testing::ranges_of({{"x", {-5, 5}}}));
  EXPECT_TRUE(forward_hazards(narrow).empty());
  EXPECT_GT(narrow.intervals.at("p").min(), 0.0);
  EXPECT_TRUE(narrow.findings.empty());  // 4.5e-5 > 1/65504: the gradient 1/p is finite too
  at::Tensor x = at::tensor({-10.f, 10.f}).reshape({1, 2}).to(at::kHalf);
  at::Tensor y = testing::run_output(f16, {{"x", x}}).to(at::kFloat);
  EXPECT_TRUE(std::isinf(y[0][0].item<float>())) << y;
}

// With x in [-6, 6]^2 the least entry is 6.1e-6: a float16 subnormal, so the Log is
// finite, but its gradient 1/p = 1.6e5 passes 65504. Float32 proves both; float16
// flags the gradient, and a backward pass of the float16 model gives a NaN/INF
// gradient where float32's stays finite. At [-5.5, 5.5] (1.67e-5) both are safe.
TEST(HalfPrecision, Float16LogGradientOverflowsBelowOneOver65504) {
  using Names = std::vector<std::string>;
  testing::ModelBuilder f32 = log_softmax_model(onnx::TensorProto::FLOAT);
  EXPECT_TRUE(testing::findings_of(f32, testing::ranges_of({{"x", {-6, 6}}})).empty());
  testing::ModelBuilder f16 = log_softmax_model(onnx::TensorProto::FLOAT16);
  std::vector<Finding> fs = testing::findings_of(f16, testing::ranges_of({{"x", {-6, 6}}}));
  EXPECT_EQ(testing::summary(fs), (Names{"log:log-gradient-overflow"}));
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].kind, HazardKind::kGradient);
  EXPECT_EQ(fs[0].condition, "0 < x < 1.53e-05");
  EXPECT_TRUE(testing::findings_of(f16, testing::ranges_of({{"x", {-5.5, 5.5}}})).empty());
  for (auto [type, finite] : {std::pair{at::kHalf, false}, std::pair{at::kFloat, true}}) {
    at::Tensor x = at::tensor({-6.f, 6.f}).reshape({1, 2}).to(type).requires_grad_();
    testing::ModelBuilder& b = type == at::kHalf ? f16 : f32;
    auto r = testing::run_model(b, {{"x", x}});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(std::isfinite(r->outputs[0].to(at::kFloat)[0][0].item<float>()));
    r->outputs[0].to(at::kFloat).sum().backward();
    ASSERT_TRUE(x.grad().defined());
    EXPECT_EQ(x.grad().isfinite().all().item<bool>(), finite) << x.grad();
  }
}

// Bounds rounded outward onto the grid contain every sampled float16 and bfloat16 run
// of a chain that rounds at every step (products, sums, exp, division, sqrt).
TEST(HalfPrecision, SampledHalfRunsStayInsideTheRoundedBounds) {
  for (int32_t type : {onnx::TensorProto::FLOAT16, onnx::TensorProto::BFLOAT16}) {
    testing::ModelBuilder b(13);
    b.input("x", {2, 8}, type).input("z", {2, 8}, type).output("y", {2, 8}, type);
    b.node("Mul", {"x", "z"}, {"m"});
    b.node("Add", {"m", "x"}, {"s"});
    b.node("Exp", {"s"}, {"e"});
    b.node("Mul", {"x", "x"}, {"sq"});
    b.node("Sqrt", {"sq"}, {"r"});
    b.node("Add", {"e", "r"}, {"d"});
    b.node("Div", {"s", "d"}, {"y"});
    testing::SoundTally tally;
    EXPECT_GT(testing::expect_sound(b, testing::ranges_of({{"x", {-3.1, 2.7}}, {"z", {0.3, 1.9}}}), "half chain", &tally, 200),
              0);
  }
}

// A free float16 weight's range (its values widened by their span) lies on the
// float16 grid, inside the widened range: no half weight holds a value between grid
// points, and a draw at a non-grid end would round outside the analysed box.
TEST(HalfPrecision, AFreeHalfWeightRangeLiesOnItsGrid) {
  testing::ModelBuilder b(13);
  b.input("x", {1, 2}, onnx::TensorProto::FLOAT16).output("y", {1, 2}, onnx::TensorProto::FLOAT16);
  b.initializer("w", at::tensor({0.1f, 0.3f}).reshape({1, 2}).to(at::kHalf));
  b.node("Mul", {"x", "w"}, {"y"}, "mul");
  auto g = load_model_proto(b.proto(), "half_free.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  AnalyzeOptions opt = testing::ranges_of({{"x", {-1, 1}}});
  opt.weights = WeightMode::kFree;
  auto init = initial_intervals(*g, opt);
  ASSERT_TRUE(init.ok());
  double lo = init->at("w").min(), hi = init->at("w").max();
  auto on_grid = [](double v) { return at::full({}, v, at::kDouble).to(at::kHalf).to(at::kDouble).item<double>() == v; };
  EXPECT_TRUE(on_grid(lo)) << lo;
  EXPECT_TRUE(on_grid(hi)) << hi;
  double w0 = at::tensor(0.1f).to(at::kHalf).item<double>(), w1 = at::tensor(0.3f).to(at::kHalf).item<double>();
  EXPECT_GE(lo, w0 - (w1 - w0));
  EXPECT_LE(hi, w1 + (w1 - w0));
  EXPECT_GT(hi - lo, 2.9 * (w1 - w0));
}

TEST(HalfPrecision, Float16RunsOnCpuAndOverflowsWhereTheTypeDoes) {
  testing::ModelBuilder b = square_model(onnx::TensorProto::FLOAT16);
  at::Tensor x = at::tensor({1.f, 255.f, 256.f, 300.f, -300.f, 0.5f, 2.f, 3.f}).reshape({2, 4}).to(at::kHalf);
  at::Tensor y = testing::run_output(b, {{"x", x}});
  EXPECT_EQ(y.scalar_type(), at::kHalf);
  at::Tensor f = y.to(at::kFloat).flatten();
  EXPECT_EQ(f[1].item<float>(), 65024.f);  // 255^2 = 65025 rounds to the float16 65024
  EXPECT_TRUE(std::isinf(f[2].item<float>()));  // 65536 > 65504
  EXPECT_TRUE(std::isinf(f[3].item<float>()));
  EXPECT_EQ(f[5].item<float>(), 0.25f);
}

}  // namespace
}  // namespace nanguard
