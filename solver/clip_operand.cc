// Graph edits that clip tensors: the immediate fix's Clip of one operand, and the
// range modes' Clip of inputs and initializers.
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/core.h>

#include "analyzer/half_grid.h"
#include "ops/op_registry.h"
#include "solver/fix_internal.h"

namespace nanguard {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The types whose clip bounds are the analysis' own float32 / float64 values (half types: issue of their own).
bool clip_supported(int32_t t) {
  return t == onnx::TensorProto::FLOAT || t == onnx::TensorProto::DOUBLE || t == onnx::TensorProto::FLOAT16 ||
         t == onnx::TensorProto::BFLOAT16;
}

// A bound of a 16-bit float tensor moved onto its grid, inwards (`up` for a lower
// bound or a least magnitude): the clip's constant is then exact in the type and still
// inside the safe domain. Other types keep the bound.
double on_grid(double v, int32_t type, bool up) {
  at::ScalarType half = half_type_of(type);
  if (half == at::kFloat || !std::isfinite(v)) return v;
  return round_on_grid(at::scalar_tensor(v, at::kDouble), half, up).item<double>();
}

// Clip(x, lo, hi), with a side left open when it is infinite; opset < 11 takes the
// bounds as attributes.
std::string add_clip(ModelPatch& p, const std::string& x, double lo, double hi, int32_t type, const std::string& hint,
                     const std::string& before) {
  if (p.opset() < 11) {
    std::vector<onnx::AttributeProto> attrs;
    if (std::isfinite(lo)) attrs.push_back(float_attribute("min", static_cast<float>(lo)));
    if (std::isfinite(hi)) attrs.push_back(float_attribute("max", static_cast<float>(hi)));
    return p.add_node("Clip", {x}, hint, before, attrs);
  }
  std::vector<std::string> in{x, std::isfinite(lo) ? p.add_scalar(hint + "_min", lo, type) : ""};
  if (std::isfinite(hi)) in.push_back(p.add_scalar(hint + "_max", hi, type));
  return p.add_node("Clip", in, hint, before);
}

// The node's numerator (-1: 1) and divisor, when its op is a quotient (OpDef::quotient)
// and the node has those inputs.
std::optional<QuotientOperands> quotient_operands(const Node& node) {
  const OpDef* def = OpRegistry::instance().find(node.op_type, node.domain);
  if (!def || !def->quotient) return std::nullopt;
  int inputs = static_cast<int>(node.inputs.size());
  if (def->quotient->divisor >= inputs || def->quotient->numerator >= inputs) return std::nullopt;
  return def->quotient;
}

// x / y -> (x * s) / max(|y|, m) and 1 / y -> s / max(|y|, m), s = -1 where y < 0 else
// 1: exactly x / y wherever |y| >= m, and an interval analysis sees a divisor >= m.
Status sign_preserving_divisor(ModelPatch& p, const Node& node, double m, int32_t type) {
  std::optional<QuotientOperands> quotient = quotient_operands(node);
  if (!quotient) return Status::Error(fmt::format("{} ({}): a divisor whose range crosses 0 is clamped away from 0 only for quotient ops (x / y, 1 / x)", node.name, node.op_type));
  if (p.opset() < 9) return Status::Error("the sign-preserving clamp needs Where (opset 9)");
  bool div = quotient->numerator >= 0;
  const std::string& at = node.outputs[0];
  const std::string& y = node.inputs[quotient->divisor];
  std::string zero = p.add_scalar("zero", 0, type), one = p.add_scalar("one", 1, type), mone = p.add_scalar("minus_one", -1, type);
  std::string neg = p.add_node("Less", {y, zero}, "divisor_negative", at);
  std::string s = p.add_node("Where", {neg, mone, one}, "divisor_sign", at);
  std::string mag = p.add_node("Max", {p.add_node("Abs", {y}, "divisor_abs", at), p.add_scalar("min_magnitude", m, type)},
                               "divisor_clamped", at);
  std::string num = div ? p.add_node("Mul", {node.inputs[quotient->numerator], s}, "signed_numerator", at) : s;
  std::string q = p.add_node("Div", {num, mag}, "safe_quotient", at);
  return p.replace_node(at, q);
}

}  // namespace

double kept_share(double lo, double hi, double nlo, double nhi) {
  double w = hi - lo;
  if (!(w > 0) || !std::isfinite(w)) return nhi >= nlo ? 1.0 : 0.0;
  return std::max(0.0, std::min(1.0, (nhi - nlo) / w));
}

Result<RangeChange> clip_operand(ModelPatch& p, const Graph& graph, const Node& node, const SafeDomain& d, const Range& r) {
  const std::string& x = node.inputs[d.operand];
  int32_t type = p.elem_type(x);
  // An intermediate tensor has no declared type in the model: the loader inferred it
  // (a float16 Softmax output), and its clip constants must be on that type's grid.
  if (const TensorType* t = type == 0 ? graph.type_of(x) : nullptr) type = t->elem_type;
  if (type == 0) type = onnx::TensorProto::FLOAT;
  if (!clip_supported(type)) return Status::Error(fmt::format("{}: operand '{}' is not a float tensor; clips of other types are not supported", node.name, x));
  double lo = on_grid(d.lo, type, true), hi = on_grid(d.hi, type, false), least = on_grid(d.min_magnitude, type, true);
  RangeChange c{x, r.lo, r.hi, std::max(r.lo, lo), std::min(r.hi, hi), 1};
  if (least > 0) {
    if (r.lo >= 0) lo = std::max(lo, least);
    else if (r.hi <= 0) hi = std::min(hi, -least);
    else {
      if (Status s = sign_preserving_divisor(p, node, least, type); !s.ok()) return s;
      double w = r.hi - r.lo;
      c.kept = w > 0 ? std::max(0.0, 1 - (std::min(r.hi, least) - std::max(r.lo, -least)) / w) : 1;
      return c;
    }
    c.after_lo = std::max(r.lo, lo);
    c.after_hi = std::min(r.hi, hi);
  }
  if (c.after_lo > c.after_hi) return Status::Error(fmt::format("{}: the range of '{}' lies outside the safe domain ({})", node.name, x, d.text));
  double clip_lo = r.lo < lo ? lo : -kInf, clip_hi = r.hi > hi ? hi : kInf;
  std::string clipped = add_clip(p, x, clip_lo, clip_hi, type, "clip", node.outputs[0]);
  if (Status s = p.set_input(node.outputs[0], d.operand, clipped); !s.ok()) return s;
  c.kept = kept_share(r.lo, r.hi, c.after_lo, c.after_hi);
  return c;
}

void inline_initializers(ModelPatch& patch, const Graph& graph) {
  onnx::ModelProto m = patch.proto();
  for (auto& init : *m.mutable_graph()->mutable_initializer()) {
    if (init.data_location() != onnx::TensorProto::EXTERNAL) continue;
    auto it = graph.initializers.find(init.name());
    if (it == graph.initializers.end()) continue;
    std::string name = init.name();
    init = it->second;
    init.set_name(name);
    init.clear_external_data();
    init.clear_data_location();
  }
  patch = ModelPatch(std::move(m));
}

Status apply_range_fix(RangeFix& fix, ModelPatch& patch) {
  for (RangeChange& c : fix.changes) {
    if (c.after_lo <= c.before_lo && c.after_hi >= c.before_hi) continue;
    int32_t type = patch.elem_type(c.tensor);
    if (type == 0) type = onnx::TensorProto::FLOAT;
    if (!clip_supported(type)) return Status::Error(fmt::format("'{}' is not a float tensor", c.tensor));
    std::string hint = "range/" + c.tensor;
    const onnx::NodeProto* first = nullptr;
    for (const auto& n : patch.proto().graph().node()) {
      for (const auto& in : n.input()) first = first ? first : (in == c.tensor ? &n : nullptr);
      if (first) break;
    }
    if (!first) continue;
    if (c.after_lo > c.before_lo) c.after_lo = on_grid(c.after_lo, type, true);
    if (c.after_hi < c.before_hi) c.after_hi = on_grid(c.after_hi, type, false);
    std::string clipped = add_clip(patch, c.tensor, c.after_lo > c.before_lo ? c.after_lo : -kInf,
                                   c.after_hi < c.before_hi ? c.after_hi : kInf, type, hint, std::string(first->output(0)));
    patch.replace_uses(c.tensor, clipped, clipped);
  }
  return Status::Ok();
}

}  // namespace nanguard
