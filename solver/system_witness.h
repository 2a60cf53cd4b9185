// System witnesses: model inputs (and free weights) within range such that a real
// float32 run fails at the finding's node. Strategies, tried in turn from each
// restart: box corners and zero snaps along the target's gradient, Z3 on the locally
// linear region (linear_region.h), and sign-gradient steps on a float64 surrogate of
// the target (float64 so that gradients survive where float32 saturates). Uniform
// random sampling is the baseline (`random_only`).
#pragma once

#include <string>

#include "analyzer/finding.h"
#include "model/graph.h"
#include "model/status.h"
#include "oracle/executor.h"
#include "solver/search_space.h"
#include "solver/unit_witness.h"

namespace nanguard {

struct SearchOptions {
  double budget_seconds = 60;
  uint64_t seed = 0;
  bool random_only = false;       // the baseline: uniform draws only
  int linear_coordinates = 48;    // coordinates Z3 may move in one linear step
};

struct SystemWitness {
  bool found = false;
  TensorMap point;        // every variable and held input, float32 values (as float64)
  std::string strategy;   // "random", "box-corner", "zero-snap", "linear-region", "gradient"
  double seconds = 0;
  int64_t runs = 0;       // float32 runs of the whole model
};

Result<SystemWitness> find_system_witness(const Graph& graph, const Finding& finding, const UnitTarget& target,
                                          const SearchSpace& space, const SearchOptions& options);

}  // namespace nanguard
