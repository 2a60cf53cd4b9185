#include "harness/graph_picture.h"

#include <cmath>
#include <mutex>
#include <unordered_map>

#include <fmt/core.h>
#include <graphviz/gvc.h>

namespace nanguard {
namespace {

// A DOT string; labels carry DOT's own "\n" line breaks, so only quotes are escaped.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string range_label(const AnalysisResult& a, const std::string& tensor) {
  auto r = range_in(a, tensor);
  if (!r) return tensor;
  return fmt::format("{}\\n[{:.4g}, {:.4g}]", tensor, r->lo, r->hi);
}

std::string node_attrs(const Node& n, const PictureSpec& spec) {
  std::string label = fmt::format("{}\\n{}", n.name, n.op_type);
  if (n.name == spec.marked) return fmt::format("label={}, style=filled, fillcolor=\"#f8c8c8\", color=\"#b00000\", penwidth=2", quote(label));
  if (spec.added.count(n.name)) return fmt::format("label={}, style=filled, fillcolor=\"#c8f0c8\", color=\"#207020\"", quote(label));
  return fmt::format("label={}", quote(label));
}

}  // namespace

std::string subgraph_dot(const Graph& graph, const AnalysisResult& analysis, const PictureSpec& spec) {
  std::string dot = "digraph path {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n"
                    "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  std::set<std::string> drawn;
  for (const std::string& name : spec.nodes)
    if (const Node* n = graph.find_node(name); n && drawn.insert(name).second)
      dot += fmt::format("  {} [{}];\n", quote(name), node_attrs(*n, spec));
  int sources = 0;
  std::unordered_map<std::string, std::string> source_ids;
  for (const std::string& name : drawn) {
    const Node* n = graph.find_node(name);
    for (const std::string& in : n->inputs) {
      if (in.empty()) continue;
      const Node* p = graph.producer(in);
      std::string from;
      if (p && drawn.count(p->name)) {
        from = quote(p->name);
      } else if (!p) {  // a graph input or a weight
        if (graph.is_initializer(in) && !range_in(analysis, in)) continue;
        auto [it, fresh] = source_ids.emplace(in, fmt::format("src{}", sources));
        if (fresh) {
          ++sources;
          dot += fmt::format("  {} [label={}, shape=ellipse, style=filled, fillcolor=\"#e8eef8\"];\n", it->second, quote(in));
        }
        from = it->second;
      } else {
        continue;  // from a node not drawn
      }
      dot += fmt::format("  {} -> {} [label={}];\n", from, quote(name), quote(range_label(analysis, in)));
    }
  }
  return dot + "}\n";
}

Result<std::string> render_svg(const std::string& dot) {
  static std::mutex mu;  // libgvc keeps global state
  std::lock_guard<std::mutex> lock(mu);
  GVC_t* gvc = gvContext();
  if (!gvc) return Status::Error("graphviz: no context");
  Agraph_t* g = agmemread(dot.c_str());
  if (!g) {
    gvFreeContext(gvc);
    return Status::Error("graphviz: the DOT text does not parse");
  }
  char* data = nullptr;
  unsigned int len = 0;
  int rc = gvLayout(gvc, g, "dot");
  if (rc == 0) rc = gvRenderData(gvc, g, "svg", &data, &len);
  std::string svg = rc == 0 && data ? std::string(data, len) : std::string();
  if (data) gvFreeRenderData(data);
  gvFreeLayout(gvc, g);
  agclose(g);
  gvFreeContext(gvc);
  if (svg.empty()) return Status::Error("graphviz: layout or SVG rendering failed (is the graphviz package installed?)");
  size_t start = svg.find("<svg");
  return start == std::string::npos ? svg : svg.substr(start);
}

}  // namespace nanguard
