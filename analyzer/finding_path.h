// A finding's path: node names from a graph input to the node, through the operand at
// fault and then each node's first non-constant input.
#pragma once

#include <string>
#include <vector>

#include "model/graph.h"

namespace nanguard {

// Inside a subgraph, node names carry the scope's `prefix` ("Loop_0/body/").
std::vector<std::string> path_to(const Graph& g, const Node& node, int operand, const std::string& prefix);

}  // namespace nanguard
