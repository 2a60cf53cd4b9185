// What an op's abstract transfer function and hazard predicate see: the node, the
// graph (for relational facts such as x - max(x) <= 0), and the input intervals.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/attributes.h"
#include "model/graph.h"
#include "ops/interval.h"

namespace nanguard {

struct AbstractContext {
  const Node& node;
  const Graph& graph;
  int64_t opset;
  std::vector<IntervalTensor> inputs;  // default-constructed (undefined lo) when omitted
  at::ScalarType float_type = at::kFloat;
  // Analyses graph attribute `attribute` of this node on its formal inputs' intervals
  // (outer-scope tensors as the caller's analysis has them) and returns its outputs'.
  // Its findings join the analysis', named "<node>/<attribute>/<inner node>"; with
  // `reached` false (the subgraph may not run at all) none of them is definite. Set by
  // the analyzer; throws ModelError when the subgraph cannot be analysed.
  std::function<std::vector<IntervalTensor>(const std::string& attribute, const std::vector<IntervalTensor>& inputs,
                                            bool reached)>
      analyze_subgraph;

  size_t num_inputs() const { return inputs.size(); }
  bool has_input(size_t i) const { return i < inputs.size() && inputs[i].lo.defined(); }
  const IntervalTensor& input(size_t i) const;  // throws ModelError when missing
  // The producer of input i, or nullptr (graph input, initializer, omitted).
  const Node* producer(size_t i) const;
  [[noreturn]] void fail(const std::string& message) const;
};

}  // namespace nanguard
