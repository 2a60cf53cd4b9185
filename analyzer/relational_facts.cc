#include "analyzer/relational_facts.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

namespace nanguard {
namespace {

const Node* producer_of(const Graph& g, const std::string& tensor, const char* op_type) {
  const Node* p = g.producer(tensor);
  return p && p->op_type == op_type && !p->inputs.empty() ? p : nullptr;
}

// The reduced axes of a Reduce* node, normalised to [0, rank); empty = all axes.
std::vector<int64_t> reduce_axes(const Graph& g, const Node& n, int64_t rank) {
  std::vector<int64_t> axes;
  if (has_attr(n, "axes")) {
    axes = attr_ints(n, "axes");
  } else if (n.inputs.size() > 1 && !n.inputs[1].empty() && g.is_initializer(n.inputs[1])) {
    const onnx::TensorProto& t = g.initializers.at(n.inputs[1]);
    if (t.raw_data().size() == static_cast<size_t>(t.dims_size() ? t.dims(0) : 1) * 8) {
      axes.resize(t.raw_data().size() / 8);
      std::memcpy(axes.data(), t.raw_data().data(), t.raw_data().size());
    } else {
      axes.assign(t.int64_data().begin(), t.int64_data().end());
    }
  }
  if (axes.empty())
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  for (int64_t& ax : axes) ax = ax < 0 ? ax + rank : ax;
  std::sort(axes.begin(), axes.end());
  return axes;
}

bool stable_softmax_denominator(const AbstractContext& a) {
  const Graph& g = a.graph;
  const Node& sum = a.node;
  const Node* exp = producer_of(g, sum.inputs[0], "Exp");
  const Node* sub = exp ? producer_of(g, exp->inputs[0], "Sub") : nullptr;
  const Node* max = sub && sub->inputs.size() == 2 ? producer_of(g, sub->inputs[1], "ReduceMax") : nullptr;
  if (!max || max->inputs[0] != sub->inputs[0] || attr_int(*max, "keepdims", 1) != 1) return false;
  int64_t rank = static_cast<int64_t>(a.input(0).shape.size());
  return reduce_axes(g, *max, rank) == reduce_axes(g, sum, rank) && a.input(0).numel() > 0;
}

// Sums, means and norms of non-negative terms are non-negative in float32 as well
// (every partial sum is), whatever accumulation error bound the transfer subtracted.
bool nonnegative_reduction(const AbstractContext& a) {
  static const char* kOps[] = {"ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2", "CumSum"};
  bool op = std::any_of(std::begin(kOps), std::end(kOps), [&](const char* o) { return a.node.op_type == o; });
  bool always = a.node.op_type == "ReduceSumSquare" || a.node.op_type == "ReduceL1" || a.node.op_type == "ReduceL2";
  return op && a.has_input(0) && (always || (a.input(0).lo >= 0).all().item<bool>());
}

// The constant value of a scalar float initializer, if it is one.
std::optional<double> scalar_constant(const Graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  if (it == g.initializers.end()) return std::nullopt;
  const onnx::TensorProto& t = it->second;
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  if (n != 1 || t.data_type() != onnx::TensorProto::FLOAT) return std::nullopt;
  if (t.float_data_size() == 1) return t.float_data(0);
  if (t.raw_data().size() != 4) return std::nullopt;
  float v;
  std::memcpy(&v, t.raw_data().data(), 4);
  return v;
}

// Div(d, Sqrt([Add](ReduceMean_A(d * d), eps >= 0))): returns n, the number of
// elements each mean reduces, or 0 when the pattern does not match.
int64_t normalisation_group(const AbstractContext& a) {
  const Graph& g = a.graph;
  const Node& div = a.node;
  if (div.op_type != "Div" || div.inputs.size() != 2) return 0;
  const Node* sqrt = producer_of(g, div.inputs[1], "Sqrt");
  if (!sqrt) return 0;
  std::string var = sqrt->inputs[0];
  if (const Node* add = producer_of(g, var, "Add"); add && add->inputs.size() == 2) {
    bool eps_first = scalar_constant(g, add->inputs[0]).has_value();
    std::optional<double> eps = scalar_constant(g, add->inputs[eps_first ? 0 : 1]);
    if (!eps || *eps < 0) return 0;
    var = add->inputs[eps_first ? 1 : 0];
  }
  const Node* mean = producer_of(g, var, "ReduceMean");
  if (!mean) return 0;
  const Node* sq = g.producer(mean->inputs[0]);
  const std::string& d = div.inputs[0];
  bool squares = sq && ((sq->op_type == "Mul" && sq->inputs.size() == 2 && sq->inputs[0] == d && sq->inputs[1] == d) ||
                        (sq->op_type == "Pow" && sq->inputs[0] == d && scalar_constant(g, sq->inputs[1]) == 2.0));
  if (!squares) return 0;
  const IntervalTensor& num = a.input(0);
  int64_t rank = static_cast<int64_t>(num.shape.size()), n = 1;
  for (int64_t ax : reduce_axes(g, *mean, rank)) n *= num.shape[ax];
  return n;
}

// sqrt(n) widened for the float32 roundings of the squares, the mean (gamma_n), the
// eps add, the sqrt and the division.
double normalisation_bound(int64_t n) {
  double u = kFloat32Ulp / 2;
  return std::sqrt(static_cast<double>(n)) * (1 + (static_cast<double>(n) + 10) * u);
}

}  // namespace

void filter_hazards_with_facts(const AbstractContext& a, std::vector<HazardReport>& reports) {
  if (normalisation_group(a) == 0) return;
  reports.erase(std::remove_if(reports.begin(), reports.end(),
                               [](const HazardReport& h) { return h.hazard == "div-overflow"; }),
                reports.end());
}

void refine_with_facts(const AbstractContext& a, std::vector<IntervalTensor>& outs) {
  if (int64_t n = normalisation_group(a); n > 0 && !outs.empty() && outs[0].lo.defined()) {
    double b = normalisation_bound(n);
    outs[0].lo = outs[0].lo.clamp(-b, b);
    outs[0].hi = outs[0].hi.clamp(-b, b);
  }
  if (!outs.empty() && outs[0].lo.defined() && !outs[0].exact() && nonnegative_reduction(a))
    outs[0].lo = outs[0].lo.clamp_min(0.0);
  if (a.node.op_type == "ReduceSum" && !outs.empty() && outs[0].lo.defined() && !outs[0].exact() &&
      stable_softmax_denominator(a))
    outs[0].lo = outs[0].lo.clamp_min(1.0);
}

}  // namespace nanguard
