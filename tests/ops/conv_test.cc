// Conv and ConvTranspose: ONNX's asymmetric and automatic padding (which ATen cannot
// express directly), ConvTranspose's output_padding / pads / output_shape, gradients.
#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::run_node;
using testing::seq;
using testing::set_attr;
using testing::set_string;

TEST(Conv, AsymmetricAndSamePadding) {
  at::Tensor x = seq({1, 2, 3, 4}), w = seq({1, 1});
  auto pads = run_node(11, "Conv", {{"x", x}, {"w", w}}, [](onnx::NodeProto& n) {
    set_attr(n, "pads", std::vector<int64_t>{2, 0});
  }, 1, 3);
  ASSERT_EQ(pads.error, "");
  EXPECT_TRUE(at::equal(pads.outputs[0], seq({0, 1, 3, 5, 7})));
  // Odd total padding of 1: at the end for SAME_UPPER, at the beginning for SAME_LOWER.
  auto upper = run_node(11, "Conv", {{"x", x}, {"w", w}}, [](onnx::NodeProto& n) {
    set_string(n, "auto_pad", "SAME_UPPER");
  }, 1, 3);
  auto lower = run_node(11, "Conv", {{"x", x}, {"w", w}}, [](onnx::NodeProto& n) {
    set_string(n, "auto_pad", "SAME_LOWER");
  }, 1, 3);
  ASSERT_EQ(upper.error, "");
  ASSERT_EQ(lower.error, "");
  EXPECT_TRUE(at::equal(upper.outputs[0], seq({3, 5, 7, 4})));
  EXPECT_TRUE(at::equal(lower.outputs[0], seq({1, 3, 5, 7})));
}

TEST(Conv, GroupsStridesDilationsAndGradient) {
  at::Tensor x = at::arange(2 * 7, at::kFloat).reshape({1, 2, 7}).requires_grad_(true);
  at::Tensor w = at::ones({2, 1, 2});
  auto r = run_node(11, "Conv", {{"x", x}, {"w", w}, {"b", at::tensor({0.f, 100.f})}}, [](onnx::NodeProto& n) {
    set_attr(n, "group", int64_t{2});
    set_attr(n, "strides", std::vector<int64_t>{3});
    set_attr(n, "dilations", std::vector<int64_t>{2});
    set_attr(n, "pads", std::vector<int64_t>{0, 2});
  }, 1, 3);
  ASSERT_EQ(r.error, "");
  // Window (0, 2), (3, 5), (6, pad): channel 1 adds its bias.
  EXPECT_TRUE(at::equal(r.outputs[0], at::tensor({2.f, 8.f, 6.f, 116.f, 122.f, 113.f}).reshape({1, 2, 3})));
  r.outputs[0].sum().backward();
  EXPECT_EQ(x.grad()[0][0][1].item<float>(), 0.f);  // never under the dilated window
  EXPECT_EQ(x.grad()[0][0][2].item<float>(), 1.f);
}

TEST(Conv, TransposeOutputPaddingPadsAndOutputShape) {
  at::Tensor x = seq({1, 1, 1}), w = seq({1, 1, 1}), b = at::tensor({0.5f});
  // Full output with stride 2: [1, 1, 2, 1, 2, 1, 1]; output_padding adds one bias-only element.
  auto op = run_node(11, "ConvTranspose", {{"x", x}, {"w", w}, {"b", b}}, [](onnx::NodeProto& n) {
    set_attr(n, "strides", std::vector<int64_t>{2});
    set_attr(n, "output_padding", std::vector<int64_t>{1});
  }, 1, 3);
  ASSERT_EQ(op.error, "");
  EXPECT_TRUE(at::equal(op.outputs[0], seq({1.5, 1.5, 2.5, 1.5, 2.5, 1.5, 1.5, 0.5})));
  auto pads = run_node(11, "ConvTranspose", {{"x", x}, {"w", w}}, [](onnx::NodeProto& n) {
    set_attr(n, "strides", std::vector<int64_t>{2});
    set_attr(n, "output_padding", std::vector<int64_t>{1});
    set_attr(n, "pads", std::vector<int64_t>{1, 2});
  }, 1, 3);
  ASSERT_EQ(pads.error, "");
  EXPECT_TRUE(at::equal(pads.outputs[0], seq({1, 2, 1, 2, 1})));
  // output_shape 9 > full 7: the output grows at the end.
  auto shape = run_node(11, "ConvTranspose", {{"x", x}, {"w", w}}, [](onnx::NodeProto& n) {
    set_attr(n, "strides", std::vector<int64_t>{2});
    set_attr(n, "output_shape", std::vector<int64_t>{9});
  }, 1, 3);
  ASSERT_EQ(shape.error, "");
  EXPECT_TRUE(at::equal(shape.outputs[0], seq({1, 1, 2, 1, 2, 1, 1, 0, 0})));
}

TEST(Conv, UnsupportedAutoPadAndMismatchedKernelAreReported) {
  at::Tensor x = seq({1, 2, 3}), w = seq({1, 1});
  auto bad = run_node(11, "Conv", {{"x", x}, {"w", w}}, [](onnx::NodeProto& n) {
    set_string(n, "auto_pad", "SAME_MIDDLE");
  }, 1, 3);
  EXPECT_NE(bad.error.find("auto_pad 'SAME_MIDDLE' is not supported"), std::string::npos) << bad.error;
  auto ks = run_node(11, "Conv", {{"x", x}, {"w", w}}, [](onnx::NodeProto& n) {
    set_attr(n, "kernel_shape", std::vector<int64_t>{3});
  }, 1, 3);
  EXPECT_NE(ks.error, "");
}


// ---- abstract semantics -------------------------------------------------------

using testing::analyze_built;
using testing::expect_sound;
using testing::ModelBuilder;
using testing::free_weights;
using testing::ranges_of;

TEST(ConvAbstract, SoundBySampling) {
  at::manual_seed(5);
  at::Tensor w = at::randn({4, 2, 3, 3}), b = at::randn({4}), wg = at::randn({4, 1, 2, 2});
  at::Tensor wt = at::randn({2, 3, 3, 3});
  int64_t checked = 0;
  for (bool free : {false, true}) {
    for (auto [lo, hi] : std::vector<std::pair<double, double>>{{-3, 3}, {0, 1}, {1e-30, 1e-20}, {0.999, 1.001}, {-1e20, 1e20}}) {
      std::string box = std::to_string(lo) + "," + std::to_string(hi) + (free ? " free" : "");
      ModelBuilder c;
      c.input("x", {1, 2, 6, 5}).initializer("w", w).initializer("b", b).output("y", {1, 4, 3, 3});
      auto& n = c.node("Conv", {"x", "w", "b"}, {"y"}, "n");
      set_attr(n, "strides", std::vector<int64_t>{2, 2});
      set_attr(n, "pads", std::vector<int64_t>{1, 1, 1, 2});
      checked += expect_sound(c, free_weights({{"x", {lo, hi}}}, -0.5, 0.5, free), "Conv " + box, nullptr, 20);
      ModelBuilder g;
      g.input("x", {2, 2, 5, 5}).initializer("w", wg).output("y", {2, 4, 4, 4});
      auto& ng = g.node("Conv", {"x", "w"}, {"y"}, "n");
      set_attr(ng, "group", int64_t{2});
      checked += expect_sound(g, free_weights({{"x", {lo, hi}}}, -0.5, 0.5, free), "Conv-group " + box, nullptr, 20);
      ModelBuilder t;
      t.input("x", {1, 2, 3, 3}).initializer("w", wt).initializer("b", at::randn({3})).output("y", {1, 3, 8, 8});
      auto& nt = t.node("ConvTranspose", {"x", "w", "b"}, {"y"}, "n");
      set_attr(nt, "strides", std::vector<int64_t>{2, 2});
      set_attr(nt, "output_padding", std::vector<int64_t>{1, 1});
      checked += expect_sound(t, free_weights({{"x", {lo, hi}}}, -0.5, 0.5, free), "ConvTranspose " + box, nullptr, 20);
    }
  }
  EXPECT_GT(checked, 1000);
}

// Conv -> Sqrt with positive weights: proved on [0, 1], flagged once x may be negative.
TEST(ConvAbstract, ProofFailsWhenRangeWidens) {
  auto build = [](ModelBuilder& b) {
    b.input("x", {1, 1, 4, 4}).initializer("w", at::full({1, 1, 2, 2}, 0.25f)).output("y", {1, 1, 3, 3});
    b.node("Conv", {"x", "w"}, {"c"}, "conv");
    b.node("Sqrt", {"c"}, {"y"}, "sqrt");
  };
  ModelBuilder narrow, wide;
  build(narrow);
  build(wide);
  auto ok = analyze_built(narrow, ranges_of({{"x", {0.5, 1}}}), "narrow");
  EXPECT_TRUE(ok.findings.empty());
  EXPECT_NEAR(ok.intervals.at("c").min(), 0.5, 1e-6);
  EXPECT_NEAR(ok.intervals.at("c").max(), 1.0, 1e-6);
  auto r = analyze_built(wide, ranges_of({{"x", {-0.01, 1}}}), "wide");
  ASSERT_FALSE(r.findings.empty());
  EXPECT_EQ(r.findings[0].hazard, "sqrt-negative") << r.findings[0].condition;
}

}  // namespace
}  // namespace nanguard
