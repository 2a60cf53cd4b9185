// Convolutions: Conv and ConvTranspose over 1-D, 2-D and 3-D inputs (N, C, spatial...),
// with groups, strides, dilations, explicit or automatic padding.
// ONNX pads may be asymmetric and ATen's are not, so uneven pads are applied with
// constant_pad_nd (zeros, as ONNX pads: a padded 0 times an INF weight is NaN in both).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include <ATen/ATen.h>
#include <fmt/core.h>

#include "ops/bilinear_bounds.h"
#include "ops/collapsed_bounds.h"
#include "ops/op_registry.h"
#include "ops/spatial_pads.h"
#include "ops/symbolic_form.h"

namespace nanguard {
namespace {

struct Window {
  int64_t rank = 0;  // spatial axes
  std::vector<int64_t> in, kernel, strides, dilations, extent;  // extent: dilated kernel
  int64_t group = 1;
};

// Reads the window of a Conv/ConvTranspose: kernel_shape comes from W when absent.
Window conv_window(const OpContext& ctx) {
  const at::Tensor &x = ctx.input(0), &w = ctx.input(1);
  Window win;
  win.rank = x.dim() - 2;
  if (win.rank < 1 || win.rank > 3) ctx.fail(fmt::format("input of rank {} is not supported", x.dim()));
  if (w.dim() != x.dim()) ctx.fail(fmt::format("W has rank {} for an input of rank {}", w.dim(), x.dim()));
  auto n = static_cast<size_t>(win.rank);
  win.in.assign(x.sizes().begin() + 2, x.sizes().end());
  win.kernel.assign(w.sizes().begin() + 2, w.sizes().end());
  if (auto ks = attr_ints_opt(ctx.node, "kernel_shape"); ks && *ks != win.kernel)
    ctx.fail("attribute 'kernel_shape' does not match the shape of W");
  win.strides = spatial_attr(ctx, "strides", n, 1);
  win.dilations = spatial_attr(ctx, "dilations", n, 1);
  for (size_t i = 0; i < n; ++i) {
    if (win.strides[i] < 1 || win.strides[i] > (int64_t{1} << 24) || win.dilations[i] < 1 ||
        win.dilations[i] > (int64_t{1} << 24))
      ctx.fail(fmt::format("strides {} and dilations {} along spatial axis {} must lie in [1, 2^24]", win.strides[i],
                           win.dilations[i], i));
    win.extent.push_back((win.kernel[i] - 1) * win.dilations[i] + 1);
  }
  win.group = attr_int(ctx.node, "group", 1);
  if (win.group < 1) ctx.fail("attribute 'group' must be positive");
  return win;
}

std::vector<at::Tensor> lower_conv(const OpContext& ctx) {
  at::Tensor x = ctx.input(0);
  Window win = conv_window(ctx);
  SpatialPads pads = spatial_pads(ctx, win.in, win.extent, win.strides);
  std::vector<int64_t> padding(win.rank, 0);
  if (pads.symmetric()) {
    padding = pads.begin;
  } else {
    x = pad_spatial(x, pads, 0.0);
  }
  at::Tensor bias = ctx.has_input(2) ? ctx.input(2) : at::Tensor();
  return {at::convolution(x, ctx.input(1), bias, win.strides, padding, win.dilations, /*transposed=*/false,
                          std::vector<int64_t>(win.rank, 0), win.group)};
}

// ConvTranspose pads crop the full transposed output; output_padding extends its end.
// With output_shape, the pads follow the spec's equations: total = full - output_shape,
// SAME_UPPER puts total/2 at the beginning, anything else puts total/2 at the end.
// Decision: a negative total (output_shape larger than the full output) extends the
// end only, as output_padding does; that is what the ONNX backend test expects.
SpatialPads transpose_pads(const OpContext& ctx, const Window& win, const std::vector<int64_t>& full) {
  auto n = static_cast<size_t>(win.rank);
  std::string auto_pad = attr_string(ctx.node, "auto_pad", "NOTSET");
  auto out_shape = attr_ints_opt(ctx.node, "output_shape");
  if (!out_shape && (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER")) {
    out_shape = std::vector<int64_t>(n);
    for (size_t i = 0; i < n; ++i) (*out_shape)[i] = win.in[i] * win.strides[i];
  }
  if (!out_shape) return spatial_pads(ctx, win.in, win.extent, win.strides);
  if (out_shape->size() < n) ctx.fail("attribute 'output_shape' has too few values");
  SpatialPads p{std::vector<int64_t>(n), std::vector<int64_t>(n)};
  for (size_t i = 0; i < n; ++i) {
    int64_t total = full[i] - (*out_shape)[out_shape->size() - n + i];
    int64_t half = total / 2;
    p.begin[i] = total < 0 ? 0 : auto_pad == "SAME_UPPER" ? half : total - half;
    p.end[i] = total - p.begin[i];
  }
  return p;
}

std::vector<at::Tensor> lower_conv_transpose(const OpContext& ctx) {
  const at::Tensor &x = ctx.input(0), &w = ctx.input(1);
  Window win = conv_window(ctx);
  auto n = static_cast<size_t>(win.rank);
  std::vector<int64_t> out_pad = spatial_attr(ctx, "output_padding", n, 0);
  std::vector<int64_t> full(n);  // the transposed output before any padding
  for (size_t i = 0; i < n; ++i) {
    // Checked: attributes near int64's limits overflowed here (undefined behaviour;
    // found by fuzz_loader under UBSan).
    double size = static_cast<double>(win.strides[i]) * static_cast<double>(win.in[i] - 1) +
                  static_cast<double>(win.extent[i]) + static_cast<double>(out_pad[i]);
    if (!(size >= 0 && size < static_cast<double>(int64_t{1} << 48)))
      ctx.fail(fmt::format("output size {:g} along spatial axis {} is out of range", size, i));
    full[i] = win.strides[i] * (win.in[i] - 1) + win.extent[i] + out_pad[i];
  }
  SpatialPads pads = transpose_pads(ctx, win, full);
  at::Tensor y = at::convolution(x, w, at::Tensor(), win.strides, std::vector<int64_t>(n, 0), win.dilations,
                                 /*transposed=*/true, std::vector<int64_t>(n, 0), win.group);
  // y lacks the output_padding tail: the crop below appends it as zeros.
  SpatialPads crop{std::vector<int64_t>(n), std::vector<int64_t>(n)};
  for (size_t i = 0; i < n; ++i) {
    crop.begin[i] = -pads.begin[i];
    crop.end[i] = out_pad[i] - pads.end[i];
    if (full[i] - pads.begin[i] - pads.end[i] <= 0) ctx.fail("the pads leave an empty output");
  }
  y = pad_spatial(y, crop, 0.0);
  if (ctx.has_input(2)) {
    std::vector<int64_t> shape(x.dim(), 1);
    shape[1] = -1;
    y = y + ctx.input(2).reshape(shape);
  }
  return {y};
}

// ---- abstract semantics ----------------------------------------------------
// Conv and ConvTranspose are bilinear in (X, W): center/radius bounds with the
// lowering itself (bias left out) as f, so pads, groups, dilations and output shapes
// are exactly the concrete ones. Each output sums n = C_in/group * prod(kernel)
// products (an upper bound for ConvTranspose), plus the bias.

// Conv on a per-channel collapsed input: every output element sums, over its taps,
// W[o,c,k] * x (x in [l_c, u_c]) or W * 0 at a pad, so summing per tap the hull of
// W * [l_c, u_c] (and 0 when windows may pad) bounds every position at once.
std::optional<std::vector<IntervalTensor>> conv_collapsed(const AbstractContext& a, double n) {
  const IntervalTensor &x = a.input(0), &w = a.input(1);
  auto shape = inferred_shape(a, 0);
  if (a.node.op_type != "Conv" || !spatially_collapsed(x) || !shape || shape->size() != x.shape.size()) return std::nullopt;
  int64_t out_ch = w.shape[0], group = attr_int(a.node, "group", 1), per_group = w.shape[1];
  if (group <= 0 || out_ch % group != 0 || per_group * group != x.shape[1]) return std::nullopt;
  double limit = value_limit(a.float_type);
  auto [l, u] = channel_bounds(x, limit);
  std::vector<int64_t> tap_shape(w.shape.size(), 1);
  tap_shape[0] = out_ch;
  tap_shape[1] = per_group;
  // The input channel of tap (o, c') is (group of o) * per_group + c'.
  at::Tensor lx = l.view({group, per_group}).repeat_interleave(out_ch / group, 0).view(tap_shape);
  at::Tensor ux = u.view({group, per_group}).repeat_interleave(out_ch / group, 0).view(tap_shape);
  std::vector<int64_t> taps;
  for (int64_t d = 1; d < static_cast<int64_t>(w.shape.size()); ++d) taps.push_back(d);
  bool pad = may_pad(a.node);
  at::Tensor lo, hi, mag;
  if (w.exact()) {
    // Per tap min(W l, W u, 0) = W+ min(l, 0) + W- max(u, 0) (without the 0 when no
    // tap reads padding), so the kernel sums first: P = sum W+, N = sum W- per (o, c).
    at::Tensor wv = w.lo.clamp(-limit, limit);
    std::vector<int64_t> kernel;
    for (int64_t d = 2; d < static_cast<int64_t>(w.shape.size()); ++d) kernel.push_back(d);
    at::Tensor pos = wv.clamp_min(0.0), neg = wv.clamp_max(0.0);
    at::Tensor P = kernel.empty() ? pos : pos.sum(kernel), N = kernel.empty() ? neg : neg.sum(kernel);
    at::Tensor l2 = lx.reshape({out_ch, per_group}), u2 = ux.reshape({out_ch, per_group});
    at::Tensor lp = pad ? l2.clamp_max(0.0) : l2, up = pad ? u2.clamp_min(0.0) : u2;
    lo = (P * lp + N * up).sum(1);
    hi = (P * up + N * lp).sum(1);
    mag = ((P - N) * at::maximum(l2.abs(), u2.abs())).sum(1);
  } else {
    at::Tensor wl = w.lo.clamp(-limit, limit).expand(w.shape), wh = w.hi.clamp(-limit, limit).expand(w.shape);
    Bounds t = bounds_mul({wl, wh}, {lx, ux});
    if (pad) t = {t.lo.clamp_max(0.0), t.hi.clamp_min(0.0)};
    lo = t.lo.sum(taps);
    hi = t.hi.sum(taps);
    mag = (at::maximum(wl.abs(), wh.abs()) * at::maximum(lx.abs(), ux.abs())).sum(taps);
  }
  if (a.has_input(2)) {  // the bias joins the sum (n counts it)
    at::Tensor bl = a.input(2).lo.reshape({-1}).expand({out_ch}), bh = a.input(2).hi.reshape({-1}).expand({out_ch});
    lo = lo + bl;
    hi = hi + bh;
    mag = mag + at::maximum(bl.abs(), bh.abs());
  }
  double g = accumulation_gamma(n, a.float_type), tiny = n * kFloat32MinSubnormal;
  lo = lo - mag * g - tiny;
  hi = hi + mag * g + tiny;
  double inf = std::numeric_limits<double>::infinity();
  at::Tensor risky = (mag * (1 + g) > limit).logical_or(mag.isnan());  // the accumulator may overflow
  lo = at::where(risky, at::full_like(lo, -inf), lo);
  hi = at::where(risky, at::full_like(hi, inf), hi);
  std::vector<int64_t> cell = channel_cell(out_ch, shape->size());
  return std::vector<IntervalTensor>{make_interval({lo.view(cell), hi.view(cell)}, *shape, x.dtype, 0)};
}

std::vector<IntervalTensor> conv_interval(const AbstractContext& a) {
  const IntervalTensor &x = a.input(0), &w = a.input(1);
  if (!x.is_float() || !w.is_float()) a.fail("integer operands have no interval transfer");
  if (w.shape.size() < 3) a.fail("W must have spatial axes");
  bool transposed = a.node.op_type == "ConvTranspose";
  int64_t group = attr_int(a.node, "group", 1);
  double n = static_cast<double>(transposed ? w.shape[0] / std::max<int64_t>(group, 1) : w.shape[1]);
  for (size_t i = 2; i < w.shape.size(); ++i) n *= static_cast<double>(w.shape[i]);
  bool bias = a.has_input(2);
  if (bias) n += 1;
  if (auto fast = conv_collapsed(a, n)) return *fast;
  const Node& node = a.node;
  int64_t opset = a.opset;
  auto f = [&node, opset, transposed](const at::Tensor& xv, const at::Tensor& wv) {
    OpContext c{node, opset, {xv, wv}, at::kDouble};
    return (transposed ? lower_conv_transpose(c) : lower_conv(c))[0];
  };
  Bounds y = bilinear_bounds(f, center_radius(x, x.shape, a.float_type), center_radius(w, w.shape, a.float_type), n,
                             a.float_type);
  if (bias) {
    std::vector<int64_t> bias_shape(x.shape.size(), 1);
    bias_shape[1] = -1;
    y = add_bias(y, a.input(2), bias_shape, n, a.float_type);
  }
  return {make_interval(y, y.lo.sizes().vec(), x.dtype, 0)};
}

// Composes rows with a convolution kernel (the transposed convolution of A by W):
// A'[r, ci, k * stride + t] += sum_co A[r, co, k] W[co, ci, t], as one matrix product.
at::Tensor compose_kernel(const at::Tensor& A, const at::Tensor& W, const std::vector<int64_t>& stride) {
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

// Symbolic bounds through an ungrouped, undilated Conv with a constant kernel: the rows
// composed with the kernel, plus its bias and the float32 rounding of each output.
bool conv_symbolic(BackSubstitution& b, const Node& n, const LinearRows& p) {
  const IntervalTensor *x = b.interval(n.inputs[0]), *w = b.interval(n.inputs[1]);
  if (!x || !w || !w->exact() || attr_int(n, "group", 1) != 1 || p.spatial_rank() < 1) return false;
  int64_t s = p.spatial_rank();
  if (static_cast<int64_t>(x->shape.size()) != s + 2) return false;
  OpContext c{n, b.opset(), {}, at::kDouble};
  std::vector<int64_t> dil = spatial_attr(c, "dilations", s, 1), str = spatial_attr(c, "strides", s, 1);
  if (std::any_of(dil.begin(), dil.end(), [](int64_t d) { return d != 1; })) return false;
  at::Tensor W = w->lo;
  std::vector<int64_t> kernel(W.sizes().begin() + 2, W.sizes().end()), in(x->shape.begin() + 2, x->shape.end());
  SpatialPads pads = spatial_pads(c, in, kernel, str);
  bool pointwise = pads.zero() && std::all_of(kernel.begin(), kernel.end(), [](int64_t k) { return k == 1; }) &&
                   std::all_of(str.begin(), str.end(), [](int64_t v) { return v == 1; });
  if (p.tapped && !pointwise) return false;  // taps would mix: bounded here, tap by tap
  if (!b.spend(p.A.numel() * W.numel() / W.size(0))) return false;
  at::Tensor bias = n.inputs.size() > 2 && !n.inputs[2].empty() ? b.interval(n.inputs[2])->lo.reshape({-1}) : at::Tensor();
  // Float32: each output sums fan-in products and the bias, gamma_n of their magnitudes.
  double fan = static_cast<double>(W.numel() / W.size(0)) + (bias.defined() ? 1 : 0);
  at::Tensor absw = at::mv(W.abs().sum(spatial_dims(W)), channel_magnitude(*x));
  if (bias.defined()) absw = absw + bias.abs();
  if (b.may_overflow(absw)) return false;
  b.add_error(p, p.A, absw * b.rounding_gamma(fan, W.size(0) * p.A.numel() / (p.A.size(0) * p.A.size(1))) +
                          fan * kFloat32MinSubnormal);
  if (bias.defined()) b.add_constant(p, p.A, bias);
  LinearRows q = p.with_coefficients(compose_kernel(p.A, W, str));
  for (int64_t d = 0; d < s; ++d) {
    q.stride[d] = p.stride[d] * str[d];
    q.offset[d] = p.offset[d] * str[d] - pads.begin[d];
  }
  if (!pads.zero()) b.cross_zero_padding(p, q, n.inputs[0]);
  b.pass_to(n.inputs[0], std::move(q));
  return true;
}

// The kernel of each group as one matrix of taps, [group, O/group, prod(kernel) * C/group].
// Per group, the [O / group, C' x taps] matrix of its taps. Its columns come in the
// weight's own (c', tap) order, a view without a copy: singular values and the row and
// column sums of |M| do not depend on the columns' order.
at::Tensor group_tap_matrices(const at::Tensor& w, int64_t group) {
  return w.reshape({group, w.size(0) / group, -1});
}

// Conv sums, over the taps t, W_t times a strided shift of x (zero padding only drops
// terms, and one shift reads each position once): with M = [W_t1 ... W_tK] per group,
// ||y|| <= sigma(M) sqrt(sum_t ||shift_t x||^2) <= sigma(M) sqrt(overlap) ||x||, groups
// being blocks of a block-diagonal operator. The float32 sums err by gamma_n |W| |x|,
// and their partial sums stay below || |M| || sqrt(overlap) ||x|| + |b|, which must be
// finite for the bound to hold at all.
double conv_norm(const NormContext& c) {
  const AbstractContext& a = c.a;
  if (!a.has_input(1) || !a.input(1).exact() || !a.input(1).is_float() || c.outputs.empty() ||
      !c.outputs[0].lo.defined() || !std::isfinite(c.input(0)))
    return kNoNormBound;
  at::Tensor w = a.input(1).value;
  int64_t group = attr_int(a.node, "group", 1);
  size_t rank = static_cast<size_t>(std::max<int64_t>(w.dim() - 2, 0));
  auto strides = attr_ints_opt(a.node, "strides").value_or(std::vector<int64_t>(rank, 1));
  auto dilations = attr_ints_opt(a.node, "dilations").value_or(std::vector<int64_t>(rank, 1));
  if (rank == 0 || group < 1 || w.size(0) % group != 0 || strides.size() != rank || dilations.size() != rank)
    return kNoNormBound;
  double overlap = 1, fan = static_cast<double>(w.size(1));
  for (size_t d = 0; d < rank; ++d) {
    if (strides[d] < 1 || dilations[d] < 1) return kNoNormBound;
    overlap *= static_cast<double>(window_overlap(w.size(d + 2), strides[d], dilations[d]));
    fan *= static_cast<double>(w.size(d + 2));
  }
  at::Tensor taps = group_tap_matrices(w, group);
  double sigma = max_spectral_norm_bound(taps), magnitude = magnitude_norm_bound(taps);
  int64_t out = c.outputs[0].numel();
  double bias = 0;
  if (a.has_input(2)) {
    if (!a.input(2).exact()) return kNoNormBound;
    bias = broadcast_norm(a.input(2).value, out);
    fan += 1;
  }
  double spread = std::sqrt(overlap) * c.input(0), g = accumulation_gamma(fan, a.float_type);
  double partial = magnitude * spread + bias;
  if (!(partial * (1 + g) < value_limit(a.float_type))) return kNoNormBound;
  return sigma * spread + bias + g * partial + fan * kFloat32MinSubnormal * std::sqrt(static_cast<double>(out));
}

NANGUARD_REGISTER_OPS({
    with_norm(affine_op(with_symbolic(with(OpDef{"Conv", lower_conv}, conv_interval), conv_symbolic)), conv_norm),
    with(OpDef{"ConvTranspose", lower_conv_transpose}, conv_interval),
});

}  // namespace
}  // namespace nanguard
