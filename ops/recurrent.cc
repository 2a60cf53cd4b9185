// Recurrent layers: LSTM, GRU, RNN (opset 7 and 14 forms: forward / reverse /
// bidirectional, optional B, sequence_lens, initial_h / initial_c, peepholes P,
// activations with alpha / beta, clip, input_forget, linear_before_reset, layout).
// Each cell is written once as a template over a value domain: the concrete domain
// runs ATen ops on the float tensors (differentiable, one step at a time), the
// interval domain propagates float64 bounds through the same steps, widening every
// float32 rounding. Gate order is ONNX's (iofc for LSTM, zrh for GRU), not at::lstm's.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/bilinear_bounds.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/overflow_facet.h"

namespace nanguard {
namespace {

enum class Cell { kLstm, kGru, kRnn };

struct Act {
  std::string name;  // lower case
  double alpha = 0, beta = 0;
};

struct Spec {
  Cell cell = Cell::kRnn;
  int64_t gates = 1, hidden = 0, dirs = 1;
  bool reverse = false;  // direction == "reverse"
  std::optional<double> clip;
  std::vector<std::vector<Act>> acts;  // per direction: f (, g (, h))
  bool input_forget = false, linear_before_reset = false, layout1 = false;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Defaults of alpha / beta per activation; {NaN} when it takes none. Decision (ONNX
// leaves it open): activation_alpha / activation_beta are consumed in order by the
// activations that take them, as ONNX Runtime does.
std::pair<double, double> act_defaults(const std::string& n) {
  const double none = std::numeric_limits<double>::quiet_NaN();
  if (n == "leakyrelu") return {0.01, none};
  if (n == "thresholdedrelu" || n == "elu") return {1.0, none};
  if (n == "scaledtanh" || n == "affine") return {1.0, n == "affine" ? 0.0 : 1.0};
  if (n == "hardsigmoid") return {0.2, 0.5};
  return {none, none};
}

template <class Ctx>
std::vector<std::vector<Act>> parse_acts(const Ctx& ctx, Cell cell, int64_t dirs) {
  const Node& node = ctx.node;
  size_t per = cell == Cell::kLstm ? 3 : cell == Cell::kGru ? 2 : 1;
  std::vector<std::string> names = has_attr(node, "activations") ? attr_strings(node, "activations") : std::vector<std::string>{};
  if (names.empty()) names = cell == Cell::kLstm ? std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"}
                             : cell == Cell::kGru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                  : std::vector<std::string>{"Tanh"};
  // One direction's list serves both directions when a bidirectional node gives one.
  if (names.size() == per && dirs == 2) {
    std::vector<std::string> once = names;
    names.insert(names.end(), once.begin(), once.end());
  }
  if (names.size() < per * static_cast<size_t>(dirs)) ctx.fail(fmt::format("expected {} activations, got {}", per * dirs, names.size()));
  std::vector<float> alphas = has_attr(node, "activation_alpha") ? attr_floats(node, "activation_alpha") : std::vector<float>{};
  std::vector<float> betas = has_attr(node, "activation_beta") ? attr_floats(node, "activation_beta") : std::vector<float>{};
  size_t ai = 0, bi = 0;
  std::vector<std::vector<Act>> acts(dirs);
  for (size_t k = 0; k < per * static_cast<size_t>(dirs); ++k) {
    Act a{lower(names[k])};
    static const char* kKnown[] = {"sigmoid", "tanh", "relu", "affine", "leakyrelu", "thresholdedrelu",
                                   "scaledtanh", "hardsigmoid", "elu", "softsign", "softplus"};
    if (std::find(std::begin(kKnown), std::end(kKnown), a.name) == std::end(kKnown))
      ctx.fail(fmt::format("activation '{}' is not supported", names[k]));
    auto [da, db] = act_defaults(a.name);
    a.alpha = std::isnan(da) ? 0.0 : ai < alphas.size() ? alphas[ai++] : da;
    a.beta = std::isnan(db) ? 0.0 : bi < betas.size() ? betas[bi++] : db;
    acts[k / per].push_back(a);
  }
  return acts;
}

// `hidden_in_r`: R's last dimension, used when hidden_size is absent.
template <class Ctx>
Spec parse_spec(const Ctx& ctx, Cell cell, int64_t hidden_in_r) {
  const Node& node = ctx.node;
  Spec s;
  s.cell = cell;
  s.gates = cell == Cell::kLstm ? 4 : cell == Cell::kGru ? 3 : 1;
  s.hidden = attr_int(node, "hidden_size", hidden_in_r);
  if (s.hidden != hidden_in_r) ctx.fail(fmt::format("hidden_size {} differs from R's {}", s.hidden, hidden_in_r));
  std::string dir = attr_string(node, "direction", "forward");
  if (dir != "forward" && dir != "reverse" && dir != "bidirectional") ctx.fail(fmt::format("direction '{}' is not supported", dir));
  s.dirs = dir == "bidirectional" ? 2 : 1;
  s.reverse = dir == "reverse";
  if (has_attr(node, "clip")) s.clip = attr_float(node, "clip");
  s.input_forget = attr_int(node, "input_forget", 0) != 0;
  s.linear_before_reset = attr_int(node, "linear_before_reset", 0) != 0;
  int64_t layout = attr_int(node, "layout", 0);
  if (layout != 0 && layout != 1) ctx.fail(fmt::format("layout {} is not supported", layout));
  s.layout1 = layout == 1;
  s.acts = parse_acts(ctx, cell, s.dirs);
  return s;
}

// ---- activations -----------------------------------------------------------

at::Tensor apply_act(const Act& a, const at::Tensor& x) {
  const std::string& n = a.name;
  if (n == "sigmoid") return at::sigmoid(x);
  if (n == "tanh") return at::tanh(x);
  if (n == "relu") return at::relu(x);
  if (n == "affine") return x * a.alpha + a.beta;
  if (n == "leakyrelu") return at::leaky_relu(x, a.alpha);
  // The RNN ops' own doc says x >= alpha (the ThresholdedRelu op says x > alpha).
  if (n == "thresholdedrelu") return at::where(x >= a.alpha, x, at::zeros_like(x));
  if (n == "scaledtanh") return at::tanh(x * a.beta) * a.alpha;
  if (n == "hardsigmoid") return at::clamp(x * a.alpha + a.beta, 0.0, 1.0);
  if (n == "elu") return at::elu(x, a.alpha);
  if (n == "softsign") return x / (x.abs() + 1);
  return at::softplus(x);  // log(1 + e^x); ATen returns x above 20, equal in float32
}

// ---- the cells, over a value domain D (Concrete or Abstract below) ------------

template <class D>
typename D::V gate_pre(D& d, int64_t t, const typename D::V& h, int64_t blk) {
  return d.add(d.xpart(t, blk), d.hpart(h, blk));
}

// LSTM, gates iofc; peepholes P are iof. Decision: input_forget couples the gates as
// f = 1 - i (ONNX Runtime's reading; the spec gives no equation).
template <class D>
void lstm_step(D& d, int64_t t, typename D::V& h, typename D::V& c) {
  using V = typename D::V;
  V gi = gate_pre(d, t, h, 0);
  if (d.has_peep()) gi = d.add(gi, d.peep(0, c));
  V i = d.act(0, gi);
  V f;
  if (d.spec.input_forget) {
    f = d.one_minus(i);
  } else {
    V gf = gate_pre(d, t, h, 2);
    if (d.has_peep()) gf = d.add(gf, d.peep(2, c));
    f = d.act(0, gf);
  }
  V cell = d.add(d.mul(f, c), d.mul(i, d.act(1, gate_pre(d, t, h, 3))));
  V go = gate_pre(d, t, h, 1);
  if (d.has_peep()) go = d.add(go, d.peep(1, cell));
  h = d.mul(d.act(0, go), d.act(2, cell));
  c = cell;
}

// GRU, gates zrh: linear_before_reset applies r after the recurrent product (with its
// bias Rbh), otherwise to H(t-1) before it.
template <class D>
void gru_step(D& d, int64_t t, typename D::V& h) {
  using V = typename D::V;
  V z = d.act(0, gate_pre(d, t, h, 0));
  V r = d.act(0, gate_pre(d, t, h, 1));
  V inner = d.spec.linear_before_reset ? d.mul(r, d.hpart(h, 2)) : d.hpart(d.mul(r, h), 2);
  V cand = d.act(1, d.add(d.xpart(t, 2), inner));
  h = d.convex(z, cand, h);
}

// Runs one direction over the sequence; steps past a batch entry's sequence_lens
// keep its state and give Y = 0 (reverse starts at that entry's last step).
template <class D>
void run_direction(D& d, int64_t seq, bool rev, std::vector<typename D::V>& ys, typename D::V& h, typename D::V& c) {
  ys.resize(seq);
  for (int64_t step = 0; step < seq; ++step) {
    int64_t t = rev ? seq - 1 - step : step;
    typename D::V hn = h, cn = c;
    if (d.spec.cell == Cell::kLstm) lstm_step(d, t, hn, cn);
    else if (d.spec.cell == Cell::kGru) gru_step(d, t, hn);
    else hn = d.act(0, gate_pre(d, t, h, 0));
    if (d.lens.empty()) {
      ys[t] = hn, h = hn, c = cn;
      continue;
    }
    at::Tensor m = d.mask(t);
    ys[t] = d.select(m, hn, d.zeros(hn));
    h = d.select(m, hn, h);
    if (d.spec.cell == Cell::kLstm) c = d.select(m, cn, c);
  }
}

// ---- concrete domain -------------------------------------------------------

struct Concrete {
  using V = at::Tensor;
  const Spec& spec;
  const std::vector<Act>& acts;
  at::Tensor xw, rt, rb, p;  // X W^T + Wb [seq, batch, G*H]; R^T [H, G*H]; Rb; P or undefined
  std::vector<int64_t> lens;
  double peak = 0;  // the largest magnitude a sum reached (past FLT_MAX: INF, then inf - inf)
  int64_t H() const { return spec.hidden; }

  V xpart(int64_t t, int64_t k) { return xw[t].narrow(-1, k * H(), H()); }
  V hpart(const V& h, int64_t k) { return at::matmul(h, rt.narrow(1, k * H(), H())) + rb.narrow(0, k * H(), H()); }
  bool has_peep() const { return p.defined(); }
  V peep(int64_t k, const V& c) { return p.narrow(0, k * H(), H()) * c; }
  V add(const V& a, const V& b) { return a + b; }
  V mul(const V& a, const V& b) { return a * b; }
  V one_minus(const V& z) { return 1 - z; }
  V convex(const V& z, const V& a, const V& b) { return (1 - z) * a + z * b; }
  // clip bounds the input of every activation.
  V act(size_t k, const V& x) { return apply_act(acts[k], spec.clip ? at::clamp(x, -*spec.clip, *spec.clip) : x); }
  at::Tensor mask(int64_t t) {
    return (at::tensor(lens, at::kLong) > t).view({-1, 1}).to(xw.device());
  }
  V select(const at::Tensor& m, const V& a, const V& b) { return at::where(m, a, b); }
  V zeros(const V& a) { return at::zeros_like(a); }
};

// sequence_lens read as integers; empty when absent or all equal to seq.
template <class Ctx>
std::vector<int64_t> seq_lens(const Ctx& ctx, const std::vector<int64_t>& lens, int64_t seq, int64_t batch) {
  if (lens.empty()) return {};
  if (static_cast<int64_t>(lens.size()) != batch) ctx.fail("sequence_lens must have one entry per batch element");
  for (int64_t l : lens)
    if (l < 0 || l > seq) ctx.fail(fmt::format("sequence_lens entry {} outside [0, {}]", l, seq));
  if (std::all_of(lens.begin(), lens.end(), [&](int64_t l) { return l == seq; })) return {};
  return lens;
}

Cell cell_of(const std::string& op) { return op == "LSTM" ? Cell::kLstm : op == "GRU" ? Cell::kGru : Cell::kRnn; }

at::Tensor state_or_zeros(const OpContext& ctx, size_t i, bool layout1, int64_t d, const at::Tensor& like) {
  if (!ctx.has_input(i)) return at::zeros_like(like);
  at::Tensor s = ctx.input(i);
  if (s.dim() != 3) ctx.fail("initial states must be 3-D");
  return (layout1 ? s.transpose(0, 1) : s)[d];
}

std::vector<at::Tensor> lower_recurrent(const OpContext& ctx) {
  at::Tensor x = ctx.input(0), w = ctx.input(1), r = ctx.input(2);
  if (x.dim() != 3 || w.dim() != 3 || r.dim() != 3) ctx.fail("X, W and R must be 3-D");
  Spec s = parse_spec(ctx, cell_of(ctx.node.op_type), r.size(2));
  if (s.layout1) x = x.transpose(0, 1);  // [seq, batch, input] from here on
  int64_t seq = x.size(0), batch = x.size(1), gh = s.gates * s.hidden;
  if (w.size(0) != s.dirs || w.size(1) != gh || r.size(0) != s.dirs || r.size(1) != gh)
    ctx.fail("W or R shape does not match direction and hidden_size");
  std::vector<int64_t> lens = seq_lens(ctx, ctx.has_input(4) ? ctx.input_ints(4) : std::vector<int64_t>{}, seq, batch);
  std::vector<at::Tensor> y_dirs, h_dirs, c_dirs;
  for (int64_t d = 0; d < s.dirs; ++d) {
    at::Tensor b = ctx.has_input(3) ? ctx.input(3)[d] : at::zeros({2 * gh}, x.options());
    Concrete dom{s, s.acts[d]};
    dom.xw = at::matmul(x, w[d].t()) + b.narrow(0, 0, gh);
    dom.rt = r[d].t();
    dom.rb = b.narrow(0, gh, gh);
    if (s.cell == Cell::kLstm && ctx.has_input(7)) dom.p = ctx.input(7)[d];
    dom.lens = lens;
    at::Tensor zero = at::zeros({batch, s.hidden}, x.options());
    at::Tensor h = state_or_zeros(ctx, 5, s.layout1, d, zero);
    at::Tensor c = s.cell == Cell::kLstm ? state_or_zeros(ctx, 6, s.layout1, d, zero) : zero;
    std::vector<at::Tensor> ys;
    run_direction(dom, seq, s.reverse || d == 1, ys, h, c);
    y_dirs.push_back(seq > 0 ? at::stack(ys) : at::zeros({0, batch, s.hidden}, x.options()));
    h_dirs.push_back(h);
    c_dirs.push_back(c);
  }
  at::Tensor y = at::stack(y_dirs, 1), yh = at::stack(h_dirs), yc = at::stack(c_dirs);
  if (s.layout1) y = y.permute({2, 0, 1, 3}), yh = yh.transpose(0, 1), yc = yc.transpose(0, 1);
  std::vector<at::Tensor> outs{y, yh, yc};
  outs.resize(std::min<size_t>(ctx.num_outputs(), s.cell == Cell::kLstm ? 3 : 2));
  return outs;
}

// ---- interval domain -------------------------------------------------------
// Bounds in float64; each float32 operation widens by one ulp (transcendental
// activations by 4 ulps plus FLT_MIN for results that underflow), and facts that hold
// exactly in float32 clamp the result: rounding is monotone and 0, 1 are floats, so
// sigmoid lies in [0, 1], tanh in [-1, 1], a product of two factors in [-1, 1] stays
// in [-1, 1], and GRU's (1 - z) h~ + z h stays in [-1, 1] (|fl(1 - z) + z| <= 1 + 2^-25
// rounds to 1). LSTM's Y_c grows by at most 1 (plus rounding) per step.

constexpr double kFltMin = 1.1754943508222875e-38;  // 2^-126

Bounds widen(const Bounds& b, double ulps, double abs = 0) {
  double rel = ulps * kFloat32Ulp, a = abs + ulps * kFloat32MinSubnormal;
  return {b.lo - b.lo.abs() * rel - a, b.hi + b.hi.abs() * rel + a};
}

Bounds clamp_where(Bounds b, const at::Tensor& cond, double lo, double hi) {
  return {at::where(cond, b.lo.clamp(lo, hi), b.lo), at::where(cond, b.hi.clamp(lo, hi), b.hi)};
}

at::Tensor within(const Bounds& b, double lo, double hi) { return (b.lo >= lo).logical_and(b.hi <= hi); }

at::Tensor matmul_f(const at::Tensor& a, const at::Tensor& b) { return at::matmul(a, b); }

CenterRadius center_radius_of(const Bounds& b) {
  at::Tensor lo = b.lo.clamp(-kFloat32Max, kFloat32Max), hi = b.hi.clamp(-kFloat32Max, kFloat32Max);
  CenterRadius cr;
  cr.c = (lo * 0.5 + hi * 0.5).contiguous();
  cr.r = at::maximum(hi - cr.c, cr.c - lo).clamp_min(0.0).contiguous();
  return cr;
}

// A bias as the (n+1)-th term of a dot product of n terms (same gamma).
Bounds plus_bias(const Bounds& y, const Bounds& b, double n, at::ScalarType ft) {
  double g = accumulation_gamma(n, ft);
  at::Tensor mag = at::maximum(b.lo.abs(), b.hi.abs());
  return {y.lo + b.lo - mag * g, y.hi + b.hi + mag * g};
}

// Activations are monotone for the parameters accepted here; others have no transfer.
Bounds act_bounds(const Act& a, const Bounds& x) {
  const std::string& n = a.name;
  if ((n == "leakyrelu" || n == "thresholdedrelu" || n == "elu") && a.alpha < 0)
    throw ModelError(fmt::format("activation {} with alpha < 0 is not monotone: no interval transfer", n));
  double inf = std::numeric_limits<double>::infinity();
  at::Tensor flo = apply_act(a, x.lo), fhi = apply_act(a, x.hi);
  Bounds r{at::nan_to_num(at::minimum(flo, fhi), -inf, inf, -inf), at::nan_to_num(at::maximum(flo, fhi), inf, inf, -inf)};
  if (n == "relu") return r;  // exact
  r = widen(r, 4, kFltMin);
  at::Tensor all = at::ones_like(r.lo, at::kBool);
  if (n == "sigmoid" || n == "hardsigmoid") return clamp_where(r, all, 0, 1);
  if (n == "tanh" || n == "softsign") return clamp_where(r, all, -1, 1);
  if (n == "scaledtanh") return clamp_where(r, all, -std::abs(a.alpha), std::abs(a.alpha));
  if (n == "softplus") return clamp_where(r, all, 0, inf);
  return r;
}

struct Abstract {
  using V = Bounds;
  const Spec& spec;
  const std::vector<Act>& acts;
  at::ScalarType ft;
  Bounds xw, rb, p;  // X W^T + Wb [seq, batch, G*H]; Rb [G*H]; P [3H] or undefined
  CenterRadius rt;   // R^T [H, G*H]
  std::vector<int64_t> lens;
  double peak = 0;  // the largest magnitude a sum reached (past FLT_MAX: INF, then inf - inf)
  int64_t H() const { return spec.hidden; }

  V xpart(int64_t t, int64_t k) { return {xw.lo[t].narrow(-1, k * H(), H()), xw.hi[t].narrow(-1, k * H(), H())}; }
  V hpart(const V& h, int64_t k) {
    CenterRadius w{rt.c.narrow(1, k * H(), H()), rt.r.narrow(1, k * H(), H()), rt.exact};
    double n = static_cast<double>(H()) + 1;
    Bounds y = bilinear_bounds(matmul_f, center_radius_of(h), w, n, ft);
    return plus_bias(y, {rb.lo.narrow(0, k * H(), H()), rb.hi.narrow(0, k * H(), H())}, n, ft);
  }
  bool has_peep() const { return p.lo.defined(); }
  V peep(int64_t k, const V& c) { return mul({p.lo.narrow(0, k * H(), H()), p.hi.narrow(0, k * H(), H())}, c); }
  V add(const V& a, const V& b) {
    Bounds r = widen(bounds_add(a, b), 1);
    for (const Bounds* v : {&a, &b, static_cast<const Bounds*>(&r)}) peak = std::max({peak, v->lo.abs().max().item<double>(), v->hi.abs().max().item<double>()});
    return r;
  }
  V mul(const V& a, const V& b) {
    Bounds r = widen(bounds_mul(a, b), 1);
    r = clamp_where(r, within(a, -1, 1).logical_and(within(b, -1, 1)), -1, 1);
    return clamp_where(r, (a.lo >= 0).logical_and(b.lo >= 0), 0, std::numeric_limits<double>::infinity());
  }
  V one_minus(const V& z) { return clamp_where(widen({1 - z.hi, 1 - z.lo}, 1), within(z, 0, 1), 0, 1); }
  V convex(const V& z, const V& a, const V& b) {
    Bounds r = add(mul(one_minus(z), a), mul(z, b));
    return clamp_where(r, within(z, 0, 1).logical_and(within(a, -1, 1)).logical_and(within(b, -1, 1)), -1, 1);
  }
  V act(size_t k, const V& x) {
    if (!spec.clip) return act_bounds(acts[k], x);
    return act_bounds(acts[k], {x.lo.clamp(-*spec.clip, *spec.clip), x.hi.clamp(-*spec.clip, *spec.clip)});
  }
  at::Tensor mask(int64_t t) { return (at::tensor(lens, at::kLong) > t).view({-1, 1}); }
  V select(const at::Tensor& m, const V& a, const V& b) { return {at::where(m, a.lo, b.lo), at::where(m, a.hi, b.hi)}; }
  V zeros(const V& a) { return {at::zeros_like(a.lo), at::zeros_like(a.hi)}; }
};

// Full bounds of an input, finite, with direction d taken from `dir_axis`.
Bounds full_bounds(const IntervalTensor& t, int64_t dir_axis, int64_t d) {
  at::Tensor lo = t.full_lo().clamp(-kFloat32Max, kFloat32Max), hi = t.full_hi().clamp(-kFloat32Max, kFloat32Max);
  return {lo.select(dir_axis, d), hi.select(dir_axis, d)};
}

// X W^T + Wb for all steps at once (I + 1 terms per element).
Bounds input_part(const AbstractContext& a, const Spec& s, int64_t d) {
  CenterRadius x = center_radius(a.input(0), a.input(0).shape, a.float_type);
  if (s.layout1) x.c = x.c.transpose(0, 1), x.r = x.r.transpose(0, 1);
  CenterRadius w = center_radius(a.input(1), a.input(1).shape, a.float_type);
  w.c = w.c[d].t(), w.r = w.r[d].t();
  int64_t gh = s.gates * s.hidden;
  double n = static_cast<double>(w.c.size(0)) + 1;
  Bounds y = bilinear_bounds(matmul_f, x, w, n, a.float_type);
  if (!a.has_input(3)) return y;
  Bounds b = full_bounds(a.input(3), 0, d);
  return plus_bias(y, {b.lo.narrow(0, 0, gh), b.hi.narrow(0, 0, gh)}, n, a.float_type);
}

Bounds initial_state(const AbstractContext& a, size_t i, const Spec& s, int64_t d, int64_t batch) {
  if (!a.has_input(i)) return {at::zeros({batch, s.hidden}, at::kDouble), at::zeros({batch, s.hidden}, at::kDouble)};
  return full_bounds(a.input(i), s.layout1 ? 1 : 0, d);
}

Bounds stack_bounds(const std::vector<Bounds>& bs, int64_t dim) {
  std::vector<at::Tensor> lo, hi;
  for (const Bounds& b : bs) lo.push_back(b.lo), hi.push_back(b.hi);
  return {at::stack(lo, dim), at::stack(hi, dim)};
}

IntervalTensor to_interval(const Bounds& b, bool layout1, at::ScalarType dtype) {
  at::Tensor lo = b.lo, hi = b.hi;
  if (layout1) {
    std::vector<int64_t> perm = lo.dim() == 4 ? std::vector<int64_t>{2, 0, 1, 3} : std::vector<int64_t>{1, 0, 2};
    lo = lo.permute(perm).contiguous(), hi = hi.permute(perm).contiguous();
  }
  return make_interval({lo, hi}, lo.sizes().vec(), dtype, 0);
}

std::vector<int64_t> abstract_lens(const AbstractContext& a, int64_t seq, int64_t batch) {
  if (!a.has_input(4)) return {};
  if (!a.input(4).exact()) a.fail("sequence_lens with a range has no interval transfer");
  at::Tensor v = a.input(4).value.to(at::kLong).contiguous().view({-1});
  return seq_lens(a, std::vector<int64_t>(v.data_ptr<int64_t>(), v.data_ptr<int64_t>() + v.numel()), seq, batch);
}

// The bounds of Y, Y_h (and Y_c), and in `peak` the largest magnitude of a gate's
// pre-activation or the cell state along the way.
std::vector<IntervalTensor> recurrent_bounds(const AbstractContext& a, double& peak) {
  const IntervalTensor &x = a.input(0), &r = a.input(2);
  if (x.shape.size() != 3 || a.input(1).shape.size() != 3 || r.shape.size() != 3) a.fail("X, W and R must be 3-D");
  Spec s = parse_spec(a, cell_of(a.node.op_type), r.shape[2]);
  int64_t seq = x.shape[s.layout1 ? 1 : 0], batch = x.shape[s.layout1 ? 0 : 1], gh = s.gates * s.hidden;
  std::vector<Bounds> y_dirs, h_dirs, c_dirs;
  for (int64_t d = 0; d < s.dirs; ++d) {
    Abstract dom{s, s.acts[d], a.float_type};
    dom.xw = input_part(a, s, d);
    dom.rt = center_radius(r, r.shape, a.float_type);
    dom.rt.c = dom.rt.c[d].t(), dom.rt.r = dom.rt.r[d].t();
    dom.rb = a.has_input(3) ? full_bounds(a.input(3), 0, d) : Bounds{at::zeros({2 * gh}, at::kDouble), at::zeros({2 * gh}, at::kDouble)};
    dom.rb = {dom.rb.lo.narrow(0, gh, gh), dom.rb.hi.narrow(0, gh, gh)};
    if (s.cell == Cell::kLstm && a.has_input(7)) dom.p = full_bounds(a.input(7), 0, d);
    dom.lens = abstract_lens(a, seq, batch);
    Bounds h = initial_state(a, 5, s, d, batch);
    Bounds c = s.cell == Cell::kLstm ? initial_state(a, 6, s, d, batch) : h;
    std::vector<Bounds> ys;
    run_direction(dom, seq, s.reverse || d == 1, ys, h, c);
    peak = std::max(peak, dom.peak);
    Bounds none{at::zeros({0, batch, s.hidden}, at::kDouble), at::zeros({0, batch, s.hidden}, at::kDouble)};
    y_dirs.push_back(seq > 0 ? stack_bounds(ys, 0) : none);
    h_dirs.push_back(h);
    c_dirs.push_back(c);
  }
  std::vector<IntervalTensor> outs{to_interval(stack_bounds(y_dirs, 1), s.layout1, x.dtype),
                                   to_interval(stack_bounds(h_dirs, 0), s.layout1, x.dtype),
                                   to_interval(stack_bounds(c_dirs, 0), s.layout1, x.dtype)};
  outs.resize(std::min<size_t>(a.node.outputs.size(), s.cell == Cell::kLstm ? 3 : 2));
  return outs;
}

std::vector<IntervalTensor> recurrent_interval(const AbstractContext& a) {
  double peak = 0;
  return recurrent_bounds(a, peak);
}

// W x + R h + b, and the cell state, are float32 sums inside the op: one past FLT_MAX
// is INF, and INF - INF a NaN in Y (found by fuzz_soundness on test_lstm_batchwise
// with W near -5.7e37). The recurrence runs a second time for it.
std::vector<HazardReport> recurrent_hazards(const AbstractContext& a) {
  double peak = 0;
  recurrent_bounds(a, peak);
  if (!(peak > kFloat32Max)) return {};
  return {HazardReport{"overflow", HazardKind::kForward, 0,
                       "a gate's pre-activation (W x + R h + b) or the cell state exceeds 3.4028235e38", false}};
}

OpDef recurrent(const char* op) {
  return with_facets(with(OpDef{op, lower_recurrent}, recurrent_interval, recurrent_hazards),
                     {bounded_overflow_facet("the gates' sums depend on every input and weight together; the fixer bounds them all")});
}

}  // namespace

NANGUARD_REGISTER_OPS({recurrent("LSTM"), recurrent("GRU"), recurrent("RNN")});

}  // namespace nanguard
