// Normalizations: BatchNormalization inference vs training mode (opset 15) and the
// refused pre-14 training outputs, the zero-variance and zero-vector NaN cases,
// LayerNormalization's optional outputs, MVN's function body, LRN's window.
#include <cmath>
#include <functional>
#include <limits>

#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "test_models.h"

namespace nanguard {
namespace {

using NodeAttrs = std::function<void(onnx::NodeProto&)>;
using Inits = std::vector<std::pair<std::string, at::Tensor>>;

struct Out {
  std::vector<at::Tensor> values;
  std::string error;
};

// One node `op` on input x and initializers; `outputs` names its outputs, all graph
// outputs.
Out run_norm(const std::string& op, int64_t opset, const at::Tensor& x, const Inits& inits,
             std::vector<std::string> outputs, const NodeAttrs& attrs = {}) {
  testing::ModelBuilder b(opset);
  b.input("x", x.sizes().vec());
  for (const auto& o : outputs) b.output(o, std::vector<int64_t>(1, -1));
  for (auto& o : *b.proto().mutable_graph()->mutable_output()) o.mutable_type()->mutable_tensor_type()->mutable_shape()->clear_dim();
  std::vector<std::string> ins{"x"};
  for (const auto& [name, t] : inits) {
    ins.push_back(name);
    if (!name.empty()) b.initializer(name, t);
  }
  auto& n = b.node(op, ins, outputs, "n");
  if (attrs) attrs(n);
  Out out;
  auto g = load_model_proto(b.proto(), op + ".onnx");
  if (!g.ok()) return {{}, g.status().message()};
  auto ex = Executor::create(*g);
  if (!ex.ok()) return {{}, ex.status().message()};
  auto r = ex->run({{"x", x}});
  if (!r.ok()) return {{}, r.status().message()};
  return {r->outputs, ""};
}

Inits bn_params(float var) {
  return {{"s", at::tensor({2.f})}, {"b", at::tensor({1.f})}, {"m", at::tensor({0.5f})}, {"v", at::tensor({var})}};
}

TEST(Normalization, BatchNormInferenceAndZeroVariance) {
  at::Tensor x = at::tensor({0.5f, 1.5f}).reshape({1, 1, 2});
  Out y = run_norm("BatchNormalization", 15, x, bn_params(1.f), {"y"});
  ASSERT_EQ(y.error, "");
  EXPECT_NEAR(y.values[0][0][0][1].item<float>(), 1.f / std::sqrt(1.f + 1e-5f) * 2 + 1, 1e-6);
  // Variance 0 and epsilon 0: (x - mean) / 0 is INF, and 0 / 0 at x == mean is NaN.
  Out z = run_norm("BatchNormalization", 9, x, bn_params(0.f), {"y"},
                   [](onnx::NodeProto& n) { testing::set_attr(n, "epsilon", 0.f); });
  ASSERT_EQ(z.error, "");
  EXPECT_TRUE(std::isnan(z.values[0][0][0][0].item<float>()));
  EXPECT_TRUE(std::isinf(z.values[0][0][0][1].item<float>()));
}

TEST(Normalization, BatchNormTrainingModes) {
  at::Tensor x = at::tensor({1.f, 3.f}).reshape({2, 1});
  Out t = run_norm("BatchNormalization", 15, x, bn_params(1.f), {"y", "rm", "rv"},
                   [](onnx::NodeProto& n) { testing::set_attr(n, "training_mode", int64_t{1}); });
  ASSERT_EQ(t.error, "");
  // Batch mean 2, population variance 1.
  EXPECT_NEAR(t.values[0][0][0].item<float>(), -1.f / std::sqrt(1.f + 1e-5f) * 2 + 1, 1e-6);
  EXPECT_NEAR(t.values[1][0].item<float>(), 0.5f * 0.9f + 2.f * 0.1f, 1e-6);
  EXPECT_NEAR(t.values[2][0].item<float>(), 1.f * 0.9f + 1.f * 0.1f, 1e-6);
  Out old = run_norm("BatchNormalization", 9, x, bn_params(1.f), {"y", "mean", "var", "sm", "sv"});
  EXPECT_NE(old.error.find("not supported"), std::string::npos) << old.error;
}

TEST(Normalization, LayerNormOutputsAndGradient) {
  at::Tensor x = at::tensor({1.f, 2.f, 3.f, 4.f, 4.f, 4.f}).reshape({2, 3});
  Out y = run_norm("LayerNormalization", 17, x, {{"s", at::ones({3})}, {"b", at::zeros({3})}},
                   {"y", "mean", "inv"});
  ASSERT_EQ(y.error, "");
  EXPECT_TRUE(at::allclose(y.values[1], at::tensor({2.f, 4.f}).reshape({2, 1})));
  EXPECT_NEAR(y.values[2][0][0].item<float>(), 1.f / std::sqrt(2.f / 3 + 1e-5f), 1e-4);
  EXPECT_NEAR(y.values[2][1][0].item<float>(), 1.f / std::sqrt(1e-5f), 1e-1);  // constant row
  EXPECT_TRUE(at::equal(y.values[0][1], at::zeros({3})));
  // Without B, and epsilon 0 on the constant row: 0 * inf = NaN.
  Out z = run_norm("LayerNormalization", 17, x, {{"s", at::ones({3})}}, {"y"},
                   [](onnx::NodeProto& n) { testing::set_attr(n, "epsilon", 0.f); });
  ASSERT_EQ(z.error, "");
  EXPECT_TRUE(z.values[0][1].isnan().all().item<bool>());
}

TEST(Normalization, LpAndMeanVarianceNormalization) {
  at::Tensor x = at::tensor({3.f, -4.f, 0.f, 0.f}).reshape({2, 2});
  Out l2 = run_norm("LpNormalization", 13, x, {}, {"y"});
  ASSERT_EQ(l2.error, "");
  EXPECT_TRUE(at::allclose(l2.values[0][0], at::tensor({0.6f, -0.8f})));
  EXPECT_TRUE(l2.values[0][1].isnan().all().item<bool>());  // 0 / ||0||
  Out l1 = run_norm("LpNormalization", 13, x, {}, {"y"}, [](onnx::NodeProto& n) { testing::set_attr(n, "p", int64_t{1}); });
  EXPECT_TRUE(at::allclose(l1.values[0][0], at::tensor({3.f / 7, -4.f / 7})));
  at::Tensor m = at::tensor({1.f, 3.f, 5.f, 5.f}).reshape({2, 2});
  Out mvn = run_norm("MeanVarianceNormalization", 13, m, {}, {"y"},
                     [](onnx::NodeProto& n) { testing::set_attr(n, "axes", std::vector<int64_t>{1}); });
  ASSERT_EQ(mvn.error, "");
  EXPECT_TRUE(at::allclose(mvn.values[0][0], at::tensor({-1.f, 1.f})));
  EXPECT_TRUE(at::equal(mvn.values[0][1], at::zeros({2})));  // 0 / (0 + 1e-9)
}

TEST(Normalization, LrnWindowAcrossChannels) {
  at::Tensor x = at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({1, 4, 1, 1});
  Out y = run_norm("LRN", 13, x, {}, {"y"}, [](onnx::NodeProto& n) {
    testing::set_attr(n, "size", int64_t{2});
    testing::set_attr(n, "alpha", 1.f);
    testing::set_attr(n, "beta", 1.f);
  });
  ASSERT_EQ(y.error, "");
  // size 2: the window of c is [c, c + 1].
  std::vector<float> sq{1 + 4, 4 + 9, 9 + 16, 16};
  for (int c = 0; c < 4; ++c)
    EXPECT_NEAR(y.values[0][0][c][0][0].item<float>(), (c + 1) / (1 + sq[c] / 2), 1e-6) << c;
}

}  // namespace
}  // namespace nanguard
