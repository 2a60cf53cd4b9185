// The float type a node computes in, as the analysis recorded its tensors: what the
// facets' bounds must keep finite (ops/hazard.h's `type_max`).
#pragma once

#include "analyzer/analyzer.h"

namespace nanguard {

// The least largest-finite-value over the node's analysed float inputs and outputs:
// 65504 for a float16 node, float32's when none is a half type.
double node_type_max(const Node& node, const AnalysisResult& result);

}  // namespace nanguard
