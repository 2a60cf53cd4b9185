#include "analyzer/relational_facts.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <unordered_set>

#include "ops/bilinear_bounds.h"
#include "ops/tensor_proto.h"
#include "ops/type_limit.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"

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
  int32_t type = t.data_type();  // float32, or float16 / bfloat16 after --precision
  if (n != 1 || (type != onnx::TensorProto::FLOAT && type != onnx::TensorProto::FLOAT16 && type != onnx::TensorProto::BFLOAT16))
    return std::nullopt;
  try {
    return tensor_from_proto(t).to(at::kDouble).item<double>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// A quotient of d by a norm of d over the axes A: |d_i| <= norm, so |quotient| <= 1
// (sqrt(n) for a root mean square). `n` is the number of elements each norm reduces,
// 0 when the pattern does not match; `scale` is n for a mean of squares, 1 for a sum.
struct NormGroup {
  int64_t n = 0;
  double scale = 0;
  std::vector<int64_t> axes;  // the reduced axes, in [0, rank)
};

// Strips what only makes a denominator larger: Expand, and Add / Max / Clip(min) with a
// constant >= 0.
std::string strip_larger(const Graph& g, std::string t) {
  for (const Node* p = g.producer(t); p; p = g.producer(t)) {
    if (p->op_type == "Expand") {
      t = p->inputs[0];
    } else if ((p->op_type == "Add" || p->op_type == "Max") && p->inputs.size() == 2) {
      bool first = scalar_constant(g, p->inputs[0]).has_value();
      std::optional<double> c = scalar_constant(g, p->inputs[first ? 0 : 1]);
      if (!c || *c < 0) break;
      t = p->inputs[first ? 1 : 0];
    } else if (p->op_type == "Clip" && p->inputs.size() >= 2 && !p->inputs[1].empty() &&
               (p->inputs.size() < 3 || p->inputs[2].empty())) {
      std::optional<double> c = scalar_constant(g, p->inputs[1]);
      if (!c || *c < 0) break;
      t = p->inputs[0];
    } else {
      break;
    }
  }
  return t;
}

bool squares_of(const Graph& g, const std::string& t, const std::string& d) {
  const Node* sq = g.producer(t);
  return sq && ((sq->op_type == "Mul" && sq->inputs.size() == 2 && sq->inputs[0] == d && sq->inputs[1] == d) ||
                (sq->op_type == "Pow" && sq->inputs[0] == d && scalar_constant(g, sq->inputs[1]) == 2.0));
}

// Div(d, N) with N, up to strip_larger: ReduceL2_A(d), Sqrt(ReduceSum_A(d * d)) or
// Sqrt(ReduceMean_A(d * d)) (LayerNorm/RMSNorm decompositions, F.normalize).
NormGroup normalisation_group(const Graph& g, const Node& div, const std::vector<int64_t>& shape) {
  if (div.op_type != "Div" || div.inputs.size() != 2) return {};
  const std::string& d = div.inputs[0];
  const Node* reduce = nullptr;
  double per_element = 1;  // 1: a sum of squares; 0: a mean (scale n)
  std::string den = strip_larger(g, div.inputs[1]);
  if (const Node* l2 = producer_of(g, den, "ReduceL2"); l2 && l2->inputs[0] == d) {
    reduce = l2;
  } else if (const Node* sqrt = producer_of(g, den, "Sqrt")) {
    std::string var = strip_larger(g, sqrt->inputs[0]);
    const Node* r = g.producer(var);
    if (!r || (r->op_type != "ReduceMean" && r->op_type != "ReduceSum") || !squares_of(g, r->inputs[0], d)) return {};
    reduce = r;
    per_element = r->op_type == "ReduceMean" ? 0 : 1;
  }
  // keepdims: each element meets its own group's norm (reduced axes dropped would
  // broadcast against other groups).
  if (!reduce || attr_int(*reduce, "keepdims", 1) != 1) return {};
  int64_t rank = static_cast<int64_t>(shape.size()), n = 1;
  std::vector<int64_t> axes = reduce_axes(g, *reduce, rank);
  for (int64_t ax : axes) n *= shape[ax];
  return {n, per_element > 0 ? 1.0 : static_cast<double>(n), axes};
}

// sqrt(scale) widened for the float32 roundings of the squares, the reduction
// (gamma_n), the eps add, the sqrt and the division.
double normalisation_bound(const NormGroup& m) {
  double u = kFloat32Ulp / 2;
  return std::sqrt(m.scale) * (1 + (static_cast<double>(m.n) + 10) * u);
}

NormGroup normalisation_group(const AbstractContext& a) {
  if (a.node.op_type != "Div" || !a.has_input(0)) return {};
  return normalisation_group(a.graph, a.node, a.input(0).shape);
}

// A tensor that is d / ||d|| over its last axis (unit rows), or its transpose over the
// last two axes when `transposed` (unit columns).
std::optional<NormGroup> unit_vectors(const AbstractContext& a, size_t input, bool transposed) {
  const Graph& g = a.graph;
  std::string t = a.node.inputs[input];
  const Node* p = g.producer(t);
  if (transposed) {
    if (!p || p->op_type != "Transpose") return std::nullopt;
    std::vector<int64_t> perm = attr_ints(*p, "perm");
    int64_t r = static_cast<int64_t>(perm.size());
    if (r < 2 || perm[r - 1] != r - 2 || perm[r - 2] != r - 1) return std::nullopt;
    for (int64_t i = 0; i + 2 < r; ++i)
      if (perm[i] != i) return std::nullopt;
    p = g.producer(p->inputs[0]);
  }
  if (!p || p->op_type != "Div") return std::nullopt;
  const TensorType* type = g.type_of(p->inputs[0]);
  if (!type || !type->dims) return std::nullopt;
  NormGroup m = normalisation_group(g, *p, *type->dims);
  int64_t rank = static_cast<int64_t>(type->dims->size());
  if (m.n == 0 || m.scale != 1 || m.axes != std::vector<int64_t>{rank - 1}) return std::nullopt;
  return m;
}

// MatMul(A, B^T) of unit rows (cosine similarities, InfoNCE logits): each entry is a
// dot product of two vectors of norm <= 1 (rounding included), so by Cauchy-Schwarz
// it lies in [-c, c], c = b_A b_B (1 + gamma_{k+2}) for k products.
void cosine_products(const AbstractContext& a, IntervalTensor& out) {
  if (a.node.op_type != "MatMul" || a.node.inputs.size() != 2) return;
  auto rows = unit_vectors(a, 0, false), cols = unit_vectors(a, 1, true);
  if (!rows || !cols) return;
  double k = static_cast<double>(a.input(0).shape.back()), u = kFloat32Ulp / 2;
  double c = normalisation_bound(*rows) * normalisation_bound(*cols) * (1 + (k + 2) * u / (1 - (k + 2) * u));
  out.lo = out.lo.clamp(-c, c);
  out.hi = out.hi.clamp(-c, c);
}



// ---- max dominance: x_i - y_i <= 0 when y is a max over a set holding x_i ------
//
// What a tensor t is, element by element, with respect to a source tensor x. Row k
// of `set` (bool [numel(t), numel(x)]) proves t_k >= x_j for each j it holds, in
// every execution: t_k is x_j moved by data movement, or a max over elements that
// include it. `exact` rows are more: t_k == max_{j in set} x_j (a non-empty set);
// `unknown` rows may hold anything else above the set (an untracked operand). A row
// neither unknown nor exact is a constant at most min(x): never a max's winner.
struct MaxOf {
  at::Tensor set, exact, unknown;  // [rows, numel(x)], [rows], [rows] (bool)
};

struct DominanceWalk {
  const Graph& g;
  const KnownIntervals& known;
  const std::string& x;
  int64_t n = 0;       // numel(x)
  double x_min = 0;    // the lower bound of x over all its elements
  int visits = 0;      // caps the work on graphs where branches rejoin
};

// Past this many cells (rows x numel(x)) the walk gives up: the fact is for small
// index-driven groupings (edge softmax, segment max), not for whole feature maps.
constexpr int64_t kMaxDominanceCells = int64_t{1} << 22;
constexpr int kMaxDominanceVisits = 64;

const IntervalTensor* known_of(const DominanceWalk& w, const std::string& name) {
  auto it = w.known.find(name);
  return it == w.known.end() ? nullptr : &it->second;
}

// A tensor the walk does not follow: no set; a constant at most min(x) never wins a max.
MaxOf untracked(const DominanceWalk& w, const IntervalTensor& t) {
  MaxOf m{at::zeros({t.numel(), w.n}, at::kBool), at::zeros({t.numel()}, at::kBool), at::ones({t.numel()}, at::kBool)};
  if (t.exact() && t.is_float()) m.unknown = (t.full_hi().reshape({-1}) > w.x_min).contiguous();
  return m;
}

// The flat row numbers of a tensor of `shape`, as float64 so any lowering moves them.
at::Tensor row_ids(const std::vector<int64_t>& shape, int64_t offset = 0) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  return (at::arange(numel, at::kDouble) + static_cast<double>(offset)).reshape(shape);
}

MaxOf pick_rows(const MaxOf& m, const at::Tensor& rows) {
  at::Tensor r = rows.reshape({-1}).to(at::kLong);
  return {m.set.index_select(0, r), m.exact.index_select(0, r), m.unknown.index_select(0, r)};
}

MaxOf stack_rows(const std::vector<MaxOf>& parts) {
  std::vector<at::Tensor> s, e, u;
  for (const MaxOf& p : parts) { s.push_back(p.set); e.push_back(p.exact); u.push_back(p.unknown); }
  return {at::cat(s), at::cat(e), at::cat(u)};
}

std::optional<MaxOf> max_of(DominanceWalk& w, const std::string& t, int depth);

// Data movement (Reshape, Gather with constant indices, Where with a constant
// condition...): runs the op's own lowering on row numbers in place of the tracked
// operands, so each output element names the operand element it copies.
std::optional<MaxOf> moved(DominanceWalk& w, const Node& n, const std::vector<size_t>& data, int depth) {
  const OpDef* def = OpRegistry::instance().find(n.op_type, n.domain);
  if (!def) return std::nullopt;
  OpContext c{n, w.g.opset, {}, at::kDouble};
  std::vector<MaxOf> parts;
  int64_t offset = 0;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const IntervalTensor* t = n.inputs[i].empty() ? nullptr : known_of(w, n.inputs[i]);
    bool is_data = std::find(data.begin(), data.end(), i) != data.end();
    if (is_data && t) {
      auto m = max_of(w, n.inputs[i], depth + 1);
      if (!m) return std::nullopt;
      parts.push_back(std::move(*m));
      c.inputs.push_back(row_ids(t->shape, offset));
      offset += t->numel();
    } else if (t && t->exact()) {
      c.inputs.push_back(t->value);
    } else if (!t && n.inputs[i].empty()) {
      c.inputs.emplace_back();
    } else {
      return std::nullopt;  // a shape-setting operand that is a range
    }
  }
  if (parts.empty()) return std::nullopt;
  at::Tensor rows = def->lower(c).at(0);
  if (rows.numel() * w.n > kMaxDominanceCells) return std::nullopt;
  return pick_rows(stack_rows(parts), rows);
}

// Rows merged by a max: the set is their union; exact when no member is unknown and
// some member is exact (members below min(x) never win).
MaxOf merge(const MaxOf& m, const std::vector<int64_t>& shape, const std::vector<int64_t>& dims, bool keepdim) {
  std::vector<int64_t> s = shape;
  s.push_back(m.set.size(1));
  auto any = [&](const at::Tensor& t, const std::vector<int64_t>& sh) {
    return t.reshape(sh).to(at::kByte).amax(dims, keepdim).to(at::kBool);
  };
  at::Tensor unknown = any(m.unknown, shape).reshape({-1});
  at::Tensor exact = any(m.exact, shape).reshape({-1}).logical_and(unknown.logical_not());
  return {any(m.set, s).reshape({unknown.numel(), -1}), exact, unknown};
}

std::optional<MaxOf> reduce_max(DominanceWalk& w, const Node& n, int depth) {
  const IntervalTensor* t = known_of(w, n.inputs[0]);
  if (!t) return std::nullopt;
  bool computed_axes = n.inputs.size() > 1 && !n.inputs[1].empty() && !w.g.is_initializer(n.inputs[1]);
  bool noop = attr_int(n, "noop_with_empty_axes", 0) != 0;
  if (computed_axes || (noop && !has_attr(n, "axes") && n.inputs.size() < 2)) return std::nullopt;
  auto m = max_of(w, n.inputs[0], depth + 1);
  if (!m) return std::nullopt;
  auto axes = reduce_axes(w.g, n, static_cast<int64_t>(t->shape.size()));
  return merge(*m, t->shape, axes, attr_int(n, "keepdims", 1) != 0);
}

// Elementwise Max of broadcast operands: a max over one element of each.
std::optional<MaxOf> elementwise_max(DominanceWalk& w, const Node& n, int depth) {
  std::vector<int64_t> out;
  for (const std::string& in : n.inputs) {
    const IntervalTensor* t = known_of(w, in);
    if (!t) return std::nullopt;
    out = out.empty() ? t->shape : broadcast_shape(out, t->shape);
  }
  std::vector<MaxOf> parts;
  for (const std::string& in : n.inputs) {
    auto m = max_of(w, in, depth + 1);
    if (!m) return std::nullopt;
    parts.push_back(pick_rows(*m, row_ids(known_of(w, in)->shape).expand(out)));
  }
  std::vector<int64_t> shape{static_cast<int64_t>(parts.size()), parts[0].exact.numel()};
  return merge(stack_rows(parts), shape, {0}, false);
}

std::optional<MaxOf> max_of(DominanceWalk& w, const std::string& t, int depth) {
  const IntervalTensor* iv = known_of(w, t);
  if (!iv || iv->numel() * w.n > kMaxDominanceCells || ++w.visits > kMaxDominanceVisits) return std::nullopt;
  if (t == w.x) return MaxOf{at::eye(w.n, at::kBool), at::ones({w.n}, at::kBool), at::zeros({w.n}, at::kBool)};
  const Node* p = w.g.producer(t);
  static const std::unordered_set<std::string> kMoves{"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
                                                      "Expand", "Transpose", "Slice", "Gather", "Tile"};
  std::optional<MaxOf> m;
  if (p && depth < 12 && !iv->exact()) {
    if (kMoves.count(p->op_type) && p->domain.empty()) m = moved(w, *p, {0}, depth);
    else if (p->op_type == "Where" && p->inputs.size() == 3) m = moved(w, *p, {1, 2}, depth);
    else if (p->op_type == "ReduceMax" && !p->inputs.empty()) m = reduce_max(w, *p, depth);
    else if (p->op_type == "Max" && !p->inputs.empty()) m = elementwise_max(w, *p, depth);
  }
  return m ? m : untracked(w, *iv);
}

// y as a max over elements of x, or nothing when x is not a float tensor with a
// finite lower bound (NaN-free reasoning needs ordered values) or the walk failed.
std::optional<MaxOf> max_of_source(const Graph& g, const KnownIntervals& known, const std::string& y,
                                   const std::string& x) {
  auto it = known.find(x);
  if (it == known.end() || !it->second.is_float() || it->second.numel() == 0) return std::nullopt;
  DominanceWalk w{g, known, x, it->second.numel(), it->second.min()};
  if (std::isnan(w.x_min)) return std::nullopt;
  auto m = max_of(w, y, 0);
  if (m && !m->set.any().item<bool>()) return std::nullopt;
  return m;
}

// For each element of a broadcast binary op's output, the flat element of each operand.
std::pair<at::Tensor, at::Tensor> operand_rows(const IntervalTensor& x, const IntervalTensor& y,
                                               const std::vector<int64_t>& out) {
  return {row_ids(x.shape).expand(out).reshape({-1}).to(at::kLong),
          row_ids(y.shape).expand(out).reshape({-1}).to(at::kLong)};
}

// Sub(x, y) with y_k >= x_i proved for the element pairs it subtracts: x - y <= 0
// there, in float32 too (rounding is monotone and keeps 0).
void sub_of_dominating_max(const AbstractContext& a, const KnownIntervals& known, IntervalTensor& out) {
  if (a.node.inputs.size() != 2 || !out.is_float()) return;
  const Node* p = a.graph.producer(a.node.inputs[1]);
  if (!p || p->op_type == "ReduceMax") return;  // x - ReduceMax(x) is the Sub's own fact
  auto m = max_of_source(a.graph, known, a.node.inputs[1], a.node.inputs[0]);
  if (!m) return;
  auto [ix, iy] = operand_rows(a.input(0), a.input(1), out.shape);
  at::Tensor proved = m->set.index({iy, ix}).reshape(out.shape);
  if (!proved.any().item<bool>()) return;
  out.lo = out.full_lo().contiguous();
  out.hi = at::where(proved, out.full_hi().clamp_max(0.0), out.full_hi());
}

// ScatterElements: the flat output element each update element lands on.
at::Tensor scatter_targets(const IntervalTensor& data, const at::Tensor& idx, int64_t axis) {
  int64_t rank = static_cast<int64_t>(data.shape.size());
  at::Tensor ids = at::arange(idx.numel(), at::kLong).reshape(idx.sizes()), flat = at::zeros_like(ids);
  int64_t ustride = 1, dstride = 1;
  for (int64_t d = rank - 1; d >= 0; --d) {
    at::Tensor coord = d == axis ? at::where(idx < 0, idx + data.shape[d], idx) : (ids / ustride) % idx.size(d);
    flat += coord * dstride;
    ustride *= idx.size(d);
    dstride *= data.shape[d];
  }
  return flat.reshape({-1});
}

// Whether one group of updates exp(x_i - y_i) holds a term that is exp(0) = 1: some
// member's y is the exact max of a set S whose every element j appears in the group
// as x_j with that same y; the argmax of S then subtracts its own value.
bool group_holds_one(const MaxOf& m, const at::Tensor& ix, const at::Tensor& iy) {
  at::Tensor exact = m.exact.index_select(0, iy);
  at::Tensor xs = ix.masked_select(exact), ys = iy.masked_select(exact);
  for (int64_t c = 0; c < std::min<int64_t>(ys.numel(), 64); ++c) {
    at::Tensor s = m.set[ys[c].item<int64_t>()];
    at::Tensor same = (m.set.index_select(0, ys) == s).all(1);
    at::Tensor covered = at::zeros_like(s);
    covered.index_fill_(0, xs.masked_select(same), true);
    if (s.any().item<bool>() && !s.logical_and(covered.logical_not()).any().item<bool>()) return true;
  }
  return false;
}

// Two reductions of the same kind over the same axes (the same attributes and the same
// axes tensor, so a computed axes input is the same value too).
bool same_reduction(const Node& a, const Node& b) {
  auto axes_input = [](const Node& n) { return n.inputs.size() > 1 ? n.inputs[1] : std::string(); };
  return a.op_type == b.op_type && axes_input(a) == axes_input(b) && attr_ints(a, "axes") == attr_ints(b, "axes") &&
         attr_int(a, "keepdims", 1) == attr_int(b, "keepdims", 1) &&
         attr_int(a, "noop_with_empty_axes", 0) == attr_int(b, "noop_with_empty_axes", 0);
}

// Var = mean(x * x) - mean(x)^2 (the ONNX LayerNormalization function body, a
// hand-written variance) is >= 0 in reals (Jensen). In the model's float type with
// Q = mean(x^2) and n terms a mean: mean(x*x) >= (1 - g) Q for g = gamma_{n+2};
// |fl(mean x) - mean x| <= g sqrt(Q) (Cauchy-Schwarz), so fl(mean x)^2 rounds to at
// most (m^2 + (2g + g^2) Q)(1 + u) with m^2 <= Q; the difference is then >= -c Q and
// its rounding keeps that within (1 + u): c = (g + u + (2g + g^2)(1 + u))(1 + u).
// Q <= hi(mean(x*x)) / (1 - g). Squares that underflow add n subnormals.
void variance_by_moments(const AbstractContext& a, const KnownIntervals& known, IntervalTensor& out) {
  const Graph& g = a.graph;
  const Node& sub = a.node;
  if (sub.inputs.size() != 2 || !out.is_float()) return;
  const Node* mean_sq = producer_of(g, sub.inputs[0], "ReduceMean");
  const Node* sq_mean = g.producer(sub.inputs[1]);
  if (!mean_sq || !sq_mean || sq_mean->inputs.empty()) return;
  const Node* mean = producer_of(g, sq_mean->inputs[0], "ReduceMean");
  if (!mean || !squares_of(g, sub.inputs[1], mean->outputs[0]) || !same_reduction(*mean, *mean_sq)) return;
  const std::string& x = mean->inputs[0];
  if (!squares_of(g, mean_sq->inputs[0], x)) return;
  auto xi = known.find(x), mi = known.find(mean->outputs[0]);
  if (xi == known.end() || mi == known.end() || !xi->second.lo.defined() || mi->second.numel() <= 0) return;
  const IntervalTensor& xv = xi->second;
  if (!std::isfinite(xv.min()) || !std::isfinite(xv.max())) return;
  double n = static_cast<double>(xv.numel()) / static_cast<double>(mi->second.numel());
  double u = unit_roundoff(out.dtype), nu = (n + 2) * u;
  if (nu >= 0.5) return;
  double gam = nu / (1 - nu);
  double c = (gam + u + (2 * gam + gam * gam) * (1 + u)) * (1 + u);
  double q = a.input(0).max() / (1 - gam);
  if (!std::isfinite(q)) return;
  double floor = -(c * q + 4 * n * kFloat32MinSubnormal);
  out.lo = out.lo.clamp_min(floor);
  out.hi = at::maximum(out.hi, out.lo);
}

// ScatterElements(data >= 0, idx, Exp(x - y), reduction add) with y a per-group max
// of x: every group that holds its own max's term sums to >= 1 (a float32 sum of
// non-negative terms, one of them exactly 1): the edge softmax denominator.
void scatter_softmax_denominator(const AbstractContext& a, const KnownIntervals& known, IntervalTensor& out) {
  const Node& n = a.node;
  if (n.inputs.size() != 3 || attr_string(n, "reduction", "none") != "add" || !out.is_float()) return;
  const IntervalTensor &data = a.input(0), &idx = a.input(1), &upd = a.input(2);
  const Node* exp = producer_of(a.graph, n.inputs[2], "Exp");
  const Node* sub = exp ? producer_of(a.graph, exp->inputs[0], "Sub") : nullptr;
  if (!sub || sub->inputs.size() != 2 || !idx.exact() || (data.lo < 0).any().item<bool>()) return;
  if (known.at(sub->outputs[0]).shape != upd.shape || idx.shape != upd.shape || upd.numel() > 4096) return;
  auto m = max_of_source(a.graph, known, sub->inputs[1], sub->inputs[0]);
  if (!m) return;
  auto [ix, iy] = operand_rows(known.at(sub->inputs[0]), known.at(sub->inputs[1]), upd.shape);
  int64_t axis = attr_int(n, "axis", 0);
  axis = axis < 0 ? axis + static_cast<int64_t>(data.shape.size()) : axis;
  at::Tensor target = scatter_targets(data, idx.value.to(at::kLong), axis);
  at::Tensor lo = out.full_lo().reshape({-1}).clone();
  at::Tensor groups = std::get<0>(at::_unique(target));
  for (int64_t k = 0; k < groups.numel(); ++k) {
    int64_t g = groups[k].item<int64_t>();
    at::Tensor members = target == g;
    if (group_holds_one(*m, ix.masked_select(members), iy.masked_select(members))) lo[g] = std::max(lo[g].item<double>(), 1.0);
  }
  out.hi = out.full_hi().contiguous();
  out.lo = lo.reshape(out.shape);
}

}  // namespace

// A normalised quotient q = x / N(x) is bounded (|q| <= b), so its gradients are too:
// ATen's dy = -g * (x / y) / y is at most b / |y|, dx = g / y at most 1 / |y|. Where
// both stay under the operands' type's limit (65504 in float16), the gradient hazard
// that x's and y's ranges alone raise is not one.
bool normalised_gradients_finite(const AbstractContext& a, const NormGroup& m) {
  const IntervalTensor& y = a.input(1);
  double ymin = at::minimum(y.lo.abs(), y.hi.abs()).min().item<double>();
  if ((y.lo <= 0).logical_and(y.hi >= 0).any().item<bool>() || ymin <= 0) return false;
  double limit = std::min(input_limit(a, 0), input_limit(a, 1));
  return std::max(normalisation_bound(m), 1.0) / ymin * (1 + 1e-3) < limit;
}

void filter_hazards_with_facts(const AbstractContext& a, std::vector<HazardReport>& reports) {
  NormGroup m = normalisation_group(a);
  if (m.n == 0) return;
  bool grad_ok = normalised_gradients_finite(a, m);
  reports.erase(std::remove_if(reports.begin(), reports.end(),
                               [&](const HazardReport& h) {
                                 return h.hazard == "div-overflow" || (h.hazard == "div-gradient-overflow" && grad_ok);
                               }),
                reports.end());
}

void refine_with_facts(const AbstractContext& a, const KnownIntervals& known, std::vector<IntervalTensor>& outs) {
  if (!outs.empty() && outs[0].lo.defined() && !outs[0].exact()) {
    if (a.node.op_type == "Sub") sub_of_dominating_max(a, known, outs[0]);
    if (a.node.op_type == "Sub") variance_by_moments(a, known, outs[0]);
    if (a.node.op_type == "ScatterElements") scatter_softmax_denominator(a, known, outs[0]);
    cosine_products(a, outs[0]);
  }
  if (NormGroup m = normalisation_group(a); m.n > 0 && !outs.empty() && outs[0].lo.defined()) {
    double b = normalisation_bound(m);
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
