// Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, with reductions
// none/sum/mean, optional class weights and ignore_index.
// 'mean' divides by the total weight of the non-ignored targets (by their count
// without weights, by N*D1*...*Dk without ignore_index either). When every target
// is ignored that total is 0 and the loss is 0/0 = NaN, as in ONNX's reference and
// PyTorch: a real hazard of training code, so it is kept, not guarded.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/core.h>

#include <ATen/ATen.h>

#include "ops/type_limit.h"
#include "ops/interval_arith.h"
#include "ops/op_registry.h"
#include "ops/softmax.h"

namespace nanguard {
namespace {

using Tensors = std::vector<at::Tensor>;

// The loss of `log_prob` [N, C, D1...] against `target` [N, D1...]. Ignored targets
// give 0 via at::where (not a multiplication by 0, which would turn a NaN or INF
// log-probability at an ignored position into NaN) and are never indexed, so an
// ignore_index outside [0, C) is fine. Other out-of-range targets throw.
at::Tensor nll(const OpContext& ctx, const at::Tensor& log_prob, const at::Tensor& target_in,
               const at::Tensor& weight) {
  if (log_prob.dim() < 2 || target_in.dim() != log_prob.dim() - 1)
    ctx.fail("input must be [N, C, D1...] and target [N, D1...]");
  at::Tensor target = target_in.to(at::kLong);
  std::optional<at::Tensor> mask;
  if (has_attr(ctx.node, "ignore_index")) mask = target != attr_int(ctx.node, "ignore_index");
  at::Tensor index = mask ? at::where(*mask, target, at::zeros_like(target)) : target;
  at::Tensor loss = -log_prob.gather(1, index.unsqueeze(1)).squeeze(1);
  if (mask) loss = at::where(*mask, loss, at::zeros_like(loss));
  std::optional<at::Tensor> total;  // the divisor of 'mean' when not the count
  if (weight.defined()) {
    at::Tensor w = weight.index_select(0, index.reshape({-1})).reshape(index.sizes());
    if (mask) w = at::where(*mask, w, at::zeros_like(w));
    loss = loss * w;
    total = w.sum();
  } else if (mask) {
    total = mask->sum().to(loss.scalar_type());
  }
  std::string reduction = attr_string(ctx.node, "reduction", "mean");
  if (reduction == "none") return loss;
  if (reduction == "sum") return loss.sum();
  if (reduction == "mean") return total ? loss.sum() / *total : loss.mean();
  ctx.fail("reduction '" + reduction + "' is not supported");
}

Tensors lower_nll(const OpContext& ctx) {
  at::Tensor weight = ctx.has_input(2) ? ctx.input(2) : at::Tensor();
  return {nll(ctx, ctx.input(0), ctx.input(1), weight)};
}

// SoftmaxCrossEntropyLoss is LogSoftmax over the class axis followed by
// NegativeLogLikelihoodLoss (the spec's function body). The stable at::log_softmax
// gives -200 where a naive log(softmax) would underflow to log(0) = -inf.
Tensors lower_sce(const OpContext& ctx) {
  at::Tensor log_prob = at::log_softmax(ctx.input(0), 1);
  at::Tensor weight = ctx.has_input(2) ? ctx.input(2) : at::Tensor();
  return {nll(ctx, log_prob, ctx.input(1), weight), log_prob};
}

// ---- abstract semantics ------------------------------------------------------
// Per-element losses are -log_prob at the target class (times its weight): exact
// gathers when the targets are known, the hull over the classes otherwise, and 0
// where the target may be ignore_index. 'mean' with non-negative weights is a
// weighted average of the per-element losses, so it stays within their hull; it is
// 0 / 0 when the total weight can be 0 (`loss-zero-weight`).

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kU = 5.9604644775390625e-08;  // 2^-24: float32 unit roundoff
constexpr double kTiny = kFloat32MinSubnormal;

double gamma(double n) { return n * kU / (1 - n * kU); }

Bounds cells(const IntervalTensor& x) {
  auto b = at::broadcast_tensors({x.lo, x.hi});
  at::Tensor lo = b[0], hi = b[1];
  while (lo.dim() < static_cast<int64_t>(x.shape.size())) { lo = lo.unsqueeze(0); hi = hi.unsqueeze(0); }
  return {lo.clamp(-kFloat32Max, kFloat32Max), hi.clamp(-kFloat32Max, kFloat32Max)};
}

struct LossParts {
  Bounds elem;        // per-element loss, cells of the target's shape (0 where ignored)
  Bounds unweighted;  // -log_prob at the target, ignoring weights and ignore_index
  Bounds weight;      // the selected weight per element (0 where ignored); 1 without weights
  at::Tensor maybe_ignored, surely_ignored;  // per element
  std::vector<int64_t> target_shape;
  double count = 1;   // target elements
  double least_weight = 1;  // the least positive value a class weight may take
  bool weighted = false, has_ignore = false;
};

LossParts loss_parts(const AbstractContext& a, const Bounds& lp_in, const std::vector<int64_t>& in_shape) {
  const IntervalTensor& t = a.input(1);
  if (in_shape.size() < 2 || t.shape.size() != in_shape.size() - 1) a.fail("input must be [N, C, D1...] and target [N, D1...]");
  LossParts r;
  r.target_shape = t.shape;
  for (int64_t d : t.shape) r.count *= static_cast<double>(d);
  int64_t classes = in_shape[1];
  r.has_ignore = has_attr(a.node, "ignore_index");
  int64_t ignore = r.has_ignore ? attr_int(a.node, "ignore_index") : 0;
  r.weighted = a.has_input(2);
  Bounds w = r.weighted ? cells(a.input(2)) : Bounds{at::ones({1}, at::kDouble), at::ones({1}, at::kDouble)};
  if (r.weighted) r.least_weight = at::where(w.hi > 0, w.lo.clamp_min(kTiny), kInf).min().item<double>();
  Bounds tc = cells(t);
  if (t.exact()) {
    at::Tensor target = t.value.to(at::kLong);
    r.surely_ignored = r.has_ignore ? target == ignore : at::zeros_like(target, at::kBool);
    r.maybe_ignored = r.surely_ignored;
    at::Tensor index = at::where(r.surely_ignored, at::zeros_like(target), target).clamp(0, classes - 1);
    at::Tensor lo = lp_in.lo.expand(in_shape).gather(1, index.unsqueeze(1)).squeeze(1);
    at::Tensor hi = lp_in.hi.expand(in_shape).gather(1, index.unsqueeze(1)).squeeze(1);
    r.unweighted = {-hi, -lo};
    at::Tensor flat = index.reshape({-1});
    r.weight = r.weighted ? Bounds{w.lo.expand({classes}).index_select(0, flat).reshape(index.sizes()),
                                   w.hi.expand({classes}).index_select(0, flat).reshape(index.sizes())}
                          : Bounds{at::ones(index.sizes(), at::kDouble), at::ones(index.sizes(), at::kDouble)};
  } else {
    r.maybe_ignored = r.has_ignore ? (tc.lo <= ignore).logical_and(tc.hi >= ignore) : at::zeros_like(tc.lo, at::kBool);
    r.surely_ignored = r.has_ignore ? (tc.lo == ignore).logical_and(tc.hi == ignore) : at::zeros_like(tc.lo, at::kBool);
    // Only the classes within the target's range (clamped to [0, C)) are reachable.
    std::vector<int64_t> view(in_shape.size(), 1);
    view[1] = classes;
    at::Tensor cls = at::arange(classes, at::kDouble).reshape(view);
    at::Tensor reach = (cls >= tc.lo.clamp(0, classes - 1).unsqueeze(1)).logical_and(cls <= tc.hi.clamp(0, classes - 1).unsqueeze(1));
    std::vector<int64_t> sizes = lp_in.lo.sizes().vec();
    sizes[1] = classes;
    r.unweighted = {-at::where(reach, lp_in.hi.expand(sizes), -kInf).amax(1), -at::where(reach, lp_in.lo.expand(sizes), kInf).amin(1)};
    if (r.weighted) {
      std::vector<int64_t> wview(in_shape.size(), 1);
      wview[1] = classes;
      at::Tensor wl = w.lo.expand({classes}).reshape(wview), wh = w.hi.expand({classes}).reshape(wview);
      r.weight = {at::where(reach, wl, kInf).amin(1), at::where(reach, wh, -kInf).amax(1)};
    } else {
      r.weight = {at::ones_like(tc.lo), at::ones_like(tc.lo)};
    }
  }
  at::Tensor zero = at::zeros({1}, at::kDouble);
  Bounds wsel = r.weight;
  // Ignored elements weigh 0 and lose 0.
  wsel = {at::where(r.surely_ignored, zero, at::where(r.maybe_ignored, at::minimum(wsel.lo, zero), wsel.lo)),
          at::where(r.surely_ignored, zero, at::where(r.maybe_ignored, at::maximum(wsel.hi, zero), wsel.hi))};
  r.weight = wsel;
  Bounds l = r.weighted ? bounds_mul(r.unweighted, wsel) : r.unweighted;
  if (r.weighted) l = {l.lo - l.lo.abs() * (2 * kU) - kTiny, l.hi + l.hi.abs() * (2 * kU) + kTiny};
  r.elem = {at::where(r.surely_ignored, zero, at::where(r.maybe_ignored, at::minimum(l.lo, zero), l.lo)),
            at::where(r.surely_ignored, zero, at::where(r.maybe_ignored, at::maximum(l.hi, zero), l.hi))};
  return r;
}

// Sum over the target elements (a cell counts for the elements it stands for).
at::Tensor total(const at::Tensor& cellwise, const std::vector<int64_t>& shape) {
  at::Tensor t = cellwise;
  double k = 1;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) == 1) k *= static_cast<double>(shape[d]);
  return t.sum() * k;
}

// The total weight of 'mean' (the count of non-ignored targets without weights).
Bounds total_weight(const LossParts& p) {
  at::Tensor lo = total(p.weight.lo.expand_as(p.elem.lo), p.target_shape), hi = total(p.weight.hi.expand_as(p.elem.lo), p.target_shape);
  double g = gamma(p.count);
  return {lo - lo.abs() * g, hi + hi.abs() * g};
}

// The least a positive total weight can be when no weight is negative: the least
// positive class weight (at least the smallest subnormal), or the interval's own
// lower end when that is larger. 0 when weights may be negative.
double least_positive_total(const LossParts& p) {
  if (p.weight.lo.min().item<double>() < 0) return 0;
  return std::max(p.least_weight, total_weight(p).lo.item<double>());
}

IntervalTensor reduce_loss(const AbstractContext& a, const LossParts& p, at::ScalarType dtype) {
  std::string reduction = attr_string(a.node, "reduction", "mean");
  if (reduction == "none") return round_out(IntervalTensor::of_bounds(p.elem.lo, p.elem.hi, p.target_shape, dtype), 0);
  at::Tensor mag = at::maximum(p.elem.lo.abs(), p.elem.hi.abs());
  double g = gamma(p.count);
  at::Tensor err = total(mag, p.target_shape) * g + kTiny;
  Bounds sum{total(p.elem.lo, p.target_shape) - err, total(p.elem.hi, p.target_shape) + err};
  Bounds out = sum;
  if (reduction == "mean") {
    if (!p.weighted && !p.has_ignore) {
      out = {sum.lo / p.count, sum.hi / p.count};
      out = {out.lo - out.lo.abs() * kU, out.hi + out.hi.abs() * kU};
    } else if (!p.weighted || p.weight.lo.min().item<double>() >= 0) {
      // A weighted average of the per-element losses (the safe state: total > 0). Each
      // product w * l may round to a multiple of the smallest subnormal, an absolute
      // error that the division by a tiny total weight magnifies (a positive total is
      // at least that subnormal).
      at::Tensor lo = p.unweighted.lo.min(), hi = p.unweighted.hi.max();
      double products = p.weighted ? p.count * kTiny / std::max(least_positive_total(p), kTiny) : 0;
      at::Tensor m = at::maximum(lo.abs(), hi.abs()) * (3 * g + 4 * kU) + kTiny + products;
      out = {lo - m, hi + m};
    } else {
      Bounds w = total_weight(p);
      if ((w.lo <= 0).logical_and(w.hi >= 0).item<bool>()) return IntervalTensor::top({}, dtype);
      out = bounds_div_nonzero(sum, w);
      out = {out.lo - out.lo.abs() * (2 * kU), out.hi + out.hi.abs() * (2 * kU)};
    }
    // A total weight past FLT_MAX is INF in float32, and the mean over it is +-0
    // (weights of -3.3e38; found by fuzz_soundness).
    if (p.weighted) {
      Bounds w = total_weight(p);
      if (std::max(std::abs(w.lo.item<double>()), std::abs(w.hi.item<double>())) > kFloat32Max)
        out = {at::minimum(out.lo, at::zeros_like(out.lo)), at::maximum(out.hi, at::zeros_like(out.hi))};
    }
  } else if (reduction != "sum") {
    a.fail("reduction '" + reduction + "' is not supported");
  }
  return IntervalTensor::of_bounds(out.lo.reshape({}), out.hi.reshape({}), {}, dtype);
}

// Where the float32 computation can pass FLT_MAX before its result: log_prob
// itself (x - max over logits more than FLT_MAX apart is -inf), a weight times a
// loss, or the sum that 'sum' and 'mean' take (a mean in range over an INF sum).
std::optional<std::string> inner_overflow(const Bounds& lp, const LossParts& p, const std::string& reduction) {
  if (lp.lo.min().item<double>() < -kFloat32Max) return "log_prob below -3.4028235e38 (logits more than FLT_MAX apart): -inf";
  at::Tensor mag = at::maximum(p.elem.lo.abs(), p.elem.hi.abs());
  if (mag.max().item<double>() > kFloat32Max) return std::string("weight * log_prob exceeds 3.4028235e38");
  if (reduction == "none") return std::nullopt;
  if (total(mag, p.target_shape).item<double>() * (1 + gamma(p.count)) > kFloat32Max)
    return "the float32 sum of the losses ('" + reduction + "') exceeds 3.4028235e38";
  return std::nullopt;
}

std::vector<HazardReport> loss_hazards(const AbstractContext& a, const Bounds& lp, const std::vector<int64_t>& in_shape) {
  std::vector<HazardReport> out;
  const IntervalTensor& t = a.input(1);
  int64_t classes = in_shape[1];
  bool has_ignore = has_attr(a.node, "ignore_index");
  double ignore = has_ignore ? static_cast<double>(attr_int(a.node, "ignore_index")) : std::nan("");
  Bounds tc = cells(t);
  // Targets outside [0, C) other than ignore_index make the gather throw.
  at::Tensor below = (tc.lo < 0).logical_and(((tc.lo == ignore).logical_and(tc.hi.clamp_max(-1) == ignore)).logical_not());
  at::Tensor above = (tc.hi > classes - 1).logical_and(((tc.lo.clamp_min(classes) == ignore).logical_and(tc.hi == ignore)).logical_not());
  at::Tensor bad = below.logical_or(above);
  if (bad.any().item<bool>()) {
    bool definite = t.exact() && bad.all().item<bool>();
    out.push_back(HazardReport{"index-out-of-range", HazardKind::kCrash, 1, "target outside [0, C) and not ignore_index", definite});
    return out;
  }
  LossParts p = loss_parts(a, lp, in_shape);
  std::string reduction = attr_string(a.node, "reduction", "mean");
  if (std::optional<std::string> why = inner_overflow(lp, p, reduction))
    out.push_back(HazardReport{"overflow", HazardKind::kForward, 0, *why, false});
  // A trainable class weight's gradient sums its elements' losses (over the total
  // weight for 'mean', less the mean): past FLT_MAX with losses near it.
  if (p.weighted && !a.input(2).exact() && reduction != "none") {
    at::Tensor l = at::maximum(p.unweighted.lo.abs(), p.unweighted.hi.abs());
    double scale = reduction == "mean" ? 2 / std::max(least_positive_total(p), kTiny) : 1;
    double wl = input_limit(a, 2);  // the weight's gradient has its type
    if (total(l.expand_as(p.elem.lo), p.target_shape).item<double>() * scale * (1 + gamma(p.count)) > wl)
      out.push_back(HazardReport{"loss-weight-gradient-overflow", HazardKind::kGradient, 2,
                                 fmt::format("a class weight's gradient, a sum of its losses, exceeds {:.8g}", wl), false});
  }
  if (reduction != "mean" || (!p.weighted && !p.has_ignore)) return out;
  Bounds w = total_weight(p);
  // The backward pass divides by the total weight first (grad / total, then times
  // each weight): past FLT_MAX when a nonzero total is under max(1, |w|) / FLT_MAX.
  double wmax = std::max(1.0, at::maximum(p.weight.lo.abs(), p.weight.hi.abs()).max().item<double>());
  double wlo = w.lo.item<double>(), whi = w.hi.item<double>(), r = wmax / std::min(input_limit(a, 0), input_limit(a, 2));
  bool tiny = p.weight.lo.min().item<double>() >= 0 ? whi > 0 && least_positive_total(p) < r
                                                     : wlo < r && whi > -r && !(wlo == 0 && whi == 0);
  if (p.weighted && tiny)
    out.push_back(HazardReport{"loss-mean-gradient-overflow", HazardKind::kGradient, 2,
                               fmt::format("'mean' over a nonzero total weight of magnitude under {:.3g}: "
                                           "the gradient 1 / total overflows", r),
                               false});
  bool zero_possible = (w.lo <= 0).logical_and(w.hi >= 0).item<bool>();
  if (zero_possible) {
    bool definite = (w.lo == 0).logical_and(w.hi == 0).item<bool>();
    out.push_back(HazardReport{"loss-zero-weight", HazardKind::kForward, p.has_ignore && !p.weighted ? 1 : 2,
                               "'mean' over a total weight of 0 (every target ignored or of weight 0): 0 / 0", definite});
  }
  return out;
}

std::vector<IntervalTensor> nll_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  LossParts p = loss_parts(a, cells(x), x.shape);
  return {reduce_loss(a, p, x.dtype)};
}

std::vector<HazardReport> nll_hazards(const AbstractContext& a) {
  return loss_hazards(a, cells(a.input(0)), a.input(0).shape);
}

// log_softmax over the class axis first (ops/softmax.h), then the NLL above.
Bounds sce_log_prob(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  if (x.shape.size() < 2) a.fail("input must be [N, C, D1...]");
  Bounds c = cells(x);
  std::vector<int64_t> sizes = c.lo.sizes().vec();
  sizes[1] = x.shape[1];
  return log_softmax_bounds(c.lo.expand(sizes), c.hi.expand(sizes), 1);
}

std::vector<IntervalTensor> sce_interval(const AbstractContext& a) {
  const IntervalTensor& x = a.input(0);
  Bounds lp = sce_log_prob(a);
  LossParts p = loss_parts(a, lp, x.shape);
  std::vector<IntervalTensor> out{reduce_loss(a, p, x.dtype), IntervalTensor::of_bounds(lp.lo, lp.hi, x.shape, x.dtype)};
  out.resize(a.node.outputs.size());
  return out;
}

std::vector<HazardReport> sce_hazards(const AbstractContext& a) { return loss_hazards(a, sce_log_prob(a), a.input(0).shape); }

// Targets must lie in [0, C) with C input 0's shape; the total weight is a sum over
// the batch.
std::vector<HazardFacet> loss_facets() {
  return {opaque_facet("index-out-of-range", HazardKind::kCrash, "the class bound C is input 0's shape, which ranges do not carry"),
          slice_facet("loss-zero-weight", HazardKind::kForward, "the total weight is a sum over the batch, not one element"),
          slice_facet("loss-mean-gradient-overflow", HazardKind::kGradient,
                      "the total weight is a sum over the batch, not one element"),
          slice_facet("loss-weight-gradient-overflow", HazardKind::kGradient,
                      "a class weight's gradient sums the losses of every element of its class")};
}

NANGUARD_REGISTER_OPS({
    with_facets(with(OpDef{"NegativeLogLikelihoodLoss", lower_nll}, nll_interval, nll_hazards), loss_facets()),
    with_facets(with(OpDef{"SoftmaxCrossEntropyLoss", lower_sce}, sce_interval, sce_hazards), loss_facets()),
});

}  // namespace
}  // namespace nanguard
