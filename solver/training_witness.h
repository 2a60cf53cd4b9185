// Training-time witnesses: a training example (the model's inputs, labels included,
// within range) whose one SGD step from the stored weights, on the model's scalar
// loss output, makes the next forward run on the same example fail at the finding's
// node, while the loss of the first run is finite. The search: uniform and corner
// draws, then sign steps on the example along the gradient of the target's surrogate
// through the SGD step (a double backward, in float64); the witness itself is a real
// float32 step and run.
#pragma once

#include <string>

#include "analyzer/finding.h"
#include "model/graph.h"
#include "model/status.h"
#include "oracle/executor.h"
#include "solver/search_space.h"
#include "solver/unit_witness.h"

namespace nanguard {

struct TrainingOptions {
  double learning_rate = 0.1;
  double budget_seconds = 60;
  uint64_t seed = 0;
};

struct TrainingWitness {
  bool found = false;
  TensorMap example;  // the runtime inputs, as run (float32 for float inputs)
  TensorMap stepped;  // every trainable weight after the float32 SGD step
  std::string strategy;  // "training-draw" or "training-gradient"
  double seconds = 0;
  int64_t runs = 0;  // float32 training steps tried
};

// `space` moves the runtime inputs only (weights are the stored ones).
Result<TrainingWitness> find_training_witness(const Graph& graph, const Finding& finding, const UnitTarget& target,
                                              const SearchSpace& space, const TrainingOptions& options);

}  // namespace nanguard
