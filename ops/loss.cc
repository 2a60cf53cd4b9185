// Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, with reductions
// none/sum/mean, optional class weights and ignore_index.
// 'mean' divides by the total weight of the non-ignored targets (by their count
// without weights, by N*D1*...*Dk without ignore_index either). When every target
// is ignored that total is 0 and the loss is 0/0 = NaN, as in ONNX's reference and
// PyTorch: a real hazard of training code, so it is kept, not guarded.
#include <optional>

#include <ATen/ATen.h>

#include "ops/op_registry.h"

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

NANGUARD_REGISTER_OPS({
    OpDef{"NegativeLogLikelihoodLoss", lower_nll},
    OpDef{"SoftmaxCrossEntropyLoss", lower_sce},
});

}  // namespace
}  // namespace nanguard
