// Relational facts between tensors: a per-group max taken through data movement
// (an edge softmax: Where over a constant mask, ReduceMax, Gather) dominates the
// elements of its group, and the scatter-add of exp(x - max) over a group is >= 1.
// Each proof must fail as soon as the group stops holding its own element.
#include <gtest/gtest.h>

#include "analyzer/analyzer.h"
#include "harness/soundness.h"
#include "model/onnx_loader.h"
#include "test_models.h"

namespace nanguard {
namespace {

using testing::ModelBuilder;
using testing::set_attr;

// p = exp(src - max_group[index]) / scatter_add(exp(...), index)[index]; mask[g][i]
// says whether edge i belongs to group g's max.
ModelBuilder edge_softmax(const at::Tensor& mask, const at::Tensor& index) {
  ModelBuilder b(16);
  int64_t n = index.numel();
  b.input("src", {n}).output("p", {n});
  b.initializer("mask", mask).initializer("index", index).initializer("axis0", at::zeros({1}, at::kLong));
  b.initializer("fill", at::full({}, -3e38f)).initializer("zeros", at::zeros({mask.size(0)}));
  b.node("Unsqueeze", {"src", "axis0"}, {"row"});
  b.node("Where", {"mask", "row", "fill"}, {"masked"});
  auto& max = b.node("ReduceMax", {"masked"}, {"gmax"});
  set_attr(max, "axes", std::vector<int64_t>{1});
  set_attr(max, "keepdims", int64_t{0});
  b.node("Gather", {"gmax", "index"}, {"m"});
  b.node("Sub", {"src", "m"}, {"d"});
  b.node("Exp", {"d"}, {"e"}, "exp");
  auto& sc = b.node("ScatterElements", {"zeros", "index", "e"}, {"s"});
  onnx::AttributeProto* red = sc.add_attribute();
  red->set_name("reduction");
  red->set_type(onnx::AttributeProto::STRING);
  red->set_s("add");
  b.node("Gather", {"s", "index"}, {"den"});
  b.node("Div", {"e", "den"}, {"p"}, "div");
  return b;
}

at::Tensor two_groups_mask(bool holds_own_edge) {
  at::Tensor m = at::zeros({2, 6}, at::kBool);
  m.index_put_({0, at::indexing::Slice(0, 3)}, true);
  m.index_put_({1, at::indexing::Slice(3, 6)}, true);
  if (!holds_own_edge) m.index_put_({0, 0}, false);
  return m;
}

const at::Tensor kIndex = at::tensor({0, 0, 0, 1, 1, 1}, at::kLong);

AnalysisResult analyze_model(ModelBuilder& b, double lo, double hi) {
  auto g = load_model_proto(b.proto(), "edge_softmax.onnx");
  EXPECT_TRUE(g.ok()) << g.status().message();
  auto r = analyze(*g, AnalyzeOptions{{{"src", {lo, hi}}}});
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : AnalysisResult{};
}

TEST(RelationalFacts, EdgeSoftmaxIsProvedSafe) {
  ModelBuilder b = edge_softmax(two_groups_mask(true), kIndex);
  AnalysisResult r = analyze_model(b, -100, 100);
  EXPECT_TRUE(r.findings.empty()) << r.findings[0].node << " " << r.findings[0].hazard;
  EXPECT_LE(r.intervals.at("d").max(), 0.0);
  EXPECT_GE(r.intervals.at("s").min(), 1.0);
  EXPECT_LE(r.intervals.at("p").max(), 1.0 + 1e-6);
}

// Edge 0 left out of its group's max: src_0 - max may be positive; exp(200)
// overflows and the proof must not go through.
TEST(RelationalFacts, GroupWithoutItsOwnEdgeProvesNothing) {
  ModelBuilder b = edge_softmax(two_groups_mask(false), kIndex);
  AnalysisResult r = analyze_model(b, -100, 100);
  ASSERT_FALSE(r.findings.empty());
  EXPECT_EQ(r.findings[0].node, "exp");
  EXPECT_EQ(r.findings[0].hazard, "exp-overflow");
  // The other edges keep their fact element by element.
  at::Tensor hi = r.intervals.at("d").hi.expand({6});
  EXPECT_GT(hi[0].item<double>(), 0.0);
  EXPECT_LE(hi.slice(0, 1).max().item<double>(), 0.0);
}

// A fill constant that can win the max (above every src) breaks exactness: the
// denominator is no longer >= 1, though x - max <= 0 still holds.
TEST(RelationalFacts, AFillThatCanWinTheMaxKeepsOnlyTheInequality) {
  ModelBuilder b = edge_softmax(two_groups_mask(true), kIndex);
  for (auto& init : *b.proto().mutable_graph()->mutable_initializer())
    if (init.name() == "fill") init.set_raw_data(std::string("\x00\x00\xc8\x42", 4));  // 100.0f
  at::Tensor mask = two_groups_mask(true);
  mask.index_put_({0, 5}, false);  // group 0's row now reads the fill at edge 5
  for (auto& init : *b.proto().mutable_graph()->mutable_initializer())
    if (init.name() == "mask") init.set_raw_data(std::string(reinterpret_cast<const char*>(mask.data_ptr<bool>()), 12));
  AnalysisResult r = analyze_model(b, -100, 50);
  EXPECT_LE(r.intervals.at("d").max(), 0.0);
  EXPECT_LT(r.intervals.at("s").min(), 1.0);
}

TEST(RelationalFacts, EdgeSoftmaxBoundsHoldOnSampledExecutions) {
  for (bool holds : {true, false}) {
    ModelBuilder b = edge_softmax(two_groups_mask(holds), kIndex);
    auto g = load_model_proto(b.proto(), "edge_softmax.onnx");
    ASSERT_TRUE(g.ok());
    auto rep = check_soundness(*g, AnalyzeOptions{{{"src", {-100, 100}}}}, 300, 11);
    ASSERT_TRUE(rep.ok()) << rep.status().message();
    EXPECT_GT(rep->checked_values, 0);
    for (const auto& v : rep->violations) ADD_FAILURE() << v.node << ": " << v.what << " " << v.value;
  }
}

// InfoNCE over F.normalize'd embeddings: a = x / max(||x||, 1e-12) row-wise (ReduceL2
// over the last axis, keepdims), likewise b; logits a @ b^T / 0.07, then the naive
// exp / sum and log. |a_i| <= 1 and, by Cauchy-Schwarz, |logit| <= 1 / 0.07, so exp
// cannot overflow and the ratio stays above exp(-28.6) / 4: no forward finding (the
// norms' gradients at a zero row remain). Normalising b over
// the wrong axis (its columns) breaks the pattern, and the findings come back.
ModelBuilder info_nce(int64_t b_axis) {
  ModelBuilder b(13);
  b.input("x", {4, 16}).input("y", {4, 16}).output("loss", {4, 4});
  b.initializer("eps", at::full({}, 1e-12f)).initializer("inv_t", at::full({}, 1 / 0.07f));
  for (auto [in, axis] : {std::pair{std::string("x"), int64_t{1}}, std::pair{std::string("y"), b_axis}}) {
    set_attr(b.node("ReduceL2", {in}, {in + "_norm"}), "axes", std::vector<int64_t>{axis});
    b.node("Clip", {in + "_norm", "eps"}, {in + "_den"});
    b.node("Div", {in, in + "_den"}, {in + "_unit"}, in + "_normalize");
  }
  set_attr(b.node("Transpose", {"y_unit"}, {"yt"}), "perm", std::vector<int64_t>{1, 0});
  b.node("MatMul", {"x_unit", "yt"}, {"cos"}, "cosine");
  b.node("Mul", {"cos", "inv_t"}, {"logits"}, "scale");
  b.node("Exp", {"logits"}, {"e"}, "exp");
  set_attr(b.node("ReduceSum", {"e", "axes1"}, {"s"}), "keepdims", int64_t{1});
  b.initializer("axes1", at::tensor({int64_t{1}}));
  b.node("Div", {"e", "s"}, {"p"}, "ratio");
  b.node("Log", {"p"}, {"loss"}, "log");
  return b;
}

TEST(RelationalFacts, CosineSimilaritiesOfNormalisedRowsAreBoundedByOne) {
  ModelBuilder good = info_nce(1);
  auto g = load_model_proto(good.proto(), "info_nce.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  AnalyzeOptions opt{{{"x", {-1, 1}}, {"y", {-1, 1}}}};
  auto r = analyze(*g, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> forward;  // the norms' gradients at x = 0 stay findings
  for (const auto& f : r->findings)
    if (f.kind == HazardKind::kForward) forward.push_back(f.node + ":" + f.hazard);
    else EXPECT_EQ(f.hazard, "norm-zero-gradient") << f.node;
  EXPECT_EQ(forward, std::vector<std::string>{});
  EXPECT_LE(r->intervals.at("x_unit").max(), 1.00001);
  EXPECT_LE(r->intervals.at("cos").max(), 1.00001);
  EXPECT_GE(r->intervals.at("cos").min(), -1.00001);
  auto rep = check_soundness(*g, opt, 60, 3);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_GT(rep->checked_values, 0);
  for (const auto& v : rep->violations) ADD_FAILURE() << v.node << ": " << v.what << " " << v.value;

  ModelBuilder broken = info_nce(0);
  auto gb = load_model_proto(broken.proto(), "info_nce_broken.onnx");
  ASSERT_TRUE(gb.ok());
  auto rb = analyze(*gb, opt);
  ASSERT_TRUE(rb.ok());
  bool forward_found = false;
  for (const auto& f : rb->findings) forward_found |= f.kind == HazardKind::kForward;
  EXPECT_TRUE(forward_found);
  EXPECT_GT(rb->intervals.at("cos").max(), 2.0);
}

// (x - mean(x)) / sqrt(mean(x * x) - mean(x)^2 + eps): the variance by moments, as the
// ONNX LayerNormalization function body computes it. `second_axes` breaks the pattern
// (the two means over different axes); `eps` 0 leaves a real hazard (all x equal: the
// difference may round below 0).
std::vector<std::string> node_hazards(const std::vector<Finding>& findings) {
  std::vector<std::string> out;
  for (const auto& f : findings) out.push_back(f.node + ":" + f.hazard);
  return out;
}

ModelBuilder moments_norm(int64_t second_axis, float eps) {
  ModelBuilder b(13);
  b.input("x", {2, 8}).output("y", {2, 8});
  b.initializer("eps", at::full({}, eps));
  set_attr(b.node("ReduceMean", {"x"}, {"m"}, "mean"), "axes", std::vector<int64_t>{1});
  b.node("Mul", {"x", "x"}, {"xx"}, "square");
  set_attr(b.node("ReduceMean", {"xx"}, {"q"}, "mean_sq"), "axes", std::vector<int64_t>{second_axis});
  b.node("Mul", {"m", "m"}, {"mm"}, "sq_mean");
  b.node("Sub", {"q", "mm"}, {"var"}, "var");
  b.node("Add", {"var", "eps"}, {"ve"}, "plus_eps");
  b.node("Sqrt", {"ve"}, {"sd"}, "sqrt");
  b.node("Sub", {"x", "m"}, {"d"}, "centre");
  b.node("Div", {"d", "sd"}, {"y"}, "normalise");
  return b;
}

TEST(RelationalFacts, AVarianceByMomentsIsNonNegativeUpToRounding) {
  AnalyzeOptions opt{{{"x", {-1, 1}}}};
  ModelBuilder good = moments_norm(1, 1e-5f);
  auto g = load_model_proto(good.proto(), "moments.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto r = analyze(*g, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(node_hazards(r->findings), std::vector<std::string>{});
  EXPECT_GT(r->intervals.at("var").min(), -1e-5);  // -c * max(mean(x*x)): about 2e-6 here
  EXPECT_LT(r->intervals.at("var").min(), 0.0);    // rounding is not assumed away
  auto rep = check_soundness(*g, opt, 60, 3);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_GT(rep->checked_values, 0);
  for (const auto& v : rep->violations) ADD_FAILURE() << v.node << ": " << v.what << " " << v.value;
  // Means over different axes: no fact, the variance's interval crosses -1.
  ModelBuilder other = moments_norm(0, 1e-5f);
  auto go = load_model_proto(other.proto(), "moments_axes.onnx");
  ASSERT_TRUE(go.ok());
  auto ro = analyze(*go, opt);
  ASSERT_TRUE(ro.ok()) << ro.status().message();
  EXPECT_LT(ro->intervals.at("var").min(), -0.5);
  // No eps: sqrt of a variance that may round below 0 stays a finding.
  auto gz = load_model_proto(moments_norm(1, 0.f).proto(), "moments_no_eps.onnx");
  ASSERT_TRUE(gz.ok());
  auto rz = analyze(*gz, opt);
  ASSERT_TRUE(rz.ok());
  std::vector<std::string> found = node_hazards(rz->findings);
  EXPECT_NE(std::find(found.begin(), found.end(), "sqrt:sqrt-negative"), found.end());
}

}  // namespace
}  // namespace nanguard
