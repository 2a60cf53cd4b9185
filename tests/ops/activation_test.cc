// Activations: the NaN/INF edges the spec decides (Softplus overflow, ThresholdedRelu
// and Shrink on NaN), Clip's attribute (opset < 11) and input forms, integer Clip,
// and gradients through the lowerings.
#include <cmath>
#include <functional>
#include <limits>

#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "ops/tensor_proto.h"
#include "test_models.h"

namespace nanguard {
namespace {

using NodeAttrs = std::function<void(onnx::NodeProto&)>;
constexpr float kInf = std::numeric_limits<float>::infinity();

// One node `op` on 1-D input x (plus optional initializers), output y like x.
at::Tensor run_act(const std::string& op, const at::Tensor& x, int64_t opset = 13,
                   const NodeAttrs& attrs = {}, std::vector<std::pair<std::string, at::Tensor>> inits = {}) {
  testing::ModelBuilder b(opset);
  int32_t type = onnx_elem_type_for(x.scalar_type());
  b.input("x", {x.size(0)}, type).output("y", {x.size(0)}, type);
  std::vector<std::string> ins{"x"};
  for (auto& [name, t] : inits) {
    ins.push_back(name);
    if (!name.empty()) b.initializer(name, t);
  }
  auto& n = b.node(op, ins, {"y"}, "n");
  if (attrs) attrs(n);
  auto g = load_model_proto(b.proto(), op + ".onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  if (!g.ok()) return {};
  auto ex = Executor::create(*g);
  EXPECT_TRUE(ex.ok()) << ex.status().message();
  auto r = ex->run({{"x", x}});
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->outputs[0] : at::Tensor();
}

TEST(Activation, SoftplusIsTheNaiveFormAndOverflows) {
  at::Tensor y = run_act("Softplus", at::tensor({0.f, 88.f, 89.f, -200.f}));
  EXPECT_NEAR(y[0].item<float>(), std::log(2.f), 1e-6);
  EXPECT_TRUE(std::isfinite(y[1].item<float>()));
  EXPECT_EQ(y[2].item<float>(), kInf);  // exp(89) overflows float32 before the log
  EXPECT_EQ(y[3].item<float>(), 0.f);
  // The gradient of log(exp(x) + 1) at an overflowing x is inf / inf = NaN.
  at::Tensor x = at::tensor({89.f, 1.f}).requires_grad_();
  testing::ModelBuilder b(13);
  b.input("x", {2}).output("y", {2});
  b.node("Softplus", {"x"}, {"y"}, "n");
  auto g = load_model_proto(b.proto(), "sp.onnx");
  ASSERT_TRUE(g.ok());
  auto ex = Executor::create(*g);
  ASSERT_TRUE(ex.ok());
  auto r = ex->run({{"x", x}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  r->outputs[0].sum().backward();
  EXPECT_TRUE(std::isnan(x.grad()[0].item<float>()));
  EXPECT_NEAR(x.grad()[1].item<float>(), 1.f / (1.f + std::exp(-1.f)), 1e-6);
}

TEST(Activation, NaNHandlingFollowsTheReference) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor x = at::tensor({nan, 2.f, 0.5f});
  at::Tensor t = run_act("ThresholdedRelu", x, 13);  // np.clip keeps NaN
  EXPECT_TRUE(std::isnan(t[0].item<float>()));
  EXPECT_EQ(t[1].item<float>(), 2.f);
  EXPECT_EQ(t[2].item<float>(), 0.f);
  at::Tensor s = run_act("Shrink", x, 13);  // np.where on false comparisons gives 0
  EXPECT_EQ(s[0].item<float>(), 0.f);
  EXPECT_EQ(s[1].item<float>(), 2.f);
  EXPECT_TRUE(std::isnan(run_act("Relu", x)[0].item<float>()));
  EXPECT_TRUE(std::isnan(run_act("HardSigmoid", x)[0].item<float>()));
  EXPECT_TRUE(std::isnan(run_act("Clip", x, 13, {}, {{"lo", at::tensor(0.f)}})[0].item<float>()));
}

TEST(Activation, ClipFormsAcrossOpsets) {
  at::Tensor x = at::tensor({-5.f, 0.5f, 5.f});
  at::Tensor a = run_act("Clip", x, 9, [](onnx::NodeProto& n) {
    testing::set_attr(n, "min", -1.f);
    testing::set_attr(n, "max", 1.f);
  });
  EXPECT_TRUE(at::equal(a, at::tensor({-1.f, 0.5f, 1.f})));
  at::Tensor d = run_act("Clip", x, 9);  // no attributes: no bounds
  EXPECT_TRUE(at::equal(d, x));
  at::Tensor only_max = run_act("Clip", x, 13, {}, {{"", at::Tensor()}, {"hi", at::tensor(1.f)}});
  EXPECT_TRUE(at::equal(only_max, at::tensor({-5.f, 0.5f, 1.f})));
  at::Tensor crossed = run_act("Clip", x, 13, {}, {{"lo", at::tensor(2.f)}, {"hi", at::tensor(1.f)}});
  EXPECT_TRUE(at::equal(crossed, at::full({3}, 1.f)));  // min > max gives max, as np.clip
  at::Tensor xi = at::tensor({-7, 3, 9}, at::kInt);
  at::Tensor ci = run_act("Clip", xi, 13, {}, {{"lo", at::tensor(-2, at::kInt)}, {"hi", at::tensor(4, at::kInt)}});
  EXPECT_EQ(ci.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(ci, at::tensor({-2, 3, 4}, at::kInt)));
}

TEST(Activation, AttributeDefaultsAndFormulas) {
  at::Tensor x = at::tensor({-3.f, -1.f, 0.f, 2.f});
  at::Tensor selu = run_act("Selu", x);
  EXPECT_NEAR(selu[0].item<float>(), 1.0507010f * 1.6732632f * (std::exp(-3.f) - 1), 1e-6);
  EXPECT_NEAR(selu[3].item<float>(), 2 * 1.0507010f, 1e-6);
  at::Tensor lrelu = run_act("LeakyRelu", x);
  EXPECT_NEAR(lrelu[0].item<float>(), -0.03f, 1e-7);
  at::Tensor hs = run_act("HardSwish", x, 14);
  EXPECT_EQ(hs[0].item<float>(), 0.f);
  EXPECT_NEAR(hs[1].item<float>(), -1.f * (-1.f / 6 + 0.5f), 1e-7);
  EXPECT_NEAR(hs[3].item<float>(), 2.f * (2.f / 6 + 0.5f), 1e-6);
  at::Tensor celu = run_act("Celu", x, 13, [](onnx::NodeProto& n) { testing::set_attr(n, "alpha", 2.f); });
  EXPECT_NEAR(celu[0].item<float>(), 2.f * (std::exp(-1.5f) - 1), 1e-6);
  at::Tensor softsign = run_act("Softsign", at::tensor({-kInf, 1.f}));
  EXPECT_TRUE(std::isnan(softsign[0].item<float>()));  // -inf / inf, as the formula says
  EXPECT_EQ(softsign[1].item<float>(), 0.5f);
}

TEST(Activation, SigmoidSaturatesInFloat32AndGradientFlows) {
  at::Tensor x = at::tensor({17.f, -104.f, 0.f}).requires_grad_();
  testing::ModelBuilder b(13);
  b.input("x", {3}).output("y", {3});
  b.node("Elu", {"x"}, {"e"}, "e");
  b.node("Sigmoid", {"e"}, {"y"}, "s");
  auto g = load_model_proto(b.proto(), "sig.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto ex = Executor::create(*g);
  ASSERT_TRUE(ex.ok());
  auto r = ex->run({{"x", x}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  at::Tensor y = r->outputs[0];
  EXPECT_EQ(y[0].item<float>(), 1.f);  // sigmoid(17) rounds to 1 in float32
  y.sum().backward();
  EXPECT_NEAR(x.grad()[2].item<float>(), 0.25f, 1e-6);
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
}

}  // namespace
}  // namespace nanguard
