#include "harness/check_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "harness/report.h"

namespace nanguard {
namespace {

using json = nlohmann::json;

std::string element_name(const std::string& tensor, const at::Tensor& t, int64_t flat) {
  if (t.dim() == 0) return tensor;
  std::vector<int64_t> idx(t.dim());
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    idx[d] = flat % t.size(d);
    flat /= t.size(d);
  }
  return fmt::format("{}[{}]", tensor, fmt::join(idx, ", "));
}

// Inputs first (in the ranges' order), then weights, each by name.
std::vector<std::string> point_order(const TensorMap& point, const RangeMap& ranges) {
  std::vector<std::string> names;
  for (const auto& [name, _] : point) names.push_back(name);
  std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    bool ia = ranges.count(a), ib = ranges.count(b);
    return ia != ib ? ia : a < b;
  });
  return names;
}

json fix_json(const FindingFix& fx) {
  json changes = json::array();
  for (const RangeChange& c : fx.changes)
    changes.push_back({{"tensor", c.tensor}, {"before", {json_number(c.before_lo), json_number(c.before_hi)}},
                       {"after", {json_number(c.after_lo), json_number(c.after_hi)}}, {"kept", c.kept}});
  return {{"at", fx.at}, {"rewrite", fx.rewrite.empty() ? json(nullptr) : json(fx.rewrite)},
          {"description", fx.description}, {"changes", changes}, {"hint", fx.hint}};
}

json validation_json(const CheckReport& r) {
  if (!r.validation) return nullptr;
  const ValidationReport& v = *r.validation;
  json by = json::array();
  for (const AttackResult& a : v.attacks)
    by.push_back({{"name", a.name}, {"runs", a.runs}, {"failures", a.failures},
                  {"first_failure", a.first_failure.empty() ? json(nullptr) : json(a.first_failure)}});
  json agreement = nullptr;
  if (v.agreement)
    agreement = {{"samples", v.agreement->samples}, {"original_finite", v.agreement->original_finite},
                 {"unchanged", v.agreement->unchanged}, {"share", v.agreement->share},
                 {"max_change", json_number(v.agreement->max_change)}};
  return {{"verdict", v.verdict()}, {"proved", v.proved()}, {"attacks", v.runs()}, {"failures", v.failures()},
          {"by", by}, {"agreement", agreement}};
}

json witness_json(const CheckFinding& cf, const RangeMap& ranges) {
  const TriggerOutcome& t = *cf.trigger;
  if (t.status != "triggered")
    return {{"searched_seconds", t.system.seconds}, {"runs", t.system.runs}, {"detail", t.detail}};
  return {{"reproducer", cf.reproducer.empty() ? json(nullptr) : json(cf.reproducer)}, {"strategy", t.system.strategy},
          {"seconds", t.system.seconds}, {"runs", t.system.runs}, {"devices", t.devices},
          {"values", witness_values(t, ranges)},
          {"onnxruntime", cf.onnxruntime.empty() ? json(nullptr) : json(cf.onnxruntime)}};
}

std::string percent(double share) { return fmt::format("{:.1f}%", 100 * share); }

std::string validation_line(const ValidationReport& v) {
  std::string s = fmt::format("{}: {} attack runs, {} failures", v.verdict(), v.runs(), v.failures());
  if (v.agreement)
    s += fmt::format("; {} of {} normal samples unchanged", v.agreement->unchanged, v.agreement->original_finite);
  return s;
}

std::string finding_block(size_t i, const CheckFinding& cf, const CheckReport& r, const std::string& out_dir) {
  const Finding& f = cf.finding;
  std::string s = fmt::format("[{}] {} ({}) {} {}: {}\n", i + 1, f.node, f.op_type, to_string(f.kind), f.hazard, cf.status);
  for (const OperandRange& o : f.operands)
    s += fmt::format("    operand {} in [{:.9g}, {:.9g}]{}\n", o.tensor, o.lo, o.hi,
                     f.condition.empty() ? "" : "; fails when " + f.condition);
  if (cf.trigger && cf.trigger->status == "triggered") {
    const TriggerOutcome& t = *cf.trigger;
    s += fmt::format("    witness ({}, {:.2f} s, on {}): {}\n", t.system.strategy, t.system.seconds,
                     fmt::join(t.devices, ", "), fmt::join(witness_values(t, r.ranges), ", "));
    if (!cf.reproducer.empty()) s += fmt::format("    reproducer: {}/{}\n", out_dir, cf.reproducer);
    if (!cf.onnxruntime.empty()) s += fmt::format("    ONNX Runtime: {}\n", cf.onnxruntime);
  } else if (cf.trigger) {
    s += fmt::format("    {}: {}\n", cf.trigger->status == "refuted" ? "refuted" : "not triggered", cf.trigger->detail);
  }
  if (cf.fix && cf.fix->status == "fixed") {
    s += fmt::format("    fix ({}{}): {}\n", cf.fix->at, cf.fix->rewrite.empty() ? "" : " " + cf.fix->rewrite,
                     cf.fix->description.empty() ? cf.fix->reason : cf.fix->description);
    for (const std::string& c : fix_changes(*cf.fix)) s += "      " + c + "\n";
    if (!cf.fix->hint.empty()) s += "    PyTorch: " + cf.fix->hint + "\n";
    if (r.validation) s += "    validation: " + validation_line(*r.validation) + "\n";
  } else if (cf.fix) {
    s += "    not fixed: " + cf.fix->reason + "\n";
  }
  return s;
}


std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += k[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16 | (i + 1 < in.size() ? uint8_t(in[i + 1]) << 8 : 0);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

json logical(const std::string& node) {
  return json::array({{{"name", node}, {"fullyQualifiedName", node}, {"kind", "function"}}});
}

// The faulty path as a code flow: each node from an input to the finding's node.
json code_flow(const CheckFinding& cf, const CheckReport& r) {
  json locs = json::array();
  for (const std::string& n : cf.finding.path)
    locs.push_back({{"location", {{"logicalLocations", logical(n)},
                                  {"message", {{"text", n == cf.finding.node ? "fails when " + cf.finding.condition : n}}}}}});
  return json::array({{{"threadFlows", json::array({{{"locations", locs}}})}}});
}

constexpr size_t kEmbedLimit = 1 << 20;  // fixed models larger than this are named, not embedded

json sarif_result(const CheckFinding& cf, const CheckReport& r, const std::string& fixed_model, int64_t model_bytes) {
  const Finding& f = cf.finding;
  std::string msg = fmt::format("{} ({}): {} {}: {}", f.node, f.op_type, to_string(f.kind), f.hazard, cf.status);
  if (!f.condition.empty()) msg += " (fails when " + f.condition + ")";
  if (cf.trigger && cf.trigger->status == "triggered")
    msg += fmt::format("; witness: {}", fmt::join(witness_values(*cf.trigger, r.ranges), ", "));
  if (cf.fix && cf.fix->status == "fixed") msg += "; fix: " + cf.fix->description;
  json loc{{"physicalLocation", {{"artifactLocation", {{"uri", r.model_path}}}}}, {"logicalLocations", logical(f.node)}};
  json props = finding_json(f);
  props["status"] = cf.status;
  if (cf.trigger) props["witness"] = witness_json(cf, r.ranges);
  json res{{"ruleId", "nanguard/" + f.hazard}, {"level", cf.status == "refuted" ? "note" : cf.status == "fixed" ? "warning" : "error"},
           {"message", {{"text", msg}}}, {"locations", json::array({loc})}, {"codeFlows", code_flow(cf, r)}};
  if (cf.fix && cf.fix->status == "fixed") {
    props["fix"] = fix_json(*cf.fix);
    if (!fixed_model.empty() && fixed_model.size() <= kEmbedLimit && model_bytes >= 0)
      res["fixes"] = json::array(
          {{{"description", {{"text", cf.fix->description + (cf.fix->hint.empty() ? "" : ". PyTorch: " + cf.fix->hint)}}},
            {"artifactChanges",
             json::array({{{"artifactLocation", {{"uri", r.model_path}}},
                           {"replacements", json::array({{{"deletedRegion", {{"byteOffset", 0}, {"byteLength", model_bytes}}},
                                                          {"insertedContent", {{"binary", base64(fixed_model)}}}}})}}})}}});
  }
  res["properties"] = props;
  return res;
}

}  // namespace

std::vector<std::string> witness_values(const TriggerOutcome& t, const RangeMap& ranges, size_t limit) {
  std::vector<std::string> out;
  for (const std::string& name : point_order(t.system.point, ranges)) {
    at::Tensor v = t.system.point.at(name).to(at::kDouble).contiguous();
    at::Tensor flat = v.reshape({-1});
    int64_t n = flat.numel();
    auto r = ranges.find(name);
    std::vector<int64_t> pick;
    for (int64_t k = 0; k < n; ++k) {
      double x = flat[k].item<double>();
      // Range ends (and 0 in small tensors) are where searches push inputs; a large
      // weight without a range is summed up by its largest element below.
      bool at_end = r != ranges.end() && (x == r->second.lo || x == r->second.hi);
      bool special = n <= 4 || !std::isfinite(x) || at_end || (x == 0 && n <= 16);
      if (special) pick.push_back(k);
    }
    if (pick.empty() && n > 0) pick.push_back(flat.abs().argmax().item<int64_t>());  // the largest magnitude
    size_t shown = 0;
    for (int64_t k : pick) {
      if (out.size() >= limit) break;
      out.push_back(fmt::format("{} = {:.9g}", element_name(name, v, k), flat[k].item<double>()));
      ++shown;
    }
    if (shown < pick.size()) out.push_back(fmt::format("{}: {} more such elements", name, pick.size() - shown));
    if (out.size() >= limit) break;
  }
  return out;
}

std::vector<std::string> fix_changes(const FindingFix& fx) {
  std::vector<std::string> out;
  for (const RangeChange& c : fx.changes)
    if (c.after_lo != c.before_lo || c.after_hi != c.before_hi)
      out.push_back(fmt::format("{}: [{:.9g}, {:.9g}] -> [{:.9g}, {:.9g}], keeps {}", c.tensor, c.before_lo, c.before_hi,
                                c.after_lo, c.after_hi, percent(c.kept)));
  return out;
}

json check_json(const CheckReport& r) {
  json findings = json::array();
  for (const CheckFinding& cf : r.findings) {
    json j = finding_json(cf.finding);
    j["status"] = cf.status;
    j["witness"] = cf.trigger ? witness_json(cf, r.ranges) : json(nullptr);
    if (cf.fix && cf.fix->status == "fixed") {
      j["fix"] = fix_json(*cf.fix);
      j["fix"]["validation"] = validation_json(r);
    } else {
      j["fix"] = nullptr;
      if (cf.fix) j["not_fixed"] = cf.fix->reason;
    }
    findings.push_back(j);
  }
  json ranges = json::object();
  for (const auto& [name, rg] : r.ranges) ranges[name] = {json_number(rg.lo), json_number(rg.hi)};
  std::map<std::string, int> counts;
  for (const CheckFinding& cf : r.findings) ++counts[cf.status];
  return {{"model", r.model_path}, {"weights", r.weights}, {"ranges", ranges}, {"proved", r.proved()},
          {"unsupported_ops", r.analysis.unsupported}, {"findings", findings}, {"counts", counts},
          {"fixed_model", r.fixed_written ? json("fixed.onnx") : json(nullptr)},
          {"validation", validation_json(r)}, {"seconds", r.seconds}};
}

std::string check_text(const CheckReport& r, const std::string& out_dir) {
  std::string s;
  for (size_t i = 0; i < r.findings.size(); ++i) s += finding_block(i, r.findings[i], r, out_dir.empty() ? "." : out_dir);
  if (!r.analysis.unsupported.empty())
    s += fmt::format("ops without abstract semantics (nothing after them is proved): {}\n", fmt::join(r.analysis.unsupported, ", "));
  std::map<std::string, int> counts;
  for (const CheckFinding& cf : r.findings) ++counts[cf.status];
  if (r.proved())
    return s + fmt::format("{}: proved free of NaN/INF for inputs in range{} ({:.1f} s)\n", r.model_path,
                           r.refuted() ? fmt::format(" ({} finding(s) of the first analysis refuted by a finer one)", r.refuted()) : "",
                           r.seconds);
  std::vector<std::string> parts;
  for (const char* k : {"triggered", "not-triggered", "possible", "refuted", "fixed"})
    if (counts[k]) parts.push_back(fmt::format("{} {}", counts[k], k));
  s += fmt::format("{}: {} finding(s): {}", r.model_path, r.findings.size(), fmt::join(parts, ", "));
  if (r.fixed_written) s += fmt::format("; fixed model {}/fixed.onnx ({})", out_dir, r.fix_holds() ? "validated" : "NOT validated");
  else if (r.fixed_graph && out_dir.empty()) s += "; add --out DIR for the fixed model, reproducers and reports";
  return s + fmt::format(" ({:.1f} s)\n", r.seconds);
}

std::string check_sarif(const CheckReport& r, const std::string& fixed_model) {
  std::error_code ec;
  auto size = std::filesystem::file_size(r.model_path, ec);
  int64_t model_bytes = ec ? -1 : static_cast<int64_t>(size);
  std::map<std::string, json> rules;
  json results = json::array();
  for (const CheckFinding& cf : r.findings) {
    const Finding& f = cf.finding;
    rules.emplace(f.hazard, json{{"id", "nanguard/" + f.hazard}, {"name", f.hazard},
                                 {"shortDescription", {{"text", fmt::format("{} hazard: {}", to_string(f.kind), f.hazard)}}},
                                 {"properties", {{"kind", to_string(f.kind)}}}});
    results.push_back(sarif_result(cf, r, fixed_model, model_bytes));
  }
  json rule_list = json::array();
  for (auto& [_, rule] : rules) rule_list.push_back(rule);
  json sarif{{"version", "2.1.0"},
             {"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
             {"runs", json::array({{{"tool", {{"driver", {{"name", "nanguard"}, {"rules", rule_list}}}}},
                                    {"results", results}}})}};
  return sarif.dump(2) + "\n";
}

}  // namespace nanguard
