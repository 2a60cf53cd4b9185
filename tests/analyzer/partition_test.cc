// Partitioning where it pays: a small tensor read along two paths (t / (t + 1), a
// count's L * L - L + 1, sum(m) + sum(1 - m)) loses its correlation in one interval;
// split into cells it proves the hazard absent. A hazard that is real stays flagged,
// and a budget or element limit that forbids the split leaves the one-cell finding.
// Sampled runs stay inside the bounds the cells gave.
#include <cmath>

#include <gtest/gtest.h>

#include "analyzer/partition.h"
#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using Names = std::vector<std::string>;

IntervalTensor bounds(std::vector<double> lo, std::vector<double> hi, at::ScalarType dtype = at::kFloat) {
  std::vector<int64_t> shape{static_cast<int64_t>(lo.size())};
  return IntervalTensor::of_bounds(at::tensor(lo, at::kDouble), at::tensor(hi, at::kDouble), shape, dtype);
}

TEST(Partition, FloatCellsCoverTheRangeEdgeToEdge) {
  std::vector<IntervalTensor> cells = split_into_cells(bounds({0}, {10}), 8);
  ASSERT_EQ(cells.size(), 8u);
  EXPECT_EQ(cells.front().min(), 0.0);
  EXPECT_EQ(cells.back().max(), 10.0);
  for (size_t i = 1; i < cells.size(); ++i) EXPECT_EQ(cells[i].min(), cells[i - 1].max()) << i;
  // Two elements, 64 cells: 8 pieces each, every combination once.
  EXPECT_EQ(split_into_cells(bounds({0, 0}, {1, 1}), 64).size(), 64u);
  // Six wide elements, 64 cells: each of the six halved.
  EXPECT_EQ(split_into_cells(bounds({0, 0, 0, 0, 0, 0, 0}, {1, 2, 3, 4, 5, 6, 7}), 64).size(), 64u);
}

TEST(Partition, IntegersAreEnumeratedAsValues) {
  std::vector<IntervalTensor> cells = split_into_cells(bounds({0, 3}, {2, 4}, at::kLong), 64);
  ASSERT_EQ(cells.size(), 6u);  // 3 values x 2 values
  for (const IntervalTensor& c : cells) EXPECT_TRUE(c.exact());
  // Too many values: contiguous runs instead.
  std::vector<IntervalTensor> runs = split_into_cells(bounds({0}, {999}, at::kLong), 10);
  ASSERT_EQ(runs.size(), 10u);
  EXPECT_EQ(runs[0].max() + 1, runs[1].min());
}

TEST(Partition, NothingToSplit) {
  EXPECT_TRUE(split_into_cells(IntervalTensor::of_value(at::ones({3})), 64).empty());
  EXPECT_TRUE(split_into_cells(bounds({0}, {INFINITY}), 64).empty());
  EXPECT_TRUE(split_into_cells(bounds({0}, {1}), 1).empty());
}

// log(1 - t / (t + 1)): t / (t + 1) < 1 for t > -1, but intervals give [0, 10].
testing::ModelBuilder log_of_complement() {
  testing::ModelBuilder b(13);
  b.input("t", {1}).output("y", {1});
  b.initializer("one", at::ones({1}));
  b.node("Add", {"t", "one"}, {"t1"}, "plus_one");
  b.node("Div", {"t", "t1"}, {"ratio"}, "ratio");
  b.node("Sub", {"one", "ratio"}, {"rest"}, "rest");
  b.node("Log", {"rest"}, {"y"}, "log");
  return b;
}

AnalyzeOptions without_partition(AnalyzeOptions opt) {
  opt.partition.element_budget = 0;
  return opt;
}

TEST(Partition, ACorrelatedRatioIsProvedCellByCell) {
  testing::ModelBuilder b = log_of_complement();
  AnalyzeOptions opt = testing::ranges_of({{"t", {0, 10}}});
  EXPECT_EQ(testing::summary(testing::findings_of(b, without_partition(opt))),
            Names{"log:log-nonpositive"});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_EQ(testing::summary(r.findings), Names{});
  ASSERT_EQ(r.partitions.size(), 1u);
  EXPECT_EQ(r.partitions[0].node, "log");
  EXPECT_EQ(r.partitions[0].tensors, Names{"t"});
  EXPECT_EQ(r.partitions[0].cells, 64);
  // Its bound is the cells' join: the last cell t in [9.84, 10] gives log(1 - 10/10.84)
  // ~ -2.56 (the exact least is log(1/11) ~ -2.40), not the log of a clamped 0.
  EXPECT_GT(r.intervals.at("y").min(), -2.6);
  EXPECT_LT(r.intervals.at("y").max(), 1e-6);  // log(1), rounded outward
  EXPECT_GT(testing::expect_sound(b, opt, "log of complement", nullptr, 40, 3), 0);
}

TEST(Partition, ARealHazardStaysFlagged) {
  testing::ModelBuilder b = log_of_complement();
  // t = -2: -2 / -1 = 2 and log(1 - 2) is NaN; t = -1 divides by zero.
  AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"t", {-2, 10}}}));
  Names found = testing::summary(r.findings);
  EXPECT_NE(std::find(found.begin(), found.end(), "log:log-nonpositive"), found.end());
  EXPECT_NE(std::find(found.begin(), found.end(), "ratio:div-by-zero"), found.end());
}

TEST(Partition, TheBudgetBoundsTheWork) {
  testing::ModelBuilder b = log_of_complement();
  AnalyzeOptions opt = testing::ranges_of({{"t", {0, 10}}});
  opt.partition.element_budget = 100;  // 64 cells x 4 one-element outputs do not fit
  EXPECT_EQ(testing::summary(testing::findings_of(b, opt)), Names{"log:log-nonpositive"});
  opt.partition.element_budget = 256;
  EXPECT_EQ(testing::summary(testing::findings_of(b, opt)), Names{});
}

// x / (t * t + t + 1) >= 0.75 for every t: intervals over t in [-3, 3] say [-11, 13].
// The cells also tighten the divisor itself, so the chained backward bound is proved.
TEST(Partition, ATightenedDivisorServesTheBackwardBound) {
  testing::ModelBuilder b(13);
  b.input("x", {3}).input("t", {1}).output("y", {3});
  b.initializer("one", at::ones({1}));
  b.node("Mul", {"t", "t"}, {"sq"}, "square");
  b.node("Add", {"sq", "t"}, {"s"}, "plus_t");
  b.node("Add", {"s", "one"}, {"d"}, "plus_one");
  b.node("Div", {"x", "d"}, {"y"}, "div");
  AnalyzeOptions opt = testing::ranges_of({{"x", {-1, 1}}, {"t", {-3, 3}}});
  opt.gradients = GradientMode::kChain;
  EXPECT_EQ(testing::summary(testing::findings_of(b, without_partition(opt))), Names{"div:div-by-zero"});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_EQ(testing::summary(r.findings), Names{});
  EXPECT_GT(r.intervals.at("d").min(), 0.5);  // 64 cells of width 3/32: at least ~0.66
  EXPECT_GT(testing::expect_sound(b, opt, "tightened divisor", nullptr, 40, 3), 0);
}

// x / float(L * L - L + 1) over an integer L in [0, 10]: the divisor is at least 1.
TEST(Partition, ACountIsEnumerated) {
  testing::ModelBuilder b(13);
  b.input("x", {2}).input("L", {1}, onnx::TensorProto::INT64).output("y", {2});
  b.initializer("i1", testing::longs({1}));
  b.node("Mul", {"L", "L"}, {"sq"}, "square");
  b.node("Sub", {"sq", "L"}, {"d0"}, "minus");
  b.node("Add", {"d0", "i1"}, {"d"}, "plus");
  testing::set_attr(b.node("Cast", {"d"}, {"df"}, "cast"), "to", int64_t{onnx::TensorProto::FLOAT});
  b.node("Div", {"x", "df"}, {"y"}, "div");
  AnalyzeOptions opt = testing::ranges_of({{"x", {-1, 1}}, {"L", {0, 10}}});
  EXPECT_EQ(testing::summary(testing::findings_of(b, without_partition(opt))), Names{"div:div-by-zero"});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_EQ(testing::summary(r.findings), Names{});
  ASSERT_EQ(r.partitions.size(), 1u);
  EXPECT_EQ(r.partitions[0].cells, 11);  // L = 0..10
  EXPECT_GT(testing::expect_sound(b, opt, "count divisor", nullptr, 40, 3), 0);
}

// x / (sum(m) + sum(1 - m)) is x / 4 for any mask m in [0, 1]^4.
testing::ModelBuilder mask_total(bool complement) {
  testing::ModelBuilder b(13);
  b.input("x", {1}).input("m", {4}).output("y", {1});
  b.initializer("ones", at::ones({4}));
  b.initializer("axes", testing::longs({0}));
  b.node("Mul", {"x", "m"}, {"xm"}, "weigh");
  b.node("ReduceSum", {complement ? "m" : "xm", "axes"}, {"s1"}, "sum_a");
  if (complement) {
    b.node("Sub", {"ones", "m"}, {"rest"}, "complement");
    b.node("ReduceSum", {"rest", "axes"}, {"s2"}, "sum_b");
    b.node("Add", {"s1", "s2"}, {"total"}, "total");
  } else {
    b.node("ReduceSum", {"m", "axes"}, {"total"}, "count");  // a masked mean: sum(m) can be 0
  }
  b.node("Div", {complement ? "x" : "s1", "total"}, {"y"}, "div");
  return b;
}

TEST(Partition, AMaskAndItsComplementAreProvedNonZero) {
  testing::ModelBuilder b = mask_total(true);
  AnalyzeOptions opt = testing::ranges_of({{"x", {-1, 1}}, {"m", {0, 1}}});
  EXPECT_EQ(testing::summary(testing::findings_of(b, without_partition(opt))), Names{"div:div-by-zero"});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_EQ(testing::summary(r.findings), Names{});
  EXPECT_GT(testing::expect_sound(b, opt, "mask total", nullptr, 40, 3), 0);
  // A limit on the elements split leaves the finding.
  opt.partition.max_elements = 2;
  EXPECT_EQ(testing::summary(testing::findings_of(b, opt)), Names{"div:div-by-zero"});
}

TEST(Partition, AMaskedMeanOfAnEmptyMaskStaysFlagged) {
  testing::ModelBuilder b = mask_total(false);
  AnalysisResult r = testing::analyze_built(b, testing::ranges_of({{"x", {-1, 1}}, {"m", {0, 1}}}));
  EXPECT_EQ(testing::summary(r.findings), Names{"div:div-by-zero"});
  EXPECT_TRUE(r.partitions.empty());
}

// 3e38 * t / (t + 1) stays below float32's 3.4e38; intervals say 3e39.
TEST(Partition, AnOverflowIsProvedAndTheBoundTightened) {
  testing::ModelBuilder b(13);
  b.input("t", {1}).output("y", {1});
  b.initializer("one", at::ones({1}));
  b.initializer("big", at::full({1}, 3e38f));
  b.node("Add", {"t", "one"}, {"t1"}, "plus_one");
  b.node("Div", {"t", "t1"}, {"ratio"}, "ratio");
  b.node("Mul", {"ratio", "big"}, {"y"}, "scale");
  AnalyzeOptions opt = testing::ranges_of({{"t", {0, 10}}});
  EXPECT_EQ(testing::summary(testing::findings_of(b, without_partition(opt))), Names{"scale:overflow"});
  AnalysisResult r = testing::analyze_built(b, opt);
  EXPECT_EQ(testing::summary(r.findings), Names{});
  EXPECT_LT(r.intervals.at("y").max(), 3e38);
  EXPECT_GT(testing::expect_sound(b, opt, "scaled ratio", nullptr, 40, 3), 0);
}

}  // namespace
}  // namespace nanguard
