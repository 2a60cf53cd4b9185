// The last word on a witness: a real run of the whole model, in float32, on one
// device. Forward findings: NaN/INF is born at the node (oracle/nonfinite.h): a NaN
// from NaN-free inputs (0 * a -inf mask fill counts), an INF from finite inputs. Crash findings: the run stops at the node. Gradient
// findings: the value is finite, and a real backward pass (from the model's scalar
// output, else the sum of its float outputs) gives the node's output a finite gradient
// and its faulty operand a NaN/INF one.
#pragma once

#include <string>

#include <ATen/ATen.h>

#include "analyzer/finding.h"
#include "model/graph.h"
#include "model/status.h"
#include "oracle/executor.h"

namespace nanguard {

struct Confirmation {
  bool reproduced = false;
  std::string detail;  // e.g. "output 0 of /head/Log: 1 NaN, 3 INF"
};

// `feeds` holds every runtime input and the free weights' values (overriding the
// stored ones). `operand` is the faulty input's index (gradient findings).
Result<Confirmation> confirm_witness(const Graph& graph, const Finding& finding, int operand,
                                     const TensorMap& feeds, at::Device device);

}  // namespace nanguard
