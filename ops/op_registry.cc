#include "ops/op_registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <unordered_set>

namespace nanguard {

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

std::vector<std::string> unsupported_op_types(const Graph& graph) {
  std::vector<std::string> missing;
  std::unordered_set<std::string> seen;
  for (const Node& n : graph.nodes) {
    if (OpRegistry::instance().find(n.op_type, n.domain)) continue;
    std::string name = n.domain.empty() ? n.op_type : n.domain + "." + n.op_type;
    if (seen.insert(name).second) missing.push_back(name);
  }
  return missing;
}

}  // namespace nanguard
