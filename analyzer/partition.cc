#include "analyzer/partition.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_set>

namespace nanguard {
namespace {

// What a node reads: its inputs and a subgraph's outer references.
std::vector<std::string> reads_of(const Node& n) {
  std::vector<std::string> reads = n.inputs;
  for (const std::string& r : implicit_inputs(n)) reads.push_back(r);
  return reads;
}

// The nodes `node` depends on, as graph indices, and every tensor they or `node` read.
void ancestors(const Graph& g, const Node& node, std::set<int>& nodes, std::unordered_set<std::string>& tensors) {
  std::vector<const Node*> todo{&node};
  while (!todo.empty()) {
    const Node* n = todo.back();
    todo.pop_back();
    for (const std::string& in : reads_of(*n)) {
      if (in.empty() || !tensors.insert(in).second) continue;
      const Node* p = g.producer(in);
      if (p && nodes.insert(p->index).second) todo.push_back(p);
    }
  }
}

// The nodes between `tensor` and `node` (those of `anc` that read it, directly or not,
// then `node`), and how many paths lead from the tensor to the node: one path means
// the node sees the tensor once, and a cell gains nothing an interval does not have.
std::vector<const Node*> cone_from(const Graph& g, const Node& node, const std::set<int>& anc,
                                   const std::string& tensor, double& paths) {
  std::unordered_map<std::string, double> count{{tensor, 1.0}};
  std::vector<const Node*> cone;
  auto visit = [&](const Node& n) {
    double p = 0;
    for (const std::string& in : reads_of(n))
      if (auto it = count.find(in); it != count.end()) p += it->second;
    if (p == 0) return 0.0;
    cone.push_back(&n);
    for (const std::string& o : n.outputs)
      if (!o.empty()) count[o] = std::min(p, 1e9);
    return p;
  };
  for (int i : anc) visit(g.nodes[i]);
  paths = visit(node);
  return cone;
}

struct Candidate {
  std::string tensor;
  std::vector<const Node*> cone;
  int order;  // producer index; -1 for graph inputs and weights
};

std::vector<Candidate> candidates(const Graph& g, const Node& node,
                                  const std::unordered_map<std::string, IntervalTensor>& intervals,
                                  const PartitionOptions& opt) {
  std::set<int> anc;
  std::unordered_set<std::string> tensors;
  ancestors(g, node, anc, tensors);
  std::vector<std::pair<int, std::string>> small;  // (producer index, name)
  for (const std::string& t : tensors) {
    auto it = intervals.find(t);
    if (it == intervals.end()) continue;
    const IntervalTensor& x = it->second;
    if (!x.lo.defined() || x.exact() || x.numel() < 1 || x.numel() > opt.max_elements) continue;
    const Node* p = g.producer(t);
    small.emplace_back(p ? p->index : -1, t);
  }
  // The earliest first: splitting a source keeps every correlation after it. Each
  // path count walks the cone, so a deep graph's many small tensors are not all tried.
  std::sort(small.begin(), small.end());
  std::vector<Candidate> out;
  int walks = 0;
  for (const auto& [order, t] : small) {
    if (static_cast<int>(out.size()) >= opt.max_tensors || walks++ >= 4 * opt.max_tensors) break;
    double paths = 0;
    std::vector<const Node*> cone = cone_from(g, node, anc, t, paths);
    if (paths >= 2) out.push_back({t, std::move(cone), order});
  }
  return out;
}

// The pieces one element's range is cut into (closed, sharing their ends: their union
// is the range). Integers: contiguous runs of values.
std::vector<std::pair<double, double>> pieces(double lo, double hi, int k, bool integral) {
  std::vector<std::pair<double, double>> p;
  if (integral) {
    double n = hi - lo + 1;
    for (int j = 0; j < k; ++j) {
      double a = lo + std::floor(j * n / k), b = lo + std::floor((j + 1) * n / k) - 1;
      if (b >= a) p.push_back({a, b});
    }
    return p;
  }
  double prev = lo;
  for (int j = 1; j <= k; ++j) {
    double next = j == k ? hi : lo + (hi - lo) * j / k;
    p.push_back({prev, next});
    prev = next;
  }
  return p;
}

// The largest k with k^m <= n.
int root_floor(int n, int m) {
  int k = 1;
  while (std::pow(k + 1, m) <= n) ++k;
  return k;
}

// The output elements one analysis of `cone` computes (at least one per node).
int64_t cone_elements(const std::vector<const Node*>& cone, const std::unordered_map<std::string, IntervalTensor>& intervals) {
  int64_t total = 0;
  for (const Node* n : cone) {
    int64_t e = 0;
    for (const std::string& o : n->outputs)
      if (auto it = intervals.find(o); it != intervals.end()) e += std::max<int64_t>(it->second.numel(), 0);
    total += std::max<int64_t>(e, 1);
  }
  return total;
}

}  // namespace

std::vector<IntervalTensor> split_into_cells(const IntervalTensor& t, int max_cells) {
  if (!t.lo.defined() || t.exact() || t.numel() == 0 || max_cells < 2) return {};
  at::Tensor lo = t.full_lo().reshape({-1}).contiguous(), hi = t.full_hi().reshape({-1}).contiguous();
  std::vector<double> l(lo.data_ptr<double>(), lo.data_ptr<double>() + lo.numel());
  std::vector<double> h(hi.data_ptr<double>(), hi.data_ptr<double>() + hi.numel());
  bool integral = !t.is_float();
  std::vector<int64_t> open;  // elements with a finite range to cut, widest first
  for (size_t i = 0; i < l.size(); ++i)
    if (l[i] < h[i] && std::isfinite(l[i]) && std::isfinite(h[i])) open.push_back(static_cast<int64_t>(i));
  if (open.empty()) return {};
  std::stable_sort(open.begin(), open.end(), [&](int64_t a, int64_t b) { return h[a] - l[a] > h[b] - l[b]; });
  // Integers enumerated when every value fits; else the widest elements cut evenly.
  double values = 1;
  for (int64_t i : open) values *= integral ? h[i] - l[i] + 1 : INFINITY;
  int m = static_cast<int>(open.size());
  int k = 0;
  if (values <= max_cells) {
    k = max_cells;
  } else {
    m = std::min(m, static_cast<int>(std::floor(std::log2(max_cells))));
    open.resize(m);
    k = root_floor(max_cells, m);
  }
  std::vector<std::vector<std::pair<double, double>>> cuts;
  for (int64_t i : open) cuts.push_back(pieces(l[i], h[i], k, integral));
  std::vector<IntervalTensor> cells;
  std::vector<size_t> digit(open.size(), 0);
  while (true) {
    std::vector<double> cl = l, ch = h;
    for (size_t d = 0; d < open.size(); ++d) std::tie(cl[open[d]], ch[open[d]]) = cuts[d][digit[d]];
    at::Tensor clo = at::tensor(cl, at::kDouble).reshape(t.shape), chi = at::tensor(ch, at::kDouble).reshape(t.shape);
    // A cell of integer points is a value: the ops after it run exactly.
    if (integral && at::equal(clo, chi))
      cells.push_back(IntervalTensor::of_value(clo.to(t.dtype)));
    else
      cells.push_back(IntervalTensor::of_bounds(clo, chi, t.shape, t.dtype));
    size_t d = 0;
    while (d < digit.size() && ++digit[d] == cuts[d].size()) digit[d++] = 0;
    if (d == digit.size()) break;
  }
  return cells;
}

namespace {

IntervalTensor join(const IntervalTensor& a, const IntervalTensor& b) {
  if (!a.lo.defined()) return b;
  return compact(IntervalTensor::of_bounds(at::minimum(a.lo, b.lo), at::maximum(a.hi, b.hi), a.shape, a.dtype));
}

bool strictly_within(const IntervalTensor& t, double limit) {
  if (!t.lo.defined() || t.numel() == 0) return false;
  if (!t.is_float()) return true;
  double lo = t.min(), hi = t.max();
  return lo > -limit && hi < limit;  // NaN compares false
}

// A cell analysed cleanly proves h when it does not report h, nor anything that stops
// the node's own checks (an unsupported op, an infinite operand, NaN bounds).
bool clean_for(const CellOutcome& c, const std::string& h) {
  if (!c.completed) return false;
  for (const std::string& r : c.hazards)
    if (r == h || r == "unsupported" || r == "infinite-operand" || r == "nan-from-infinities") return false;
  return true;
}

}  // namespace

IntervalTensor meet(const IntervalTensor& a, const IntervalTensor& b) {
  if (!a.lo.defined()) return b;
  if (!b.lo.defined()) return a;
  at::Tensor lo = at::maximum(a.lo, b.lo), hi = at::minimum(a.hi, b.hi);
  if ((lo > hi).any().item<bool>()) return a;
  return compact(IntervalTensor::of_bounds(lo, hi, a.shape, a.dtype));
}

std::optional<PartitionProof> prove_by_partition(const Graph& graph, const Node& node,
                                                 const std::unordered_map<std::string, IntervalTensor>& intervals,
                                                 const std::vector<std::string>& hazards,
                                                 const std::vector<double>& limits, const PartitionOptions& options,
                                                 int64_t& budget, const CellAnalysis& analyse) {
  if (budget <= 0 || options.max_cells < 2) return std::nullopt;
  PartitionProof proof;
  proof.node = node.name;
  proof.bounds.resize(limits.size());
  std::set<std::string> open(hazards.begin(), hazards.end());
  for (const Candidate& c : candidates(graph, node, intervals, options)) {
    auto it = intervals.find(c.tensor);
    std::vector<IntervalTensor> cells = split_into_cells(it->second, options.max_cells);
    int64_t cost = static_cast<int64_t>(cells.size()) * cone_elements(c.cone, intervals);
    if (cells.empty() || cost > budget) continue;
    budget -= cost;
    std::set<std::string> proved = open;
    std::vector<IntervalTensor> joined(limits.size());
    std::vector<bool> bounded(limits.size(), true);
    for (const IntervalTensor& cell : cells) {
      CellOutcome out = analyse(c.cone, c.tensor, cell);
      for (auto h = proved.begin(); h != proved.end();) h = clean_for(out, *h) ? std::next(h) : proved.erase(h);
      for (size_t i = 0; i < limits.size(); ++i) {
        bounded[i] = bounded[i] && out.completed && i < out.bounds.size() && strictly_within(out.bounds[i], limits[i]);
        if (bounded[i]) joined[i] = join(joined[i], out.bounds[i]);
      }
      auto outputs_end = bounded.begin() + static_cast<std::ptrdiff_t>(std::min(node.outputs.size(), bounded.size()));
      if (proved.empty() && std::none_of(bounded.begin(), outputs_end, [](bool b) { return b; })) break;  // nothing left to gain
    }
    // Inputs are tightened alongside a proof, never a proof on their own.
    bool gained = !proved.empty();
    for (size_t i = 0; i < node.outputs.size() && i < limits.size(); ++i) gained = gained || bounded[i];
    if (!gained) continue;
    for (size_t i = 0; i < limits.size(); ++i) {
      if (!bounded[i]) continue;
      proof.bounds[i] = meet(proof.bounds[i], joined[i]);
    }
    proof.tensors.push_back(c.tensor);
    proof.cells += static_cast<int>(cells.size());
    for (const std::string& h : proved) {
      proof.hazards.push_back(h);
      open.erase(h);
    }
    if (open.empty() && std::all_of(proof.bounds.begin(), proof.bounds.end(),
                                    [](const IntervalTensor& o) { return o.lo.defined(); }))
      break;
  }
  if (proof.tensors.empty()) return std::nullopt;
  return proof;
}

}  // namespace nanguard
