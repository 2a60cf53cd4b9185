#include "analyzer/gradient_bounds.h"

#include <algorithm>
#include <limits>
#include <set>
#include <unordered_set>

#include <fmt/core.h>

#include "analyzer/finding_path.h"
#include "analyzer/half_grid.h"
#include "ops/gradient_bounds.h"
#include "ops/type_limit.h"

namespace nanguard {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

bool is_half(const Graph& g, const std::string& name) {
  const TensorType* t = g.type_of(name);
  return t && half_type_of(t->elem_type) != at::kFloat;
}

// Relative slack for the rounding of a gradient computed in the tensor's type: each
// backward op rounds its result once to nearest (2^-11 in float16, 2^-8 in bfloat16),
// and sums accumulate in float32 on CPU (n * 2^-24, another 2^-11 up to 8192 terms).
// Ops that only route or mask the output gradient compute nothing and take none.
double rounding_slack(const Graph& g, const Node& n, const std::string& name) {
  static const std::set<std::string> exact = {"Clip", "Relu", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
                                              "Transpose", "Concat", "Split", "Slice", "Gather", "Max", "Min", "Where",
                                              "MaxPool", "ReduceMax", "ReduceMin", "GlobalMaxPool", "Neg", "Abs"};
  if (exact.count(n.op_type) || (n.op_type == "Dropout" && n.inputs.size() < 3)) return 1;
  const TensorType* t = g.type_of(name);
  if (t && t->elem_type == onnx::TensorProto::FLOAT16) return 1 + std::ldexp(1.0, -10);
  if (t && t->elem_type == onnx::TensorProto::BFLOAT16) return 1 + std::ldexp(1.0, -7);
  return 1 + std::ldexp(1.0, -20);
}

// The least real value that rounds to INF in the tensor's type: its largest finite
// value plus half an ulp there (65520 for float16).
double overflows_from(const Graph& g, const std::string& name) {
  const TensorType* t = g.type_of(name);
  if (t && t->elem_type == onnx::TensorProto::FLOAT16) return kFloat16Max + 16;
  if (t && t->elem_type == onnx::TensorProto::BFLOAT16) return kBFloat16Max + std::ldexp(1.0, 119);
  return kFloat32Max + std::ldexp(1.0, 103);
}

// The float tensors a gradient reaches: inputs (a point range too: it is a leaf of the
// backward pass all the same) and free weights (every non-exact starting interval), and
// what nodes compute from them.
std::unordered_set<std::string> differentiable(const Graph& g, const AnalysisResult& r) {
  std::unordered_set<std::string> d;
  auto is_float = [&](const std::string& n) {
    auto it = r.intervals.find(n);
    return it != r.intervals.end() && it->second.lo.defined() && it->second.is_float();
  };
  std::unordered_set<std::string> inputs(g.inputs.begin(), g.inputs.end());
  for (const auto& [name, iv] : r.intervals)
    if (!g.producer(name) && iv.lo.defined() && iv.is_float() && (!iv.exact() || inputs.count(name))) d.insert(name);
  for (const Node& n : g.nodes) {
    bool any = std::any_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& in) { return d.count(in) > 0; });
    for (const std::string& in : implicit_inputs(n)) any = any || d.count(in) > 0;
    if (!any) continue;
    for (const std::string& out : n.outputs)
      if (!out.empty() && is_float(out)) d.insert(out);
  }
  return d;
}

// The soundness run's loss: the first scalar output of a model with several, else
// the sum of every float output.
std::vector<std::string> loss_outputs(const Graph& g, const AnalysisResult& r, const std::unordered_set<std::string>& d) {
  std::vector<std::string> all;
  for (const std::string& o : g.outputs) {
    if (!d.count(o)) continue;
    if (g.outputs.size() > 1 && r.intervals.at(o).numel() == 1) return {o};
    all.push_back(o);
  }
  return all;
}

// A rule's bound in its input's shape: broadcast up, or, where the two disagree
// (fuzz_loader once met a [3, 4] bound for a rank-0 interval, and expand threw), the
// sum of every element, which no element of the gradient exceeds.
at::Tensor fit_to(const at::Tensor& b, const std::vector<int64_t>& shape) {
  if (b.sizes().vec() == shape) return b;
  if (at::is_expandable_to(b.sizes(), shape)) return b.expand(shape).contiguous();
  return at::full(shape, b.sum().item<double>(), at::kDouble);
}

struct Pass {
  const Graph& graph;
  const AnalysisResult& forward;
  const AnalyzeOptions& options;
  std::unordered_set<std::string> diff;
  std::set<std::string> flagged;  // nodes with a finding
  GradientBounds out;
  // Per tensor: the consumer whose contribution is the largest, and that contribution.
  std::unordered_map<std::string, std::pair<const Node*, double>> top_consumer;
  // Per tensor left unbounded by an op without a backward bound: that op.
  std::unordered_map<std::string, const Node*> unbounded_by;
  // Tensors whose bound takes a share that crossed a node with a finding: an overflow
  // of theirs is that finding's echo (as the forward analysis continues on the safe
  // state), not reported again.
  std::unordered_set<std::string> echo;
  std::set<std::string> reported;

  void add(const std::string& t, at::Tensor g, const Node& consumer) {
    g = g * rounding_slack(graph, consumer, t);
    double m = g.numel() ? g.max().item<double>() : 0;
    auto& top = top_consumer[t];
    if (!top.first || m > top.second) top = {&consumer, m};
    at::Tensor& b = out.bound[t];
    b = b.defined() ? b + g : g;
  }

  void node_without_bound(const Node& n) {
    for (const std::string& in : n.inputs) {
      if (in.empty() || !diff.count(in)) continue;
      out.bound[in] = at::full(forward.intervals.at(in).shape, kInf, at::kDouble);
      if (!unbounded_by.count(in)) unbounded_by[in] = &n;
    }
  }

  // The Log that alone reads a Softmax's output (log(softmax(x)) as exported), or null.
  // A Clip between them (a fix's, or the user's clamp(min=eps)) only zeroes some of the
  // Log's 1/p terms: the log_softmax bound still holds.
  const Node* sole_log_consumer(const Node& n) const {
    if (n.op_type != "Softmax" || n.outputs.size() != 1) return nullptr;
    std::string t = n.outputs[0];
    for (int hops = 0; hops < 4; ++hops) {
      if (std::find(graph.outputs.begin(), graph.outputs.end(), t) != graph.outputs.end()) return nullptr;
      const Node* only = nullptr;
      for (const Node& c : graph.nodes)
        for (const std::string& in : c.inputs)
          if (in == t) {
            if (only) return nullptr;
            only = &c;
          }
      if (!only) return nullptr;
      if (only->op_type == "Log") return only;
      if (only->op_type != "Clip" || only->inputs[0] != t) return nullptr;
      t = only->outputs[0];
    }
    return nullptr;
  }

  // Its bound is complete once every consumer is visited, so before its producer: an
  // overflow is reported there and the bound continues from the type's largest finite
  // value (what passes further back is that finding's echo, as past any finding).
  void settle(const std::string& t) {
    if (!report(t)) return;
    out.bound[t] = out.bound[t].clamp_max(tensor_limit(graph, t));
    echo.insert(t);
  }

  void visit(const Node& n) {
    for (const std::string& o : n.outputs)
      if (!o.empty() && diff.count(o)) settle(o);
    std::vector<at::Tensor> outs;
    bool any = false;
    const Node* origin = nullptr;
    for (const std::string& o : n.outputs) {
      auto it = o.empty() ? out.bound.end() : out.bound.find(o);
      outs.push_back(it == out.bound.end() ? at::Tensor() : it->second);
      any = any || outs.back().defined();
      if (auto u = unbounded_by.find(o); u != unbounded_by.end() && !origin) origin = u->second;
    }
    if (!any) return;
    if (origin) {  // the gradient is already unbounded here: so are this node's inputs'
      for (const std::string& in : n.inputs)
        if (!in.empty() && diff.count(in) && !unbounded_by.count(in)) unbounded_by[in] = origin;
      node_without_bound(n);
      return;
    }
    AbstractContext a{n, graph, graph.opset, {}, options.float_type};
    for (const std::string& in : n.inputs) {
      auto it = in.empty() ? forward.intervals.end() : forward.intervals.find(in);
      a.inputs.push_back(it == forward.intervals.end() ? IntervalTensor{} : it->second);
    }
    std::optional<std::vector<at::Tensor>> g;
    if (const Node* log = sole_log_consumer(n)) {
      auto it = out.bound.find(log->outputs[0]);
      if (it != out.bound.end() && !flagged.count(log->name)) g = std::vector<at::Tensor>{log_softmax_input_bound(a, it->second)};
    }
    if (!g && n.subgraphs.empty()) {
      try {
        std::vector<IntervalTensor> fwd;
        for (const std::string& o : n.outputs) {
          auto it = o.empty() ? forward.intervals.end() : forward.intervals.find(o);
          fwd.push_back(it == forward.intervals.end() ? IntervalTensor{} : it->second);
        }
        g = input_gradient_bounds(a, outs, fwd);
      } catch (const std::exception&) {
        g = std::nullopt;  // the bound's own run failed: unbounded, as an op without one
      }
    }
    if (!g) return node_without_bound(n);
    bool has_finding = flagged.count(n.name) > 0;
    for (const std::string& o : n.outputs) has_finding = has_finding || echo.count(o) > 0;
    for (size_t i = 0; i < n.inputs.size() && i < g->size(); ++i) {
      const std::string& in = n.inputs[i];
      if (in.empty() || !diff.count(in) || !(*g)[i].defined()) continue;
      at::Tensor b = fit_to((*g)[i].to(at::kDouble), forward.intervals.at(in).shape);
      if (has_finding) {
        b = b.clamp_max(tensor_limit(graph, in));
        echo.insert(in);
      }
      add(in, b, n);
    }
  }

  Finding finding(const Node& n, const std::string& tensor, std::string hazard, std::string condition) {
    Finding f;
    f.node = n.name;
    f.op_type = n.op_type;
    f.kind = HazardKind::kGradient;
    f.hazard = std::move(hazard);
    f.condition = std::move(condition);
    int operand = 0;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      auto it = forward.intervals.find(n.inputs[i]);
      if (n.inputs[i] == tensor) operand = static_cast<int>(i);
      if (it != forward.intervals.end() && it->second.lo.defined() && (!it->second.exact() || n.inputs[i] == tensor))
        f.operands.push_back({n.inputs[i], it->second.min(), it->second.max()});
    }
    f.path = path_to(graph, n, operand, "");
    return f;
  }

  // True when `t` overflows its type (reported here, or at a consumer already flagged).
  bool report(const std::string& t) {
    auto it = out.bound.find(t);
    if (it == out.bound.end() || !it->second.numel()) return false;
    double limit = tensor_limit(graph, t), m = it->second.max().item<double>();
    if (auto u = unbounded_by.find(t); u != unbounded_by.end()) {
      const Node& n = *u->second;
      // Float32 gradients have the op-by-op hazards, unless the user asked for the chain.
      bool claimed = is_half(graph, t) || options.gradients == GradientMode::kChain;
      if (!claimed || !reported.insert(n.name + "/unbounded").second) return false;
      out.findings.push_back(finding(n, t, "gradient-unbounded",
                                     fmt::format("{} has no backward bound: the gradients before it "
                                                 "(of {}, ...) are not proved finite", n.op_type, t)));
      return false;
    }
    if (m < overflows_from(graph, t) || echo.count(t)) return false;
    const Node* n = top_consumer[t].first;
    if (!n || flagged.count(n->name)) return true;
    if (!reported.insert(n->name + "/overflow").second) return true;
    out.findings.push_back(finding(*n, t, "gradient-overflow",
                                   fmt::format("the gradient of {} may reach {:.3g}, past its type's largest finite "
                                               "value {:.8g} (bounded backward from a loss gradient of 1)",
                                               t, m, limit)));
    return true;
  }
};

}  // namespace

bool has_half_tensors(const Graph& graph) {
  for (const auto& [name, t] : graph.types)
    if (half_type_of(t.elem_type) != at::kFloat) return true;
  return false;
}

GradientBounds bound_gradients(const Graph& graph, const AnalysisResult& forward, const AnalyzeOptions& options) {
  at::NoGradGuard outer;  // the bounds are values, not differentiable in the ranges
  Pass p{graph, forward, options, differentiable(graph, forward), {}, {}, {}, {}, {}};
  for (const Finding& f : forward.findings) p.flagged.insert(f.node);
  for (const std::string& o : loss_outputs(graph, forward, p.diff))
    p.out.bound[o] = at::ones(forward.intervals.at(o).shape, at::kDouble);
  for (auto n = graph.nodes.rbegin(); n != graph.nodes.rend(); ++n) p.visit(*n);
  for (const Node& n : graph.nodes)  // the tensors no node produces: inputs and free weights
    for (const std::string& in : n.inputs)
      if (!in.empty() && p.diff.count(in) && !graph.producer(in)) p.report(in);
  return std::move(p.out);
}

}  // namespace nanguard
