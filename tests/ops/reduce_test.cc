// Reductions: axes as attribute (opset < 13) vs input (ReduceSum 13), keepdims,
// noop_with_empty_axes, empty-set results, integer types, ArgMax ties, CumSum's
// exclusive/reverse forms with INF, and the NaN gradient of ReduceL2 at zero.
#include <cmath>
#include <functional>
#include <limits>

#include <gtest/gtest.h>

#include "ops/tensor_proto.h"
#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using NodeAttrs = testing::AttrFn;
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Case {
  std::string op;
  int64_t opset = 13;
  at::Tensor x;
  at::Tensor second;  // an initializer for input 1 (axes), when defined
  NodeAttrs attrs;
  int32_t out_type = onnx::TensorProto::FLOAT;
};

at::Tensor run_reduce(const Case& c, const at::Tensor& x_feed = {}) {
  testing::ModelBuilder b(c.opset);
  b.input("x", c.x.sizes().vec(), onnx_elem_type_for(c.x.scalar_type()));
  b.proto().mutable_graph()->add_output()->set_name("y");
  b.proto().mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(c.out_type);
  b.proto().mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  std::vector<std::string> ins{"x"};
  if (c.second.defined()) {
    b.initializer("k", c.second);
    ins.push_back("k");
  }
  auto& n = b.node(c.op, ins, {"y"}, "n");
  if (c.attrs) c.attrs(n);
  return testing::run_output(b, {{"x", x_feed.defined() ? x_feed : c.x}});
}

NodeAttrs ints(const char* name, std::vector<int64_t> v) {
  return [name, v](onnx::NodeProto& n) { testing::set_attr(n, name, v); };
}
NodeAttrs both(NodeAttrs a, NodeAttrs b) {
  return [a, b](onnx::NodeProto& n) { a(n); b(n); };
}
NodeAttrs one(const char* name, int64_t v) {
  return [name, v](onnx::NodeProto& n) { testing::set_attr(n, name, v); };
}

TEST(Reduce, AxesAttributeVersusInput) {
  at::Tensor x = at::arange(6, at::kFloat).reshape({2, 3});
  at::Tensor old = run_reduce({"ReduceSum", 11, x, {}, ints("axes", {1})});
  EXPECT_TRUE(at::equal(old, at::tensor({3.f, 12.f}).reshape({2, 1})));
  at::Tensor now = run_reduce({"ReduceSum", 13, x, at::tensor({-1}, at::kLong), one("keepdims", 0)});
  EXPECT_TRUE(at::equal(now, at::tensor({3.f, 12.f})));
  at::Tensor all = run_reduce({"ReduceMean", 13, x, {}, one("keepdims", 0)});
  EXPECT_EQ(all.dim(), 0);
  EXPECT_EQ(all.item<float>(), 2.5f);
  // Empty axes input: everything, or nothing with noop_with_empty_axes.
  at::Tensor none = at::zeros({0}, at::kLong);
  EXPECT_EQ(run_reduce({"ReduceSum", 13, x, none}).item<float>(), 15.f);
  EXPECT_TRUE(at::equal(run_reduce({"ReduceSum", 13, x, none, one("noop_with_empty_axes", 1)}), x));
}

TEST(Reduce, EmptySetGivesTheIdentity) {
  at::Tensor x = at::zeros({2, 0});
  auto r = [&](const char* op) { return run_reduce({op, 11, x, {}, both(ints("axes", {1}), one("keepdims", 0))}); };
  EXPECT_TRUE(at::equal(r("ReduceSum"), at::zeros({2})));
  EXPECT_TRUE(at::equal(r("ReduceProd"), at::ones({2})));
  EXPECT_TRUE(at::equal(r("ReduceMax"), at::full({2}, -kInf)));
  EXPECT_TRUE(at::equal(r("ReduceMin"), at::full({2}, kInf)));
  EXPECT_TRUE(at::equal(r("ReduceLogSumExp"), at::full({2}, -kInf)));
  EXPECT_TRUE(at::equal(r("ReduceLogSum"), at::full({2}, -kInf)));
  EXPECT_TRUE(r("ReduceMean").isnan().all().item<bool>());  // 0 / 0
}

TEST(Reduce, IntegerTypesStayInteger) {
  at::Tensor x = at::tensor({1, 2, 3, 4}, at::kInt).reshape({2, 2});
  at::Tensor s = run_reduce({"ReduceSum", 11, x, {}, ints("axes", {0}), onnx::TensorProto::INT32});
  EXPECT_EQ(s.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(s, at::tensor({4, 6}, at::kInt).reshape({1, 2})));
  at::Tensor m = run_reduce({"ReduceMean", 11, x, {}, ints("axes", {1}), onnx::TensorProto::INT32});
  EXPECT_TRUE(at::equal(m, at::tensor({1, 3}, at::kInt).reshape({2, 1})));  // 1.5, 3.5 truncated
  at::Tensor p = run_reduce({"ReduceProd", 11, x, {}, {}, onnx::TensorProto::INT32});
  EXPECT_EQ(p.reshape({-1})[0].item<int>(), 24);
  at::Tensor l2 = run_reduce({"ReduceL2", 11, x, {}, ints("axes", {1}), onnx::TensorProto::INT32});
  EXPECT_EQ(l2.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(l2, at::tensor({2, 5}, at::kInt).reshape({2, 1})));  // sqrt 5, sqrt 25
}

TEST(Reduce, NaNAndInfPropagate) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor x = at::tensor({1.f, nan, kInf, -kInf}).reshape({2, 2});
  at::Tensor mx = run_reduce({"ReduceMax", 11, x, {}, ints("axes", {1})});
  EXPECT_TRUE(std::isnan(mx[0][0].item<float>()));
  EXPECT_EQ(mx[1][0].item<float>(), kInf);
  at::Tensor s = run_reduce({"ReduceSum", 11, x, {}, ints("axes", {1})});
  EXPECT_TRUE(std::isnan(s[1][0].item<float>()));  // inf + -inf
  at::Tensor lse = run_reduce({"ReduceLogSumExp", 11, at::tensor({100.f, 100.f}), {}, {}});
  EXPECT_NEAR(lse.item<float>(), 100.f + std::log(2.f), 1e-4);  // stable: no exp overflow
}

TEST(Reduce, L2GradientAtZeroIsNaN) {
  Case c{"ReduceL2", 11, at::zeros({2, 2}), {}, ints("axes", {1})};
  at::Tensor x = at::tensor({0.f, 0.f, 3.f, 4.f}).reshape({2, 2}).requires_grad_();
  at::Tensor y = run_reduce(c, x);
  EXPECT_EQ(y[1][0].item<float>(), 5.f);
  y.sum().backward();
  EXPECT_TRUE(std::isnan(x.grad()[0][0].item<float>()));  // sqrt'(0) * 0
  EXPECT_NEAR(x.grad()[1][1].item<float>(), 0.8f, 1e-6);
}

TEST(Reduce, ArgMaxTiesAndKeepdims) {
  at::Tensor x = at::tensor({2.f, 5.f, 5.f, 1.f, 1.f, 0.f}).reshape({2, 3});
  int32_t i64 = onnx::TensorProto::INT64;
  at::Tensor first = run_reduce({"ArgMax", 13, x, {}, one("axis", 1), i64});
  EXPECT_TRUE(at::equal(first, at::tensor({1, 0}, at::kLong).reshape({2, 1})));
  at::Tensor last = run_reduce({"ArgMax", 13, x, {}, both(one("axis", 1), one("select_last_index", 1)), i64});
  EXPECT_TRUE(at::equal(last, at::tensor({2, 1}, at::kLong).reshape({2, 1})));
  at::Tensor amin = run_reduce({"ArgMin", 13, x, {}, both(one("keepdims", 0), one("select_last_index", 1)), i64});
  EXPECT_TRUE(at::equal(amin, at::tensor({1, 1, 1}, at::kLong)));
}

TEST(Reduce, CumSumExclusiveReverseKeepsInf) {
  at::Tensor x = at::tensor({1.f, kInf, 2.f, 3.f});
  at::Tensor axis = at::tensor(0, at::kLong);
  EXPECT_TRUE(at::equal(run_reduce({"CumSum", 14, x, axis}), at::tensor({1.f, kInf, kInf, kInf})));
  at::Tensor ex = run_reduce({"CumSum", 14, x, axis, one("exclusive", 1)});
  EXPECT_TRUE(at::equal(ex, at::tensor({0.f, 1.f, kInf, kInf})));  // no inf - inf
  at::Tensor rev = run_reduce({"CumSum", 14, x, axis, both(one("exclusive", 1), one("reverse", 1))});
  EXPECT_TRUE(at::equal(rev, at::tensor({kInf, 5.f, 3.f, 0.f})));
  at::Tensor xi = at::tensor({1, 2, 3}, at::kInt);
  at::Tensor ci = run_reduce({"CumSum", 14, xi, axis, {}, onnx::TensorProto::INT32});
  EXPECT_EQ(ci.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(ci, at::tensor({1, 3, 6}, at::kInt)));
}

// ---- abstract facets ------------------------------------------------------------

const std::vector<std::pair<double, double>> kRedBoxes{{-3, 3}, {0, 1}, {-100, 100}, {1e-30, 1e-20}, {-1e20, 1e20},
                                                       {0.5, 2}, {-1, -1e-3}, {88, 89}, {1, 1e37}};

// x [3, 4, 5] + bias [5] (unequal cells) into each reduction: axes {1}, {0, 2}, all;
// keepdims 0 and 1; fixed and free bias.
TEST(ReduceAbstract, SoundOnBoxesAxesAndKeepdims) {
  testing::SoundTally tally;
  at::Tensor bias = at::randn({5}, at::kFloat);
  std::vector<std::vector<int64_t>> axes_list{{1}, {0, 2}, {}};
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}) {
    for (const auto& axes : axes_list) {
      for (int64_t keep : {0, 1}) {
        for (auto [lo, hi] : kRedBoxes) {
          testing::ModelBuilder b(13);
          b.input("x", {3, 4, 5}).output("y", {-1});
          b.initializer("bias", bias);
          b.node("Add", {"x", "bias"}, {"z"}, "add");
          std::vector<std::string> ins{"z"};
          bool sum = std::string(op) == "ReduceSum";
          if (sum && !axes.empty()) {
            b.initializer("axes", at::tensor(axes, at::kLong));
            ins.push_back("axes");
          }
          auto& n = b.node(op, ins, {"y"}, "n");
          if (!sum && !axes.empty()) testing::set_attr(n, "axes", axes);
          testing::set_attr(n, "keepdims", keep);
          RangeMap r{{"x", {lo, hi}}};
          bool free = (lo + hi) > 1;  // half the boxes with a free bias
          testing::expect_sound(b, free ? testing::free_weights(r, -2, 2) : testing::ranges_of(r),
                                std::string(op) + " axes " + std::to_string(axes.size()) + " keep " + std::to_string(keep) +
                                    " on [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
                                &tally, 12);
        }
      }
    }
  }
  EXPECT_EQ(tally.violations, 0);
  EXPECT_GT(tally.checked, 0);
  tally.print("reduce");
}

TEST(ReduceAbstract, ArgExtremaAndCumSumSound) {
  testing::SoundTally tally;
  at::Tensor bias = at::randn({5}, at::kFloat) * 3;
  for (auto [lo, hi] : kRedBoxes) {
    for (const char* op : {"ArgMax", "ArgMin"}) {
      for (int64_t axis : {1, -1}) {
        for (int64_t last : {0, 1}) {
          testing::ModelBuilder b(13);
          b.input("x", {3, 5}).output("y", {-1}, onnx::TensorProto::INT64);
          b.initializer("bias", bias);
          b.node("Add", {"x", "bias"}, {"z"}, "add");
          auto& n = b.node(op, {"z"}, {"y"}, "n");
          testing::set_attr(n, "axis", axis);
          testing::set_attr(n, "keepdims", last);
          testing::set_attr(n, "select_last_index", last);
          testing::expect_sound(b, testing::ranges_of({{"x", {lo, hi}}}), op, &tally, 12);
        }
      }
    }
    for (int64_t flags = 0; flags < 4; ++flags) {
      testing::ModelBuilder b(13);
      b.input("x", {3, 5}).output("y", {3, 5});
      b.initializer("bias", bias).initializer("axis", at::tensor(int64_t{1}).reshape({}));
      b.node("Add", {"x", "bias"}, {"z"}, "add");
      auto& n = b.node("CumSum", {"z", "axis"}, {"y"}, "n");
      testing::set_attr(n, "exclusive", flags & 1);
      testing::set_attr(n, "reverse", flags >> 1);
      testing::expect_sound(b, testing::ranges_of({{"x", {lo, hi}}}), "CumSum", &tally, 12);
    }
  }
  EXPECT_EQ(tally.violations, 0);
  EXPECT_GT(tally.checked, 0);
}

std::vector<std::string> reduce_findings(const std::string& op, double lo, double hi, const std::string& then = "") {
  testing::ModelBuilder b(13);
  b.input("x", {2, 6}).output("y", {-1});
  auto& n = b.node(op, {"x"}, {then.empty() ? "y" : "r"}, "n");
  testing::set_attr(n, "axes", std::vector<int64_t>{1});
  if (!then.empty()) b.node(then, {"r"}, {"y"}, "then");
  return testing::summary(testing::findings_of(b, testing::ranges_of({{"x", {lo, hi}}})));
}

TEST(ReduceAbstract, HazardsAtTheirThresholds) {
  using Names = std::vector<std::string>;
  EXPECT_EQ(reduce_findings("ReduceLogSum", 1e-3, 1), Names{});
  EXPECT_EQ(reduce_findings("ReduceLogSum", 0, 1), Names{"n:log-nonpositive"});
  EXPECT_EQ(reduce_findings("ReduceLogSum", -1, 5), Names{"n:log-nonpositive"});  // widened: the sum can be <= 0
  EXPECT_EQ(reduce_findings("ReduceL2", 1e-20, 1), Names{});
  EXPECT_EQ(reduce_findings("ReduceL2", -1, 1), Names{"n:norm-zero-gradient"});
  EXPECT_EQ(reduce_findings("ReduceL2", 1e-23, 1), Names{"n:norm-zero-gradient"});  // squares underflow to 0
  // log-sum-exp is stable: finite for any finite input short of ~FLT_MAX.
  EXPECT_EQ(reduce_findings("ReduceLogSumExp", -1e30, 1e30), Names{});
  EXPECT_EQ(reduce_findings("ReduceLogSumExp", -1, 3.4e38), Names{});  // max + log(6) rounds to max
  // The float32 sum inside Mean and L2 overflows although the result would fit.
  EXPECT_EQ(reduce_findings("ReduceMean", -1, 1e37), Names{});
  EXPECT_EQ(reduce_findings("ReduceMean", -1, 1e38), Names{"n:overflow"});
  EXPECT_EQ(reduce_findings("ReduceL2", 1, 1e18), Names{});
  EXPECT_EQ(reduce_findings("ReduceL2", 1, 1e19), Names{"n:overflow"});
  // A sum of squares is >= 0: sqrt of it is never negative, only its gradient at 0.
  EXPECT_EQ(reduce_findings("ReduceSumSquare", -1, 1, "Sqrt"), Names{"then:sqrt-zero-gradient"});
  EXPECT_EQ(reduce_findings("ReduceL1", -1e38, 1e38), Names{"n:overflow"});
  // Each bound of a sum carries the rounding error of its own terms: six terms >= 1
  // average >= 1 - 1e-6 although the largest are 1e37 (a softmax's denominator).
  EXPECT_EQ(reduce_findings("ReduceMean", 1, 1e37, "Reciprocal"), Names{});
  EXPECT_EQ(reduce_findings("ReduceMean", 0, 1e37, "Reciprocal"), Names{"then:div-by-zero"});
}

}  // namespace
}  // namespace nanguard
