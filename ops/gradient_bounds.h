// Backward bounds: given an elementwise bound on |dL/dy| for each output of a node and
// the forward intervals of its inputs, an elementwise bound on |dL/dx| for each
// input. The backward analysis (analyzer/gradient_bounds.h) chains them from the loss.
// Multilinear ops (products, sums, convolutions, data movement) take their own
// lowering's vector-Jacobian product at the operands' magnitudes: with every factor
// and the output bound nonnegative, it sums |coefficient| * bound, which no signed
// combination exceeds. Other ops have a rule here, or none (nullopt).
#pragma once

#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "ops/abstract_context.h"

namespace nanguard {

// `out_bounds[k]`: the bound for output k, of its shape, float64 (undefined: no
// gradient reaches it); `outputs`: the node's output intervals as the analysis found
// them (relational facts included: a normalised quotient). Returns one bound per input
// (undefined: none flows to it, or the input is not a float), or nullopt when the op
// has no backward bound.
std::optional<std::vector<at::Tensor>> input_gradient_bounds(const AbstractContext& a,
                                                             const std::vector<at::Tensor>& out_bounds,
                                                             const std::vector<IntervalTensor>& outputs);

// A Softmax node whose output only a Log reads, from the Log's output bound G: the pair
// is log_softmax, dx_i = G_i - softmax_i * sum_row G, so |dx_i| <= G_i + sum_row G. (The
// Log's own 1/p is finite where its log-gradient hazard is not reported.)
at::Tensor log_softmax_input_bound(const AbstractContext& softmax, const at::Tensor& log_bound);

}  // namespace nanguard
