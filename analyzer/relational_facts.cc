#include "analyzer/relational_facts.h"

#include <algorithm>
#include <cstring>

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

}  // namespace

// Sums, means and norms of non-negative terms are non-negative in float32 as well
// (every partial sum is), whatever accumulation error bound the transfer subtracted.
bool nonnegative_reduction(const AbstractContext& a) {
  static const char* kOps[] = {"ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL1", "ReduceL2", "CumSum"};
  bool op = std::any_of(std::begin(kOps), std::end(kOps), [&](const char* o) { return a.node.op_type == o; });
  bool always = a.node.op_type == "ReduceSumSquare" || a.node.op_type == "ReduceL1" || a.node.op_type == "ReduceL2";
  return op && a.has_input(0) && (always || (a.input(0).lo >= 0).all().item<bool>());
}

void refine_with_facts(const AbstractContext& a, std::vector<IntervalTensor>& outs) {
  if (!outs.empty() && outs[0].lo.defined() && !outs[0].exact() && nonnegative_reduction(a))
    outs[0].lo = outs[0].lo.clamp_min(0.0);
  if (a.node.op_type == "ReduceSum" && !outs.empty() && outs[0].lo.defined() && !outs[0].exact() &&
      stable_softmax_denominator(a))
    outs[0].lo = outs[0].lo.clamp_min(1.0);
}

}  // namespace nanguard
