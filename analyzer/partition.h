// Partitioning where it pays: when the one-interval bound of a small tensor (a mask, a
// temperature, a count) on a hazard's path cannot prove the hazard absent, the tensor
// is split into cells (per element: integer values enumerated, float ranges cut into
// pieces), the nodes between it and the hazard are analysed again once per cell, and
// the hazard is proved absent when no cell reports it. Intervals lose the correlation
// of a tensor read along two paths (t / (t + 1), L * L - L + 1, sum(m) + sum(1 - m));
// a cell is narrow enough to keep it. A budget of output elements computed bounds the cost.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/graph.h"
#include "ops/interval.h"

namespace nanguard {

struct PartitionOptions {
  int max_cells = 64;               // cells of one tensor (their product over elements)
  int64_t max_elements = 16;        // tensors larger than this are not split
  int max_tensors = 3;              // candidates tried per hazardous node
  // Output elements the cells' analyses may compute in the whole analysis (0: off):
  // cells x the outputs of the nodes between, so a cone through big tensors is dear.
  int64_t element_budget = 1000000;
};

// What one cell's analysis saw at the hazardous node.
struct CellOutcome {
  bool completed = false;                // false: the cone could not be analysed
  std::vector<std::string> hazards;      // hazards reported at the node
  std::vector<IntervalTensor> bounds;    // the node's outputs, then its inputs, in this cell
};

// Analyses `cone` (topological order, ending with the hazardous node) with `tensor`
// narrowed to `cell`, everything else as the main analysis has it.
using CellAnalysis = std::function<CellOutcome(const std::vector<const Node*>& cone, const std::string& tensor,
                                              const IntervalTensor& cell)>;

// A proof by partition: the hazards no cell reports, and the node's outputs and inputs
// joined over the cells (one is left undefined unless every cell bounds it strictly
// within its limit: a cell's clamped safe state is not a bound). Tighter inputs serve
// the node's later readers and the backward bound (a divisor kept away from 0).
struct PartitionProof {
  std::string node;
  std::vector<std::string> tensors;  // the tensors split (one proof each)
  int cells = 0;                     // cells analysed, over all of them
  std::vector<std::string> hazards;  // proved absent
  std::vector<IntervalTensor> bounds;  // as CellOutcome::bounds
};

// Tries to prove `hazards` at `node` (and its outputs, then inputs, within `limits`,
// one each) by splitting a small tensor on its path. `budget` (output elements
// computed, PartitionOptions::element_budget) is spent.
std::optional<PartitionProof> prove_by_partition(const Graph& graph, const Node& node,
                                                 const std::unordered_map<std::string, IntervalTensor>& intervals,
                                                 const std::vector<std::string>& hazards,
                                                 const std::vector<double>& limits, const PartitionOptions& options,
                                                 int64_t& budget, const CellAnalysis& analyse);

// The intersection of two bounds of one tensor (both sound: so is their meet); the
// defined one when the other is not, and `a` where they are disjoint.
IntervalTensor meet(const IntervalTensor& a, const IntervalTensor& b);

// The cells of `t` (their union is t): integer elements enumerated where the product of
// their value counts fits `max_cells`, else the widest elements cut into equal pieces.
// Empty when `t` cannot be split (exact, unbounded, or nothing to cut).
std::vector<IntervalTensor> split_into_cells(const IntervalTensor& t, int max_cells);

}  // namespace nanguard
