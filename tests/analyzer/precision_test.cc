// --precision: a float32 model analysed and run as after model.half() or under
// torch.autocast. The rounding to the 16-bit types is exact (ties to even); a float32
// model that is proved in float32 overflows in float16; autocast runs the MatMul in
// float16 and the softmax in float32, so the Log that float16 breaks stays safe.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "model/precision.h"
#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using Names = std::vector<std::string>;

TEST(Precision, SixteenBitRoundingIsToNearestEven) {
  EXPECT_EQ(float16_bits(1.0f), 0x3c00);
  EXPECT_EQ(float16_bits(-2.0f), 0xc000);
  EXPECT_EQ(float16_bits(65504.0f), 0x7bff);
  EXPECT_EQ(float16_bits(65519.0f), 0x7bff);  // under the halfway point to 65536
  EXPECT_EQ(float16_bits(65520.0f), 0x7c00);  // halfway, odd last bit: up, to INF
  EXPECT_EQ(float16_bits(std::ldexp(1.0f, -24)), 0x0001);  // the least subnormal
  EXPECT_EQ(float16_bits(std::ldexp(1.0f, -25)), 0x0000);  // half of it: ties to even, 0
  EXPECT_EQ(float16_bits(std::ldexp(3.0f, -26)), 0x0001);  // 0.75 of it: up
  EXPECT_EQ(float16_bits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie: even
  EXPECT_EQ(float16_bits(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(float16_bits(std::nanf("")) & 0x7c00, 0x7c00);
  EXPECT_NE(float16_bits(std::nanf("")) & 0x03ff, 0);
  EXPECT_EQ(bfloat16_bits(1.0f), 0x3f80);
  EXPECT_EQ(bfloat16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);   // tie: even
  EXPECT_EQ(bfloat16_bits(1.0f + std::ldexp(3.0f, -9)), 0x3f81);   // 0.75 ulps: up
  EXPECT_EQ(bfloat16_bits(std::numeric_limits<float>::max()), 0x7f80);  // rounds past bfloat16's max
}

// y = x / sqrt(mean(x * x) + 1e-5): float32 proves it for x in [-300, 300]; as
// model.half() runs it, x * x = 90000 overflows float16's 65504 (and intervals, which do
// not know that x is large only when the mean is, let 300 / sqrt(1e-5) overflow too).
testing::ModelBuilder rms_model() {
  testing::ModelBuilder b(13);
  b.input("x", {2, 4}).output("y", {2, 4});
  b.initializer("eps", at::full({}, 1e-5f));
  b.node("Mul", {"x", "x"}, {"sq"}, "square");
  b.node("ReduceMean", {"sq"}, {"ms"}, "mean");
  b.node("Add", {"ms", "eps"}, {"v"}, "add_eps");
  b.node("Sqrt", {"v"}, {"r"}, "sqrt");
  b.node("Div", {"x", "r"}, {"y"}, "div");
  return b;
}

std::vector<std::string> forward(testing::ModelBuilder& b, Precision p, const RangeMap& ranges) {
  LoadOptions lo;
  lo.precision = p;
  auto g = load_model_proto(b.proto(), "precision_test.onnx", lo);
  EXPECT_TRUE(g.ok()) << g.status().message();
  if (!g.ok()) return {};
  AnalyzeOptions opt;
  opt.ranges = ranges;
  auto r = analyze(*g, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> out;
  for (const Finding& f : r->findings)
    if (f.kind == HazardKind::kForward) out.push_back(f.node + ":" + f.hazard);
  return out;
}

TEST(Precision, Float32ModelRunAsHalfOverflowsWhereFloat32IsProved) {
  testing::ModelBuilder b = rms_model();
  RangeMap r{{"x", {-300, 300}}};
  EXPECT_EQ(forward(b, Precision::kNative, r), Names{});
  // The quotient is normalised (|x / sqrt(mean(x * x) + eps)| <= 4, the relational fact
  // reading the float16 eps too): only the square overflows.
  EXPECT_EQ(forward(b, Precision::kFloat16, r), (Names{"square:overflow"}));
  // 200^2 = 40000 fits, and 200 / sqrt(1e-5) = 63246 too: float16 is forward-clean there.
  EXPECT_EQ(forward(b, Precision::kFloat16, {{"x", {-200, 200}}}), Names{});
  EXPECT_EQ(forward(b, Precision::kBFloat16, r), Names{});  // bfloat16 keeps float32's range
  LoadOptions lo;
  lo.precision = Precision::kFloat16;
  auto g = load_model_proto(b.proto(), "precision_test.onnx", lo);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->type_of("x")->elem_type, onnx::TensorProto::FLOAT16);
  EXPECT_EQ(g->type_of("y")->elem_type, onnx::TensorProto::FLOAT16);
  EXPECT_EQ(g->initializers.at("eps").data_type(), onnx::TensorProto::FLOAT16);
  EXPECT_EQ(g->precision, Precision::kFloat16);
}

// log(softmax(x @ w)) with x in [-10, 10] and w the identity: logits 20 apart give a
// least entry of 2.1e-9, which float16 rounds to 0 but float32 keeps. The whole model
// in float16 flags the Log; autocast keeps softmax in float32, so it does not, and
// flags the float16 MatMul only where its products overflow.
testing::ModelBuilder classifier(float scale) {
  testing::ModelBuilder b(13);
  b.input("x", {1, 2}).output("y", {1, 2});
  b.initializer("w", at::eye(2) * scale);
  b.node("MatMul", {"x", "w"}, {"z"}, "matmul");
  b.node("Softmax", {"z"}, {"p"}, "softmax");
  b.node("Log", {"p"}, {"y"}, "log");
  return b;
}

TEST(Precision, AutocastRunsTheMatMulInHalfAndTheSoftmaxInFloat32) {
  RangeMap r{{"x", {-10, 10}}};
  testing::ModelBuilder b = classifier(1);
  EXPECT_EQ(forward(b, Precision::kNative, r), Names{});
  EXPECT_EQ(forward(b, Precision::kFloat16, r), (Names{"log:log-nonpositive"}));
  EXPECT_EQ(forward(b, Precision::kAutocastFloat16, r), Names{});
  testing::ModelBuilder big = classifier(1e4f);  // products up to 1e5: past 65504 in float16
  EXPECT_EQ(forward(big, Precision::kAutocastFloat16, r)[0], "matmul:overflow");

  LoadOptions lo;
  lo.precision = Precision::kAutocastFloat16;
  auto g = load_model_proto(b.proto(), "precision_test.onnx", lo);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->type_of("x")->elem_type, onnx::TensorProto::FLOAT);  // inputs, weights, outputs stay float32
  EXPECT_EQ(g->type_of("y")->elem_type, onnx::TensorProto::FLOAT);
  EXPECT_EQ(g->type_of("z")->elem_type, onnx::TensorProto::FLOAT16);
  const Node* mm = g->find_node("matmul");
  const Node* sm = g->find_node("softmax");
  ASSERT_TRUE(mm && sm);
  EXPECT_EQ(g->type_of(mm->inputs[0])->elem_type, onnx::TensorProto::FLOAT16);
  EXPECT_EQ(g->type_of(mm->inputs[1])->elem_type, onnx::TensorProto::FLOAT16);
  EXPECT_EQ(g->type_of(sm->inputs[0])->elem_type, onnx::TensorProto::FLOAT);
  int casts = 0;
  for (const Node& n : g->nodes) casts += n.op_type == "Cast" && n.name.rfind("nanguard_autocast/", 0) == 0;
  EXPECT_EQ(casts, 2);  // x to float16, the logits back to float32
  EXPECT_EQ(g->initializers.at("w/autocast_fp16").data_type(), onnx::TensorProto::FLOAT16);  // the weight, rounded

  // The rewritten model runs, and a run at x = (10, -10) is finite (the float32 softmax).
  auto ex = Executor::create(*g);
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  auto run = ex->run({{"x", at::tensor({10.f, -10.f}).reshape({1, 2})}});
  ASSERT_TRUE(run.ok()) << run.status().message();
  EXPECT_TRUE(at::isfinite(run->values.at("y")).all().item<bool>());
}

// Rewriting a rewritten model changes nothing: `validate` and `replay` load fixed
// models and reproducers (already in the precision) with the same flag.
TEST(Precision, AutocastOfAnAutocastModelIsTheSame) {
  testing::ModelBuilder b = classifier(1);
  onnx::ModelProto once = b.proto();
  ASSERT_TRUE(apply_precision(once, Precision::kAutocastFloat16, "m.onnx").ok());
  onnx::ModelProto twice = once;
  ASSERT_TRUE(apply_precision(twice, Precision::kAutocastFloat16, "m.onnx").ok());
  EXPECT_EQ(once.graph().node_size(), twice.graph().node_size());
  EXPECT_EQ(once.SerializeAsString(), twice.SerializeAsString());
}

TEST(Precision, NamesParseBothWays) {
  for (const char* s : {"native", "fp16", "bf16", "autocast-fp16", "autocast-bf16"}) {
    auto p = parse_precision(s);
    ASSERT_TRUE(p.has_value()) << s;
    EXPECT_STREQ(to_string(*p), s);
  }
  EXPECT_FALSE(parse_precision("fp8").has_value());
}

}  // namespace
}  // namespace nanguard
