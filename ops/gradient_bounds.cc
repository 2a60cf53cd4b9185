#include "ops/gradient_bounds.h"

#include <cmath>
#include <limits>
#include <set>
#include <string>

#include <torch/csrc/autograd/autograd.h>

#include "model/attributes.h"
#include "ops/op_context.h"
#include "ops/op_registry.h"
#include "ops/type_limit.h"

namespace nanguard {
namespace {

using Bounds = std::optional<std::vector<at::Tensor>>;
constexpr double kInf = std::numeric_limits<double>::infinity();

at::Tensor full(const IntervalTensor& t, at::Tensor v) { return v.expand(t.shape).contiguous(); }

// max |x| and min |x| over each cell, expanded to the tensor's shape.
at::Tensor magnitude(const IntervalTensor& t) { return full(t, at::maximum(t.lo.abs(), t.hi.abs())); }
at::Tensor least_magnitude(const IntervalTensor& t) {
  at::Tensor m = at::minimum(t.lo.abs(), t.hi.abs());
  return full(t, at::where((t.lo <= 0).logical_and(t.hi >= 0), at::zeros_like(m), m));
}

// A bound of the output's shape summed back over the dimensions `shape` broadcast.
at::Tensor unbroadcast(at::Tensor g, const std::vector<int64_t>& shape) {
  std::vector<int64_t> lead;
  for (int64_t i = 0; i < g.dim() - static_cast<int64_t>(shape.size()); ++i) lead.push_back(i);
  if (!lead.empty()) g = g.sum(lead);
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] == 1 && g.size(i) != 1) g = g.sum(static_cast<int64_t>(i), true);
  return g.reshape(shape);
}

// The same bound for every element of `t`: for ops that route one input element to
// at most `fanout` output elements, each with coefficient at most 1.
at::Tensor uniform(const IntervalTensor& t, const at::Tensor& g, double fanout) {
  return at::full(t.shape, g.max().item<double>() * fanout, at::kDouble);
}

// ---- multilinear ops: their own vector-Jacobian product at magnitudes -----------------

const std::set<std::string>& multilinear_ops() {
  static const std::set<std::string> ops = {
      "Add", "Sub", "Mul", "Neg", "Sum", "Mean", "MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum",
      "ReduceSum", "ReduceMean", "AveragePool", "GlobalAveragePool", "Identity", "Reshape", "Flatten",
      "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND",
      "Expand", "Tile", "DepthToSpace", "SpaceToDepth", "CumSum"};
  return ops;
}

// Resize and Upsample are multilinear with nonnegative taps for nearest and linear
// modes only (cubic taps are negative); Pad in constant mode (reflect and edge repeat
// elements, still with coefficient 1, which the product covers as well).
bool is_multilinear(const Node& node) {
  if (multilinear_ops().count(node.op_type)) return true;
  if (node.op_type == "Pad") return true;
  if (node.op_type == "Resize" || node.op_type == "Upsample") return attr_string(node, "mode", "nearest") != "cubic";
  return false;
}

Bounds vjp_at_magnitudes(const AbstractContext& a, const std::vector<at::Tensor>& out_bounds) {
  const OpDef* def = OpRegistry::instance().find(a.node.op_type, a.node.domain);
  if (!def || !def->lower) return std::nullopt;
  std::vector<at::Tensor> in;
  std::vector<size_t> grad_of;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    const IntervalTensor& t = a.inputs[i];
    if (!t.lo.defined()) {
      in.emplace_back();
    } else if (t.is_float()) {
      in.push_back(magnitude(t).detach().requires_grad_(true));
      grad_of.push_back(i);
    } else if (t.exact()) {
      in.push_back(t.value.detach());
    } else {
      return std::nullopt;  // an index or shape known only as a range
    }
  }
  at::AutoGradMode on(true);
  OpContext ctx{a.node, a.opset, in, at::kDouble};
  std::vector<at::Tensor> outs = def->lower(ctx);
  std::vector<at::Tensor> ys, gs;
  for (size_t k = 0; k < outs.size() && k < out_bounds.size(); ++k)
    if (out_bounds[k].defined() && outs[k].defined() && outs[k].requires_grad()) {
      ys.push_back(outs[k]);
      gs.push_back(out_bounds[k].to(outs[k].scalar_type()).expand(outs[k].sizes()));
    }
  std::vector<at::Tensor> result(a.inputs.size());
  if (ys.empty() || grad_of.empty()) return result;
  std::vector<at::Tensor> xs;
  for (size_t i : grad_of) xs.push_back(in[i]);
  std::vector<at::Tensor> g = torch::autograd::grad(ys, xs, gs, false, false, true);
  for (size_t j = 0; j < grad_of.size(); ++j)
    if (g[j].defined()) result[grad_of[j]] = g[j].abs().detach();
  return result;
}

// Gathers and scatters whose indices are known only as a range: each output element
// routes one element of an input, so an input element's gradient is at most the sum of
// the output's bound (all of it may pick that element); a scatter's data keeps at most
// the output's bound where it is not overwritten, and each update takes one output
// element's. Reductions other than none and add scale by the other values: none here.
Bounds routing_by_ranged_indices(const AbstractContext& a, const std::vector<at::Tensor>& out_bounds) {
  const std::string& op = a.node.op_type;
  if (out_bounds.empty() || !out_bounds[0].defined()) return std::vector<at::Tensor>(a.inputs.size());
  const at::Tensor& g = out_bounds[0];
  std::vector<at::Tensor> r(a.inputs.size());
  auto is_float = [&](size_t i) { return a.has_input(i) && a.inputs[i].is_float(); };
  if (op == "Gather" || op == "GatherElements" || op == "GatherND") {
    if (is_float(0)) r[0] = at::full(a.input(0).shape, g.sum().item<double>(), at::kDouble);
    return r;
  }
  if (op == "ScatterElements" || op == "ScatterND" || op == "Scatter") {
    std::string reduction = attr_string(a.node, "reduction", "none");
    if (reduction != "none" && reduction != "add") return std::nullopt;
    if (is_float(0)) r[0] = g;
    if (is_float(2)) r[2] = at::full(a.input(2).shape, g.max().item<double>(), at::kDouble);
    return r;
  }
  return std::nullopt;
}

// ---- elementwise ops: the output bound times the derivative's largest magnitude -------

// max |f'(x)| over each cell of x, or undefined when the op has no rule.
at::Tensor derivative_bound(const AbstractContext& a) {
  const std::string& op = a.node.op_type;
  const IntervalTensor& x = a.input(0);
  auto c = [&](double v) { return at::full(x.shape, v, at::kDouble); };
  if (op == "Relu") return full(x, (x.hi > 0).to(at::kDouble));
  if (op == "Abs" || op == "Tanh" || op == "Softplus" || op == "Softsign" || op == "Sin" ||
      op == "Cos" || op == "Atan" || op == "Celu" || op == "Dropout" || op == "Cast")
    return c(1);
  if (op == "Sigmoid") return c(0.25);
  if (op == "Erf") return c(2 / std::sqrt(M_PI));
  if (op == "Gelu") return c(1.13);
  if (op == "Mish") return c(1.2);
  if (op == "HardSwish") return c(1.5);
  if (op == "HardSigmoid") return c(std::abs(attr_float(a.node, "alpha", 0.2f)));
  if (op == "LeakyRelu") return c(std::max(1.0, std::abs(static_cast<double>(attr_float(a.node, "alpha", 0.01f)))));
  if (op == "Elu") return c(std::max(1.0, std::abs(static_cast<double>(attr_float(a.node, "alpha", 1.f)))));
  if (op == "Selu")
    return c(attr_float(a.node, "gamma", 1.0507f) * std::max(1.0, static_cast<double>(attr_float(a.node, "alpha", 1.6733f))));
  if (op == "Floor" || op == "Ceil" || op == "Round" || op == "Sign") return c(0);
  if (op == "Exp") return full(x, x.hi.exp());
  if (op == "Sinh" || op == "Cosh") return full(x, at::maximum(x.lo.abs(), x.hi.abs()).cosh());
  if (op == "Log") return least_magnitude(x).reciprocal().masked_fill(full(x, x.lo <= 0), kInf);
  if (op == "Sqrt") return (least_magnitude(x).sqrt() * 2).reciprocal().masked_fill(full(x, x.lo <= 0), kInf);
  if (op == "Reciprocal") return least_magnitude(x).pow(2).reciprocal();
  if (op == "Asin" || op == "Acos") return (1 - magnitude(x).pow(2)).clamp_min(0).sqrt().reciprocal();
  return {};
}

// Pow with an exactly known scalar exponent y: |y| * |x|^(y-1), largest at |x|'s top
// for y >= 1, at its bottom below.
at::Tensor pow_base_bound(const IntervalTensor& x, double y) {
  if (y == 0) return at::zeros(x.shape, at::kDouble);
  at::Tensor m = y >= 1 ? magnitude(x) : least_magnitude(x);
  return (m.pow(y - 1) * std::abs(y)).nan_to_num(kInf, kInf, kInf);
}

// The rows a Softmax-like op normalises over: one axis (opset 13), or every
// dimension from `axis` on (earlier opsets flatten there).
std::vector<int64_t> softmax_dims(const AbstractContext& a, int64_t rank) {
  int64_t axis = attr_int(a.node, "axis", a.opset >= 13 ? -1 : 1);
  if (axis < 0) axis += rank;
  if (a.opset >= 13) return {axis};
  std::vector<int64_t> d;
  for (int64_t i = axis; i < rank; ++i) d.push_back(i);
  return d;
}

// Softmax: dx_i = y_i (g_i - sum_j g_j y_j), so |dx_i| <= G_i + max_row G (y <= 1).
// LogSoftmax: dx_i = g_i - softmax_i * sum_j g_j, so |dx_i| <= G_i + sum_row G.
at::Tensor softmax_bound(const AbstractContext& a, const at::Tensor& g, bool log) {
  std::vector<int64_t> dims = softmax_dims(a, g.dim());
  return log ? g + g.sum(dims, true) : g + g.amax(dims, true);
}

// Div: dx = g / y, dy = -g (x / y) / y: |x / y| is the smaller of |x| / |y| and the
// quotient's own bound (a normalised x / ||x|| lies in [-1, 1]).
Bounds div_bounds(const AbstractContext& a, const at::Tensor& g, const std::vector<IntervalTensor>& outputs) {
  const IntervalTensor &x = a.input(0), &y = a.input(1);
  std::vector<int64_t> out_shape = g.sizes().vec();
  at::Tensor ym = least_magnitude(y).expand(out_shape);
  at::Tensor q = magnitude(x).expand(out_shape) / ym;
  if (!outputs.empty() && outputs[0].lo.defined()) q = at::minimum(q, magnitude(outputs[0]).expand(out_shape));
  std::vector<at::Tensor> r(2);
  if (x.is_float()) r[0] = unbroadcast(g / ym, x.shape);
  if (y.is_float()) r[1] = unbroadcast(g * q / ym, y.shape);
  for (auto& t : r)
    if (t.defined()) t = t.nan_to_num(kInf, kInf, kInf);
  return r;
}

// Ops that route each output element to one input element (or share it out):
// |dx| <= the output bound, summed back over broadcasting.
Bounds routing_bounds(const AbstractContext& a, const at::Tensor& g, size_t first) {
  std::vector<at::Tensor> r(a.inputs.size());
  for (size_t i = first; i < a.inputs.size(); ++i)
    if (a.inputs[i].lo.defined() && a.inputs[i].is_float()) r[i] = unbroadcast(g, a.inputs[i].shape);
  return r;
}

// Inference BatchNormalization, y = (x - mean) / sqrt(var + eps) * scale + B, per
// channel (dimension 1).
Bounds batch_norm_bounds(const AbstractContext& a, const at::Tensor& g) {
  if (a.node.outputs.size() > 1 && !a.node.outputs[1].empty()) return std::nullopt;  // training mode
  if (a.inputs.size() < 5) return std::nullopt;
  const IntervalTensor &x = a.input(0), &scale = a.input(1), &mean = a.input(3), &var = a.input(4);
  // No channel axis (a rank-0 or rank-1 x): no rule, so gradient-unbounded
  // (fuzz_loader: cshape[1] of a rank-0 x was a SEGV).
  if (x.shape.size() < 2 || !scale.lo.defined() || !mean.lo.defined() || !var.lo.defined()) return std::nullopt;
  double eps = attr_float(a.node, "epsilon", 1e-5f);
  std::vector<int64_t> cshape(x.shape.size(), 1);
  cshape[1] = x.shape[1];
  auto per_channel = [&](const at::Tensor& v) { return v.reshape(cshape); };
  at::Tensor inv = per_channel((least_magnitude(var).clamp_min(0) + eps).rsqrt() * 1.0);
  if (var.lo.min().item<double>() + eps <= 0) inv = at::full_like(inv, kInf);
  at::Tensor s = per_channel(magnitude(scale)), xc = magnitude(x) + per_channel(magnitude(mean));
  std::vector<int64_t> others;
  for (int64_t d = 0; d < static_cast<int64_t>(x.shape.size()); ++d)
    if (d != 1) others.push_back(d);
  auto to_channel = [&](const at::Tensor& v) { return v.sum(others).reshape({x.shape[1]}); };
  std::vector<at::Tensor> r(5);
  if (x.is_float()) r[0] = g * s * inv;
  r[1] = to_channel(g * xc * inv);
  r[2] = to_channel(g);
  r[3] = to_channel(g * s * inv);
  r[4] = to_channel(g * s * xc * inv.pow(3) * 0.5);
  // The backward pass forms products of g, x - mean and inv (up to inv^3) before the
  // scale multiplies them, in some order: past the type's limit one is INF, and INF * 0
  // (a zero scale) is NaN (fuzz_soundness: scale 0, mean 2e34, var ~ 0 gave a NaN var
  // gradient). Every partial product is at most the product of max(factor, 1).
  auto at_least_one = [](const at::Tensor& t) { return t.clamp_min(1.0); };
  at::Tensor unscaled = to_channel(at_least_one(g) * at_least_one(xc) * at_least_one(inv).pow(3));
  double limit = std::min(input_limit(a, 4), input_limit(a, 0));
  r[4] = at::where(unscaled.nan_to_num(kInf, kInf, kInf) * (1 + 1e-6) >= limit, at::full_like(r[4], kInf), r[4]);
  for (auto& t : r) t = t.nan_to_num(kInf, kInf, kInf);
  return r;
}

// LayerNormalization over the last dimensions from `axis` (N elements a row), as its
// lowering computes it: xhat = (x - mean) * inv, inv = 1 / sqrt(var + eps), y = xhat *
// scale + B. With u = scale * g, dx = inv (u - mean(u) - xhat mean(u xhat)); |xhat| <=
// sqrt(N - 1), mean(xhat^2) <= 1 and inv <= 1 / sqrt(eps), so by Cauchy-Schwarz
// |dx| <= (U + mean U + sqrt(N) rms U) / sqrt(eps) for U = |scale| G. The float32
// intermediates of that backward pass are bounded too: d inv = sum(u (x - mean)) <=
// ||U|| sqrt(N) max|x|, and d var <= 0.2 sqrt(N) ||U|| / eps (the largest sqrt(v) /
// (v + eps)^1.5 is 0.385 / eps), d var (x - mean) <= 0.5 N ||U|| / sqrt(eps); past
// float32's limit they are INF, and dx unbounded.
Bounds layer_norm_bounds(const AbstractContext& a, const at::Tensor& g) {
  const IntervalTensor& x = a.input(0);
  int64_t rank = static_cast<int64_t>(x.shape.size());
  int64_t axis = attr_int(a.node, "axis", -1);
  if (axis < 0) axis += rank;
  double eps = attr_float(a.node, "epsilon", 1e-5f);
  if (axis < 0 || axis > rank || !(eps > 0)) return std::nullopt;
  std::vector<int64_t> dims;
  double n = 1;
  for (int64_t d = axis; d < rank; ++d) dims.push_back(d), n *= static_cast<double>(x.shape[d]);
  if (dims.empty()) return std::nullopt;
  at::Tensor u = g * magnitude(a.input(1));
  at::Tensor norm = u.square().sum(dims, true).sqrt();
  at::Tensor rms = norm / std::sqrt(n);
  double slack = 1.001 + n * std::ldexp(1.0, -22);  // float32 rounding of the sums
  at::Tensor dx = (u + u.mean(dims, true) + rms * std::sqrt(n)) * (slack / std::sqrt(eps));
  at::Tensor xmax = magnitude(x).amax(dims, true);
  at::Tensor d_inv = norm * std::sqrt(n) * xmax * 2, d_var = norm * std::sqrt(n) * (0.2 / eps);
  at::Tensor d_sq = norm * (0.5 * n / std::sqrt(eps));  // d var times (x - mean), before the 1 / N
  at::Tensor blown = at::maximum(at::maximum(d_inv, d_var), d_sq) * slack >= kFloat32Max;
  std::vector<at::Tensor> r(a.inputs.size());
  r[0] = dx.masked_fill(blown, kInf).nan_to_num(kInf, kInf, kInf);
  // The scale's gradient sums g * xhat over the rows, |xhat| <= sqrt(N); B's sums g.
  if (a.input(1).is_float()) r[1] = unbroadcast(g * (std::sqrt(n) * slack), a.input(1).shape);
  if (a.has_input(2) && a.input(2).is_float()) r[2] = unbroadcast(g * slack, a.input(2).shape);
  return r;
}

// GridSample (bilinear or nearest) on x [N, C, H, W] and grid [N, h, w, 2]: each output
// element is a convex combination of at most four input pixels, so a pixel's gradient
// is at most its (n, c) plane's sum of the output bound. A tap weight's derivative in
// the pixel coordinate lies in [-1, 1] and sums to 2 in magnitude over the taps; the
// coordinate moves by W / 2 (H / 2) per grid unit at most, padding modes only clamp or
// reflect it: |d out / d grid_x| <= W max|x| per channel. Nearest has no grid gradient.
Bounds grid_sample_bounds(const AbstractContext& a, const at::Tensor& g) {
  const IntervalTensor &x = a.input(0), &grid = a.input(1);
  std::string mode = attr_string(a.node, "mode", "bilinear");
  bool nearest = mode == "nearest";
  if (!nearest && mode != "bilinear" && mode != "linear") return std::nullopt;
  if (x.shape.size() != 4 || grid.shape.size() != 4 || g.dim() != 4) return std::nullopt;
  const double slack = 1.001;
  std::vector<at::Tensor> r(a.inputs.size());
  if (x.is_float()) r[0] = (g.sum({2, 3}, true) * slack).expand(x.shape).contiguous();
  if (grid.is_float()) {
    at::Tensor xmax = magnitude(x).amax({2, 3}, true);               // [N, C, 1, 1]
    at::Tensor per = (g * xmax).sum(1);                             // [N, h, w]
    double w = static_cast<double>(x.shape[3]), h = static_cast<double>(x.shape[2]);
    at::Tensor both = at::stack({per * w, per * h}, -1) * (nearest ? 0.0 : slack);
    r[1] = both.expand(grid.shape).contiguous();
  }
  return r;
}

// NegativeLogLikelihoodLoss(input [N, C, ...], target, weight): the input's gradient
// is -w[t] * g at the target class, 0 elsewhere; 'mean' divides by the total weight
// (the count without weights: at least 1 with ignore_index, else every element). A
// trainable weight, or a mean over weights that may sum to nearly 0 (the loss's own
// hazards), has no bound here.
Bounds nll_bounds(const AbstractContext& a, const at::Tensor& g) {
  const IntervalTensor& x = a.input(0);
  bool weighted = a.has_input(2);
  if (weighted && !a.input(2).exact()) return std::nullopt;
  double wmax = weighted ? a.input(2).value.abs().max().item<double>() : 1;
  std::string reduction = attr_string(a.node, "reduction", "mean");
  double per = g.max().item<double>() * wmax;
  if (reduction == "mean") {
    double count = 1;
    for (size_t d = 0; d < x.shape.size(); ++d)
      if (d != 1) count *= static_cast<double>(x.shape[d]);
    bool ignore = a.node.attributes.count("ignore_index") > 0;
    double wmin = weighted ? a.input(2).value.min().item<double>() : 1;
    if (weighted && wmin <= 0) return std::nullopt;
    double total = ignore ? wmin : wmin * count;
    per /= total;
  }
  std::vector<at::Tensor> r(a.inputs.size());
  r[0] = at::full(x.shape, per, at::kDouble);
  return r;
}

}  // namespace

at::Tensor log_softmax_input_bound(const AbstractContext& softmax, const at::Tensor& log_bound) {
  return softmax_bound(softmax, log_bound, true);
}

std::optional<std::vector<at::Tensor>> input_gradient_bounds(const AbstractContext& a,
                                                             const std::vector<at::Tensor>& out_bounds,
                                                             const std::vector<IntervalTensor>& outputs) {
  const std::string& op = a.node.op_type;
  if (!a.node.domain.empty() && a.node.domain != "ai.onnx") return std::nullopt;
  if (is_multilinear(a.node)) {
    Bounds b = vjp_at_magnitudes(a, out_bounds);
    return b ? b : routing_by_ranged_indices(a, out_bounds);
  }
  if (op == "ScatterElements" || op == "ScatterND" || op == "Scatter") return routing_by_ranged_indices(a, out_bounds);
  // The rules below read the first output's bound: a gradient reaching a later output
  // (an RNN's Y_h, a normalisation's saved statistics) has none.
  for (size_t k = 1; k < out_bounds.size(); ++k)
    if (out_bounds[k].defined()) return std::nullopt;
  if (out_bounds.empty() || !out_bounds[0].defined()) return std::vector<at::Tensor>(a.inputs.size());
  const at::Tensor& g = out_bounds[0];
  std::vector<at::Tensor> r(a.inputs.size());
  if (op == "Div") return div_bounds(a, g, outputs);
  if (op == "Max" || op == "Min" || op == "Clip") return routing_bounds(a, g, 0);  // Clip: x, and its bounds where met
  if (op == "Where") return routing_bounds(a, g, 1);
  if (op == "Softmax" || op == "LogSoftmax") {
    at::Tensor b = softmax_bound(a, g, op == "LogSoftmax");
    r[0] = b;
    return r;
  }
  if (op == "BatchNormalization") return batch_norm_bounds(a, g);
  if (op == "LayerNormalization") return layer_norm_bounds(a, g);
  if (op == "GridSample") return grid_sample_bounds(a, g);
  // SoftmaxCrossEntropyLoss's score gradient is w[t] / total times softmax - onehot,
  // each entry of which lies in [-1, 1]: NLL's bound, at every class.
  if (op == "NegativeLogLikelihoodLoss" || op == "SoftmaxCrossEntropyLoss") return nll_bounds(a, g);
  if (op == "ReduceMax" || op == "ReduceMin" || op == "ReduceL2" || op == "ReduceL1" || op == "ReduceLogSumExp" ||
      op == "GlobalMaxPool" || op == "ArgMax") {
    if (op != "ArgMax") r[0] = uniform(a.input(0), g, 1);
    return r;
  }
  if (op == "MaxPool") {
    std::vector<int64_t> k = attr_ints(a.node, "kernel_shape"), s = attr_ints(a.node, "strides");
    double windows = 1;  // windows one element can fall in
    for (size_t i = 0; i < k.size(); ++i) windows *= std::ceil(static_cast<double>(k[i]) / (i < s.size() ? s[i] : 1));
    r[0] = uniform(a.input(0), g, windows);
    return r;
  }
  if (op == "Dropout" && a.has_input(2) && !(a.input(2).exact() && a.input(2).value.sum().item<double>() == 0))
    return std::nullopt;  // training mode: kept elements are scaled by 1 / (1 - ratio)
  if (op == "Pow") {
    const IntervalTensor &x = a.input(0), &y = a.input(1);
    if (!y.exact() || y.value.numel() != 1) return std::nullopt;
    r[0] = unbroadcast(g * pow_base_bound(x, y.value.item<double>()).expand(g.sizes()), x.shape);
    return r;
  }
  at::Tensor d = a.inputs.empty() || !a.inputs[0].lo.defined() || !a.inputs[0].is_float() ? at::Tensor() : derivative_bound(a);
  if (!d.defined()) return std::nullopt;
  r[0] = (g * d).nan_to_num(kInf, kInf, kInf);
  return r;
}

}  // namespace nanguard
