// Shape ops: the opset-dependent forms (attribute vs input), the clamping and
// negative-step rules of Slice, Pad's modes and negative pads, Dropout's
// inference/training split, and the size cap on data-sized outputs.
#include <functional>
#include <limits>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;
using testing::longs;
using testing::run_model;
using testing::run_output;
using testing::set_string;
using testing::set_attr;

TEST(Shape, ReshapeZeroCopiesUnlessAllowzero) {
  at::Tensor x = at::zeros({0, 3});
  testing::ModelBuilder copy(13);
  copy.input("x", {0, 3}).output("y", {-1, -1}).initializer("s", longs({3, 0}));
  copy.node("Reshape", {"x", "s"}, {"y"}, "r");
  // Without allowzero the 0 copies x's dimension 1 (3): [3, 3] cannot hold 0 elements.
  EXPECT_FALSE(run_model(copy, {{"x", x}}).ok());
  testing::ModelBuilder zero(14);
  zero.input("x", {0, 3}).output("y", {-1, -1}).initializer("s", longs({3, 0}));
  set_attr(zero.node("Reshape", {"x", "s"}, {"y"}, "r"), "allowzero", int64_t{1});
  EXPECT_EQ(run_output(zero, {{"x", x}}).sizes(), at::IntArrayRef({3, 0}));
  testing::ModelBuilder infer(13);
  infer.input("x", {2, 3, 4}).output("y", {-1, -1}).initializer("s", longs({0, -1}));
  infer.node("Reshape", {"x", "s"}, {"y"}, "r");
  EXPECT_EQ(run_output(infer, {{"x", at::zeros({2, 3, 4})}}).sizes(), at::IntArrayRef({2, 12}));
}

TEST(Shape, SqueezeUnsqueezeAxesMoveToInputAt13) {
  at::Tensor x = at::arange(6, at::kFloat).reshape({1, 2, 1, 3});
  testing::ModelBuilder old_form(11);
  old_form.input("x", {1, 2, 1, 3}).output("y", {2, 3}).output("z", {2, 1, 3});
  set_attr(old_form.node("Squeeze", {"x"}, {"y"}, "s"), "axes", std::vector<int64_t>{0, -2});
  set_attr(old_form.node("Unsqueeze", {"y"}, {"z"}, "u"), "axes", std::vector<int64_t>{-2});
  testing::ModelBuilder new_form(13);
  new_form.input("x", {1, 2, 1, 3}).output("y", {2, 3}).output("z", {2, 1, 3});
  new_form.initializer("a", longs({0, -2})).initializer("b", longs({-2}));
  new_form.node("Squeeze", {"x", "a"}, {"y"}, "s");
  new_form.node("Unsqueeze", {"y", "b"}, {"z"}, "u");
  for (auto* b : {&old_form, &new_form}) {
    auto r = run_model(*b, {{"x", x}});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->outputs[0].sizes(), at::IntArrayRef({2, 3}));
    EXPECT_EQ(r->outputs[1].sizes(), at::IntArrayRef({2, 1, 3}));
  }
  // Squeezing a dimension that is not 1 is an error that names the axis.
  testing::ModelBuilder bad(13);
  bad.input("x", {1, 2, 1, 3}).output("y", {-1}).initializer("a", longs({1}));
  bad.node("Squeeze", {"x", "a"}, {"y"}, "s");
  auto r = run_model(bad, {{"x", x}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot squeeze axis 1 of size 2"), std::string::npos) << r.status().message();
}

TEST(Shape, SplitSizesAttributeBefore13InputFrom13) {
  at::Tensor x = at::arange(5, at::kFloat);
  testing::ModelBuilder old_form(11);
  old_form.input("x", {5}).output("a", {2}).output("b", {3});
  set_attr(old_form.node("Split", {"x"}, {"a", "b"}, "s"), "split", std::vector<int64_t>{2, 3});
  testing::ModelBuilder new_form(13);
  new_form.input("x", {5}).output("a", {2}).output("b", {3}).initializer("sp", longs({2, 3}));
  new_form.node("Split", {"x", "sp"}, {"a", "b"}, "s");
  for (auto* b : {&old_form, &new_form}) {
    auto r = run_model(*b, {{"x", x}});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(at::equal(r->outputs[1], at::tensor({2.f, 3.f, 4.f})));
  }
  testing::ModelBuilder uneven(13);
  uneven.input("x", {5}).output("a", {-1}).output("b", {-1});
  uneven.node("Split", {"x"}, {"a", "b"}, "s");
  EXPECT_FALSE(run_model(uneven, {{"x", x}}).ok());
}

TEST(Shape, SliceNegativeStepClampsAndCarriesGradient) {
  at::Tensor x = at::arange(6, at::kFloat).requires_grad_();
  testing::ModelBuilder b(13);
  b.input("x", {6}).output("y", {-1});
  // start 100 clamps to 5; end INT64_MIN clamps to -1 (one before the first).
  b.initializer("st", longs({100})).initializer("en", longs({std::numeric_limits<int64_t>::min()}));
  b.initializer("ax", longs({0})).initializer("sp", longs({-2}));
  b.node("Slice", {"x", "st", "en", "ax", "sp"}, {"y"}, "s");
  at::Tensor y = run_output(b, {{"x", x}});
  EXPECT_TRUE(at::equal(y.detach(), at::tensor({5.f, 3.f, 1.f})));
  y.sum().backward();
  EXPECT_TRUE(at::equal(x.grad(), at::tensor({0.f, 1.f, 0.f, 1.f, 0.f, 1.f})));
  // Opset 9: attributes, positive steps only; an end past the axis clamps.
  testing::ModelBuilder old_form(9);
  old_form.input("x", {6}).output("y", {-1});
  auto& n = old_form.node("Slice", {"x"}, {"y"}, "s");
  set_attr(n, "starts", std::vector<int64_t>{-2});
  set_attr(n, "ends", std::vector<int64_t>{1000});
  EXPECT_TRUE(at::equal(run_output(old_form, {{"x", x.detach()}}), at::tensor({4.f, 5.f})));
}

// Slice against a plain loop over the ONNX-10+ clamping rules. They match CPython's
// slice.indices() except for a start below -len with a negative step: ONNX clamps
// it to 0 (one element), Python to -1 (empty); nanguard follows the spec text, as
// onnxruntime does.
std::vector<float> spec_slice(int64_t len, int64_t start, int64_t stop, int64_t step) {
  auto clamp = [&](int64_t v, int64_t lo, int64_t hi) { v = v < 0 ? v + len : v; return std::min(std::max(v, lo), hi); };
  int64_t first = step > 0 ? clamp(start, 0, len) : clamp(start, 0, len - 1);
  int64_t last = step > 0 ? clamp(stop, 0, len) : clamp(stop, -1, len - 1);
  std::vector<float> out;
  for (int64_t i = first; step > 0 ? i < last : i > last; i += step) out.push_back(static_cast<float>(i));
  return out;
}

TEST(Shape, SliceFollowsTheSpecClampingEverywhere) {
  testing::ModelBuilder b(13);
  b.input("x", {5}).input("st", {1}, TP::INT64).input("en", {1}, TP::INT64).input("sp", {1}, TP::INT64);
  b.output("y", {-1}).initializer("ax", longs({0}));
  b.node("Slice", {"x", "st", "en", "ax", "sp"}, {"y"}, "s");
  auto g = load_model_proto(b.proto(), "slice.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto ex = Executor::create(*g);
  ASSERT_TRUE(ex.ok());
  at::Tensor x = at::arange(5, at::kFloat);
  for (int64_t st = -8; st <= 8; ++st)
    for (int64_t en = -8; en <= 8; ++en)
      for (int64_t sp : {-3, -2, -1, 1, 2, 3}) {
        auto r = ex->run({{"x", x}, {"st", longs({st})}, {"en", longs({en})}, {"sp", longs({sp})}});
        ASSERT_TRUE(r.ok()) << r.status().message();
        std::vector<float> want = spec_slice(5, st, en, sp);
        ASSERT_TRUE(at::equal(r->outputs[0], at::tensor(want).reshape({static_cast<int64_t>(want.size())})))
            << "start " << st << " end " << en << " step " << sp;
      }
}

TEST(Shape, PadModesNegativePadsAndAttributeForm) {
  at::Tensor x = at::tensor({1.f, 2.f, 3.f});
  auto pad = [&](const std::string& mode, std::vector<int64_t> pads) {
    testing::ModelBuilder b(13);
    b.input("x", {3}).output("y", {-1}).initializer("p", longs(pads));
    set_string(b.node("Pad", {"x", "p"}, {"y"}, "p"), "mode", mode);
    return run_output(b, {{"x", x}});
  };
  // A reflect pad longer than the axis keeps reflecting, as numpy.pad does.
  EXPECT_TRUE(at::equal(pad("reflect", {4, 0}), at::tensor({1.f, 2.f, 3.f, 2.f, 1.f, 2.f, 3.f})));
  EXPECT_TRUE(at::equal(pad("edge", {-1, 2}), at::tensor({2.f, 3.f, 3.f, 3.f})));
  EXPECT_TRUE(at::equal(pad("constant", {1, -2}), at::tensor({0.f, 1.f})));
  // Opset 2 takes pads and the value as attributes.
  testing::ModelBuilder old_form(7);
  old_form.input("x", {3}).output("y", {-1});
  auto& n = old_form.node("Pad", {"x"}, {"y"}, "p");
  set_attr(n, "pads", std::vector<int64_t>{1, 1});
  set_attr(n, "value", 7.5f);
  EXPECT_TRUE(at::equal(run_output(old_form, {{"x", x}}), at::tensor({7.5f, 1.f, 2.f, 3.f, 7.5f})));
  // The constant_value input (opset 11+) receives a gradient per padded cell.
  testing::ModelBuilder cv(13);
  cv.input("x", {3}).input("c", {}).output("y", {-1}).initializer("p", longs({2, 1}));
  cv.node("Pad", {"x", "p", "c"}, {"y"}, "p");
  // ModelBuilder::input({}) leaves the shape out; a scalar needs an empty shape.
  cv.proto().mutable_graph()->mutable_input(1)->mutable_type()->mutable_tensor_type()->mutable_shape();
  at::Tensor c = at::scalar_tensor(-1.f).requires_grad_();
  at::Tensor y = run_output(cv, {{"x", x}, {"c", c}});
  EXPECT_TRUE(at::equal(y.detach(), at::tensor({-1.f, -1.f, 1.f, 2.f, 3.f, -1.f})));
  y.sum().backward();
  EXPECT_EQ(c.grad().item<float>(), 3.f);
}

TEST(Shape, PadUnknownModeIsNotSupported) {
  testing::ModelBuilder b(13);
  b.input("x", {3}).output("y", {-1}).initializer("p", longs({1, 1}));
  set_string(b.node("Pad", {"x", "p"}, {"y"}, "p"), "mode", "wrap");
  auto r = run_model(b, {{"x", at::ones({3})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("mode 'wrap' is not supported"), std::string::npos) << r.status().message();
}

TEST(Shape, DropoutIsIdentityInInferenceAndRefusesTraining) {
  at::Tensor x = at::tensor({1.f, std::numeric_limits<float>::quiet_NaN()});
  testing::ModelBuilder infer(13);
  infer.input("x", {2}).output("y", {2}).output("m", {2}, TP::BOOL);
  infer.node("Dropout", {"x"}, {"y", "m"}, "d");
  auto r = run_model(infer, {{"x", x}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::allclose(r->outputs[0], x, 0, 0, /*equal_nan=*/true));
  EXPECT_TRUE(r->outputs[1].all().item<bool>());
  auto train = [&](float ratio) {
    testing::ModelBuilder b(13);
    b.input("x", {2}).output("y", {2}).initializer("r", at::scalar_tensor(ratio));
    b.initializer("t", at::scalar_tensor(true, at::kBool));
    b.node("Dropout", {"x", "r", "t"}, {"y"}, "d");
    return run_model(b, {{"x", x}});
  };
  auto refused = train(0.5f);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("training-mode Dropout is not supported"), std::string::npos);
  EXPECT_TRUE(train(0.f).ok());
}

TEST(Shape, DataSizedOutputsAreCapped) {
  testing::ModelBuilder b(13);
  b.input("x", {1}).output("y", {-1, -1}).initializer("s", longs({1 << 20, 1 << 20}));
  b.node("Expand", {"x", "s"}, {"y"}, "e");
  auto r = run_model(b, {{"x", at::ones({1})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("over the cap"), std::string::npos) << r.status().message();
}

TEST(Shape, RangeAndShapeSlice) {
  testing::ModelBuilder b(15);
  b.input("x", {2, 3, 4}).output("r", {-1}, TP::INT32).output("s", {-1}, TP::INT64);
  b.initializer("a", at::scalar_tensor(10, at::kInt)).initializer("l", at::scalar_tensor(4, at::kInt));
  b.initializer("d", at::scalar_tensor(-3, at::kInt));
  b.node("Range", {"a", "l", "d"}, {"r"}, "range");
  set_attr(b.node("Shape", {"x"}, {"s"}, "shape"), "start", int64_t{-2});
  auto r = run_model(b, {{"x", at::zeros({2, 3, 4})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::equal(r->outputs[0], at::tensor({10, 7}, at::kInt)));
  EXPECT_TRUE(at::equal(r->outputs[1], longs({3, 4})));
}

// ---- Abstract semantics: data movement keeps bounds, shapes stay exact -----------

// One node `op` on a ranged x of `dims`, with extra (initializer) operands.
void sound_one(testing::SoundTally& tally, const std::string& op, std::vector<int64_t> dims, size_t out_rank,
               const std::vector<std::pair<std::string, at::Tensor>>& inits,
               const std::function<void(onnx::NodeProto&)>& attrs = nullptr, int outputs = 1, int64_t opset = 13) {
  for (auto [lo, hi] : {std::pair{-3.0, 3.0}, std::pair{0.5, 2.0}, std::pair{-1e30, 1e30}}) {
    for (bool free : {false, true}) {
      testing::ModelBuilder b(opset);
      b.input("x", dims);
      std::vector<std::string> ins{"x"}, outs;
      for (const auto& [name, t] : inits) {
        b.initializer(name, t);
        ins.push_back(name);
      }
      for (int i = 0; i < outputs; ++i) {
        outs.push_back("y" + std::to_string(i));
        b.output(outs.back(), std::vector<int64_t>(out_rank, -1), TP::FLOAT);
      }
      auto& n = b.node(op, ins, outs, "n");
      if (attrs) attrs(n);
      AnalyzeOptions opt = free ? testing::free_weights({{"x", {lo, hi}}}, -2, 2) : testing::ranges_of({{"x", {lo, hi}}});
      testing::expect_sound_supported(b, opt, op + (free ? " free" : " fixed"), tally);
    }
  }
}

TEST(ShapeAbstract, DataMovementIsSound) {
  testing::SoundTally tally;
  at::Tensor w = at::randn({2, 3, 4}, at::TensorOptions().dtype(at::kFloat)).mul_(5);
  sound_one(tally, "Reshape", {2, 3, 4}, 2, {{"s", longs({4, -1})}});
  sound_one(tally, "Flatten", {2, 3, 4}, 2, {}, [](auto& n) { set_attr(n, "axis", int64_t{2}); });
  sound_one(tally, "Transpose", {2, 3, 4}, 3, {}, [](auto& n) { set_attr(n, "perm", std::vector<int64_t>{2, 0, 1}); });
  sound_one(tally, "Squeeze", {2, 1, 4}, 2, {{"a", longs({1})}});
  sound_one(tally, "Unsqueeze", {2, 3, 4}, 5, {{"a", longs({0, -1})}});
  sound_one(tally, "Concat", {2, 3, 4}, 3, {{"w", w}}, [](auto& n) { set_attr(n, "axis", int64_t{1}); });
  sound_one(tally, "Split", {2, 3, 4}, 3, {{"s", longs({1, 3})}}, [](auto& n) { set_attr(n, "axis", int64_t{2}); }, 2);
  sound_one(tally, "Slice", {2, 3, 4}, 3, {{"st", longs({3, 0})}, {"en", longs({0, 3})}, {"ax", longs({2, 1})}, {"sp", longs({-2, 2})}});
  sound_one(tally, "Expand", {2, 1, 4}, 4, {{"s", longs({3, 2, 5, 4})}});
  sound_one(tally, "Tile", {2, 3, 4}, 3, {{"r", longs({1, 2, 2})}});
  sound_one(tally, "Pad", {2, 3, 4}, 3, {{"p", longs({0, 1, -1, 1, 2, 0})}, {"v", at::tensor({7.5f})}});
  sound_one(tally, "Pad", {2, 3, 4}, 3, {{"p", longs({0, 2, 1, 1, 0, 3})}}, [](auto& n) { set_string(n, "mode", "reflect"); });
  sound_one(tally, "Pad", {2, 3, 4}, 3, {{"p", longs({1, 0, 2, 0, 3, 0})}}, [](auto& n) { set_string(n, "mode", "edge"); });
  sound_one(tally, "Trilu", {2, 3, 4}, 3, {{"k", longs({1})}}, [](auto& n) { set_attr(n, "upper", int64_t{0}); }, 1, 14);
  sound_one(tally, "Dropout", {2, 3, 4}, 3, {}, nullptr, 1, 13);
  tally.print("shape data movement");
  EXPECT_EQ(tally.violations, 0);
}

// Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as torch.onnx.export writes for
// x.view(x.size(0), -1): the shape values stay exact on a ranged input, so the
// engine runs them concretely and the Reshape moves the bounds.
testing::ModelBuilder torch_view_model() {
  testing::ModelBuilder b(13);
  b.input("x", {2, 3, 4}).output("y", {2, 12});
  b.initializer("zero", at::scalar_tensor(0, at::kLong)).initializer("ax", longs({0})).initializer("minus1", longs({-1}));
  b.node("Shape", {"x"}, {"shape"}, "shape");
  set_attr(b.node("Gather", {"shape", "zero"}, {"batch"}, "gather"), "axis", int64_t{0});
  b.node("Unsqueeze", {"batch", "ax"}, {"batch1"}, "unsqueeze");
  set_attr(b.node("Concat", {"batch1", "minus1"}, {"target"}, "concat"), "axis", int64_t{0});
  b.node("Reshape", {"x", "target"}, {"flat"}, "reshape");
  b.node("Log", {"flat"}, {"y"}, "log");
  return b;
}

TEST(ShapeAbstract, PyTorchShapeSubgraphStaysExact) {
  testing::ModelBuilder b = torch_view_model();
  AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"x", {0.5, 2.0}}}));
  EXPECT_TRUE(r.findings.empty()) << ::testing::PrintToString(testing::kind_summary(r));
  EXPECT_TRUE(r.unsupported.empty());
  for (const char* t : {"shape", "batch", "batch1", "target"}) EXPECT_TRUE(r.intervals.at(t).exact()) << t;
  EXPECT_TRUE(at::equal(r.intervals.at("target").value, longs({2, -1})));
  const IntervalTensor& flat = r.intervals.at("flat");
  EXPECT_EQ(flat.shape, (std::vector<int64_t>{2, 12}));
  EXPECT_DOUBLE_EQ(flat.min(), 0.5);
  EXPECT_DOUBLE_EQ(flat.max(), 2.0);
  testing::SoundTally tally;
  testing::expect_sound_supported(b, testing::ranges_of({{"x", {0.5, 2.0}}}), "torch view", tally, 20);
  // Size is exact too.
  testing::ModelBuilder s(13);
  s.input("x", {2, 3}).output("n", {}, TP::INT64);
  s.node("Size", {"x"}, {"n"}, "size");
  AnalysisResult rs = testing::analyze_built(s, testing::ranges_of({{"x", {-1e6, 1e6}}}));
  ASSERT_TRUE(rs.intervals.at("n").exact());
  EXPECT_EQ(rs.intervals.at("n").value.item<int64_t>(), 6);
}

// The proof through moved data fails once the range reaches the hazard.
TEST(ShapeAbstract, ProofFailsWhenTheRangeWidens) {
  testing::ModelBuilder b = torch_view_model();
  EXPECT_TRUE(testing::analyze_built(b, testing::ranges_of({{"x", {1e-3, 5.0}}})).findings.empty());
  AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"x", {0.0, 5.0}}}));
  EXPECT_EQ(testing::kind_summary(r), (std::vector<std::string>{"log:log-nonpositive:forward"}));
}

}  // namespace
}  // namespace nanguard
