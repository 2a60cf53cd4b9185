#include "harness/report.h"

#include <cmath>
#include <map>

#include <fmt/core.h>
#include <fmt/ranges.h>

namespace nanguard {
namespace {

using json = nlohmann::json;

json range_json(const OperandRange& r) { return {{"tensor", r.tensor}, {"lo", json_number(r.lo)}, {"hi", json_number(r.hi)}}; }

std::string rule_id(const std::string& hazard) { return "nanguard/" + hazard; }

std::string describe(const Finding& f) {
  std::string s = fmt::format("{} ({}): {} {}", f.node, f.op_type, to_string(f.kind), f.hazard);
  if (!f.condition.empty()) s += fmt::format(" when {}", f.condition);
  return s;
}

}  // namespace

json json_number(double v) {
  if (std::isfinite(v)) return v;
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

json finding_json(const Finding& f) {
  json ops = json::array();
  for (const auto& o : f.operands) ops.push_back(range_json(o));
  json j{{"node", f.node}, {"op", f.op_type}, {"kind", to_string(f.kind)}, {"hazard", f.hazard},
         {"status", f.status}, {"condition", f.condition}, {"operands", ops}, {"path", f.path}};
  if (!f.result.tensor.empty()) j["result"] = range_json(f.result);
  return j;
}

std::string findings_json(const ReportContext& ctx, const AnalysisResult& r) {
  json findings = json::array();
  for (const auto& f : r.findings) findings.push_back(finding_json(f));
  json ranges = json::object();
  for (const auto& [name, rg] : ctx.ranges) ranges[name] = {rg.lo, rg.hi};
  json j{{"model", ctx.model_path}, {"weights", ctx.weights}, {"ranges", ranges},
         {"nodes", ctx.graph ? ctx.graph->nodes.size() : 0}, {"unsupported_ops", r.unsupported},
         {"gradients", ctx.gradients_chained ? "chain" : "local"}, {"findings", findings}};
  json partitions = json::array();
  for (const auto& p : r.partitions)
    partitions.push_back({{"node", p.node}, {"tensors", p.tensors}, {"cells", p.cells}, {"hazards", p.hazards}});
  j["partitions"] = partitions;
  json tightened = json::array();
  for (const auto& t : r.norm_tightened)
    tightened.push_back({{"node", t.node}, {"tensor", t.tensor}, {"norm", t.norm}, {"interval_magnitude", t.before}});
  j["norm_tightened"] = tightened;
  return j.dump(2) + "\n";
}

std::string findings_sarif(const ReportContext& ctx, const AnalysisResult& r) {
  std::map<std::string, json> rules;
  json results = json::array();
  for (const auto& f : r.findings) {
    rules.emplace(f.hazard, json{{"id", rule_id(f.hazard)}, {"name", f.hazard},
                                 {"shortDescription", {{"text", fmt::format("{} hazard: {}", to_string(f.kind), f.hazard)}}},
                                 {"properties", {{"kind", to_string(f.kind)}}}});
    json loc{{"physicalLocation", {{"artifactLocation", {{"uri", ctx.model_path}}}}},
             {"logicalLocations", json::array({{{"name", f.node}, {"fullyQualifiedName", f.node}, {"kind", "function"}}})}};
    results.push_back({{"ruleId", rule_id(f.hazard)}, {"level", f.hazard == "unsupported" ? "warning" : "error"},
                       {"message", {{"text", describe(f)}}}, {"locations", json::array({loc})},
                       {"properties", finding_json(f)}});
  }
  json rule_list = json::array();
  for (auto& [_, rule] : rules) rule_list.push_back(rule);
  json sarif{{"version", "2.1.0"},
             {"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
             {"runs", json::array({{{"tool", {{"driver", {{"name", "nanguard"}, {"rules", rule_list}}}}},
                                    {"results", results}}})}};
  return sarif.dump(2) + "\n";
}

std::string findings_text(const ReportContext& ctx, const AnalysisResult& r) {
  std::string s = fmt::format("model: {} ({} nodes), weights {}\n", ctx.model_path,
                              ctx.graph ? ctx.graph->nodes.size() : 0, ctx.weights);
  for (const auto& [name, rg] : ctx.ranges) s += fmt::format("  input {} in [{}, {}]\n", name, rg.lo, rg.hi);
  int n = 0;
  std::map<std::string, int> by_kind;
  for (const auto& f : r.findings) {
    ++by_kind[to_string(f.kind)];
    s += fmt::format("\n#{} {}\n", ++n, describe(f));
    s += fmt::format("   status: {}\n", f.status);
    for (const auto& o : f.operands) s += fmt::format("   operand '{}' in [{:.9g}, {:.9g}]\n", o.tensor, o.lo, o.hi);
    if (!f.result.tensor.empty()) s += fmt::format("   result '{}' reaches [{:.9g}, {:.9g}]\n", f.result.tensor, f.result.lo, f.result.hi);
    std::string path;
    for (const auto& p : f.path) path += (path.empty() ? "" : " -> ") + p;
    s += "   path: " + path + "\n";
  }
  s += fmt::format("\n{} finding{} ({} forward, {} gradient, {} crash)", r.findings.size(), r.findings.size() == 1 ? "" : "s",
                   by_kind["forward"], by_kind["gradient"], by_kind["crash"]);
  std::string unsupported;
  for (const auto& u : r.unsupported) unsupported += (unsupported.empty() ? "" : ", ") + u;
  s += fmt::format("; ops without abstract semantics: {}\n", unsupported.empty() ? "none" : unsupported);
  for (const auto& p : r.partitions) {
    std::string what;
    for (const auto& h : p.hazards) what += (what.empty() ? "" : ", ") + h;
    s += fmt::format("partition: '{}' proved {} by splitting {} into {} cells\n", p.node,
                     what.empty() ? "its outputs finite" : what, fmt::join(p.tensors, ", "), p.cells);
  }
  if (!r.norm_tightened.empty()) {
    const auto& last = r.norm_tightened.back();
    s += fmt::format("norm bounds: {} output{} tightened by the weights' singular values, from '{}' on; the last, "
                     "'{}', to norm {:.3g} (intervals: {:.3g})\n",
                     r.norm_tightened.size(), r.norm_tightened.size() == 1 ? "" : "s", r.norm_tightened.front().node,
                     last.node, last.norm, last.before);
  }
  if (r.findings.empty()) s += "proved: no op can produce NaN/INF for inputs in range\n";
  // Say what the proof covers of the backward pass: the local hazards alone do not
  // bound a gradient that the ops after it scale.
  if (r.findings.empty() && !ctx.gradients_chained)
    s += "gradients: each op's checked with an output gradient of 1; --gradients chain bounds them through the graph\n";
  return s;
}

}  // namespace nanguard
