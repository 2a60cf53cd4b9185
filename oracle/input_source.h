// Where a run's inputs come from: TensorProto files, or random values drawn
// uniformly within each input's range (integers: uniformly among LO..HI).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model/graph.h"
#include "model/ranges.h"
#include "model/status.h"
#include "oracle/executor.h"

namespace nanguard {


// Default range for inputs given none: floats in [-1, 1], integers in [0, 1].
constexpr Range kDefaultFloatRange{-1.0, 1.0};
constexpr Range kDefaultIntRange{0.0, 1.0};

// Parses "NAME=LO,HI" (LO <= HI, finite).
Result<std::pair<std::string, Range>> parse_range(const std::string& spec);
// Parses "NAME=VALUE" (e.g. --input x=x.pb, --dim N=4).
Result<std::pair<std::string, std::string>> parse_assignment(const std::string& spec, const std::string& flag);

Result<at::Tensor> read_tensor_file(const std::string& path);
// Writes atomically (temporary file, then rename): never a half-written file.
Status write_tensor_file(const at::Tensor& t, const std::string& name, const std::string& path,
                         int32_t onnx_elem_type = 0);

// Random values for every runtime input of `graph` not already in `given`; shapes
// come from the loaded (dimension-bound) input types.
Result<TensorMap> random_inputs(const Graph& graph, const RangeMap& ranges, uint64_t seed,
                                const TensorMap& given = {});

// Rejects ranges naming tensors that are not runtime inputs of the graph.
Status check_range_names(const Graph& graph, const RangeMap& ranges);

}  // namespace nanguard
