// Pictures of a model's subgraph for the HTML report: DOT text built from a graph and
// an analysis (ranges on the edges, one node marked), rendered to SVG by Graphviz.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "analyzer/analyzer.h"
#include "model/graph.h"
#include "model/status.h"

namespace nanguard {

struct PictureSpec {
  std::vector<std::string> nodes;  // the nodes to draw, in order (unknown names are skipped)
  std::string marked;              // the faulty node, drawn red
  std::set<std::string> added;     // nodes a fix added, drawn green
};

// DOT for `spec`: each node a box "name / op", every tensor between two drawn nodes
// (or from a graph input or weight into one) an edge labelled with its range.
std::string subgraph_dot(const Graph& graph, const AnalysisResult& analysis, const PictureSpec& spec);

// SVG from DOT through libgvc, without the XML prologue (ready to inline in HTML).
Result<std::string> render_svg(const std::string& dot);

}  // namespace nanguard
