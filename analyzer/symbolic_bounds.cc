#include "analyzer/symbolic_bounds.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_set>

#include "ops/op_registry.h"
#include "ops/symbolic_form.h"

namespace nanguard {
namespace {

using Known = std::unordered_map<std::string, IntervalTensor>;

// The back-substitution over one window: the rows pending on each tensor, and the
// terms the ops' transfers (OpDef::symbolic) leave behind on the way.
struct WindowBackSubstitution final : BackSubstitution {
  WindowBackSubstitution(const Graph& g, const Known& known, const SymbolicOptions& opt, const std::string& target,
                         const IntervalTensor& target_interval, int64_t rows)
      : g(g), known(known), opt(opt), target(target), target_interval(target_interval), flops_left(opt.max_flops),
        bound(at::zeros({rows}, at::kDouble)), mag(at::zeros({rows}, at::kDouble)) {}

  const Graph& g;
  const Known& known;
  const SymbolicOptions& opt;
  std::map<std::string, std::vector<LinearRows>> pending;
  const std::string& target;
  const IntervalTensor& target_interval;  // not in `known` yet while its node is analysed
  std::unordered_set<std::string> pad_hull;  // read through zero padding: hull with 0
  int64_t flops_left;     // compositions past this are not made: the window stops there
  at::Tensor bound, mag;  // [R]: the constant terms, and the sum of their magnitudes
  at::Tensor tap_bound;   // [R, taps]: the terms of tapped rows, per tap (one padded conv)

  const IntervalTensor* interval(const std::string& name) const override;
  // Lazy weights read in this window, with their bounds made (for the window only).
  mutable std::unordered_map<std::string, IntervalTensor> with_bounds;
  int64_t opset() const override { return g.opset; }
  at::ScalarType float_type() const override { return opt.float_type; }
  bool spend(int64_t flops) override;
  void pass_to(const std::string& name, LinearRows rows) override { pending[name].push_back(std::move(rows)); }
  void add_constant(const LinearRows& p, const at::Tensor& A, const at::Tensor& v) override;
  void add_error(const LinearRows& p, const at::Tensor& A, const at::Tensor& e) override { add_terms(p, A.abs(), e); }
  void cross_zero_padding(const LinearRows& p, LinearRows& q, const std::string& input) override;
  void add_terms(const LinearRows& p, const at::Tensor& A, const at::Tensor& v);
};

// A summed over its kernel: [R, C]. Per-channel values are the same at every
// position, so the kernel only matters while composing.
at::Tensor kernel_sum(const at::Tensor& A) { return A.dim() > 2 ? A.sum(spatial_dims(A)) : A; }

const IntervalTensor* WindowBackSubstitution::interval(const std::string& name) const {
  if (name == target) return &target_interval;
  auto it = known.find(name);
  if (it == known.end()) return nullptr;
  if (!it->second.lazy()) return &it->second;
  auto [m, fresh] = with_bounds.try_emplace(name);
  if (fresh) m->second = it->second.with_bounds();
  return &m->second;
}

// sum_c A[r, c, k] v[c] per tap: [R, taps].
at::Tensor per_tap(const at::Tensor& A, const at::Tensor& v) {
  std::vector<int64_t> shape(A.dim(), 1);
  shape[1] = -1;
  return (A * v.view(shape)).sum(1).reshape({A.size(0), -1});
}

// Adds sum_{c,k} A[r,c,k] * v[c] (a known per-channel constant) to the rows; tapped
// rows keep it per tap.
void WindowBackSubstitution::add_terms(const LinearRows& p, const at::Tensor& A, const at::Tensor& v) {
  if (p.tapped) tap_bound += per_tap(A, v);
  else bound += at::mv(kernel_sum(A), v);
}

void WindowBackSubstitution::add_constant(const LinearRows& p, const at::Tensor& A, const at::Tensor& v) {
  add_terms(p, A, v);
  mag += at::mv(kernel_sum(A.abs()), v.abs());
}

// Evaluates rows on a tensor's interval: the max of A x over the per-channel hull.
void concretize(WindowBackSubstitution& b, const std::string& name, const LinearRows& p) {
  const IntervalTensor* t = b.interval(name);
  double inf = std::numeric_limits<double>::infinity();
  if (!t) {
    b.bound += inf;
    return;
  }
  auto [l, u] = channel_hull(*t);
  if (b.pad_hull.count(name)) {
    l = l.clamp_max(0.0);
    u = u.clamp_min(0.0);
  }
  at::Tensor m = at::maximum(l.abs(), u.abs());
  if (p.tapped && at::isfinite(m).all().item<bool>()) {
    b.add_terms(p, p.A.clamp_min(0.0), u);
    b.add_terms(p, p.A.clamp_max(0.0), l);
    b.mag += at::mv(kernel_sum(p.A.abs()), m);
    return;
  }
  if (p.tapped) {  // an unbounded channel: every tap may be unbounded
    b.bound += std::numeric_limits<double>::infinity();
    return;
  }
  at::Tensor pos = kernel_sum(p.A.clamp_min(0.0)), neg = kernel_sum(p.A.clamp_max(0.0));
  if (at::isfinite(m).all().item<bool>()) {
    b.bound += at::mv(pos, u) + at::mv(neg, l);
    b.mag += at::mv(pos - neg, m);
    return;
  }
  // 0 * inf is 0 here: a channel the rows do not read leaves them bounded.
  auto dot = [](const at::Tensor& a, const at::Tensor& v) {
    return at::where(a == 0, at::zeros_like(a), a * v.unsqueeze(0)).sum(1);
  };
  b.bound += dot(pos, u) + dot(neg, l);
  b.mag += dot(pos - neg, m);
}

// Contributions from several consumers, aligned on one kernel window (same stride).
std::optional<LinearRows> merged(const std::vector<LinearRows>& ps) {
  LinearRows m = ps[0];
  for (size_t i = 1; i < ps.size(); ++i) {
    const LinearRows& q = ps[i];
    if (q.stride != m.stride || q.spatial_rank() != m.spatial_rank() || q.tapped != m.tapped) return std::nullopt;
    if (m.tapped && (q.offset != m.offset || q.A.sizes() != m.A.sizes())) return std::nullopt;  // same taps only
    std::vector<int64_t> off(m.offset.size()), pad_m, pad_q;
    for (size_t d = 0; d < m.offset.size(); ++d) {
      int64_t k = static_cast<int64_t>(d) + 2;
      off[d] = std::min(m.offset[d], q.offset[d]);
      int64_t end = std::max(m.offset[d] + m.A.size(k), q.offset[d] + q.A.size(k));
      pad_m.insert(pad_m.begin(), {m.offset[d] - off[d], end - m.offset[d] - m.A.size(k)});
      pad_q.insert(pad_q.begin(), {q.offset[d] - off[d], end - q.offset[d] - q.A.size(k)});
    }
    at::Tensor a = pad_m.empty() ? m.A : at::constant_pad_nd(m.A, pad_m, 0);
    at::Tensor c = pad_q.empty() ? q.A : at::constant_pad_nd(q.A, pad_q, 0);
    m = LinearRows{a + c, m.stride, off, m.tapped};
  }
  return m;
}

// Spends the window's budget of multiply-adds; false when it would run out.
bool WindowBackSubstitution::spend(int64_t flops) {
  if (flops > flops_left) return false;
  flops_left -= flops;
  return true;
}

// Rows entering a zero-padded convolution with one cell per channel: at a border
// position the taps that read padding add 0, the others their own expression over
// their own input position. Keeping taps apart (each bounded alone, then summed as
// max(bound, 0)) covers every subset of taps, so the rows may go on past the padded
// input. Only one padded convolution per window is split this way; later ones (or
// rows already spread over a kernel) end the window at their input, hull joined with 0.
void WindowBackSubstitution::cross_zero_padding(const LinearRows& p, LinearRows& q, const std::string& input) {
  bool one_cell = std::all_of(p.A.sizes().begin() + 2, p.A.sizes().end(), [](int64_t k) { return k == 1; });
  if (!one_cell || p.tapped || tap_bound.defined()) {
    pad_hull.insert(input);
    return;
  }
  q.tapped = true;
  tap_bound = at::zeros({q.A.size(0), q.A.numel() / (q.A.size(0) * q.A.size(1))}, at::kDouble);
}

// The transfer of the node's op (OpDef::symbolic), or null: the window stops there.
const SymbolicFn* symbolic_transfer(const Node& n) {
  const OpDef* def = OpRegistry::instance().find(n.op_type, n.domain);
  return def && def->symbolic ? &def->symbolic : nullptr;
}

// The nodes to back-substitute through: the target's producers, breadth first, up to
// max_nodes; the window stops at constants and at ops without a transfer.
std::vector<int> window(const WindowBackSubstitution& b, int max_nodes) {
  std::vector<int> nodes;
  std::vector<std::string> frontier{b.target};
  std::unordered_set<int> seen;
  for (size_t i = 0; i < frontier.size() && static_cast<int>(nodes.size()) < max_nodes; ++i) {
    const Node* p = b.g.producer(frontier[i]);
    const IntervalTensor* t = b.interval(frontier[i]);
    if (!p || seen.count(p->index) || !symbolic_transfer(*p) || !t || t->exact() || p->outputs.size() != 1)
      continue;
    seen.insert(p->index);
    nodes.push_back(p->index);
    for (const std::string& in : p->inputs)
      if (!in.empty()) frontier.push_back(in);
  }
  std::sort(nodes.rbegin(), nodes.rend());  // consumers before producers
  return nodes;
}

// The rows' starting point: +-identity on the target's channels.
LinearRows target_rows(const IntervalTensor& t) {
  int64_t c = t.shape[1], s = static_cast<int64_t>(t.shape.size()) - 2;
  at::Tensor eye = at::eye(c, at::kDouble);
  std::vector<int64_t> shape{2 * c, c};
  for (int64_t d = 0; d < s; ++d) shape.push_back(1);
  return LinearRows{at::cat({eye, -eye}).reshape(shape), std::vector<int64_t>(s, 1), std::vector<int64_t>(s, 0)};
}

int64_t coefficients(const std::vector<LinearRows>& ps) {
  int64_t n = 0;
  for (const LinearRows& p : ps) n += p.A.numel();
  return n;
}

// Back-substitutes through one window node; a node that cannot take the rows (too
// large, unsupported attributes, mismatched strides) evaluates them on its output.
void step(WindowBackSubstitution& b, const Node& n) {
  auto it = b.pending.find(n.outputs[0]);
  if (it == b.pending.end()) return;
  std::vector<LinearRows> ps = std::move(it->second);
  b.pending.erase(it);
  std::optional<LinearRows> p = merged(ps);
  // Every transfer makes a few elementwise passes over the rows: they count too.
  bool moved = p && !b.pad_hull.count(n.outputs[0]) && coefficients(ps) <= b.opt.max_coefficients &&
               b.spend(8 * coefficients(ps)) && (*symbolic_transfer(n))(b, n, *p);
  if (!moved)
    for (const LinearRows& q : ps) concretize(b, n.outputs[0], q);
}

}  // namespace

bool has_symbolic_transfer(const std::string& op_type, const std::string& domain) {
  const OpDef* def = OpRegistry::instance().find(op_type, domain);
  return def && def->symbolic;
}

std::optional<SymbolicBounds> symbolic_channel_bounds(const Graph& graph, const Known& known,
                                                                          const std::string& target,
                                                                          const IntervalTensor& t,
                                                                          const SymbolicOptions& options) {
  if (!t.is_float() || t.exact() || t.shape.size() < 2 || t.numel() == 0) return std::nullopt;
  int64_t c = t.shape[1];
  if (2 * c * c > options.max_coefficients || 8 * 2 * c * c > options.max_flops) return std::nullopt;
  WindowBackSubstitution b(graph, known, options, target, t, 2 * c);
  std::vector<int> nodes = window(b, options.max_nodes);
  if (nodes.empty()) return std::nullopt;
  b.flops_left -= 8 * 2 * c * c;
  b.pending[target].push_back(target_rows(t));
  for (int i : nodes) step(b, graph.nodes[i]);
  // Rows that reach one tensor by several paths are summed first: x + 5 - x is 5 only
  // when both x terms meet before x's interval is put in.
  for (const auto& [name, ps] : b.pending) {
    if (std::optional<LinearRows> m = merged(ps)) concretize(b, name, *m);
    else for (const LinearRows& p : ps) concretize(b, name, p);
  }
  // Outward rounding of the float64 composition: far below the float32 terms above.
  at::Tensor upper = b.bound + b.mag * 1e-9 + 1e-300;
  if (b.tap_bound.defined()) upper = upper + b.tap_bound.clamp_min(0.0).sum(1);
  upper = at::where(upper.isnan(), at::full_like(upper, std::numeric_limits<double>::infinity()), upper);
  return SymbolicBounds{-upper.slice(0, c, 2 * c), upper.slice(0, 0, c), options.max_flops - b.flops_left};
}

IntervalTensor refine_symbolically(const Graph& graph, const Known& known, const std::string& target,
                                   IntervalTensor interval, const SymbolicOptions& options, int64_t* flops) {
  if (interval.exact() || !interval.is_float()) return interval;
  auto bounds = symbolic_channel_bounds(graph, known, target, interval, options);
  if (!bounds) return interval;
  if (flops) *flops += bounds->flops;
  std::vector<int64_t> cell(interval.shape.size(), 1);
  cell[1] = -1;
  at::Tensor lo = at::maximum(interval.lo, bounds->lo.view(cell));
  at::Tensor hi = at::minimum(interval.hi, bounds->hi.view(cell));
  // Never cross: a bound that proves emptiness would mean an error above; keep the old one.
  if ((lo > hi).any().item<bool>()) return interval;
  interval.lo = lo;
  interval.hi = hi;
  return interval;
}

}  // namespace nanguard
