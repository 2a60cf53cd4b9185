// Facts that hold between tensors, not within one op: they tighten an op's output
// after its own transfer when the graph around it has a known shape. Today:
//   ReduceSum_A(Exp(x - ReduceMax_A(x, keepdims))) >= 1   (the stable softmax
//   denominator: the max element contributes exp(0) = 1 exactly, in float32 too);
//   x - y <= 0 when y is, element by element, a max over a set holding x's element
//   (a segment or edge softmax: Where/Gather/Expand around a ReduceMax), and the
//   ScatterElements-add of exp(x - y) over such groups >= 1.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "ops/abstract_context.h"
#include "ops/hazard.h"

namespace nanguard {

// The intervals computed so far, by tensor name (facts look at a node's ancestors).
using KnownIntervals = std::unordered_map<std::string, IntervalTensor>;

void refine_with_facts(const AbstractContext& a, const KnownIntervals& known, std::vector<IntervalTensor>& outs);

// Drops hazard reports that a fact rules out (a decomposed normalisation's quotient
// cannot overflow: it is bounded by sqrt(n)).
void filter_hazards_with_facts(const AbstractContext& a, std::vector<HazardReport>& reports);

}  // namespace nanguard
