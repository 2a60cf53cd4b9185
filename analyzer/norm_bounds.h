// Norm bounds in the analysis: where an output's interval grows past `above` in
// magnitude (intervals have lost the cancellation between neurons), a bound on its
// Euclidean norm N is chained back through the ops with a norm facet
// (ops/norm_bounds.h) to tensors whose intervals are still tight (magnitude at most
// `start`), and the output's interval is intersected with [-N, N]. Computed on
// demand and memoised per tensor: a model whose intervals stay small pays nothing.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "model/graph.h"
#include "ops/op_registry.h"

namespace nanguard {

using NormMap = std::unordered_map<std::string, double>;

struct NormOptions {
  double above = 1e30;  // 0 or less: never (at most 1% of a half type's limit)
  double start = 1e4;
};

// Applies `def`'s norm facet to the node `a` describes (its outputs `outs` as the
// interval and symbolic transfers left them), demanding its inputs' norms from
// `intervals` and the producers before it: records the bound of output 0 in `norms`
// and tightens its interval. True when it did.
bool refine_with_norms(const OpDef& def, const AbstractContext& a, std::vector<IntervalTensor>& outs,
                       const std::unordered_map<std::string, IntervalTensor>& intervals, NormMap& norms,
                       const NormOptions& options);

}  // namespace nanguard
