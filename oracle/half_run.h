// How an op with float16/bfloat16 operands runs on CPU, where ATen lacks many half
// kernels: in float32, each result rounded to the type its output is declared with
// (as GPUs do with their float32 accumulators). The executor and the unit witnesses
// run ops alone this one way.
#pragma once

#include <vector>

#include <ATen/ATen.h>

#include "model/graph.h"
#include "ops/op_registry.h"

namespace nanguard {

// Widens the context's half inputs to float32 (on CPU only); whether any was.
bool widen_half_inputs(OpContext& ctx);

// Rounds float32 outputs of `node` to the half type they are declared with.
void round_half_outputs(const Graph& g, const Node& node, std::vector<at::Tensor>& outs);

}  // namespace nanguard
