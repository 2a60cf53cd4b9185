// Bound functions of the softmax family, shared with the losses (ops/loss.cc:
// SoftmaxCrossEntropyLoss is LogSoftmax followed by NegativeLogLikelihoodLoss).
#pragma once

#include <ATen/ATen.h>

#include "ops/interval_arith.h"

namespace nanguard {

// Sound float32 bounds of log_softmax(x) along `dim` for x in [lo, hi] (float64 bound
// tensors of one shape, full along `dim`, any size-1 cells elsewhere). The result
// has the same cell shape.
Bounds log_softmax_bounds(const at::Tensor& lo, const at::Tensor& hi, int64_t dim);

// The same for softmax(x): within [0, 1], reaching 0 where float32 can flush it.
Bounds softmax_bounds(const at::Tensor& lo, const at::Tensor& hi, int64_t dim);

}  // namespace nanguard
