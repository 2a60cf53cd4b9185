// Pools: ONNX's asymmetric pads (-inf for MaxPool, excluded or counted zeros for
// AveragePool), ceil_mode, the Indices output, dtypes, NaN propagation, gradients.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::run_node;
using testing::seq;
using testing::set_attr;
using testing::set_string;

testing::AttrFn window(std::vector<int64_t> k, std::vector<int64_t> pads, int64_t include_pad = 0,
                       int64_t ceil = 0, std::vector<int64_t> strides = {}) {
  return [=](onnx::NodeProto& n) {
    set_attr(n, "kernel_shape", k);
    if (!pads.empty()) set_attr(n, "pads", pads);
    if (!strides.empty()) set_attr(n, "strides", strides);
    if (include_pad) set_attr(n, "count_include_pad", include_pad);
    if (ceil) set_attr(n, "ceil_mode", ceil);
  };
}

TEST(Pool, MaxPoolPadsWithMinusInfinityAndPropagatesNaN) {
  auto r = run_node(12, "MaxPool", {{"x", seq({-1, -2, -3})}}, window({2}, {1, 0}), 1, 3);
  ASSERT_EQ(r.error, "");
  EXPECT_TRUE(at::equal(r.outputs[0], seq({-1, -1, -2})));  // a zero pad would give 0 first
  float nan = std::numeric_limits<float>::quiet_NaN();
  auto n = run_node(12, "MaxPool", {{"x", seq({1, nan, 3, 4})}}, window({2}, {}), 1, 3);
  ASSERT_EQ(n.error, "");
  EXPECT_TRUE(std::isnan(n.outputs[0][0][0][0].item<float>()));
  EXPECT_TRUE(std::isnan(n.outputs[0][0][0][1].item<float>()));
  EXPECT_EQ(n.outputs[0][0][0][2].item<float>(), 4.f);
  auto g = run_node(12, "GlobalMaxPool", {{"x", seq({1, nan, 3})}}, {}, 1, 3);
  ASSERT_EQ(g.error, "");
  EXPECT_TRUE(std::isnan(g.outputs[0].item<float>()));
}

TEST(Pool, AveragePoolCountIncludePadAndCeilMode) {
  at::Tensor x = seq({2, 4, 6, 8});
  auto excl = run_node(11, "AveragePool", {{"x", x}}, window({3}, {2, 0}), 1, 3);
  auto incl = run_node(11, "AveragePool", {{"x", x}}, window({3}, {2, 0}, 1), 1, 3);
  ASSERT_EQ(excl.error, "");
  ASSERT_EQ(incl.error, "");
  EXPECT_TRUE(at::allclose(excl.outputs[0], seq({2, 3, 4, 6})));
  EXPECT_TRUE(at::allclose(incl.outputs[0], seq({2.f / 3, 2, 4, 6})));
  // ceil_mode: the last window (8 and what lies past the end) averages only the 8.
  auto ceil = run_node(11, "AveragePool", {{"x", x}}, window({2}, {}, 1, 1, {3}), 1, 3);
  ASSERT_EQ(ceil.error, "");
  EXPECT_TRUE(at::allclose(ceil.outputs[0], seq({3, 8})));
}

TEST(Pool, AveragePoolGradientAndSameLower) {
  at::Tensor x = at::tensor({1.f, 2.f, 3.f}).reshape({1, 1, 3}).requires_grad_(true);
  auto r = run_node(11, "AveragePool", {{"x", x}}, [](onnx::NodeProto& n) {
    set_attr(n, "kernel_shape", std::vector<int64_t>{2});
    set_string(n, "auto_pad", "SAME_LOWER");
  }, 1, 3);
  ASSERT_EQ(r.error, "");
  EXPECT_TRUE(at::allclose(r.outputs[0], seq({1, 1.5, 2.5})));  // the pad is at the front, uncounted
  r.outputs[0].sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), seq({1.5, 1, 0.5})));
}

TEST(Pool, MaxPoolIndicesIgnorePaddingAndFollowStorageOrder) {
  at::Tensor x = at::tensor({1.f, 9.f, 3.f, 4.f, 5.f, 6.f}).reshape({1, 1, 2, 3});
  auto attrs = [](int64_t order) {
    return [order](onnx::NodeProto& n) {
      set_attr(n, "kernel_shape", std::vector<int64_t>{2, 2});
      set_attr(n, "pads", std::vector<int64_t>{0, 1, 0, 0});
      set_attr(n, "storage_order", order);
    };
  };
  auto row = run_node(12, "MaxPool", {{"x", x}}, attrs(0), 2, 4);
  ASSERT_EQ(row.error, "");
  EXPECT_TRUE(at::equal(row.outputs[0].flatten(), at::tensor({4.f, 9.f, 9.f})));
  EXPECT_TRUE(at::equal(row.outputs[1].flatten(), at::tensor({3, 1, 1}, at::kLong)));
  auto col = run_node(12, "MaxPool", {{"x", x}}, attrs(1), 2, 4);
  ASSERT_EQ(col.error, "");
  EXPECT_TRUE(at::equal(col.outputs[1].flatten(), at::tensor({1, 2, 2}, at::kLong)));
}

TEST(Pool, IntegerMaxPoolAndLpPools) {
  at::Tensor q = at::tensor({200, 3, 255, 7}, at::kByte).reshape({1, 1, 4});
  auto r = run_node(12, "MaxPool", {{"x", q}}, window({2}, {}), 1, 3, onnx::TensorProto::UINT8);
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.outputs[0].scalar_type(), at::kByte);
  EXPECT_TRUE(at::equal(r.outputs[0], at::tensor({200, 255, 255}, at::kByte).reshape({1, 1, 3})));
  auto lp = run_node(11, "LpPool", {{"x", seq({3, -4, 0})}}, window({2}, {}), 1, 3);
  ASSERT_EQ(lp.error, "");
  EXPECT_TRUE(at::allclose(lp.outputs[0], seq({5, 4})));
  auto glp = run_node(11, "GlobalLpPool", {{"x", seq({1, -2, 2})}}, [](onnx::NodeProto& n) {
    set_attr(n, "p", int64_t{1});
  }, 1, 3);
  ASSERT_EQ(glp.error, "");
  EXPECT_FLOAT_EQ(glp.outputs[0].item<float>(), 5.f);
}


// ---- abstract semantics -------------------------------------------------------

using testing::analyze_built;
using testing::expect_sound;
using testing::ModelBuilder;
using testing::ranges_of;

ModelBuilder pool_model(const char* op, const std::vector<int64_t>& out, bool indices = false) {
  ModelBuilder b;
  b.input("x", {1, 2, 5, 6}).output("y", out);
  std::vector<std::string> outs{"y"};
  if (indices) {
    b.output("i", out, onnx::TensorProto::INT64);
    outs.push_back("i");
  }
  b.node(op, {"x"}, outs, "n");
  return b;
}

TEST(PoolAbstract, SoundBySampling) {
  int64_t checked = 0;
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{{-3, 3}, {0, 1}, {1e-30, 1e-20}, {0.999, 1.001}, {-1e20, 1e20}, {-1e37, 1e37}}) {
    std::string box = std::to_string(lo) + "," + std::to_string(hi);
    auto opt = ranges_of({{"x", {lo, hi}}});
    for (const char* op : {"MaxPool", "AveragePool", "LpPool"}) {
      for (int include_pad : {0, 1}) {
        ModelBuilder b = pool_model(op, {1, 2, 3, 3}, std::string(op) == "MaxPool");
        auto& n = *b.proto().mutable_graph()->mutable_node(0);
        set_attr(n, "kernel_shape", std::vector<int64_t>{3, 2});
        set_attr(n, "strides", std::vector<int64_t>{2, 2});
        set_attr(n, "pads", std::vector<int64_t>{1, 0, 1, 1});
        if (std::string(op) == "AveragePool") set_attr(n, "count_include_pad", int64_t{include_pad});
        checked += expect_sound(b, opt, std::string(op) + " " + box, nullptr, 20);
      }
    }
    for (const char* op : {"GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool"}) {
      ModelBuilder b = pool_model(op, {1, 2, 1, 1});
      checked += expect_sound(b, opt, std::string(op) + " " + box, nullptr, 20);
    }
  }
  EXPECT_GT(checked, 1000);
}

using testing::hazards_of;

TEST(PoolAbstract, LpPoolHazards) {
  auto lp = [](const char* op) {
    ModelBuilder b = pool_model(op, std::string(op) == "LpPool" ? std::vector<int64_t>{1, 2, 4, 5} : std::vector<int64_t>{1, 2, 1, 1});
    if (std::string(op) == "LpPool")
      set_attr(*b.proto().mutable_graph()->mutable_node(0), "kernel_shape", std::vector<int64_t>{2, 2});
    return b;
  };
  for (const char* op : {"LpPool", "GlobalLpPool"}) {
    ModelBuilder a = lp(op), z = lp(op), o = lp(op);
    EXPECT_TRUE(analyze_built(a, ranges_of({{"x", {1e-3, 1}}}), "pos").findings.empty()) << op;
    auto r = analyze_built(z, ranges_of({{"x", {0, 1}}}), "zero");
    EXPECT_EQ(hazards_of(r), std::vector<std::string>{"lppool-zero-gradient"}) << op;
    EXPECT_EQ(r.findings[0].kind, HazardKind::kGradient);
    auto big = analyze_built(o, ranges_of({{"x", {1e19, 1e20}}}), "big");
    EXPECT_EQ(hazards_of(big), std::vector<std::string>{"lppool-overflow"}) << op;
    EXPECT_EQ(big.findings[0].status, "definite");
  }
}

TEST(PoolAbstract, EmptyAverageWindowIsReported) {
  ModelBuilder b = pool_model("AveragePool", {1, 2, 4, 5});
  auto& n = *b.proto().mutable_graph()->mutable_node(0);
  set_attr(n, "kernel_shape", std::vector<int64_t>{2, 2});
  set_attr(n, "pads", std::vector<int64_t>{2, 0, 0, 0});
  auto r = analyze_built(b, ranges_of({{"x", {1, 2}}}), "empty");
  EXPECT_EQ(hazards_of(r), std::vector<std::string>{"avgpool-empty-window"});
}

// Averages sum their window in float32 first: 4 values of -3e38 sum to -inf
// although their mean is in range (fuzz_soundness found it on
// test_averagepool_2d_same_upper); a 2x2 window of values under FLT_MAX / 4 is safe.
TEST(PoolAbstract, AverageOfAWindowNearFloatMaxOverflowsInItsSum) {
  auto average = [](const char* op) {
    ModelBuilder b = pool_model(op, std::string(op) == "AveragePool" ? std::vector<int64_t>{1, 2, 4, 5} : std::vector<int64_t>{1, 2, 1, 1});
    if (std::string(op) == "AveragePool")
      set_attr(*b.proto().mutable_graph()->mutable_node(0), "kernel_shape", std::vector<int64_t>{2, 2});
    return b;
  };
  for (const char* op : {"AveragePool", "GlobalAveragePool"}) {
    ModelBuilder big = average(op), safe = average(op);
    EXPECT_EQ(hazards_of(analyze_built(big, ranges_of({{"x", {-3.4e38, -3e38}}}), "big")),
              std::vector<std::string>{"overflow"}) << op;
    double quarter = std::string(op) == "AveragePool" ? 8e37 : 1e37;  // 4 and 30 terms
    EXPECT_TRUE(analyze_built(safe, ranges_of({{"x", {-quarter, quarter}}}), "safe").findings.empty()) << op;
    expect_sound(big, ranges_of({{"x", {-3.4e38, -3e38}}}), op);
  }
  at::Tensor x = at::full({1, 1, 2, 2}, -3e38f);
  EXPECT_TRUE(std::isinf(at::avg_pool2d(x, {2, 2}).item<float>()));
}

// MaxPool -> Log: proved on [1, 2]; flagged once the range reaches 0.
TEST(PoolAbstract, ProofFailsWhenRangeWidens) {
  for (auto [lo, expect] : {std::pair{1.0, 0u}, std::pair{0.0, 1u}}) {
    ModelBuilder b;
    b.input("x", {1, 1, 4, 4}).output("y", {1, 1, 1, 1});
    b.node("GlobalAveragePool", {"x"}, {"p"}, "pool");
    b.node("Log", {"p"}, {"y"}, "log");
    EXPECT_EQ(analyze_built(b, ranges_of({{"x", {lo, 2}}}), "log").findings.size(), expect);
  }
}

}  // namespace
}  // namespace nanguard
