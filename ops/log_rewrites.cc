// Log's rewrites: the unstable forms exporters and hand-written losses produce,
// replaced by the fused ops that compute the same function without the underflow
// (torch.onnx 1.13 exports F.logsigmoid and BCE-with-logits as log(sigmoid(z)) and
// log(1 - sigmoid(z))). Each keeps the whole input range: equal wherever the
// original is finite.
#include <cstring>
#include <optional>

#include "model/attributes.h"
#include "ops/rewrite.h"

namespace nanguard {
namespace {

// The Log's operand, as produced: the node behind identities.
const Node* operand_producer(const RewriteContext& ctx) {
  if (ctx.node.op_type != "Log" || ctx.node.inputs.empty() || ctx.attempt > 0) return nullptr;
  return producer_through_identities(ctx, ctx.node.inputs[0]);
}

// The new node computing the Log's value replaces it, under the Log's output name.
std::optional<RewriteApplied> replace_log(RewriteContext& ctx, const std::string& value, std::string description,
                                          std::string hint) {
  if (!ctx.patch.replace_node(ctx.node.outputs[0], value).ok()) return std::nullopt;
  return RewriteApplied{std::move(description), std::move(hint)};
}

std::vector<onnx::AttributeProto> copied(const Node& n, std::initializer_list<const char*> names) {
  std::vector<onnx::AttributeProto> out;
  for (const char* name : names)
    if (auto it = n.attributes.find(name); it != n.attributes.end()) out.push_back(it->second);
  return out;
}

std::optional<RewriteApplied> log_softmax(RewriteContext& ctx) {
  const Node* s = operand_producer(ctx);
  if (!s || s->op_type != "Softmax") return std::nullopt;
  std::string v = ctx.patch.add_node("LogSoftmax", {s->inputs[0]}, "log_softmax", ctx.node.outputs[0], copied(*s, {"axis"}));
  return replace_log(ctx, v, "Log(Softmax(z)) -> LogSoftmax(z)",
                     "use torch.log_softmax(z, dim) (F.log_softmax) instead of torch.log(torch.softmax(z, dim)); "
                     "with class labels, F.cross_entropy(logits, labels) does both");
}

// sigmoid(z) -> log is -softplus(-z); 1 - sigmoid(z) -> log is -softplus(z).
std::optional<RewriteApplied> log_sigmoid(RewriteContext& ctx) {
  const Node* s = operand_producer(ctx);
  if (!s || s->op_type != "Sigmoid") return std::nullopt;
  const std::string& at = ctx.node.outputs[0];
  std::string neg = ctx.patch.add_node("Neg", {s->inputs[0]}, "neg_z", at);
  std::string sp = ctx.patch.add_node("Softplus", {neg}, "softplus", at);
  std::string v = ctx.patch.add_node("Neg", {sp}, "log_sigmoid", at);
  return replace_log(ctx, v, "Log(Sigmoid(z)) -> -Softplus(-z)",
                     "use F.logsigmoid(z) instead of torch.log(torch.sigmoid(z)); for a BCE loss use "
                     "F.binary_cross_entropy_with_logits(z, y), but before export write it as "
                     "torch.relu(z) - z * y + torch.log1p(torch.exp(-z.abs())): torch.onnx exports the built-in "
                     "in the unstable log(sigmoid) form");
}

std::optional<RewriteApplied> log_one_minus_sigmoid(RewriteContext& ctx) {
  const Node* d = operand_producer(ctx);
  if (!d || d->op_type != "Sub" || d->inputs.size() != 2 || !constant_equal(ctx.graph, d->inputs[0], 1.0)) return std::nullopt;
  const Node* s = producer_through_identities(ctx, d->inputs[1]);
  if (!s || s->op_type != "Sigmoid") return std::nullopt;
  const std::string& at = ctx.node.outputs[0];
  std::string sp = ctx.patch.add_node("Softplus", {s->inputs[0]}, "softplus", at);
  std::string v = ctx.patch.add_node("Neg", {sp}, "log_one_minus_sigmoid", at);
  return replace_log(ctx, v, "Log(1 - Sigmoid(z)) -> -Softplus(z)",
                     "use F.logsigmoid(-z) instead of torch.log(1 - torch.sigmoid(z)); for a BCE loss see "
                     "F.binary_cross_entropy_with_logits (exported by hand as relu(z) - z*y + log1p(exp(-|z|)))");
}

// The reduced axes of a ReduceSum: the attribute (opset < 13) or the constant
// input; nullopt when they are not known or the op would be a no-op.
std::optional<std::vector<int64_t>> reduce_axes(const RewriteContext& ctx, const Node& r) {
  if (r.inputs.size() < 2 || r.inputs[1].empty()) {
    if (auto axes = attr_ints_opt(r, "axes")) return *axes;
    if (attr_int(r, "noop_with_empty_axes", 0) != 0) return std::nullopt;
    return std::vector<int64_t>{};
  }
  auto it = ctx.graph.initializers.find(r.inputs[1]);
  if (it == ctx.graph.initializers.end()) return std::nullopt;
  const onnx::TensorProto& t = it->second;
  std::vector<int64_t> axes(t.int64_data().begin(), t.int64_data().end());
  if (axes.empty() && t.has_raw_data()) {
    axes.resize(t.raw_data().size() / sizeof(int64_t));
    std::memcpy(axes.data(), t.raw_data().data(), axes.size() * sizeof(int64_t));
  }
  return axes;
}

std::optional<RewriteApplied> log_sum_exp(RewriteContext& ctx) {
  const Node* r = operand_producer(ctx);
  if (!r || r->op_type != "ReduceSum") return std::nullopt;
  const Node* e = producer_through_identities(ctx, r->inputs[0]);
  auto axes = reduce_axes(ctx, *r);
  if (!e || e->op_type != "Exp" || !axes) return std::nullopt;
  std::vector<onnx::AttributeProto> attrs = copied(*r, {"keepdims"});
  if (!axes->empty()) attrs.push_back(ints_attribute("axes", *axes));
  std::string v = ctx.patch.add_node("ReduceLogSumExp", {e->inputs[0]}, "log_sum_exp", ctx.node.outputs[0], attrs);
  return replace_log(ctx, v, "Log(ReduceSum(Exp(z))) -> ReduceLogSumExp(z)",
                     "use torch.logsumexp(z, dim) instead of torch.log(torch.sum(torch.exp(z), dim))");
}

std::optional<RewriteApplied> log_one_plus_exp(RewriteContext& ctx) {
  const Node* a = operand_producer(ctx);
  if (!a || a->op_type != "Add" || a->inputs.size() != 2) return std::nullopt;
  for (int one : {0, 1}) {
    if (!constant_equal(ctx.graph, a->inputs[one], 1.0)) continue;
    const Node* e = producer_through_identities(ctx, a->inputs[1 - one]);
    if (!e || e->op_type != "Exp") continue;
    std::string v = ctx.patch.add_node("Softplus", {e->inputs[0]}, "softplus", ctx.node.outputs[0]);
    return replace_log(ctx, v, "Log(1 + Exp(z)) -> Softplus(z)", "use F.softplus(z) instead of torch.log(1 + torch.exp(z))");
  }
  return std::nullopt;
}

NANGUARD_REGISTER_REWRITES({
    Rewrite{"log-softmax", log_softmax},
    Rewrite{"log-sigmoid", log_sigmoid},
    Rewrite{"log-one-minus-sigmoid", log_one_minus_sigmoid},
    Rewrite{"log-sum-exp", log_sum_exp},
    Rewrite{"log-one-plus-exp", log_one_plus_exp},
});

}  // namespace
}  // namespace nanguard
