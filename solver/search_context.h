// What every witness search holds: the model, the finding and its target, the box,
// a float32 executor (the judge: witnesses are real float32 runs) and a float64 one
// (gradients that survive where float32 saturates), a seeded generator and the clock.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "analyzer/finding.h"
#include "model/graph.h"
#include "model/status.h"
#include "oracle/executor.h"
#include "solver/search_space.h"
#include "solver/unit_witness.h"

namespace nanguard {

struct SearchContext {
  const Graph& graph;
  const Node& node;
  const Finding& finding;
  const UnitTarget& target;
  const SearchSpace& space;
  Executor ex32, ex64;
  at::Generator gen;
  std::chrono::steady_clock::time_point start;
  double budget_seconds;

  double elapsed() const;
  bool time_left() const { return elapsed() < budget_seconds; }
  // The tensor the target is on: the node's operand, or its first output.
  const std::string& target_tensor() const;
};

Result<std::unique_ptr<SearchContext>> make_search_context(const Graph& graph, const Finding& finding,
                                                           const UnitTarget& target, const SearchSpace& space,
                                                           uint64_t seed, double budget_seconds);

}  // namespace nanguard
