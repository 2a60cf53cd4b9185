// Sequences and optionals: the executor runs them (positions, splits, a Loop that
// carries a sequence); a tensor op fed a sequence is an error naming the input; the
// analysis reports them as not modelled and never proves past them.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "oracle/nonfinite.h"
#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;
using testing::set_attr;

constexpr int32_t kF = onnx::TensorProto::FLOAT, kI64 = onnx::TensorProto::INT64, kB = onnx::TensorProto::BOOL;

// seq = [a, b]; insert c at `pos` (omitted when pos is empty); y = concat(seq, axis 0).
ModelBuilder insert_model(const std::vector<int64_t>& pos) {
  ModelBuilder b;
  b.initializer("a", at::tensor({1.f})).initializer("b", at::tensor({2.f})).initializer("c", at::tensor({9.f}));
  b.node("SequenceConstruct", {"a", "b"}, {"s"});
  std::vector<std::string> ins = {"s", "c"};
  if (!pos.empty()) {
    b.initializer("pos", at::tensor(pos[0]));
    ins.push_back("pos");
  }
  b.node("SequenceInsert", ins, {"s2"});
  set_attr(b.node("ConcatFromSequence", {"s2"}, {"y"}), "axis", int64_t{0});
  b.output("y", {3});
  return b;
}

TEST(Sequence, InsertPositionsCountFromEitherEnd) {
  auto values = [](std::vector<int64_t> pos) {
    ModelBuilder b = insert_model(pos);
    at::Tensor y = testing::run_output(b, {});
    return y.defined() ? std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel()) : std::vector<float>{};
  };
  EXPECT_EQ(values({}), (std::vector<float>{1, 2, 9}));
  EXPECT_EQ(values({0}), (std::vector<float>{9, 1, 2}));
  EXPECT_EQ(values({-1}), (std::vector<float>{1, 9, 2}));
  EXPECT_EQ(values({2}), (std::vector<float>{1, 2, 9}));
  ModelBuilder bad = insert_model({3});
  EXPECT_NE(testing::run_built(bad, {}).error.find("position 3 is out of range for a sequence of 2"), std::string::npos);
}

// x of length 5 split by `split` (a scalar chunk length, or none); outputs the
// sequence length and the last element.
ModelBuilder split_model(std::optional<int64_t> split, int64_t keepdims) {
  ModelBuilder b;
  b.input("x", {5});
  std::vector<std::string> ins = {"x"};
  if (split) {
    b.initializer("split", at::scalar_tensor(*split, at::kLong));
    ins.push_back("split");
  }
  set_attr(b.node("SplitToSequence", ins, {"s"}), "keepdims", keepdims);
  b.initializer("last", at::scalar_tensor(-1, at::kLong));
  b.node("SequenceLength", {"s"}, {"n"});
  b.node("SequenceAt", {"s", "last"}, {"tail"});
  b.output("n", {}, kI64).output("tail", {-1});
  return b;
}

TEST(Sequence, SplitToSequenceChunksAndSlices) {
  at::Tensor x = at::arange(5, at::kFloat);
  ModelBuilder chunks = split_model(2, 1);
  auto out = testing::run_outputs(chunks, {{"x", x}});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].item<int64_t>(), 3);  // [0 1] [2 3] [4]: the last chunk is shorter
  EXPECT_TRUE(at::equal(out[1], at::tensor({4.f})));
  ModelBuilder slices = split_model(std::nullopt, 0);
  out = testing::run_outputs(slices, {{"x", x}});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].item<int64_t>(), 5);
  EXPECT_EQ(out[1].dim(), 0);  // keepdims=0 squeezes the split axis
}

void add_sequence_value(onnx::ValueInfoProto* v, const std::string& name, int32_t elem) {
  v->set_name(name);
  v->mutable_type()->mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type()->set_elem_type(elem);
}

// for i in 0..2: seq.insert(i); y = concat(seq): a Loop carrying a sequence.
ModelBuilder loop_collect_model() {
  ModelBuilder body;
  auto& g = *body.proto().mutable_graph();
  g.clear_input();
  body.input("i", {}, kI64).input("cond_in", {}, kB);
  add_sequence_value(g.add_input(), "seq_in", kI64);
  body.initializer("axes", at::tensor(std::vector<int64_t>{0}));
  body.node("Unsqueeze", {"i", "axes"}, {"i1"});
  body.node("SequenceInsert", {"seq_in", "i1"}, {"seq_out"});
  body.node("Identity", {"cond_in"}, {"cond_out"});
  body.output("cond_out", {}, kB);
  add_sequence_value(g.add_output(), "seq_out", kI64);

  ModelBuilder b;
  b.initializer("m", at::scalar_tensor(3, at::kLong)).initializer("t", at::scalar_tensor(true, at::kBool));
  set_attr(b.node("SequenceEmpty", {}, {"empty"}), "dtype", int64_t{kI64});
  auto& loop = b.node("Loop", {"m", "t", "empty"}, {"all"});
  auto* a = loop.add_attribute();
  a->set_name("body");
  a->set_type(onnx::AttributeProto::GRAPH);
  *a->mutable_g() = g;
  a->mutable_g()->set_name("body");
  set_attr(b.node("ConcatFromSequence", {"all"}, {"y"}), "axis", int64_t{0});
  b.output("y", {-1}, kI64);
  return b;
}

TEST(Sequence, LoopCarriesASequence) {
  ModelBuilder b = loop_collect_model();
  at::Tensor y = testing::run_output(b, {});
  ASSERT_TRUE(y.defined());
  EXPECT_TRUE(at::equal(y, at::tensor(std::vector<int64_t>{0, 1, 2})));
}

// y = relu(SequenceConstruct(x)): the tensor op names the sequence input.
TEST(Sequence, TensorOpFedASequenceIsAnError) {
  ModelBuilder b;
  b.input("x", {2});
  b.node("SequenceConstruct", {"x"}, {"s"});
  b.node("Relu", {"s"}, {"y"}, "relu");
  b.output("y", {2});
  std::string err = testing::run_built(b, {{"x", at::ones({2})}}).error;
  EXPECT_NE(err.find("'relu'"), std::string::npos) << err;
  EXPECT_NE(err.find("is a sequence"), std::string::npos) << err;
}

// SequenceMap of log over split(x): the NaN is born inside the body, so the run's
// oracle must name the SequenceMap (its output sequence holds it), then the concat.
TEST(Sequence, ANaNBornInASequenceMapBodyIsFound) {
  ModelBuilder body(17);
  auto& g = *body.proto().mutable_graph();
  body.input("e", {-1});
  body.node("Log", {"e"}, {"le"});
  body.output("le", {-1});
  ModelBuilder b(17);  // SequenceMap is new in opset 17
  b.input("x", {3});
  b.node("SplitToSequence", {"x"}, {"s"});
  auto& map = b.node("SequenceMap", {"s"}, {"ls"}, "map");
  auto* a = map.add_attribute();
  a->set_name("body");
  a->set_type(onnx::AttributeProto::GRAPH);
  *a->mutable_g() = g;
  a->mutable_g()->set_name("body");
  set_attr(b.node("ConcatFromSequence", {"ls"}, {"y"}, "concat"), "axis", int64_t{0});
  b.output("y", {3});
  auto graph = load_model_proto(b.proto(), "seqmap.onnx");
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  auto ex = Executor::create(*graph, {});
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  auto run = run_with_oracle(*ex, {{"x", at::tensor({1.f, -1.f, 2.f})}});
  ASSERT_TRUE(run.ok()) << run.status().message();
  ASSERT_EQ(run->nonfinite.size(), 2u);
  EXPECT_EQ(run->nonfinite[0].node, "map");
  EXPECT_TRUE(run->nonfinite[0].born);
  EXPECT_EQ(run->nonfinite[0].nan_count, 1);
  EXPECT_EQ(run->nonfinite[1].node, "concat");
  EXPECT_FALSE(run->nonfinite[1].born);
}

// y = log(concat(split(x))): the log is a hazard for x in [-1, 1]. The analysis
// cannot see through the sequence: it stops at the split, naming it, and proves nothing.
TEST(SequenceAbstract, NeverProvesPastASequence) {
  ModelBuilder b;
  b.input("x", {4});
  b.node("SplitToSequence", {"x"}, {"s"});
  set_attr(b.node("ConcatFromSequence", {"s"}, {"c"}), "axis", int64_t{0});
  b.node("Log", {"c"}, {"y"}, "log");
  b.output("y", {4});
  auto g = load_model_proto(b.proto(), "seq.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  AnalyzeOptions opt = testing::ranges_of({{"x", Range{-1, 1}}});
  auto r = analyze(*g, opt);
  ASSERT_FALSE(r.ok());
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("'SplitToSequence_0'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'s' is a sequence value, which the analysis does not model"), std::string::npos) << msg;
}

}  // namespace
}  // namespace nanguard
