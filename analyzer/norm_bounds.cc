#include "analyzer/norm_bounds.h"

#include <cmath>
#include <utility>

#include "ops/type_limit.h"

namespace nanguard {
namespace {

// Exact operands past this size (weights) get no norm: the facets that read a weight
// use its singular values, not its norm.
constexpr int64_t kExactNormLimit = int64_t{1} << 20;

double magnitude(const IntervalTensor& t) { return t.numel() == 0 ? 0 : std::max(std::abs(t.min()), std::abs(t.max())); }

double own_norm(const IntervalTensor& t) {
  if ((!t.lo.defined() && !t.lazy()) || !t.is_float() || (t.exact() && t.numel() > kExactNormLimit)) return kNoNormBound;
  return norm_of(t.with_bounds());
}

// The norms of the graph's tensors on demand, each from its producer's facet (its
// inputs' norms first) or, where the interval is tight or no facet applies, from
// the interval itself.
class NormChain {
 public:
  NormChain(const Graph& graph, int64_t opset, at::ScalarType float_type,
            const std::unordered_map<std::string, IntervalTensor>& intervals, NormMap& norms, double start)
      : graph_(graph), opset_(opset), float_type_(float_type), intervals_(intervals), norms_(norms), start_(start) {}

  double of(const std::string& tensor) {
    // Depth first, without recursion (graphs run to thousands of nodes): a tensor is
    // computed once every input of its producer has a norm.
    std::vector<std::string> stack{tensor};
    while (!stack.empty()) {
      std::string t = stack.back();
      if (norms_.count(t)) {
        stack.pop_back();
        continue;
      }
      const Node* p = chained_producer(t);
      bool ready = true;
      if (p)
        for (const std::string& in : p->inputs)
          if (!in.empty() && !norms_.count(in) && intervals_.count(in)) {
            stack.push_back(in);
            ready = false;
          }
      if (!ready) continue;
      stack.pop_back();
      norms_[t] = p ? std::min(through(*p), base(t)) : base(t);
    }
    return norms_.at(tensor);
  }

  // The facet of `def` on a node with these input intervals and outputs.
  double facet(const OpDef& def, const AbstractContext& a, const std::vector<IntervalTensor>& outs) {
    NormContext c{a, {}, outs};
    for (size_t i = 0; i < a.num_inputs(); ++i) c.inputs.push_back(a.has_input(i) ? of(a.node.inputs[i]) : kNoNormBound);
    double n = def.norm(c);
    return std::isnan(n) ? kNoNormBound : n;
  }

 private:
  double base(const std::string& t) const {
    auto it = intervals_.find(t);
    return it == intervals_.end() ? kNoNormBound : own_norm(it->second);
  }

  // The producer whose facet gives `t`: output 0 of a node with a facet, where the
  // interval alone is loose.
  const Node* chained_producer(const std::string& t) const {
    auto it = intervals_.find(t);
    if (it == intervals_.end() || !it->second.lo.defined() || it->second.exact() || magnitude(it->second) <= start_)
      return nullptr;
    const Node* p = graph_.producer(t);
    if (!p || p->outputs.empty() || p->outputs[0] != t) return nullptr;
    const OpDef* def = OpRegistry::instance().find(p->op_type, p->domain);
    return def && def->norm ? p : nullptr;
  }

  double through(const Node& p) {
    const OpDef* def = OpRegistry::instance().find(p.op_type, p.domain);
    AbstractContext a{p, graph_, opset_, {}, float_type_};
    for (const std::string& in : p.inputs) {
      auto it = in.empty() ? intervals_.end() : intervals_.find(in);
      a.inputs.push_back(it == intervals_.end() ? IntervalTensor() : it->second.with_bounds());
    }
    std::vector<IntervalTensor> outs;
    for (const std::string& o : p.outputs) {
      auto it = intervals_.find(o);
      outs.push_back(it == intervals_.end() ? IntervalTensor() : it->second);
    }
    return facet(*def, a, outs);
  }

  const Graph& graph_;
  int64_t opset_;
  at::ScalarType float_type_;
  const std::unordered_map<std::string, IntervalTensor>& intervals_;
  NormMap& norms_;
  double start_;
};

}  // namespace

bool refine_with_norms(const OpDef& def, const AbstractContext& a, std::vector<IntervalTensor>& outs,
                       const std::unordered_map<std::string, IntervalTensor>& intervals, NormMap& norms,
                       const NormOptions& options) {
  if (!def.norm || options.above <= 0 || outs.empty() || a.node.outputs.empty() || a.node.outputs[0].empty() ||
      !outs[0].lo.defined() || outs[0].exact() || !outs[0].is_float() || outs[0].numel() == 0)
    return false;
  IntervalTensor& y = outs[0];
  double before = magnitude(y), limit = tensor_limit(a.graph, a.node.outputs[0]);
  if (!(before > std::min(options.above, limit / 100))) return false;
  NormChain chain(a.graph, a.opset, a.float_type, intervals, norms, options.start);
  double n = std::min(chain.facet(def, a, outs), own_norm(y));
  norms[a.node.outputs[0]] = n;
  if (!(n < before)) return false;
  y.lo = y.lo.clamp_min(-n);
  y.hi = y.hi.clamp_max(n);
  return true;
}

}  // namespace nanguard
