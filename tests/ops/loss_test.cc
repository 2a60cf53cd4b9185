// Losses: reductions with weights and ignore_index, the NaN of 'mean' when every
// target is ignored (0/0, kept on purpose), SoftmaxCrossEntropyLoss's log_prob
// output and its stability, and the gradient through both.
#include <cmath>
#include <string>

#include <optional>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::set_string;

struct LossCase {
  std::string op;
  std::string reduction = "mean";
  bool ignore = false;
  int64_t ignore_index = 0;
  at::Tensor weight;  // optional
  int outputs = 1;
};

// Runs the loss on x [N, C] (fed, so that it can require grad) and target [N].
std::vector<at::Tensor> run_loss(const LossCase& c, const at::Tensor& x, const at::Tensor& target) {
  testing::ModelBuilder b(13);
  b.input("x", x.sizes().vec()).input("t", target.sizes().vec(), onnx::TensorProto::INT64);
  std::vector<std::string> ins{"x", "t"}, outs{"loss"};
  if (c.weight.defined()) {
    b.initializer("w", c.weight);
    ins.push_back("w");
  }
  b.output("loss", c.reduction == "none" ? std::vector<int64_t>{x.size(0)} : std::vector<int64_t>{});
  if (c.outputs == 2) {
    outs.push_back("log_prob");
    b.output("log_prob", x.sizes().vec());
  }
  for (auto& o : *b.proto().mutable_graph()->mutable_output()) o.mutable_type()->mutable_tensor_type()->mutable_shape();
  auto& n = b.node(c.op, ins, outs, "n");
  set_string(n, "reduction", c.reduction);
  if (c.ignore) testing::set_attr(n, "ignore_index", c.ignore_index);
  return testing::run_outputs(b, {{"x", x}, {"t", target}});
}

const at::Tensor kLogProb = at::tensor({-1.f, -2.f, -3.f, -4.f, -5.f, -6.f}).reshape({3, 2});

TEST(Loss, NllReductionsWeightsAndIgnoreIndex) {
  at::Tensor t = at::tensor({0, 1, 1}, at::kLong);
  EXPECT_FLOAT_EQ(run_loss({"NegativeLogLikelihoodLoss", "sum"}, kLogProb, t)[0].item<float>(), 1 + 4 + 6);
  EXPECT_FLOAT_EQ(run_loss({"NegativeLogLikelihoodLoss"}, kLogProb, t)[0].item<float>(), 11.f / 3);
  at::Tensor none = run_loss({"NegativeLogLikelihoodLoss", "none"}, kLogProb, t)[0];
  EXPECT_TRUE(at::equal(none, at::tensor({1.f, 4.f, 6.f})));
  // weights [2, 0.5]: (2*1 + 0.5*4 + 0.5*6) / (2 + 0.5 + 0.5)
  LossCase w{"NegativeLogLikelihoodLoss", "mean", false, 0, at::tensor({2.f, 0.5f})};
  EXPECT_FLOAT_EQ(run_loss(w, kLogProb, t)[0].item<float>(), 7.f / 3);
  // ignore_index 1 without weights: the mean is over the one remaining target.
  LossCase ii{"NegativeLogLikelihoodLoss", "mean", true, 1};
  EXPECT_FLOAT_EQ(run_loss(ii, kLogProb, t)[0].item<float>(), 1.f);
  // An ignore_index outside [0, C) is never used as an index.
  LossCase neg{"NegativeLogLikelihoodLoss", "none", true, -100};
  at::Tensor tn = at::tensor({-100, 1, 0}, at::kLong);
  EXPECT_TRUE(at::equal(run_loss(neg, kLogProb, tn)[0], at::tensor({0.f, 4.f, 5.f})));
}

TEST(Loss, MeanOverAllIgnoredTargetsIsNaN) {
  at::Tensor t = at::tensor({1, 1, 1}, at::kLong);
  LossCase ii{"NegativeLogLikelihoodLoss", "mean", true, 1};
  EXPECT_TRUE(std::isnan(run_loss(ii, kLogProb, t)[0].item<float>()));
  LossCase w{"SoftmaxCrossEntropyLoss", "mean", false, 0, at::tensor({1.f, 0.f})};
  EXPECT_TRUE(std::isnan(run_loss(w, kLogProb, t)[0].item<float>()));  // total weight 0
  // 'sum' stays 0, and an ignored NaN score does not leak into the loss.
  at::Tensor x = kLogProb.clone();
  x[0][1] = std::nanf("");
  LossCase s{"NegativeLogLikelihoodLoss", "sum", true, 1};
  EXPECT_EQ(run_loss(s, x, t)[0].item<float>(), 0.f);
}

TEST(Loss, SoftmaxCrossEntropyLogProbAndGradient) {
  at::Tensor x = at::tensor({0.f, -200.f, 1.f, 2.f}).reshape({2, 2}).requires_grad_();
  at::Tensor t = at::tensor({1, 0}, at::kLong);
  LossCase c{"SoftmaxCrossEntropyLoss", "none"};
  c.outputs = 2;
  auto out = run_loss(c, x, t);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NEAR(out[1][0][1].item<float>(), -200.f, 1e-3);  // not log(0) = -inf
  EXPECT_NEAR(out[0][0].item<float>(), 200.f, 1e-3);
  EXPECT_NEAR(out[0][1].item<float>(), std::log1p(std::exp(1.f)), 1e-5);
  out[0].sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
  EXPECT_NEAR(x.grad()[0][1].item<float>(), -1.f, 1e-6);  // softmax - onehot
}

// ---- abstract facets ------------------------------------------------------------

struct LossModel {
  std::string op = "SoftmaxCrossEntropyLoss", reduction = "mean";
  bool weights = false, target_input = false, spatial = false;
  bool direct = false;  // NegativeLogLikelihoodLoss on x itself, no LogSoftmax first
  std::optional<int64_t> ignore;
  at::Tensor weight = at::tensor({1.f, 0.5f, 2.f, 1.5f});
  at::Tensor target = at::tensor(std::vector<int64_t>{0, 3, 1});
};

// x [3, 4] (or [3, 4, 2]) -> loss; the target an initializer or an int64 input.
void build_loss(testing::ModelBuilder& b, const LossModel& m) {
  std::vector<int64_t> xs{3, 4}, ts{3};
  if (m.spatial) { xs.push_back(2); ts.push_back(2); }
  b.input("x", xs);
  at::Tensor target = m.spatial ? m.target.unsqueeze(1).expand({3, 2}).contiguous() : m.target;
  if (m.target_input) b.input("t", ts, onnx::TensorProto::INT64);
  else b.initializer("t", target);
  bool nll = m.op == "NegativeLogLikelihoodLoss";
  std::vector<std::string> ins{nll && !m.direct ? "lp" : "x", "t"};
  if (nll && !m.direct) testing::set_attr(b.node("LogSoftmax", {"x"}, {"lp"}, "ls"), "axis", int64_t{1});
  if (m.weights) {
    b.initializer("w", m.weight);
    ins.push_back("w");
  }
  b.output("loss", m.reduction == "none" ? ts : std::vector<int64_t>{});
  auto& n = b.node(m.op, ins, {"loss"}, "n");
  set_string(n, "reduction", m.reduction);
  if (m.ignore) testing::set_attr(n, "ignore_index", *m.ignore);
}

TEST(LossAbstract, SoundAcrossReductionsWeightsAndTargets) {
  testing::SoundTally tally;
  for (const char* op : {"SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"}) {
    for (const char* red : {"none", "sum", "mean"}) {
      for (int variant = 0; variant < 8; ++variant) {
        LossModel m;
        m.op = op;
        m.reduction = red;
        m.weights = variant & 1;
        m.target_input = variant & 2;
        m.spatial = variant & 4;
        if (variant == 3 || variant == 4) m.ignore = 3;
        for (auto [lo, hi] : {std::pair{-3.0, 3.0}, {-100.0, 100.0}, {0.0, 1.0}, {-1e4, 1e4}}) {
          for (bool free : {false, true}) {
            testing::ModelBuilder b(13);
            build_loss(b, m);
            RangeMap r{{"x", {lo, hi}}, {"t", {0, 3}}};
            testing::expect_sound(b, free ? testing::free_weights(r, 0.1, 3) : testing::ranges_of(r),
                                  std::string(op) + " " + red + " variant " + std::to_string(variant), &tally, 12);
          }
        }
      }
    }
  }
  EXPECT_EQ(tally.violations, 0);
  EXPECT_GT(tally.checked, 0);
  tally.print("loss");
}

// Inputs of any float32 magnitude and weights from subnormal to huge, negative ones
// included (fuzz_soundness found each of these): a 'mean' sums before it divides,
// so its numerator can overflow although the mean itself would be in range, and
// products with subnormal weights round to multiples of 1.4e-45 (the weighted mean of
// losses of 0.4 can come out as 0 or 1).
TEST(LossAbstract, SoundOnExtremeMagnitudesAndWeights) {
  testing::SoundTally tally;
  const std::vector<std::pair<double, double>> xs{{-3.4e38, -1e38}, {-3e38, 3e38}, {-1, -0.3}, {-1e30, 1e30}};
  const std::vector<std::pair<double, double>> ws{{1e-45, 1e-43}, {0, 3e38}, {-2, 2}, {1e-45, 4}, {0.5, 1e30}};
  for (const char* op : {"NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"})
    for (const char* red : {"sum", "mean"})
      for (int variant = 0; variant < 4; ++variant)
        for (auto [lo, hi] : xs)
          for (size_t wi = 0; wi <= ws.size(); ++wi) {
            LossModel m;
            m.op = op;
            m.direct = true;
            m.reduction = red;
            m.target_input = variant & 1;
            if (variant & 2) m.ignore = 3;
            m.weights = wi < ws.size();
            RangeMap r{{"x", {lo, hi}}, {"t", {0, 3}}};
            AnalyzeOptions o = m.weights ? testing::free_weights(r, ws[wi].first, ws[wi].second) : testing::ranges_of(r);
            testing::ModelBuilder b(13);
            build_loss(b, m);
            testing::expect_sound(b, o, fmt::format("{} {} variant {} x [{}, {}] w {}", op, red, variant, lo, hi, wi),
                                  &tally, 8);
          }
  EXPECT_EQ(tally.violations, 0);
  tally.print("loss, extreme");
}

// The hazards behind those: each is reported where it can happen and not where
// the ranges rule it out.
TEST(LossAbstract, InnerOverflowAndTinyTotalWeightHazards) {
  using Names = std::vector<std::string>;
  auto findings = [](const LossModel& m, std::pair<double, double> x, std::optional<std::pair<double, double>> w) {
    testing::ModelBuilder b(13);
    build_loss(b, m);
    RangeMap r{{"x", {x.first, x.second}}, {"t", {0, 3}}};
    return testing::summary(testing::findings_of(b, w ? testing::free_weights(r, w->first, w->second) : testing::ranges_of(r)));
  };
  LossModel sce;
  sce.reduction = "sum";
  EXPECT_EQ(findings(sce, {-3e38, 3e38}, {}), Names{"n:overflow"});  // x - max is -inf
  EXPECT_EQ(findings(sce, {-1e38, 1e38}, {}), Names{"n:overflow"});  // 3 losses of 2e38: the sum is INF
  EXPECT_EQ(findings(sce, {-1e37, 1e37}, {}), Names{});
  LossModel nll;
  nll.op = "NegativeLogLikelihoodLoss";
  nll.direct = true;
  EXPECT_EQ(findings(nll, {-3.4e38, -1e38}, {}), Names{"n:overflow"});  // the mean's sum is INF
  EXPECT_EQ(findings(nll, {-1e37, 0}, {}), Names{});
  nll.weights = true;
  // 1 / total and (l - mean) / total pass FLT_MAX over a total of 1e-45.
  EXPECT_EQ(findings(nll, {-1, 0}, std::pair{1e-45, 1e-43}),
            (Names{"n:loss-weight-gradient-overflow", "n:loss-mean-gradient-overflow"}));
  EXPECT_EQ(findings(nll, {-1, 0}, std::pair{1e-30, 4.0}), Names{});
  EXPECT_EQ(findings(nll, {-1e38, 0}, std::pair{0.5, 4.0})[0], "n:overflow");  // w * l
  // 'sum' with targets that may all pick one class: that weight's gradient sums 3
  // losses of up to 3e38, while the loss itself (times w <= 0.01) stays finite.
  nll.reduction = "sum";
  nll.target_input = true;
  EXPECT_EQ(findings(nll, {-3e38, 0}, std::pair{1e-3, 1e-2}), Names{"n:loss-weight-gradient-overflow"});
  EXPECT_EQ(findings(nll, {-1e38, 0}, std::pair{1e-3, 1e-2}), Names{});
}

std::vector<std::string> loss_findings(const LossModel& m, double t_lo = 0, double t_hi = 3) {
  testing::ModelBuilder b(13);
  build_loss(b, m);
  return testing::summary(testing::findings_of(b, testing::ranges_of({{"x", {-1e4, 1e4}}, {"t", {t_lo, t_hi}}})));
}

TEST(LossAbstract, ZeroTotalWeightAndTargetRange) {
  using Names = std::vector<std::string>;
  LossModel m;
  EXPECT_EQ(loss_findings(m), Names{});  // log_softmax: finite on any finite logits
  m.ignore = 1;
  EXPECT_EQ(loss_findings(m), Names{});  // the known targets {0, 3, 1} are not all ignored
  m.target = at::tensor(std::vector<int64_t>{1, 1, 1});
  testing::ModelBuilder ignored_model(13);
  build_loss(ignored_model, m);
  auto all_ignored = testing::findings_of(ignored_model, testing::ranges_of({{"x", {-1e4, 1e4}}}));
  ASSERT_EQ(testing::summary(all_ignored), Names{"n:loss-zero-weight"});
  EXPECT_EQ(all_ignored[0].status, "definite");
  m.target_input = true;
  EXPECT_EQ(loss_findings(m, 0, 3), Names{"n:loss-zero-weight"});  // every target may be 1
  EXPECT_EQ(loss_findings(m, 2, 3), Names{});                      // the range widens past it: 0 / 0
  m.reduction = "sum";
  EXPECT_EQ(loss_findings(m, 0, 3), Names{});
  LossModel w;
  w.weights = true;
  w.target_input = true;
  EXPECT_EQ(loss_findings(w), Names{});
  w.weight = at::tensor({1.f, 0.f, 2.f, 1.5f});
  EXPECT_EQ(loss_findings(w), Names{"n:loss-zero-weight"});
  EXPECT_EQ(loss_findings(w, 2, 3), Names{});
  LossModel c;
  c.target_input = true;
  EXPECT_EQ(loss_findings(c, 0, 4), Names{"n:index-out-of-range"});
  c.ignore = 4;  // 4 is ignored, not gathered; but then every target may be ignored
  EXPECT_EQ(loss_findings(c, 0, 4), Names{"n:loss-zero-weight"});
  c.reduction = "sum";
  EXPECT_EQ(loss_findings(c, 0, 4), Names{});
  c.op = "NegativeLogLikelihoodLoss";
  EXPECT_EQ(loss_findings(c, 0, 4), Names{});
  EXPECT_EQ(loss_findings(c, -1, 4), Names{"n:index-out-of-range"});
}

}  // namespace
}  // namespace nanguard
