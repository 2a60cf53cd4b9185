// Symbolic linear bounds (DeepPoly/CROWN-style back-substitution) that tighten a
// tensor's interval where plain intervals lose the correlation between neurons: the
// bound of a deep affine/ReLU chain is composed back over a window of nodes, then
// evaluated on the intervals of the tensors where the window stops. Granularity is
// per channel (axis 1): coefficients are shared by every spatial position, as
// convolution kernels, which is what keeps it cheap on feature maps. Each op's step
// back is its own (OpDef::symbolic, over the forms of ops/symbolic_form.h); the window,
// the composition and the concretisation are here.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "model/graph.h"
#include "ops/interval.h"

namespace nanguard {

struct SymbolicOptions {
  int max_nodes = 10;                       // nodes back-substituted through, at most
  int64_t max_coefficients = int64_t{1} << 24;  // per pending tensor; past it the window stops
  at::ScalarType float_type = at::kFloat;   // the run's float type (rounding slack)
  int64_t max_flops = int64_t{1} << 30;     // multiply-adds composing the window, at most
};

struct SymbolicBounds {
  at::Tensor lo, hi;  // [C] each
  int64_t flops = 0;  // multiply-adds spent
};

// Whether the op declares a linear transfer or relaxation (OpDef::symbolic: Conv, Gemm,
// MatMul with a constant weight, BatchNormalization, Add, Sub, Mul/Div by constants, Relu...).
bool has_symbolic_transfer(const std::string& op_type, const std::string& domain = "");

// Per-channel bounds [lo, hi] (each [C]) of `target` (whose interval is `interval`)
// valid at every element, sound for float32 execution, or nothing when no window
// applies (target not 2-D+ float, no supported producer). `known` must hold the
// intervals of every tensor before it.
std::optional<SymbolicBounds> symbolic_channel_bounds(
    const Graph& graph, const std::unordered_map<std::string, IntervalTensor>& known, const std::string& target,
    const IntervalTensor& interval, const SymbolicOptions& options = {});

// The interval of `target` intersected with its symbolic bounds (unchanged when none);
// adds the multiply-adds spent to *flops when given.
IntervalTensor refine_symbolically(const Graph& graph, const std::unordered_map<std::string, IntervalTensor>& known,
                                   const std::string& target, IntervalTensor interval,
                                   const SymbolicOptions& options = {}, int64_t* flops = nullptr);

}  // namespace nanguard
