// Indexing ops: out-of-range indices fail clearly (ATen would crash or read
// garbage), negative indices wrap, the opset-dependent forms, reductions, TopK ties.
#include <gtest/gtest.h>

#include "model/onnx_loader.h"
#include "oracle/executor.h"
#include "test_models.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;
using testing::set_attr;

void set_string(onnx::NodeProto& node, const std::string& name, const std::string& value) {
  auto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(value);
}

Result<ExecResult> run(testing::ModelBuilder& b, const TensorMap& feeds) {
  auto g = load_model_proto(b.proto(), "indexing_test.onnx");
  if (!g.ok()) return g.status();
  auto ex = Executor::create(*g);
  if (!ex.ok()) return ex.status();
  return ex->run(feeds);
}

at::Tensor longs(std::vector<int64_t> v) { return at::tensor(v, at::kLong); }

TEST(Indexing, GatherOutOfRangeIndexFailsNamingIndexAndBound) {
  testing::ModelBuilder b(13);
  b.input("x", {4}).input("i", {3}, TP::INT64).output("y", {3});
  b.node("Gather", {"x", "i"}, {"y"}, "g");
  at::Tensor x = at::tensor({1.f, 2.f, 3.f, 4.f});
  auto bad = run(b, {{"x", x}, {"i", longs({0, 4, 1})}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("index 4 is out of range for axis 0 of size 4"), std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(run(b, {{"x", x}, {"i", longs({-5, 0, 0})}}).ok());
  // -4 wraps to 0; a repeated index accumulates its gradient.
  at::Tensor xg = x.clone().requires_grad_();
  auto ok = run(b, {{"x", xg}, {"i", longs({-1, -4, 3})}});
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_TRUE(at::equal(ok->outputs[0].detach(), at::tensor({4.f, 1.f, 4.f})));
  ok->outputs[0].sum().backward();
  EXPECT_TRUE(at::equal(xg.grad(), at::tensor({1.f, 0.f, 0.f, 2.f})));
}

TEST(Indexing, GatherNDBatchDims) {
  testing::ModelBuilder b(13);
  b.input("x", {2, 2, 2}).input("i", {2, 1}, TP::INT64).output("y", {2, 2});
  set_attr(b.node("GatherND", {"x", "i"}, {"y"}, "g"), "batch_dims", int64_t{1});
  at::Tensor x = at::arange(8, at::kFloat).reshape({2, 2, 2});
  auto r = run(b, {{"x", x}, {"i", longs({1, -2}).reshape({2, 1})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::equal(r->outputs[0], at::tensor({2.f, 3.f, 4.f, 5.f}).reshape({2, 2})));
}

TEST(Indexing, ScatterReductionsAndDeprecatedScatter) {
  at::Tensor data = at::ones({4});
  at::Tensor upd = at::tensor({2.f, 3.f, 5.f});
  at::Tensor idx = longs({1, 1, -1});
  auto scatter = [&](int64_t opset, const char* op, const char* reduction) {
    testing::ModelBuilder b(opset);
    b.input("d", {4}).input("i", {3}, TP::INT64).input("u", {3}).output("y", {4});
    auto& n = b.node(op, {"d", "i", "u"}, {"y"}, "s");
    if (reduction) set_string(n, "reduction", reduction);
    return run(b, {{"d", data}, {"i", idx}, {"u", upd}});
  };
  auto add = scatter(16, "ScatterElements", "add");
  ASSERT_TRUE(add.ok()) << add.status().message();
  EXPECT_TRUE(at::equal(add->outputs[0], at::tensor({1.f, 6.f, 1.f, 6.f})));
  auto mul = scatter(16, "ScatterElements", "mul");
  ASSERT_TRUE(mul.ok()) << mul.status().message();
  EXPECT_TRUE(at::equal(mul->outputs[0], at::tensor({1.f, 6.f, 1.f, 5.f})));
  idx = longs({0, 2, 3});
  auto old_form = scatter(9, "Scatter", nullptr);
  ASSERT_TRUE(old_form.ok()) << old_form.status().message();
  EXPECT_TRUE(at::equal(old_form->outputs[0], at::tensor({2.f, 1.f, 3.f, 5.f})));
}

TEST(Indexing, ScatterNDChecksIndicesAndReduces) {
  auto scatter = [](const at::Tensor& idx, const char* reduction) {
    testing::ModelBuilder b(16);
    b.input("d", {2, 2}).input("i", {2, 1}, TP::INT64).input("u", {2, 2}).output("y", {2, 2});
    auto& n = b.node("ScatterND", {"d", "i", "u"}, {"y"}, "s");
    if (reduction) set_string(n, "reduction", reduction);
    return run(b, {{"d", at::ones({2, 2})}, {"i", idx}, {"u", at::full({2, 2}, 3.f)}});
  };
  auto add = scatter(longs({1, 1}).reshape({2, 1}), "add");
  ASSERT_TRUE(add.ok()) << add.status().message();
  EXPECT_TRUE(at::equal(add->outputs[0], at::tensor({1.f, 1.f, 7.f, 7.f}).reshape({2, 2})));
  auto bad = scatter(longs({0, 2}).reshape({2, 1}), nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("index 2 is out of range"), std::string::npos) << bad.status().message();
}

TEST(Indexing, TopKTiesPreferLowerIndexAndKMovesToInputAt10) {
  at::Tensor x = at::tensor({1.f, 3.f, 3.f, 0.f, 3.f});
  testing::ModelBuilder old_form(9);
  old_form.input("x", {5}).output("v", {2}).output("i", {2}, TP::INT64);
  set_attr(old_form.node("TopK", {"x"}, {"v", "i"}, "t"), "k", int64_t{2});
  testing::ModelBuilder new_form(11);
  new_form.input("x", {5}).output("v", {2}).output("i", {2}, TP::INT64).initializer("k", longs({2}));
  new_form.node("TopK", {"x", "k"}, {"v", "i"}, "t");
  for (auto* b : {&old_form, &new_form}) {
    auto r = run(*b, {{"x", x}});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(at::equal(r->outputs[1], longs({1, 2})));
  }
  testing::ModelBuilder smallest(11);
  smallest.input("x", {5}).output("v", {3}).output("i", {3}, TP::INT64).initializer("k", longs({3}));
  set_attr(smallest.node("TopK", {"x", "k"}, {"v", "i"}, "t"), "largest", int64_t{0});
  auto r = run(smallest, {{"x", x}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::equal(r->outputs[1], longs({3, 0, 1})));
}

TEST(Indexing, OneHotOutOfRangeGivesOffValues) {
  testing::ModelBuilder b(11);
  b.input("i", {3}, TP::INT64).output("y", {3, 3});
  b.initializer("depth", longs({3})).initializer("v", at::tensor({-1.f, 5.f}));
  b.node("OneHot", {"i", "depth", "v"}, {"y"}, "o");
  auto r = run(b, {{"i", longs({-1, 3, 0})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  at::Tensor want = at::tensor({-1.f, -1.f, 5.f, -1.f, -1.f, -1.f, 5.f, -1.f, -1.f}).reshape({3, 3});
  EXPECT_TRUE(at::equal(r->outputs[0], want));
}

TEST(Indexing, UniqueUnsortedKeepsFirstOccurrenceOrder) {
  testing::ModelBuilder b(11);
  b.input("x", {6}).output("y", {-1}).output("first", {-1}, TP::INT64);
  b.output("inv", {-1}, TP::INT64).output("counts", {-1}, TP::INT64);
  set_attr(b.node("Unique", {"x"}, {"y", "first", "inv", "counts"}, "u"), "sorted", int64_t{0});
  auto r = run(b, {{"x", at::tensor({2.f, 1.f, 1.f, 3.f, 4.f, 3.f})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::equal(r->outputs[0], at::tensor({2.f, 1.f, 3.f, 4.f})));
  EXPECT_TRUE(at::equal(r->outputs[1], longs({0, 1, 3, 4})));
  EXPECT_TRUE(at::equal(r->outputs[2], longs({0, 1, 1, 2, 3, 2})));
  EXPECT_TRUE(at::equal(r->outputs[3], longs({1, 2, 2, 1})));
}

}  // namespace
}  // namespace nanguard
