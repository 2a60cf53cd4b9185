// Indexing ops: out-of-range indices fail clearly (ATen would crash or read
// garbage), negative indices wrap, the opset-dependent forms, reductions, TopK ties.
#include <functional>
#include <optional>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using TP = onnx::TensorProto;
using testing::longs;
using testing::run_model;
using testing::set_string;
using testing::set_attr;

TEST(Indexing, GatherOutOfRangeIndexFailsNamingIndexAndBound) {
  testing::ModelBuilder b(13);
  b.input("x", {4}).input("i", {3}, TP::INT64).output("y", {3});
  b.node("Gather", {"x", "i"}, {"y"}, "g");
  at::Tensor x = at::tensor({1.f, 2.f, 3.f, 4.f});
  auto bad = run_model(b, {{"x", x}, {"i", longs({0, 4, 1})}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("index 4 is out of range for axis 0 of size 4"), std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(run_model(b, {{"x", x}, {"i", longs({-5, 0, 0})}}).ok());
  // -4 wraps to 0; a repeated index accumulates its gradient.
  at::Tensor xg = x.clone().requires_grad_();
  auto ok = run_model(b, {{"x", xg}, {"i", longs({-1, -4, 3})}});
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
  auto r = run_model(b, {{"x", x}, {"i", longs({1, -2}).reshape({2, 1})}});
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
    return run_model(b, {{"d", data}, {"i", idx}, {"u", upd}});
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
    return run_model(b, {{"d", at::ones({2, 2})}, {"i", idx}, {"u", at::full({2, 2}, 3.f)}});
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
    auto r = run_model(*b, {{"x", x}});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(at::equal(r->outputs[1], longs({1, 2})));
  }
  testing::ModelBuilder smallest(11);
  smallest.input("x", {5}).output("v", {3}).output("i", {3}, TP::INT64).initializer("k", longs({3}));
  set_attr(smallest.node("TopK", {"x", "k"}, {"v", "i"}, "t"), "largest", int64_t{0});
  auto r = run_model(smallest, {{"x", x}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::equal(r->outputs[1], longs({3, 0, 1})));
}

TEST(Indexing, OneHotOutOfRangeGivesOffValues) {
  testing::ModelBuilder b(11);
  b.input("i", {3}, TP::INT64).output("y", {3, 3});
  b.initializer("depth", longs({3})).initializer("v", at::tensor({-1.f, 5.f}));
  b.node("OneHot", {"i", "depth", "v"}, {"y"}, "o");
  auto r = run_model(b, {{"i", longs({-1, 3, 0})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  at::Tensor want = at::tensor({-1.f, -1.f, 5.f, -1.f, -1.f, -1.f, 5.f, -1.f, -1.f}).reshape({3, 3});
  EXPECT_TRUE(at::equal(r->outputs[0], want));
}

TEST(Indexing, UniqueUnsortedKeepsFirstOccurrenceOrder) {
  testing::ModelBuilder b(11);
  b.input("x", {6}).output("y", {-1}).output("first", {-1}, TP::INT64);
  b.output("inv", {-1}, TP::INT64).output("counts", {-1}, TP::INT64);
  set_attr(b.node("Unique", {"x"}, {"y", "first", "inv", "counts"}, "u"), "sorted", int64_t{0});
  auto r = run_model(b, {{"x", at::tensor({2.f, 1.f, 1.f, 3.f, 4.f, 3.f})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(at::equal(r->outputs[0], at::tensor({2.f, 1.f, 3.f, 4.f})));
  EXPECT_TRUE(at::equal(r->outputs[1], longs({0, 1, 3, 4})));
  EXPECT_TRUE(at::equal(r->outputs[2], longs({0, 1, 1, 2, 3, 2})));
  EXPECT_TRUE(at::equal(r->outputs[3], longs({1, 2, 2, 1})));
}

// ---- Abstract semantics ------------------------------------------------------------

// One node on a ranged float x [3, 4] (and, when given, a ranged int64 index input
// "i"), extra operands as initializers; fixed and free weights, several boxes.
void sound_node(testing::SoundTally& tally, const std::string& op, size_t out_rank,
                const std::vector<std::pair<std::string, at::Tensor>>& inits, std::vector<std::string> order,
                const std::function<void(onnx::NodeProto&)>& attrs = nullptr,
                std::optional<std::pair<std::vector<int64_t>, Range>> index_input = std::nullopt, int outputs = 1,
                int64_t opset = 13) {
  for (auto [lo, hi] : {std::pair{-3.0, 3.0}, std::pair{0.5, 2.0}, std::pair{-1e30, 1e30}}) {
    for (bool free : {false, true}) {
      testing::ModelBuilder b(opset);
      b.input("x", {3, 4});
      RangeMap ranges{{"x", {lo, hi}}};
      if (index_input) {
        b.input("i", index_input->first, TP::INT64);
        ranges["i"] = index_input->second;
      }
      for (const auto& [name, t] : inits) b.initializer(name, t);
      std::vector<std::string> outs;
      for (int k = 0; k < outputs; ++k) {
        outs.push_back("y" + std::to_string(k));
        b.output(outs.back(), std::vector<int64_t>(out_rank, -1), k == 0 ? TP::FLOAT : TP::INT64);
      }
      auto& n = b.node(op, order, outs, "n");
      if (attrs) attrs(n);
      testing::expect_sound_supported(b, free ? testing::free_weights(ranges, -4, 4) : testing::ranges_of(ranges), op + (free ? " free" : " fixed"), tally);
    }
  }
}

TEST(IndexingAbstract, TransfersAreSound) {
  testing::SoundTally tally;
  at::Tensor upd = at::randn({2, 4}).mul_(3);
  auto axis1 = [](onnx::NodeProto& n) { set_attr(n, "axis", int64_t{1}); };
  // Exact indices: data movement.
  sound_node(tally, "Gather", 3, {{"g", longs({0, -1, 2, 2}).reshape({2, 2})}}, {"x", "g"}, axis1);
  sound_node(tally, "GatherElements", 2, {{"g", longs({0, 3, -1, 1, 2, 2}).reshape({3, 2})}}, {"x", "g"}, axis1);
  sound_node(tally, "GatherND", 1, {{"g", longs({0, 1, 2, -1}).reshape({2, 2})}}, {"x", "g"});
  // Ranged indices (in range, so every run succeeds): the reachable hull.
  sound_node(tally, "Gather", 3, {}, {"x", "i"}, axis1, {{{2, 3}, Range{-2, 1}}});
  sound_node(tally, "GatherElements", 2, {}, {"x", "i"}, axis1, {{{2, 3}, Range{-4, 3}}});
  sound_node(tally, "GatherND", 1, {}, {"x", "i"}, nullptr, {{{3, 2}, Range{0, 2}}});
  for (const char* red : {"none", "add", "mul"}) {
    auto attrs = [red](onnx::NodeProto& n) { set_string(n, "reduction", red); };
    sound_node(tally, "ScatterElements", 2, {{"g", longs({0, 2, 2, -3, 1, 1, 0, 0}).reshape({2, 4})}, {"u", upd}},
               {"x", "g", "u"}, attrs, std::nullopt, 1, 16);
    sound_node(tally, "ScatterElements", 2, {{"u", upd}}, {"x", "i", "u"}, attrs, {{{2, 4}, Range{-3, 2}}}, 1, 16);
    sound_node(tally, "ScatterND", 2, {{"g", longs({2, 0, 2}).reshape({3, 1})}, {"u", at::randn({3, 4})}},
               {"x", "g", "u"}, attrs, std::nullopt, 1, 16);
    sound_node(tally, "ScatterND", 2, {{"u", at::randn({2, 4})}}, {"x", "i", "u"}, attrs, {{{2, 1}, Range{0, 2}}}, 1, 16);
  }
  // ReverseSequence on x [time 3, batch 4]: known lengths move bounds, ranged ones hull.
  sound_node(tally, "ReverseSequence", 2, {{"g", longs({3, 0, 2, 1})}}, {"x", "g"});
  sound_node(tally, "ReverseSequence", 2, {}, {"x", "i"}, nullptr, {{{4}, Range{0, 3}}});
  sound_node(tally, "TopK", 2, {{"k", longs({3})}}, {"x", "k"}, nullptr, std::nullopt, 2);
  sound_node(tally, "Compress", 2, {{"c", at::tensor({1, 0, 1}).to(at::kBool)}}, {"x", "c"},
             [](onnx::NodeProto& n) { set_attr(n, "axis", int64_t{0}); });
  // OneHot: x gives the [off, on] values through a Slice-free path: values = x[0, :2].
  for (bool exact_idx : {true, false}) {
    testing::ModelBuilder b(13);
    b.input("v", {2}).output("y", {-1, -1});
    RangeMap ranges{{"v", {-2, 5}}};
    if (exact_idx) {
      b.initializer("i", longs({1, -1, 7}));
    } else {
      b.input("i", {3}, TP::INT64);
      ranges["i"] = Range{-6, 6};
    }
    b.initializer("d", longs({4}));
    b.node("OneHot", {"i", "d", "v"}, {"y"}, "n");
    testing::expect_sound_supported(b, testing::ranges_of(ranges), "OneHot", tally);
  }
  tally.print("indexing");
  EXPECT_EQ(tally.violations, 0);
}

// Gather with a ranged index: a crash finding exactly when the range can leave
// [-dim, dim-1] (definite when it cannot meet it); the hull stays sound and tight.
TEST(IndexingAbstract, GatherRangedIndexCrashHazard) {
  auto findings = [](Range idx) {
    testing::ModelBuilder b(13);
    b.input("x", {3, 4}).input("i", {2}, TP::INT64).output("y", {3, 2});
    set_attr(b.node("Gather", {"x", "i"}, {"y"}, "gather"), "axis", int64_t{1});
    return testing::analyze_built(b, testing::ranges_of({{"x", {-1, 1}}, {"i", idx}}));
  };
  EXPECT_TRUE(findings({-4, 3}).findings.empty());
  AnalysisResult over = findings({0, 4});
  ASSERT_EQ(testing::kind_summary(over), (std::vector<std::string>{"gather:gather-index-out-of-range:crash"}));
  EXPECT_EQ(over.findings[0].status, "possible");
  EXPECT_EQ(over.findings[0].condition, "index outside [-4, 3]");
  EXPECT_EQ(testing::kind_summary(findings({-5, 0})), (std::vector<std::string>{"gather:gather-index-out-of-range:crash"}));
  AnalysisResult never = findings({4, 9});
  ASSERT_EQ(never.findings.size(), 1u);
  EXPECT_EQ(never.findings[0].status, "definite");
  // Reaching only columns 1..2 of a data whose columns differ keeps the hull tight.
  testing::ModelBuilder b(13);
  b.input("i", {2}, TP::INT64).output("y", {2}).initializer("x", at::tensor({10.f, -1.f, 2.f, 30.f}));
  b.node("Gather", {"x", "i"}, {"y"}, "gather");
  AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"i", {1, 2}}}));
  EXPECT_TRUE(r.findings.empty());
  EXPECT_DOUBLE_EQ(r.intervals.at("y").min(), -1);
  EXPECT_DOUBLE_EQ(r.intervals.at("y").max(), 2);
  // Scatter shares the rule under its own hazard name.
  testing::ModelBuilder s(13);
  s.input("x", {3, 4}).input("i", {2, 4}, TP::INT64).output("y", {3, 4}).initializer("u", at::zeros({2, 4}));
  s.node("ScatterElements", {"x", "i", "u"}, {"y"}, "scatter");
  EXPECT_EQ(testing::kind_summary(testing::analyze_built(s, testing::ranges_of({{"x", {-1, 1}}, {"i", {0, 3}}}))),
            (std::vector<std::string>{"scatter:scatter-index-out-of-range:crash"}));
}

// Data-dependent output shapes: followed when the bounds decide every element;
// otherwise no sound bound has a known shape, and the analysis stops with an error
// naming the op (a shape guessed from one input would be unsound).
TEST(IndexingAbstract, DataDependentShapesNeedDecidedInputs) {
  auto nonzero = [](Range x) {
    testing::ModelBuilder b(13);
    b.input("x", {2, 3}).output("y", {2, -1}, TP::INT64);
    b.node("NonZero", {"x"}, {"y"}, "nz");
    return testing::analyze_built(b, testing::ranges_of({{"x", x}}));
  };
  AnalysisResult decided = nonzero({0.5, 2});
  EXPECT_TRUE(decided.findings.empty());
  ASSERT_TRUE(decided.intervals.at("y").exact());
  EXPECT_EQ(decided.intervals.at("y").shape, (std::vector<int64_t>{2, 6}));
  testing::ModelBuilder b(13);
  b.input("x", {2, 3}).output("y", {2, -1}, TP::INT64);
  b.node("NonZero", {"x"}, {"y"}, "nz");
  auto g = load_model_proto(b.proto(), "nonzero.onnx");
  ASSERT_TRUE(g.ok());
  AnalyzeOptions opt;
  opt.ranges = {{"x", {-1, 1}}};
  auto open = analyze(*g, opt);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("node 'nz' (NonZero)"), std::string::npos) << open.status().message();
  EXPECT_NE(open.status().message().find("depends on operand values that are ranges"), std::string::npos) << open.status().message();
}

// The proof of a Gather downstream of ranged indices fails once the index range widens.
TEST(IndexingAbstract, ProofFailsWhenTheIndexRangeWidens) {
  auto analyse = [](double hi) {
    testing::ModelBuilder b(13);
    b.input("i", {5}, TP::INT64).output("y", {5}).initializer("x", at::tensor({1.f, 2.f, 0.f}));
    b.node("Gather", {"x", "i"}, {"g"}, "gather");
    b.node("Log", {"g"}, {"y"}, "log");
    return testing::kind_summary(testing::analyze_built(b, testing::ranges_of({{"i", {0, hi}}})));
  };
  EXPECT_TRUE(analyse(1).empty());
  EXPECT_EQ(analyse(2), (std::vector<std::string>{"log:log-nonpositive:forward"}));
  EXPECT_EQ(analyse(3), (std::vector<std::string>{"gather:gather-index-out-of-range:crash", "log:log-nonpositive:forward"}));
}

}  // namespace
}  // namespace nanguard
