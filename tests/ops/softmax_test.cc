// Softmax family: the opset < 13 2-D coercion against the opset 13 single axis,
// the NaN of an all -inf row, LogSoftmax's stability, Hardmax's tie rule.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "test_models.h"

namespace nanguard {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// `op` on x; axis = INT64_MIN leaves the attribute out.
at::Tensor run_sm(const std::string& op, const at::Tensor& x, int64_t opset, int64_t axis) {
  testing::ModelBuilder b(opset);
  std::vector<int64_t> dims = x.sizes().vec();
  b.input("x", dims).output("y", dims);
  auto& n = b.node(op, {"x"}, {"y"}, "n");
  if (axis != std::numeric_limits<int64_t>::min()) testing::set_attr(n, "axis", axis);
  auto g = load_model_proto(b.proto(), op + ".onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  if (!g.ok()) return {};
  auto ex = Executor::create(*g);
  EXPECT_TRUE(ex.ok()) << ex.status().message();
  auto r = ex->run({{"x", x}});
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->outputs[0] : at::Tensor();
}

constexpr int64_t kNoAxis = std::numeric_limits<int64_t>::min();

TEST(Softmax, AxisSemanticsDependOnOpset) {
  at::Tensor x = at::arange(12, at::kFloat).reshape({2, 3, 2}) / 4;
  // Opset 11, default axis 1: each batch's 6 values form one distribution.
  at::Tensor old = run_sm("Softmax", x, 11, kNoAxis);
  EXPECT_TRUE(at::allclose(old, at::softmax(x.reshape({2, 6}), 1).reshape({2, 3, 2})));
  EXPECT_TRUE(at::allclose(old.sum({1, 2}), at::ones({2})));
  // Opset 13, default axis -1: pairs along the last axis.
  at::Tensor now = run_sm("Softmax", x, 13, kNoAxis);
  EXPECT_TRUE(at::allclose(now, at::softmax(x, 2)));
  // Opset 11 with axis 1 is not opset 13 with axis 1.
  at::Tensor old1 = run_sm("LogSoftmax", x, 11, 2);
  EXPECT_TRUE(at::allclose(old1, at::log_softmax(x, 2)));
  at::Tensor new1 = run_sm("LogSoftmax", x, 13, 1);
  EXPECT_TRUE(at::allclose(new1, at::log_softmax(x, 1)));
  // Opset 11 allows axis == rank: rows of one element, all ones.
  EXPECT_TRUE(at::equal(run_sm("Softmax", x, 11, 3), at::ones_like(x)));
}

TEST(Softmax, NonFiniteRows) {
  at::Tensor x = at::tensor({-kInf, -kInf, 1000.f, 0.f}).reshape({2, 2});
  at::Tensor y = run_sm("Softmax", x, 13, kNoAxis);
  EXPECT_TRUE(std::isnan(y[0][0].item<float>()));  // -inf - (-inf)
  EXPECT_EQ(y[1][0].item<float>(), 1.f);            // no overflow: the max is subtracted
  at::Tensor l = run_sm("LogSoftmax", x, 13, kNoAxis);
  EXPECT_EQ(l[1][1].item<float>(), -1000.f);        // not log(0) = -inf
}

TEST(Softmax, HardmaxFirstMaximumAndOldAxis) {
  at::Tensor x = at::tensor({3.f, 3.f, 1.f, 0.f, 5.f, 5.f}).reshape({1, 3, 2});
  at::Tensor y = run_sm("Hardmax", x, 13, kNoAxis);
  EXPECT_TRUE(at::equal(y, at::tensor({1.f, 0.f, 1.f, 0.f, 1.f, 0.f}).reshape({1, 3, 2})));
  at::Tensor old = run_sm("Hardmax", x, 11, kNoAxis);  // one maximum over all 6 values
  EXPECT_TRUE(at::equal(old, at::tensor({0.f, 0.f, 0.f, 0.f, 1.f, 0.f}).reshape({1, 3, 2})));
}

TEST(Softmax, GradientFlows) {
  at::Tensor x = at::randn({2, 3, 2}).requires_grad_();
  testing::ModelBuilder b(13);
  b.input("x", {2, 3, 2}).output("y", {2, 3, 2});
  b.node("LogSoftmax", {"x"}, {"y"}, "n");
  auto g = load_model_proto(b.proto(), "ls.onnx");
  ASSERT_TRUE(g.ok());
  auto ex = Executor::create(*g);
  ASSERT_TRUE(ex.ok());
  auto r = ex->run({{"x", x}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  r->outputs[0].select(2, 0).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
  EXPECT_GT(x.grad().abs().sum().item<float>(), 0.f);
}

}  // namespace
}  // namespace nanguard
