#include "ops/op_registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <unordered_set>

#include "ops/overflow_facet.h"

namespace nanguard {

LowerFn tensors_via_values(ValueLowerFn lower) {
  return [lower = std::move(lower)](const OpContext& c) {
    OpContext vc = c;
    vc.values.clear();
    for (const at::Tensor& t : c.inputs) vc.values.push_back(OpValue::of(t));
    vc.run_subgraph_values = [&c](const std::string& attr, const std::vector<OpValue>& in) {
      std::vector<at::Tensor> tensors;
      for (const OpValue& v : in) tensors.push_back(v.tensor);
      std::vector<OpValue> out;
      for (const at::Tensor& t : c.run_subgraph(attr, tensors)) out.push_back(OpValue::of(t));
      return out;
    };
    std::vector<at::Tensor> out;
    for (const OpValue& v : lower(vc)) {
      if (!v.is_tensor()) c.fail("returns a " + v.describe() + ", which only the executor runs");
      out.push_back(v.tensor);
    }
    return out;
  };
}

OpRegistry& OpRegistry::instance() {
  static OpRegistry registry;
  return registry;
}

void OpRegistry::add(OpDef def) {
  if (find(def.op_type, def.domain)) {
    std::fprintf(stderr, "nanguard: internal error: op %s registered twice\n", def.op_type.c_str());
    std::abort();
  }
  defs_.push_back(std::move(def));
}

const OpDef* OpRegistry::find(const std::string& op_type, const std::string& domain) const {
  for (const OpDef& d : defs_)
    if (d.op_type == op_type && d.domain == domain) return &d;
  return nullptr;
}

std::vector<std::string> OpRegistry::op_types() const {
  std::vector<std::string> names;
  for (const OpDef& d : defs_) names.push_back(d.domain.empty() ? d.op_type : d.domain + "." + d.op_type);
  std::sort(names.begin(), names.end());
  return names;
}

OpRegistrar::OpRegistrar(std::vector<OpDef> defs) {
  for (OpDef& d : defs) OpRegistry::instance().add(std::move(d));
}

const HazardFacet* OpDef::facet(const std::string& hazard) const {
  for (const HazardFacet& f : facets)
    if (f.hazard == hazard) return &f;
  return nullptr;
}

HazardFacet bounded_overflow_facet(std::string why) {
  HazardFacet f{"overflow", HazardKind::kForward, nullptr, std::move(why), {}, target_output_not_finite()};
  f.bounded_operands = true;
  return f;
}

namespace {

HazardFacet overflow_facet() {
  return bounded_overflow_facet("the result's magnitude depends on every operand together; the fixer bounds them all");
}

// Hazards the analyzer itself reports for any op: a float result past the float32
// limit, and an op it cannot follow.
const std::vector<HazardFacet>& generic_facets() {
  static const std::vector<HazardFacet> kGeneric = {
      overflow_facet(),
      HazardFacet{"unsupported", HazardKind::kForward, nullptr, "the op has no abstract semantics", {}, nullptr,
                  "the op has no abstract semantics"},
      opaque_facet("gradient-overflow", HazardKind::kGradient,
                   "a bound of the backward pass, which later ops scale: no one operand's clip or unit target decides it"),
      opaque_facet("gradient-unbounded", HazardKind::kGradient, "the op has no backward bound: there is no proof to aim for"),
      HazardFacet{"infinite-operand", HazardKind::kForward, nullptr,
                  "an operand may hold a deliberate +-inf (a mask fill) that this op's semantics do not follow", {},
                  target_output_not_finite()},
      HazardFacet{"nan-from-infinities", HazardKind::kForward, nullptr,
                  "inf - inf or 0 * inf of operands that hold +-inf: a whole operand pair decides it",
                  {"finite-mask-fill"}, target_output_not_finite()},
  };
  return kGeneric;
}

}  // namespace

const HazardFacet* find_facet(const std::string& op_type, const std::string& domain, const std::string& hazard) {
  if (const OpDef* d = OpRegistry::instance().find(op_type, domain))
    if (const HazardFacet* f = d->facet(hazard)) return f;
  for (const HazardFacet& f : generic_facets())
    if (f.hazard == hazard) return &f;
  return nullptr;
}

namespace {

void collect_unsupported(const Graph& graph, std::vector<std::string>& missing, std::unordered_set<std::string>& seen) {
  for (const Node& n : graph.nodes) {
    std::string name = n.domain.empty() ? n.op_type : n.domain + "." + n.op_type;
    if (!OpRegistry::instance().find(n.op_type, n.domain) && seen.insert(name).second) missing.push_back(name);
    for (const auto& [attr, sub] : n.subgraphs) collect_unsupported(*sub, missing, seen);
  }
}

}  // namespace

// Subgraphs included: a model runs only when every op in every branch and body does.
std::vector<std::string> unsupported_op_types(const Graph& graph) {
  std::vector<std::string> missing;
  std::unordered_set<std::string> seen;
  collect_unsupported(graph, missing, seen);
  return missing;
}

}  // namespace nanguard
