// The registry carries what once sat in tables outside ops/: symbolic transfers and
// the affine flag (analyzer/symbolic_bounds.cc, analyzer.cc), the inputs free weights
// keep fixed or >= 0 (initial_state.cc), a quotient's divisor (solver/clip_operand.cc);
// and symbolic bounds read from it are the ones the tables gave.
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "analyzer/symbolic_bounds.h"
#include "model/onnx_loader.h"
#include "ops/op_registry.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;
using testing::set_attr;

const OpDef& def_of(const std::string& op) {
  const OpDef* d = OpRegistry::instance().find(op);
  if (!d) throw std::runtime_error("no op " + op);
  return *d;
}

TEST(OpRegistryFacets, EveryAffineOpHasASymbolicTransfer) {
  int affine = 0;
  for (const std::string& name : OpRegistry::instance().op_types()) {
    size_t dot = name.rfind('.');
    const OpDef* d = dot == std::string::npos ? OpRegistry::instance().find(name)
                                              : OpRegistry::instance().find(name.substr(dot + 1), name.substr(0, dot));
    ASSERT_NE(d, nullptr) << name;
    if (!d->affine) continue;
    ++affine;
    EXPECT_TRUE(d->symbolic) << name << " is affine but has no symbolic transfer";
  }
  EXPECT_EQ(affine, 6);
}

TEST(OpRegistryFacets, SymbolicTransfersAndAffineFlags) {
  for (const char* op : {"Conv", "Gemm", "MatMul", "BatchNormalization", "Add", "Sub", "Mul", "Div", "Relu", "Identity",
                         "Concat"}) {
    EXPECT_TRUE(def_of(op).symbolic) << op;
    EXPECT_TRUE(has_symbolic_transfer(op)) << op;
  }
  for (const char* op : {"Conv", "Gemm", "MatMul", "Add", "Sub", "BatchNormalization"}) EXPECT_TRUE(def_of(op).affine) << op;
  for (const char* op : {"Mul", "Div", "Relu", "Identity", "Concat", "ConvTranspose", "Einsum"})
    EXPECT_FALSE(def_of(op).affine) << op;
  for (const char* op : {"ConvTranspose", "Einsum", "Sigmoid", "Reshape"}) EXPECT_FALSE(has_symbolic_transfer(op)) << op;
}

TEST(OpRegistryFacets, InputRolesForFreeWeights) {
  const OpDef& bn = def_of("BatchNormalization");
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(bn.input_role(i), InputRole::kValue) << i;
  EXPECT_EQ(bn.input_role(4), InputRole::kNonnegative);
  for (const char* op : {"Resize", "Upsample"}) {
    const OpDef& r = def_of(op);
    EXPECT_EQ(r.input_role(0), InputRole::kValue) << op;
    size_t inputs = std::string(op) == "Resize" ? 4 : 2;
    for (size_t i = 1; i < inputs; ++i) EXPECT_EQ(r.input_role(i), InputRole::kStructural) << op << " " << i;
  }
  EXPECT_EQ(def_of("Conv").input_role(1), InputRole::kValue);
}

TEST(OpRegistryFacets, QuotientOperands) {
  ASSERT_TRUE(def_of("Div").quotient.has_value());
  EXPECT_EQ(def_of("Div").quotient->numerator, 0);
  EXPECT_EQ(def_of("Div").quotient->divisor, 1);
  ASSERT_TRUE(def_of("Reciprocal").quotient.has_value());
  EXPECT_EQ(def_of("Reciprocal").quotient->numerator, -1);
  EXPECT_EQ(def_of("Reciprocal").quotient->divisor, 0);
  for (const char* op : {"Mod", "Pow", "Mul"}) EXPECT_FALSE(def_of(op).quotient.has_value()) << op;
}

// Deterministic weights without a generator: a scaled sine of the element index.
at::Tensor weight(std::vector<int64_t> shape, double scale, double phase) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return (at::sin(at::arange(n, at::kDouble) * 0.731 + phase) * scale).to(at::kFloat).reshape(shape);
}

// Every transfer that the tables held but the dense ones: a padded Conv, BN, Relu,
// Identity, a 1x1 Conv, Mul and Div by constants, Add (of two rows meeting at bn), Sub
// of a constant, and a channel Concat: ten nodes, one window.
ModelBuilder conv_graph() {
  ModelBuilder b;
  b.input("x", {1, 3, 6, 6}).output("out", {1, 8, 6, 6});
  b.initializer("w1", weight({4, 3, 3, 3}, 0.5, 0.1)).initializer("b1", weight({4}, 0.2, 0.2));
  b.initializer("g", weight({4}, 0.3, 0.3) + 1).initializer("beta", weight({4}, 0.2, 0.4));
  b.initializer("mean", weight({4}, 0.3, 0.5)).initializer("var", weight({4}, 0.2, 0.6) + 0.5);
  b.initializer("w2", weight({4, 4, 1, 1}, 0.6, 0.7)).initializer("half", at::full({1}, 0.5f));
  b.initializer("two", at::full({1, 4, 1, 1}, 2.f)).initializer("k", weight({1, 4, 1, 1}, 0.4, 0.8));
  auto& c1 = b.node("Conv", {"x", "w1", "b1"}, {"c1"});
  set_attr(c1, "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.node("BatchNormalization", {"c1", "g", "beta", "mean", "var"}, {"bn"});
  b.node("Relu", {"bn"}, {"r1"});
  b.node("Identity", {"r1"}, {"id"});
  b.node("Conv", {"id", "w2"}, {"c2"});
  b.node("Mul", {"c2", "half"}, {"m"});
  b.node("Div", {"m", "two"}, {"d"});
  b.node("Add", {"d", "bn"}, {"s"});
  b.node("Sub", {"s", "k"}, {"t"});
  set_attr(b.node("Concat", {"t", "r1"}, {"out"}), "axis", int64_t{1});
  return b;
}

// Gemm (transposed weight, alpha, beta, bias), Relu, MatMul.
ModelBuilder dense_graph() {
  ModelBuilder b;
  b.input("x", {1, 3}).output("y", {1, 2});
  b.initializer("w1", weight({4, 3}, 0.8, 0.9)).initializer("b1", weight({4}, 0.5, 1.0));
  b.initializer("w2", weight({4, 2}, 0.7, 1.1));
  auto& gemm = b.node("Gemm", {"x", "w1", "b1"}, {"h"});
  set_attr(gemm, "transB", int64_t{1});
  set_attr(gemm, "alpha", 0.5f);
  set_attr(gemm, "beta", 2.f);
  b.node("Relu", {"h"}, {"r"});
  b.node("MatMul", {"r", "w2"}, {"y"});
  return b;
}

// The per-channel symbolic bounds of `target` over the plain intervals, as [lo..., hi...].
std::vector<double> channel_bounds(ModelBuilder& b, const std::string& target, double lo, double hi) {
  auto g = load_model_proto(b.proto(), "registry.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  AnalyzeOptions plain{{{"x", {lo, hi}}}};
  plain.symbolic_window = 0;
  auto r = analyze(*g, plain);
  EXPECT_TRUE(r.ok()) << r.status().message();
  auto s = symbolic_channel_bounds(*g, r->intervals, target, r->intervals.at(target));
  EXPECT_TRUE(s.has_value());
  std::vector<double> v;
  for (const at::Tensor& t : {s->lo, s->hi})
    for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t[i].item<double>());
  return v;
}

void expect_bounds(const std::vector<double>& got, const std::vector<double>& want, const char* graph) {
  ASSERT_EQ(got.size(), want.size()) << graph;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_DOUBLE_EQ(got[i], want[i]) << graph << " bound " << i;
}

// The bounds the tables' transfers gave before they moved into ops/ (recorded then).
TEST(OpRegistryFacets, SymbolicBoundsUnchangedOnSmallGraphs) {
  ModelBuilder conv = conv_graph(), dense = dense_graph();
  // [lo..., hi...] per channel of out (8) and of y (2).
  expect_bounds(channel_bounds(conv, "out", -1, 1), {
     -11.417324999139369, -14.610672319859667, -16.858587704687181, -14.420633160400291,
     -1.0362012424770013e-14, -1.1699453452476809e-14, -13.683460964662979, -13.000802695170876,
     14.813964031527599, 11.933847910533196, 18.146004181880123, 10.431511725225306, 11.532862770009068,
     13.164938685219923, 13.820543064058015, 13.228239506180703}, "conv");
  expect_bounds(channel_bounds(dense, "y", 0, 3), {
     0.07039864384713744, -0.11798073331399266, 1.3868755436667202, 2.6633107797411086}, "dense");
}

}  // namespace
}  // namespace nanguard
