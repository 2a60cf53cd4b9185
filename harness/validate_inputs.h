// What `nanguard validate` and `replay --model` feed to a fixed model: the inputs
// of the original's reproducers (with their baked-in weights), and the user's own
// inputs for the agreement check.
#pragma once

#include <string>
#include <vector>

#include "model/graph.h"
#include "model/status.h"
#include "oracle/executor.h"
#include "solver/validate.h"

namespace nanguard {

// The initializers of `from` that `to` holds too, by name and with the same shape.
TensorMap shared_weights(const Graph& from, const Graph& to);

// Every reproducer directory under `dir` (or `dir` itself when it is one), sorted by
// name: its inputs plus the weights it shares with `fixed`.
Result<std::vector<ReplayCase>> read_reproducers(const std::string& dir, const Graph& fixed);

// Input sets for `graph` from `dir`: the folder itself or each of its subfolders
// holds NAME.pb per runtime input, or input_N.pb in graph-input order.
Result<std::vector<TensorMap>> read_input_sets(const std::string& dir, const Graph& graph);

}  // namespace nanguard
