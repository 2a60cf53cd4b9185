// LSTM, GRU, RNN: the forms conformance does not cover (layout 1, sequence_lens,
// input_forget, an independent check of the gate order against at::lstm, gradients,
// unsupported activations) and their interval semantics (bounded outputs, soundness
// by sampling, an unclipped Relu RNN left to the overflow check).
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/ops/op_test_util.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;
using testing::set_attr;

using testing::set_string;
using testing::set_strings;

using Attrs = testing::AttrFn;

// One recurrent node; inputs named "" are omitted; `feeds` float inputs are runtime
// inputs, the others (weights, sequence_lens) initializers. Outputs: Y, Y_h (, Y_c).
ModelBuilder recurrent_model(int64_t opset, const std::string& op, const testing::NamedTensors& ins,
                             const std::vector<std::string>& feeds, const Attrs& attrs) {
  ModelBuilder b(opset);
  std::vector<std::string> names;
  for (const auto& [name, t] : ins) {
    names.push_back(name);
    if (name.empty()) continue;
    if (std::find(feeds.begin(), feeds.end(), name) != feeds.end()) b.input(name, t.sizes().vec());
    else b.initializer(name, t);
  }
  std::vector<std::string> outs{"y", "yh"};
  if (op == "LSTM") outs.push_back("yc");
  b.output("y", {-1, -1, -1, -1});
  b.output("yh", {-1, -1, -1});
  if (op == "LSTM") b.output("yc", {-1, -1, -1});
  onnx::NodeProto& n = b.node(op, names, outs, "n");
  if (attrs) attrs(n);
  return b;
}

using testing::NodeRun;

at::Tensor randn(std::vector<int64_t> shape, double scale = 0.5) {
  static at::Generator gen = at::detail::createCPUGenerator(1234);
  return at::randn(shape, gen) * scale;
}

// ONNX LSTM (gates iofc) against ATen's own LSTM cell (gates ifgo): an independent
// check of the gate order, directions, bias split and initial states.
TEST(Recurrent, LstmMatchesAtenLstmBothDirections) {
  int64_t seq = 4, batch = 2, in = 3, hid = 5;
  at::Tensor x = randn({seq, batch, in}), w = randn({2, 4 * hid, in}), r = randn({2, 4 * hid, hid});
  at::Tensor bias = randn({2, 8 * hid}), h0 = randn({2, batch, hid}), c0 = randn({2, batch, hid});
  ModelBuilder b = recurrent_model(13, "LSTM", {{"x", x}, {"w", w}, {"r", r}, {"b", bias}, {"", {}}, {"h0", h0}, {"c0", c0}},
                                   {"x"}, [&](onnx::NodeProto& n) {
                                     set_attr(n, "hidden_size", hid);
                                     set_string(n, "direction", "bidirectional");
                                   });
  NodeRun got = testing::run_built(b, {{"x", x}});
  ASSERT_EQ(got.error, "");
  // iofc -> ifgo
  auto reorder = [&](const at::Tensor& t) {
    auto g = t.chunk(4, 0);
    return at::cat({g[0], g[2], g[3], g[1]});
  };
  std::vector<at::Tensor> params;
  for (int64_t d = 0; d < 2; ++d) {
    params.push_back(reorder(w[d]));
    params.push_back(reorder(r[d]));
    params.push_back(reorder(bias[d].narrow(0, 0, 4 * hid)));
    params.push_back(reorder(bias[d].narrow(0, 4 * hid, 4 * hid)));
  }
  auto [y, hn, cn] = at::lstm(x, {h0, c0}, params, true, 1, 0.0, false, true, false);
  EXPECT_TRUE(at::allclose(got.outputs[0], y.view({seq, batch, 2, hid}).permute({0, 2, 1, 3}), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(got.outputs[1], hn, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(got.outputs[2], cn, 1e-5, 1e-6));
}

// layout = 1 (opset 14) is layout 0 with batch first; sequence_lens keeps a short
// entry's state, gives Y = 0 past its end, and starts reverse runs at its last step.
TEST(Recurrent, GruLayoutAndSequenceLens) {
  int64_t seq = 3, batch = 2, in = 2, hid = 3;
  at::Tensor x = randn({seq, batch, in}), w = randn({2, 3 * hid, in}), r = randn({2, 3 * hid, hid});
  auto attrs = [&](int64_t layout) {
    return [=](onnx::NodeProto& n) {
      set_attr(n, "hidden_size", hid);
      set_attr(n, "layout", layout);
      set_attr(n, "linear_before_reset", int64_t{1});
      set_string(n, "direction", "bidirectional");
    };
  };
  ModelBuilder b0 = recurrent_model(14, "GRU", {{"x", x}, {"w", w}, {"r", r}}, {"x"}, attrs(0));
  at::Tensor xt = x.transpose(0, 1).contiguous();
  ModelBuilder b1 = recurrent_model(14, "GRU", {{"x", xt}, {"w", w}, {"r", r}}, {"x"}, attrs(1));
  NodeRun r0 = testing::run_built(b0, {{"x", x}}), r1 = testing::run_built(b1, {{"x", xt}});
  ASSERT_EQ(r0.error, "");
  ASSERT_EQ(r1.error, "");
  EXPECT_TRUE(at::allclose(r1.outputs[0], r0.outputs[0].permute({2, 0, 1, 3})));
  EXPECT_TRUE(at::allclose(r1.outputs[1], r0.outputs[1].transpose(0, 1)));

  at::Tensor lens = at::tensor({2, 3}, at::kInt);
  ModelBuilder bl = recurrent_model(14, "GRU", {{"x", x}, {"w", w}, {"r", r}, {"", {}}, {"lens", lens}}, {"x"}, attrs(0));
  at::Tensor x2 = x.narrow(0, 0, 2).contiguous();
  ModelBuilder bs = recurrent_model(14, "GRU", {{"x", x2}, {"w", w}, {"r", r}}, {"x"}, attrs(0));
  NodeRun rl = testing::run_built(bl, {{"x", x}}), rs = testing::run_built(bs, {{"x", x2}});
  ASSERT_EQ(rl.error, "");
  ASSERT_EQ(rs.error, "");
  // Batch entry 0 (length 2) equals a run on the first two steps, in both directions.
  EXPECT_TRUE(at::allclose(rl.outputs[1].select(1, 0), rs.outputs[1].select(1, 0), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(rl.outputs[0].narrow(0, 0, 2).select(2, 0), rs.outputs[0].select(2, 0), 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(rl.outputs[0][2].select(1, 0), at::zeros({2, hid})));
  // Entry 1 (full length) is the unmasked run.
  EXPECT_TRUE(at::allclose(rl.outputs[1].select(1, 1), r0.outputs[1].select(1, 1)));
}

// input_forget couples f = 1 - i; clip bounds every activation input; gradients flow
// to X through all steps.
TEST(Recurrent, LstmInputForgetClipAndGradient) {
  int64_t seq = 3, batch = 1, in = 2, hid = 2;
  at::Tensor x = randn({seq, batch, in}, 3.0).requires_grad_(true);
  at::Tensor w = randn({1, 4 * hid, in}, 2.0), r = randn({1, 4 * hid, hid}, 2.0);
  auto model = [&](int64_t forget, float clip) {
    return recurrent_model(7, "LSTM", {{"x", x}, {"w", w}, {"r", r}}, {"x"}, [=](onnx::NodeProto& n) {
      set_attr(n, "hidden_size", hid);
      set_attr(n, "input_forget", forget);
      if (clip > 0) set_attr(n, "clip", clip);
    });
  };
  ModelBuilder plain = model(0, 0), coupled = model(1, 0), clipped = model(0, 0.25f);
  NodeRun rp = testing::run_built(plain, {{"x", x}}), rc = testing::run_built(coupled, {{"x", x}}), rk = testing::run_built(clipped, {{"x", x}});
  ASSERT_EQ(rc.error, "");
  ASSERT_EQ(rk.error, "");
  EXPECT_FALSE(at::allclose(rp.outputs[2], rc.outputs[2]));
  // One step by hand: i = sigmoid(pre_i), f = 1 - i, c = i * tanh(pre_c), h = o * tanh(c).
  at::Tensor pre = at::matmul(x[0].detach(), w[0].t());
  auto g = pre.chunk(4, 1);
  at::Tensor i = at::sigmoid(g[0]), c = i * at::tanh(g[3]), h = at::sigmoid(g[1]) * at::tanh(c);
  EXPECT_TRUE(at::allclose(rc.outputs[0][0][0], h, 1e-5, 1e-6));
  // With clip 0.25 every gate lies in [sigmoid(-0.25), sigmoid(0.25)].
  EXPECT_LE(rk.outputs[1].abs().max().item<float>(), std::tanh(0.25f) * (1 / (1 + std::exp(-0.25f))) + 1e-6);
  rp.outputs[0].sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(at::isfinite(x.grad()).all().item<bool>());
  EXPECT_GT(x.grad().abs().sum().item<float>(), 0.f);
}

TEST(Recurrent, UnsupportedActivationIsReported) {
  at::Tensor x = randn({2, 1, 2}), w = randn({1, 2, 2}), r = randn({1, 2, 2});
  ModelBuilder b = recurrent_model(13, "RNN", {{"x", x}, {"w", w}, {"r", r}}, {"x"}, [](onnx::NodeProto& n) {
    set_attr(n, "hidden_size", int64_t{2});
    set_strings(n, "activations", {"Gelu"});
  });
  NodeRun got = testing::run_built(b, {{"x", x}});
  EXPECT_NE(got.error.find("activation 'Gelu' is not supported"), std::string::npos) << got.error;
}

// ---- abstract semantics ----------------------------------------------------

using testing::analyze_built;

AnalyzeOptions ranges(double lo, double hi) { return testing::ranges_of({{"x", {lo, hi}}}); }

// Y and Y_h in [-1, 1] whatever the input; Y_c grows by at most 1 per step from
// |initial_c| (here 2): proved without findings.
TEST(Recurrent, IntervalBoundsOfLstmAndGru) {
  int64_t seq = 5, in = 3, hid = 4;
  at::Tensor x = randn({seq, 2, in});
  ModelBuilder lstm = recurrent_model(13, "LSTM", {{"x", x}, {"w", randn({1, 4 * hid, in}, 3.0)}, {"r", randn({1, 4 * hid, hid}, 3.0)},
                                                   {"b", randn({1, 8 * hid})}, {"", {}}, {"", {}}, {"c0", at::full({1, 2, hid}, 2.0f)}},
                                      {"x"}, [&](onnx::NodeProto& n) { set_attr(n, "hidden_size", hid); });
  AnalysisResult a = analyze_built(lstm, ranges(-1e6, 1e6));
  EXPECT_TRUE(a.findings.empty());
  EXPECT_GE(a.intervals.at("y").min(), -1.0);
  EXPECT_LE(a.intervals.at("y").max(), 1.0);
  EXPECT_LE(a.intervals.at("yh").max(), 1.0);
  EXPECT_LE(a.intervals.at("yc").max(), 2.0 + seq * (1 + 1e-5));
  EXPECT_GT(a.intervals.at("yc").max(), 2.0);
  ModelBuilder gru = recurrent_model(13, "GRU", {{"x", x}, {"w", randn({1, 3 * hid, in}, 3.0)}, {"r", randn({1, 3 * hid, hid}, 3.0)}},
                                     {"x"}, [&](onnx::NodeProto& n) { set_attr(n, "hidden_size", hid); });
  AnalysisResult g = analyze_built(gru, ranges(-1e6, 1e6));
  EXPECT_TRUE(g.findings.empty());
  EXPECT_GE(g.intervals.at("y").min(), -1.0);
  EXPECT_LE(g.intervals.at("yh").max(), 1.0);
}

// The gates' sums overflow inside the op although Y stays in [-1, 1]: W x near 6e38
// is INF in float32, and at the second step R h is -INF, so INF - INF is NaN in Y
// (fuzz_soundness on test_lstm_batchwise). Reported as the op's overflow. W x and R h
// are separate products, so the NaN does not depend on the BLAS' summation order (a
// fused multiply-add keeps the first INF of a mixed-sign sum, the reference BLAS
// does not).
TEST(Recurrent, GateSumsPastFloatMaxAreAnOverflow) {
  int64_t seq = 2, in = 1, hid = 2;
  auto lstm = [&](double w, double r) {
    at::Tensor wt = at::full({1, 4 * hid, in}, static_cast<float>(w)), rt = at::full({1, 4 * hid, hid}, static_cast<float>(r));
    return recurrent_model(13, "LSTM", {{"x", at::zeros({seq, 1, in})}, {"w", wt}, {"r", rt}}, {"x"},
                           [&](onnx::NodeProto& n) { set_attr(n, "hidden_size", hid); });
  };
  ModelBuilder big = lstm(3e37, -3e38), small = lstm(1.0, 0.0);
  EXPECT_EQ(testing::hazards_of(analyze_built(big, ranges(-20, 20))), std::vector<std::string>{"overflow"});
  EXPECT_TRUE(analyze_built(small, ranges(-20, 20)).findings.empty());
  at::Tensor x = at::full({seq, 1, in}, 20.f);
  at::Tensor y = testing::run_output(big, {{"x", x}});
  EXPECT_TRUE(at::isnan(y).any().item<bool>());  // step 2: 20 * 3e37 = INF beside 2 * 0.76 * -3e38 = -INF
}

// An unclipped Relu RNN: bounded for small inputs, the engine's overflow check fires
// once the range widens (the proof fails); Tanh stays bounded on the wide range.
TEST(Recurrent, ReluRnnProofFailsWhenRangeWidens) {
  int64_t seq = 6, hid = 4;
  at::Tensor x = randn({seq, 1, 2});
  auto model = [&](const char* act) {
    return recurrent_model(13, "RNN", {{"x", x}, {"w", at::full({1, hid, 2}, 1.0f)}, {"r", at::full({1, hid, hid}, 20.0f)}},
                           {"x"}, [=](onnx::NodeProto& n) {
                             set_attr(n, "hidden_size", hid);
                             set_strings(n, "activations", {act});
                           });
  };
  ModelBuilder relu = model("Relu"), tanh = model("Tanh");
  EXPECT_TRUE(analyze_built(relu, ranges(-1, 1)).findings.empty());
  AnalysisResult wide = analyze_built(relu, ranges(-1e30, 1e30));
  ASSERT_FALSE(wide.findings.empty());
  EXPECT_EQ(wide.findings[0].hazard, "overflow");
  EXPECT_EQ(wide.findings[0].op_type, "RNN");
  EXPECT_TRUE(analyze_built(tanh, ranges(-1e30, 1e30)).findings.empty());
}

// Soundness by sampling: random fixed weights (initializers) and free weights, LSTM
// with peepholes and initial states, GRU both reset forms, RNN; several input boxes.
TEST(Recurrent, SoundnessBySampling) {
  int64_t seq = 3, batch = 2, in = 3, hid = 3;
  at::Tensor x = randn({seq, batch, in});
  testing::SoundTally tally;
  auto check = [&](ModelBuilder& b, AnalyzeOptions opt, const std::string& what) {
    EXPECT_GT(testing::expect_sound(b, opt, what, &tally, 20, 5), 0) << what;
  };
  for (auto [lo, hi] : {std::pair{-1.0, 1.0}, std::pair{-20.0, 20.0}, std::pair{0.5, 0.6}}) {
    std::string box = " on [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    ModelBuilder lstm = recurrent_model(13, "LSTM", {{"x", x}, {"w", randn({2, 4 * hid, in})}, {"r", randn({2, 4 * hid, hid})},
                                                     {"b", randn({2, 8 * hid})}, {"", {}}, {"h0", randn({2, batch, hid})},
                                                     {"c0", randn({2, batch, hid}, 3.0)}, {"p", randn({2, 3 * hid})}},
                                        {"x"}, [&](onnx::NodeProto& n) {
                                          set_attr(n, "hidden_size", hid);
                                          set_string(n, "direction", "bidirectional");
                                        });
    check(lstm, ranges(lo, hi), "LSTM fixed" + box);
    AnalyzeOptions free = testing::free_weights({{"x", {lo, hi}}}, -0.5, 0.5);
    check(lstm, free, "LSTM free" + box);
    for (int64_t lbr : {0, 1}) {
      ModelBuilder gru = recurrent_model(13, "GRU", {{"x", x}, {"w", randn({1, 3 * hid, in})}, {"r", randn({1, 3 * hid, hid})},
                                                     {"b", randn({1, 6 * hid})}},
                                         {"x"}, [&](onnx::NodeProto& n) {
                                           set_attr(n, "hidden_size", hid);
                                           set_attr(n, "linear_before_reset", lbr);
                                           set_string(n, "direction", "reverse");
                                         });
      check(gru, ranges(lo, hi), "GRU fixed" + box);
      check(gru, free, "GRU free" + box);
    }
    ModelBuilder rnn = recurrent_model(13, "RNN", {{"x", x}, {"w", randn({1, hid, in})}, {"r", randn({1, hid, hid})}}, {"x"},
                                       [&](onnx::NodeProto& n) { set_attr(n, "hidden_size", hid); });
    check(rnn, free, "RNN free" + box);
  }
  EXPECT_EQ(tally.violations, 0);
  tally.print("recurrent");
}

}  // namespace
}  // namespace nanguard
