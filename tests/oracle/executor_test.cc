// The executor runs graphs for real; the oracle names the node where NaN/INF appears.
#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "oracle/nonfinite.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;

// log(x - x - 1) is NaN for every x: the Log node is the origin, its consumers follow.
Graph log_of_minus_one() {
  ModelBuilder b;
  b.input("x", {2, 3}).initializer("one", at::ones({1})).output("z", {2, 3});
  b.node("Sub", {"x", "x"}, {"zero"}, "sub_xx");
  b.node("Sub", {"zero", "one"}, {"minus_one"}, "sub_one");
  b.node("Log", {"minus_one"}, {"y"}, "log");
  b.node("Neg", {"y"}, {"z"}, "neg");
  auto g = load_model_proto(b.proto(), "log_model.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  return std::move(g.value());
}

TEST(Executor, LogOfMinusOneIsNaNAtTheLogNode) {
  Graph g = log_of_minus_one();
  auto ex = Executor::create(g);
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  auto run = run_with_oracle(*ex, {{"x", at::rand({2, 3})}});
  ASSERT_TRUE(run.ok()) << run.status().message();
  ASSERT_EQ(run->nonfinite.size(), 2u);
  EXPECT_EQ(run->first()->node, "log");
  EXPECT_EQ(run->first()->op_type, "Log");
  EXPECT_EQ(run->first()->nan_count, 6);
  EXPECT_EQ(run->nonfinite[1].node, "neg");
  EXPECT_TRUE(run->exec.values.at("zero").eq(0).all().item<bool>());
}

TEST(Executor, FiniteRunHasNoRecords) {
  ModelBuilder b;
  b.input("x", {4}).output("y", {-1});
  b.node("Exp", {"x"}, {"y"}, "exp");
  auto g = load_model_proto(b.proto(), "exp.onnx");
  ASSERT_TRUE(g.ok());
  auto ex = Executor::create(*g);
  auto run = run_with_oracle(*ex, {{"x", at::tensor({0.f, 1.f, 88.f, -100.f})}});
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(run->nonfinite.empty());
  // 88.72283935546875 is the first float32 whose exp overflows.
  auto run2 = run_with_oracle(*ex, {{"x", at::tensor({88.72283935546875f, 0.f, 0.f, 0.f})}});
  ASSERT_TRUE(run2.ok());
  ASSERT_EQ(run2->nonfinite.size(), 1u);
  EXPECT_EQ(run2->first()->inf_count, 1);
}

TEST(Executor, GradientsFlowToInputsAndWeights) {
  ModelBuilder b;
  b.input("x", {3}).initializer("w", at::full({3}, 2.0f)).output("y", {-1});
  b.node("Mul", {"x", "w"}, {"xw"});
  b.node("Sqrt", {"xw"}, {"y"});
  auto g = load_model_proto(b.proto(), "sqrt.onnx");
  ASSERT_TRUE(g.ok());
  auto ex = Executor::create(*g);
  at::Tensor x = at::tensor({0.f, 2.f, 8.f}).requires_grad_(true);
  at::Tensor w = at::full({3}, 2.0f).requires_grad_(true);
  auto run = ex->run({{"x", x}, {"w", w}});
  ASSERT_TRUE(run.ok());
  run->outputs[0].sum().backward();
  // d sqrt(2x)/dx = 1/sqrt(2x): infinite at x = 0, the gradient-only hazard.
  EXPECT_TRUE(std::isinf(x.grad()[0].item<float>()));
  EXPECT_FLOAT_EQ(x.grad()[1].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(w.grad()[2].item<float>(), 8.0f / (2 * 4.0f));
}

TEST(Executor, UnsupportedOpsAreAllNamed) {
  ModelBuilder b;
  b.input("x", {2}).output("z", {-1});
  b.node("Log", {"x"}, {"y"});
  b.node("NonMaxSuppression", {"y", "y"}, {"z"});
  auto g = load_model_proto(b.proto(), "nms.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto ex = Executor::create(*g);
  ASSERT_FALSE(ex.ok());
  EXPECT_NE(ex.status().message().find("unsupported ONNX op: NonMaxSuppression"), std::string::npos)
      << ex.status().message();
}

TEST(Executor, Float64OnRequest) {
  ModelBuilder b;
  b.input("x", {1}).output("y", {-1});
  b.node("Exp", {"x"}, {"y"});
  auto g = load_model_proto(b.proto(), "exp.onnx");
  ExecOptions opt;
  opt.float_type = at::kDouble;
  auto ex = Executor::create(*g, opt);
  auto run = run_with_oracle(*ex, {{"x", at::tensor({100.f})}});
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->exec.outputs[0].scalar_type(), at::kDouble);
  EXPECT_TRUE(run->nonfinite.empty());  // exp(100) is finite in float64
}

TEST(Executor, CudaIsAClearErrorWithoutCuda) {
  auto d = parse_device("cuda");
  if (at::hasCUDA()) {
    EXPECT_TRUE(d.ok());
  } else {
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.status().message().find("no CUDA"), std::string::npos);
  }
}

}  // namespace
}  // namespace nanguard
