#include "harness/html_report.h"

#include <algorithm>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "harness/check_report.h"
#include "harness/graph_picture.h"

namespace nanguard {
namespace {

constexpr size_t kPathNodes = 24;   // nodes drawn of a long path, the last ones
constexpr size_t kFixedTail = 6;    // path nodes drawn around the fix

std::string esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string picture(const Graph& g, const AnalysisResult& a, const PictureSpec& spec) {
  auto svg = render_svg(subgraph_dot(g, a, spec));
  if (svg.ok()) return "<div class=\"pic\">" + *svg + "</div>";
  return fmt::format("<p class=\"warn\">{}</p><pre>{}</pre>", esc(svg.status().message()), esc(subgraph_dot(g, a, spec)));
}

std::vector<std::string> path_nodes(const Graph& g, const Finding& f, size_t& hidden) {
  std::vector<std::string> nodes;
  for (const std::string& n : f.path)
    if (g.find_node(n)) nodes.push_back(n);
  if (nodes.empty() || nodes.back() != f.node) nodes.push_back(f.node);
  hidden = nodes.size() > kPathNodes ? nodes.size() - kPathNodes : 0;
  nodes.erase(nodes.begin(), nodes.begin() + hidden);
  return nodes;
}

// The end of the path in the fixed model, with the nodes the fix added next to it.
PictureSpec fixed_spec(const Graph& fixed, const std::vector<std::string>& path, const std::string& node) {
  PictureSpec spec;
  std::set<std::string> tensors;
  for (size_t i = path.size() > kFixedTail ? path.size() - kFixedTail : 0; i < path.size(); ++i)
    if (const Node* n = fixed.find_node(path[i])) {
      spec.nodes.push_back(n->name);
      for (const auto& t : n->inputs) tensors.insert(t);
      for (const auto& t : n->outputs) tensors.insert(t);
    }
  for (int round = 0; round < 4; ++round)  // chains of added nodes
    for (const Node& n : fixed.nodes) {
      if (n.name.rfind("nanguard_fix/", 0) != 0 || spec.added.count(n.name)) continue;
      bool touches = std::any_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& t) { return tensors.count(t); }) ||
                     std::any_of(n.outputs.begin(), n.outputs.end(), [&](const std::string& t) { return tensors.count(t); });
      if (!touches) continue;
      spec.added.insert(n.name);
      spec.nodes.push_back(n.name);
      for (const auto& t : n.inputs) tensors.insert(t);
      for (const auto& t : n.outputs) tensors.insert(t);
    }
  for (const Node& n : fixed.nodes)  // what reads the fix's outputs
    if (!spec.added.count(n.name) && std::find(spec.nodes.begin(), spec.nodes.end(), n.name) == spec.nodes.end() &&
        std::any_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& t) { return t.rfind("nanguard_fix/", 0) == 0 && tensors.count(t); }))
      spec.nodes.push_back(n.name);
  spec.marked = fixed.find_node(node) ? node : "";
  return spec;
}

std::string list(const std::vector<std::string>& items) {
  std::string s = "<ul>";
  for (const auto& i : items) s += "<li><code>" + esc(i) + "</code></li>";
  return s + "</ul>";
}

std::string validation_html(const ValidationReport& v) {
  std::string s = fmt::format("<p>Validation: <b class=\"{}\">{}</b>, {} attack runs, {} failures", v.verdict(),
                              esc(v.verdict()), v.runs(), v.failures());
  if (v.agreement)
    s += fmt::format("; on {} normal samples (finite on the original) the outputs of {} are unchanged ({:.1f}%)",
                     v.agreement->original_finite, v.agreement->unchanged, 100 * v.agreement->share);
  s += ".</p><table><tr><th>attack</th><th>runs</th><th>failures</th></tr>";
  for (const AttackResult& a : v.attacks) s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(a.name), a.runs, a.failures);
  return s + "</table>";
}

std::string finding_html(size_t i, const CheckFinding& cf, const CheckReport& r, const Graph& g) {
  const Finding& f = cf.finding;
  std::string s = fmt::format("<section><h2>{}. <code>{}</code> ({}) {} <span class=\"badge {}\">{}</span></h2>", i + 1,
                              esc(f.node), esc(f.op_type), esc(f.hazard), esc(cf.status), esc(cf.status));
  s += fmt::format("<p>{} hazard: fails when <code>{}</code>.", esc(to_string(f.kind)), esc(f.condition));
  for (const OperandRange& o : f.operands) s += fmt::format(" Operand <code>{}</code> in [{:.6g}, {:.6g}].", esc(o.tensor), o.lo, o.hi);
  s += "</p><h3>The faulty path, with the analysis' ranges</h3>";
  size_t hidden = 0;
  std::vector<std::string> path = path_nodes(g, f, hidden);
  if (hidden) s += fmt::format("<p class=\"note\">{} earlier nodes of the path are not drawn.</p>", hidden);
  s += picture(g, r.analysis, PictureSpec{path, f.node, {}});
  if (cf.trigger && cf.trigger->status == "triggered") {
    const TriggerOutcome& t = *cf.trigger;
    s += fmt::format("<h3>Witness</h3><p>A real float32 run produces NaN/INF at this node ({} search, {:.2f} s, {} runs; "
                     "reproduced on {}).", esc(t.system.strategy), t.system.seconds, t.system.runs, esc(fmt::format("{}", fmt::join(t.devices, ", "))));
    if (!cf.reproducer.empty()) s += fmt::format(" Reproducer: <code>{}</code>.", esc(cf.reproducer));
    if (!cf.onnxruntime.empty()) s += fmt::format(" In ONNX Runtime: <b>{}</b>.", esc(cf.onnxruntime));
    s += "</p>" + list(witness_values(t, r.ranges, 12));
  } else if (cf.trigger) {
    s += fmt::format("<h3>Witness</h3><p>None found: {}.</p>",
                     esc(cf.trigger->detail));
  }
  if (cf.fix && cf.fix->status == "fixed") {
    s += fmt::format("<h3>Fix ({}{})</h3><p>{}</p>", esc(cf.fix->at), cf.fix->rewrite.empty() ? "" : ": " + esc(cf.fix->rewrite),
                     esc(cf.fix->description));
    if (!fix_changes(*cf.fix).empty()) s += list(fix_changes(*cf.fix));
    if (!cf.fix->hint.empty()) s += "<p>In PyTorch: " + esc(cf.fix->hint) + "</p>";
    if (r.fixed_graph && r.validation) {
      s += "<h4>The fixed subgraph (added nodes in green), with the fixed model's ranges</h4>";
      s += picture(*r.fixed_graph, r.validation->analysis, fixed_spec(*r.fixed_graph, path, f.node));
      s += validation_html(*r.validation);
    }
  } else if (cf.fix) {
    s += "<h3>Not fixed</h3><p>" + esc(cf.fix->reason) + "</p>";
  }
  return s + "</section>";
}

constexpr const char* kStyle = R"(<style>
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-top: 1px solid #ccc; padding-top: 1em; }
code { background: #f3f3f3; padding: 0 0.2em; }
.badge { font-size: 0.8em; padding: 0.1em 0.5em; border-radius: 0.5em; color: white; background: #888; }
.badge.triggered { background: #b00000; } .badge.fixed { background: #207020; }
.badge.not-triggered, .badge.possible { background: #a06000; }
.badge.refuted { background: #2a6a2a; }
.holds { color: #207020; } .broken { color: #b00000; } .unproved { color: #a06000; }
.pic { overflow-x: auto; border: 1px solid #ddd; padding: 0.5em; } .pic svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; }
.note, .warn { color: #666; font-style: italic; }
</style>)";

}  // namespace

std::string check_html(const CheckReport& r, const Graph& g) {
  std::string s = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>nanguard check: " + esc(r.model_path) +
                  "</title>" + kStyle + "</head><body>";
  s += fmt::format("<h1>nanguard check: <code>{}</code></h1><p>Weights {}; ", esc(r.model_path), esc(r.weights));
  std::vector<std::string> ranges;
  for (const auto& [name, rg] : r.ranges) ranges.push_back(fmt::format("{} in [{:.6g}, {:.6g}]", name, rg.lo, rg.hi));
  s += ranges.empty() ? "no input ranges given" : "inputs " + esc(fmt::format("{}", fmt::join(ranges, ", ")));
  s += fmt::format(". {} nodes, {:.1f} s.</p>", g.nodes.size(), r.seconds);
  if (r.proved())
    return s + "<p class=\"holds\"><b>Proved: no op can produce NaN/INF for inputs in these ranges.</b>" +
           (r.refuted() ? fmt::format(" {} finding(s) of the first analysis were refuted by a finer one.", r.refuted()) : "") +
           "</p></body></html>\n";
  std::map<std::string, int> counts;
  for (const CheckFinding& cf : r.findings) ++counts[cf.status];
  std::vector<std::string> parts;
  for (const auto& [k, v] : counts) parts.push_back(fmt::format("{} {}", v, k));
  s += fmt::format("<p><b>{} finding(s)</b>: {}.", r.findings.size(), esc(fmt::format("{}", fmt::join(parts, ", "))));
  if (r.fixed_written) s += fmt::format(" Fixed model: <code>fixed.onnx</code> ({}).", r.fix_holds() ? "validated" : "not validated");
  if (!r.analysis.unsupported.empty())
    s += " Ops without abstract semantics: " + esc(fmt::format("{}", fmt::join(r.analysis.unsupported, ", "))) + ".";
  s += "</p>";
  for (size_t i = 0; i < r.findings.size(); ++i) s += finding_html(i, r.findings[i], r, g);
  return s + "</body></html>\n";
}

}  // namespace nanguard
