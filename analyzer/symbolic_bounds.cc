#include "analyzer/symbolic_bounds.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_set>

#include "model/attributes.h"
#include "ops/bilinear_bounds.h"
#include "ops/op_context.h"
#include "ops/spatial_pads.h"

namespace nanguard {
namespace {

using Known = std::unordered_map<std::string, IntervalTensor>;

// Rows of linear upper bounds on one tensor of the window: row r bounds target
// element (channel o of +t for r < O, of -t for r >= O) at spatial position p by
// sum_{c,k} A[r, c, k] * x[c, stride * p + offset + k] (+ constants kept apart).
struct Pending {
  at::Tensor A;  // [R, C, K...]
  std::vector<int64_t> stride, offset;
  // Rows past a zero-padded convolution, kept apart per tap (kernel position): a tap
  // that reads padding contributes 0, so each tap is bounded on its own (start_taps).
  bool tapped = false;
};

// The same rows with new coefficients (same window, same taps).
Pending with(const Pending& p, at::Tensor A) { return Pending{std::move(A), p.stride, p.offset, p.tapped}; }

struct BackSub {
  const Graph& g;
  const Known& known;
  const SymbolicOptions& opt;
  std::map<std::string, std::vector<Pending>> pending;
  const std::string& target;
  const IntervalTensor& target_interval;  // not in `known` yet while its node is analysed
  std::unordered_set<std::string> pad_hull;  // read through zero padding: hull with 0
  int64_t flops_left;     // compositions past this are not made: the window stops there
  at::Tensor bound, mag;  // [R]: the constant terms, and the sum of their magnitudes
  at::Tensor tap_bound;   // [R, taps]: the terms of tapped rows, per tap (one padded conv)
};

int64_t spatial_rank(const Pending& p) { return p.A.dim() - 2; }

std::vector<int64_t> spatial_dims(const at::Tensor& A) {
  std::vector<int64_t> d;
  for (int64_t i = 2; i < A.dim(); ++i) d.push_back(i);
  return d;
}

// A summed over its kernel: [R, C]. Per-channel values are the same at every
// position, so the kernel only matters while composing.
at::Tensor kernel_sum(const at::Tensor& A) { return A.dim() > 2 ? A.sum(spatial_dims(A)) : A; }

const IntervalTensor* known_of(const BackSub& b, const std::string& name) {
  if (name == b.target) return &b.target_interval;
  auto it = b.known.find(name);
  return it == b.known.end() ? nullptr : &it->second;
}

// The per-channel hull [C] of a tensor's bounds (every batch entry and position).
std::pair<at::Tensor, at::Tensor> channel_hull(const IntervalTensor& t) {
  int64_t c = t.shape.size() > 1 ? t.shape[1] : 1;
  auto reduce = [&](const at::Tensor& x, bool lo) {
    if (x.dim() != static_cast<int64_t>(t.shape.size()) || x.dim() < 2)  // no channel axis to keep
      return (lo ? x.min() : x.max()).reshape({1}).expand({c}).contiguous();
    at::Tensor v = x;
    for (int64_t d = v.dim() - 1; d >= 0; --d)
      if (d != 1) v = lo ? v.amin(d, true) : v.amax(d, true);
    return v.reshape({-1}).expand({c}).contiguous();
  };
  return {reduce(t.lo, true), reduce(t.hi, false)};
}

// sum_c A[r, c, k] v[c] per tap: [R, taps].
at::Tensor per_tap(const at::Tensor& A, const at::Tensor& v) {
  std::vector<int64_t> shape(A.dim(), 1);
  shape[1] = -1;
  return (A * v.view(shape)).sum(1).reshape({A.size(0), -1});
}

// Adds sum_{c,k} A[r,c,k] * v[c] (a known per-channel constant) to the rows; tapped
// rows keep it per tap.
void add_terms(BackSub& b, const Pending& p, const at::Tensor& A, const at::Tensor& v) {
  if (p.tapped) b.tap_bound += per_tap(A, v);
  else b.bound += at::mv(kernel_sum(A), v);
}

void add_constant(BackSub& b, const Pending& p, const at::Tensor& A, const at::Tensor& v) {
  add_terms(b, p, A, v);
  b.mag += at::mv(kernel_sum(A.abs()), v.abs());
}

// Adds sum |A| * e[c]: an error term |x - x_real| <= e[c] (float32 rounding).
void add_error(BackSub& b, const Pending& p, const at::Tensor& A, const at::Tensor& e) { add_terms(b, p, A.abs(), e); }

// Evaluates rows on a tensor's interval: the max of A x over the per-channel hull.
void concretize(BackSub& b, const std::string& name, const Pending& p) {
  const IntervalTensor* t = known_of(b, name);
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
    add_terms(b, p, p.A.clamp_min(0.0), u);
    add_terms(b, p, p.A.clamp_max(0.0), l);
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

void push(BackSub& b, const std::string& name, Pending p) { b.pending[name].push_back(std::move(p)); }

// Contributions from several consumers, aligned on one kernel window (same stride).
std::optional<Pending> merged(const std::vector<Pending>& ps) {
  Pending m = ps[0];
  for (size_t i = 1; i < ps.size(); ++i) {
    const Pending& q = ps[i];
    if (q.stride != m.stride || spatial_rank(q) != spatial_rank(m) || q.tapped != m.tapped) return std::nullopt;
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
    m = Pending{a + c, m.stride, off, m.tapped};
  }
  return m;
}

// Magnitude bound per channel [C] of a tensor (its hull's largest |value|).
at::Tensor magnitude(const IntervalTensor& t) {
  auto [l, u] = channel_hull(t);
  return at::maximum(l.abs(), u.abs());
}

double unit() { return 0x1p-24; }

// A float32 sum whose terms' magnitudes pass the float32 limit may overflow part way
// (the order of accumulation is not known) even when the real total is small: such a
// node keeps the interval it has (with its overflow finding), never a symbolic bound.
bool may_overflow(const BackSub& b, const at::Tensor& magnitudes) {
  return !(magnitudes <= value_limit(b.opt.float_type) * 0.5).all().item<bool>();
}

// ---- transfers: each rewrites rows on the node's output as rows on its inputs ----

// A per-channel constant [C] of a tensor broadcast against (N, C, ...) or (N, C):
// constant along every other axis.
std::optional<at::Tensor> per_channel(const IntervalTensor& t, int64_t channels, int64_t rank) {
  if (!t.exact() || !t.is_float() || static_cast<int64_t>(t.shape.size()) > rank) return std::nullopt;
  at::Tensor v = t.lo;
  while (v.dim() < rank) v = v.unsqueeze(0);
  for (int64_t d = 0; d < rank; ++d) {
    if (d == 1 || v.size(d) == 1) continue;
    if (!at::equal(v.amin(d, true).expand_as(v), v)) return std::nullopt;
    v = v.amin(d, true);
  }
  if (v.size(1) != 1 && v.size(1) != channels) return std::nullopt;
  return v.reshape({-1}).expand({channels}).contiguous();
}

// Scales rows channel by channel: A[:, c] *= k[c].
at::Tensor scale_channels(const at::Tensor& A, const at::Tensor& k) {
  std::vector<int64_t> shape(A.dim(), 1);
  shape[1] = -1;
  return A * k.view(shape);
}

// Composes rows with a convolution kernel (the transposed convolution of A by W):
// A'[r, ci, k * stride + t] += sum_co A[r, co, k] W[co, ci, t], as one matrix product.
at::Tensor compose(const at::Tensor& A, const at::Tensor& W, const std::vector<int64_t>& stride) {
  int64_t R = A.size(0), co = A.size(1), ci = W.size(1), s = A.dim() - 2, nk = 1;
  std::vector<int64_t> K(A.sizes().begin() + 2, A.sizes().end()), T(W.sizes().begin() + 2, W.sizes().end());
  std::vector<int64_t> out{R, ci}, pview{R, -1, ci};
  for (int64_t d = 0; d < s; ++d) {
    out.push_back((K[d] - 1) * stride[d] + T[d]);
    pview.push_back(T[d]);
    nk *= K[d];
  }
  at::Tensor P = at::mm(A.movedim(1, -1).reshape({-1, co}), W.reshape({co, -1})).view(pview);
  at::Tensor result = at::zeros(out, A.options());
  for (int64_t k = 0; k < nk; ++k) {
    std::vector<at::indexing::TensorIndex> idx{at::indexing::Slice(), at::indexing::Slice()};
    for (int64_t d = 0, rest = k, span = nk; d < s; ++d) {
      span /= K[d];
      int64_t coord = rest / span;
      rest %= span;
      idx.emplace_back(at::indexing::Slice(coord * stride[d], coord * stride[d] + T[d]));
    }
    result.index(idx).add_(P.select(1, k));
  }
  return result;
}

// The float32 rounding of a sum of `fan` products (gamma_n), plus the float64 rounding
// of composing the rows (sums of `inner` products): both are errors times |A| |W| |x|.
double rounding_gamma(const BackSub& b, double fan, int64_t inner) {
  return accumulation_gamma(fan, b.opt.float_type) + accumulation_gamma(static_cast<double>(inner), at::kDouble);
}

// Spends the window's budget of multiply-adds; false when it would run out.
bool spend(BackSub& b, int64_t flops) {
  if (flops > b.flops_left) return false;
  b.flops_left -= flops;
  return true;
}

// Rows entering a zero-padded convolution with one cell per channel: at a border
// position the taps that read padding add 0, the others their own expression over
// their own input position. Keeping taps apart (each bounded alone, then summed as
// max(bound, 0)) covers every subset of taps, so the rows may go on past the padded
// input. Only one padded convolution per window is split this way; later ones (or
// rows already spread over a kernel) end the window at their input, hull joined with 0.
void start_taps(BackSub& b, const Pending& p, Pending& q, const std::string& input) {
  bool one_cell = std::all_of(p.A.sizes().begin() + 2, p.A.sizes().end(), [](int64_t k) { return k == 1; });
  if (!one_cell || p.tapped || b.tap_bound.defined()) {
    b.pad_hull.insert(input);
    return;
  }
  q.tapped = true;
  b.tap_bound = at::zeros({q.A.size(0), q.A.numel() / (q.A.size(0) * q.A.size(1))}, at::kDouble);
}

bool through_conv(BackSub& b, const Node& n, const Pending& p) {
  const IntervalTensor *x = known_of(b, n.inputs[0]), *w = known_of(b, n.inputs[1]);
  if (!x || !w || !w->exact() || attr_int(n, "group", 1) != 1 || spatial_rank(p) < 1) return false;
  int64_t s = spatial_rank(p);
  if (static_cast<int64_t>(x->shape.size()) != s + 2) return false;
  OpContext c{n, b.g.opset, {}, at::kDouble};
  std::vector<int64_t> dil = spatial_attr(c, "dilations", s, 1), str = spatial_attr(c, "strides", s, 1);
  if (std::any_of(dil.begin(), dil.end(), [](int64_t d) { return d != 1; })) return false;
  at::Tensor W = w->lo;
  std::vector<int64_t> kernel(W.sizes().begin() + 2, W.sizes().end()), in(x->shape.begin() + 2, x->shape.end());
  SpatialPads pads = spatial_pads(c, in, kernel, str);
  bool pointwise = pads.zero() && std::all_of(kernel.begin(), kernel.end(), [](int64_t k) { return k == 1; }) &&
                   std::all_of(str.begin(), str.end(), [](int64_t v) { return v == 1; });
  if (p.tapped && !pointwise) return false;  // taps would mix: bounded here, tap by tap
  if (!spend(b, p.A.numel() * W.numel() / W.size(0))) return false;
  at::Tensor bias = n.inputs.size() > 2 && !n.inputs[2].empty() ? known_of(b, n.inputs[2])->lo.reshape({-1}) : at::Tensor();
  // Float32: each output sums fan-in products and the bias, gamma_n of their magnitudes.
  double fan = static_cast<double>(W.numel() / W.size(0)) + (bias.defined() ? 1 : 0);
  at::Tensor absw = at::mv(W.abs().sum(spatial_dims(W)), magnitude(*x));
  if (bias.defined()) absw = absw + bias.abs();
  if (may_overflow(b, absw)) return false;
  add_error(b, p, p.A, absw * rounding_gamma(b, fan, W.size(0) * p.A.numel() / (p.A.size(0) * p.A.size(1))) +
                        fan * kFloat32MinSubnormal);
  if (bias.defined()) add_constant(b, p, p.A, bias);
  Pending q = with(p, compose(p.A, W, str));
  for (int64_t d = 0; d < s; ++d) {
    q.stride[d] = p.stride[d] * str[d];
    q.offset[d] = p.offset[d] * str[d] - pads.begin[d];
  }
  if (!pads.zero()) start_taps(b, p, q, n.inputs[0]);
  push(b, n.inputs[0], std::move(q));
  return true;
}

// Gemm and MatMul with a constant 2-D weight on a 2-D input: y = x W^T + bias.
bool through_dense(BackSub& b, const Node& n, const Pending& p) {
  const IntervalTensor *x = known_of(b, n.inputs[0]), *w = known_of(b, n.inputs[1]);
  if (!x || !w || !w->exact() || x->shape.size() != 2 || w->shape.size() != 2 || spatial_rank(p) != 0) return false;
  bool gemm = n.op_type == "Gemm";
  if (gemm && attr_int(n, "transA", 0) != 0) return false;
  double alpha = gemm ? attr_float(n, "alpha", 1.0f) : 1.0, beta = gemm ? attr_float(n, "beta", 1.0f) : 1.0;
  at::Tensor W = (gemm && attr_int(n, "transB", 0) != 0) ? w->lo : w->lo.t();  // [out, in]
  W = W * alpha;
  std::optional<at::Tensor> bias;
  if (gemm && n.inputs.size() > 2 && !n.inputs[2].empty()) {
    bias = per_channel(*known_of(b, n.inputs[2]), W.size(0), 2);
    if (!bias) return false;
    *bias = *bias * beta;
  }
  if (!spend(b, p.A.numel() * W.size(1))) return false;
  double fan = static_cast<double>(W.size(1)) + 2;
  at::Tensor err = at::mv(W.abs(), magnitude(*x)) + (bias ? bias->abs() : at::zeros({W.size(0)}, at::kDouble));
  if (may_overflow(b, err)) return false;
  add_error(b, p, p.A, err * rounding_gamma(b, fan, W.size(0)) + fan * kFloat32MinSubnormal);
  if (bias) add_constant(b, p, p.A, *bias);
  push(b, n.inputs[0], with(p, at::mm(p.A, W)));
  return true;
}

// Inference BatchNormalization: y = g x + h per channel, in a few float32 roundings.
bool through_batchnorm(BackSub& b, const Node& n, const Pending& p) {
  if (n.inputs.size() < 5 || attr_int(n, "training_mode", 0) != 0 || n.outputs.size() > 1) return false;
  const IntervalTensor* x = known_of(b, n.inputs[0]);
  std::vector<at::Tensor> v;
  for (int i = 1; i < 5; ++i) {
    const IntervalTensor* t = known_of(b, n.inputs[i]);
    if (!t || !t->exact()) return false;
    v.push_back(t->lo.reshape({-1}));
  }
  if (!x || x->shape.size() < 2) return false;
  double eps = attr_float(n, "epsilon", 1e-5f);
  at::Tensor g = v[0] / at::sqrt(v[3] + eps), h = v[1] - v[2] * g;
  if (!at::isfinite(g).all().item<bool>() || !at::isfinite(h).all().item<bool>()) return false;
  at::Tensor scale = g.abs() * (magnitude(*x) + v[2].abs()) + h.abs() + v[1].abs();
  if (may_overflow(b, scale)) return false;
  at::Tensor err = scale * (8 * unit()) + 4 * kFloat32MinSubnormal;
  add_error(b, p, p.A, err);
  add_constant(b, p, p.A, h);
  push(b, n.inputs[0], with(p, scale_channels(p.A, g)));
  return true;
}

// Add/Sub of two tensors of the output's shape, or of a per-channel constant.
bool through_add(BackSub& b, const Node& n, const Pending& p) {
  if (n.inputs.size() != 2) return false;
  const IntervalTensor* out = known_of(b, n.outputs[0]);
  if (!out) return false;
  int64_t channels = out->shape[1], rank = static_cast<int64_t>(out->shape.size());
  at::Tensor err = at::zeros({channels}, at::kDouble);
  std::vector<std::pair<std::string, Pending>> moves;
  for (int i = 0; i < 2; ++i) {
    const IntervalTensor* t = known_of(b, n.inputs[i]);
    if (!t) return false;
    at::Tensor A = (i == 1 && n.op_type == "Sub") ? -p.A : p.A;
    if (t->exact()) {
      auto c = per_channel(*t, channels, rank);
      if (!c) return false;
      add_constant(b, p, A, *c);
      err = err + c->abs();
    } else {
      if (t->shape != out->shape) return false;
      moves.emplace_back(n.inputs[i], with(p, A));
      err = err + magnitude(*t);
    }
  }
  if (may_overflow(b, err)) return false;
  add_error(b, p, p.A, err * unit() + kFloat32MinSubnormal);
  for (auto& [name, q] : moves) push(b, name, std::move(q));
  return true;
}

// Mul or Div by a per-channel (or scalar) constant.
bool through_scale(BackSub& b, const Node& n, const Pending& p) {
  if (n.inputs.size() != 2) return false;
  const IntervalTensor* out = known_of(b, n.outputs[0]);
  bool div = n.op_type == "Div";
  int var = -1;
  for (int i = 0; i < 2; ++i)
    if (const IntervalTensor* t = known_of(b, n.inputs[i]); t && !t->exact()) var = var < 0 ? i : 2;
  if (!out || var < 0 || var > 1 || (div && var != 0)) return false;
  const IntervalTensor* x = known_of(b, n.inputs[var]);
  if (x->shape != out->shape) return false;
  auto k = per_channel(*known_of(b, n.inputs[1 - var]), out->shape[1], static_cast<int64_t>(out->shape.size()));
  if (!k || (div && (*k == 0).any().item<bool>())) return false;
  at::Tensor f = div ? 1.0 / *k : *k;
  if (may_overflow(b, f.abs() * magnitude(*x))) return false;
  add_error(b, p, p.A, f.abs() * magnitude(*x) * (2 * unit() + 0x1p-50) + kFloat32MinSubnormal);
  push(b, n.inputs[var], with(p, scale_channels(p.A, f)));
  return true;
}

// ReLU, per channel on the input's hull [l, u]: exact where stable; where unstable,
// y <= u (x - l) / (u - l) above and y >= lambda x below (lambda = 1 when u > -l).
bool through_relu(BackSub& b, const Node& n, const Pending& p) {
  const IntervalTensor* x = known_of(b, n.inputs[0]);
  if (!x || x->shape.size() < 2) return false;
  auto [l, u] = channel_hull(*x);
  if (!at::isfinite(l).all().item<bool>() || !at::isfinite(u).all().item<bool>()) return false;
  at::Tensor on = l >= 0, off = u <= 0, unstable = on.logical_or(off).logical_not();
  at::Tensor slope = at::where(unstable, u / (u - l).clamp_min(1e-300), on.to(at::kDouble));
  at::Tensor lambda = at::where(unstable, (u > -l).to(at::kDouble), on.to(at::kDouble));
  at::Tensor intercept = at::where(unstable, -slope * l, at::zeros_like(l));
  at::Tensor up = p.A > 0;
  add_constant(b, p, p.A * up, intercept);
  add_error(b, p, p.A, at::maximum(l.abs(), u.abs()) * 0x1p-50);  // the float64 slope products
  std::vector<int64_t> shape(p.A.dim(), 1);
  shape[1] = -1;
  push(b, n.inputs[0], with(p, p.A * at::where(up, slope.view(shape), lambda.view(shape))));
  return true;
}

// Concat along channels: each input takes its slice of the rows' channels.
bool through_concat(BackSub& b, const Node& n, const Pending& p) {
  const IntervalTensor* out = known_of(b, n.outputs[0]);
  if (!out) return false;
  int64_t rank = static_cast<int64_t>(out->shape.size()), axis = attr_int(n, "axis", 0);
  if ((axis < 0 ? axis + rank : axis) != 1) return false;
  std::vector<std::pair<std::string, const IntervalTensor*>> ins;
  for (const std::string& in : n.inputs) {
    const IntervalTensor* t = in.empty() ? nullptr : known_of(b, in);
    if (!t || t->shape.size() != out->shape.size()) return false;
    ins.emplace_back(in, t);
  }
  int64_t at = 0;
  for (const auto& [name, t] : ins) {
    at::Tensor slice = p.A.narrow(1, at, t->shape[1]);
    at += t->shape[1];
    if (t->exact()) {
      auto c = per_channel(*t, t->shape[1], rank);
      if (!c) return false;
      add_constant(b, p, slice, *c);
    } else {
      push(b, name, with(p, slice.contiguous()));
    }
  }
  return true;
}

bool through_identity(BackSub& b, const Node& n, const Pending& p) {
  push(b, n.inputs[0], p);
  return true;
}

using Transfer = bool (*)(BackSub&, const Node&, const Pending&);

const std::unordered_map<std::string, Transfer>& transfers() {
  static const std::unordered_map<std::string, Transfer> t{
      {"Conv", through_conv},   {"Gemm", through_dense},   {"MatMul", through_dense},
      {"BatchNormalization", through_batchnorm},          {"Add", through_add},
      {"Sub", through_add},     {"Mul", through_scale},    {"Div", through_scale},
      {"Relu", through_relu},   {"Identity", through_identity}, {"Concat", through_concat}};
  return t;
}

// The nodes to back-substitute through: the target's producers, breadth first, up to
// max_nodes; the window stops at constants and at ops without a transfer.
std::vector<int> window(const BackSub& b, int max_nodes) {
  std::vector<int> nodes;
  std::vector<std::string> frontier{b.target};
  std::unordered_set<int> seen;
  for (size_t i = 0; i < frontier.size() && static_cast<int>(nodes.size()) < max_nodes; ++i) {
    const Node* p = b.g.producer(frontier[i]);
    const IntervalTensor* t = known_of(b, frontier[i]);
    if (!p || seen.count(p->index) || !transfers().count(p->op_type) || !t || t->exact() || p->outputs.size() != 1)
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
Pending target_rows(const IntervalTensor& t) {
  int64_t c = t.shape[1], s = static_cast<int64_t>(t.shape.size()) - 2;
  at::Tensor eye = at::eye(c, at::kDouble);
  std::vector<int64_t> shape{2 * c, c};
  for (int64_t d = 0; d < s; ++d) shape.push_back(1);
  return Pending{at::cat({eye, -eye}).reshape(shape), std::vector<int64_t>(s, 1), std::vector<int64_t>(s, 0)};
}

int64_t coefficients(const std::vector<Pending>& ps) {
  int64_t n = 0;
  for (const Pending& p : ps) n += p.A.numel();
  return n;
}

// Back-substitutes through one window node; a node that cannot take the rows (too
// large, unsupported attributes, mismatched strides) evaluates them on its output.
void step(BackSub& b, const Node& n) {
  auto it = b.pending.find(n.outputs[0]);
  if (it == b.pending.end()) return;
  std::vector<Pending> ps = std::move(it->second);
  b.pending.erase(it);
  std::optional<Pending> p = merged(ps);
  // Every transfer makes a few elementwise passes over the rows: they count too.
  bool moved = p && !b.pad_hull.count(n.outputs[0]) && coefficients(ps) <= b.opt.max_coefficients &&
               spend(b, 8 * coefficients(ps)) && transfers().at(n.op_type)(b, n, *p);
  if (!moved)
    for (const Pending& q : ps) concretize(b, n.outputs[0], q);
}

}  // namespace

bool has_symbolic_transfer(const std::string& op_type) { return transfers().count(op_type) > 0; }

std::optional<SymbolicBounds> symbolic_channel_bounds(const Graph& graph, const Known& known,
                                                                          const std::string& target,
                                                                          const IntervalTensor& t,
                                                                          const SymbolicOptions& options) {
  if (!t.is_float() || t.exact() || t.shape.size() < 2 || t.numel() == 0) return std::nullopt;
  int64_t c = t.shape[1];
  if (2 * c * c > options.max_coefficients || 8 * 2 * c * c > options.max_flops) return std::nullopt;
  BackSub b{graph, known, options, {}, target, t, {}, options.max_flops, at::zeros({2 * c}, at::kDouble), at::zeros({2 * c}, at::kDouble)};
  std::vector<int> nodes = window(b, options.max_nodes);
  if (nodes.empty()) return std::nullopt;
  b.flops_left -= 8 * 2 * c * c;
  b.pending[target].push_back(target_rows(t));
  for (int i : nodes) step(b, graph.nodes[i]);
  // Rows that reach one tensor by several paths are summed first: x + 5 - x is 5 only
  // when both x terms meet before x's interval is put in.
  for (const auto& [name, ps] : b.pending) {
    if (std::optional<Pending> m = merged(ps)) concretize(b, name, *m);
    else for (const Pending& p : ps) concretize(b, name, p);
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
